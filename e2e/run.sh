#!/usr/bin/env bash
# Runs the e2e tests (node --test, npm socket.io-client) against a real Parley binary:
# once embedded (SQLite, in-process state), once in production mode (PostgreSQL + Redis)
# when they are reachable (required with CI=true).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)

[ -d node_modules/socket.io-client ] || npm ci --no-audit --no-fund
cargo build --manifest-path "$ROOT/Cargo.toml" --bin parley
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/parley"

PG_ADMIN=${PARLEY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${PARLEY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
WORK=$(mktemp -d)
SERVER_PID=
E2E_DB=

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$E2E_DB" ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server <label> [VAR=value ...]: starts parley in the background, waits for readiness.
start_server() {
  local label=$1
  shift
  local port
  port=$(free_port)
  env PARLEY_ADDR="127.0.0.1:$port" PARLEY_DATA_DIR="$WORK/$label" RUST_LOG=warn "$@" "$BIN" >"$WORK/$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null; then
      export PARLEY_URL="http://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "parley ($label) did not become ready:" >&2
  cat "$WORK/$label.log" >&2
  exit 1
}

stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
}

echo "=== e2e: embedded (SQLite, in-process state)"
start_server embedded
npm test --silent
stop_server

if psql "$PG_ADMIN" -Atc 'SELECT 1' >/dev/null 2>&1 && [ "$(redis-cli -u "$REDIS" ping 2>/dev/null)" = PONG ]; then
  E2E_DB="parley_test_e2e_$$"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $E2E_DB"
  echo "=== e2e: production (PostgreSQL + Redis)"
  start_server production DATABASE_URL="${PG_ADMIN%/*}/$E2E_DB" REDIS_URL="$REDIS" REDIS_KEY_PREFIX="parley-e2e-$$:"
  npm test --silent
  stop_server
elif [ "${CI:-}" = true ]; then
  echo "FATAL: PostgreSQL and Redis are required for the production e2e run under CI=true" >&2
  exit 1
else
  echo "SKIPPED: production e2e (PostgreSQL or Redis not reachable)"
fi
