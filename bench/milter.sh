#!/usr/bin/env bash
# milter.sh - what clawback-milter costs Postfix: messages/s through the same private Postfix
# (SMTP in, LMTP out to Dovecot) without a milter, with bench/null_milter (libmilter doing
# nothing: what the milter protocol alone costs), and with clawback-milter (smtpd_milters,
# spooling, indexing into Redis) with sync = everysec (the default) and with sync = always, in
# rounds of the four in the same run, with the same message set: N messages
# from postfix's smtp-source, C SMTP sessions in parallel, one recipient each. A run's time is
# from the first connection until Postfix has logged every message's delivery to Dovecot. Printed, never
# asserted. Called by bench/run.sh (make bench); alone: BUILD=build bash bench/milter.sh
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
N=${BENCH_MILTER_MESSAGES:-1500}
ROUNDS=${BENCH_MILTER_ROUNDS:-2}
C=${BENCH_MILTER_SESSIONS:-8}
# the milters' sockets: inet (loopback TCP) or unix (a milter on the MTA's own host)
SOCKET=${BENCH_MILTER_SOCKET:-inet}
case "$SOCKET" in inet | unix) ;; *) fail "BENCH_MILTER_SOCKET is inet or unix" ;; esac
SIZE=${BENCH_MILTER_SIZE:-4096}
command -v smtp-source >/dev/null || { echo "milter bench: smtp-source (postfix) not installed"; exit 0; }

start_redis --appendonly yes --appendfsync everysec
# every run delivers into a mailbox of its own (run1@, run2@...): a maildir that grows from run
# to run makes each delivery slower, which would count against whichever mode runs later
RUNS=$((3 + 4 * ROUNDS))
rcpts=()
for i in $(seq 1 "$RUNS"); do rcpts+=("run$i@example.com"); done
start_dovecot "${rcpts[@]}"
POSTFIX_EXTRA_CONF="milter_default_action = tempfail
default_process_limit = 100"
start_postfix
PF="$WORK/postfix"
# two milters on one index: the default sync (everysec) and sync = always
MODES=(everysec always)
declare -A PORT SOCK
# listen_at MODE - the milter's address in libmilter's form; milter_at MODE - in Postfix's
listen_at() { if [ "$SOCKET" = unix ]; then echo "unix:${SOCK[$1]}"; else echo "inet:${PORT[$1]}@127.0.0.1"; fi; }
milter_at() { if [ "$SOCKET" = unix ]; then echo "unix:${SOCK[$1]}"; else echo "inet:127.0.0.1:${PORT[$1]}"; fi; }
# listening MODE - the milter listens; a unix socket is opened to Postfix's unprivileged smtpd
listening() {
    if [ "$SOCKET" = unix ]; then
        [ -S "${SOCK[$1]}" ] && chmod 666 "${SOCK[$1]}"
    else
        port_in_use "${PORT[$1]}"
    fi
}
for mode in "${MODES[@]}"; do
    PORT[$mode]=$(free_port)
    SOCK[$mode]=$WORK/milter-$mode.sock
    cat >"$WORK/milter-$mode.conf" <<EOC
[redis]
url = $REDIS_URL
[log]
file = $WORK/milter-$mode.log
[milter]
listen = $(listen_at "$mode")
spool_dir = $WORK/spool-$mode
sync = $mode
instance = bench-$mode
status_interval = 1s
EOC
done

# busy_ms - CPU milliseconds the whole machine has spent busy since boot (every process, the
# kernel included; /proc/stat); proc_ms PID - those of one process (all its threads)
HZ=$(getconf CLK_TCK)
busy_ms() { awk -v hz="$HZ" '/^cpu / { print int(($2 + $3 + $4 + $7 + $8 + $9) * 1000 / hz) }' /proc/stat; }
proc_ms() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat"; }
# milter_pid MODE - the process of that milter (none: no process)
milter_pid() {
    case "$1" in
    none) echo "" ;;
    null) pid_of null-milter ;;
    *) pid_of "milter-$1" ;;
    esac
}
RUN=0
delivered() { find "$WORK/mail/run$RUN@example.com" -path '*/new/*' -type f 2>/dev/null | wc -l; }
# run LABEL - send N messages to the next run's mailbox; RUN_MS: the milliseconds until Postfix
# has logged each one's delivery (status=sent). The waiter reads only what the maillog gained,
# every 10 ms, and starts before the clock: counting the maildir's files per poll took CPU from
# Postfix in the runs.
run() {
    local start took waiter busy0 milter0 pid
    pid=$(milter_pid "$MODE")
    RUN=$((RUN + 1))
    rm -f "$WORK/waiting"
    python3 "$ROOT/tests/tools/log_wait.py" --ready "$WORK/waiting" "$WORK/maillog" " status=sent " "$N" 600 &
    waiter=$!
    wait_until 30 "the delivery waiter to start" test -e "$WORK/waiting"
    busy0=$(busy_ms)
    milter0=$([ -n "$pid" ] && proc_ms "$pid" || echo 0)
    start=$(now_ms)
    smtp-source -s "$C" -m "$N" -l "$SIZE" -f bench@outside.example -t "run$RUN@example.com" "127.0.0.1:$SMTP_PORT" \
        >>"$WORK/smtp-source.err" 2>&1 || echo "smtp-source failed (see $WORK/smtp-source.err)"
    wait "$waiter" || fail "$N messages delivered ($1)"
    took=$(($(now_ms) - start))
    # clawback-milter's CPU includes its indexing of the run, which may end after the deliveries
    if [ -n "$pid" ] && [ "$MODE" != null ]; then
        WANT_INDEXED[$MODE]=$((${WANT_INDEXED[$MODE]:-0} + N))
        wait_until 120 "the $MODE milter to index the run" eval '[ "$(indexed "$MODE")" -ge ${WANT_INDEXED[$MODE]} ]'
    fi
    RUN_BUSY=$(($(busy_ms) - busy0))
    RUN_MILTER=$(($([ -n "$pid" ] && proc_ms "$pid" || echo 0) - milter0))
    wait_until 30 "$N messages in the mailbox ($1)" eval '[ "$(delivered)" -ge $N ]'
    RUN_MS=$took
}

