"""What every concern of the client shares: the transport, the profile, the partner directory,
the verified manifests, the auditor and the clock, wired once by the ``Client``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from exchange_client._internal.audit import Auditor
from exchange_client._internal.manifests import Manifests
from exchange_client._internal.partners import PartnerDirectory
from exchange_client._internal.profile import Profile
from exchange_client._internal.transport import Transport


@dataclass(frozen=True)
class ClientContext:
    """The parts one agency's client is made of, shared by the modules per concern."""

    transport: Transport
    profile: Profile
    partners: PartnerDirectory
    manifests: Manifests
    auditor: Auditor
    clock: Callable[[], datetime]


class Concern:
    """Base of the modules per concern: the shared parts, under the names they all use."""

    def __init__(self, context: ClientContext) -> None:
        self._transport = context.transport
        self._profile = context.profile
        self._partners = context.partners
        self._manifests = context.manifests
        self._auditor = context.auditor
        self._clock = context.clock
