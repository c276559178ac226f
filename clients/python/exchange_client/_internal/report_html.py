"""The cooperation report as one self-contained HTML file, with plots drawn by matplotlib.

Everything is inline: the style sheet, and each plot as an SVG element (matplotlib's SVG
backend, text drawn as paths so that no font is fetched).  No script, no image, font or style
sheet from anywhere else: the file opens the same offline, years later, at a bilateral meeting.
The plots are alerts per week each way, the distributions of response times, and the outcomes
reported; the tables list every figure with the log indices it cites.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

from matplotlib.axes import Axes
from matplotlib.figure import Figure as PlotFigure
from matplotlib.ticker import MaxNLocator

from exchange.audit.cooperation import (
    ALERTS_PER_WEEK,
    APPROVAL_TIME_MEDIAN,
    FEEDBACK_TIME_MEDIAN,
    OUTCOMES_REPORTED,
    RECEIPT_TIME_MEDIAN,
    CooperationReport,
    Figure,
    figure_rows,
    format_value,
)

__all__ = ["render_html"]

_COLOURS = ("#1f5f8b", "#c2571a")
_BINS = 12
# No <metadata> block (its RDF namespaces) and no date: the same report, the same bytes.
_NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_SVG_SETTINGS: dict[Any, Any] = {"svg.fonttype": "path", "font.size": 9.0}
_DISTRIBUTIONS = (
    (APPROVAL_TIME_MEDIAN, "Approval of requests"),
    (RECEIPT_TIME_MEDIAN, "Delivery to first receipt"),
    (FEEDBACK_TIME_MEDIAN, "Delivery to feedback"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #1b1b1b;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left;
         vertical-align: top; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; } .indices { color: #555; font-size: 0.85em; max-width: 30em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure.plot { margin: 0; border: 1px solid #e3e3e3; padding: 0.5em; }
figure.plot svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #333; }
"""


def render_html(report: CooperationReport) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_title(report))}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{_e(_title(report))}</h1>",
        _meta(report),
    ]
    for partner in report.partners:
        figures = [f for f in report.figures if partner in (f.from_agency, f.to_agency)]
        parts.append(_partner_section(report.agency, partner, figures))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _title(report: CooperationReport) -> str:
    return f"Cooperation report of {report.agency} with {', '.join(report.partners)}"


