#!/usr/bin/env bash
# The Redis user story in one command (`make demo-redis-dr`): an app's state store moves from its primary
# Redis (A) to a DR Redis (B) with one `molt apply`, while molt keeps running.
#
#   1. starts two redis-servers on free loopback ports (A = primary, B = DR) in a temporary directory;
#   2. starts `molt serve` with `statestore` (plugin redis-state) on A and waits until it is ready;
#   3. saves a key through Dapr's HTTP API (curl), shows `molt status` and the /metrics lines of statestore;
#   4. switches statestore to B: `molt apply --kind state --name statestore --metadata redisHost=B`
#      (the full configuration), shows `molt status` and /metrics again;
#   5. saves another key and shows with redis-cli that it landed in B (and not in A).
# Everything it started is stopped on exit (also on failure or Ctrl-C). Exit 0 when every step succeeded.
#
# It builds nothing: `make demo-redis-dr` builds first. Environment:
#   MOLT_BIN          the molt executable (default: `swift build --show-bin-path`/molt, CONFIG=debug|release)
#   MOLT_PLUGINS_DIR  the plugins directory holding redis-state-*.so (default: plugins.d of this repository)
#   DEMO_TIMEOUT_S    the bound of every wait (default 30)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIMEOUT_S="${DEMO_TIMEOUT_S:-30}"
APP_ID="myapp"

# ---------------------------------------------------------------------------------------------
# Output helpers

step() { printf '\n== %s\n' "$*"; }
say() { printf '%s\n' "$*"; }
fail() { printf 'demo-redis-dr: FAILED: %s\n' "$*" >&2; exit 1; }
# An argument as a reader would type it: as is when plain, else in single quotes.
quoted() { if [[ "$1" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi; }
# Prints a command the way a reader would type it, then runs it.
show() {
    local arg line='$'
    for arg in "$@"; do line+=" $(quoted "$arg")"; done
    printf '%s\n' "$line"
    "$@"
}

for tool in redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs what the demo needs)"
done

MOLT="${MOLT_BIN:-}"
if [ -z "$MOLT" ]; then
    bin_path="$(cd "$ROOT" && swift build -c "${CONFIG:-debug}" --show-bin-path)" || fail "cannot locate the build (swift build --show-bin-path)"
    MOLT="$bin_path/molt"
fi
PLUGINS="${MOLT_PLUGINS_DIR:-$ROOT/plugins.d}"
[ -x "$MOLT" ] || fail "no molt executable at $MOLT (run \`make build\`, or set MOLT_BIN)"
compgen -G "$PLUGINS/redis-state-*.so" >/dev/null || fail "no redis-state plugin in $PLUGINS (run \`make build\`, or set MOLT_PLUGINS_DIR)"

# Nothing from the caller's environment may change what molt serves or where (a MOLT_CONFIG, a
# MOLT_STATE_DIRECTORY, DAPR_*_PORT, ...): every setting the demo needs is an argument.
while read -r variable; do unset "$variable"; done < <(compgen -e | grep -E '^(MOLT_|DAPR_)|^APP_ID$' || true)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/molt-demo-redis-dr.XXXXXX")"
MOLT_PID=""
REDIS_PIDS=()

# Ends a process this script started: SIGTERM, up to 10 s, then SIGKILL; reaps it.
stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" -ne 0 ] && [ -f "$WORK/molt.log" ]; then
        printf '\n-- last lines of molt'"'"'s log (%s):\n' "$WORK/molt.log" >&2
        tail -n 30 "$WORK/molt.log" >&2 || true
    fi
    if [ -n "$MOLT_PID" ]; then stop_pid "$MOLT_PID"; say "stopped molt (pid $MOLT_PID)"; fi
    for pid in "${REDIS_PIDS[@]}"; do stop_pid "$pid"; say "stopped redis-server (pid $pid)"; done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# $1 loopback ports that are free now (bound together to port 0, then released), one per line.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# Polls `$@` (silenced) every 0.1 s until it succeeds; fails the demo naming $what after TIMEOUT_S.
wait_until() {
    local what="$1"; shift
    local deadline=$((SECONDS + TIMEOUT_S))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after $TIMEOUT_S s waiting for $what"
        sleep 0.1
    done
}

redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }
http_status_is() { [ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$2")" = "$1" ]; }

