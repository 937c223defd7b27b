#!/usr/bin/env bash
# The multi-replica e2e run: two Parley processes on loopback + nginx + PostgreSQL + a
# Redis of its own, clients through nginx, then SIGKILL / Redis restart / SIGTERM faults,
# and a rolling restart with socket.io-client, python-socketio and raw WebSocket clients.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
PG_ADMIN=${PARLEY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
missing=
command -v nginx >/dev/null || missing="nginx"
command -v redis-server >/dev/null || missing="$missing redis-server"
psql "$PG_ADMIN" -Atc 'SELECT 1' >/dev/null 2>&1 || missing="$missing PostgreSQL"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = true ]; then echo "FATAL: the multi-replica run needs:$missing" >&2; exit 1; fi
  echo "SKIPPED: multi-replica e2e (missing:$missing)"
  exit 0
fi
[ -d node_modules/socket.io-client ] || npm ci --no-audit --no-fund
# The rolling-restart test's Python client (py_client.py) runs on python-socketio from PyPI,
# installed on first use into e2e/.venv (the venv schemathesis.sh uses too).
VENV=.venv
if ! "$VENV/bin/python" -c 'import socketio, aiohttp' >/dev/null 2>&1; then
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'python-socketio[asyncio-client]>=5.18,<6' 'aiohttp>=3.11'
fi
export PARLEY_E2E_PYTHON="$PWD/$VENV/bin/python"
cargo build --manifest-path "$ROOT/Cargo.toml" --bin parley
DB="parley_test_multi_$$"
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB"
trap 'psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export PARLEY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/parley"
export DATABASE_URL="${PG_ADMIN%/*}/$DB"
# The replicas serve the Socket.IO Admin UI; its password is configured as its Argon2 hash only.
export ADMIN_USER=ops ADMIN_PASSWORD='correct horse battery staple'
ADMIN_PASSWORD_HASH=$(printf '%s\n' "$ADMIN_PASSWORD" | "$PARLEY_BIN" hash-password)
export ADMIN_PASSWORD_HASH
echo "=== e2e: two replicas behind nginx, with faults and a rolling restart"
node --test --test-timeout=180000 multi-replica.mjs
