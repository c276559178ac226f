"""The one publish writer on SQLite and PostgreSQL: publishes stored in batches, one checkpoint
per batch covering them all, every receipt proven under it, and a bad publish among them
refused alone with its own error and nothing of it stored."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, text

from exchange.audit import merkle
from exchange.audit.leaves import LeafContents
from exchange.crypto.notes import NoteVerifier, open_checkpoint
from exchange.errors import ConflictError, InvalidInputError
from exchange.hub.app import Hub
from exchange.statements.publish import CheckedPublish, PublishLimits, check_publish
from exchange.statements.sealing import SealedAlert, summary_item
from exchange.store.errors import StorageError
from exchange.store.log import append_entry, lock_log
from exchange.store.publish_writer import BatchSigner, PublishWriter, Receipt
from exchange.store.schema import alerts, feed_events, log_entries, log_head
from exchange.v1 import alerts_pb2, payloads_pb2
from tests.integration.agency import TestAgency, note_item
from tests.integration.test_bad_input import bad_signature, error_reason

SUMMARY = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor shipment")
CONCURRENT_PUBLISHES = 16
QUEUE_WAIT_SECONDS = 120.0
"""How long the test waits for every publish to reach the writer: far beyond what that takes."""
POLL_SECONDS = 0.01


@pytest.fixture
def agency_a(hub: Hub, exchange_dir: Path) -> Iterator[TestAgency]:
    agency = TestAgency(exchange_dir, "agency-a", hub.port)  # type: ignore[arg-type]
    keys = agency.partner_keys()
    agency.partner_keys = lambda: keys  # type: ignore[method-assign]  # fetched once
    yield agency
    agency.close()


def sealed_alert(
    agency: TestAgency,
    text_: str = "container MSCU1234565",
    *,
    alert_id: str | None = None,
    version: int = 1,
    previous: bytes = b"",
) -> SealedAlert:
    items = [note_item("note-1", text_, ["agency-b"])]
    return agency.seal(
        [summary_item(SUMMARY, items), *items],
        alert_id=alert_id,
        version=version,
        previous_manifest_hash=previous,
    )


def log_key(agency: TestAgency) -> NoteVerifier:
    return NoteVerifier.from_string(agency.profile.checkpoint_verifier_key)


def assert_proven(
    verifier: NoteVerifier,
    log_index: int,
    leaf: bytes,
    note: str,
    hashes: list[bytes],
    tree_size: int,
) -> int:
    """The receipt's leaf is entry ``log_index`` under its signed checkpoint; returns the size."""
    opened = open_checkpoint(note, verifier).checkpoint
    assert opened.size == tree_size > log_index
    merkle.verify_inclusion(merkle.leaf_hash(leaf), log_index, tree_size, hashes, opened.root_hash)
    assert LeafContents.decode(leaf).entry_type == "alert_published"
    return opened.size


def batch_sizes(hub: Hub) -> tuple[float, float]:
    """How many batches the writer has written, and how many publishes they held."""
    registry = hub.metrics.registry
    name = "exchange_group_commit_batch_size"
    return (
        registry.get_sample_value(f"{name}_count") or 0.0,
        registry.get_sample_value(f"{name}_sum") or 0.0,
    )


def stored_counts(hub: Hub) -> tuple[int, int, list[int]]:
    """Alert rows, the log's size, and every stored log index in order."""
    with hub.db.read() as connection:
        alert_rows = connection.execute(select(func.count()).select_from(alerts)).scalar_one()
        size = connection.execute(select(log_head.c.size)).scalar_one()
        indexes = list(connection.execute(select(log_entries.c.idx).order_by(log_entries.c.idx)).scalars())
    return int(alert_rows), int(size), [int(i) for i in indexes]


