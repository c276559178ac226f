"""The cooperation report: figures about two agencies' exchange, computed from the verified log.

Pure: no I/O, no clock.  The client verifies the log first (the same replay as ``exchange audit
verify``), parses the statements it may read and opens the summaries of the alerts it was
addressed to; :func:`cooperation_figures` turns those into :class:`Figure` objects, each citing
the log indices it was computed from.  The partner, reading its own copy of the same log, gets
the same entries and so the same figures: every figure uses only what both sides of a direction
may read (the statements of an alert's originator and of its recipients are logged for both, and
log times are in the public leaves).

Rules, so that both sides count alike:

* An entry counts in the period ``[since, until)`` by its log time (the hub's, in the leaf).  A
  duration counts in the period of the entry that ends it (a decision, a receipt, feedback) and
  cites both entries.
* **Alerts** are version-1 publications (a later version is the same alert); their kind comes
  from the encrypted summary, which both the originator and every recipient can open; an alert
  whose summary this side could not open counts under kind ``UNKNOWN``.  Alerts of the joint-case
  kinds are counted as cases, not as alerts.
* **Response times** are measured per alert version from its publication (delivery is logged in
  the same transaction, at the same time) to the recipient's first receipt and first feedback,
  and per request from the request to its approval.  Medians and 90th percentiles are
  nearest-rank, so each is one measured duration, exact to the microsecond.
* **Open requests older than a week** are measured at ``as_of``: the end of the period, or the
  log time of the last entry of the verified checkpoint, never the wall clock.
* A figure about the pair (joint cases) names the two agencies in alphabetical order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from exchange.audit import leaves
from exchange.v1 import statements_pb2

__all__ = [
    "COUNT",
    "KINDS",
    "METRIC_LABELS",
    "MICROSECONDS",
    "OUTCOMES",
    "PAIR_METRICS",
    "AlertFacts",
    "AlertKey",
    "CooperationReport",
    "Figure",
    "FigureRow",
    "LoggedStatement",
    "cooperation_figures",
    "figure_rows",
    "format_duration",
    "format_value",
    "iso_week",
    "nearest_rank",
]

COUNT = "count"
MICROSECONDS = "microseconds"

KINDS = ("SHIPMENT", "FUND_FLOW", "WATCHLIST")
"""Alert kinds every report lists, even at zero; others (``ENTITY``, ``GENERAL``, ``UNKNOWN``)
appear when there are any."""

OUTCOMES = ("SEIZED", "NOTHING_FOUND", "INVESTIGATING", "FALSE_POSITIVE")
"""Feedback outcomes every report lists, even at zero."""

CASE_KINDS = frozenset({"CASE", "CASE_ENTRY"})
UNKNOWN_KIND = "UNKNOWN"
OPEN_REQUEST_AGE = timedelta(days=7)

# Metric names (the JSON and the signed summary use them).
ALERTS = "alerts"
ALERTS_PER_WEEK = "alerts_per_week"
ITEMS_RELEASED_ON_REQUEST = "items_released_on_request"
APPROVAL_TIME_MEDIAN = "approval_time_median"
APPROVAL_TIME_P90 = "approval_time_p90"
REQUESTS_DENIED = "requests_denied"
OPEN_REQUESTS_OLDER_THAN_A_WEEK = "open_requests_older_than_a_week"
RECEIPT_TIME_MEDIAN = "receipt_time_median"
RECEIPT_TIME_P90 = "receipt_time_p90"
FEEDBACK_TIME_MEDIAN = "feedback_time_median"
FEEDBACK_TIME_P90 = "feedback_time_p90"
OUTCOMES_REPORTED = "outcomes_reported"
CASES_OPENED = "joint_cases_opened"
CASES_CLOSED = "joint_cases_closed"

AlertKey = tuple[str, str, int]
"""(originator, alert id, version)."""


@dataclass(frozen=True)
class LoggedStatement:
    """A log entry this agency may read and has verified: where and when it was logged, and the
    statement it holds, parsed from the signed bytes (its signer checked by the replay)."""

    index: int
    logged_at: datetime
    entry_type: str
    message: Message
    """An ``AlertManifest``, ``ReleaseRequest``, ``ReleaseDecision``, ``Receipt`` or ``Feedback``."""
    statement_hash: bytes = b""
    """sha256 of the signed payload (how a decision names its request)."""


@dataclass(frozen=True)
class AlertFacts:
    """What this agency learnt from an alert version's encrypted summary and case items."""

    kind: str | None
    """``SHIPMENT``, ``CASE``...; ``None`` when the summary could not be opened."""
    audience: frozenset[str] = frozenset()
    """The summary item's audience: every agency the alert was addressed to."""
    case_members: frozenset[str] = frozenset()
    """For a ``CASE`` alert: every member, the opener included."""
    case: tuple[str, str] | None = None
    """For a ``CASE_ENTRY`` alert: the case's (originator, alert id)."""
    closes_case: bool = False


