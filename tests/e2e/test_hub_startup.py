"""`exchange-hub serve` refused at start: one line naming what to fix, exit 2, nothing written.

Each case is the real hub in a subprocess: a malformed ``hub.toml``, a key file missing or open
to others, a database that cannot be used, and a second hub on an address or an SQLite database
already in use.  Several replicas on one PostgreSQL database stay allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, _postgres_database

BIN = Path(sys.executable).parent
HUB = str(BIN / "exchange-hub")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exchange made by `exchange-hub init`, copied afresh for each test."""
    directory = tmp_path_factory.mktemp("startup") / "exchange"
    subprocess.run(
        [HUB, "init", str(directory), "--agency", "agency-a", "--agency", "agency-b"],
        check=True,
        capture_output=True,
    )
    return directory


@pytest.fixture
def exchange(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "exchange"
    shutil.copytree(pristine, copy)
    return copy


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A hub start that is expected to be refused (it would otherwise serve until killed)."""
    return subprocess.run(
        [HUB, "serve", "--config", str(config), "--listen", "127.0.0.1:0", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


class RunningHub:
    def __init__(self, config: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [HUB, "serve", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("listening on "), self.process.stderr.read()  # type: ignore[union-attr]
        self.address = line.removeprefix("listening on ")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def running() -> Iterator[Callable[..., RunningHub]]:
    started: list[RunningHub] = []

    def start(config: Path, *args: str) -> RunningHub:
        hub = RunningHub(config, *args)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *named: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


def written(exchange: Path) -> list[str]:
    return sorted(p.name for p in exchange.glob("hub.db*"))


def test_a_malformed_hub_toml_names_the_file_and_the_line(exchange: Path) -> None:
    config = exchange / "hub.toml"
    config.write_text(config.read_text() + "listen = \n")
    line = assert_one_line_refusal(serve(config), str(config), "not valid TOML", "line")
    assert "fix it" in line
    assert written(exchange) == []


def test_an_unknown_setting_is_named(exchange: Path) -> None:
    config = exchange / "hub.toml"
    config.write_text(config.read_text().replace("[feed]", "[feed]\nheartbeat_seconds = 1"))
    assert_one_line_refusal(serve(config), "heartbeat_seconds", "unknown setting")
    assert written(exchange) == []


@pytest.mark.parametrize(
    ("file", "setting"),
    [
        ("hub/tls-key.pem", "[tls] key"),
        ("hub/tls.pem", "[tls] certificate"),
        ("hub/checkpoint-key.pem", "[log] checkpoint_key"),
    ],
)
def test_a_missing_key_file_names_the_file_and_its_setting(
    exchange: Path, file: str, setting: str
) -> None:
    (exchange / file).unlink()
    assert_one_line_refusal(serve(exchange / "hub.toml"), str(exchange / file), setting)
    assert written(exchange) == []


@pytest.mark.parametrize("file", ["hub/tls-key.pem", "hub/checkpoint-key.pem"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_private_key_readable_by_others_is_refused(exchange: Path, file: str, mode: int) -> None:
    os.chmod(exchange / file, mode)
    line = assert_one_line_refusal(serve(exchange / "hub.toml"), str(exchange / file))
    assert f"chmod 600 {exchange / file}" in line
    assert f"{mode:04o}" in line
    assert written(exchange) == []


def test_a_key_file_that_is_not_a_key_is_named(exchange: Path) -> None:
    (exchange / "hub" / "checkpoint-key.pem").write_text("not a key\n")
    assert_one_line_refusal(serve(exchange / "hub.toml"), "checkpoint-key.pem", "[log]")
    assert written(exchange) == []


def test_a_tls_key_of_another_certificate_is_refused(exchange: Path) -> None:
    shutil.copy(exchange / "hub" / "ca-key.pem", exchange / "hub" / "tls-key.pem")
    assert_one_line_refusal(serve(exchange / "hub.toml"), "does not belong to the certificate")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def postgres_url(*, user: str = "postgres", password: str = "", port: int = 5432,
                 database: str = "postgres", query: str = "") -> str:
    host = POSTGRES_ADMIN_URL.rsplit("@", 1)[1].split("/", 1)[0].split(":", 1)[0]
    secret = f":{password}" if password else ""
    return f"postgresql+psycopg://{user}{secret}@{host}:{port}/{database}{query}"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("url", "why"),
    [
        (lambda port: postgres_url(password="s3cret-pw", port=port), "connection refused"),
        (lambda _: postgres_url(user="no_such_role_here"), "authentication failed"),
        (lambda _: postgres_url(database="no_such_database_here"), "does not exist"),
    ],
    ids=["refused", "authentication", "missing database"],
)
def test_a_database_that_cannot_be_used_is_one_line_without_its_password(
    exchange: Path, dead_hub: str, url: Callable[[int], str], why: str
) -> None:
    port = int(dead_hub.rpartition(":")[2])
    line = assert_one_line_refusal(serve(exchange / "hub.toml", "--database", url(port)), why)
    assert "database postgresql+psycopg://" in line
    assert "s3cret-pw" not in line


def test_a_database_that_does_not_answer_times_out_in_one_line(
    exchange: Path, silent_server: int
) -> None:
    url = postgres_url(port=silent_server, query="?connect_timeout=1")
    assert_one_line_refusal(serve(exchange / "hub.toml", "--database", url), "no answer")


def test_an_sqlite_database_in_a_missing_directory_is_named(exchange: Path) -> None:
    missing = exchange / "nowhere" / "hub.db"
    assert_one_line_refusal(
        serve(exchange / "hub.toml", "--database", f"sqlite:///{missing}"),
        str(missing),
        "does not exist",
    )
    assert not missing.parent.exists()


def test_an_admin_command_with_json_reports_the_database_error_as_json(
    exchange: Path, dead_hub: str
) -> None:
    url = postgres_url(password="s3cret-pw", port=int(dead_hub.rpartition(":")[2]))
    result = subprocess.run(
        [HUB, "agency", "list", "--config", str(exchange / "hub.toml"), "--database", url, "--json"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert (error["error"], error["reason"]) == ("ConfigurationError", "DATABASE_UNAVAILABLE")
    assert "connection refused" in error["message"]
    assert "s3cret-pw" not in result.stderr


def test_a_second_hub_on_the_same_address_is_refused(
    exchange: Path, tmp_path: Path, running: Callable[..., RunningHub]
) -> None:
    first = running(exchange / "hub.toml", "--listen", "127.0.0.1:0")
    other = tmp_path / "other.db"  # its own database: only the address is shared
    result = subprocess.run(
        [HUB, "serve", "--config", str(exchange / "hub.toml"), "--listen", first.address,
         "--database", f"sqlite:///{other}"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert_one_line_refusal(result, first.address, "already in use")
    assert not other.exists()
    assert first.process.poll() is None  # the first hub serves on


def test_a_second_hub_on_the_same_sqlite_database_is_refused(
    exchange: Path, running: Callable[..., RunningHub]
) -> None:
    first = running(exchange / "hub.toml", "--listen", "127.0.0.1:0")
    result = serve(exchange / "hub.toml")
    assert_one_line_refusal(result, str(exchange / "hub.db"), "already in use")
    assert first.process.poll() is None


def test_a_stopped_hub_leaves_its_database_free_for_the_next(
    exchange: Path, running: Callable[..., RunningHub]
) -> None:
    running(exchange / "hub.toml", "--listen", "127.0.0.1:0").stop()
    running(exchange / "hub.toml", "--listen", "127.0.0.1:0")


@pytest.mark.postgres
def test_replicas_on_one_postgresql_database_may_run_together(
    exchange: Path, running: Callable[..., RunningHub]
) -> None:
    for url in _postgres_database():
        first = running(exchange / "hub.toml", "--listen", "127.0.0.1:0", "--database", url)
        second = running(exchange / "hub.toml", "--listen", "127.0.0.1:0", "--database", url)
        assert first.address != second.address
        for hub in (first, second):
            hub.stop()
