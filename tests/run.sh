#!/usr/bin/env bash
# Runs every test binary and script; prints one closing "N passed, N failed" line.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
passed=0 failed=0 failed_names=()
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    echo "$out" | tail -n 40
    line=$(echo "$out" | grep -Eo '[0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ]; then
        failed_names+=("$(basename "$t")")
        [ "${f:-0}" -gt 0 ] || failed=$((failed + 1))   # crashed before reporting
    fi
done
for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    out=$(VLMCHAT="$BUILD/vlmchat" bash "$s" 2>&1); rc=$?
    echo "$out" | tail -n 40
    line=$(echo "$out" | grep -Eo '[0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ]; then
        failed_names+=("$(basename "$s")")
        [ "${f:-0}" -gt 0 ] || failed=$((failed + 1))
    fi
done
[ ${#failed_names[@]} -eq 0 ] || echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
