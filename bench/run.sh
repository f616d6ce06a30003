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
