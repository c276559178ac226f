"""``exchange-hub init``, public bundles, and the hub's configuration file."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exchange import pki
from exchange.config.profile import AGENCY_KEYS_PAYLOAD_TYPE, ProfileConfig
from exchange.crypto.dsse import Envelope, sign_envelope
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import NoteSigner, NoteVerifier
from exchange.errors import (
    CertificateError,
    ConfigurationError,
    ExchangeError,
    InvalidInputError,
    MalformedError,
    SignatureError,
)
from exchange.hub.config import HubConfig, check_log_origin
from exchange.hub.init import (
    BUNDLE_FILES,
    InitResult,
    export_public_bundle,
    init_exchange,
    read_public_bundle,
)
from exchange.v1 import statements_pb2

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
AGENCIES = ["agency-a", "agency-b", "agency-c"]

PROFILE_FILES = {
    "profile.toml": 0o644,
    "ca.pem": 0o644,
    "ca-key.pem": 0o600,
    "tls.pem": 0o644,
    "tls-key.pem": 0o600,
    "signing.pem": 0o644,
    "signing-key.pem": 0o600,
    "encryption.pem": 0o644,
    "encryption-key.pem": 0o600,
    "witness.pem": 0o644,
    "witness-key.pem": 0o600,
    "hub-ca.pem": 0o644,
    "keys.dsse": 0o644,
    "partners": 0o700,
    "state": 0o700,
    **{f"partners/{agency_id}.pem": 0o644 for agency_id in AGENCIES},
}
HUB_FILES = {
    "hub.toml": 0o644,
    "hub": 0o700,
    "hub/ca.pem": 0o644,
    "hub/ca-key.pem": 0o600,
    "hub/tls.pem": 0o644,
    "hub/tls-key.pem": 0o600,
    "hub/checkpoint-key.pem": 0o600,
    "agencies": 0o700,
    "registry": 0o755,
    "recovery": 0o700,
}
EXPECTED_MODES = {
    **HUB_FILES,
    **{f"agencies/{agency_id}": 0o700 for agency_id in AGENCIES},
    **{
        f"agencies/{agency_id}/{name}": mode
        for agency_id in AGENCIES
        for name, mode in PROFILE_FILES.items()
    },
    **{f"registry/{agency_id}": 0o755 for agency_id in AGENCIES},
    **{f"registry/{agency_id}/{name}": 0o644 for agency_id in AGENCIES for name in BUNDLE_FILES},
    **{f"recovery/{agency_id}-recovery-key.pem": 0o600 for agency_id in AGENCIES},
}


CERTIFICATE_FILES: dict[pki.CertificatePurpose, str] = {
    "tls-client": "tls.pem",
    "signing": "signing.pem",
    "encryption": "encryption.pem",
    "witness": "witness.pem",
}


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> InitResult:
    return init_exchange(tmp_path_factory.mktemp("exchange") / "demo", AGENCIES, now=NOW)


@pytest.fixture
def copy_of_registry(exchange: InitResult, tmp_path: Path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(exchange.registry_dir, target)
    return target


def relative_tree(root: Path) -> dict[str, int]:
    return {
        path.relative_to(root).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in root.rglob("*")
    }


def certificate(path: Path) -> x509.Certificate:
    return pki.load_certificate_pem(path.read_bytes())


# --- layout ---------------------------------------------------------------------------------------


def test_init_writes_exactly_the_documented_layout_with_its_modes(exchange: InitResult) -> None:
    assert relative_tree(exchange.directory) == EXPECTED_MODES


def test_init_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        result = init_exchange(tmp_path / "x", ["agency-a"], now=NOW)
    finally:
        os.umask(previous)
    tree = relative_tree(result.directory)
    assert tree["agencies/agency-a/signing-key.pem"] == 0o600
    assert tree["agencies/agency-a/state"] == 0o700
    assert tree["hub/checkpoint-key.pem"] == 0o600


def test_init_result_describes_what_was_made(exchange: InitResult) -> None:
    assert exchange.hub_config_path == exchange.directory / "hub.toml"
    assert exchange.registry_dir == exchange.directory / "registry"
    assert dict(exchange.profiles) == {
        agency_id: exchange.directory / "agencies" / agency_id for agency_id in AGENCIES
    }
    assert exchange.listen == exchange.hub_address == "127.0.0.1:50051"
    assert exchange.log_origin == "exchange.example/log"


@pytest.mark.parametrize("agency_id", AGENCIES)
def test_the_registry_holds_no_private_key(exchange: InitResult, agency_id: str) -> None:
    for path in (exchange.registry_dir / agency_id).rglob("*"):
        data = path.read_bytes()
        assert b"PRIVATE" not in data, path
        for load in (serialization.load_pem_private_key, serialization.load_der_private_key):
            with pytest.raises((ValueError, TypeError)):
                load(data, password=None)


def test_every_agency_has_its_own_ca(exchange: InitResult) -> None:
    cas = {
        agency_id: certificate(profile / "ca.pem")
        for agency_id, profile in exchange.profiles.items()
    }
    assert len({pki.fingerprint(ca.public_key()) for ca in cas.values()}) == len(AGENCIES)
    for agency_id, profile in exchange.profiles.items():
        for other_id, ca in cas.items():
            for purpose, name in CERTIFICATE_FILES.items():
                cert = certificate(profile / name)
                if other_id == agency_id:
                    assert pki.verify_issued_by(cert, ca, purpose=purpose, now=NOW) == agency_id
                else:
                    with pytest.raises(CertificateError):
                        pki.verify_issued_by(cert, ca, purpose=purpose, now=NOW)


@pytest.mark.parametrize("agency_id", AGENCIES)
def test_every_profile_holds_every_partner_ca(exchange: InitResult, agency_id: str) -> None:
    config = ProfileConfig.from_file(exchange.profiles[agency_id])
    assert sorted(config.partners) == AGENCIES
    for partner_id, path in config.partners.items():
        assert path == exchange.profiles[agency_id] / "partners" / f"{partner_id}.pem"
        assert path.read_bytes() == (exchange.registry_dir / partner_id / "ca.pem").read_bytes()
        assert path.read_bytes() == (exchange.profiles[partner_id] / "ca.pem").read_bytes()


@pytest.mark.parametrize("agency_id", AGENCIES)
def test_every_profile_names_the_hub_and_its_checkpoint_key(
    exchange: InitResult, agency_id: str
) -> None:
    config = ProfileConfig.from_file(exchange.profiles[agency_id])
    assert config.hub_address == "127.0.0.1:50051"
    assert (
        config.paths.hub_ca_certificate.read_bytes()
        == (exchange.directory / "hub" / "ca.pem").read_bytes()
    )
    assert config.checkpoint_verifier_key == exchange.checkpoint_verifier_key
    assert config.log_origin == "exchange.example/log"


def test_hub_config_written_by_init_loads(exchange: InitResult) -> None:
    config = HubConfig.from_file(exchange.hub_config_path)
    assert config.listen == "127.0.0.1:50051"
    assert config.database_url == f"sqlite:///{exchange.directory}/hub.db"
    assert config.tls_certificate == exchange.directory / "hub" / "tls.pem"
    assert config.tls_key == exchange.directory / "hub" / "tls-key.pem"
    assert config.checkpoint_key == exchange.directory / "hub" / "checkpoint-key.pem"
    assert config.registry_dir == exchange.registry_dir
    assert config.log_origin == exchange.log_origin
    tls = certificate(config.tls_certificate)
    tls.verify_directly_issued_by(certificate(exchange.directory / "hub" / "ca.pem"))
    key = pki.load_tls_private_key_pem(config.tls_key.read_bytes())
    assert key.public_key() == tls.public_key()


@pytest.mark.parametrize(
    ("listen", "hub_address", "dns", "ips"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051", ["localhost"], ["127.0.0.1"]),
        ("0.0.0.0:7000", "127.0.0.1:7000", ["localhost"], ["127.0.0.1"]),
        ("[::]:7000", "127.0.0.1:7000", ["localhost"], ["127.0.0.1"]),
        ("[::1]:7000", "[::1]:7000", ["localhost"], ["::1", "127.0.0.1"]),
        ("10.1.2.3:443", "10.1.2.3:443", ["localhost"], ["10.1.2.3", "127.0.0.1"]),
        (
            "hub.example.org:443",
            "hub.example.org:443",
            ["hub.example.org", "localhost"],
            ["127.0.0.1"],
        ),
    ],
)
def test_hub_certificate_covers_the_listen_host_and_loopback(
    tmp_path: Path, listen: str, hub_address: str, dns: list[str], ips: list[str]
) -> None:
    result = init_exchange(tmp_path / "x", ["agency-a"], listen=listen, now=NOW)
    assert result.hub_address == hub_address
    assert ProfileConfig.from_file(result.profiles["agency-a"]).hub_address == hub_address
    assert HubConfig.from_file(result.hub_config_path).listen == listen
    tls = certificate(result.directory / "hub" / "tls.pem")
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == dns
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ips


# --- refusals ----------------------------------------------------------------------------------------


def test_init_refuses_an_initialised_directory(tmp_path: Path) -> None:
    first = init_exchange(tmp_path / "x", ["agency-a"], now=NOW)
    before = {p: p.read_bytes() for p in first.directory.rglob("*") if p.is_file()}
    with pytest.raises(ConfigurationError, match="already holds an exchange.*--force"):
        init_exchange(tmp_path / "x", ["agency-a", "agency-b"], now=NOW)
    after = {p: p.read_bytes() for p in first.directory.rglob("*") if p.is_file()}
    assert after == before


def test_init_with_force_starts_over(tmp_path: Path) -> None:
    first = init_exchange(tmp_path / "x", ["agency-a", "agency-b"], now=NOW)
    old_ca = (first.profiles["agency-a"] / "ca.pem").read_bytes()
    (first.directory / "hub.db").write_bytes(b"old log")
    (first.directory / "notes.txt").write_text("not ours")
    second = init_exchange(tmp_path / "x", ["agency-a"], now=NOW, force=True)
    assert (second.profiles["agency-a"] / "ca.pem").read_bytes() != old_ca
    assert not (second.directory / "agencies" / "agency-b").exists()
    assert not (second.directory / "registry" / "agency-b").exists()
    assert not (second.directory / "hub.db").exists()
    assert (second.directory / "notes.txt").read_text() == "not ours"


def test_init_into_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    result = init_exchange(tmp_path / "x", ["agency-a"], now=NOW)
    assert (result.directory / "hub.toml").is_file()


@pytest.mark.parametrize(
    ("agency_ids", "error", "message"),
    [
        ([], InvalidInputError, "at least one agency"),
        (["Agency-A"], InvalidInputError, "'Agency-A'"),
        (["agency-a", "a/b"], InvalidInputError, "'a/b'"),
        (["agency-a", "agency-b", "agency-a"], InvalidInputError, "more than once: agency-a"),
    ],
)
def test_init_refuses_bad_agency_lists(
    tmp_path: Path, agency_ids: list[str], error: type[ExchangeError], message: str
) -> None:
    with pytest.raises(error, match=message):
        init_exchange(tmp_path / "x", agency_ids, now=NOW)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"listen": "127.0.0.1"}, "not HOST:PORT"),
        ({"listen": "127.0.0.1:0"}, "needs a real port"),
        ({"listen": "127.0.0.1:70000"}, "outside"),
        ({"listen": "::1:50051"}, "brackets"),
        ({"log_origin": "has space/log"}, "log origin"),
        ({"log_origin": "a+b"}, "log origin"),
    ],
)
def test_init_refuses_bad_options(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        init_exchange(tmp_path / "x", ["agency-a"], now=NOW, **options)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_init_takes_a_log_origin(tmp_path: Path) -> None:
    result = init_exchange(tmp_path / "x", ["agency-a"], log_origin="hub.example.org/log", now=NOW)
    assert result.checkpoint_verifier_key.startswith("hub.example.org/log+")
    assert HubConfig.from_file(result.hub_config_path).log_origin == "hub.example.org/log"
    assert ProfileConfig.from_file(result.profiles["agency-a"]).log_origin == "hub.example.org/log"


# --- checkpoint verifier key ---------------------------------------------------------------------------


def test_checkpoint_verifier_key_is_the_hubs_key_named_by_the_origin(exchange: InitResult) -> None:
    verifier = NoteVerifier.from_string(exchange.checkpoint_verifier_key)
    checkpoint_key = SigningKey.from_pem(
        (exchange.directory / "hub" / "checkpoint-key.pem").read_bytes()
    )
    assert verifier.name == "exchange.example/log"
    assert verifier.public_key == checkpoint_key.public_key.raw
    signer = NoteSigner("exchange.example/log", checkpoint_key.native)
    assert signer.verifier().to_string() == exchange.checkpoint_verifier_key


# --- the AgencyKeys statement and public bundles ---------------------------------------------------------


@pytest.mark.parametrize("agency_id", AGENCIES)
def test_registry_bundle_reads_back_verified(exchange: InitResult, agency_id: str) -> None:
    material = read_public_bundle(exchange.registry_dir / agency_id, now=NOW)
    profile = exchange.profiles[agency_id]
    assert material.agency_id == agency_id
    assert material.ca_certificate == certificate(profile / "ca.pem")
    assert material.signing_certificate == certificate(profile / "signing.pem")
    assert material.encryption_certificate == certificate(profile / "encryption.pem")
    assert material.witness_certificate == certificate(profile / "witness.pem")
    assert material.keys_envelope.payload_type == AGENCY_KEYS_PAYLOAD_TYPE
    assert material.agency_keys.agency_id == agency_id
    assert material.agency_keys.key_number == 1
    assert material.agency_keys.previous_keys_hash == b""
    assert material.agency_keys.created_at.ToDatetime(tzinfo=UTC) == NOW
    signing_key = SigningKey.from_pem((profile / "signing-key.pem").read_bytes())
    assert [s.keyid for s in material.keys_envelope.signatures] == [signing_key.public_key.key_id]
    assert (profile / "keys.dsse").read_bytes() == (
        exchange.registry_dir / agency_id / "keys.dsse"
    ).read_bytes()


def test_export_public_bundle_copies_public_material_only(
    exchange: InitResult, tmp_path: Path
) -> None:
    material = export_public_bundle(exchange.profiles["agency-b"], tmp_path / "out", now=NOW)
    assert material.agency_id == "agency-b"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(BUNDLE_FILES)
    for name in BUNDLE_FILES:
        assert (tmp_path / "out" / name).read_bytes() == (
            exchange.registry_dir / "agency-b" / name
        ).read_bytes()
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        export_public_bundle(exchange.profiles["agency-b"], tmp_path / "out", now=NOW)


def _resign(
    exchange: InitResult, agency_id: str, edit: Callable[[statements_pb2.AgencyKeys], bytes]
) -> bytes:
    """keys.dsse with an edited payload, properly signed by the agency's own signing key."""
    profile = exchange.profiles[agency_id]
    envelope = Envelope.from_json((profile / "keys.dsse").read_bytes())
    message = statements_pb2.AgencyKeys()
    message.ParseFromString(envelope.payload)
    key = SigningKey.from_pem((profile / "signing-key.pem").read_bytes())
    return sign_envelope(AGENCY_KEYS_PAYLOAD_TYPE, edit(message), key).to_json()


