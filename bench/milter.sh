#!/usr/bin/env bash
# milter.sh - what clawback-milter costs Postfix: messages/s through the same private Postfix
# (SMTP in, LMTP out to Dovecot) without the milter, then with it (smtpd_milters, spooling
# with fsync, indexing into Redis), in the same run, with the same message set: N messages
# from postfix's smtp-source, C SMTP sessions in parallel, one recipient each. A run's time is
# from the first connection until every message is in the Dovecot mailbox. Printed, never
# asserted. Called by bench/run.sh (make bench); alone: BUILD=build bash bench/milter.sh
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
N=${BENCH_MILTER_MESSAGES:-3000}
C=${BENCH_MILTER_SESSIONS:-8}
SIZE=${BENCH_MILTER_SIZE:-4096}
command -v smtp-source >/dev/null || { echo "milter bench: smtp-source (postfix) not installed"; exit 0; }

start_redis --appendonly yes --appendfsync everysec
start_dovecot alice@example.com
MILTER_PORT=$(free_port)
POSTFIX_EXTRA_CONF="milter_default_action = tempfail
default_process_limit = 100"
start_postfix
PF="$WORK/postfix"
cat >"$WORK/milter.conf" <<EOC
[redis]
url = $REDIS_URL
[log]
file = $WORK/milter.log
[milter]
listen = inet:$MILTER_PORT@127.0.0.1
spool_dir = $WORK/spool
EOC

delivered() { find "$WORK/mail/alice@example.com" -path '*/new/*' -type f 2>/dev/null | wc -l; }
# run LABEL - send N messages and print the messages/s until all are delivered
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

echo "$N messages of $SIZE bytes, $C SMTP sessions in parallel, Postfix -> Dovecot LMTP, on $(nproc) cores"
# a warm-up, so that both runs find Postfix's processes and Dovecot's mailbox ready
N_SAVED=$N; N=200; run warm-up >/dev/null; N=$N_SAVED
without=$(run "without the milter")
spawn milter "$BIN/clawback-milter" -c "$WORK/milter.conf"
wait_until 10 "the milter to listen" port_in_use "$MILTER_PORT"
postconf -c "$PF" -e "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" >/dev/null
postfix -c "$PF" reload >/dev/null 2>&1
sleep 1 # postfix reload re-executes its daemons; nothing to poll for it (bounded, one second)
with=$(run "with the milter")
indexed_all() { [ "$(python3 -c 'import sys; print(sys.argv[1].split(" indexed=")[1].split()[0])' "$(cat "$WORK/spool/status")")" -ge "$N" ]; }
start=$(now_ms)
wait_until 120 "the milter to index all" indexed_all
lag=$(($(now_ms) - start))
rate() { awk "BEGIN { printf \"%.0f\", $N * 1000 / ($1 > 0 ? $1 : 1) }"; }
echo "without the milter: $without ms, $(rate "$without") messages/s"
echo "with the milter:    $with ms, $(rate "$with") messages/s (every message spooled with fsync before Postfix's answer)"
echo "cost: $(awk "BEGIN { printf \"%.1f\", ($with - $without) * 100 / ($without > 0 ? $without : 1) }")% more time, throughput $(awk "BEGIN { printf \"%.1f\", (1 - $without / ($with > 0 ? $with : 1)) * 100 }")% lower"
echo "index: the last of them in the index $lag ms after the last delivery; milter peak RSS $(($(awk '/VmHWM/ {print $2}' "/proc/$(pid_of milter)/status") / 1024)) MB"
kill -TERM "$(pid_of milter)"
wait "$(pid_of milter)" 2>/dev/null