# Starts a redis-server on a free port; sets REDIS_PORT. A port taken meanwhile: another one (3 tries).
start_redis() {
    local label="$1" attempt port pid
    for attempt in 1 2 3; do
        port="$(free_ports 1)"
        mkdir -p "$WORK/redis-$label"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis-$label" \
            --daemonize no >"$WORK/redis-$label/redis.log" 2>&1 &
        pid=$!
        REDIS_PIDS+=("$pid")
        local deadline=$((SECONDS + TIMEOUT_S))
        while kill -0 "$pid" 2>/dev/null && ! redis_pong "$port"; do
            [ "$SECONDS" -lt "$deadline" ] || fail "redis-server $label did not answer PING within $TIMEOUT_S s"
            sleep 0.1
        done
        if redis_pong "$port"; then
            REDIS_PORT="$port"
            say "redis-server $label (pid $pid) on 127.0.0.1:$port"
            return 0
        fi
        wait "$pid" 2>/dev/null || true
    done
    fail "redis-server $label did not start; its log: $(tail -n 5 "$WORK/redis-$label/redis.log")"
}

# Starts molt serve on free ports; sets HTTP, CONTROL, ADMIN. A port taken meanwhile: others (3 tries).
start_molt() {
    local attempt ports
    for attempt in 1 2 3; do
        mapfile -t ports < <(free_ports 4)
        GRPC="127.0.0.1:${ports[0]}" HTTP="127.0.0.1:${ports[1]}" CONTROL="127.0.0.1:${ports[2]}" ADMIN="127.0.0.1:${ports[3]}"
        local args=(serve --plugins-directory "$PLUGINS" --components "$WORK/components.json" --app-id "$APP_ID"
            --grpc-address "$GRPC" --http-address "$HTTP" --control-address "$CONTROL" --admin-address "$ADMIN")
        printf '$ %s %s &  # log: %s\n' "$MOLT" "${args[*]}" "$WORK/molt.log"
        "$MOLT" "${args[@]}" >"$WORK/molt.log" 2>&1 &
        MOLT_PID=$!
        local deadline=$((SECONDS + TIMEOUT_S))
        while kill -0 "$MOLT_PID" 2>/dev/null && ! http_status_is 200 "http://$ADMIN/actuator/health/readiness"; do
            [ "$SECONDS" -lt "$deadline" ] || fail "molt was not ready within $TIMEOUT_S s"
            sleep 0.1
        done
        if http_status_is 200 "http://$ADMIN/actuator/health/readiness"; then
            say "molt (pid $MOLT_PID) is ready: app HTTP $HTTP, app gRPC $GRPC, control $CONTROL, admin $ADMIN"
            return 0
        fi
        wait "$MOLT_PID" 2>/dev/null || true
        MOLT_PID=""
        grep -qi "in use" "$WORK/molt.log" || fail "molt serve exited: $(tail -n 10 "$WORK/molt.log")"
    done
    fail "molt serve could not bind its ports: $(tail -n 10 "$WORK/molt.log")"
}

# Dapr's HTTP state API: saves key $1 = JSON value $2 (expects 204).
save_state() {
    local body code
    body="[{\"key\": \"$1\", \"value\": $2}]"
    printf '$ curl -s -X POST http://%s/v1.0/state/statestore -H "Content-Type: application/json" -d %s\n' "$HTTP" "'$body'"
    code="$(curl -s -o "$WORK/curl.out" --max-time 10 -w '%{http_code}' -X POST "http://$HTTP/v1.0/state/statestore" \
        -H 'Content-Type: application/json' -d "$body")" || fail "curl could not reach molt"
    say "HTTP $code"
    [ "$code" = "204" ] || fail "saving $1 answered HTTP $code: $(cat "$WORK/curl.out")"
}

