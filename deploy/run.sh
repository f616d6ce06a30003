#!/usr/bin/env bash
# run.sh - `make run`: the whole pipeline in the foreground on this machine.
#
# Without CLAWBACK_CONF and REDIS_URL it runs the demo (deploy/demo.sh): the whole system on
# local parts (Redis, Dovecot, Postfix, a verdict service stand-in) with a few real messages,
# a verdict, and the messages leaving their mailboxes.
#
# Uses CLAWBACK_CONF (default: the embedded defaults) and REDIS_URL when given; otherwise
# starts a private redis-server (AOF, fsync every second) in build/run/ on 127.0.0.1:6390.
# Starts clawback-logger, -remediator, -enricher and -poller, logging to build/run/*.log,
# and stops them all (SIGTERM, then Redis) on Ctrl-C.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CLAWBACK_CONF:-}" ] && [ -z "${REDIS_URL:-}" ]; then
    exec "$ROOT/deploy/demo.sh"
fi
RUN="$ROOT/$BUILD/run"
mkdir -p "$RUN"
CONF_ARGS=()
[ -n "${CLAWBACK_CONF:-}" ] && CONF_ARGS=(-c "$CLAWBACK_CONF")
PIDS=()
OWN_REDIS=""

stop_all() {
    trap - INT TERM EXIT
    echo "stopping..."
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    [ -n "$OWN_REDIS" ] && redis-cli -p "$OWN_REDIS" shutdown >/dev/null 2>&1
    echo "stopped"
}
trap "stop_all; exit 0" INT TERM
trap stop_all EXIT

if [ -z "${REDIS_URL:-}" ]; then
    OWN_REDIS=${CLAWBACK_REDIS_PORT:-6390}
    redis-server --port "$OWN_REDIS" --bind 127.0.0.1 --dir "$RUN" --appendonly yes --appendfsync everysec \
        --daemonize yes --logfile "$RUN/redis.log" >/dev/null || { echo "cannot start redis-server"; exit 1; }
    REDIS_URL="redis://127.0.0.1:$OWN_REDIS/0"
fi
for d in logger remediator enricher poller; do
    "$ROOT/$BUILD/bin/clawback-$d" "${CONF_ARGS[@]}" --redis "$REDIS_URL" 2>>"$RUN/$d.log" &
    PIDS+=($!)
done
echo "Clawback is running against $REDIS_URL; logs in $RUN/."
echo "Queue depth: $BUILD/bin/clawback --redis $REDIS_URL queues    (Ctrl-C stops everything)"
wait -n "${PIDS[@]}"
echo "a daemon exited; see $RUN/*.log"
