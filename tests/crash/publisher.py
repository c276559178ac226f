"""One publishing process of the crash tests: ``python -m tests.crash.publisher PROFILE HUB N OUT``.

Publishes ``N`` alerts to the agency ``recipient`` with the client library (which saves each
sealed request before sending it and retries it with the same bytes), and appends one JSON line
per outcome to ``OUT``, flushed to disk before the next publish: ``{"tried": tag}`` before the
call, ``{"acknowledged": alert_id, "tag": tag}`` once the library returned a receipt,
``{"failed": tag, "error": ...}`` when it gave up. At the end it sends what the outbox still holds
(:meth:`Client.flush_outbox`) until the hub takes it, logging those receipts as acknowledged
too, so every publish tried ends acknowledged unless the hub stays away for a minute.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from exchange_client import Client, Draft, ExchangeError, Profile

FLUSH_DEADLINE_SECONDS = 60.0


def draft(tag: str) -> Draft:
    return Draft.from_dict(
        {
            "kind": "GENERAL",
            "title": f"crash test {tag}",
            "items": [
                {
                    "id": "note",
                    "policy": {"audience": ["recipient"], "release": "IMMEDIATE", "tlp": "AMBER"},
                    "note": {"text": f"alert {tag}", "language": "en"},
                }
            ],
        }
    )


def record(out: TextIO, **fields: Any) -> None:
    out.write(json.dumps(fields) + "\n")
    out.flush()
    os.fsync(out.fileno())


def main(profile_dir: str, hub: str, count: int, out_path: str) -> None:
    profile = Profile.load(Path(profile_dir))
    profile = dataclasses.replace(profile, state_dir=Path(out_path).with_suffix(".state"))
    name = Path(profile_dir).name
    with open(out_path, "a", encoding="utf-8") as out, Client(profile, hub=hub) as client:
        for index in range(count):
            tag = f"{name}-{index}"
            record(out, tried=tag)
            try:
                receipt = client.publish(draft(tag))
            except ExchangeError as e:
                record(out, failed=tag, error=f"{type(e).__name__}: {e.message}")
                continue
            record(out, acknowledged=receipt.alert_id, tag=tag)
        deadline = time.monotonic() + FLUSH_DEADLINE_SECONDS
        while True:
            try:
                for receipt in client.flush_outbox():
                    record(out, acknowledged=receipt.alert_id, tag="outbox")
                break
            except ExchangeError as e:
                if time.monotonic() > deadline:
                    record(out, failed="outbox", error=f"{type(e).__name__}: {e.message}")
                    break
                time.sleep(0.5)
        record(out, done=name)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
