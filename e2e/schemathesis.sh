#!/usr/bin/env bash
# Fuzzes the REST API with Schemathesis (PyPI `schemathesis`) from the committed contract
# openapi/openapi.json, against the running server at $PARLEY_URL (e2e/run.sh starts one):
# requests built from the schema, valid and invalid, authenticated as a freshly registered
# user. Fails when any response is a 5xx (`not_a_server_error`) or breaks the documented
# response schema (`response_schema_conformance`).
#
# Schemathesis is installed into e2e/.venv on first use (only PyPI is needed). Bounded:
# SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 50); a fixed seed
# (SCHEMATHESIS_SEED, default 8) makes CI runs repeatable — set another to explore.
# One worker: schemathesis 4.32's coverage phase can fail inside Hypothesis with several.
#
# Left out: POST /api/auth/logout, which revokes the bearer token every other operation
# uses (tests/api/auth.rs covers it).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
: "${PARLEY_URL:?PARLEY_URL must point at a running parley (see e2e/run.sh)}"

VENV=.venv
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi

# post <path> <json> [token]: the JSON answer of a POST to the server.
post() {
  curl -fsS -X POST "$PARLEY_URL$1" -H 'content-type: application/json' ${3:+-H "Authorization: Bearer $3"} -d "$2"
}
# field <a.b>: that (dotted) field of the JSON object on stdin.
field() {
  python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[key]
print(value)' "$1"
}
register() {
  post /api/auth/register "{\"email\":\"fuzz-$1-$(date +%s)-$$@example.com\",\"password\":\"correct horse battery\",\"displayName\":\"Fuzz $1\"}"
}

# A user of our own, so authenticated operations get past the bearer check; and real ids (a
# second user, a group with both, a message in it) used for the path parameters half the
# time, so the conversation and message operations are reached past their 404.
ME=$(register me)
TOKEN=$(field accessToken <<<"$ME")
OTHER=$(register other | field user.id)
GROUP=$(post /api/conversations "{\"type\":\"group\",\"title\":\"fuzz\",\"participantIds\":[\"$OTHER\"]}" "$TOKEN" | field id)
MESSAGE=$(post "/api/conversations/$GROUP/messages" '{"content":"seed","clientMessageId":"seed-1"}' "$TOKEN" | field id)

CONFIG=$(mktemp)
trap 'rm -f "$CONFIG"' EXIT
cat >"$CONFIG" <<TOML
[dictionaries.ids]
values = ["$GROUP", "$MESSAGE", "$OTHER", "$(field user.id <<<"$ME")"]

[parameters]
"path.id" = { dictionary = "ids", probability = 0.5 }
"path.messageId" = { dictionary = "ids", probability = 0.5 }
TOML

"$VENV/bin/schemathesis" --config-file "$CONFIG" run "$ROOT/openapi/openapi.json" \
  --url "$PARLEY_URL" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance \
  --exclude-path /api/auth/logout \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --seed "${SCHEMATHESIS_SEED:-8}" \
  --workers 1 \
  --request-timeout 10 \
  --generation-database none \
  --no-color
