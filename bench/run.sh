#!/usr/bin/env bash
# One command per load scenario of issue 7 (and search, issue 18): builds the server and the
# load generator (release), starts the server(s) on a free port with a fresh database, waits for
# /health/ready, runs the scenario, stops the server(s) and removes what the run created.
#
#   bench/run.sh <idle|storm|chat|fanout|rest|search|soak|uploads> [sqlite|postgres|replicas] [generator args…]
#   bench/run.sh compare <idle|storm|chat|fanout> [sqlite|postgres|replicas] [generator args…]
#       (Parley, then the Node peer of bench/peer/ on fresh databases with the same arguments,
#       then a table of both and their ratio)
#   BENCH_UPLOAD_STORE=s3://bucket/prefix bench/run.sh uploads …   (uploads on S3; default: a directory of the run)
#   bench/run.sh users [sqlite|postgres]          (register the users ahead of time)
#   BENCH_SEARCH_SEED='--conversations 100' bench/run.sh search …   (options of search-seed)
#   BENCH_KEEP_DB=1 bench/run.sh search postgres   (keeps the run's database and files, to study)
# The exit status is the generator's: non-zero when a soak's checks fail (CI runs one).
#
# Backends: sqlite (embedded, the default), postgres (PostgreSQL + in-process state, one
# server), replicas (two servers on PostgreSQL + Redis; the generator spreads its clients
# over both). Generator arguments: `bench/loadgen/target/release/parley-loadgen <scenario> --help`.
#
# Users: registration costs ~16 ms of Argon2 each, so the users are registered once per
# backend family (sqlite, postgres) into a template database kept under bench/.state/, with
# their tokens in a users file. Every run starts from a copy of the template, so it is as
# fresh as an empty database but for the users. BENCH_USERS (default 15000, the largest
# scenario) is how many the template holds.
#
# Search: before its server starts, the run's database is seeded by SQL (`parley-loadgen
# search-seed`, piped into sqlite3 or psql): 1,000 groups of the template's first 1,000 users,
# 1,000 messages each. BENCH_SEARCH_SEED holds more search-seed options (e.g. `--conversations
# 100 --messages 100`; `parley-loadgen search-seed --help`).
#
# Environment: BENCH_USERS, BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_REDIS
# (redis://127.0.0.1:6379), RUST_LOG of the servers (warn), BENCH_SKIP_BUILD=1 to use the
# binaries as they are, BENCH_PERF=<file> to record a `perf` profile (with call stacks) of the
# (first) server during the scenario (BENCH_PERF_HZ samples a second, 199), BENCH_HEAPTRACK=<prefix>
# to run the servers under heaptrack (`heaptrack_print <prefix>.server.*.zst`). The JSON
# result goes to bench/results/ unless --json is given.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=$ROOT/bench/.state
SERVER=${CARGO_TARGET_DIR:-$ROOT/target}/release/parley
PEER=$ROOT/bench/peer
LOADGEN=$ROOT/bench/loadgen/target/release/parley-loadgen
BENCH_USERS=${BENCH_USERS:-15000}
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BENCH_REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379}
PG_TEMPLATE=parley_bench_template

WORK=""          # this run's temporary directory
RUN_DB=""        # this run's PostgreSQL database
REDIS_PREFIX=""  # this run's Redis key prefix
PIDS=()          # the servers started
URLS=()          # their base URLs

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

build() {
    if [[ ${BENCH_SKIP_BUILD:-} == 1 ]]; then return; fi
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin parley
    cargo build --release --quiet --manifest-path "$ROOT/bench/loadgen/Cargo.toml" --target-dir "$ROOT/bench/loadgen/target"
}

# The peer's packages, installed from its lockfile when missing or older than the lockfile.
build_peer() {
    if [[ ! -f $PEER/node_modules/.package-lock.json || $PEER/package-lock.json -nt $PEER/node_modules/.package-lock.json ]]; then
        npm ci --silent --no-audit --no-fund --prefix "$PEER" >&2
    fi
}

psql_admin() {
    psql "$BENCH_PG/postgres" -v ON_ERROR_STOP=1 -qtAc "$1"
}

# A port nothing listens on, below the ephemeral range the clients' ports come from.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# start_peer <name> [VAR=value…]: starts one Node peer (bench/peer/server.js) and waits until
# it is ready.
start_peer() {
    local name=$1 port
    shift
    port=$(free_port)
    env PORT="$port" JWT_SECRET="$(cat "$STATE/jwt_secret")" "$@" node "$PEER/server.js" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    URLS+=("http://127.0.0.1:$port")
    wait_ready "$name" "$port" "$!"
}

