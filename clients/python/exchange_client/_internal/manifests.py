"""Fetching one alert version and verifying its manifest before anything acts on it.

Release controls, receipts and feedback all start from a manifest the hub serves: it must verify
under its originator's keys as this profile checks them, be the version that was asked for
(:func:`check_answer`, pure), and be in the verified log.
"""

from __future__ import annotations

import uuid

from exchange.errors import InvalidInputError, NotFoundError, VerificationError
from exchange.statements.alert import AlertManifest
from exchange.statements.codec import envelope_from_proto, parse_canonical
from exchange.v1 import alerts_pb2, statements_pb2
from exchange_client._internal.audit import Auditor, logged_envelope
from exchange_client._internal.calls import Steps, call, run_blocking
from exchange_client._internal.partners import PartnerDirectory
from exchange_client._internal.transport import AsyncTransport, Transport


def check_alert_id(alert_id: str) -> str:
    """``alert_id`` in its canonical form; raises if it is not a UUID."""
    try:
        return str(uuid.UUID(alert_id))
    except ValueError as e:
        raise InvalidInputError(
            f"{alert_id!r} is not an alert id (a UUID such as "
            "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10)",
            reason="INVALID_ALERT_ID",
        ) from e


def claimed_originator(view: alerts_pb2.AlertView) -> str:
    """The originator a served manifest names (unverified: to look its keys up)."""
    claimed = parse_canonical(
        statements_pb2.AlertManifest, bytes(view.manifest.payload), what="alert manifest"
    )
    return claimed.originator


def check_answer(
    manifest: AlertManifest,
    alert_id: str,
    *,
    originator: str | None = None,
    version: int | None = None,
    asked: str = "",
) -> None:
    """Raise ``ALERT_MISMATCH`` unless ``manifest`` is the alert version asked for (the latest
    when ``version`` is ``None``); ``asked`` adds what was asked to the message."""
    if (
        manifest.alert_id != alert_id
        or (originator is not None and manifest.originator != originator)
        or (version is not None and manifest.version != version)
    ):
        raise VerificationError(
            f"asked the hub for alert {alert_id}{asked}, it answered with {manifest.originator}/"
            f"{manifest.alert_id} version {manifest.version}",
            reason="ALERT_MISMATCH",
        )


class Manifests:
    """Alert versions from the hub, their manifests verified and proven in the log.

    Each method has its steps (``*_steps``, see :mod:`~exchange_client._internal.calls`); the
    plain method runs them over the blocking transport."""

    def __init__(
        self,
        transport: Transport | AsyncTransport,
        partners: PartnerDirectory, auditor: Auditor, *, agency_id: str
    ) -> None:
        self._transport = transport
        self._partners = partners
        self._auditor = auditor
        self._agency_id = agency_id

    def view(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> alerts_pb2.AlertView:
        """The hub's view of an alert version this agency may see (latest by default)."""
        return run_blocking(
            self.view_steps(alert_id, originator=originator, version=version), self._transport
        )

    def view_steps(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> Steps[alerts_pb2.AlertView]:
        """:meth:`view` as steps."""
        request = alerts_pb2.GetAlertRequest(
            alert_id=alert_id, originator=originator or "", version=version or 0
        )
        view: alerts_pb2.AlertView = yield from call("alerts", "GetAlert", request)
        return view

    def own_view(self, alert_id: str, version: int | None = None) -> alerts_pb2.AlertView:
        """The view of one of this agency's alerts (its latest version by default)."""
        return run_blocking(self.own_view_steps(alert_id, version), self._transport)

    def own_view_steps(
        self, alert_id: str, version: int | None = None
    ) -> Steps[alerts_pb2.AlertView]:
        """:meth:`own_view` as steps."""
        try:
            return (
                yield from self.view_steps(
                    check_alert_id(alert_id), originator=self._agency_id, version=version
                )
            )
        except NotFoundError as e:
            raise NotFoundError(
                f"no alert {alert_id} published by {self._agency_id}", reason=e.reason
            ) from e

    def verified(
        self,
        view: alerts_pb2.AlertView,
        *,
        alert_id: str,
        originator: str | None = None,
        version: int | None = None,
    ) -> AlertManifest:
        """The manifest of ``view``, verified, the version asked for, and in the verified log."""
        return run_blocking(
            self.verified_steps(view, alert_id=alert_id, originator=originator, version=version),
            self._transport,
        )

    def verified_steps(
        self,
        view: alerts_pb2.AlertView,
        *,
        alert_id: str,
        originator: str | None = None,
        version: int | None = None,
    ) -> Steps[AlertManifest]:
        """:meth:`verified` as steps."""
        keys = yield from self._partners.keys_of(claimed_originator(view))
        manifest = AlertManifest.verify(envelope_from_proto(view.manifest), keys)
        check_answer(manifest, alert_id, originator=originator, version=version)
        # The audit log: act on no manifest that the verified log does not hold.
        yield from self._auditor.prove_statement_steps(
            logged_envelope(view.manifest), view.log_index, acting=True
        )
        return manifest

    def visible(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> AlertManifest:
        """The verified manifest of an alert version this agency may see (latest by default)."""
        return run_blocking(
            self.visible_steps(alert_id, originator=originator, version=version), self._transport
        )

    def visible_steps(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> Steps[AlertManifest]:
        """:meth:`visible` as steps."""
        view = yield from self.view_steps(
            check_alert_id(alert_id), originator=originator, version=version
        )
        return (
            yield from self.verified_steps(
                view, alert_id=alert_id, originator=originator, version=version
            )
        )

    def own(self, alert_id: str, version: int | None = None) -> AlertManifest:
        """The verified manifest of one of this agency's alerts (latest version by default)."""
        return run_blocking(self.own_steps(alert_id, version), self._transport)

    def own_steps(self, alert_id: str, version: int | None = None) -> Steps[AlertManifest]:
        """:meth:`own` as steps."""
        view = yield from self.own_view_steps(alert_id, version)
        return (
            yield from self.verified_steps(
                view, alert_id=alert_id, originator=self._agency_id, version=version
            )
        )
