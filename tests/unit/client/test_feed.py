"""Reading the feed: dense sequences, gap detection, and when the cursor is saved.

The subscription is driven by a scripted stream standing in for the hub's ``Subscribe`` answer
(the transport is not what is under test here; the error mapping has its own tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from exchange.errors import ExchangeError, UnavailableError
from exchange.v1 import alerts_pb2
from exchange_client import FeedGapError
from exchange_client._internal.feed import FeedSubscription
from exchange_client._internal.state import ClientState
from tests.conftest import FakeTime

Response = alerts_pb2.SubscribeResponse


def event(sequence: int) -> Response:
    return Response(
        event=alerts_pb2.FeedEvent(
            sequence=sequence,
            kind=alerts_pb2.FeedEvent.ALERT_PUBLISHED,
            originator="agency-a",
            alert_id="0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10",
            version=1,
        )
    )


def heartbeat(latest: int) -> Response:
    return Response(heartbeat=alerts_pb2.Heartbeat(latest_sequence=latest))


class ScriptedStream:
    """One ``Subscribe`` call's answers; ``cancel`` as a gRPC call has it."""

    def __init__(self, responses: Sequence[Response | Exception]) -> None:
        self.responses = list(responses)
        self.cancelled = False

    def __iter__(self) -> Iterator[Response]:
        for response in self.responses:
            if isinstance(response, Exception):
                raise response
            yield response

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class ScriptedHub:
    """Hands out one scripted stream per (re)connection and records each ``after``."""

    def __init__(self, *streams: Sequence[Response | Exception]) -> None:
        self.streams = [ScriptedStream(s) for s in streams]
        self.requested_after: list[int] = []

    def open_stream(self, after: int) -> ScriptedStream:
        self.requested_after.append(after)
        return self.streams[len(self.requested_after) - 1]


def subscribe(
    state: ClientState,
    hub: ScriptedHub,
    *,
    after: int | None = None,
    heartbeats: bool = False,
    time: FakeTime | None = None,
    give_up_after: float | None = None,
    on_reconnect: Callable[[float, ExchangeError], None] | None = None,
) -> FeedSubscription:
    lock = state.lock_cursor()
    time = time or FakeTime()
    return FeedSubscription(
        open_stream=hub.open_stream,  # type: ignore[arg-type]
        target="hub.test:443",
        lock=lock,
        after=state.read_cursor() if after is None else after,
        heartbeats=heartbeats,
        sleep=time.sleep,
        clock=time.monotonic,
        give_up_after=give_up_after,
        on_reconnect=on_reconnect,
    )


@pytest.fixture
def state(tmp_path: Path) -> ClientState:
    return ClientState(tmp_path)


def test_an_event_is_saved_when_the_next_one_is_asked_for(state: ClientState) -> None:
    hub = ScriptedHub([event(1), event(2), event(3), heartbeat(3)])
    feed = subscribe(state, hub)
    assert next(feed).sequence == 1
    assert state.read_cursor() == 0  # handed out, not yet processed
    assert next(feed).sequence == 2
    assert state.read_cursor() == 1
    feed.abandon()
    assert state.read_cursor() == 1  # event 2 was never confirmed: delivered again next time


def test_a_clean_close_saves_the_last_event_and_the_next_reader_resumes(
    state: ClientState,
) -> None:
    hub = ScriptedHub([event(1), event(2), heartbeat(2)], [event(3), heartbeat(3)])
    with subscribe(state, hub) as feed:
        for received in feed:
            if received.sequence == 2:
                break
    assert state.read_cursor() == 2
    with subscribe(state, hub) as feed:
        assert next(feed).sequence == 3
    assert hub.requested_after == [0, 2]
    assert state.read_cursor() == 3


def test_leaving_by_an_exception_does_not_save_the_event_in_hand(state: ClientState) -> None:
    hub = ScriptedHub([event(1), event(2), heartbeat(2)])
    with pytest.raises(RuntimeError), subscribe(state, hub) as feed:
        for received in feed:
            if received.sequence == 2:
                raise RuntimeError("processing failed")
    assert state.read_cursor() == 1


def test_the_lock_is_held_while_subscribed_and_released_after(state: ClientState) -> None:
    hub = ScriptedHub([event(1)])
    feed = subscribe(state, hub)
    with pytest.raises(Exception) as busy:
        state.lock_cursor()
    assert "another process" in str(busy.value)
    feed.close()
    state.lock_cursor().release()


