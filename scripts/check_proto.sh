#!/usr/bin/env bash
# The gRPC contract's checks: `buf lint` on proto/, and `buf breaking` against the proto of the
# previous commit on main (proto/buf.yaml holds the rules; buf comes from PyPI's buf-bin).
#
# The base: on main (as in CI's clone) the commit before HEAD; on another branch the commit of
# main it last merged (its merge base with main), so that only the branch's own changes are
# judged, as they will be on main.  EXCHANGE_PROTO_BASE=REV picks another.  The base's proto/ is taken with `git archive`, so worktrees and uncommitted changes
# are checked alike.  A clone without the base (shallow) is deepened once; if the base still
# cannot be had, or has no proto/, the comparison is skipped with a line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${BUF:-.venv/bin/buf}

"$buf" lint proto
echo "buf lint: proto/ follows proto/buf.yaml"

branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo HEAD)
if [[ -n "${EXCHANGE_PROTO_BASE:-}" ]]; then
  base=$EXCHANGE_PROTO_BASE
elif [[ "$branch" != main && "$branch" != HEAD ]] && git rev-parse --verify --quiet main >/dev/null; then
  base=$(git merge-base HEAD main)
else
  base=HEAD~1
fi

if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
  if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
    git fetch --quiet --deepen=1 2>/dev/null || true
  fi
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
  if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
    echo "buf breaking: skipped: $base is not in this shallow clone and could not be fetched" \
      "(clone with more history, or set EXCHANGE_PROTO_BASE to a commit it has)"
  else
    echo "buf breaking: skipped: $base does not exist (the first commit has nothing to compare with)"
  fi
  exit 0
fi

previous=$(mktemp -d)
trap 'rm -rf "$previous"' EXIT
if ! git archive "$base" proto 2>/dev/null | tar -x -C "$previous"; then
  echo "buf breaking: skipped: $base has no proto/ to compare with"
  exit 0
fi
"$buf" breaking proto --against "$previous/proto"
echo "buf breaking: proto/ is compatible with $base ($(git rev-parse --short "$base"))"
