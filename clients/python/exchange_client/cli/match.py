"""``exchange match``: private hit/no-hit matching with partner agencies.

* ``index add FILE [--partner AGENCY]…``: add a CSV (``kind,value[,note]``) or JSON-lines file
  to the local index and publish blinded tokens for the partners named (every partner when none
  is); ``index list``, ``index remove SELECTOR…``, ``index reblind``.
* ``query --partner AGENCY SELECTOR…`` (or ``--file``): ``hit`` or ``no-hit`` per selector.
* ``hits``: the partners' queries that hit our entries.
* ``stats``: queries made and received per partner and day, budgets, hits, bursts.
* ``policy set`` / ``policy show``: this agency's signed daily budgets for its partners.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from exchange import cli_conventions
from exchange.errors import ExchangeError, InvalidInputError
from exchange.match.selectors import KINDS, Selector, SelectorError, parse_selector
from exchange_client._internal.client import Client
from exchange_client._internal.matching import Matcher, read_index
from exchange_client._internal.profile import Profile

__all__ = ["match_app", "register"]

EXIT_USAGE = 2

SELECTOR_HELP = (
    "A selector is KIND:VALUE. Kinds and values: company:[SCHEME:]NUMBER (cn-uscc, us-ein, lei; "
    "inferred when only one fits), iban:IBAN, bic:BIC (XXX branch = head office), "
    "account:BIC:NUMBER, wallet:[CHAIN:]ADDRESS (bitcoin, ethereum, tron; inferred from the "
    "address), container:ISO6346, imo:NUMBER, phone:+E164, email:ADDRESS, cas:CAS-RN, "
    "person:NAME:YYYY-MM-DD (name folded for case, spacing, diacritics and script). Printed forms "
    "(spaces, lower case, IMO prefix...) are accepted and brought to one canonical form."
)

match_app = typer.Typer(
    name="match",
    help=(
        "Ask partners whether they know a company, account, wallet, container, vessel, "
        "chemical, phone, e-mail or person, without telling the hub. " + SELECTOR_HELP
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
index_app = typer.Typer(
    name="index",
    help="This agency's local index of selectors and the blinded tokens it publishes for them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
policy_app = typer.Typer(
    name="policy",
    help="This agency's signed daily query budgets, which the hub enforces on its partners.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
match_app.add_typer(index_app, name="index")
match_app.add_typer(policy_app, name="policy")

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]
PartnersOption = Annotated[
    list[str] | None,
    typer.Option(
        "--partner",
        metavar="AGENCY",
        help="A partner to publish for (repeat for several; default: every verified partner).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``match`` group to the ``exchange`` application."""
    app.add_typer(match_app, name="match")


def _stdout() -> Console:
    return cli_conventions.console()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def _reported(ctx: typer.Context | None = None) -> Iterator[None]:
    """Report an error on stderr (as JSON with ``--json``) with its exit code."""
    try:
        yield
    except ExchangeError as e:
        # Imported here: the main CLI module imports this one to register the group.
        from exchange_client.cli import report_error

        report_error(e, as_json=cli_conventions.json_requested(ctx))


def _profile(ctx: typer.Context) -> Profile:
    profile_dir: Path | None = getattr(ctx.find_root().obj, "profile", None)
    if profile_dir is None:
        message = "no profile: pass --profile DIR or set EXCHANGE_PROFILE"
        if cli_conventions.json_requested(ctx):
            cli_conventions.print_json_error(
                {"error": "UsageError", "reason": cli_conventions.USAGE_REASON, "message": message}
            )
        else:
            cli_conventions.print_error_line(message)
        raise typer.Exit(EXIT_USAGE)
    with _reported(ctx):
        return Profile.load(profile_dir)


@contextmanager
def _matcher(ctx: typer.Context) -> Iterator[Matcher]:
    profile = _profile(ctx)
    with _reported(ctx), Client(profile, hub=getattr(ctx.find_root().obj, "hub", None)) as client:
        yield client.matching


class _PhaseBar:
    """The matcher's ``progress(phase, done, total)`` on one shared progress bar."""

    def __init__(self, bar: cli_conventions.ProgressBar) -> None:
        self._bar = bar
        self._phase = ""
        self._done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase:
            self._phase, self._done = phase, 0
            self._bar.describe(f"{phase} ({total})")
        self._bar.advance(max(done - self._done, 0))
        self._done = done


@contextmanager
def _progress(ctx: typer.Context, description: str) -> Iterator[_PhaseBar]:
    as_json = cli_conventions.json_requested(ctx)
    with cli_conventions.progress(description, as_json=as_json) as bar:
        yield _PhaseBar(bar)


