#!/usr/bin/env bash
# milter.sh - what clawback-milter costs Postfix: messages/s through the same private Postfix
# (SMTP in, LMTP out to Dovecot) without the milter, then with it (smtpd_milters, spooling,
# indexing into Redis) with sync = everysec (the default) and with sync = always, in rounds of
# the three in the same run, with the same message set: N messages
# from postfix's smtp-source, C SMTP sessions in parallel, one recipient each. A run's time is
# from the first connection until every message is in the Dovecot mailbox. Printed, never
# asserted. Called by bench/run.sh (make bench); alone: BUILD=build bash bench/milter.sh
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
N=${BENCH_MILTER_MESSAGES:-1500}
ROUNDS=${BENCH_MILTER_ROUNDS:-2}
C=${BENCH_MILTER_SESSIONS:-8}
SIZE=${BENCH_MILTER_SIZE:-4096}
command -v smtp-source >/dev/null || { echo "milter bench: smtp-source (postfix) not installed"; exit 0; }

start_redis --appendonly yes --appendfsync everysec
start_dovecot alice@example.com
POSTFIX_EXTRA_CONF="milter_default_action = tempfail
default_process_limit = 100"
start_postfix
PF="$WORK/postfix"
# two milters on one index: the default sync (everysec) and sync = always
MODES=(everysec always)
declare -A PORT
for mode in "${MODES[@]}"; do
    PORT[$mode]=$(free_port)
    cat >"$WORK/milter-$mode.conf" <<EOC
[redis]
url = $REDIS_URL
[log]
file = $WORK/milter-$mode.log
[milter]
listen = inet:${PORT[$mode]}@127.0.0.1
spool_dir = $WORK/spool-$mode
sync = $mode
instance = bench-$mode
EOC
done

delivered() { find "$WORK/mail/alice@example.com" -path '*/new/*' -type f 2>/dev/null | wc -l; }
# run LABEL - send N messages and print the milliseconds until all are delivered
run() {
    local before start took
    before=$(delivered)
    start=$(now_ms)
    smtp-source -s "$C" -m "$N" -l "$SIZE" -f bench@outside.example -t alice@example.com "127.0.0.1:$SMTP_PORT" \
        >>"$WORK/smtp-source.err" 2>&1 || echo "smtp-source failed (see $WORK/smtp-source.err)"
    wait_until 600 "$N messages delivered ($1)" eval '[ "$(delivered)" -ge $((before + N)) ]'
    took=$(($(now_ms) - start))
    echo "$took"
}

echo "$N messages of $SIZE bytes per run, $C SMTP sessions in parallel (one message each), Postfix -> Dovecot LMTP, on $(nproc) cores; $ROUNDS rounds of: no milter, the milter with sync = everysec (the default), with sync = always"
for mode in "${MODES[@]}"; do
    spawn "milter-$mode" "$BIN/clawback-milter" -c "$WORK/milter-$mode.conf"
    wait_until 10 "the $mode milter to listen" port_in_use "${PORT[$mode]}"
done
# use MODE|none - point Postfix's smtpd at that milter or at none (postfix reload re-executes
# its daemons; nothing to poll for that: one bounded second)
use() {
    postconf -c "$PF" -e "smtpd_milters = $([ "$1" != none ] && echo "inet:127.0.0.1:${PORT[$1]}")" >/dev/null
    postfix -c "$PF" reload >/dev/null 2>&1
    sleep 1
}
indexed() { python3 -c 'import sys; print(sys.argv[1].split(" indexed=")[1].split()[0])' "$(cat "$WORK/spool-$1/status")"; }
# a warm-up through each, so that every kind of run finds Postfix's processes and Dovecot's
# mailbox ready
N_SAVED=$N
N=200
for mode in "${MODES[@]}"; do
    use "$mode"
    run warm-up >/dev/null
    wait_until 60 "the warm-up indexed" eval '[ "$(indexed "$mode")" -ge 200 ]'
done
N=$N_SAVED
declare -A TOTAL_MS=([none]=0 [everysec]=0 [always]=0)
for r in $(seq 1 "$ROUNDS"); do
    line="round $r:"
    for mode in none "${MODES[@]}"; do
        use "$mode"
        t=$(run "$mode, round $r")
        TOTAL_MS[$mode]=$((TOTAL_MS[$mode] + t))
        line="$line $mode $t ms,"
    done
    echo "${line%,}"
done
start=$(now_ms)
for mode in "${MODES[@]}"; do
    wait_until 120 "the $mode milter to index all" eval '[ "$(indexed "$mode")" -ge $((200 + ROUNDS * N)) ]'
done
lag=$(($(now_ms) - start))
total=$((ROUNDS * N))
rate() { awk "BEGIN { printf \"%.0f\", $total * 1000 / ($1 > 0 ? $1 : 1) }"; }
cost() { awk "BEGIN { printf \"%.1f\", ($1 - $2) * 100 / ($2 > 0 ? $2 : 1) }"; }
base=${TOTAL_MS[none]}
echo "without the milter:          $base ms, $(rate "$base") messages/s"
for mode in "${MODES[@]}"; do
    t=${TOTAL_MS[$mode]}
    echo "with the milter, sync = $mode: $t ms, $(rate "$t") messages/s: $(cost "$t" "$base")% more time than without"
done
echo "index: the last message in the index $lag ms after the last delivery; milter peak RSS $(($(awk '/VmHWM/ {print $2}' "/proc/$(pid_of milter-everysec)/status") / 1024)) MB"
for mode in "${MODES[@]}"; do
    kill -TERM "$(pid_of "milter-$mode")"
done
for mode in "${MODES[@]}"; do
    wait_until 30 "the $mode milter to stop" eval "! alive milter-$mode"
done
