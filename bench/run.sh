#!/usr/bin/env bash
# run.sh - the benchmarks (make bench). Starts its own redis-server on a free loopback port.
# Figures are printed, never asserted: speed is measured here, not in tests.
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
N=${BENCH_RECORDS:-100000}
start_redis --appendonly yes --appendfsync everysec
echo "bus throughput, $N records of ~150 bytes, one edge, on $(nproc) cores"
"$ROOT/$BUILD/bench/bench_bus" pushpull "$N"
"$ROOT/$BUILD/bench/bench_bus" edge "$REDIS_URL" "$N"
echo "redis used_memory after the run: $(rcli info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"

echo
echo "URL extraction over the SpamAssassin corpus (tests/corpus.sh), one core"
CORPUS=$("$ROOT/tests/corpus.sh") || { echo "bench: corpus unavailable"; exit 1; }
find "$CORPUS" -name '*.txt' -type f | sort >"$WORK/corpus.list"
start=$(now_ms)
"$ROOT/$BUILD/bench/bench_mime" run "$WORK/clawback.pairs" <"$WORK/corpus.list"
cb_wall=$(($(now_ms) - start))
n=$(wc -l <"$WORK/corpus.list")
echo "clawback: whole run (reading files, parsing, writing URLs): $cb_wall ms wall, $((n * 1000 / (cb_wall > 0 ? cb_wall : 1))) messages/s"
if command -v rspamadm >/dev/null 2>&1; then
    start=$(now_ms)
    # shellcheck disable=SC2046
    # line-buffered: rspamd otherwise interleaves "File:" lines with its URLs
    (cd / && stdbuf -oL -eL rspamadm mime urls $(cat "$WORK/corpus.list")) >"$WORK/rspamd.out" 2>"$WORK/rspamd.err"
    rs_wall=$(($(now_ms) - start))
    echo "rspamd:   rspamadm mime urls over the same files: $rs_wall ms wall, $((n * 1000 / (rs_wall > 0 ? rs_wall : 1))) messages/s"
    echo "ratio (whole runs, wall): clawback is $(awk "BEGIN { printf \"%.1f\", $rs_wall / ($cb_wall > 0 ? $cb_wall : 1) }") times rspamd's messages/s"
    mkdir -p "$ROOT/$BUILD/bench"
    "$ROOT/$BUILD/bench/bench_mime" agree "$WORK/rspamd.out" "$WORK/clawback.pairs" "$ROOT/$BUILD/bench/url-agreement"
else
    echo "rspamd: rspamadm not installed (make deps installs it); no comparison"
fi

echo
COPIES=${BENCH_INDEX_COPIES:-32}
echo "index: the corpus $COPIES times (distinct recipients), deliveries spread over the 168-hour window"
rcli flushall >/dev/null
"$ROOT/$BUILD/bench/bench_index" "$REDIS_URL" "$COPIES" <"$WORK/corpus.list"

echo
LIST=${BENCH_FEED_URLS:-100000}
echo "poller: a URLhaus-sized list of $LIST URLs as one snapshot, handed over to the verdicts edge"
rcli flushall >/dev/null
for i in $(seq 1 "$LIST"); do echo "http://bench-$((i % 997)).example/path/$i?q=$i"; done >"$WORK/feed.txt"
printf '[redis]\nurl = %s\n[log]\nfile = %s\n[bus]\nmax_waiting = %s\n[feed bench]\ntype = openphish\nurl = %s\ninterval = 1h\n' \
    "$REDIS_URL" "$WORK/poller.log" "$((LIST + 1000))" "$WORK/feed.txt" >"$WORK/poller.conf"
start=$(now_ms)
spawn poller "$BIN/clawback-poller" -c "$WORK/poller.conf"
feed_verdicts() { rcli hget cb:feed:bench verdicts; }
wait_until 600 "the snapshot to be handed over" at_least "$LIST" feed_verdicts
took=$(($(now_ms) - start))
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(pid_of poller)/status")
echo "first snapshot: $LIST new verdicts in $took ms ($((LIST * 1000 / (took > 0 ? took : 1))) verdicts/s, start-up included); poller peak RSS $((rss / 1024)) MB"
seen=$(($(rcli memory usage cb:feed:bench:seen | tr -d '\r') / LIST))
echo "seen set: $seen bytes per URL in Redis"
# the same list again: nothing new, every URL's last-seen time refreshed
kill -TERM "$(pid_of poller)"; wait "$(pid_of poller)" 2>/dev/null
rcli hset cb:feed:bench next_poll_ms 0 >/dev/null
start=$(now_ms)
last=$(rcli hget cb:feed:bench last_success_ms)
spawn poller2 "$BIN/clawback-poller" -c "$WORK/poller.conf"
polled_again() { [ "$(rcli hget cb:feed:bench last_success_ms)" -gt "$last" ]; }
wait_until 600 "the second snapshot" polled_again
echo "second snapshot (nothing new): $(($(now_ms) - start)) ms, verdicts still $(feed_verdicts)"
kill -TERM "$(pid_of poller2)"; wait "$(pid_of poller2)" 2>/dev/null

