"""An agency profile on disk: loading it, and every way loading it fails."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exchange import pki
from exchange.config.profile import (
    PROFILE_FILE_NAME,
    ProfileConfig,
    ProfilePaths,
    load_profile,
    parse_host_port,
)
from exchange.errors import ConfigurationError
from exchange.hub.init import InitResult, init_exchange

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    return init_exchange(
        tmp_path_factory.mktemp("exchange") / "demo", ["agency-a", "agency-b"], now=NOW
    )


@pytest.fixture
def profile(exchange: InitResult, tmp_path: Path) -> Path:
    """A private copy of agency-a's profile (modes preserved) that a test may damage."""
    target = tmp_path / "agency-a"
    shutil.copytree(exchange.profiles["agency-a"], target)
    return target


def test_load_profile_reads_everything(profile: Path, exchange: InitResult) -> None:
    data = load_profile(profile, now=NOW)
    assert data.agency_id == "agency-a"
    assert data.hub_address == "127.0.0.1:50051"
    assert data.state_dir == profile / "state"
    assert data.checkpoint_verifier_key == exchange.checkpoint_verifier_key
    assert data.log_origin == "exchange.example/log"
    assert data.config.directory == profile
    assert data.config.paths == ProfilePaths.standard(profile)
    assert data.ca_certificate == pki.load_certificate_pem((profile / "ca.pem").read_bytes())
    assert data.hub_ca_certificate_pem == (exchange.directory / "hub" / "ca.pem").read_bytes()
    assert data.tls_certificate_pem == (profile / "tls.pem").read_bytes()
    assert data.tls_key_pem == (profile / "tls-key.pem").read_bytes()
    assert data.signing_key.public_key.native == data.signing_certificate.public_key()
    assert data.encryption_key.public_key.native == data.encryption_certificate.public_key()
    assert data.witness_key.public_key.native == data.witness_certificate.public_key()
    assert data.signing_key.public_key != data.witness_key.public_key
    assert sorted(data.partner_cas) == ["agency-a", "agency-b"]
    assert data.partner_cas["agency-a"] == data.ca_certificate
    assert pki.agency_id_from_certificate(data.partner_cas["agency-b"]) == "agency-b"
    assert data.keys_envelope.payload_type == "application/vnd.exchange.agency-keys.v1+protobuf"


def test_load_profile_takes_the_toml_path_too(profile: Path) -> None:
    assert load_profile(profile / PROFILE_FILE_NAME, now=NOW).agency_id == "agency-a"


def test_load_profile_creates_a_missing_state_directory_privately(profile: Path) -> None:
    (profile / "state").rmdir()
    previous = os.umask(0)
    try:
        load_profile(profile, now=NOW)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((profile / "state").stat().st_mode) == 0o700


def test_a_profile_moved_elsewhere_still_loads(profile: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "profile"
    shutil.move(profile, moved)
    assert load_profile(moved, now=NOW).config.paths.signing_key == moved / "signing-key.pem"


def test_absolute_paths_in_profile_toml_are_kept(profile: Path, tmp_path: Path) -> None:
    hub_ca = tmp_path / "pinned-hub-ca.pem"
    shutil.copy(profile / "hub-ca.pem", hub_ca)
    text = (profile / PROFILE_FILE_NAME).read_text()
    (profile / PROFILE_FILE_NAME).write_text(
        text.replace('hub_ca_certificate = "hub-ca.pem"', f'hub_ca_certificate = "{hub_ca}"')
    )
    config = ProfileConfig.from_file(profile)
    assert config.paths.hub_ca_certificate == hub_ca
    assert f'hub_ca_certificate = "{hub_ca}"' in config.to_toml()
    assert load_profile(profile, now=NOW).hub_ca_certificate_pem == hub_ca.read_bytes()


def test_profile_toml_round_trips(profile: Path) -> None:
    config = ProfileConfig.from_file(profile)
    (profile / PROFILE_FILE_NAME).write_text(config.to_toml())
    assert ProfileConfig.from_file(profile) == config


# --- load errors ---------------------------------------------------------------------------------

Damage = Callable[[Path], None]


def _edit_toml(old: str, new: str) -> Damage:
    def damage(profile: Path) -> None:
        path = profile / PROFILE_FILE_NAME
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))

    return damage