def test_concurrent_publishes_share_a_batch_and_a_bad_one_is_refused_alone(
    hub: Hub, agency_a: TestAgency, exchange_dir: Path
) -> None:
    """Over real gRPC: publishes that queue while the log is locked are written as one batch
    under one checkpoint; each good one's receipt proves its leaf; the one naming a missing
    previous version and the one with a forged signature are refused with their own reasons
    and leave nothing, and the recipient's feed holds exactly the good ones, densely."""
    assert hub.publishes is not None
    good = [sealed_alert(agency_a, f"container {i}") for i in range(CONCURRENT_PUBLISHES - 2)]
    orphan = sealed_alert(agency_a, alert_id=str(uuid.uuid4()), version=2, previous=b"\x01" * 32)
    forged = bad_signature(agency_a)
    requests = [s.request for s in good] + [orphan.request, forged]
    answers: dict[int, alerts_pb2.PublishResponse | grpc.RpcError] = {}
    before_alerts, before_size, _ = stored_counts(hub)
    batches_before = batch_sizes(hub)

    def publish(position: int) -> None:
        try:
            answers[position] = agency_a.alerts.Publish(requests[position], timeout=120)
        except grpc.RpcError as error:
            answers[position] = error

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(requests))]
    with hub.db.write() as holding:
        lock_log(holding)  # the writer waits here with whatever it took first; the rest queue
        for thread in threads:
            thread.start()
        pause = threading.Event()  # never set: a pause between two looks at the writer
        for _ in range(int(QUEUE_WAIT_SECONDS / POLL_SECONDS)):
            if hub.publishes.in_flight == len(requests) - 1:  # all but the forged one
                break
            pause.wait(POLL_SECONDS)
    for thread in threads:
        thread.join(QUEUE_WAIT_SECONDS)

    forged_error, orphan_error = answers[len(requests) - 1], answers[len(requests) - 2]
    assert isinstance(forged_error, grpc.RpcError)
    assert forged_error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(orphan_error, grpc.RpcError)
    assert orphan_error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(orphan_error) == "NO_PREVIOUS_VERSION"
    assert "has no version 1 to supersede" in (orphan_error.details() or "")

    verifier = log_key(agency_a)
    receipts = [answers[i] for i in range(len(good))]
    sizes = set()
    for sealed, receipt in zip(good, receipts, strict=True):
        assert isinstance(receipt, alerts_pb2.PublishResponse), receipt
        assert receipt.alert_id == sealed.manifest.alert_id
        proof = receipt.inclusion_proof
        sizes.add(
            assert_proven(
                verifier, receipt.log_index, receipt.leaf, receipt.checkpoint,
                list(proof.hashes), proof.tree_size,
            )
        )
    # The first publish may have gone alone; every other one shares the next batch's checkpoint.
    assert len(sizes) <= 2
    batches, publishes = (a - b for a, b in zip(batch_sizes(hub), batches_before, strict=True))
    assert publishes == len(requests) - 1 and batches <= 2
    alert_rows, size, indexes = stored_counts(hub)
    assert alert_rows == before_alerts + len(good)
    assert size == before_size + 2 * len(good)  # each: its alert's leaf and one feed event
    assert indexes == list(range(size))  # dense: nothing of the refused ones
    assert max(sizes) == size
    with hub.db.read() as connection:
        stored_ids = set(connection.execute(select(alerts.c.alert_id)).scalars())
        sequences = list(
            connection.execute(
                select(feed_events.c.sequence)
                .where(feed_events.c.agency_id == "agency-b")
                .order_by(feed_events.c.sequence)
            ).scalars()
        )
    assert orphan.manifest.alert_id not in stored_ids
    assert {s.manifest.alert_id for s in good} <= stored_ids
    assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) >= len(good)


# --- the writer itself, given one batch ----------------------------------------------------------


