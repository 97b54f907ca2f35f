#!/usr/bin/env bash
# run.sh SECONDS - runs every fuzz target for SECONDS on its committed seed corpus
# (new inputs go to a scratch directory), and fails if any target finds a crash.
set -u
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-20}
BUILD=${BUILD:-build-fuzz}
status=0 passed=0 failed=0
for bin in "$BUILD"/fuzz_*; do
    name=$(basename "$bin"); target=${name#fuzz_}
    work=$(mktemp -d)
    out=$("$bin" -max_total_time="$SECONDS_EACH" -max_len=400000 -rss_limit_mb=4096 -timeout=20 \
        -artifact_prefix="$work/" "$work" "tests/fuzz/corpus/$target" 2>&1)
    rc=$?
    execs=$(echo "$out" | grep -o 'stat::number_of_executed_units: [0-9]*' | grep -o '[0-9]*$')
    [ -n "$execs" ] || execs=$(echo "$out" | grep -Eo '^#[0-9]+' | tail -1 | tr -d '#')
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); echo "fuzz $target: ${SECONDS_EACH}s, ${execs:-?} executions, no crash"
    else
        failed=$((failed + 1)); status=1
        echo "FAIL: fuzz $target"; echo "$out" | grep -E "ERROR|SUMMARY|Test unit written" | head -5
    fi
    rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
exit $status
