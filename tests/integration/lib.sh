# lib.sh - helpers for integration tests: a private redis-server on a free loopback port,
# processes that are cleaned up on exit, and waiting on a condition with a deadline.
#
# Every wait is bounded: wait_until gives up after its timeout and fails the test.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$ROOT/$BUILD/bin"
TOOLS="$ROOT/$BUILD/tests"
WORK=$(mktemp -d /tmp/clawback-test.XXXXXX)
PIDS=()
REDIS_PORT=""

cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    [ -n "$REDIS_PORT" ] && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM # so that a SIGTERM (timeout, kill) also runs the EXIT cleanup
trap 'exit 130' INT

fail() {
    echo "FAIL: $*" >&2
    for f in "$WORK"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; } >&2; done
    # last, so that the tail of a log shows them: the processes still running, then the failure
    local pidfile name
    for pidfile in "$WORK"/*.pid; do
        [ -f "$pidfile" ] || continue
        name=$(basename "$pidfile" .pid)
        alive "$name" && [ -f "$WORK/$name.err" ] && { echo "--- running: $name"; tail -n 4 "$WORK/$name.err"; } >&2
    done
    echo "FAIL: $* (at $(caller 1 2>/dev/null || caller 0))" >&2
    exit 1
}

# now_ms - milliseconds since the epoch.
now_ms() { date +%s%3N; }

# wait_until SECONDS DESCRIPTION COMMAND... - poll COMMAND every 50 ms until it succeeds or
# the deadline passes (then the test fails with DESCRIPTION).
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local start
    start=$(now_ms)
    local deadline=$((start + seconds * 1000))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -ge "$deadline" ] && fail "timed out after ${seconds}s waiting for: $what"
        sleep 0.05
    done
    local took=$(($(now_ms) - start))
    # a wait that used more than a third of its deadline is a near miss worth seeing in a log
    [ "$took" -gt $((seconds * 333)) ] && echo "slow: ${took} ms of ${seconds}s waiting for: $what"
    return 0
}

# random_port - a port below the kernel's ephemeral range (32768 up): a port picked there can
# be taken between the pick and the bind as the local port of any outgoing connection.
random_port() { echo $((10000 + RANDOM % 22768)); }

# start_redis [EXTRA ARGS] - a private redis-server on a free port (REDIS_PORT, REDIS_URL).
start_redis() {
    local tries
    for tries in $(seq 1 30); do
        local port
        port=$(random_port)
        if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
            --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" "$@" >/dev/null 2>&1; then
            REDIS_PORT=$port
            if wait_redis_up 5; then
                REDIS_URL="redis://127.0.0.1:$port/0"
                return 0
            fi
        fi
    done
    fail "cannot start redis-server"
}

# wait_redis_up SECONDS - whether redis answers PING within the time.
wait_redis_up() {
    local deadline=$(($(now_ms) + $1 * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    return 1
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# spawn NAME COMMAND... - start a background process, output in $WORK/NAME.{out,err};
# its pid is stored in $WORK/NAME.pid and remembered for cleanup.
spawn() {
    local name=$1
    shift
    "$@" >>"$WORK/$name.out" 2>>"$WORK/$name.err" &
    local pid=$!
    echo "$pid" >"$WORK/$name.pid"
    PIDS+=("$pid")
}

pid_of() { cat "$WORK/$1.pid"; }
alive() { kill -0 "$(pid_of "$1")" 2>/dev/null; }
not_alive() { ! alive "$1"; }

# stop_gracefully NAME - SIGTERM and wait (bounded) for the exit; the exit status is left in
# STOP_STATUS (call it in the main shell, not in $(...), so that wait can reap the child).
stop_gracefully() {
    local pid
    pid=$(pid_of "$1")
    kill -TERM "$pid" 2>/dev/null
    wait_until 20 "$1 to stop after SIGTERM" not_alive "$1"
    wait "$pid" 2>/dev/null
    STOP_STATUS=$?
}

kill_hard() { kill -9 "$(pid_of "$1")" 2>/dev/null; wait "$(pid_of "$1")" 2>/dev/null; true; }

# queue_field EDGE FIELD - one number from `clawback queues --json --edge EDGE`.
queue_field() {
    "$BIN/clawback" -c "$CONF" --redis "$REDIS_URL" queues --json --edge "$1" |
        sed -n "s/.*\"$2\":\([0-9-]*\).*/\1/p"
}

# stat_of FIELD - a counter from cb:bus:stats (0 when absent).
stat_of() { local v; v=$(rcli hget cb:bus:stats "$1"); echo "${v:-0}"; }

xlen() { rcli xlen "cb:bus:$1:q"; }

# at_least N COMMAND... - whether the number COMMAND prints is >= N.
at_least() { local n=$1; shift; local v; v=$("$@"); [ -n "$v" ] && [ "$v" -ge "$n" ]; }