def _selectors(values: list[str] | None, file: Path | None) -> list[Selector]:
    """The selectors of the command line and of ``--file`` (one per line), canonical; every bad
    one is reported, and none is used."""
    texts = list(values or [])
    where = [f"argument {n}" for n in range(1, len(texts) + 1)]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"{file}: cannot read the file: {e}") from e
        for number, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                texts.append(line.strip())
                where.append(f"{file} line {number}")
    if not texts:
        raise InvalidInputError("name at least one selector (KIND:VALUE) or --file")
    selectors, problems = [], []
    for place, text in zip(where, texts, strict=True):
        try:
            selectors.append(parse_selector(text))
        except SelectorError as e:
            problems.append(f"{place}: {e.message}")
    if problems:
        raise InvalidInputError(
            f"{len(problems)} bad selector{'s' if len(problems) > 1 else ''}, nothing was "
            "asked:\n  " + "\n  ".join(problems)
        )
    return selectors


# --- index --------------------------------------------------------------------------------------


@index_app.command("add")
def index_add(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="CSV with header kind,value[,note], or JSON lines with those fields."
        ),
    ],
    partner: PartnersOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add the selectors of FILE to the index and publish their blinded tokens to the hub.

    Tokens are made only for the partners named with --partner, for every verified partner when
    none is. Every bad row is named with its row and field, and then nothing is indexed, neither
    here nor on the hub. A partner whose keys changed is re-blinded on the way.
    """
    with _reported(ctx), _progress(ctx, "reading") as bar:
        rows = read_index(file, progress=bar)
    with _matcher(ctx) as matcher, _reported(ctx), _progress(ctx, "indexing") as bar:
        change = matcher.add(rows, partners=partner, progress=bar)
    if json_output:
        _print_json(change.to_json())
        return
    console = _stdout()
    console.print(
        f"indexed {change.entries} selectors"
        + (f" ({change.duplicates} repeated rows merged)" if change.duplicates else "")
    )
    for name, sent in change.tokens.items():
        total = change.totals.get(name, 0)
        note = " (re-blinded under new keys)" if name in change.reblinded else ""
        console.print(f"  {name}: {sent} tokens sent, {total} held by the hub{note}")


@index_app.command("list")
def index_list(
    ctx: typer.Context,
    partner: Annotated[
        str | None, typer.Option("--partner", metavar="AGENCY", help="Only those for AGENCY.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", metavar="KIND", help=f"Only one kind ({', '.join(KINDS)}).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, metavar="N", help="At most N entries.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the index's entries (read locally; the hub holds tokens only)."""
    profile = _profile(ctx)
    with _reported(ctx):
        entries = Matcher.local_entries(profile, partner=partner, kind=kind, limit=limit)
    if json_output:
        _print_json([entry.to_json() for entry in entries])
        return
    table = Table("selector", "partners", "note", "added")
    for entry in entries:
        table.add_row(str(entry.selector), " ".join(entry.partners), entry.note, entry.added_at)
    _stdout().print(table)