def _append_toml(extra: str) -> Damage:
    def damage(profile: Path) -> None:
        with (profile / PROFILE_FILE_NAME).open("a") as file:
            file.write(extra)

    return damage


def _chmod(name: str, mode: int) -> Damage:
    def damage(profile: Path) -> None:
        os.chmod(profile / name, mode)

    return damage


def _remove(name: str) -> Damage:
    def damage(profile: Path) -> None:
        (profile / name).unlink()

    return damage


def _swap(first: str, second: str) -> Damage:
    """Exchange two files' contents, keeping each file's mode."""

    def damage(profile: Path) -> None:
        a, b = (profile / first).read_bytes(), (profile / second).read_bytes()
        (profile / first).write_bytes(b)
        (profile / second).write_bytes(a)

    return damage


def _replace_with(name: str, data: bytes) -> Damage:
    def damage(profile: Path) -> None:
        (profile / name).write_bytes(data)

    return damage


def _copy_partner(source: str, target: str) -> Damage:
    def damage(profile: Path) -> None:
        shutil.copy(profile / "partners" / source, profile / "partners" / target)

    return damage


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        pytest.param(
            _remove(PROFILE_FILE_NAME), PROFILE_FILE_NAME, "exchange-hub init", id="no-toml"
        ),
        pytest.param(_append_toml("[[["), PROFILE_FILE_NAME, "not valid TOML", id="bad-toml"),
        pytest.param(
            _replace_with(PROFILE_FILE_NAME, b"\xff\xfe"),
            PROFILE_FILE_NAME,
            "cannot read",
            id="not-utf8",
        ),
        pytest.param(
            _edit_toml('agency_id = "agency-a"\n', ""),
            PROFILE_FILE_NAME,
            "agency_id is missing",
            id="no-agency-id",
        ),
        pytest.param(
            _edit_toml('agency_id = "agency-a"', 'agency_id = "Agency A"'),
            PROFILE_FILE_NAME,
            "invalid agency id",
            id="bad-agency-id",
        ),
        pytest.param(
            _edit_toml('agency_id = "agency-a"', 'agency_id = "agency-b"'),
            "ca.pem",
            "CA certificate is for 'agency-a'",
            id="someone-elses-id",
        ),
        pytest.param(
            _edit_toml('hub_address = "127.0.0.1:50051"', 'hub_address = "127.0.0.1"'),
            PROFILE_FILE_NAME,
            "hub_address.*HOST:PORT",
            id="bad-hub-address",
        ),
        pytest.param(
            _edit_toml('hub_address = "127.0.0.1:50051"', 'hub_address = "127.0.0.1:0"'),
            PROFILE_FILE_NAME,
            "real port",
            id="hub-port-zero",
        ),
        pytest.param(
            _append_toml('colour = "blue"\n'),
            PROFILE_FILE_NAME,
            "colour: unknown setting",
            id="unknown-setting-in-audit",
        ),
        pytest.param(
            _edit_toml('tls_key = "tls-key.pem"', 'tls_kye = "tls-key.pem"'),
            PROFILE_FILE_NAME,
            r"\[paths\] tls_kye: unknown setting",
            id="misspelt-path",
        ),
        pytest.param(
            _edit_toml('log_origin = "exchange.example/log"', 'log_origin = "other.example/log"'),
            PROFILE_FILE_NAME,
            "does not name the log origin",
            id="verifier-key-for-another-log",
        ),
        pytest.param(
            _edit_toml("exchange.example/log+", "exchange.example/log+00000000"),
            PROFILE_FILE_NAME,
            "checkpoint_verifier_key: .*key id",
            id="verifier-key-malformed",
        ),
        pytest.param(
            _edit_toml("[audit]", "[auditing]"),
            PROFILE_FILE_NAME,
            r"expected a \[audit\] table",
            id="no-audit-table",
        ),
        pytest.param(
            _edit_toml('agency-b = "partners/agency-b.pem"', 'Agency-B = "partners/agency-b.pem"'),
            PROFILE_FILE_NAME,
            r"\[partners\].*invalid agency id",
            id="bad-partner-id",
        ),
        pytest.param(_remove("signing-key.pem"), "signing-key.pem", "missing", id="no-signing-key"),
        pytest.param(_remove("hub-ca.pem"), "hub-ca.pem", "missing", id="no-hub-ca"),
        pytest.param(_remove("keys.dsse"), "keys.dsse", "missing", id="no-keys-statement"),
        pytest.param(
            _remove("partners/agency-b.pem"), "partners/agency-b.pem", "missing", id="no-partner"
        ),
        pytest.param(
            _chmod("signing-key.pem", 0o640),
            "signing-key.pem",
            "chmod 600",
            id="key-group-readable",
        ),
        pytest.param(
            _chmod("encryption-key.pem", 0o604),
            "encryption-key.pem",
            "chmod 600",
            id="key-world-readable",
        ),
        pytest.param(
            _chmod("tls-key.pem", 0o620), "tls-key.pem", "chmod 600", id="key-group-writable"
        ),
        pytest.param(_chmod("ca-key.pem", 0o644), "ca-key.pem", "chmod 600", id="ca-key-readable"),
        pytest.param(_chmod("state", 0o755), "state", "chmod 700", id="state-readable"),
        pytest.param(
            _swap("signing-key.pem", "witness-key.pem"),
            "signing-key.pem",
            "does not match its certificate",
            id="keys-swapped",
        ),
        pytest.param(
            _swap("signing.pem", "witness.pem"), "signing.pem", "key usage", id="certs-swapped"
        ),
        pytest.param(
            _replace_with("signing-key.pem", b"junk"), "signing-key.pem", "PEM", id="key-not-pem"
        ),
        pytest.param(
            _replace_with("encryption.pem", b"junk"),
            "encryption.pem",
            "certificate",
            id="cert-not-pem",
        ),
        pytest.param(_replace_with("keys.dsse", b"[]"), "keys.dsse", "DSSE", id="keys-not-dsse"),
        pytest.param(
            _copy_partner("agency-a.pem", "agency-b.pem"),
            "partners/agency-b.pem",
            "for 'agency-a' but is listed as partner 'agency-b'",
            id="partner-under-wrong-name",
        ),
        pytest.param(
            _copy_partner("agency-b.pem", "agency-a.pem"),
            "partners/agency-a.pem",
            "for 'agency-b' but is listed as partner 'agency-a'",
            id="own-entry-replaced",
        ),
    ],
)
def test_load_errors_name_the_file_and_the_fix(
    profile: Path, damage: Damage, file: str, message: str
) -> None:
    damage(profile)
    with pytest.raises(ConfigurationError, match=message) as raised:
        load_profile(profile, now=NOW)
    assert str(profile / file) in str(raised.value)


