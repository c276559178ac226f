"""Every query the hub runs on the publish, read, feed and proof paths uses an index.

The statements are not listed by hand: the test drives a real hub (publish, open, list, feed
page and stream, inclusion and consistency proofs), records every ``SELECT`` the hub's engine
sends with its parameters, and asks the database for each one's plan — SQLite's
``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN`` with sequential scans priced out (on tables
this small the planner would otherwise prefer them, index or not). A plan that reads a whole
table of alerts, items, grants, feed events or log entries fails the test, so a full scan
cannot come back unnoticed when a query changes. Tables of one row or one row per agency may
be scanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import event

from exchange.statements.sealing import summary_item
from exchange.v1 import alerts_pb2, audit_pb2, audit_pb2_grpc, payloads_pb2
from tests.integration.agency import TestAgency, note_item

SMALL_TABLES = frozenset(
    {"log_head", "log_tree_head", "feed_heads", "agencies", "agency_keys", "alembic_version"}
)
"""One row, or one row per agency: a scan of these costs nothing at any log size."""


@pytest.fixture
def recorded(hub: object) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements (driver SQL and parameters) the hub runs while the test runs."""
    statements: list[tuple[str, Any]] = []
    engine = hub.db.engine  # type: ignore[attr-defined]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "pg_notify" not in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


def _drive(hub: object, exchange_dir: Path) -> None:
    port = hub.port  # type: ignore[attr-defined]
    a = TestAgency(exchange_dir, "agency-a", port)
    b = TestAgency(exchange_dir, "agency-b", port)
    try:
        items = [note_item("note-1", "container MSCU1234565", ["agency-b"])]
        summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
        for _ in range(3):
            sealed = a.seal([summary_item(summary, items), *items])
            receipt = a.alerts.Publish(sealed.request, timeout=10)
        b.open(sealed.manifest.alert_id, "agency-a")
        b.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
        b.alerts.ListEvents(alerts_pb2.ListEventsRequest(after=1), timeout=10)
        stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=1), timeout=30)
        for response in stream:
            if response.HasField("heartbeat"):
                break
        stream.cancel()
        audit = audit_pb2_grpc.AuditServiceStub(b.channel)
        audit.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(index=receipt.log_index), timeout=10
        )
        with pytest.raises(grpc.RpcError) as unknown:  # the lookup by leaf hash runs first
            audit.GetInclusionProof(
                audit_pb2.GetInclusionProofRequest(leaf_hash=b"\0" * 32), timeout=10
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        size = audit.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=10).size
        audit.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(from_size=1, to_size=size), timeout=10
        )
        audit.GetLeaves(audit_pb2.GetLeavesRequest(start=0, end=size), timeout=10)
    finally:
        a.close()
        b.close()


def _full_scans(connection: Any, statement: str, parameters: Any) -> list[str]:
    """The tables a statement's plan reads in full (small tables left out)."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        scans = []
        for row in rows:
            detail = str(row[-1])
            if detail.startswith("SCAN ") and "CONSTANT ROW" not in detail:
                table = detail.split()[1]
                if table not in SMALL_TABLES and not _bounded_scan(detail):
                    scans.append(detail)
        return scans
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
    return [
        str(row[0]).strip()
        for row in rows
        if "Seq Scan on " in str(row[0])
        and str(row[0]).split("Seq Scan on ")[1].split()[0] not in SMALL_TABLES
    ]


def _bounded_scan(detail: str) -> bool:
    """SQLite's primary-key walk for ``ORDER BY pk DESC LIMIT 1`` (the latest checkpoint)."""
    return detail.startswith("SCAN checkpoints")


def test_no_query_of_the_hub_reads_a_whole_table(
    hub: object, exchange_dir: Path, recorded: list[tuple[str, Any]]
) -> None:
    _drive(hub, exchange_dir)
    distinct = {statement: parameters for statement, parameters in recorded}
    assert len(distinct) > 20  # the workflow above really ran through the hub's queries
    engine = hub.db.engine  # type: ignore[attr-defined]
    failures = []
    with engine.connect() as connection, connection.begin():
        for statement, parameters in distinct.items():
            scans = _full_scans(connection, statement, parameters)
            if scans:
                failures.append(f"{' '.join(statement.split())[:300]}\n    -> {scans}")
    assert not failures, "full scans:\n" + "\n".join(failures)
