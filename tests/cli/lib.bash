# lib.bash - shared by the CLI test scripts (sourced, not run):
#   check NAME COMMAND...   counts COMMAND's success or failure
#   finish NAME             prints the closing "N passed, N failed" line; fails if any check did
# A script may define on_fail to show context after a failed check.
passed=0 failed=0
on_fail() { :; }
check() {
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name"
        on_fail
    fi
}
finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
