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
