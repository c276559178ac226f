"""`exchange export`, `exchange import` and `exchange taxii serve` as operators run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from taxii2client.v21 import Server

from tests.e2e.test_cli import BIN, GOOD_DRAFT, Exchange, exchange, write_draft  # noqa: F401
from tests.unit.interop.conftest import stix_errors

EXIT_ERROR = 1
TOKEN = "e2e-token-0123456789abcdef"


def test_export_import_validate(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    alert_id = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    bundle_file = tmp_path / "alert.stix.json"
    exported = exchange.run("export", alert_id, "--format", "stix21", "--output", str(bundle_file),
                            agency="agency-b")
    assert "exported" in exported.stderr
    bundle = json.loads(bundle_file.read_text())
    assert stix_errors(bundle) == []
    misp = json.loads(exchange.run("export", alert_id, "--format", "misp", agency="agency-b").stdout)
    assert misp["Event"]["info"] == GOOD_DRAFT["title"]

    imported = tmp_path / "alert.yaml"
    exchange.run("import", str(bundle_file), "--format", "stix21", "--output", str(imported),
                 agency="agency-b")
    exchange.run("exchange", "validate", str(imported))
    summary = exchange.json("import", str(bundle_file), "--format", "stix21", agency="agency-b")
    assert isinstance(summary, dict) and summary["valid"] is True and summary["warnings"] == []

    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "objects": [')
    target = tmp_path / "never.yaml"
    failed = exchange.run("import", str(broken), "--format", "stix21", "--output", str(target),
                          agency="agency-b", expect=EXIT_ERROR)
    assert "not valid JSON" in failed.stderr and "Traceback" not in failed.stderr
    assert not target.exists() and list(tmp_path.glob(".never.yaml.*")) == []


def test_taxii_serve_from_the_profile(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    exchange.run("publish", str(draft), agency="agency-a")
    profile = exchange.data / "agencies" / "agency-b"
    token_file = profile / "taxii.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    with (profile / "profile.toml").open("a") as config:
        config.write('\n[taxii]\ntoken_file = "taxii.token"\nusername = "opencti"\n')
    refused = exchange.run("taxii", "serve", "--listen", "127.0.0.1:0", agency="agency-b",
                           expect=EXIT_ERROR)
    assert "chmod 600" in refused.stderr  # a token anyone may read is refused
    token_file.chmod(0o600)
    server = subprocess.Popen(
        [str(BIN / "exchange"), "--profile", str(profile), "taxii", "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        match = re.search(r"serving TAXII 2\.1 at (http://127\.0\.0\.1:\d+/taxii2/)", line)
        assert match, line
        (collection,) = Server(match.group(1), user="opencti", password=TOKEN).default.collections
        objects = collection.get_objects()["objects"]
        assert {obj["type"] for obj in objects} >= {"report", "identity", "marking-definition"}
        assert stix_errors({"type": "bundle", "id": "bundle--5d3c1bb6-6a4a-4d8e-9d0a-6ad1a93e7a51",
                            "objects": objects}) == []
    finally:
        server.terminate()
        server.wait(timeout=30)