class Collected:
    """What the writer delivered: one list per batch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, Receipt | BaseException]]] = []
        self.done = threading.Event()
        self.expected = 0

    def __call__(self, results: list[tuple[int, Receipt | BaseException]]) -> None:
        self.batches.append(results)
        if sum(len(b) for b in self.batches) >= self.expected:
            self.done.set()


def checked(hub: Hub, sealed: SealedAlert) -> CheckedPublish:
    return check_publish(
        sealed.request,
        caller="agency-a",
        caller_keys=hub.directory.signing_keys("agency-a"),
        encryption_key_ids=hub.directory.encryption_key_ids(),
        limits=PublishLimits(),
    )


def write_one_batch(
    hub: Hub, publishes: list[CheckedPublish], *, sign: BatchSigner | None = None
) -> list[Receipt | BaseException]:
    """Queue ``publishes`` before the writer starts, so that it takes them as one batch."""
    assert hub.checkpointer is not None
    collected = Collected()
    collected.expected = len(publishes)
    writer: PublishWriter[int] = PublishWriter(
        hub.db,
        clock=lambda: datetime.now(UTC),
        deliver=collected,
        sign=sign or hub.checkpointer.sign_batch,
    )
    for position, publish in enumerate(publishes):
        writer.submit(publish, known_size=0, token=position)
    writer.start()
    try:
        assert collected.done.wait(QUEUE_WAIT_SECONDS)
    finally:
        writer.stop()
    assert len(collected.batches) == 1  # one batch, delivered in one call
    return [result for _, result in sorted(collected.batches[0], key=lambda r: r[0])]


def test_one_batch_validates_each_publish_against_the_store_and_its_earlier_ones(
    hub: Hub, agency_a: TestAgency
) -> None:
    first, second, third = (sealed_alert(agency_a, f"container {i}") for i in range(3))
    taken = sealed_alert(agency_a, "other bytes", alert_id=second.manifest.alert_id)
    third_v2 = sealed_alert(
        agency_a, "amended", alert_id=third.manifest.alert_id, version=2,
        previous=third.manifest.hash,
    )
    orphan = sealed_alert(agency_a, alert_id=str(uuid.uuid4()), version=2, previous=b"\x01" * 32)
    batch = [first, second, first, taken, third, third_v2, orphan]
    before_alerts, before_size, _ = stored_counts(hub)

    results = write_one_batch(hub, [checked(hub, s) for s in batch])

    r_first, r_second, r_retry, r_taken, r_third, r_v2, r_orphan = results
    assert isinstance(r_taken, ConflictError) and "already published" in r_taken.message
    assert isinstance(r_orphan, InvalidInputError) and r_orphan.reason == "NO_PREVIOUS_VERSION"
    receipts = [r_first, r_second, r_retry, r_third, r_v2]
    assert all(isinstance(r, Receipt) for r in receipts)
    assert isinstance(r_retry, Receipt) and isinstance(r_first, Receipt)
    assert r_retry.outcome.log_index == r_first.outcome.log_index  # the retry's first outcome
    assert r_retry.outcome.feed_events == ()  # and no second feed event
    assert isinstance(r_v2, Receipt) and r_v2.outcome.version == 2
    verifier = log_key(agency_a)
    notes = set()
    for receipt in receipts:
        assert isinstance(receipt, Receipt) and receipt.inclusion is not None
        assert_proven(
            verifier, receipt.outcome.log_index, receipt.leaf, receipt.checkpoint,
            list(receipt.inclusion.hashes), receipt.inclusion.tree_size,
        )
        notes.add(receipt.checkpoint)
    alert_rows, size, indexes = stored_counts(hub)
    assert len(notes) == 1  # one checkpoint for the batch, covering every leaf it appended
    assert open_checkpoint(notes.pop(), verifier).checkpoint.size == size
    assert alert_rows == before_alerts + 4  # first, second, third and third's version 2
    assert size == before_size + 8 and indexes == list(range(size))


def test_a_batch_refused_whole_gives_back_the_log_indexes_it_reserved(
    hub: Hub, agency_a: TestAgency
) -> None:
    """The writer reserves its leaves' indexes as it takes the log lock: a batch of which no
    publish is stored (a version taken, a missing previous version) leaves the log's size as it
    was, and the next batch's leaves follow on densely."""
    stored = sealed_alert(agency_a)
    write_one_batch(hub, [checked(hub, stored)])
    taken = sealed_alert(agency_a, "other bytes", alert_id=stored.manifest.alert_id)
    orphan = sealed_alert(agency_a, alert_id=str(uuid.uuid4()), version=2, previous=b"\x01" * 32)
    before_alerts, before_size, _ = stored_counts(hub)

    refused = write_one_batch(hub, [checked(hub, taken), checked(hub, orphan)])

    assert [type(r) for r in refused] == [ConflictError, InvalidInputError]
    assert stored_counts(hub)[:2] == (before_alerts, before_size)
    (receipt,) = write_one_batch(hub, [checked(hub, sealed_alert(agency_a, "next"))])
    assert isinstance(receipt, Receipt) and receipt.outcome.log_index == before_size
    _, size, indexes = stored_counts(hub)
    assert size == before_size + 2 and indexes == list(range(size))


def test_a_batch_hashes_the_leaves_committed_before_it_from_the_tree_size_it_locked(
    hub: Hub, agency_a: TestAgency
) -> None:
    """Leaves another transaction appended and nobody hashed yet (a release statement's, say)
    lie between the tree's hashed size, which the batch reads and locks with the stored
    versions, and the batch's own: its checkpoint covers them all, every receipt proven."""
    assert hub.checkpointer is not None
    hub.checkpointer.stop()  # its thread would hash the appended leaves at its next poll
    write_one_batch(hub, [checked(hub, sealed_alert(agency_a))])
    with hub.db.write() as connection:
        for body in (b"first", b"second", b"third"):
            append_entry(
                connection, entry_type="feed_event", body=body, references=["agency-b"],
                entitled=["agency-b"], now=datetime.now(UTC),
            )
    with hub.db.read() as connection:
        hashed_before = connection.execute(text("SELECT hashed_size FROM log_tree_head")).scalar_one()
    _, size_before, _ = stored_counts(hub)
    assert hashed_before == size_before - 3

    results = write_one_batch(hub, [checked(hub, sealed_alert(agency_a, f"c {i}")) for i in range(2)])

    _, size, indexes = stored_counts(hub)
    assert size == size_before + 4 and indexes == list(range(size))
    for receipt in results:
        assert isinstance(receipt, Receipt) and receipt.inclusion is not None
        assert assert_proven(
            log_key(agency_a), receipt.outcome.log_index, receipt.leaf, receipt.checkpoint,
            list(receipt.inclusion.hashes), receipt.inclusion.tree_size,
        ) == size
    with hub.db.read() as connection:
        assert connection.execute(text("SELECT hashed_size FROM log_tree_head")).scalar_one() == size


