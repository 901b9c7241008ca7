#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the test binaries under a timeout, JOBS at a time, and add up
# cmocka's counts.
# usage: run.sh VARIANT BINARY...
#   TIMEOUT  seconds per binary (default 300)
#   JOBS     binaries run at once (default: the CPUs this process may use)
#   RUNNER   a command each binary runs under (valgrind ...)
#   SB_TALLY a file to append "VARIANT PASSED FAILED SKIPPED" to, for the
#            closing line of `make test` (tests/tally.sh)
#   SB_TIMES a file to append "SECONDS VARIANT BINARY" to, one line each
#   SB_NO_SKIPS=1  a skipped test fails the run (CI: nothing may skip)
# A hang, a crash or a sanitizer report is a failure of that binary.  The
# binaries share no files (each fixture makes its own scratch directory),
# so they may run at once; the results are reported in the order given.
variant=$1; shift
timeout=${TIMEOUT:-300}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
passed=0 failed=0 skipped=0 broken="" skips=""
out=$(mktemp -d) || exit 1
# shellcheck source=tests/reap.sh
. "$(dirname "$0")/reap.sh"
sb_on_exit 'rm -rf "$out"'
# Sanitizer reports must fail the run, not scroll by.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
export RUNNER timeout out
# One binary: its output in $out/NAME.log, "RC SECONDS" in $out/NAME.rc.
# shellcheck disable=SC2016 # expanded by the inner shell
one='t=$1; name=$(basename "$t"); s=$(date +%s.%N)
timeout -k 10 "$timeout" $RUNNER "$t" >"$out/$name.log" 2>&1
rc=$?; e=$(date +%s.%N)
echo "$rc $(echo "$s $e" | awk "{ printf \"%.1f\", \$2 - \$1 }")" >"$out/$name.rc"'
printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c "$one" sh {} &
wait $! # a signal ends the run at once, and the binaries with it
for t in "$@"; do
    name=$(basename "$t")
    log=$out/$name.log
    read -r rc secs <"$out/$name.rc" || { rc=127 secs=0; }
    [ -n "${SB_TIMES:-}" ] && echo "$secs $variant $name" >>"$SB_TIMES"
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
        echo "$variant: $name: ${p} passed${s:+, $s skipped ($names)} (${secs} s)"
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
