#!/usr/bin/env bash
# Runs the e2e tests (node --test, npm socket.io-client) against a real Parley binary:
# once embedded (SQLite, in-process state), once in production mode (PostgreSQL + Redis)
# when they are reachable (required with CI=true); then the Socket.IO protocol tests
# (conformance.test.mjs) against `parley conformance`, also through nginx when installed.
# schemathesis.sh fuzzes the REST API from openapi/openapi.json in both modes.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)

{ [ -d node_modules/socket.io-client ] && [ -d node_modules/playwright-core ] && [ -d node_modules/@socket.io/admin-ui ]; } || npm ci --no-audit --no-fund
cargo build --manifest-path "$ROOT/Cargo.toml" --bin parley
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/parley"

PG_ADMIN=${PARLEY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${PARLEY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
WORK=$(mktemp -d)
SERVER_PID=
E2E_DB=

NGINX_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
  [ -n "$E2E_DB" ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server <label> [VAR=value ...] [-- parley arguments]: starts parley in the background,
# waits for readiness.
start_server() {
  local label=$1
  shift
  local port vars=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift && args=("$@")
  port=$(free_port)
  env PARLEY_ADDR="127.0.0.1:$port" PARLEY_DATA_DIR="$WORK/$label" RUST_LOG=warn REGISTRATIONS_PER_HOUR=0 "${vars[@]}" "$BIN" "${args[@]}" >"$WORK/$label.log" 2>&1 &
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

# The Socket.IO Admin UI's protocol on /admin (admin-ui.mjs): operations allowed, read-only
# (the default), production mode, no login. The password is only configured as its hash.
export ADMIN_USER=ops ADMIN_PASSWORD='correct horse battery staple'
ADMIN_HASH=$(printf '%s\n' "$ADMIN_PASSWORD" | "$BIN" hash-password)
# admin_ui <expectation> <what> [VAR=value ...]: admin-ui.mjs against a server of its own.
admin_ui() {
  local expect=$1 what=$2
  shift 2
  echo "=== e2e: admin UI, $what"
  start_server "admin-$expect" ADMIN_UI=true "$@"
  ADMIN_EXPECT=$expect node --test --test-timeout=60000 admin-ui.mjs
  stop_server
}
LOGIN=(ADMIN_USERNAME="$ADMIN_USER" "ADMIN_PASSWORD_HASH=$ADMIN_HASH")
admin_ui operations "operations allowed" "${LOGIN[@]}" ADMIN_UI_READONLY=false
admin_ui readonly "read-only" "${LOGIN[@]}"
admin_ui production "production mode (statistics only)" "${LOGIN[@]}" ADMIN_UI_MODE=production
admin_ui open "no authentication (ADMIN_UI_AUTH=false)" ADMIN_UI_AUTH=false

# The browser as the user (browser.mjs): Debian's Chromium driven by playwright-core, a page
# on http://localhost:5173 against Parley on another origin, and the unmodified Admin UI from
# @socket.io/admin-ui's ui/dist. Screenshots in e2e/artifacts/. Chromium is required with
# CI=true (.ci/run installs it).
if [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "=== e2e: browser (Chromium), the admin UI in development mode"
  start_server browser CORS_ORIGINS=http://localhost:5173 ADMIN_UI=true ADMIN_UI_MODE=development "${LOGIN[@]}"
  node --test --test-timeout=120000 browser.mjs
  stop_server
elif [ "${CI:-}" = true ]; then
  echo "Chromium is required with CI=true (apt-get install chromium)" >&2
  exit 1
else
  echo "=== e2e: browser tests skipped (no Chromium; apt-get install chromium)"
fi

# Abuse limits and bad input (limits.mjs) on a server of their own, trusting X-Forwarded-For
# so that each test's client address is its own (a flood's cool-down shuts the address out).
echo "=== e2e: limits (embedded)"
start_server limits TRUST_PROXY=true
node --test --test-timeout=60000 limits.mjs
stop_server

# REST fuzzing from the OpenAPI contract on a fresh embedded server: fails on any 5xx.
# (The production run below fuzzes its server too, after its npm tests.)
echo "=== e2e: schemathesis (REST API fuzzed from openapi/openapi.json)"
start_server schemathesis
bash schemathesis.sh
stop_server

if psql "$PG_ADMIN" -Atc 'SELECT 1' >/dev/null 2>&1 && [ "$(redis-cli -u "$REDIS" ping 2>/dev/null)" = PONG ]; then
  E2E_DB="parley_test_e2e_$$"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $E2E_DB"
  # Uploads go to the S3 server when one answers (moto_server; required under CI=true).
  S3=${PARLEY_TEST_S3_ENDPOINT:-http://127.0.0.1:5000}
  STORE=()
  if curl -fsS -X PUT -o /dev/null "$S3/parley-e2e-$$"; then
    STORE=(UPLOAD_STORE="s3://parley-e2e-$$/uploads" S3_ENDPOINT="$S3" AWS_ACCESS_KEY_ID=e2e AWS_SECRET_ACCESS_KEY=e2e)
  elif [ "${CI:-}" = true ]; then
    echo "FATAL: the S3 server ($S3) is required for the production e2e run under CI=true" >&2
    exit 1
  fi
  echo "=== e2e: production (PostgreSQL + Redis${STORE:+, uploads on S3})"
  start_server production DATABASE_URL="${PG_ADMIN%/*}/$E2E_DB" REDIS_URL="$REDIS" REDIS_KEY_PREFIX="parley-e2e-$$:" "${STORE[@]}"
  npm test --silent
  # PostgreSQL refuses what SQLite stores (NUL in text was a 500 only here): fuzz it too.
  bash schemathesis.sh
  stop_server
  echo "=== e2e: limits (production: the cool-down is in Redis)"
  start_server production-limits DATABASE_URL="${PG_ADMIN%/*}/$E2E_DB" REDIS_URL="$REDIS" REDIS_KEY_PREFIX="parley-e2e-limits-$$:" TRUST_PROXY=true
  node --test --test-timeout=60000 limits.mjs
  stop_server
elif [ "${CI:-}" = true ]; then
  echo "FATAL: PostgreSQL and Redis are required for the production e2e run under CI=true" >&2
  exit 1
else
  echo "SKIPPED: production e2e (PostgreSQL or Redis not reachable)"
fi

# The Socket.IO protocol: `parley conformance` serves the official socket.io-protocol suite's
# namespaces, handlers and timings (src/conformance.rs); conformance.test.mjs is our own test
# of it, raw and with engine.io-client / socket.io-client.
echo "=== e2e: Socket.IO protocol conformance (parley conformance)"
start_server conformance -- conformance
export PARLEY_CONFORMANCE_URL=$PARLEY_URL
if command -v nginx >/dev/null; then
  # nginx/parley.conf with one loopback upstream, so the upgrade is also tested through it.
  NGINX_PORT=$(free_port)
  sed -e "s/server app1:3000 /server ${PARLEY_URL#http://} /" -e '/server app2:3000/d' \
    -e "s/listen 80;/listen 127.0.0.1:$NGINX_PORT;/" "$ROOT/nginx/parley.conf" >"$WORK/site.conf"
  cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  include $WORK/site.conf;
}
EOF
  nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$NGINX_PORT/health/ready" >/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx-error.log" >&2; exit 1; }
    sleep 0.1
  done
  export PARLEY_CONFORMANCE_NGINX_URL="http://127.0.0.1:$NGINX_PORT"
elif [ "${CI:-}" = true ]; then
  echo "FATAL: nginx is required for the conformance run under CI=true" >&2
  exit 1
else
  echo "SKIPPED: conformance through nginx (nginx not installed)"
fi
node --test --test-concurrency=1 --test-timeout=60000 conformance.test.mjs
stop_server
