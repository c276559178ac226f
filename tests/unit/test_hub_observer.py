"""The call observer's request ids and the hub's log set-up, without a server."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from exchange.hub.log_format import configure_logging
from exchange.hub.observer import REQUEST_ID_METADATA, request_id_from


def test_new_request_ids_are_128_random_bits_and_never_repeat() -> None:
    ids = [request_id_from(()) for _ in range(1000)]  # many blocks of random bytes
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # Every hex digit shows up in every position over that many ids: no fixed part.
    for position in range(32):
        assert len({i[position] for i in ids}) == 16


def test_a_usable_caller_request_id_is_kept_and_an_unusable_one_replaced() -> None:
    assert request_id_from(((REQUEST_ID_METADATA, "abc-1.2:3"),)) == "abc-1.2:3"
    for bad in ("", "-starts-with-dash", "x" * 65, "with space", "ünï"):
        replaced = request_id_from(((REQUEST_ID_METADATA, bad),))
        assert replaced != bad and len(replaced) == 32


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    switches = (logging.logProcesses, logging.logThreads, logging.logMultiprocessing)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.logProcesses, logging.logThreads, logging.logMultiprocessing = switches


def test_the_hub_log_lines_are_whole_though_records_skip_process_and_thread(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    fields = {"method": "AlertService/Publish", "agency": "agency-a", "status": "OK",
              "duration_ms": 1.5, "request_id": "r1"}
    logging.getLogger("exchange.hub.calls").info("rpc", extra={"event": "rpc", "fields": fields})
    line = json.loads(stream.getvalue())
    assert line == {"time": line["time"], "level": "info", "logger": "exchange.hub.calls",
                    "event": "rpc", "message": "rpc", **fields}
    assert not (logging.logProcesses or logging.logThreads or logging.logMultiprocessing)
