"""Access to the public test vectors under ``tests/vectors/`` (each file names its source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"


def load_vectors(relative_path: str) -> Any:
    """Parse one JSON vector file, e.g. ``"wycheproof/x25519_test.json"``."""
    return json.loads((VECTORS_DIR / relative_path).read_text(encoding="utf-8"))


def wycheproof_cases(relative_path: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (group, test) pair of a Wycheproof file, in file order."""
    data = load_vectors(relative_path)
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


def wycheproof_id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    """A readable pytest id: ``tc17-invalid``."""
    _, test = case
    return f"tc{test['tcId']}-{test['result']}"
