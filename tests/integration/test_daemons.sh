#!/usr/bin/env bash
# test_daemons.sh - the conventions every program keeps, on the real daemons and a real
# redis-server: options and exit statuses, configuration errors with file and line, waiting
# for a Redis that is not up yet, joining the bus, setting aside a malformed record, SIGHUP
# reopening the log, SIGTERM stopping cleanly, and surviving a Redis restart.
source "$(dirname "$0")/lib.sh"

DAEMONS=(clawback-poller clawback-enricher clawback-remediator clawback-logger)

echo "== options and exit statuses"
for d in "${DAEMONS[@]}" clawback; do
    "$BIN/$d" --help >"$WORK/help.out" 2>&1 || fail "$d --help exited $?"
    grep -q "usage: $d" "$WORK/help.out" || fail "$d --help prints no usage"
    "$BIN/$d" --version | grep -q "0\." || fail "$d --version"
    set +e
    "$BIN/$d" --no-such-option >/dev/null 2>&1
    st=$?
    set -e 2>/dev/null; set +e
    [ "$st" = 2 ] || fail "$d with a bad option exited $st, expected 2"
done
"$BIN/clawback" queues --help | grep -q "usage: clawback" || fail "clawback queues --help"
"$BIN/clawback" no-such-command >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command must exit 2"
echo "ok"

echo "== configuration errors name the file and line; the program refuses to start"
printf '[log]\nlevel = info\n\n[bus]\ncapacity = lots\n' >"$WORK/bad1.conf"
printf '[log]\nlevel = info\n[redis]\nurl = redis://127.0.0.1:1/0\nsecret = 1\n' >"$WORK/bad2.conf"
printf '[nosuchsection]\nkey = 1\n' >"$WORK/bad3.conf"
printf '[bus]\nack_timeout = 30 lightyears\n' >"$WORK/bad4.conf"
check_bad() { # FILE LINE TEXT
    local out st
    out=$("$BIN/clawback-poller" -c "$1" 2>&1); st=$?
    [ "$st" = 1 ] || fail "clawback-poller -c $1 exited $st, expected 1"
    echo "$out" | grep -q "$1:$2: .*$3" || fail "error for $1 does not say line $2 / '$3': $out"
    out=$("$BIN/clawback" -c "$1" config check 2>&1); st=$?
    [ "$st" = 1 ] || fail "clawback config check on $1 exited $st"
    echo "$out" | grep -q "$1:$2:" || fail "config check for $1 does not say line $2: $out"
}
check_bad "$WORK/bad1.conf" 5 "capacity"
check_bad "$WORK/bad2.conf" 5 "unknown key 'secret'"
check_bad "$WORK/bad3.conf" 1 "unknown section"
check_bad "$WORK/bad4.conf" 2 "not a duration"
"$BIN/clawback" config example >"$WORK/example.conf"
"$BIN/clawback" -c "$WORK/example.conf" config check | grep -q ": ok" || fail "the example does not load"
echo "ok"

echo "== daemons wait for Redis, join the bus, stop on SIGTERM"
start_redis
cat >"$WORK/d.conf" <<EOC
[log]
file = $WORK/poller.log
level = debug
[bus]
ack_timeout = 1s
heartbeat = 100ms
EOC
sed "s#poller.log#enricher.log#" "$WORK/d.conf" >"$WORK/e.conf"
sed "s#poller.log#logger.log#" "$WORK/d.conf" >"$WORK/l.conf"
sed "s#poller.log#remediator.log#" "$WORK/d.conf" >"$WORK/r.conf"
# a Redis that is not up yet: the daemon waits instead of dying
DOWN_PORT=$((REDIS_PORT + 1))
spawn waiting "$BIN/clawback-enricher" -c "$WORK/e.conf" --redis "redis://127.0.0.1:$DOWN_PORT/0"
wait_until 10 "the enricher to report it waits for Redis" grep -q "waiting for Redis" "$WORK/enricher.log"
alive waiting || fail "the enricher died while Redis was down"
stop_gracefully waiting
[ "$STOP_STATUS" = 0 ] || fail "SIGTERM while waiting for Redis: exit $STOP_STATUS"
rm -f "$WORK/enricher.log"