echo
FAN=${BENCH_FANOUT:-100000}
echo "enricher: one verdict whose URL $FAN delivered messages carry, to $FAN jobs on the bus"
rcli flushall >/dev/null
python3 - "$FAN" >"$WORK/fanout.mbox" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"From sender@outside.example Mon Nov 23 10:00:00 2026\nMessage-ID: <fan{i}@outside.example>\n"
          f"From: sender@outside.example\nTo: user{i}@corp.example\nSubject: Your parcel is waiting\n\n"
          f"Track it at http://parcel-track.example/t?id=42 today.\n")
PY
# debug level: the enricher logs where the time went (planning, building, sending, Redis)
printf '[redis]\nurl = %s\n[log]\nfile = %s\nlevel = debug\n[bus]\nmax_waiting = %s\n[enricher]\napproval_threshold = 0\n[domains corp]\ndomains = corp.example\nprofile = o365\n' \
    "$REDIS_URL" "$WORK/enricher.log" "$((FAN * 3))" >"$WORK/enricher.conf"
start=$(now_ms)
"$BIN/clawback" -c "$WORK/enricher.conf" ingest "$WORK/fanout.mbox" >/dev/null
echo "ingested $FAN messages in $(($(now_ms) - start)) ms (clawback ingest of one mbox)"
# Redis as it stands once the index is filled and its append-only file rewritten (a fan-out
# that doubles the file then starts Redis's automatic rewrite in the middle: measured with it)
rcli bgrewriteaof >/dev/null
aof_rewritten() { rcli info persistence | grep -q "aof_rewrite_in_progress:0" && ! rcli info persistence | grep -q "aof_rewrite_scheduled:1"; }
wait_until 120 "the AOF rewrite" aof_rewritten
spawn dispatch "$ROOT/$BUILD/tests/bus_peer" -c "$WORK/enricher.conf" produce --edge verdicts --count 0 --stay
spawn enricher "$BIN/clawback-enricher" -c "$WORK/enricher.conf"
enricher_ready() { grep -q "verdicts: connected to dispatcher" "$WORK/enricher.log"; }
wait_until 30 "the enricher to connect" enricher_ready
rewrites() { grep -c "Starting automatic rewriting of AOF" "$WORK/redis.log"; }
rewrites_before=$(rewrites)
aof_size() { rcli info persistence | awk -F: '/^aof_current_size/ {print $2 + 0}'; }
aof_before=$(aof_size)
start=$(now_ms)
"$ROOT/$BUILD/tests/bus_peer" -c "$WORK/enricher.conf" verdict --value "http://parcel-track.example/t?id=42" >/dev/null
jobs_out() { [ "$(rcli xlen cb:bus:jobs:q)" -ge "$FAN" ]; }
wait_until 120 "the jobs on the bus" jobs_out
took=$(($(now_ms) - start))
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(pid_of enricher)/status")
echo "fan-out: $FAN jobs (and $(rcli xlen cb:bus:events:q) events) on the bus $took ms after the verdict was committed; enricher peak RSS $((rss / 1024)) MB"
grep -o "URL retrospection verdict.*" "$WORK/enricher.log" | cut -c1-200
grep -oE "enricher: (verdict [^ ]+ planned|batch [^ ]+: building).*" "$WORK/enricher.log" | sed 's/ [0-9a-f-]\{36\}//'
echo "automatic AOF rewrites started by Redis during the fan-out: $(($(rewrites) - rewrites_before)); AOF size $((aof_before / 1048576)) MB before it, $(($(aof_size) / 1048576)) MB after"
# the logger expands the batch's 200 initiation records into 200,000 lines (mail_logs, tracking)
mkdir -p "$WORK/logs"
printf '[logger]\ndirectory = %s\njson_file = %s\n' "$WORK/logs" "$WORK/logs/events.json" >>"$WORK/enricher.conf"
start=$(now_ms)
spawn logger "$BIN/clawback-logger" -c "$WORK/enricher.conf"
events_drained() { [ "$(rcli xlen cb:bus:events:q)" -eq 0 ]; }
wait_until 300 "the logger to write the fan-out's lines" events_drained
echo "logger: $(grep -c "was initiated" "$WORK/logs/mail_logs") 'was initiated' lines and $(rcli eval "return #redis.call('KEYS', 'cb:trk:*')" 0) tracked messages $(($(now_ms) - start)) ms after it started (start-up included)"
kill -TERM "$(pid_of enricher)" "$(pid_of dispatch)" "$(pid_of logger)"
wait "$(pid_of enricher)" "$(pid_of dispatch)" "$(pid_of logger)" 2>/dev/null

echo
# the remediator against the local Dovecot, next to doveadm expunge (its own Redis and mail stack)
BENCH_DOVECOT_LOGIN=security BUILD=$BUILD bash "$ROOT/bench/remediate.sh"
echo
BENCH_DOVECOT_LOGIN=performance BUILD=$BUILD bash "$ROOT/bench/remediate.sh"

echo
# what clawback-milter costs Postfix (its own Redis and mail stack), on a unix socket (a milter
# on the gateway host, the deployment docs/milter.md advises) and on loopback TCP
BENCH_MILTER_SOCKET=unix BUILD=$BUILD bash "$ROOT/bench/milter.sh"
echo
BENCH_MILTER_SOCKET=inet BUILD=$BUILD bash "$ROOT/bench/milter.sh"