# start_server <name> [VAR=value…]: starts one server with the common settings plus the
# given ones, and waits until it is ready.
start_server() {
    local name=$1 port pid wrap=()
    shift
    port=$(free_port)
    if [[ -n ${BENCH_HEAPTRACK:-} && $name != template ]]; then
        wrap=(heaptrack -o "$BENCH_HEAPTRACK.$name")
    fi
    env PARLEY_ADDR="127.0.0.1:$port" JWT_SECRET="$(cat "$STATE/jwt_secret")" \
        MESSAGE_RATE_PER_MIN=100000000 REGISTRATIONS_PER_HOUR=0 LEGACY_EVENTS=false ACCESS_TOKEN_TTL_SECS=86400 \
        MAX_CONNECTIONS_PER_IP=0 SOCKET_EVENTS_PER_SEC=0 UPLOAD_STORE="${BENCH_UPLOAD_STORE:-file://$WORK/uploads}" \
        RUST_LOG="${RUST_LOG:-warn}" "$@" "${wrap[@]}" "$SERVER" >"$WORK/$name.log" 2>&1 &
    pid=$!
    URLS+=("http://127.0.0.1:$port")
    wait_ready "$name" "$port" "$pid"
    if ((${#wrap[@]})); then
        # heaptrack runs the server as its child: measure and stop the server itself.
        pid=$(pgrep -n -f "^$SERVER\$")
    fi
    PIDS+=("$pid")
}

wait_ready() {
    local name=$1 port=$2 pid=$3
    for _ in $(seq 600); do
        if curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; then
            echo "$name ready on port $port (pid $pid)" >&2
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited:" >&2
            tail -20 "$WORK/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$name not ready after 60 s" >&2
    exit 1
}

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    URLS=()
}

# Stops the servers and removes their database and Redis keys (kept with BENCH_KEEP_DB).
teardown() {
    stop_servers
    if [[ -n $RUN_DB && -n ${BENCH_KEEP_DB:-} ]]; then
        echo "kept the run's database: $BENCH_PG/$RUN_DB" >&2
    elif [[ -n $RUN_DB ]]; then
        psql_admin "drop database if exists $RUN_DB with (force)" || true
    fi
    if [[ -n $REDIS_PREFIX ]]; then
        redis-cli -u "$BENCH_REDIS" --scan --pattern "$REDIS_PREFIX*" | xargs -r -n 500 redis-cli -u "$BENCH_REDIS" del >/dev/null || true
    fi
    RUN_DB=""
    REDIS_PREFIX=""
}

cleanup() {
    teardown
    if [[ -n $WORK && -n ${BENCH_KEEP_DB:-} ]]; then
        echo "kept the run's files (users, corpus, logs): $WORK" >&2
    elif [[ -n $WORK ]]; then rm -rf "$WORK"; fi
}

users_in() {
    [[ -f $1 ]] && jq '.users | length' "$1" || echo 0
}

# The template of a backend family holds BENCH_USERS users; its users file lists them.
# A users file without its template (or the reverse) is dropped and rebuilt.
ensure_template() {
    local family=$1 users=$STATE/$1/users.json
    mkdir -p "$STATE/$family"
    [[ -f $STATE/jwt_secret ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/jwt_secret"
    if [[ $family == sqlite && ! -d $STATE/sqlite/template ]] ||
        [[ $family == postgres && -z $(psql_admin "select 1 from pg_database where datname = '$PG_TEMPLATE'") ]]; then
        rm -f "$users"
    fi
    if (($(users_in "$users") >= BENCH_USERS)); then return; fi
    echo "registering users into the $family template (BENCH_USERS=$BENCH_USERS)…" >&2
    # Tokens of the template last a year, so that later runs can reuse them.
    if [[ $family == sqlite ]]; then
        mkdir -p "$STATE/sqlite/template"
        start_server template PARLEY_DATA_DIR="$STATE/sqlite/template" ACCESS_TOKEN_TTL_SECS=31536000
    else
        [[ -n $(psql_admin "select 1 from pg_database where datname = '$PG_TEMPLATE'") ]] || psql_admin "create database $PG_TEMPLATE"
        start_server template DATABASE_URL="$BENCH_PG/$PG_TEMPLATE" ACCESS_TOKEN_TTL_SECS=31536000
    fi
    "$LOADGEN" users --count "$BENCH_USERS" --users-file "$users" --url "${URLS[0]}"
    stop_servers
}

# seed_search <sqlite|postgres>: fills the run's database, before any server opens it, with
# the search scenario's conversations and messages, and writes their corpus file.
seed_search() {
    local family=$1 started=$SECONDS seed_args=()
    read -ra seed_args <<<"${BENCH_SEARCH_SEED:-}"
    echo "seeding the search corpus into the $family database…" >&2
    "$LOADGEN" search-seed --backend "$family" --users-file "$WORK/users.json" --corpus "$WORK/corpus.json" \
        "${seed_args[@]}" |
        if [[ $family == sqlite ]]; then
            sqlite3 -bail "$WORK/data/parley.db"
        else
            psql "$BENCH_PG/$RUN_DB" -v ON_ERROR_STOP=1 -qtA
        fi >&2
    echo "seeded in $((SECONDS - started)) s" >&2
}

# start_backend <backend> <from-template: yes|no> [seed]: the run's database and server(s);
# with `seed`, the database is seeded for the search scenario before the server(s) start.
start_backend() {
    local backend=$1 from_template=$2 seed=${3:-} template_clause=""
    if [[ $backend == sqlite ]]; then
        if [[ $from_template == yes ]]; then cp -a "$STATE/sqlite/template" "$WORK/data"; else mkdir "$WORK/data"; fi
        if [[ $seed == seed ]]; then seed_search sqlite; fi
        start_server server PARLEY_DATA_DIR="$WORK/data"
        return
    fi
    RUN_DB=parley_bench_$(date +%s)_$$
    if [[ $from_template == yes ]]; then template_clause="template $PG_TEMPLATE"; fi
    psql_admin "create database $RUN_DB $template_clause"
    if [[ $seed == seed ]]; then seed_search postgres; fi
    if [[ $backend == postgres ]]; then
        start_server server DATABASE_URL="$BENCH_PG/$RUN_DB" PARLEY_DATA_DIR="$WORK/data"
        return
    fi
    REDIS_PREFIX="$RUN_DB:"
    local replica
    for replica in a b; do
        start_server "replica-$replica" DATABASE_URL="$BENCH_PG/$RUN_DB" REDIS_URL="$BENCH_REDIS" \
            REDIS_KEY_PREFIX="$REDIS_PREFIX" PARLEY_DATA_DIR="$WORK/data-$replica"
    done
}

# start_peer_backend <backend>: the peer's database (always PostgreSQL: the Node stack has no
# embedded mode) with the users of the run's users file, and one peer, or two on Redis for
# `replicas`.
start_peer_backend() {
    local backend=$1
    RUN_DB=parley_peer_$(date +%s)_$$
    psql_admin "create database $RUN_DB"
    psql "$BENCH_PG/$RUN_DB" -v ON_ERROR_STOP=1 -qf "$PEER/schema.sql"
    jq -r '.users[] | [.id, .email, .email] | @csv' "$WORK/users.json" |
        psql "$BENCH_PG/$RUN_DB" -v ON_ERROR_STOP=1 -qc "\\copy users (id, email, display_name) from stdin with (format csv)"
    if [[ $backend != replicas ]]; then
        start_peer peer DATABASE_URL="$BENCH_PG/$RUN_DB"
        return
    fi
    REDIS_PREFIX="$RUN_DB:"
    local replica
    for replica in a b; do
        start_peer "peer-$replica" DATABASE_URL="$BENCH_PG/$RUN_DB" REDIS_URL="$BENCH_REDIS" REDIS_KEY_PREFIX="$REDIS_PREFIX"
    done
}

has_arg() {
    local wanted=$1 arg
    shift
    for arg in "$@"; do
        [[ $arg == "$wanted" || $arg == "$wanted="* ]] && return 0
    done
    return 1
}

# run_scenario <parley|peer> <scenario> <backend> [generator args…]: one run against fresh
# server(s) of `backend`; the caller tears them down.
run_scenario() {
    local target=$1 scenario=$2 backend=$3 family args=()
    shift 3
    family=$([[ $backend == sqlite ]] && echo sqlite || echo postgres)
    if [[ $scenario == rest || $scenario == uploads ]]; then
        start_backend "$backend" no
    else
        ensure_template "$family"
        cp "$STATE/$family/users.json" "$WORK/users.json"
        args+=(--users-file "$WORK/users.json")
        if [[ $target == peer ]]; then
            start_peer_backend "$backend"
        elif [[ $scenario == search ]]; then
            start_backend "$backend" yes seed
            args+=(--corpus "$WORK/corpus.json")
        else
            start_backend "$backend" yes
        fi
    fi
    if [[ $scenario == idle || $scenario == soak || $scenario == uploads || $scenario == chat || $scenario == fanout ]]; then
        local pid
        for pid in "${PIDS[@]}"; do args+=(--server-pid "$pid"); done
    fi
    has_arg --label "$@" || args+=(--label "$backend")
    if ! has_arg --json "$@"; then
        mkdir -p "$ROOT/bench/results"
        args+=(--json "$ROOT/bench/results/$scenario-$backend-$(date +%Y%m%d-%H%M%S).json")
    fi
    local urls profiler=""
    urls=$(IFS=,; echo "${URLS[*]}")
    if [[ -n ${BENCH_PERF:-} && $target == parley ]]; then
        # Samples the first server for the whole scenario (setup included) with call stacks.
        perf record -q -F ${BENCH_PERF_HZ:-199} --call-graph dwarf,16384 -p "${PIDS[0]}" -o "$BENCH_PERF" 2>/dev/null &
        profiler=$!
    fi
    "$LOADGEN" "$scenario" --url "$urls" "${args[@]}" "$@"
    if [[ -n $profiler ]]; then
        kill -INT "$profiler"
        wait "$profiler" || true
        echo "profile: perf report -i $BENCH_PERF --no-children" >&2
    fi
}

# compare <scenario> <backend> [generator args…]: Parley, then the peer, with the same
# arguments; prints every number of the two results side by side with Parley/peer.
compare() {
    local scenario=$1 backend=$2 out
    shift 2
    mkdir -p "$ROOT/bench/results"
    out=$ROOT/bench/results/compare-$scenario-$backend-$(date +%Y%m%d-%H%M%S).json
    echo "== Parley ($backend) ==" >&2
    run_scenario parley "$scenario" "$backend" --label "parley $backend" --json "$WORK/parley.json" "$@"
    teardown
    echo "== Node peer (socket.io 4 + pg$([[ $backend == replicas ]] && echo ' + redis-adapter, two replicas')) ==" >&2
    run_scenario peer "$scenario" "$backend" --label "node $backend" --json "$WORK/peer.json" "$@"
    teardown
    jq -n --slurpfile parley "$WORK/parley.json" --slurpfile peer "$WORK/peer.json" \
        --arg scenario "$scenario" --arg backend "$backend" --arg args "$*" \
        '{scenario: $scenario, backend: $backend, args: $args, parley: $parley[0], peer: $peer[0]}' >"$out"
    echo
    echo "compare $scenario ($backend) $*: Parley / Node peer (for latencies and bytes, < 1 is better)"
    echo
    echo "| measure | Parley | Node peer | Parley / peer |"
    echo "|---|---|---|---|"
    jq -r '
        def leaves: [paths(numbers) as $p | {key: ($p | map(tostring) | join(".")), value: getpath($p)}];
        (.peer | leaves | from_entries) as $peer
        | .parley | leaves[]
        | select($peer[.key] != null)
        | [.key, .value, $peer[.key],
           (if $peer[.key] == 0 then "-" else ((.value / $peer[.key]) * 100 | round / 100 | tostring) end)]
        | "| \(.[0]) | \(.[1]) | \(.[2]) | \(.[3]) |"' "$out"
    echo
    echo "both results: $out" >&2
}

main() {
    (($# >= 1)) || usage
    local scenario=$1 backend=sqlite mode=single
    shift
    if [[ $scenario == compare ]]; then
        (($# >= 1)) || usage
        mode=compare scenario=$1
        shift
        case $scenario in idle | storm | chat | fanout) ;; *)
            echo "compare runs idle, storm, chat and fanout: the peer speaks only their subset" >&2
            exit 2
            ;;
        esac
    fi
    case $scenario in idle | storm | chat | fanout | rest | search | soak | uploads | users) ;; *) usage ;; esac
    if (($# >= 1)) && [[ $1 == sqlite || $1 == postgres || $1 == replicas ]]; then
        backend=$1
        shift
    fi
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # sockets: the servers' and the generator's
    build
    WORK=$(mktemp -d /tmp/parley-bench.XXXXXX)
    trap cleanup EXIT

    if [[ $scenario == users ]]; then
        ensure_template "$([[ $backend == sqlite ]] && echo sqlite || echo postgres)"
    elif [[ $mode == compare ]]; then
        build_peer
        compare "$scenario" "$backend" "$@"
    else
        run_scenario parley "$scenario" "$backend" "$@"
    fi
}

main "$@"
