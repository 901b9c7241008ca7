#!/bin/sh
# SPDX-License-Identifier: MIT
# Run each test binary under a timeout and add up cmocka's counts.
# usage: run.sh VARIANT BINARY...
#   TIMEOUT  seconds per binary (default 300)
#   RUNNER   a command each binary runs under (valgrind ...)
#   SB_TALLY a file to append "VARIANT PASSED FAILED SKIPPED" to, for the
#            closing line of `make test` (tests/tally.sh)
#   SB_NO_SKIPS=1  a skipped test fails the run (CI: nothing may skip)
# A hang, a crash or a sanitizer report is a failure of that binary.
variant=$1; shift
timeout=${TIMEOUT:-300}
passed=0 failed=0 skipped=0 broken="" skips=""
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
# Sanitizer reports must fail the run, not scroll by.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
for t in "$@"; do
    name=$(basename "$t")
    # shellcheck disable=SC2086 # RUNNER is a command line
    timeout -k 10 "$timeout" $RUNNER "$t" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    skipped=$((skipped + ${s:-0}))
    names=$(sed -n 's/^\[  SKIPPED \] \([a-z_0-9]*\)$/\1/p' "$log" | sort -u | tr '\n' ' ')
    [ -n "$names" ] && skips="$skips $name: $names;"
    if [ "$rc" -ne 0 ] || [ -z "$p" ]; then
        [ "$rc" -eq 124 ] && echo "$variant: $name timed out after ${timeout}s"
        cat "$log"
        [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
        broken="$broken $name"
    else
        echo "$variant: $name: ${p} passed${s:+, $s skipped ($names)}"
    fi
done
echo "$variant: $passed passed, $failed failed, $skipped skipped"
[ -n "$skips" ] && echo "$variant: skipped:$skips"
[ -n "${SB_TALLY:-}" ] && echo "$variant $passed $failed $skipped" >>"$SB_TALLY"
[ -z "$broken" ] || { echo "$variant: failing:$broken"; exit 1; }
if [ "$skipped" -gt 0 ] && [ "${SB_NO_SKIPS:-0}" = 1 ]; then
    echo "$variant: $skipped skipped, and SB_NO_SKIPS=1 allows none"
    exit 1
fi
exit 0
