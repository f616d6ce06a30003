#!/bin/sh
# run.sh - run the unit tests (build/tests/test_*), then the integration tests
# (tests/integration/test_*.sh). With an argument NAME, run only test_NAME (unit or
# integration). BUILD selects the build directory (build, build-asan).
set -u
BUILD=${BUILD:-build}
export BUILD
only=${1:-}
failed=0
ran=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    [ -n "$only" ] && [ "$name" != "test_$only" ] && continue
    ran=$((ran + 1))
    if "$t" >"$BUILD/tests/$name.log" 2>&1; then
        echo "PASS unit/$name"
    else
        echo "FAIL unit/$name (log: $BUILD/tests/$name.log)"
        tail -n 30 "$BUILD/tests/$name.log"
        failed=$((failed + 1))
    fi
done
for t in tests/integration/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    [ -n "$only" ] && [ "$name" != "test_$only" ] && continue
    ran=$((ran + 1))
    log="$BUILD/tests/$name.log"
    if bash "$t" >"$log" 2>&1; then
        echo "PASS integration/$name"
    else
        echo "FAIL integration/$name (log: $log)"
        tail -n 60 "$log"
        grep -E '^(== |ok: |FAIL: )' "$log" | tail -n 12 # the steps that passed, then the failure
        failed=$((failed + 1))
    fi
done
echo "$ran test programs, $failed failed"
[ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]
