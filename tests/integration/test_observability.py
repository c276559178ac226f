"""What an operations team watches: Prometheus metrics scraped over HTTP, one JSON log line per
call with a request id the client's errors name, and a health service that follows the database.

The alert published here carries a marker string in every field it has; neither a scrape nor the
hub's log may show a marker or the alert's id.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from exchange.hub.app import Hub
from exchange.hub.config import HubConfig
from exchange.hub.log_format import JsonFormatter
from exchange_client import Client, Draft, NotFoundError, Profile
from tests.conftest import FrozenClock, _postgres_database
from tests.integration.tcp_proxy import TcpProxy

MARKER = "zqmarker7141"
HUB_CLI = str(Path(sys.executable).parent / "exchange-hub")

MARKED_DRAFT = {
    "kind": "SHIPMENT",
    "grading": {"source": "B", "information": "2"},
    "title": f"title {MARKER}",
    "items": [
        {
            "id": f"note-{MARKER}",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "note": {"text": f"note {MARKER}", "language": "en"},
        },
        {
            "id": f"ship-{MARKER}",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED",
                       "handling": ["H2"]},
            "shipment": {
                "declared_description": f"cleaning agent {MARKER}",
                "suspected_description": f"4-piperidone {MARKER}",
                "carrier": f"carrier {MARKER}",
                "chemicals": [{"name": f"4-piperidone {MARKER}", "cas_rn": "41661-47-6"}],
                "containers": ["CSQU3054383"],
                "origin": "CNSHA",
                "destination": "MXZLO",
                "quantity": {"value": "1200", "unit": "kg"},
            },
        },
    ],
}


@pytest.fixture
def hub_with_ports(
    exchange_dir: Path, database_url: str, clock: FrozenClock, tmp_path: Path
) -> Iterator[Hub]:
    config = dataclasses.replace(
        HubConfig.from_file(exchange_dir / "hub.toml").with_overrides(
            database_url=database_url,
            listen="127.0.0.1:0",
            metrics_listen="127.0.0.1:0",
            health_listen="127.0.0.1:0",
        ),
        heartbeat_interval_seconds=0.2,
        log_state_file=tmp_path / "log-state.json",
    )
    hub = Hub(config, clock=clock)
    hub.prepare()
    hub.start()
    yield hub
    hub.stop(grace=0)


@pytest.fixture
def clients(
    hub_with_ports: Hub, exchange_dir: Path, tmp_path: Path, clock: FrozenClock
) -> Iterator[Callable[[str], Client]]:
    opened: list[Client] = []

    def client_for(agency: str) -> Client:
        profile = dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
        )
        client = Client(profile, hub=f"127.0.0.1:{hub_with_ports.port}", clock=clock)
        opened.append(client)
        return client

    yield client_for
    for client in opened:
        client.close()


@pytest.fixture
def hub_log() -> Iterator[io.StringIO]:
    """Every log record of the process, as the hub's JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def scrape(hub: Hub) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.metrics_port}/metrics", timeout=10) as r:
        return r.read().decode("utf-8")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_as_publishes_happen_and_no_label_names_content(
    hub_with_ports: Hub, clients: Callable[[str], Client]
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    before = scrape(hub_with_ports)

    receipt = a.publish(Draft.from_dict(MARKED_DRAFT))
    b.events()  # the alert reaches agency-b by polling
    with pytest.raises(NotFoundError):  # agency-c may not see it: a refusal with a reason
        c.open(receipt.alert_id, originator="agency-a")
    after = scrape(hub_with_ports)

    assert value(after, "exchange_publishes_total") == value(before, "exchange_publishes_total") + 1
    publish_ok = {"method": "AlertService/Publish", "code": "OK"}
    assert value(after, "exchange_rpcs_total", **publish_ok) == (
        value(before, "exchange_rpcs_total", **publish_ok) + 1
    )
    assert value(
        after, "exchange_rpc_duration_seconds_count", method="AlertService/Publish"
    ) == value(before, "exchange_rpc_duration_seconds_count", method="AlertService/Publish") + 1
    assert value(after, "exchange_group_commit_batch_size_count") >= (
        value(before, "exchange_group_commit_batch_size_count") + 1
    )
    assert value(after, "exchange_feed_events_delivered_total", via="poll") >= (
        value(before, "exchange_feed_events_delivered_total", via="poll") + 1
    )
    refused = [
        (name, dict(labels), count)
        for (name, labels), count in samples(after).items()
        if name == "exchange_refusals_total"
    ]
    assert refused and all(labels["reason"].isupper() for _, labels, _ in refused)
    assert value(after, "exchange_log_size") > value(before, "exchange_log_size")
    assert value(after, "exchange_database_up") == 1
    assert "exchange_seconds_since_last_checkpoint" in after
    assert "exchange_pending_release_requests" in after
    assert "exchange_open_feed_streams" in after

    for forbidden in (MARKER, receipt.alert_id, "agency-a", "agency-b", "agency-c"):
        assert forbidden not in after


def test_one_json_line_per_call_with_request_id_and_never_content(
    hub_with_ports: Hub, clients: Callable[[str], Client], hub_log: io.StringIO
) -> None:
    a, c = clients("agency-a"), clients("agency-c")
    receipt = a.publish(Draft.from_dict(MARKED_DRAFT))
    with pytest.raises(NotFoundError) as refused:
        c.open(receipt.alert_id, originator="agency-a")

    text = hub_log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    calls = [line for line in lines if line["event"] == "rpc"]
    publish = next(line for line in calls if line["method"] == "AlertService/Publish")
    assert publish["agency"] == "agency-a" and publish["status"] == "OK"
    assert publish["level"] == "info" and publish["time"].endswith("+00:00")
    assert isinstance(publish["duration_ms"], float) and publish["duration_ms"] >= 0
    assert len(publish["request_id"]) == 32

    # The refused call's request id is in the client's error and on the hub's log line.
    message = str(refused.value)
    request_id = message.rpartition("(request id ")[2].rstrip(")")
    assert request_id and request_id in message
    line = next(line for line in calls if line["request_id"] == request_id)
    assert line["agency"] == "agency-c" and line["status"] == "NOT_FOUND"
    assert line["reason"] and line["reason"].isupper()

    assert MARKER not in text
    assert receipt.alert_id not in text


def test_repeated_calls_of_several_agencies_each_count_and_log_as_their_own(
    hub_with_ports: Hub, clients: Callable[[str], Client], hub_log: io.StringIO
) -> None:
    """The hub builds each method's wrapped handler and labelled metrics once: the calls after
    the first still count under their own code, and each is logged as the agency it came from
    (no identity kept over from the call before)."""
    a, c = clients("agency-a"), clients("agency-c")
    before = scrape(hub_with_ports)
    receipts = [a.publish(Draft.from_dict(MARKED_DRAFT)) for _ in range(2)]
    for receipt in receipts:
        with pytest.raises(NotFoundError):
            c.open(receipt.alert_id, originator="agency-a")
        a.open(receipt.alert_id, originator="agency-a")
    after = scrape(hub_with_ports)

    publish_ok = {"method": "AlertService/Publish", "code": "OK"}
    assert value(after, "exchange_rpcs_total", **publish_ok) == (
        value(before, "exchange_rpcs_total", **publish_ok) + 2
    )
    get_refused = {"method": "AlertService/GetAlert", "code": "NOT_FOUND"}
    assert value(after, "exchange_rpcs_total", **get_refused) == (
        value(before, "exchange_rpcs_total", **get_refused) + 2
    )
    get_ok = {"method": "AlertService/GetAlert", "code": "OK"}
    assert value(after, "exchange_rpcs_total", **get_ok) == (
        value(before, "exchange_rpcs_total", **get_ok) + 2
    )
    assert value(after, "exchange_publishes_total") == value(before, "exchange_publishes_total") + 2

    calls = [json.loads(line) for line in hub_log.getvalue().splitlines()]
    gets = [
        (line["agency"], line["status"])
        for line in calls
        if line["event"] == "rpc" and line["method"] == "AlertService/GetAlert"
    ]
    assert gets == [("agency-c", "NOT_FOUND"), ("agency-a", "OK")] * 2
    assert len({line["request_id"] for line in calls if line["event"] == "rpc"}) == len(
        [line for line in calls if line["event"] == "rpc"]
    )


def health_exit(port: int) -> tuple[int, str]:
    done = subprocess.run(
        [HUB_CLI, "health", "--address", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done.returncode, done.stdout.strip()


def test_health_port_answers_serving_and_the_cli_exits_0(hub_with_ports: Hub) -> None:
    assert hub_with_ports.health_port is not None
    assert health_exit(hub_with_ports.health_port) == (0, "SERVING")


@pytest.mark.postgres
def test_a_hub_whose_database_is_cut_off_is_not_serving_until_it_is_back(
    exchange_dir: Path, clock: FrozenClock, tmp_path: Path
) -> None:
    """The database sits behind a TCP forwarder the test cuts: the shared server never stops."""
    databases = _postgres_database()
    url = make_url(next(databases))
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    config = dataclasses.replace(
        HubConfig.from_file(exchange_dir / "hub.toml").with_overrides(
            database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(False),
            listen="127.0.0.1:0",
            health_listen="127.0.0.1:0",
        ),
        log_state_file=tmp_path / "log-state.json",
    )
    hub = Hub(config, clock=clock)
    try:
        hub.prepare()
        hub.start()
        assert hub.health_port is not None
        assert health_exit(hub.health_port) == (0, "SERVING")

        proxy.cut()
        assert hub.probe_database() is False
        assert health_exit(hub.health_port) == (1, "NOT_SERVING")

        proxy.restore()
        assert hub.probe_database() is True
        assert health_exit(hub.health_port) == (0, "SERVING")
    finally:
        hub.stop(grace=0)
        proxy.cut()
        databases.close()


def test_health_reads_the_port_from_the_config_and_says_when_none_is_set(
    hub_with_ports: Hub, exchange_dir: Path, tmp_path: Path
) -> None:
    config = dataclasses.replace(
        hub_with_ports.config, health_listen=f"0.0.0.0:{hub_with_ports.health_port}"
    )
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml())
    done = subprocess.run([HUB_CLI, "health", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING")  # 0.0.0.0: asks loopback

    done = subprocess.run([HUB_CLI, "health", "--config", str(exchange_dir / "hub.toml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "health_listen" in done.stderr and "Traceback" not in done.stderr