spawn poller "$BIN/clawback-poller" -c "$WORK/d.conf" --redis "$REDIS_URL"
spawn enricher "$BIN/clawback-enricher" -c "$WORK/e.conf" --redis "$REDIS_URL"
spawn remediator "$BIN/clawback-remediator" -c "$WORK/r.conf" --redis "$REDIS_URL"
spawn logger "$BIN/clawback-logger" -c "$WORK/l.conf" --redis "$REDIS_URL"
CONF="$WORK/d.conf"
for edge in verdicts jobs results events; do
    wait_until 10 "a dispatcher of $edge" at_least 1 queue_field $edge dispatchers
done
wait_until 10 "the enricher to consume verdicts" at_least 1 queue_field verdicts consumers
wait_until 10 "the logger to consume events" at_least 1 queue_field events consumers
wait_until 10 "the logger to consume results" at_least 1 queue_field results consumers
wait_until 10 "the remediator to consume jobs" at_least 1 queue_field jobs consumers
echo "ok: every edge has its dispatchers and consumers"

echo "== a malformed record is set aside, the daemon keeps running"
rcli xadd cb:bus:verdicts:q '*' i bad-record-1 r 'this is not msgpack' >/dev/null
wait_until 10 "the malformed verdict set aside" at_least 1 queue_field verdicts dead
grep -q "bad-record-1 set aside" "$WORK/enricher.log" || fail "no log line for the set-aside record"
rcli xrange cb:bus:verdicts:dead - + | grep -q "malformed msgpack" || fail "the dead letter does not say why"
alive enricher || fail "the enricher died on a malformed record"
echo "ok"

echo "== SIGHUP reopens the log (logrotate)"
mv "$WORK/logger.log" "$WORK/logger.log.1"
kill -HUP "$(pid_of logger)"
wait_until 10 "a new logger.log" test -s "$WORK/logger.log"
grep -q "log files reopened" "$WORK/logger.log" || fail "the reopened log lacks the reopen line"
alive logger || fail "SIGHUP killed the logger"
echo "ok"

echo "== the logger writes events sent on the bus, in the seed's line format"
"$TOOLS/bus_peer" -c "$WORK/d.conf" --redis "$REDIS_URL" produce --edge events --count 3 --prefix ev >/dev/null
wait_until 10 "the events written" grep -q "bus_peer record 2" "$WORK/logger.log"
grep -Eq '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4} Info: bus_peer record 0$' \
    "$WORK/logger.log" || fail "event line not in the seed's format: $(grep 'record 0' "$WORK/logger.log")"
echo "ok"

echo "== Redis restarts: the daemons keep running and recover"
rcli shutdown nosave >/dev/null 2>&1
wait_until 10 "redis to stop" bash -c "! redis-cli -p $REDIS_PORT ping >/dev/null 2>&1"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" --daemonize yes \
    --logfile "$WORK/redis2.log" >/dev/null
wait_redis_up 10 || fail "redis did not restart"
for d in poller enricher remediator logger; do alive $d || fail "$d died when Redis went away"; done
wait_until 15 "the dispatchers to announce again" at_least 1 queue_field verdicts dispatchers
wait_until 15 "the logger to consume again" at_least 1 queue_field events consumers
"$TOOLS/bus_peer" -c "$WORK/d.conf" --redis "$REDIS_URL" produce --edge events --count 1 --prefix after >/dev/null
wait_until 15 "an event after the restart written" grep -q "bus_peer record 0" "$WORK/logger.log"
echo "ok"

echo "== SIGTERM stops every daemon cleanly"
for d in poller enricher remediator logger; do
    stop_gracefully $d
    [ "$STOP_STATUS" = 0 ] || fail "$d exited $STOP_STATUS on SIGTERM"
done
grep -q "clawback-logger: stopped" "$WORK/logger.log" || fail "no stop line"
for edge in verdicts jobs results events; do
    [ "$(queue_field $edge dispatchers)" = 0 ] || fail "$edge still announces a dispatcher after stop"
done
echo "ok: all daemons exited 0 and withdrew their announcements"
