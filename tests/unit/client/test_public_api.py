"""The public surface of ``exchange_client`` is exactly ``__all__``, and ``__all__`` is complete."""

from __future__ import annotations

import inspect
import types

import exchange_client
from exchange import errors

EXPECTED = {
    "Client",
    "AsyncClient",
    "Profile",
    "Draft",
    "Receipt",
    "OpenedAlert",
    "OpenedItem",
    "InboxEntry",
    "FeedEvent",
    "AgencyInfo",
    "ReleaseRequest",
    "StatementResult",
    "DeliveryRecord",
    "FeedGapError",
    "LogInconsistentError",
    "ClientClosedError",
    "ClientForkedError",
    "CooperationReport",
    "Figure",
    "CaseView",
    "LinkedAlert",
}


def test_all_lists_the_api_and_every_error_family() -> None:
    error_classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.ExchangeError)
    }
    assert set(exchange_client.__all__) == EXPECTED | error_classes
    assert len(exchange_client.__all__) == len(set(exchange_client.__all__))


def test_every_listed_name_exists() -> None:
    for name in exchange_client.__all__:
        assert getattr(exchange_client, name) is not None, name


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(exchange_client).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(exchange_client.__all__)


def test_errors_are_the_core_tree_and_client_errors_are_verification_failures() -> None:
    assert exchange_client.ExchangeError is errors.ExchangeError
    assert exchange_client.VerificationError is errors.VerificationError
    assert issubclass(exchange_client.FeedGapError, errors.VerificationError)
    assert issubclass(exchange_client.LogInconsistentError, errors.VerificationError)
    gap = exchange_client.FeedGapError("event 5 is missing", missing_sequence=5)
    assert gap.missing_sequence == 5
    assert gap.reason == "FEED_GAP"


def test_draft_is_the_core_draft_type() -> None:
    from exchange.alerts.draft import Draft

    assert exchange_client.Draft is Draft


def test_public_classes_have_docstrings() -> None:
    for name in exchange_client.__all__:
        value = getattr(exchange_client, name)
        assert inspect.getdoc(value), name
