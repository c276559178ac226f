"""Who may do what to a held item: every actor × every action × every release mode, against a
real hub on SQLite and on PostgreSQL.

The table below is the specification.  Each cell runs on a freshly published alert, so cells
never see each other's effects, and every refusal must leave the database exactly as it was
(refused calls are not logged, DESIGN §8).

Outcomes: ``OK`` (done, or served), ``ABSENT`` (the call succeeds but the thing is not served:
a withheld or embargoed item's ciphertext or grant), or the gRPC status of the refusal.  An
unauthenticated caller has no client certificate, so the TLS handshake fails and gRPC itself
answers ``UNAVAILABLE``; a revoked agency completes the handshake and is refused
``UNAUTHENTICATED`` by the hub before anything else happens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from exchange.crypto.dsse import sign_envelope
from exchange.crypto.items import new_item_key
from exchange.statements.alert import AlertManifest, KeyGrant
from exchange.statements.codec import PAYLOAD_TYPES, encode, envelope_to_proto
from exchange.statements.release import ReleaseDecision, ReleaseRequest, Revocation
from exchange.statements.sealing import summary_item
from exchange.store import registry
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    payloads_pb2,
    release_pb2,
    release_pb2_grpc,
    statements_pb2,
)
from tests.conftest import FrozenClock
from tests.integration.agency import TestAgency, channel_for, note_item
from tests.integration.release_steps import (
    grant_for,
    now,
    own_item_key,
    settled_row_counts,
    signed_request,
)

Policy = statements_pb2.ReleasePolicy

MATRIX_AGENCIES = ("agency-a", "agency-b", "agency-c", "agency-d")
ORIGINATOR, MEMBER, NON_MEMBER, REVOKED = MATRIX_AGENCIES
ACTORS = ("originator", "member", "non_member", "revoked", "unauthenticated")
MODES = {"IMMEDIATE": Policy.IMMEDIATE, "ON_REQUEST": Policy.ON_REQUEST, "EMBARGO": Policy.EMBARGO}

OK = "OK"
ABSENT = "ABSENT"
NOT_FOUND = "NOT_FOUND"
DENIED = "PERMISSION_DENIED"
INVALID = "INVALID_ARGUMENT"
RELEASED = "ALREADY_EXISTS"


def held_for_member(immediate: str) -> dict[str, str]:
    """The member gets the content at once only with IMMEDIATE."""
    return {"IMMEDIATE": immediate, "ON_REQUEST": ABSENT, "EMBARGO": ABSENT}


# action -> actor -> outcome (or mode -> outcome).  The revoked agency and the unauthenticated
# caller are refused everything, whatever the mode.
MATRIX: dict[str, dict[str, str | dict[str, str]]] = {
    "see withheld header": {"originator": OK, "member": OK, "non_member": NOT_FOUND},
    "fetch ciphertext": {"originator": OK, "member": held_for_member(OK), "non_member": NOT_FOUND},
    "fetch grant": {"originator": OK, "member": held_for_member(OK), "non_member": NOT_FOUND},
    # The originator needs no request: a request naming it as requester is malformed.
    "request": {
        "originator": INVALID,
        "member": {"IMMEDIATE": RELEASED, "ON_REQUEST": OK, "EMBARGO": OK},
        "non_member": NOT_FOUND,
    },
    "onward request": {"originator": INVALID, "member": OK, "non_member": NOT_FOUND},
    "approve": {"originator": OK, "member": DENIED, "non_member": DENIED},
    "deny": {"originator": OK, "member": DENIED, "non_member": DENIED},
    "revoke": {"originator": OK, "member": DENIED, "non_member": DENIED},
    # Non-originators upload a grant of their own making; the originator one for an agency the
    # request did not name.
    "upload a grant": {"originator": INVALID, "member": DENIED, "non_member": DENIED},
}


def expected(actor: str, action: str, mode: str) -> str:
    if actor == "revoked":
        return "UNAUTHENTICATED"
    if actor == "unauthenticated":
        return "UNAVAILABLE"
    outcome = MATRIX[action][actor]
    return outcome if isinstance(outcome, str) else outcome[mode]


@pytest.fixture(scope="module")
def exchange_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exchange with a fourth agency, which each test revokes after it has received alerts."""
    from exchange.hub.init import init_exchange

    directory = tmp_path_factory.mktemp("matrix") / "data"
    init_exchange(directory, list(MATRIX_AGENCIES), listen="127.0.0.1:50051")
    return directory