@index_app.command("remove")
def index_remove(
    ctx: typer.Context,
    selectors: Annotated[
        list[str] | None, typer.Argument(metavar="SELECTOR...", help="KIND:VALUE selectors.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", metavar="FILE", help="Selectors, one per line.")
    ] = None,
    partner: Annotated[
        list[str] | None,
        typer.Option(
            "--partner", metavar="AGENCY", help="Stop publishing for AGENCY only (repeatable)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Remove entries from the index; their tokens are removed from the hub first, so a
    partner's later query is a no-hit."""
    with _reported(ctx):
        wanted = _selectors(selectors, file)
    with _matcher(ctx) as matcher, _reported(ctx):
        change = matcher.remove(wanted, partners=partner)
    if json_output:
        _print_json(change.to_json())
        return
    _stdout().print(f"removed {change.entries} selectors")
    for name in change.tokens:
        _stdout().print(f"  {name}: {change.totals.get(name, 0)} tokens left on the hub")


@index_app.command("reblind")
def index_reblind(
    ctx: typer.Context,
    partner: Annotated[
        list[str] | None, typer.Option("--partner", metavar="AGENCY", help="Only AGENCY.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Re-blind even if the keys did not change: replaces the hub's tokens by the index.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Re-blind the tokens of every partner whose encryption key (or ours) changed.

    The hub's tokens for such a partner are replaced, in one update, by the index's entries
    blinded under the current keys; until then the partner's queries are refused as stale.
    """
    with _matcher(ctx) as matcher, _reported(ctx), _progress(ctx, "re-blinding") as bar:
        change = matcher.reblind(partners=partner, force=force, progress=bar)
    if json_output:
        _print_json(change.to_json())
        return
    if not change.reblinded:
        _stdout().print("every partner's tokens are blinded under the current keys")
    for name in change.reblinded:
        _stdout().print(f"re-blinded {change.tokens[name]} tokens for {name}")


# --- query, hits, stats ---------------------------------------------------------------------------


@match_app.command("query")
def query(
    ctx: typer.Context,
    selectors: Annotated[
        list[str] | None, typer.Argument(metavar="SELECTOR...", help="KIND:VALUE selectors.")
    ] = None,
    partner: Annotated[
        str, typer.Option("--partner", metavar="AGENCY", help="The agency whose index to search.")
    ] = "",
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="Selectors, one per line ('#' comments)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Ask a partner whether it knows each selector: prints hit or no-hit per selector.

    --json prints a list of {"selector": "KIND:VALUE", "result": "hit"|"no-hit"} in the order
    asked, each selector in its canonical form. Every distinct selector counts against the
    partner's daily budget for us; over it the query is refused (exit 4).
    """
    if not partner:
        raise typer.BadParameter("name the partner to ask", param_hint="--partner AGENCY")
    with _reported(ctx):
        wanted = _selectors(selectors, file)
    with _matcher(ctx) as matcher, _reported(ctx):
        results = matcher.query(partner, wanted)
    if json_output:
        _print_json([result.to_json() for result in results])
        return
    table = Table("selector", "result")
    for result in results:
        table.add_row(str(result.selector), "hit" if result.hit else "no-hit")
    _stdout().print(table)


@match_app.command("hits")
def hits(
    ctx: typer.Context,
    include_seen: Annotated[
        bool, typer.Option("--all", help="Also the hits shown before.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """The partners' queries that hit this agency's entries, each with the entries it hit.

    The hub tells us only the digests of the tokens hit; they are mapped to entries here. Follow
    up with an alert (`exchange publish`) or a release (`exchange approve`).
    """
    with _matcher(ctx) as matcher, _reported(ctx):
        reports = matcher.hits(include_seen=include_seen)
    if json_output:
        _print_json([report.to_json() for report in reports])
        return
    if not reports:
        _stdout().print("no new hits")
        return
    table = Table("when", "partner", "entries hit", "note")
    for report in reports:
        for entry in report.entries:
            table.add_row(report.created_at.isoformat(), report.querier, str(entry.selector), entry.note)
        if report.unknown:
            table.add_row(
                report.created_at.isoformat(), report.querier, f"{report.unknown} no longer indexed", ""
            )
    _stdout().print(table)


@match_app.command("stats")
def stats(
    ctx: typer.Context,
    days: Annotated[
        int, typer.Option("--days", min=1, max=366, metavar="N", help="Days back, today included.")
    ] = 7,
    json_output: JsonOption = False,
) -> None:
    """Queries made and received per partner and day (UTC), hits, budget and what is left,
    the busiest minute (a burst: over a tenth of the day's budget in one minute), and each
    partner's index here and on the hub."""
    with _matcher(ctx) as matcher, _reported(ctx):
        found = matcher.stats(days=days)
    if json_output:
        _print_json(found.to_json())
        return
    console = _stdout()
    table = Table(
        "day", "partner", "direction", "queries", "selectors", "hits", "budget", "left",
        "peak/min", "burst",
    )
    for day in found.days:
        table.add_row(
            day.day, day.partner, day.direction, str(day.queries), str(day.selectors),
            str(day.hits), str(day.daily_budget), str(day.budget_left),
            str(day.peak_minute_selectors), "BURST" if day.burst else "",
        )
    console.print(table)
    indexes = Table("partner", "entries here", "tokens on the hub", "state")
    for index in found.indexes:
        state = "stale: run `exchange match index reblind`" if index.stale else "current"
        indexes.add_row(index.partner, str(index.local_entries), str(index.hub_tokens), state)
    console.print(indexes)
    if found.policy_number:
        budgets = ", ".join(f"{p}={b}" for p, b in found.budgets.items())
        console.print(
            f"policy {found.policy_number}: {found.default_daily_budget} selectors per partner "
            f"per day" + (f"; {budgets}" if budgets else "")
        )
    else:
        console.print("no policy signed: each partner may ask about 10000 selectors a day")


# --- policy ---------------------------------------------------------------------------------------


def _budget_pairs(values: list[str] | None) -> dict[str, int]:
    budgets: dict[str, int] = {}
    for value in values or []:
        agency, separator, number = value.partition("=")
        if not separator or not number.isdigit():
            raise typer.BadParameter(f"{value!r}: expected AGENCY=N, e.g. agency-b=5000")
        budgets[agency] = int(number)
    return budgets


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    daily_budget: Annotated[
        int,
        typer.Option(
            "--daily-budget", min=0, metavar="N", help="Selectors per partner per UTC day."
        ),
    ],
    partner_budget: Annotated[
        list[str] | None,
        typer.Option(
            "--partner", metavar="AGENCY=N", help="Another budget for one partner (repeatable)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Sign and publish this agency's query budgets; the hub refuses partners' queries beyond
    them (RESOURCE_EXHAUSTED, reason MATCH_BUDGET_EXHAUSTED)."""
    budgets = _budget_pairs(partner_budget)
    with _matcher(ctx) as matcher, _reported(ctx):
        number = matcher.set_policy(default_daily_budget=daily_budget, budgets=budgets)
    if json_output:
        _print_json({"number": number, "default_daily_budget": daily_budget, "budgets": budgets})
    else:
        _stdout().print(f"policy {number} signed and sent")


@policy_app.command("show")
def policy_show(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """This agency's current policy, as the hub holds it (verified here)."""
    with _matcher(ctx) as matcher, _reported(ctx):
        found = matcher.stats(days=1)
    document = found.to_json()["policy"]
    if json_output:
        _print_json(document)
    elif not found.policy_number:
        _stdout().print("no policy signed: each partner may ask about 10000 selectors a day")
    else:
        _stdout().print(json.dumps(document, indent=2))