@dataclass(frozen=True)
class Figure:
    """One figure: a count or a duration, in one direction, citing the log entries behind it."""

    metric: str
    from_agency: str
    to_agency: str
    value: int
    unit: str = COUNT
    detail: str = ""
    log_indices: tuple[int, ...] = ()
    samples: tuple[int, ...] = field(default=(), compare=False)
    """For durations: every measured duration (microseconds), for the plots; not signed."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the figure measures, the same in both sides' reports: (metric, from, to, detail)."""
        return (self.metric, self.from_agency, self.to_agency, self.detail)

    def to_json(self) -> dict[str, object]:
        """For ``--json`` (snake_case)."""
        return {
            "metric": self.metric,
            "from_agency": self.from_agency,
            "to_agency": self.to_agency,
            "detail": self.detail,
            "value": self.value,
            "unit": self.unit,
            "log_indices": list(self.log_indices),
        }

    def to_proto(self) -> statements_pb2.CooperationFigure:
        """The figure as signed in a cooperation summary."""
        return statements_pb2.CooperationFigure(
            metric=self.metric,
            from_agency=self.from_agency,
            to_agency=self.to_agency,
            detail=self.detail,
            value=self.value,
            unit=self.unit,
            log_indices=list(self.log_indices),
        )

    @classmethod
    def from_proto(cls, message: statements_pb2.CooperationFigure) -> Figure:
        """A figure read back from a signed summary."""
        return cls(
            metric=message.metric,
            from_agency=message.from_agency,
            to_agency=message.to_agency,
            detail=message.detail,
            value=message.value,
            unit=message.unit,
            log_indices=tuple(message.log_indices),
        )


