#!/usr/bin/env bash
# Makes sure the PostgreSQL server the integration tests use is accepting connections.
# Starts the local cluster if it is installed but down; otherwise says what to do.
set -euo pipefail
host=${EXCHANGE_TEST_POSTGRES_HOST:-127.0.0.1}
port=${EXCHANGE_TEST_POSTGRES_PORT:-5432}
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if command -v pg_isready >/dev/null && ready; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do
    ready && exit 0
    sleep 1
  done
fi
echo "PostgreSQL is not accepting connections on $host:$port." >&2
echo "Start it (e.g. pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)" >&2
echo "or point EXCHANGE_TEST_POSTGRES_URL at a server where user postgres may create databases." >&2
exit 1