def _when(moment: datetime | None, default: str) -> str:
    return default if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _meta(report: CooperationReport) -> str:
    rows = [
        (
            "Period",
            (
                f"{_when(report.since, 'the start of the log')} to "
                f"{_when(report.until, 'the checkpoint')}"
            ),
        ),
        ("Open requests measured at", _when(report.as_of, "")),
        (
            "Verified checkpoint",
            f"size {report.checkpoint_size}, root {report.checkpoint_root_hash.hex()}",
        ),
        (
            "Computed from",
            (
                f"{report.entries_in_period} entries in the period, of "
                f"{report.entries_verified} log entries replayed and verified"
            ),
        ),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return (
        f'<table class="meta">{body}</table>'
        '<p class="meta">Every figure cites the log entries it was computed from: the partner '
        "can recompute it from its own copy of the log. A → B reads: from the agency that gave "
        "(published, was asked) to the one that received (was addressed, asked, answered).</p>"
    )


def _partner_section(agency: str, partner: str, figures: Sequence[Figure]) -> str:
    ways = ((agency, partner), (partner, agency))
    plots = [
        _plot("alerts-per-week", "Alerts per week, each way", _alerts_per_week(figures, ways)),
        *(
            _plot(f"times-{metric}", f"{title}: distribution", _distribution(figures, metric, ways))
            for metric, title in _DISTRIBUTIONS
        ),
        _plot("outcomes", "Outcomes reported on alerts, each way", _outcomes(figures, ways)),
    ]
    return (
        f"<section><h2>With {_e(partner)}</h2>"
        f'<div class="plots">{"".join(plots)}</div>'
        f"{_table(figures, agency, partner)}</section>"
    )


def _cell(figure: Figure | None) -> str:
    if figure is None:
        return "<td></td><td></td>"
    cited = ", ".join(str(i) for i in figure.log_indices) or "—"
    return (
        f'<td class="value">{_e(format_value(figure))}</td>'
        f'<td class="indices">{_e(cited)}</td>'
    )


def _table(figures: Sequence[Figure], agency: str, partner: str) -> str:
    rows = []
    for row in figure_rows(figures, agency, partner):
        inward = '<td colspan="2" class="indices">(both)</td>' if row.pair else _cell(row.inward)
        rows.append(f"<tr><td>{_e(row.label)}</td>{_cell(row.outward)}{inward}</tr>")
    return (
        "<h3>Every figure</h3><table><thead><tr><th rowspan=\"2\">Figure</th>"
        f'<th colspan="2">{_e(agency)} → {_e(partner)}</th>'
        f'<th colspan="2">{_e(partner)} → {_e(agency)}</th></tr>'
        "<tr><th>value</th><th>log indices</th><th>value</th><th>log indices</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _plot(name: str, caption: str, drawn: PlotFigure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({**_SVG_SETTINGS, "svg.hashsalt": name}):
        drawn.savefig(buffer, format="svg", metadata=_NO_METADATA, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: inline SVG
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_e(caption)}" ', 1)
    return (
        f'<figure class="plot" id="plot-{_e(name)}">{svg}'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _new_plot() -> PlotFigure:
    with matplotlib.rc_context(_SVG_SETTINGS):
        figure = PlotFigure(figsize=(5.2, 2.8), dpi=100)
        figure.subplots()
    return figure


def _week_start(label: str) -> date:
    year, week = label.split("-W")
    return date.fromisocalendar(int(year), int(week), 1)


def _alerts_per_week(figures: Sequence[Figure], ways: Sequence[tuple[str, str]]) -> PlotFigure:
    counts: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
    for figure in figures:
        if figure.metric == ALERTS_PER_WEEK:
            counts[(figure.from_agency, figure.to_agency)][_week_start(figure.detail)] = (
                figure.value
            )
    weeks = sorted({week for per_way in counts.values() for week in per_way})
    if weeks:
        span = (weeks[-1] - weeks[0]).days // 7 + 1
        weeks = [weeks[0] + timedelta(weeks=n) for n in range(span)]
    plot = _new_plot()
    axes = plot.axes[0]
    width = 0.4
    for offset, (way, colour) in enumerate(zip(ways, _COLOURS, strict=True)):
        values = [counts[way].get(week, 0) for week in weeks]
        positions = [n + (offset - 0.5) * width for n in range(len(weeks))]
        axes.bar(positions, values, width, label=f"{way[0]} → {way[1]}", color=colour)
    axes.set_xticks(range(len(weeks)), [week.strftime("%d %b") for week in weeks], rotation=45)
    axes.set_ylabel("alerts")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(axes, bool(weeks), "no alerts in the period")
    return plot


def _distribution(
    figures: Sequence[Figure], metric: str, ways: Sequence[tuple[str, str]]
) -> PlotFigure:
    samples: dict[tuple[str, str], tuple[int, ...]] = {}
    for figure in figures:
        if figure.metric == metric:
            samples[(figure.from_agency, figure.to_agency)] = figure.samples
    plot = _new_plot()
    axes = plot.axes[0]
    present = [
        (way, colour) for way, colour in zip(ways, _COLOURS, strict=True) if samples.get(way)
    ]
    longest = max((max(samples[way]) for way, _ in present), default=0)
    scale, unit = _time_scale(longest)
    # Shared bin edges for both directions, a little past the longest so that it falls inside.
    top = longest / scale * 1.05
    bins = [top * step / _BINS for step in range(_BINS + 1)] if longest else _BINS
    for way, colour in present:
        values = [value / scale for value in samples[way]]
        axes.hist(
            values,
            bins=bins,
            alpha=0.7,
            color=colour,
            label=f"{way[0]} → {way[1]} (n={len(values)})",
        )
    axes.set_xlabel(unit)
    axes.set_ylabel("count")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(axes, bool(present), "nothing measured in the period")
    return plot


def _time_scale(longest_micros: int) -> tuple[float, str]:
    for scale, unit in ((86_400e6, "days"), (3_600e6, "hours"), (60e6, "minutes")):
        if longest_micros >= 2 * scale:
            return scale, unit
    return 1e6, "seconds"


def _outcomes(figures: Sequence[Figure], ways: Sequence[tuple[str, str]]) -> PlotFigure:
    per_way: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for figure in figures:
        if figure.metric == OUTCOMES_REPORTED:
            per_way[(figure.from_agency, figure.to_agency)][figure.detail] = figure.value
    outcomes = sorted({o for values in per_way.values() for o in values})
    plot = _new_plot()
    axes = plot.axes[0]
    height = 0.4
    for offset, (way, colour) in enumerate(zip(ways, _COLOURS, strict=True)):
        values = [per_way[way].get(outcome, 0) for outcome in outcomes]
        positions = [n + (offset - 0.5) * height for n in range(len(outcomes))]
        axes.barh(
            positions,
            values,
            height,
            color=colour,
            label=f"reported by {way[1]} on {way[0]}'s alerts",
        )
    axes.set_yticks(range(len(outcomes)), [o.replace("_", " ").lower() for o in outcomes])
    axes.set_xlabel("reports")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    total = sum(v for values in per_way.values() for v in values.values())
    _finish(axes, total > 0, "no outcomes reported in the period")
    return plot


def _finish(axes: Axes, has_data: bool, empty_text: str) -> None:
    if has_data:
        axes.legend(fontsize=7, frameon=False)
    else:
        axes.text(
            0.5, 0.5, empty_text, ha="center", va="center", transform=axes.transAxes, color="#777"
        )
    axes.spines[["top", "right"]].set_visible(False)