def nearest_rank(samples: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile of ``samples`` (not empty): always one of the samples."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(percent * len(ordered) / 100))
    return ordered[rank - 1]


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_week(moment: datetime) -> str:
    """``2026-W48``: the ISO week of a log time (UTC)."""
    year, week, _ = _aware(moment).astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class _Measured:
    """Durations in one direction, and the entries they were measured from."""

    samples: list[int] = field(default_factory=list)
    indices: set[int] = field(default_factory=set)

    def add(self, start: LoggedStatement, end: LoggedStatement) -> None:
        self.samples.append(_micros(end.logged_at - start.logged_at))
        self.indices.update((start.index, end.index))


class _Period:
    def __init__(self, since: datetime | None, until: datetime | None) -> None:
        self.since = None if since is None else _aware(since)
        self.until = None if until is None else _aware(until)

    def __contains__(self, entry: LoggedStatement) -> bool:
        moment = _aware(entry.logged_at)
        if self.since is not None and moment < self.since:
            return False
        return self.until is None or moment < self.until


def cooperation_figures(
    entries: Iterable[LoggedStatement],
    alerts: Mapping[AlertKey, AlertFacts],
    outcomes: Mapping[int, str],
    *,
    agency: str,
    partners: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime,
) -> list[Figure]:
    """Every figure between ``agency`` and each of ``partners``, in both directions.

    ``entries`` are the verified statements this agency may read, in any order; ``alerts`` what
    it opened of each alert version's summary; ``outcomes`` the decrypted outcome of each
    feedback entry it could read, by log index.  See the module documentation for the rules.
    """
    ordered = sorted(entries, key=lambda e: e.index)
    period = _Period(since, until)
    computer = _Computer(ordered, alerts, outcomes, agency, period, _aware(as_of))
    figures: list[Figure] = []
    for partner in sorted(set(partners) - {agency}):
        for giver, receiver in ((agency, partner), (partner, agency)):
            figures.extend(computer.direction(giver, receiver))
        figures.extend(computer.pair(agency, partner))
    return figures


class _Computer:
    """The figures of one report; each method reads the entries once per direction."""

    def __init__(
        self,
        entries: list[LoggedStatement],
        alerts: Mapping[AlertKey, AlertFacts],
        outcomes: Mapping[int, str],
        agency: str,
        period: _Period,
        as_of: datetime,
    ) -> None:
        self._alerts = alerts
        self._outcomes = outcomes
        self._agency = agency
        self._period = period
        self._as_of = as_of
        self._by_type: dict[str, list[LoggedStatement]] = defaultdict(list)
        for entry in entries:
            self._by_type[entry.entry_type].append(entry)
        self._publications: dict[AlertKey, LoggedStatement] = {}
        for entry in self._by_type[leaves.ALERT_PUBLISHED]:
            self._publications.setdefault(_alert_key(entry.message), entry)
        self._requests = {e.statement_hash: e for e in self._by_type[leaves.RELEASE_REQUEST]}

    def _facts(self, key: AlertKey) -> AlertFacts | None:
        return self._alerts.get(key)

    def _addressed(self, key: AlertKey, giver: str, receiver: str) -> bool:
        """Whether alert version ``key`` went from ``giver`` to ``receiver`` (and is no case)."""
        if key[0] != giver:
            return False
        facts = self._facts(key)
        if facts is not None and facts.kind in CASE_KINDS:
            return False
        if facts is not None and facts.kind is not None:
            return receiver in facts.audience
        # An alert we could not open: we were addressed if we may read its publication, which
        # the hub logs for the originator and the audience only.
        return receiver == self._agency and key in self._publications

    def direction(self, giver: str, receiver: str) -> list[Figure]:
        return [
            *self._alert_figures(giver, receiver),
            *self._request_figures(giver, receiver),
            *self._response_figures(giver, receiver),
        ]

    def _alert_figures(self, giver: str, receiver: str) -> list[Figure]:
        by_kind: dict[str, set[int]] = {kind: set() for kind in KINDS}
        by_week: dict[str, set[int]] = defaultdict(set)
        for key, entry in self._publications.items():
            if (
                key[2] != 1
                or entry not in self._period
                or not self._addressed(key, giver, receiver)
            ):
                continue
            facts = self._facts(key)
            kind = facts.kind if facts is not None and facts.kind is not None else UNKNOWN_KIND
            by_kind.setdefault(kind, set()).add(entry.index)
            by_week[iso_week(entry.logged_at)].add(entry.index)
        figures = [
            _count(ALERTS, giver, receiver, indices, detail=kind)
            for kind, indices in by_kind.items()
        ]
        figures.extend(
            _count(ALERTS_PER_WEEK, giver, receiver, indices, detail=week)
            for week, indices in sorted(by_week.items())
        )
        return figures

    def _request_figures(self, giver: str, receiver: str) -> list[Figure]:
        """``giver`` is the originator asked, ``receiver`` the requester."""
        denied = _Measured()
        approval = _Measured()
        decided: set[bytes] = set()
        for decision in self._by_type[leaves.RELEASE_DECISION]:
            message = decision.message
            assert isinstance(message, statements_pb2.ReleaseDecision)
            request = self._requests.get(bytes(message.request_hash))
            if request is None or decision.logged_at > self._as_of:
                continue
            decided.add(request.statement_hash)
            if not self._between_request(request, giver, receiver) or decision not in self._period:
                continue
            if message.outcome == statements_pb2.ReleaseDecision.APPROVED:
                approval.add(request, decision)
            elif message.outcome == statements_pb2.ReleaseDecision.DENIED:
                denied.add(request, decision)
        stale: set[int] = set()
        for request in self._by_type[leaves.RELEASE_REQUEST]:
            if (
                self._between_request(request, giver, receiver)
                and request.statement_hash not in decided
                and request in self._period
                and request.logged_at <= self._as_of - OPEN_REQUEST_AGE
            ):
                stale.add(request.index)
        return [
            _count(
                ITEMS_RELEASED_ON_REQUEST,
                giver,
                receiver,
                approval.indices,
                value=len(approval.samples),
            ),
            *_durations(APPROVAL_TIME_MEDIAN, APPROVAL_TIME_P90, giver, receiver, approval),
            _count(REQUESTS_DENIED, giver, receiver, denied.indices, value=len(denied.samples)),
            _count(OPEN_REQUESTS_OLDER_THAN_A_WEEK, giver, receiver, stale),
        ]

    @staticmethod
    def _between_request(request: LoggedStatement, giver: str, receiver: str) -> bool:
        message = request.message
        assert isinstance(message, statements_pb2.ReleaseRequest)
        return (message.originator, message.requester) == (giver, receiver)

    def _response_figures(self, giver: str, receiver: str) -> list[Figure]:
        """Receipts and feedback by ``receiver`` on ``giver``'s alerts."""
        receipt, feedback = _Measured(), _Measured()
        outcomes: dict[str, set[int]] = {outcome: set() for outcome in OUTCOMES}
        for entry_type, measured in (
            (leaves.RECEIPT, receipt),
            (leaves.FEEDBACK, feedback),
        ):
            first: dict[AlertKey, LoggedStatement] = {}
            for entry in self._by_type[entry_type]:
                if _recipient(entry.message) != receiver:
                    continue
                key = _alert_key(entry.message)
                if not self._addressed(key, giver, receiver) or key not in self._publications:
                    continue
                first.setdefault(key, entry)
                if entry_type == leaves.FEEDBACK and entry in self._period:
                    outcome = self._outcomes.get(entry.index, UNKNOWN_KIND)
                    outcomes.setdefault(outcome, set()).add(entry.index)
            for key, entry in first.items():
                if entry in self._period:
                    measured.add(self._publications[key], entry)
        figures = [
            *_durations(RECEIPT_TIME_MEDIAN, RECEIPT_TIME_P90, giver, receiver, receipt),
            *_durations(FEEDBACK_TIME_MEDIAN, FEEDBACK_TIME_P90, giver, receiver, feedback),
        ]
        figures.extend(
            _count(OUTCOMES_REPORTED, giver, receiver, indices, detail=outcome)
            for outcome, indices in outcomes.items()
        )
        return figures

    def pair(self, agency: str, partner: str) -> list[Figure]:
        """Joint cases with both agencies among the members, opened and closed in the period."""
        first, second = sorted((agency, partner))
        both = {agency, partner}
        opened: set[int] = set()
        closed: dict[tuple[str, str], int] = {}
        cases: dict[tuple[str, str], AlertFacts] = {}
        for key, entry in self._publications.items():
            facts = self._facts(key)
            if facts is None or key[2] != 1:
                continue
            if facts.kind == "CASE" and both <= facts.case_members:
                cases[(key[0], key[1])] = facts
                if entry in self._period:
                    opened.add(entry.index)
        for key, entry in sorted(self._publications.items(), key=lambda item: item[1].index):
            facts = self._facts(key)
            if facts is None or facts.kind != "CASE_ENTRY" or not facts.closes_case:
                continue
            case = facts.case
            if case is None or case not in cases or key[0] not in cases[case].case_members:
                continue
            if entry in self._period:
                closed.setdefault(case, entry.index)
        return [
            _count(CASES_OPENED, first, second, opened),
            _count(CASES_CLOSED, first, second, set(closed.values())),
        ]


_AboutAlert = statements_pb2.AlertManifest | statements_pb2.Receipt | statements_pb2.Feedback


def _alert_key(message: Message) -> AlertKey:
    if not isinstance(message, _AboutAlert):
        raise TypeError(f"{type(message).__name__} names no alert version")
    return (message.originator, message.alert_id, message.version)


def _recipient(message: Message) -> str:
    if isinstance(message, statements_pb2.Receipt | statements_pb2.Feedback):
        return message.recipient
    return ""


def _count(
    metric: str,
    giver: str,
    receiver: str,
    indices: Iterable[int],
    *,
    detail: str = "",
    value: int | None = None,
) -> Figure:
    cited = tuple(sorted(set(indices)))
    return Figure(
        metric=metric,
        from_agency=giver,
        to_agency=receiver,
        detail=detail,
        value=len(cited) if value is None else value,
        log_indices=cited,
    )


def _durations(
    median: str, p90: str, giver: str, receiver: str, measured: _Measured
) -> list[Figure]:
    """The median and 90th percentile of ``measured``; none when nothing was measured."""
    if not measured.samples:
        return []
    cited = tuple(sorted(measured.indices))
    samples = tuple(measured.samples)
    return [
        Figure(
            metric=metric,
            from_agency=giver,
            to_agency=receiver,
            value=nearest_rank(samples, percent),
            unit=MICROSECONDS,
            log_indices=cited,
            samples=samples,
        )
        for metric, percent in ((median, 50), (p90, 90))
    ]


# --- the report -------------------------------------------------------------------------------------

METRIC_LABELS: dict[str, str] = {
    ALERTS: "Alerts given",
    ALERTS_PER_WEEK: "Alerts given per week",
    ITEMS_RELEASED_ON_REQUEST: "Items released on request",
    APPROVAL_TIME_MEDIAN: "Approval time, median",
    APPROVAL_TIME_P90: "Approval time, 90th percentile",
    REQUESTS_DENIED: "Requests denied",
    OPEN_REQUESTS_OLDER_THAN_A_WEEK: "Requests open for over a week",
    RECEIPT_TIME_MEDIAN: "Delivery to first receipt, median",
    RECEIPT_TIME_P90: "Delivery to first receipt, 90th percentile",
    FEEDBACK_TIME_MEDIAN: "Delivery to feedback, median",
    FEEDBACK_TIME_P90: "Delivery to feedback, 90th percentile",
    OUTCOMES_REPORTED: "Outcomes reported",
    CASES_OPENED: "Joint cases opened",
    CASES_CLOSED: "Joint cases closed",
}
"""What each metric is called in the text and HTML reports.  In a direction A → B, A is the
agency that gave (published the alert, was asked for the item) and B the one that received
(was addressed, asked, sent the receipt or the feedback)."""


def format_duration(micros: int) -> str:
    """A duration for people: ``0.4 s``, ``12 min 5 s``, ``3 h 20 min``, ``2 d 4 h``."""
    seconds = micros / 1_000_000
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def format_value(figure: Figure) -> str:
    """The figure's value as the text and HTML reports print it."""
    return format_duration(figure.value) if figure.unit == MICROSECONDS else str(figure.value)


@dataclass(frozen=True)
class CooperationReport:
    """A cooperation report: who computed it, about whom, over which period, at which verified
    checkpoint, from how many verified entries, and its figures."""

    agency: str
    partners: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    as_of: datetime
    checkpoint_note: str
    checkpoint_size: int
    checkpoint_root_hash: bytes
    entries_verified: int
    """Log entries replayed and verified (the whole log up to the checkpoint)."""
    entries_in_period: int
    """Entries this agency may read whose log time falls in the period."""
    figures: tuple[Figure, ...]

    def to_json(self) -> dict[str, object]:
        """For ``--format json`` (snake_case)."""
        return {
            "agency": self.agency,
            "partners": list(self.partners),
            "since": _rfc3339(self.since),
            "until": _rfc3339(self.until),
            "as_of": _rfc3339(self.as_of),
            "checkpoint": {
                "size": self.checkpoint_size,
                "root_hash": self.checkpoint_root_hash.hex(),
                "note": self.checkpoint_note,
            },
            "entries_verified": self.entries_verified,
            "entries_in_period": self.entries_in_period,
            "figures": [figure.to_json() for figure in self.figures],
        }

    def to_summary(self, *, created_at: datetime) -> statements_pb2.CooperationSummary:
        """The message an agency signs for ``exchange report --sign``."""
        message = statements_pb2.CooperationSummary(
            agency=self.agency,
            partners=sorted(self.partners),
            checkpoint=self.checkpoint_note,
            checkpoint_size=self.checkpoint_size,
            checkpoint_root_hash=self.checkpoint_root_hash,
            figures=[figure.to_proto() for figure in self.figures],
        )
        if self.since is not None:
            message.since.FromDatetime(self.since)
        if self.until is not None:
            message.until.FromDatetime(self.until)
        message.as_of.FromDatetime(self.as_of)
        message.created_at.FromDatetime(created_at)
        return message


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


PAIR_METRICS = frozenset({CASES_OPENED, CASES_CLOSED})
"""Metrics about the pair rather than one direction (their figures name the two agencies in
alphabetical order)."""


@dataclass(frozen=True)
class FigureRow:
    """One line of a report's table: a figure each way (``None`` where there is none)."""

    label: str
    metric: str
    outward: Figure | None
    """From the reporting agency to the partner (or, for a pair metric, the pair's figure)."""
    inward: Figure | None

    @property
    def pair(self) -> bool:
        return self.metric in PAIR_METRICS


def figure_rows(figures: Iterable[Figure], agency: str, partner: str) -> list[FigureRow]:
    """The figures between ``agency`` and ``partner`` as table rows, in report order; the
    weekly counts (plotted, not tabulated) are left out."""
    rows: dict[tuple[str, str], dict[str, Figure]] = {}
    for figure in figures:
        if figure.metric == ALERTS_PER_WEEK or {figure.from_agency, figure.to_agency} != {
            agency,
            partner,
        }:
            continue
        way = "out" if figure.metric in PAIR_METRICS or figure.from_agency == agency else "in"
        rows.setdefault((figure.metric, figure.detail), {})[way] = figure
    result = []
    for (metric, detail), cells in rows.items():
        label = METRIC_LABELS.get(metric, metric)
        if detail:
            label += f": {detail.replace('_', ' ').lower()}"
        result.append(FigureRow(label, metric, cells.get("out"), cells.get("in")))
    return result
