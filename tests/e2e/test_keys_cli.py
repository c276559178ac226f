"""`exchange keys status`: the real CLI in a subprocess, on profiles whose certificates were made
at a chosen moment in the past (so no clock is faked)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exchange.hub.init import init_exchange
from exchange.pki import DEFAULT_CERTIFICATE_VALIDITY_DAYS

BIN = Path(sys.executable).parent


def keys_status(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "exchange"), "--profile", str(profile), "keys", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("made_days_ago", "state", "exit_code"),
    [
        (0, "ok", 0),
        (DEFAULT_CERTIFICATE_VALIDITY_DAYS - 10, "expiring", 1),
        (DEFAULT_CERTIFICATE_VALIDITY_DAYS + 10, "expired", 1),
    ],
    ids=["fresh", "within the warning period", "expired"],
)
def test_keys_status_reports_expiry_and_exits_1_when_action_is_needed(
    tmp_path: Path, made_days_ago: int, state: str, exit_code: int
) -> None:
    made = datetime.now(UTC) - timedelta(days=made_days_ago)
    result = init_exchange(
        tmp_path / "exchange",
        ["agency-a"],
        listen="127.0.0.1:7443",
        now=made,
        tls_days=DEFAULT_CERTIFICATE_VALIDITY_DAYS,
        key_days=DEFAULT_CERTIFICATE_VALIDITY_DAYS,
    )
    profile = result.profiles["agency-a"]
    shown = keys_status(profile, "--json")
    assert shown.returncode == exit_code, shown.stderr
    report = {entry["kind"]: entry for entry in json.loads(shown.stdout)}
    assert sorted(report) == ["ca", "encryption", "signing", "tls", "witness"]
    assert {report[kind]["state"] for kind in ("tls", "signing", "encryption", "witness")} == {
        state
    }
    assert report["ca"]["state"] == "ok"
    table = keys_status(profile)
    assert table.returncode == exit_code
    assert "signing" in table.stdout
    if exit_code:
        assert "expire soon or have expired" in table.stderr
        assert "exchange keys rotate --tls --signing --encryption --witness" in table.stderr


def test_the_default_validity_periods_and_what_status_says_to_run(tmp_path: Path) -> None:
    # 70 days after init: the 90-day TLS certificate is within the warning period, the one-year
    # key certificates are not.
    made = datetime.now(UTC) - timedelta(days=70)
    result = init_exchange(tmp_path / "exchange", ["agency-a"], listen="127.0.0.1:7443", now=made)
    shown = keys_status(result.profiles["agency-a"], "--json")
    assert shown.returncode == 1
    report = {entry["kind"]: entry for entry in json.loads(shown.stdout)}
    assert report["tls"]["state"] == "expiring" and report["tls"]["days_left"] == 19
    assert {report[k]["state"] for k in ("signing", "encryption", "witness")} == {"ok"}
    assert report["signing"]["days_left"] == 294
    table = keys_status(result.profiles["agency-a"])
    assert "renew them with `exchange keys rotate --tls`" in table.stderr


def test_a_longer_warning_period_turns_a_fresh_profile_into_a_warning(tmp_path: Path) -> None:
    result = init_exchange(tmp_path / "exchange", ["agency-a"], listen="127.0.0.1:7443")
    profile = result.profiles["agency-a"]
    assert keys_status(profile, "--warning-days", "1000").returncode == 1
    assert keys_status(profile, "--warning-days", "30").returncode == 0


def test_init_takes_the_validity_periods(tmp_path: Path) -> None:
    made = subprocess.run(
        [str(BIN / "exchange-hub"), "init", str(tmp_path / "exchange"), "--agency", "agency-a",
         "--listen", "127.0.0.1:7443", "--tls-days", "45", "--key-days", "100"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert made.returncode == 0, made.stderr
    shown = keys_status(tmp_path / "exchange" / "agencies" / "agency-a", "--json")
    report = {entry["kind"]: entry["days_left"] for entry in json.loads(shown.stdout)}
    assert (report["tls"], report["signing"], report["witness"]) == (44, 99, 99), shown.stdout
    refused = subprocess.run(
        [str(BIN / "exchange-hub"), "init", str(tmp_path / "other"), "--agency", "agency-a",
         "--tls-days", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert "--tls-days" in refused.stderr, refused.stderr
    assert not (tmp_path / "other").exists()
