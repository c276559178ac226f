"""What every concern of the client shares: the transport, the profile, the partner directory,
the verified manifests, the auditor and the clock, wired once by the ``Client``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from exchange_client._internal.audit import Auditor
from exchange_client._internal.calls import Steps, run_blocking
from exchange_client._internal.manifests import Manifests
from exchange_client._internal.partners import PartnerDirectory
from exchange_client._internal.profile import Profile
from exchange_client._internal.transport import AsyncTransport, Transport

T = TypeVar("T")


@dataclass(frozen=True)
class ClientContext:
    """The parts one agency's client is made of, shared by the modules per concern."""

    transport: Transport | AsyncTransport
    profile: Profile
    partners: PartnerDirectory
    manifests: Manifests
    auditor: Auditor
    clock: Callable[[], datetime]


def wire(
    transport: Transport | AsyncTransport,
    profile: Profile,
    *,
    clock: Callable[[], datetime],
) -> ClientContext:
    """The parts of one agency's client over ``transport``: the same wiring for ``Client``
    (a blocking transport) and ``AsyncClient`` (a ``grpc.aio`` one), so that both verify with
    the same partner directory, manifests and auditor, on the same state files."""
    partners = PartnerDirectory(transport, profile, clock=clock)
    # The audit log: checkpoints, inclusion proofs, cosignatures (see _internal/audit/).
    auditor = Auditor(
        transport,
        agency_id=profile.agency_id,
        state_dir=profile.state_dir,
        checkpoint_verifier_key=profile.checkpoint_verifier_key,
        witness_key=profile.witness_key,
        clock=clock,
        partner_keys=partners.latest_keys,
        signing_keys=partners.signing_keys,
        require_cosigners=profile.require_cosigners,
        max_cosignature_age_seconds=profile.max_cosignature_age_seconds,
        compromised_keys=partners.compromised_keys,
    )
    return ClientContext(
        transport=transport,
        profile=profile,
        partners=partners,
        manifests=Manifests(transport, partners, auditor, agency_id=profile.agency_id),
        auditor=auditor,
        clock=clock,
    )


class Concern:
    """Base of the modules per concern: the shared parts, under the names they all use."""

    def __init__(self, context: ClientContext) -> None:
        self._transport = context.transport
        self._profile = context.profile
        self._partners = context.partners
        self._manifests = context.manifests
        self._auditor = context.auditor
        self._clock = context.clock

    def _run(self, steps: Steps[T]) -> T:
        """Run ``steps`` over the blocking transport (a ``Client``'s)."""
        return run_blocking(steps, self._transport)