def test_another_agencys_certificates_in_the_profile_fail(
    profile: Path, exchange: InitResult
) -> None:
    other = exchange.profiles["agency-b"]
    shutil.copy(other / "signing.pem", profile / "signing.pem")
    with pytest.raises(ConfigurationError, match="signing.pem.*CA of 'agency-a'"):
        load_profile(profile, now=NOW)


def test_own_partner_entry_must_be_the_own_ca(profile: Path, tmp_path: Path) -> None:
    impostor = init_exchange(tmp_path / "impostor", ["agency-a"], now=NOW)
    shutil.copy(impostor.profiles["agency-a"] / "ca.pem", profile / "partners" / "agency-a.pem")
    with pytest.raises(ConfigurationError, match="own entry differs"):
        load_profile(profile, now=NOW)


@pytest.mark.parametrize("when", [NOW - timedelta(days=1), NOW + timedelta(days=900)])
def test_certificates_outside_their_validity_fail(profile: Path, when: datetime) -> None:
    with pytest.raises(ConfigurationError, match="tls.pem"):
        load_profile(profile, now=when)


# --- addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("localhost:0", ("localhost", 0)),
        ("hub.example.org:443", ("hub.example.org", 443)),
        ("[::1]:7000", ("::1", 7000)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_parse_host_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "localhost",
        ":50051",
        "localhost:",
        "localhost:http",
        "localhost:65536",
        "::1:50051",
        "[nothost]:1",
        "my host:1",
        "localhost:-1",
        "localhost:５０",
    ],
)
def test_parse_host_port_refuses(value: str) -> None:
    with pytest.raises(ConfigurationError, match="address"):
        parse_host_port(value)
