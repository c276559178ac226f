"""The committed code in exchange/v1/ is exactly what scripts/generate_proto.sh makes from proto/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "exchange" / "v1"


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "generate_proto.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "exchange" / "v1").iterdir()}
    committed = {
        p.name: p.read_bytes()
        for p in GENERATED.iterdir()
        if p.suffix in {".py", ".pyi"} and p.name != "__init__.py"
    }
    assert sorted(fresh) == sorted(committed), "generated files added or removed: run make proto"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"stale generated code (run make proto): {stale}"


def test_every_proto_file_has_generated_code() -> None:
    protos = sorted(p.stem for p in (ROOT / "proto" / "exchange" / "v1").glob("*.proto"))
    modules = sorted(p.name.removesuffix("_pb2.py") for p in GENERATED.glob("*_pb2.py"))
    assert protos == modules