@dataclass
class Caller:
    """Stubs for one actor; ``agency`` is None for the caller without a certificate."""

    agency: TestAgency | None
    alerts: alerts_pb2_grpc.AlertServiceStub
    release: release_pb2_grpc.ReleaseServiceStub

    @property
    def signer(self) -> TestAgency:
        assert self.agency is not None
        return self.agency


@dataclass
class Cell:
    """One freshly published alert with a held item, and agency-b's onward request for it."""

    manifest: AlertManifest
    onward: ReleaseRequest


@pytest.fixture
def parties(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    agencies = {a: TestAgency(exchange_dir, a, port) for a in MATRIX_AGENCIES}
    yield agencies
    for agency in agencies.values():
        agency.close()


def publish_cell(parties: dict[str, TestAgency], mode: str, clock: FrozenClock) -> Cell:
    a, b = parties[ORIGINATOR], parties[MEMBER]
    held = note_item("held", "bank records", [MEMBER, REVOKED], release=MODES[mode])
    if mode == "EMBARGO":
        held.policy.embargo_until.FromDatetime(clock.now + timedelta(days=1))
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.FUND_FLOW, title="held")
    sealed = a.seal([summary_item(summary, [held]), held])
    a.alerts.Publish(sealed.request, timeout=10)
    onward = signed_request(b, sealed.manifest, "held", release_to=NON_MEMBER)
    b.release.RequestRelease(
        release_pb2.RequestReleaseRequest(request=envelope_to_proto(onward.envelope)), timeout=10
    )
    return Cell(manifest=sealed.manifest, onward=onward)


def held_item(caller: Caller, cell: Cell) -> alerts_pb2.ItemView | None:
    view = caller.alerts.GetAlert(
        alerts_pb2.GetAlertRequest(alert_id=cell.manifest.alert_id), timeout=10
    )
    for item in view.items:
        if statements_pb2.ItemHeader.FromString(item.header).item_id == "held":
            return item
    return None


def raw_request(caller: Caller, cell: Cell, release_to: str) -> str:
    """A request signed by the actor, built without the client-side checks an attacker skips."""
    signer = caller.signer
    message = statements_pb2.ReleaseRequest(
        requester=signer.agency_id,
        originator=cell.manifest.originator,
        alert_id=cell.manifest.alert_id,
        version=cell.manifest.version,
        manifest_hash=cell.manifest.hash,
        item_id="held",
        release_to=release_to,
        reason="needed for the case",
        nonce=os.urandom(16),
    )
    message.created_at.FromDatetime(now())
    envelope = sign_envelope(PAYLOAD_TYPES["release_request"], encode(message), signer.profile.signing_key)
    caller.release.RequestRelease(
        release_pb2.RequestReleaseRequest(request=envelope_to_proto(envelope)), timeout=10
    )
    return OK


def decide(caller: Caller, decision: ReleaseDecision, grant: KeyGrant | None) -> str:
    request = release_pb2.DecideReleaseRequest(decision=envelope_to_proto(decision.envelope))
    if grant is not None:
        request.grant.CopyFrom(grant.message)
    caller.release.DecideRelease(request, timeout=10)
    return OK


def served(item: alerts_pb2.ItemView | None, present: Callable[[alerts_pb2.ItemView], bool]) -> str:
    return OK if item is not None and present(item) else ABSENT


Action = Callable[[Caller, Cell, dict[str, TestAgency]], str]


def approve(caller: Caller, cell: Cell, parties: dict[str, TestAgency]) -> str:
    a = parties[ORIGINATOR]
    key = own_item_key(a, cell.manifest, "held")
    grant = grant_for(a, cell.manifest, "held", NON_MEMBER, key)
    decision = ReleaseDecision.approve(
        cell.onward, grant, created_at=now(), key=caller.signer.profile.signing_key
    )
    return decide(caller, decision, grant)