echo "$N messages of $SIZE bytes per run, $C SMTP sessions in parallel (one message each), Postfix -> Dovecot LMTP, milters on $SOCKET sockets, on $(nproc) cores; $ROUNDS rounds of: no milter, the do-nothing milter, clawback-milter with sync = everysec (the default), with sync = always"
for mode in "${MODES[@]}"; do
    spawn "milter-$mode" "$BIN/clawback-milter" -c "$WORK/milter-$mode.conf"
    wait_until 10 "the $mode milter to listen" listening "$mode"
done
PORT[null]=$(free_port)
SOCK[null]=$WORK/milter-null.sock
spawn null-milter "$ROOT/$BUILD/bench/null_milter" "$(listen_at null)"
wait_until 10 "the null milter to listen" listening null
# use MODE|none - point Postfix's smtpd at that milter or at none (postfix reload re-executes
# its daemons; nothing to poll for that: one bounded second)
use() {
    postconf -c "$PF" -e "smtpd_milters = $([ "$1" != none ] && milter_at "$1")" >/dev/null
    postfix -c "$PF" reload >/dev/null 2>&1
    sleep 1
}
indexed() { sed -n 's/.* indexed=\([0-9]*\).*/\1/p' "$WORK/spool-$1/status"; }
declare -A WANT_INDEXED
# a warm-up through each, so that every kind of run finds Postfix's processes and Dovecot's
# mailbox ready
N_SAVED=$N
N=200
for mode in null "${MODES[@]}"; do
    use "$mode"
    MODE=$mode
    run warm-up
done
N=$N_SAVED
declare -A TOTAL_MS=([none]=0 [null]=0 [everysec]=0 [always]=0)
declare -A BUSY_MS=([none]=0 [null]=0 [everysec]=0 [always]=0) MILTER_MS=([none]=0 [null]=0 [everysec]=0 [always]=0)
# each round starts one place further in the order, so that no mode always runs first or last
ORDER=(none null "${MODES[@]}")
for r in $(seq 1 "$ROUNDS"); do
    line="round $r:"
    for k in "${!ORDER[@]}"; do
        mode=${ORDER[$(((k + r - 1) % ${#ORDER[@]}))]}
        use "$mode"
        MODE=$mode
        run "$mode, round $r"
        TOTAL_MS[$mode]=$((TOTAL_MS[$mode] + RUN_MS))
        BUSY_MS[$mode]=$((BUSY_MS[$mode] + RUN_BUSY))
        MILTER_MS[$mode]=$((MILTER_MS[$mode] + RUN_MILTER))
        line="$line $mode $RUN_MS ms,"
    done
    echo "${line%,}"
done
total=$((ROUNDS * N))
rate() { awk "BEGIN { printf \"%.0f\", $total * 1000 / ($1 > 0 ? $1 : 1) }"; }
cost() { awk "BEGIN { printf \"%.1f\", ($1 - $2) * 100 / ($2 > 0 ? $2 : 1) }"; }
base=${TOTAL_MS[none]}
null=${TOTAL_MS[null]}
echo "without a milter:                  $base ms, $(rate "$base") messages/s"
echo "with the do-nothing milter:        $null ms, $(rate "$null") messages/s: $(cost "$null" "$base")% more time than without"
for mode in "${MODES[@]}"; do
    t=${TOTAL_MS[$mode]}
    echo "with clawback-milter, sync = $mode: $t ms, $(rate "$t") messages/s: $(cost "$t" "$base")% more time than without ($(cost "$t" "$null")% more than the do-nothing milter)"
done
echo "CPU per message (the whole machine's busy time over the runs, the milter's own, its indexing included):"
for mode in none null "${MODES[@]}"; do
    printf '  %-9s %5d µs, of which the milter %4d µs and the rest %5d µs\n' "$mode" \
        $((BUSY_MS[$mode] * 1000 / total)) $((MILTER_MS[$mode] * 1000 / total)) $(((BUSY_MS[$mode] - MILTER_MS[$mode]) * 1000 / total))
done
echo "index: milter peak RSS $(($(awk '/VmHWM/ {print $2}' "/proc/$(pid_of milter-everysec)/status") / 1024)) MB"
kill -TERM "$(pid_of null-milter)"
for mode in "${MODES[@]}"; do
    kill -TERM "$(pid_of "milter-$mode")"
done
for mode in "${MODES[@]}"; do
    wait_until 30 "the $mode milter to stop" eval "! alive milter-$mode"
done
