"""The offline CLI commands, driven through typer's runner on a throw-away app."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from exchange.alerts import Watchlist, WatchlistUpdate
from exchange.v1 import payloads_pb2
from exchange_client.cli.offline import register

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SHIPMENT = str(EXAMPLES / "mislabelled-piperidone-shipment.yaml")
runner = CliRunner()


def make_app(provider: object = None) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    if provider is None:
        register(app)
    else:
        register(app, watchlist_provider=provider)  # type: ignore[arg-type]
    return app


def one_item_draft(tmp_path: Path, policy: str, payload: str) -> str:
    """A YAML draft file of one item with the given policy and payload lines."""
    path = tmp_path / "draft.yaml"
    path.write_text(
        f"kind: SHIPMENT\ntitle: t\nitems:\n  - id: s1\n    policy: {policy}\n    {payload}\n",
        encoding="utf-8",
    )
    return str(path)


def bad_draft(tmp_path: Path) -> str:
    return one_item_draft(
        tmp_path,
        "{release: 7, tlp: AMBER}",
        "shipment: {chemicals: [{cas_rn: 41661-47-5}], hs_code: 2933399073}",
    )


def test_validate_valid_draft_exits_0_and_prints_warnings() -> None:
    result = runner.invoke(make_app(), ["validate", SHIPMENT])
    assert result.exit_code == 0, result.output
    assert "valid (3 items)" in result.output
    assert "4-piperidone" in result.output


def test_validate_invalid_draft_exits_1_with_every_error(tmp_path: Path) -> None:
    result = runner.invoke(make_app(), ["validate", bad_draft(tmp_path)])
    assert result.exit_code == 1
    for text in [
        "items[0].policy.release",
        "items[0].shipment.chemicals[0].cas_rn",
        "items[0].shipment.hs_code",
    ]:
        assert text in result.output


def test_validate_json(tmp_path: Path) -> None:
    ok = json.loads(runner.invoke(make_app(), ["validate", SHIPMENT, "--json"]).output)
    assert ok["valid"] is True and ok["errors"] == [] and ok["warnings"]
    result = runner.invoke(make_app(), ["validate", bad_draft(tmp_path), "--json"])
    assert result.exit_code == 1
    bad = json.loads(result.stdout)
    assert bad["valid"] is False
    assert {
        "field": "items[0].shipment.chemicals[0].cas_rn",
        "description": "check digit is 5, expected 6",
    } in bad["errors"]
    assert len(bad["errors"]) == 3
    error = json.loads(result.stderr)  # and the failure itself, as for every --json command
    assert (error["error"], error["reason"]) == ("DraftError", "DRAFT_INVALID")
    assert len(error["violations"]) == 3


def test_missing_file_is_a_usage_error() -> None:
    assert runner.invoke(make_app(), ["validate", "no-such-draft.yaml"]).exit_code == 2


def test_watchlist_match_json_is_a_list_of_flags() -> None:
    result = runner.invoke(make_app(), ["watchlist", "match", SHIPMENT, "--json"])
    assert result.exit_code == 0
    flags = json.loads(result.stdout)
    assert isinstance(flags, list)
    assert any(f["reason"] == "relabelled" and f["cas_rn"] == "41661-47-6" for f in flags)


def test_watchlist_show() -> None:
    result = runner.invoke(make_app(), ["watchlist", "show"])
    assert result.exit_code == 0 and "41661-47-6" in result.output
    shown = json.loads(runner.invoke(make_app(), ["watchlist", "show", "--json"]).output)
    assert shown["version"] == Watchlist.shipped().version
    assert {"name", "cas_rn", "control", "list_source"} <= set(shown["entries"][0])


def test_watchlist_source_is_injectable() -> None:
    update = WatchlistUpdate(
        "agency-b",
        4,
        (
            payloads_pb2.WatchlistEntry(
                name="1-benzyl-4-piperidone",
                cas_rn="3612-20-2",
                control=payloads_pb2.Chemical.NATIONAL,
            ),
        ),
    )

    def provider(context: typer.Context) -> Watchlist:
        return Watchlist.shipped().merge([update])

    shown = json.loads(runner.invoke(make_app(provider), ["watchlist", "show", "--json"]).output)
    assert shown["entries"][-1]["listed_by"] == "agency-b"


def printed_draft(tmp_path: Path) -> str:
    return one_item_draft(
        tmp_path,
        "{release: IMMEDIATE, tlp: AMBER}",
        "account: {iban: GB82 WEST 1234 5698 7654 32, bic: nwbkgb2l}",
    )


def test_validate_shows_each_normalisation_as_a_notice(tmp_path: Path) -> None:
    result = runner.invoke(make_app(), ["validate", printed_draft(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "valid (1 item)" in result.output
    assert (
        'items[0].account.iban: normalised "GB82 WEST 1234 5698 7654 32" to '
        '"GB82WEST12345698765432"' in result.output
    )
    assert 'items[0].account.bic: normalised "nwbkgb2l" to "NWBKGB2L"' in result.output


def test_validate_json_lists_notices_beside_errors_and_warnings(tmp_path: Path) -> None:
    result = runner.invoke(make_app(), ["validate", printed_draft(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["notices"] == [
        {
            "field": "items[0].account.iban",
            "description": 'normalised "GB82 WEST 1234 5698 7654 32" to "GB82WEST12345698765432"',
            "original": "GB82 WEST 1234 5698 7654 32",
            "canonical": "GB82WEST12345698765432",
        },
        {
            "field": "items[0].account.bic",
            "description": 'normalised "nwbkgb2l" to "NWBKGB2L"',
            "original": "nwbkgb2l",
            "canonical": "NWBKGB2L",
        },
    ]


def test_validate_json_of_an_invalid_draft_keeps_its_shape(tmp_path: Path) -> None:
    result = runner.invoke(make_app(), ["validate", bad_draft(tmp_path), "--json"])
    assert result.exit_code == 1
    assert set(json.loads(result.stdout)) == {"valid", "message", "errors", "warnings", "notices"}


def test_validate_reports_an_explicit_empty_value(tmp_path: Path) -> None:
    path = one_item_draft(
        tmp_path,
        "{release: IMMEDIATE, tlp: AMBER}",
        'shipment: {chemicals: [{name: 4-piperidone, cas_rn: ""}]}',
    )
    result = runner.invoke(make_app(), ["validate", path, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"] == [
        {"field": "items[0].shipment.chemicals[0].cas_rn", "description": "is empty"}
    ]