def _flip_payload_bit(data: bytes) -> bytes:
    document = json.loads(data)
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[-1] ^= 1
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    return json.dumps(document).encode()


def _other_encryption_certificate(message: statements_pb2.AgencyKeys) -> bytes:
    message.encryption_certificate = message.signing_certificate
    return message.SerializeToString(deterministic=True)


def _other_agency_id(message: statements_pb2.AgencyKeys) -> bytes:
    message.agency_id = "agency-b"
    return message.SerializeToString(deterministic=True)


def _unknown_field(message: statements_pb2.AgencyKeys) -> bytes:
    return message.SerializeToString(deterministic=True) + b"\xf8\x01\x01"


def _unknown_field_inside_created_at(message: statements_pb2.AgencyKeys) -> bytes:
    created_at = message.created_at.SerializeToString(deterministic=True) + b"\x18\x01"
    message.ClearField("created_at")
    field_6 = b"\x32" + bytes([len(created_at)]) + created_at
    return message.SerializeToString(deterministic=True) + field_6


BundleEdit = Callable[[InitResult, Path], None]


def _copy_from(agency_id: str, name: str) -> BundleEdit:
    def edit(exchange: InitResult, bundle: Path) -> None:
        (bundle / name).write_bytes((exchange.registry_dir / agency_id / name).read_bytes())

    return edit


