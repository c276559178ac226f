"""The HTML cooperation report: one self-contained file whose plots are inline SVG, opened in
headless Chromium with no console error and nothing fetched."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from exchange.audit.cooperation import MICROSECONDS, CooperationReport, Figure
from exchange_client._internal.report_html import render_html
from tests.browser import load_page

US, CN = "us-dea", "cn-nncc"
HOUR = 3_600_000_000


def sample_report() -> CooperationReport:
    samples = (HOUR // 2, HOUR, 3 * HOUR, 7 * HOUR)
    figures = (
        Figure("alerts", US, CN, 2, detail="SHIPMENT", log_indices=(3, 9)),
        Figure("alerts", CN, US, 1, detail="FUND_FLOW", log_indices=(12,)),
        Figure("alerts_per_week", US, CN, 2, detail="2026-W45", log_indices=(3, 9)),
        Figure("alerts_per_week", CN, US, 1, detail="2026-W47", log_indices=(12,)),
        Figure("receipt_time_median", US, CN, HOUR, unit=MICROSECONDS, log_indices=(3, 4),
               samples=samples),
        Figure("outcomes_reported", US, CN, 1, detail="SEIZED", log_indices=(20,)),
        Figure("joint_cases_opened", CN, US, 1, log_indices=(30,)),
    )
    return CooperationReport(
        agency=US, partners=(CN,), since=None, until=None,
        as_of=datetime(2026, 11, 30, tzinfo=UTC), checkpoint_note="note\n", checkpoint_size=40,
        checkpoint_root_hash=bytes(range(32)), entries_verified=40, entries_in_period=31,
        figures=figures,
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_report_is_one_file_with_inline_svg_plots_and_nothing_to_fetch() -> None:
    page = render_html(sample_report())
    parser = _Elements()
    parser.feed(page)
    tags = [tag for tag, _ in parser.tags]
    assert tags.count("svg") == 5
    assert "script" not in tags and "img" not in tags and "link" not in tags
    for _, attrs in parser.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value or value.startswith("#"), f"{name}={value!r} would be fetched"
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
    assert "http" not in without_namespaces and "@import" not in page
    assert re.findall(r"url\((?!#)", page) == []
    assert "<?xml" not in page
    assert "2 h" not in page and "1 h 0 min" in page  # the median, formatted
    assert "3, 9" in page  # cited log indices


def test_the_same_report_renders_to_the_same_bytes() -> None:
    assert render_html(sample_report()) == render_html(sample_report())


_PLOTS = """[...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : null;
    return {id: f.id, width: box ? box.width : 0, height: box ? box.height : 0,
            paths: svg ? svg.querySelectorAll('path').length : 0};
})"""


def test_chromium_loads_the_report_with_no_error_fetching_nothing_and_shows_the_plots(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(sample_report()), encoding="utf-8")
    page = load_page(path, evaluate=_PLOTS)
    assert page.errors == []
    assert page.requests == [path.resolve().as_uri()]
    plots = {plot["id"]: plot for plot in page.evaluated}
    assert set(plots) == {
        "plot-alerts-per-week",
        "plot-times-approval_time_median",
        "plot-times-receipt_time_median",
        "plot-times-feedback_time_median",
        "plot-outcomes",
    }
    for plot in plots.values():
        assert plot["width"] > 200 and plot["height"] > 100 and plot["paths"] > 10, plot


def test_the_browser_check_catches_console_errors_exceptions_and_failed_loads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broken.html"
    path.write_text(
        "<!DOCTYPE html><html><body><img src='missing.png'>"
        "<script>console.error('plot failed'); undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    page = load_page(path)
    assert "plot failed" in page.errors
    assert any("ReferenceError" in e or "Uncaught" in e for e in page.errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in page.errors)
    assert len(page.requests) == 2
