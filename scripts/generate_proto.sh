#!/usr/bin/env bash
# Regenerates exchange/v1/ from proto/exchange/v1/ with the pinned grpcio-tools and mypy-protobuf.
# The generated files are committed; tests/unit/test_generated_code.py fails when they drift.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$python"):$PATH"
out=${1:-.}
"$python" -m grpc_tools.protoc \
  --proto_path=proto \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --mypy_out="$out" \
  --mypy_grpc_out="$out" \
  proto/exchange/v1/*.proto