def _write(name: str, data: Callable[[InitResult], bytes]) -> BundleEdit:
    def edit(exchange: InitResult, bundle: Path) -> None:
        (bundle / name).write_bytes(data(exchange))

    return edit


def _remove(name: str) -> BundleEdit:
    def edit(exchange: InitResult, bundle: Path) -> None:
        (bundle / name).unlink()

    return edit


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        pytest.param(
            _remove("witness.pem"), ConfigurationError, "witness.pem: missing", id="missing"
        ),
        pytest.param(
            _write("tls-key.pem", lambda e: (e.profiles["agency-a"] / "tls-key.pem").read_bytes()),
            ConfigurationError,
            "must not hold private keys",
            id="private-key",
        ),
        pytest.param(
            _copy_from("agency-b", "signing.pem"),
            CertificateError,
            "signing.pem",
            id="signing-cert-from-another-agency",
        ),
        pytest.param(
            _copy_from("agency-b", "ca.pem"),
            CertificateError,
            "signing.pem",
            id="ca-of-another-agency",
        ),
        pytest.param(
            _write(
                "encryption.pem",
                lambda e: (e.registry_dir / "agency-a" / "signing.pem").read_bytes(),
            ),
            CertificateError,
            "encryption.pem",
            id="signing-cert-as-encryption",
        ),
        pytest.param(
            _copy_from("agency-b", "keys.dsse"),
            ExchangeError,
            "keys.dsse",
            id="statement-of-another-agency",
        ),
        pytest.param(
            _write(
                "keys.dsse",
                lambda e: _flip_payload_bit(
                    (e.registry_dir / "agency-a" / "keys.dsse").read_bytes()
                ),
            ),
            SignatureError,
            "keys.dsse",
            id="statement-tampered",
        ),
        pytest.param(
            _write("keys.dsse", lambda e: _resign(e, "agency-a", _other_encryption_certificate)),
            CertificateError,
            "checked as a encryption key certificate",
            id="statement-names-other-cert",
        ),
        pytest.param(
            _write("keys.dsse", lambda e: _resign(e, "agency-a", _other_agency_id)),
            CertificateError,
            "statement names 'agency-b'",
            id="statement-names-other-agency",
        ),
        pytest.param(
            _write("keys.dsse", lambda e: _resign(e, "agency-a", _unknown_field)),
            MalformedError,
            "canonical",
            id="statement-with-unknown-field",
        ),
        pytest.param(
            _write("keys.dsse", lambda e: _resign(e, "agency-a", _unknown_field_inside_created_at)),
            MalformedError,
            "canonical",
            id="statement-with-nested-unknown-field",
        ),
        pytest.param(
            _write("keys.dsse", lambda e: b"{}"),
            MalformedError,
            "keys.dsse",
            id="not-dsse",
        ),
        pytest.param(
            _write("ca.pem", lambda e: b"junk"),
            MalformedError,
            "ca.pem",
            id="not-pem",
        ),
    ],
)
def test_read_public_bundle_refuses_bad_material(
    exchange: InitResult,
    copy_of_registry: Path,
    edit: BundleEdit,
    error: type[ExchangeError],
    message: str,
) -> None:
    bundle = copy_of_registry / "agency-a"
    assert read_public_bundle(bundle, now=NOW).agency_id == "agency-a"
    edit(exchange, bundle)
    with pytest.raises(error, match=message):
        read_public_bundle(bundle, now=NOW)