def deny(caller: Caller, cell: Cell, parties: dict[str, TestAgency]) -> str:
    decision = ReleaseDecision.deny(
        cell.onward, reason="not now", created_at=now(), key=caller.signer.profile.signing_key
    )
    return decide(caller, decision, None)


def upload_grant(caller: Caller, cell: Cell, parties: dict[str, TestAgency]) -> str:
    a = parties[ORIGINATOR]
    if caller.agency is a:
        # The real key, but wrapped for the member although the request is for agency-c.
        key = own_item_key(a, cell.manifest, "held")
        grant = grant_for(a, cell.manifest, "held", MEMBER, key)
    else:
        grant = grant_for(a, cell.manifest, "held", NON_MEMBER, new_item_key())
    decision = ReleaseDecision.approve(
        cell.onward, grant, created_at=now(), key=caller.signer.profile.signing_key
    )
    return decide(caller, decision, grant)


def revoke(caller: Caller, cell: Cell, parties: dict[str, TestAgency]) -> str:
    revocation = Revocation.build(
        cell.manifest, item_id="held", created_at=now(), key=caller.signer.profile.signing_key
    )
    caller.release.Revoke(
        release_pb2.RevokeRequest(revocation=envelope_to_proto(revocation.envelope)), timeout=10
    )
    return OK


ACTIONS: dict[str, Action] = {
    "see withheld header": lambda c, cell, p: served(held_item(c, cell), lambda i: bool(i.header)),
    "fetch ciphertext": lambda c, cell, p: served(held_item(c, cell), lambda i: bool(i.ciphertext)),
    "fetch grant": lambda c, cell, p: served(held_item(c, cell), lambda i: i.HasField("grant")),
    "request": lambda c, cell, p: raw_request(c, cell, ""),
    "onward request": lambda c, cell, p: raw_request(
        c, cell, NON_MEMBER if c.agency is None or c.agency.agency_id != NON_MEMBER else MEMBER
    ),
    "approve": approve,
    "deny": deny,
    "revoke": revoke,
    "upload a grant": upload_grant,
}


def callers(parties: dict[str, TestAgency], hub: object) -> dict[str, Caller]:
    by_role = {"originator": ORIGINATOR, "member": MEMBER, "non_member": NON_MEMBER,
               "revoked": REVOKED}
    result = {
        role: Caller(parties[agency], parties[agency].alerts, parties[agency].release)
        for role, agency in by_role.items()
    }
    anonymous = channel_for(
        hub.port, key=None, cert=None,  # type: ignore[attr-defined]
        root=parties[MEMBER].profile.hub_ca_certificate_pem,
    )
    # Statements are signed with the member's key: the call is refused before they are read.
    result["unauthenticated"] = Caller(
        parties[MEMBER],
        alerts_pb2_grpc.AlertServiceStub(anonymous),
        release_pb2_grpc.ReleaseServiceStub(anonymous),
    )
    return result


@pytest.mark.parametrize("mode", list(MODES))
def test_authorization_matrix(
    mode: str, hub: object, parties: dict[str, TestAgency], clock: FrozenClock
) -> None:
    cells = {
        (actor, action): publish_cell(parties, mode, clock) for actor in ACTORS for action in ACTIONS
    }
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        registry.revoke_agency(connection, REVOKED, now=clock.now)
    hub.directory.refresh()  # type: ignore[attr-defined]
    by_actor = callers(parties, hub)
    mismatches = []
    for (actor, action), cell in cells.items():
        want = expected(actor, action, mode)
        before = settled_row_counts(hub)
        try:
            got = ACTIONS[action](by_actor[actor], cell, parties)
        except grpc.RpcError as refused:
            got = refused.code().name
            after = settled_row_counts(hub)
            if after != before:
                changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
                mismatches.append(f"{actor} / {action}: refused but changed {changed}")
        if got != want:
            mismatches.append(f"{actor} / {action}: expected {want}, got {got}")
    assert not mismatches, "\n".join(mismatches)