read_state() {
    local code
    printf '$ curl -s http://%s/v1.0/state/statestore/%s\n' "$HTTP" "$1"
    code="$(curl -s -o "$WORK/curl.out" --max-time 10 -w '%{http_code}' "http://$HTTP/v1.0/state/statestore/$1")" \
        || fail "curl could not reach molt"
    say "$(cat "$WORK/curl.out")"
    [ "$code" = "200" ] || fail "reading $1 answered HTTP $code"
}

show_status() {
    show "$MOLT" status --control-address "$CONTROL" --timeout "$TIMEOUT_S" || fail "molt status failed"
}

# The statestore lines of molt_component_generation and molt_applies_total; sets GENERATION.
show_metrics() {
    local metrics
    printf '$ curl -s http://%s/metrics | grep -E %s\n' "$ADMIN" "'^molt_(component_generation|applies_total)\\{.*component=\"statestore\"'"
    metrics="$(curl -s --max-time 10 "http://$ADMIN/metrics")" || fail "GET /metrics failed"
    grep -E '^molt_(component_generation|applies_total)\{.*component="statestore"' <<<"$metrics" || fail "no statestore metrics"
    GENERATION="$(sed -nE 's/^molt_component_generation\{.*component="statestore".*\} ([0-9]+)(\.0)?$/\1/p' <<<"$metrics")"
    [ -n "$GENERATION" ] || fail "no molt_component_generation for statestore"
}

# ---------------------------------------------------------------------------------------------

step "1. two Redis servers: A (primary) and B (disaster recovery)"
start_redis A; A="127.0.0.1:$REDIS_PORT"; A_PORT="$REDIS_PORT"
start_redis B; B="127.0.0.1:$REDIS_PORT"; B_PORT="$REDIS_PORT"

step "2. molt serving statestore (plugin redis-state) on A"
cat >"$WORK/components.json" <<EOF
{ "components": [ { "kind": "state", "name": "statestore", "plugin": "redis-state", "metadata": { "redisHost": "$A" } } ] }
EOF
say "components file:"; cat "$WORK/components.json"
start_molt

step "3. the app saves state through Dapr's HTTP API"
save_state order-1 '{"orderId": 1}'
read_state order-1
show redis-cli -h 127.0.0.1 -p "$A_PORT" HGET "$APP_ID||order-1" data

step "4. before the switch"
show_status
show_metrics
GENERATION_BEFORE="$GENERATION"
say "statestore generation before the DR switch: $GENERATION_BEFORE"

step "5. the DR switch: statestore moves to B, molt keeps running"
show "$MOLT" apply --control-address "$CONTROL" --timeout "$TIMEOUT_S" --kind state --name statestore \
    --metadata "redisHost=$B" || fail "molt apply failed"

step "6. after the switch"
show_status
show_metrics
GENERATION_AFTER="$GENERATION"
say "statestore generation after the DR switch: $GENERATION_AFTER"
[ "$GENERATION_AFTER" -gt "$GENERATION_BEFORE" ] || fail "the generation did not change ($GENERATION_BEFORE -> $GENERATION_AFTER)"
kill -0 "$MOLT_PID" 2>/dev/null || fail "molt is no longer running"
say "same molt process (pid $MOLT_PID), no restart"

step "7. new writes land in B"
save_state order-2 '{"orderId": 2}'
read_state order-2
in_b="$(show redis-cli -h 127.0.0.1 -p "$B_PORT" HGET "$APP_ID||order-2" data)" || fail "redis-cli on B failed"
say "$in_b"
in_a="$(show redis-cli -h 127.0.0.1 -p "$A_PORT" EXISTS "$APP_ID||order-2")" || fail "redis-cli on A failed"
say "$in_a"
python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != {"orderId": 2})' "$(tail -n 1 <<<"$in_b")" 2>/dev/null \
    || fail "order-2 is not in B (HGET answered: $in_b)"
[ "$(tail -n 1 <<<"$in_a")" = "0" ] || fail "order-2 was written to A"
say "new write landed in B ($B): $APP_ID||order-2 = $(tail -n 1 <<<"$in_b"); A ($A) does not have it"

step "done: the DR switch took one molt apply; stopping what the demo started"