def test_read_public_bundle_checks_validity_at_now(exchange: InitResult) -> None:
    with pytest.raises(CertificateError):
        read_public_bundle(exchange.registry_dir / "agency-a", now=NOW - timedelta(days=1))


def test_a_profile_directory_is_not_a_public_bundle(exchange: InitResult) -> None:
    with pytest.raises(ConfigurationError, match="must not hold private keys"):
        read_public_bundle(exchange.profiles["agency-a"], now=NOW)


# --- the material works for real mTLS ---------------------------------------------------------------------


def test_init_material_completes_mtls_and_rejects_an_unregistered_agency(tmp_path: Path) -> None:
    result = init_exchange(tmp_path / "x", ["agency-a", "agency-b"])
    stranger = init_exchange(tmp_path / "y", ["agency-a"])
    hub = result.directory / "hub"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    registered_cas = b"".join(
        (result.registry_dir / agency_id / "ca.pem").read_bytes() for agency_id in result.profiles
    )
    credentials = grpc.ssl_server_credentials(
        [((hub / "tls-key.pem").read_bytes(), (hub / "tls.pem").read_bytes())],
        root_certificates=registered_cas,
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:

        def check(profile: Path, host: str) -> grpc.StatusCode:
            channel_credentials = grpc.ssl_channel_credentials(
                root_certificates=(profile / "hub-ca.pem").read_bytes(),
                private_key=(profile / "tls-key.pem").read_bytes(),
                certificate_chain=(profile / "tls.pem").read_bytes(),
            )
            with grpc.secure_channel(f"{host}:{port}", channel_credentials) as channel:
                try:
                    health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=10
                    )
                except grpc.RpcError as e:
                    return e.code()
                return grpc.StatusCode.OK

        assert check(result.profiles["agency-b"], "localhost") == grpc.StatusCode.OK
        assert check(result.profiles["agency-a"], "127.0.0.1") == grpc.StatusCode.OK
        assert check(stranger.profiles["agency-a"], "localhost") == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


