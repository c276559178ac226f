"""The concerns both clients share, wired once over a :class:`ClientContext`: ``Client`` and
``AsyncClient`` hold the same objects, so each drives the same operations (see
:mod:`~exchange_client._internal.calls`) on the same state files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exchange_client._internal.context import ClientContext
from exchange_client._internal.opening import Opener
from exchange_client._internal.publishing import PUBLISH_RETRY_SECONDS, Publisher, Retrying
from exchange_client._internal.receipts import Deliveries
from exchange_client._internal.release import ReleaseControls
from exchange_client._internal.state import ClientState, SentStatements
from exchange_client._internal.watchlist_updates import WatchlistUpdates


@dataclass(frozen=True)
class Concerns:
    """Release controls, receipts and feedback, the inbox and opening, publishing."""

    release: ReleaseControls
    deliveries: Deliveries
    opener: Opener
    publisher: Publisher

    @classmethod
    def wire(
        cls,
        context: ClientContext,
        *,
        state: ClientState,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        retry_seconds: float = PUBLISH_RETRY_SECONDS,
        on_retry: Retrying | None = None,
    ) -> Concerns:
        """``sleep`` is the blocking client's wait between publish attempts (the asynchronous
        client awaits ``asyncio.sleep``); ``monotonic`` measures the retry budget."""
        release = ReleaseControls(context)
        deliveries = Deliveries(context, sent=SentStatements(context.profile.state_dir))
        opener = Opener(
            context,
            watchlist_updates=WatchlistUpdates(context.profile.state_dir),
            after_open=deliveries.after_open,
            own_requests=lambda: release.release_requests_steps(mine=True, include_decided=True),
        )
        publisher = Publisher(
            context,
            state=state,
            watchlist=lambda: opener.watchlist,
            sleep=sleep,
            monotonic=monotonic,
            retry_seconds=retry_seconds,
            on_retry=on_retry,
        )
        return cls(release, deliveries, opener, publisher)