def test_a_skipped_sequence_is_a_gap_naming_the_missing_event(state: ClientState) -> None:
    hub = ScriptedHub([event(1), event(3)])
    feed = subscribe(state, hub)
    assert next(feed).sequence == 1
    with pytest.raises(FeedGapError) as gap:
        next(feed)
    assert gap.value.missing_sequence == 2
    assert "2" in gap.value.message
    assert state.read_cursor() == 1  # event 1 was processed; nothing past the gap
    with pytest.raises(StopIteration):
        next(feed)  # the subscription closed itself
    state.lock_cursor().release()  # and gave the lock back


def test_a_heartbeat_ahead_of_what_arrived_is_a_withheld_event(state: ClientState) -> None:
    hub = ScriptedHub([event(1), heartbeat(2)])
    feed = subscribe(state, hub)
    next(feed)
    with pytest.raises(FeedGapError) as gap:
        next(feed)
    assert gap.value.missing_sequence == 2


def test_events_at_or_below_the_cursor_are_skipped(state: ClientState) -> None:
    with state.lock_cursor() as lock:
        lock.commit(2)
    hub = ScriptedHub([event(1), event(2), event(3), heartbeat(3)])
    with subscribe(state, hub) as feed:
        assert next(feed).sequence == 3


def test_heartbeats_are_yielded_on_request_and_never_move_the_cursor(state: ClientState) -> None:
    hub = ScriptedHub([heartbeat(0), event(1), heartbeat(1)])
    with subscribe(state, hub, heartbeats=True) as feed:
        first = next(feed)
        assert first.is_heartbeat and first.sequence == 0
        assert next(feed).sequence == 1
        assert next(feed).is_heartbeat
    assert state.read_cursor() == 1


def test_a_dropped_stream_reconnects_after_the_last_event_received(state: ClientState) -> None:
    hub = ScriptedHub(
        [event(1), UnavailableError("connection reset")],
        [event(1), event(2), heartbeat(2)],
    )
    with subscribe(state, hub) as feed:
        assert [next(feed).sequence, next(feed).sequence] == [1, 2]
    assert hub.requested_after == [0, 1]
    assert hub.streams[0].cancelled


def test_a_hub_that_stays_away_is_waited_for_with_capped_backoff_until_it_is_back(
    state: ClientState,
) -> None:
    down = [[UnavailableError("down")] for _ in range(40)]
    hub = ScriptedHub([event(1), UnavailableError("restarting")], *down, [event(2), heartbeat(2)])
    time = FakeTime()
    told: list[tuple[float, str]] = []
    with subscribe(
        state, hub, time=time, on_reconnect=lambda s, e: told.append((s, e.message))
    ) as feed:
        assert [next(feed).sequence, next(feed).sequence] == [1, 2]
    assert hub.requested_after == [0] + [1] * 41  # every reconnection resumes after event 1
    assert [seconds for seconds, _ in told] == time.sleeps
    assert told[0][1] == "restarting"
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(41)]
    assert all(c / 2 <= s <= c for s, c in zip(time.sleeps, ceilings, strict=True))
    assert max(time.sleeps) > 15  # the waits grew to the cap (jitter takes at most half)
    assert time.now > 600  # ten minutes and more without the hub did not end the feed


def test_a_wait_starts_small_again_once_the_hub_has_answered(state: ClientState) -> None:
    hub = ScriptedHub(
        *([UnavailableError("down")] for _ in range(6)),
        [event(1), UnavailableError("dropped")],
        [event(2), heartbeat(2)],
    )
    time = FakeTime()
    with subscribe(state, hub, time=time) as feed:
        assert [next(feed).sequence, next(feed).sequence] == [1, 2]
    assert time.sleeps[5] >= 8  # the sixth wait in a row: 16 s less at most half
    assert time.sleeps[6] <= 0.5  # after event 1 arrived: the first wait again


def test_with_a_budget_a_hub_that_stays_away_is_unavailable(state: ClientState) -> None:
    hub = ScriptedHub(*([UnavailableError("down")] for _ in range(100)))
    time = FakeTime()
    feed = subscribe(state, hub, time=time, give_up_after=60)
    with pytest.raises(UnavailableError, match="down"):
        next(feed)
    assert time.now == pytest.approx(60)
    assert 5 < len(hub.requested_after) < 20


def test_an_explicit_start_overrides_the_cursor_which_never_moves_back(
    state: ClientState,
) -> None:
    with state.lock_cursor() as lock:
        lock.commit(5)
    hub = ScriptedHub([event(1), event(2), heartbeat(2)])
    with subscribe(state, hub, after=0) as feed:
        assert [next(feed).sequence, next(feed).sequence] == [1, 2]
    assert state.read_cursor() == 5
