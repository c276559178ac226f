"""The Python client of the exchange: publish, receive, verify and decrypt alerts.

Everything public is listed in ``__all__``; the modules under ``_internal`` are not part of the
API.  A typical session::

    from exchange_client import Client, Draft, Profile

    with Client(Profile.load("agencies/us-dea")) as client:
        receipt = client.publish(Draft.from_file("alert.yaml"))
        for entry in client.inbox():
            alert = client.open(entry.alert_id, originator=entry.originator)
        request = client.request_release(alert.alert_id, "bank-records", reason="hearing on Monday")

The originator answers with ``client.approve(request.request_id)`` or ``client.deny(...)``;
``revoke``, ``retract``, ``feedback`` and ``receipts`` complete the release controls;
``client.cases`` holds joint cases, and ``client.cooperation_report()`` computes the
cooperation figures from the verified log (``sign_cooperation_report`` signs them).

Every failure is an :class:`ExchangeError`; verification failures (tampering) are
:class:`VerificationError`, never a silent ``False``.

A ``Client`` is safe to share between threads: its trusted checkpoint only moves forward (a
consistency proof is checked against the checkpoint trusted when the proof was asked for, and
asked for again if another thread moved it on), and the partner keys, the outbox and the feed
cursor are shared safely. Processes sharing one profile are safe too (the state files are
replaced atomically under file locks), but each process needs its own ``Client``: one used in a
forked child raises :class:`ClientForkedError`, and one used after :meth:`Client.close`
raises :class:`ClientClosedError` — before anything is sent or written.  One feed subscription
per profile reads at a time; a second, in any thread or process, is refused at once.

:class:`AsyncClient` is the client for agency services written with asyncio, on ``grpc.aio``::

    async with AsyncClient(Profile.load("agencies/us-dea")) as client:
        receipt = await client.publish(Draft.from_file("alert.yaml"))
        entries = await client.inbox()
        request = await client.request_release(alert_id, "bank-records", reason="hearing")
        report = await client.auditor.verify()
        async for event in client.watch():
            ...

Its methods are coroutines running the very operations ``Client`` runs (each written once, as
steps that either client drives over its transport), on the same state files: ``publish``,
``flush_outbox``, ``inbox``, ``open``, ``events``, ``commit_cursor``, ``cursor``, ``agencies``, ``request_release``, ``release_requests``,
``approve``, ``deny``, ``revoke``, ``retract``, ``feedback``, ``acknowledge_purge``,
``receipts``, ``close``, and the audit calls ``auditor.summary``, ``auditor.verify``,
``auditor.history`` and ``auditor.compare``; ``watch`` is ``Client.subscribe`` as an async
iterator. Joint cases, matching and the cooperation report are ``Client``'s only for now.
"""

from __future__ import annotations

from exchange.alerts.draft import Draft
from exchange.audit.cooperation import CooperationReport, Figure
from exchange.errors import (
    CertificateError,
    CommitmentError,
    ConfigurationError,
    ConflictError,
    DecryptionError,
    DraftError,
    ExchangeError,
    GrantError,
    InvalidInputError,
    KeyCommitmentError,
    MalformedError,
    NotAuthenticatedError,
    NotFoundError,
    NotPermittedError,
    OutdatedKeysError,
    QuotaExceededError,
    SignatureError,
    TooLargeError,
    UnavailableError,
    UnknownKeyError,
    VerificationError,
)
from exchange_client._internal.async_client import AsyncClient
from exchange_client._internal.cases import CaseView, LinkedAlert
from exchange_client._internal.client import Client
from exchange_client._internal.errors import (
    ClientClosedError,
    ClientForkedError,
    FeedGapError,
    LogInconsistentError,
)
from exchange_client._internal.models import (
    AgencyInfo,
    DeliveryRecord,
    FeedEvent,
    InboxEntry,
    OpenedAlert,
    OpenedItem,
    Receipt,
    ReleaseRequest,
    StatementResult,
)
from exchange_client._internal.profile import Profile

__all__ = [
    "AgencyInfo",
    "AsyncClient",
    "CaseView",
    "CertificateError",
    "Client",
    "ClientClosedError",
    "ClientForkedError",
    "CommitmentError",
    "ConfigurationError",
    "ConflictError",
    "CooperationReport",
    "DecryptionError",
    "DeliveryRecord",
    "Draft",
    "DraftError",
    "ExchangeError",
    "FeedEvent",
    "FeedGapError",
    "Figure",
    "GrantError",
    "InboxEntry",
    "InvalidInputError",
    "KeyCommitmentError",
    "LinkedAlert",
    "LogInconsistentError",
    "MalformedError",
    "NotAuthenticatedError",
    "NotFoundError",
    "NotPermittedError",
    "OpenedAlert",
    "OpenedItem",
    "OutdatedKeysError",
    "Profile",
    "QuotaExceededError",
    "Receipt",
    "ReleaseRequest",
    "SignatureError",
    "StatementResult",
    "TooLargeError",
    "UnavailableError",
    "UnknownKeyError",
    "VerificationError",
]