# --- hub configuration ------------------------------------------------------------------------------


def write_hub_toml(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.toml"
    path.write_text(text)
    return path


def test_hub_config_defaults(tmp_path: Path) -> None:
    config = HubConfig.from_file(write_hub_toml(tmp_path / "conf", ""))
    directory = tmp_path / "conf"
    assert config == HubConfig.default(directory / "hub.toml")
    assert config.config_path == directory / "hub.toml"
    assert config.directory == directory
    assert config.listen == "127.0.0.1:50051"
    assert config.database_url == f"sqlite:///{directory}/hub.db"
    assert config.tls_certificate == directory / "hub" / "tls.pem"
    assert config.tls_key == directory / "hub" / "tls-key.pem"
    assert config.registry_dir == directory / "registry"
    assert config.checkpoint_key == directory / "hub" / "checkpoint-key.pem"
    assert config.log_origin == "exchange.example/log"
    assert config.checkpoint_interval_seconds == 60.0
    assert config.heartbeat_interval_seconds == 15.0
    assert config.max_message_bytes == 8 * 1024 * 1024
    assert config.rate_limit_per_agency == 50.0
    assert config.rate_limit_burst == 100


def test_hub_config_reads_every_setting_and_resolves_relative_paths(tmp_path: Path) -> None:
    path = write_hub_toml(
        tmp_path / "conf",
        """
listen = "0.0.0.0:6000"
database_url = "sqlite:///data/exchange.db"

[tls]
certificate = "tls/cert.pem"
key = "/etc/exchange/key.pem"

[registry]
directory = "../shared-registry"

[log]
origin = "hub.example.org/log"
checkpoint_key = "keys/checkpoint.pem"
checkpoint_interval_seconds = 5

[feed]
heartbeat_interval_seconds = 2.5

[limits]
max_message_bytes = 1048576
rate_limit_per_agency = 10
rate_limit_burst = 20
""",
    )
    config = HubConfig.from_file(path)
    directory = tmp_path / "conf"
    assert config.listen == "0.0.0.0:6000"
    assert config.database_url == f"sqlite:///{directory}/data/exchange.db"
    assert config.tls_certificate == directory / "tls" / "cert.pem"
    assert config.tls_key == Path("/etc/exchange/key.pem")
    assert config.registry_dir == directory / ".." / "shared-registry"
    assert config.checkpoint_key == directory / "keys" / "checkpoint.pem"
    assert config.log_origin == "hub.example.org/log"
    assert config.checkpoint_interval_seconds == 5.0
    assert config.heartbeat_interval_seconds == 2.5
    assert config.max_message_bytes == 1048576
    assert config.rate_limit_per_agency == 10.0
    assert config.rate_limit_burst == 20


def test_hub_config_relative_path_is_resolved_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_hub_toml(tmp_path / "conf", 'database_url = "sqlite:///hub.db"\n')
    monkeypatch.chdir(tmp_path)
    config = HubConfig.from_file(Path("conf/hub.toml"))
    assert config.database_url == f"sqlite:///{tmp_path}/conf/hub.db"
    assert config.config_path == path


@pytest.mark.parametrize(
    "database_url",
    [
        "postgresql+psycopg://exchange:secret@db.example.org:5432/exchange",
        "sqlite:////var/lib/exchange/hub.db",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_hub_config_leaves_other_database_urls_alone(tmp_path: Path, database_url: str) -> None:
    path = write_hub_toml(tmp_path, f'database_url = "{database_url}"\n')
    assert HubConfig.from_file(path).database_url == database_url


def test_hub_config_environment_overrides(tmp_path: Path) -> None:
    config = HubConfig.from_file(write_hub_toml(tmp_path, ""))
    environ = {
        "EXCHANGE_HUB_LISTEN": "127.0.0.1:0",
        "EXCHANGE_HUB_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "EXCHANGE_HUB_UNRELATED": "x",
    }
    applied = config.apply_env(environ)
    assert applied.listen == "127.0.0.1:0"
    assert applied.database_url == "postgresql+psycopg://u@h/db"
    assert applied == replace(
        config, listen="127.0.0.1:0", database_url="postgresql+psycopg://u@h/db"
    )
    assert config.apply_env({}) == config
    assert config.apply_env({"EXCHANGE_HUB_LISTEN": ""}) == config


def test_hub_config_flags_override_the_environment(tmp_path: Path) -> None:
    config = HubConfig.from_file(write_hub_toml(tmp_path, ""))
    final = config.apply_env({"EXCHANGE_HUB_LISTEN": "127.0.0.1:1000"}).with_overrides(
        listen="127.0.0.1:2000", database_url="sqlite:///elsewhere.db"
    )
    assert final.listen == "127.0.0.1:2000"
    assert final.database_url == "sqlite:///elsewhere.db"
    assert config.with_overrides() == config


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EXCHANGE_HUB_LISTEN": "nowhere"}, "environment: listen.*HOST:PORT"),
        ({"EXCHANGE_HUB_DATABASE_URL": "not a url"}, "environment: database url"),
    ],
)
def test_hub_config_bad_environment_is_named(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    config = HubConfig.from_file(write_hub_toml(tmp_path, ""))
    with pytest.raises(ConfigurationError, match=message):
        config.apply_env(environ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen = ", "not valid TOML"),
        ('listen = "localhost"', "listen.*HOST:PORT"),
        ("listen = 50051", "listen must be a non-empty string"),
        ('database_url = "nonsense"', "database_url.*not a database URL"),
        ('lisen = "127.0.0.1:1"', "lisen: unknown setting"),
        ("[limits]\nmax_message_bytes = 0", r"\[limits\] max_message_bytes must be a positive"),
        ("[limits]\nmax_message_bytes = 1.5", "must be a positive integer"),
        ("[limits]\nrate_limit_per_agency = true", "must be a positive number"),
        ("[limits]\nrate_limit_burst = -1", "rate_limit_burst"),
        ("[feed]\nheartbeat_interval_seconds = 0", "heartbeat_interval_seconds"),
        ("[log]\norigin = 'a b'", r"\[log\] origin"),
        ("[log]\ncheckpoint_interval = 5", "checkpoint_interval: unknown setting"),
        ("tls = 'x'", "expected a \\[tls\\] table"),
    ],
)
def test_hub_config_errors_name_the_file_and_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_hub_toml(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as raised:
        HubConfig.from_file(path)
    assert str(path) in str(raised.value)


def test_hub_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="exchange-hub init"):
        HubConfig.from_file(tmp_path / "hub.toml")


def test_hub_config_round_trips_through_toml(tmp_path: Path) -> None:
    config = replace(
        HubConfig.default(tmp_path / "hub.toml"),
        listen="[::1]:7000",
        log_origin="hub.example.org/log",
        rate_limit_burst=7,
        tls_key=Path("/elsewhere/key.pem"),
    )
    (tmp_path / "hub.toml").write_text(config.to_toml())
    assert 'database_url = "sqlite:///hub.db"' in config.to_toml()
    assert HubConfig.from_file(tmp_path / "hub.toml") == config


@pytest.mark.parametrize("origin", ["exchange.example/log", "a", "hub.example.org:8443/log-2"])
def test_valid_log_origins(origin: str) -> None:
    assert check_log_origin(origin) == origin


@pytest.mark.parametrize("origin", ["", "a b", "a+b", "a\nb", "héllo", "tab\there"])
def test_invalid_log_origins(origin: str) -> None:
    with pytest.raises(ConfigurationError):
        check_log_origin(origin)