REFUSING_TRIGGERS = {
    "sqlite": [
        """CREATE TRIGGER refuse_marked_{table} BEFORE INSERT ON {table} WHEN NEW.alert_id = '{marked}'
           BEGIN SELECT RAISE(ABORT, 'this alert is refused by the database'); END"""
    ],
    "postgresql": [
        """CREATE FUNCTION refuse_marked_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.alert_id = '{marked}' THEN
               RAISE EXCEPTION 'this alert is refused by the database';
             END IF;
             RETURN NEW;
           END $$""",
        """CREATE TRIGGER refuse_marked_{table} BEFORE INSERT ON {table}
           FOR EACH ROW EXECUTE FUNCTION refuse_marked_{table}()""",
    ],
}
"""A trigger refusing the marked alert's rows of one table (``alerts``, inserted with
``RETURNING``; ``feed_events``, inserted as the other tables are: ``COPY`` on PostgreSQL)."""


@pytest.mark.parametrize("table", ["alerts", "feed_events"])
def test_a_batch_the_database_refuses_is_written_again_one_by_one_to_isolate_the_culprit(
    hub: Hub, agency_a: TestAgency, table: str
) -> None:
    """A refusal no validation foresees (here a trigger): the batch is rolled back and written
    again with each publish in its own savepoint; only the refused one fails, and the log stays
    dense with one checkpoint over the others."""
    marked = str(uuid.uuid4())
    with hub.db.write() as connection:
        for statement in REFUSING_TRIGGERS[connection.dialect.name]:
            connection.execute(text(statement.format(marked=marked, table=table)))
    sealed = [sealed_alert(agency_a, f"container {i}") for i in range(4)]
    sealed.insert(2, sealed_alert(agency_a, alert_id=marked))
    before_alerts, before_size, _ = stored_counts(hub)

    results = write_one_batch(hub, [checked(hub, s) for s in sealed])

    refused = results.pop(2)
    assert isinstance(refused, StorageError)
    assert "refused by the database" in refused.message
    verifier = log_key(agency_a)
    for receipt in results:
        assert isinstance(receipt, Receipt) and receipt.inclusion is not None
        assert_proven(
            verifier, receipt.outcome.log_index, receipt.leaf, receipt.checkpoint,
            list(receipt.inclusion.hashes), receipt.inclusion.tree_size,
        )
    alert_rows, size, indexes = stored_counts(hub)
    assert alert_rows == before_alerts + 4
    assert size == before_size + 8 and indexes == list(range(size))
    assert {r.checkpoint for r in results if isinstance(r, Receipt)} == {
        results[-1].checkpoint  # type: ignore[union-attr]
    }


def test_a_failed_checkpoint_leaves_the_batch_stored_and_its_receipts_without_proofs(
    hub: Hub, agency_a: TestAgency
) -> None:
    """The checkpoint step fails after writing (its subtree rows, here): the batch is written
    again without it, so the publishes stand, nothing of the failed step is left, and the
    receipts go without proofs for the client to ask for."""
    assert hub.checkpointer is not None
    sign_batch = hub.checkpointer.sign_batch

    def failing(connection, start, leaf_hashes, *, hashed_size=None):  # type: ignore[no-untyped-def]
        sign_batch(connection, start, leaf_hashes, hashed_size=hashed_size)  # writes, then fails
        raise InvalidInputError("no signature today")

    sealed = [sealed_alert(agency_a, f"container {i}") for i in range(3)]
    before_alerts, before_size, _ = stored_counts(hub)
    with hub.db.read() as connection:
        hashed_before = connection.execute(text("SELECT hashed_size FROM log_tree_head")).scalar_one()

    results = write_one_batch(hub, [checked(hub, s) for s in sealed], sign=failing)

    for receipt in results:
        assert isinstance(receipt, Receipt)
        assert receipt.inclusion is None and receipt.checkpoint == "" and receipt.leaf == b""
    alert_rows, size, indexes = stored_counts(hub)
    assert alert_rows == before_alerts + 3 and size == before_size + 6
    assert indexes == list(range(size))
    with hub.db.read() as connection:
        hashed = connection.execute(text("SELECT hashed_size FROM log_tree_head")).scalar_one()
    assert hashed == hashed_before  # the failed step's hashing was rolled back with it
    assert hub.checkpoint_now().size == size  # the checkpointer signs the leaves later
