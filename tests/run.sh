#!/bin/sh
# Run each test binary under a timeout and add up cmocka's counts.
# usage: run.sh VARIANT BINARY...   (TIMEOUT seconds per binary, default 300;
#        RUNNER, if set, is a command each binary runs under, e.g. valgrind)
# A hang, a crash or a sanitizer report is a failure of that binary.
variant=$1; shift
timeout=${TIMEOUT:-300}
passed=0 failed=0 broken=""
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
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] || [ -z "$p" ]; then
        [ "$rc" -eq 124 ] && echo "$variant: $name timed out after ${timeout}s"
        cat "$log"
        [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
        broken="$broken $name"
    else
        echo "$variant: $name: ${p} passed"
    fi
done
echo "$variant: $passed passed, $failed failed"
[ -z "$broken" ] || { echo "$variant: failing:$broken"; exit 1; }
