#!/usr/bin/env python3
"""The quick-start demo: a hub on SQLite, three agencies, one alert that only agency-b may read,
with items held until agency-a releases them, a denied request and a revocation.

Runs the real command-line tools in subprocesses, exactly as an operator would, and prints a
transcript: each command shown is followed by its real output, a refusal the demo expects is
marked as expected, and the demo's own checks of what came back are lines starting with ``#``.  Everything lives in a throw-away directory that is deleted at the end (pass
``--keep`` to keep it).  Exits non-zero if any step does not behave as the exchange promises.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent

DRAFT = {
    "kind": "SHIPMENT",
    "grading": {"source": "B", "information": "2"},
    "title": "4-piperidone declared as industrial cleaning agent, Shanghai to Manzanillo",
    "operator": "op-7731",
    "items": [
        {
            "id": "shipment",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER",
                       "handling": ["H2"]},
            "shipment": {
                "declared_description": "industrial cleaning agent",
                "hs_code": "3402.90",
                "chemicals": [{"name": "4-piperidone", "cas_rn": "41661-47-6"}],
                "containers": ["CSQU3054383"],
                "origin": "CNSHA",
                "destination": "MXZLO",
                "quantity": {"value": "1200", "unit": "kg"},
            },
        },
        {
            "id": "analyst-note",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER+STRICT"},
            "note": {"text": "Consignee shares a phone number with a 2025 seizure.",
                     "language": "en"},
        },
        {
            "id": "bank-records",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED",
                       "handling": ["H1", "H2"]},
            "note": {"text": "Consignee paid USD 48,000 from IBAN GB82 WEST 1234 5698 7654 32.",
                     "language": "en"},
        },
        {
            "id": "source-note",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED"},
            "note": {"text": "Informant inside the freight forwarder.", "language": "en"},
        },
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Transcript:
    def __init__(self) -> None:
        self.step = 0

    def heading(self, text: str) -> None:
        self.step += 1
        print(f"\n\033[1m{self.step}. {text}\033[0m", flush=True)

    def run(self, *args: str, expect: int = 0, show: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command; with ``show``, print it and its real output (stdout, then stderr).

        Without ``show`` nothing is printed: the demo only reads the result to check it, and
        says what it checked in a ``#`` line of its own.
        """
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        if show:
            print(f"$ {shown}", flush=True)
        result = subprocess.run(
            [str(BIN / args[0]), *args[1:]], check=False, capture_output=True, text=True,
            env={**os.environ, "COLUMNS": "110", "NO_COLOR": "1"},
        )
        if show:
            for stream in (result.stdout, result.stderr):
                if stream.strip():
                    print("  " + stream.rstrip().replace("\n", "\n  "), flush=True)
            if expect != 0 and result.returncode == expect:
                print(f"  (refused, as expected: exit {expect})", flush=True)
        if result.returncode != expect:
            raise SystemExit(
                f"demo failed: `{shown}` exited {result.returncode}, expected {expect}"
            )
        return result

    def check(self, text: str) -> None:
        """A line of the demo's own, saying what it checked: not any command's output."""
        print(f"  # {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="exchange-demo-"))
    data = work / "exchange"
    port = free_port()
    t = Transcript()
    hub: subprocess.Popen[str] | None = None
    try:
        t.heading("Create an exchange: one CA and key set per agency, a hub, a public registry")
        t.run("exchange-hub", "init", str(data), "--agency", "agency-a", "--agency", "agency-b",
              "--agency", "agency-c", "--listen", f"127.0.0.1:{port}")

        t.heading("Start the hub on SQLite (mTLS on loopback)")
        print(f"$ exchange-hub serve --config {data / 'hub.toml'}")
        hub = subprocess.Popen(
            [str(BIN / "exchange-hub"), "serve", "--config", str(data / "hub.toml")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert hub.stdout is not None
        deadline = time.monotonic() + 60
        while True:
            line = hub.stdout.readline()
            if line:
                print("  " + line.rstrip(), flush=True)
            if line.startswith("listening on"):
                break
            if not line and hub.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo failed: the hub did not start")

        profile = {a: str(data / "agencies" / a) for a in ("agency-a", "agency-b", "agency-c")}
        draft = work / "shipment.json"
        draft.write_text(json.dumps(DRAFT, indent=2))

        t.heading("agency-a checks the partners' keys against their CA certificates")
        t.run("exchange", "--profile", profile["agency-a"], "agencies")

        t.heading("agency-a publishes a shipment alert; every item goes to agency-b only")
        published = t.run("exchange", "--profile", profile["agency-a"], "publish", str(draft),
                          "--json")
        receipt = json.loads(published.stdout)
        alert_id = receipt["alert_id"]

        t.heading("agency-b sees it in its inbox, verifies the signature and decrypts it")
        t.run("exchange", "--profile", profile["agency-b"], "inbox")
        t.run("exchange", "--profile", profile["agency-b"], "show", alert_id)
        shown = json.loads(t.run("exchange", "--profile", profile["agency-b"], "show", alert_id,
                                 "--json", show=False).stdout)
        statuses = {item["id"]: item["status"] for item in shown["items"]}
        expected = {"shipment": "VISIBLE", "analyst-note": "VISIBLE",
                    "bank-records": "WITHHELD", "source-note": "WITHHELD"}
        if statuses != expected:
            raise SystemExit(f"demo failed: agency-b saw {statuses}")
        t.check("show --json: " + ", ".join(f"{item} {status}" for item, status in statuses.items()))

        t.heading("agency-c sees nothing: no inbox entry, and the alert does not exist for it")
        inbox_c = json.loads(t.run("exchange", "--profile", profile["agency-c"], "inbox", "--json",
                                   show=False).stdout)
        t.run("exchange", "--profile", profile["agency-c"], "inbox")
        if inbox_c:
            raise SystemExit("demo failed: agency-c has alerts")
        t.check("inbox --json: no alert for agency-c")
        t.run("exchange", "--profile", profile["agency-c"], "show", alert_id, expect=1)
        t.run("exchange", "--profile", profile["agency-c"], "request", alert_id, "bank-records",
              "--reason", "curious", expect=1)

        t.heading("agency-b asks for the held bank records; agency-a approves")
        made = json.loads(t.run("exchange", "--profile", profile["agency-b"], "request", alert_id,
                                "bank-records", "--reason", "asset freeze hearing on Monday",
                                "--json").stdout)
        t.run("exchange", "--profile", profile["agency-a"], "requests")
        t.run("exchange", "--profile", profile["agency-a"], "approve", made["request_id"])

        t.heading("agency-b now reads the bank records: agency-a wrapped the key for it")
        released = json.loads(t.run("exchange", "--profile", profile["agency-b"], "show",
                                    alert_id, "--json", show=False).stdout)
        bank = next(item for item in released["items"] if item["id"] == "bank-records")
        if bank["status"] != "VISIBLE":
            raise SystemExit(f"demo failed: bank-records is {bank['status']} after approval")
        t.check(f"show --json: bank-records {bank['status']}: {bank['payload']['note']['text']}")

        t.heading("agency-b asks for the informant note; agency-a denies, with a reason")
        asked = json.loads(t.run("exchange", "--profile", profile["agency-b"], "request", alert_id,
                                 "source-note", "--reason", "to corroborate", "--json").stdout)
        t.run("exchange", "--profile", profile["agency-a"], "deny", asked["request_id"],
              "--reason", "source protection")
        after = json.loads(t.run("exchange", "--profile", profile["agency-b"], "show", alert_id,
                                 "--json", show=False).stdout)
        note = next(item for item in after["items"] if item["id"] == "source-note")
        if note["status"] != "WITHHELD" or "source protection" not in note.get("detail", ""):
            raise SystemExit(f"demo failed: source-note is {note}")
        t.check(f"show --json: source-note {note['status']} ({note['detail']})")

        t.heading("agency-a revokes the analyst note; agency-b's client purges and acknowledges")
        t.run("exchange", "--profile", profile["agency-a"], "revoke", alert_id, "analyst-note",
              "--from", "agency-b", "--reason", "assessment withdrawn")
        revoked = json.loads(t.run("exchange", "--profile", profile["agency-b"], "show", alert_id,
                                   "--json", show=False).stdout)
        analyst = next(item for item in revoked["items"] if item["id"] == "analyst-note")
        t.check(f"show --json: agency-b sees analyst-note as {analyst['status']}")
        if analyst["status"] != "REVOKED":
            raise SystemExit("demo failed: the revoked item is still shown")
        records = json.loads(t.run("exchange", "--profile", profile["agency-a"], "receipts",
                                   alert_id, "--json", show=False).stdout)
        t.run("exchange", "--profile", profile["agency-a"], "receipts", alert_id)
        if not any(r["kind"] == "PURGE_ACK" and r["agency"] == "agency-b" for r in records):
            raise SystemExit("demo failed: no purge acknowledgement from agency-b")

        t.heading("agency-c still sees nothing of the alert")
        inbox_c = json.loads(t.run("exchange", "--profile", profile["agency-c"], "inbox",
                                   "--json", show=False).stdout)
        t.run("exchange", "--profile", profile["agency-c"], "inbox")
        if inbox_c:
            raise SystemExit("demo failed: agency-c has alerts")
        t.check("inbox --json: no alert for agency-c")

        cooperation_report(t, profile, work, alert_id)

        t.heading("Stop the hub")
        hub.terminate()
        hub.wait(timeout=30)
        hub = None
        print("\ndemo complete: the alert reached agency-b only, signed and end-to-end encrypted;"
              "\nheld items moved only when agency-a released them, and the revocation was"
              " acknowledged.")
        return 0
    finally:
        if hub is not None:
            hub.kill()
            hub.wait()
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def cooperation_report(
    t: Transcript, profile: dict[str, str], work: Path, alert_id: str
) -> None:
    """The demo's last act: agency-b reports an outcome, and agency-a prints the cooperation
    report of this exchange, computed from the log it verified, and signs it for agency-b."""
    t.heading("agency-b reports what came of the alert; agency-a reports on the cooperation")
    t.run("exchange", "--profile", profile["agency-b"], "feedback", alert_id,
          "--outcome", "SEIZED", "--note", "1.2 t seized at Manzanillo")
    t.run("exchange", "--profile", profile["agency-a"], "audit", "checkpoint", show=False)
    t.run("exchange", "--profile", profile["agency-a"], "report", "--partner", "agency-b")
    t.run("exchange", "--profile", profile["agency-a"], "report", "--format", "html",
          "--output", str(work / "report.html"), "--partner", "agency-b")
    summary = work / "cooperation-summary.json"
    t.run("exchange", "--profile", profile["agency-a"], "report", "--partner", "agency-b",
          "--sign", "--output", str(summary))
    verified = json.loads(t.run("exchange", "--profile", profile["agency-b"], "report", "verify",
                                str(summary), "--json", show=False).stdout)
    print(f"  agency-b verifies the signed summary: signed by {verified['agency']}, "
          f"checkpoint size {verified['checkpoint']['size']}")


if __name__ == "__main__":
    sys.exit(main())
