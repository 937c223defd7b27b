#!/usr/bin/env bash
# Keeps the layout the README's code tour describes (fails loudly otherwise):
# - the REST layer (src/http), the Socket.IO gateway (src/realtime) and the raw WebSocket
#   gateway (src/rawws) never import each other: what they share lives below them (domain,
#   fanout, transport, state);
# - nothing outside src/fanout emits or spells a room name: every server event goes
#   through crate::fanout. (src/conformance.rs is exempt: it is the bare protocol server
#   the official Socket.IO test suite talks to, with the suite's own event names. So is
#   src/admin: the Socket.IO Admin UI's protocol on /admin, with the npm package's event
#   names, to admin sockets only.)
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
report() { # title, matches
  if [ -n "$2" ]; then
    printf 'structure check failed: %s\n%s\n\n' "$1" "$2" >&2
    failed=1
  fi
}

report "src/http imports src/realtime" "$(grep -rnE '(crate|super)::realtime\b|\brealtime::' src/http || true)"
report "src/realtime imports src/http" "$(grep -rnE '(crate|super)::http\b|\bhttp::(extract|auth|users|conversations|messages|presence|reads|health|router|api)\b' src/realtime || true)"
report "src/rawws imports src/http or src/realtime" "$(grep -rnE '(crate|super)::(http|realtime)\b' src/rawws || true)"
report "src/http or src/realtime imports src/rawws" "$(grep -rnE '(crate|super)::rawws\b|\brawws::' src/http src/realtime || true)"
report "an emit outside src/fanout" \
  "$(grep -rnE '\.(emit|emit_with_ack)\(' src --include='*.rs' | grep -vE '^src/(fanout/|admin/|conformance\.rs:)' || true)"
report "a room name outside src/fanout" \
  "$(grep -rnE '"(user|conversation|session|socket):(\{|")' src --include='*.rs' | grep -v '^src/fanout/' || true)"

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "structure: http, realtime and rawws independent; every emit and room name in src/fanout"
