"""Private matching at scale: indexing throughput and the hub's time for a 1,000-selector query.

One run, on loopback with mutual TLS: an ``exchange-hub init`` directory made for the run, the
hub in its own process (``exchange-hub serve``) on a temporary SQLite file unless
``--database`` names another (give it an empty database), and agency-b's and agency-a's clients
(``exchange_client``) in this one.

1. **Indexing**: a CSV of ``--selectors`` distinct valid selectors (containers, IBANs, CAS RNs,
   IMO numbers and phone numbers, generated with their check digits) is indexed by agency-b for
   agency-a exactly as ``exchange match index add`` does: read and canonicalise every row
   (``read_index_file``), blind, stream the tokens to the hub (one all-or-nothing update), write
   the local index.  Reported: selectors per second over the whole, and each phase's time.
2. **Queries**: agency-a asks ``--queries`` times about 1,000 selectors, half of them in
   agency-b's index.  Reported: the client's round trip, and the hub's own work for the same
   queries, measured afterwards on the same database with the hub stopped (what
   ``MatchService.Query`` runs: parse, checks, token lookups, budget, log entries, commit, the
   response encoded), p50 and p95.

Run from the repository root::

    .venv/bin/python bench/match_bench.py --selectors 1000000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

HOLDER, QUERIER = "agency-b", "agency-a"
BIN = Path(sys.executable).parent
QUERY_SIZE = 1000

_ISO6346 = {c: n for n, c in enumerate("0123456789A BCDEFGHIJK LMNOPQRSTU VWXYZ") if c != " "}


def _container(owner: str, serial: int) -> str:
    body = f"{owner}U{serial:06d}"
    total = sum(_ISO6346[c] * 2**i for i, c in enumerate(body))
    return f"container,{body}{total % 11 % 10}"


def _iban(serial: int) -> str:
    bban = f"WEST{serial // 10**8 % 10**6:06d}{serial % 10**8:08d}"
    digits = "".join(str(int(c, 36)) for c in bban + "GB00")
    return f"iban,GB{98 - int(digits) % 97:02d}{bban}"


def _cas(serial: int) -> str:
    body = f"{1000 + serial:d}"
    check = sum(w * int(d) for w, d in enumerate(reversed(body), 1)) % 10
    return f"cas,{body[:-2]}-{body[-2:]}-{check}"


def _imo(serial: int) -> str:
    body = f"{100000 + serial % 900000:06d}"
    check = sum(int(d) * (7 - i) for i, d in enumerate(body)) % 10
    return f"imo,{body}{check}"


def _phone(serial: int) -> str:
    return f"phone,+86138{serial % 10**8:08d}"


def selector_rows(count: int, *, start: int = 0) -> Iterator[str]:
    """``count`` distinct valid rows: 30 % containers, 30 % IBANs, 20 % CAS, 10 % IMO, 10 %
    phones (IMO numbers and phones cycle through their ranges only well past 10^6)."""
    owners = ["MSC", "CSQ", "MAE", "OOL", "HLX", "TGH", "CMA", "EGH", "SEG", "TCL"]
    for n in range(start, start + count):
        bucket, serial = n % 10, n // 10
        if bucket < 3:
            yield _container(owners[(serial // 10**6 + bucket) % 10], (serial * 3 + bucket) % 10**6)
        elif bucket < 6:
            yield _iban(serial * 3 + bucket - 3)
        elif bucket < 8:
            yield _cas(serial * 2 + bucket - 6)
        elif bucket == 8:
            yield _imo(serial)
        else:
            yield _phone(serial)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def hub_process(data: Path, database: str) -> Iterator[None]:
    """``exchange-hub serve`` of the run's directory, until the block ends."""
    hub = subprocess.Popen(
        [str(BIN / "exchange-hub"), "serve", "--config", str(data / "hub.toml"),
         "--database", database],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert hub.stdout is not None
    line = hub.stdout.readline()
    if not line.startswith("listening on"):
        raise SystemExit(f"the hub did not start: {line}{hub.stderr.read() if hub.stderr else ''}")
    try:
        yield
    finally:
        hub.terminate()
        hub.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--selectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file")
    options = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from exchange.hub.init import init_exchange
    from exchange.match.requests import check_query
    from exchange.match.selectors import parse_selector
    from exchange.store import match as match_store
    from exchange.store.db import Database
    from exchange.v1 import match_pb2
    from exchange_client import Client, Profile
    from exchange_client._internal.matching import read_index

    with tempfile.TemporaryDirectory(prefix="match-bench-") as temp:
        root = Path(temp)
        data = root / "exchange"
        port = free_port()
        init_exchange(data, ["agency-a", "agency-b"], listen=f"127.0.0.1:{port}")
        database = options.database or f"sqlite:///{root / 'hub.db'}"
        csv = root / "index.csv"
        with csv.open("w") as out:
            out.write("kind,value\n")
            for row in selector_rows(options.selectors):
                out.write(row + "\n")
        half = QUERY_SIZE // 2
        unknown = [
            parse_selector(line.replace(",", ":", 1))
            for line in selector_rows(half * options.queries, start=options.selectors)
        ]

        with hub_process(data, database):

            def client(agency: str) -> Client:
                profile = dataclasses.replace(
                    Profile.load(data / "agencies" / agency), state_dir=root / agency
                )
                return Client(profile, timeout=120)

            started = time.perf_counter()
            rows = read_index(csv)
            parsed = time.perf_counter()
            holder, querier = client(HOLDER), client(QUERIER)
            holder.matching.set_policy(default_daily_budget=10**9, budgets={})
            phases: dict[str, float] = {"keys and policy": time.perf_counter() - parsed}
            last: list[object] = [time.perf_counter(), ""]

            def progress(phase: str, done: int, total: int) -> None:
                if phase != last[1]:
                    now = time.perf_counter()
                    phases[str(last[1]) or "directory, de-duplication and index lookups"] = now - float(last[0])  # type: ignore[arg-type]
                    last[0], last[1] = now, phase

            change = holder.matching.add(rows, partners=[QUERIER], progress=progress)
            finished = time.perf_counter()
            phases[f"{last[1]}, the hub's commit and the local index"] = finished - float(last[0])  # type: ignore[arg-type]
            assert change.totals == {QUERIER: options.selectors}, change.totals

            known = [r.selector for r in rows[: half * options.queries]]
            round_trips: list[float] = []
            questions = []
            for q in range(options.queries):
                asked = known[q * half : (q + 1) * half] + unknown[q * half : (q + 1) * half]
                questions.append(asked)
                start = time.perf_counter()
                answers = querier.matching.query(HOLDER, asked)
                round_trips.append(time.perf_counter() - start)
                assert sum(r.hit for r in answers) == half
            key = querier.matching._keys([HOLDER], role="querier")[HOLDER]
            current = {
                HOLDER: key.pair.holder_key_id,
                QUERIER: key.pair.querier_key_id,
            }
            holder.close()
            querier.close()

        # The hub's own work for each query, on the same database with the hub stopped: the
        # servicer's check and store function in one write transaction, as MatchService.Query.
        db = Database.from_url(database)
        hub_seconds = []
        for number, asked in enumerate([questions[0], *questions]):
            request = match_pb2.QueryRequest(
                holder=HOLDER,
                holder_key_id=key.pair.holder_key_id,
                querier_key_id=key.pair.querier_key_id,
                tokens=b"".join(key.tokens(asked)),
            ).SerializeToString()
            start = time.perf_counter()
            parsed_request = match_pb2.QueryRequest.FromString(request)
            checked = check_query(parsed_request, caller=QUERIER, current_key_ids=current)
            with db.write() as connection:
                outcome = match_store.answer_query(connection, checked, now=datetime.now(UTC))
            match_pb2.QueryResponse(hits=outcome.hits).SerializeToString()
            if number:  # the first one opens the connection
                hub_seconds.append(time.perf_counter() - start)
            assert sum(outcome.hits) == half
        db.dispose()

    total = finished - started
    load = os.getloadavg()
    print(f"# match_bench {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at the end")
    print(f"database: {'SQLite' if database.startswith('sqlite') else 'PostgreSQL'}")
    print(f"indexing {options.selectors} selectors for one partner: {total:.1f} s, "
          f"{options.selectors / total:,.0f} selectors/s")
    print(f"  read and canonicalise: {parsed - started:.1f} s "
          f"({options.selectors / (parsed - started):,.0f}/s)")
    for phase, seconds in phases.items():
        print(f"  {phase}: {seconds:.1f} s")
    queries_hub = [s * 1000 for s in hub_seconds]
    trips = [s * 1000 for s in round_trips]
    print(f"query of {QUERY_SIZE} selectors ({options.queries} queries, half hits): hub "
          f"p50 {statistics.median(queries_hub):.1f} ms, p95 {percentile(queries_hub, 0.95):.1f} ms;"
          f" client round trip p50 {statistics.median(trips):.1f} ms, "
          f"p95 {percentile(trips, 0.95):.1f} ms")


if __name__ == "__main__":
    main()
