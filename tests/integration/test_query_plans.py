"""Every query the hub runs on the publish, read, feed and proof paths uses an index, and
reads no more rows on a full store than on an empty one.

The statements are not listed by hand: the test drives a real hub (publish, open, list, feed
page and stream, inclusion and consistency proofs, leaves), records every ``SELECT`` the hub's
engine sends with its parameters, and asks the database for each one's plan — SQLite's
``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN`` with sequential scans priced out (on tables
this small the planner would otherwise prefer them, index or not). A plan that reads a whole
table of alerts, items, grants, feed events or log entries fails the test, so a full scan
cannot come back unnoticed when a query changes. Tables of one row or one row per agency may
be scanned.

An index is not enough: ``id IN (SELECT alert_pk FROM item_audience WHERE agency_id = ?)``
uses one and still reads every audience row of the agency. So the hub runs on a store first
filled (through its tables, as ``bench/scale_bench.py`` fills it) with a few thousand alerts;
on SQLite a plan that materialises a subquery's list or sorts a limited query's candidates in a
temporary tree fails, and on PostgreSQL every statement is run under ``EXPLAIN ANALYZE`` and
fails when a plan node handles more rows than the largest page the hub serves (with the plans
it prefers for tables this small — whole scans, hash and bitmap joins — priced out).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from sqlalchemy import event

from exchange.hub import audit_service
from exchange.statements.sealing import summary_item
from exchange.v1 import alerts_pb2, audit_pb2, audit_pb2_grpc, payloads_pb2
from tests.conftest import AGENCIES, FrozenClock
from tests.integration.agency import TestAgency, note_item

SMALL_TABLES = frozenset(
    {"log_head", "log_tree_head", "feed_heads", "agencies", "agency_keys", "alembic_version"}
)
"""One row, or one row per agency: a scan of these costs nothing at any log size."""

FILLED_ALERTS = 4_000
"""Alerts stored before the hub starts: agency-b is the recipient of a third of them, so its
audience rows (4,000) and feed events (1,333) outnumber the largest page the hub serves."""

MAX_ROWS_PER_NODE = 1_000
"""The largest page the hub serves here (``GetLeaves``' is lowered to it, so that a read of the
whole log stands out in this store); no plan node may handle more rows."""

ROOT = Path(__file__).resolve().parents[2]


def _scale_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale_bench", ROOT / "bench" / "scale_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scale_bench", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def filled_hub(
    hub_factory: Callable[..., object],
    exchange_dir: Path,
    database_url: str,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> object:
    """A hub started on a store holding ``FILLED_ALERTS`` alerts among the three agencies."""
    monkeypatch.setattr(audit_service, "MAX_LEAVES_PER_PAGE", MAX_ROWS_PER_NODE)
    from exchange.config.profile import load_profile
    from exchange.hub.app import import_registry
    from exchange.store.db import Database

    db = Database.from_url(database_url)
    try:
        db.migrate()
        import_registry(db, exchange_dir / "registry", now=clock())
        profiles = {a: load_profile(exchange_dir / "agencies" / a) for a in AGENCIES}
        _scale_bench().fill_store(
            db,
            profiles,
            FILLED_ALERTS,
            start=clock() - timedelta(hours=2),
            agencies=AGENCIES,
        )
    finally:
        db.dispose()
    return hub_factory()


@pytest.fixture
def recorded(filled_hub: object) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements (driver SQL and parameters) the hub runs while the test runs."""
    statements: list[tuple[str, Any]] = []
    engine = filled_hub.db.engine  # type: ignore[attr-defined]

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
        b.alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id="fill-00000003"), timeout=10)
        b.alerts.GetAlert(
            alerts_pb2.GetAlertRequest(alert_id="fill-00000000", originator="agency-a"), timeout=10
        )
        b.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
        b.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(include_own=True), timeout=10)
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
        audit.GetEntryBodies(audit_pb2.GetEntryBodiesRequest(indices=range(1000)), timeout=10)
    finally:
        a.close()
        b.close()


SQLITE_UNBOUNDED = ("LIST SUBQUERY", "MATERIALIZE", "USE TEMP B-TREE")
"""SQLite plan steps that gather every candidate row before a ``LIMIT`` applies: a subquery's
whole result as a list or table, or a sort of all candidates."""


def _sqlite_problems(connection: Any, statement: str, parameters: Any) -> list[str]:
    rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    problems = []
    limited = " LIMIT " in statement.upper()
    for row in rows:
        detail = str(row[-1])
        if detail.startswith("SCAN ") and "CONSTANT ROW" not in detail:
            table = detail.split()[1]
            if table not in SMALL_TABLES and not _bounded_scan(detail):
                problems.append(detail)
        elif limited and detail.startswith(SQLITE_UNBOUNDED):
            problems.append(detail)
    return problems


SMALL_TABLE_PLANS = ("hashjoin", "mergejoin", "bitmapscan")
"""Plans PostgreSQL rightly prefers for a table of a few thousand rows (read it whole, hash it)
and not for a million: priced out, so that what is counted is the plan a full store gets."""


def _postgres_problems(connection: Any, statement: str, parameters: Any) -> list[str]:
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
    problems = [
        str(row[0]).strip()
        for row in rows
        if "Seq Scan on " in str(row[0])
        and str(row[0]).split("Seq Scan on ")[1].split()[0] not in SMALL_TABLES
    ]
    for plan_kind in SMALL_TABLE_PLANS:
        connection.exec_driver_sql(f"SET LOCAL enable_{plan_kind} = off")
    connection.exec_driver_sql("SAVEPOINT analysed")  # ANALYZE runs it: undo any side effect
    plan = connection.exec_driver_sql(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
    ).scalar_one()
    connection.exec_driver_sql("ROLLBACK TO SAVEPOINT analysed")
    document = plan if isinstance(plan, list) else json.loads(plan)
    for node in _nodes(document[0]["Plan"]):
        handled = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node[
            "Actual Loops"
        ]
        table = node.get("Relation Name", "")
        if handled > MAX_ROWS_PER_NODE and table not in SMALL_TABLES:
            problems.append(f"{node['Node Type']} {table} handled {handled:.0f} rows")
    return problems


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _bounded_scan(detail: str) -> bool:
    """SQLite's primary-key walk for ``ORDER BY pk DESC LIMIT 1`` (the latest checkpoint)."""
    return detail.startswith("SCAN checkpoints")


def test_no_query_of_the_hub_reads_a_whole_table(
    filled_hub: object, exchange_dir: Path, recorded: list[tuple[str, Any]]
) -> None:
    _drive(filled_hub, exchange_dir)
    distinct = {statement: parameters for statement, parameters in recorded}
    assert len(distinct) > 20  # the workflow above really ran through the hub's queries
    engine = filled_hub.db.engine  # type: ignore[attr-defined]
    problems = _sqlite_problems if engine.dialect.name == "sqlite" else _postgres_problems
    failures = []
    with engine.connect() as connection, connection.begin():
        for statement, parameters in distinct.items():
            found = problems(connection, statement, parameters)
            if found:
                failures.append(f"{' '.join(statement.split())[:300]}\n    -> {found}")
    assert not failures, "unbounded reads:\n" + "\n".join(failures)
