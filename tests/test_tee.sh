#!/bin/sh
# SPDX-License-Identifier: MIT
# test_tee.sh - examples/tee copies standard input to several outputs in
# bounded space: the outputs equal the input, a 1 GiB stream runs in a few
# MiB of RSS with a 4 MiB bound, and a failing output (a full device, a
# pipe whose reader has gone) does not hold the others back.
# Every command runs under timeout -k, in the background where it is long,
# so that a signal ends the test at once, and whatever it started with it
# (tests/reap.sh).
# usage: tests/test_tee.sh PATH/TO/tee
set -u
bin=$1
# shellcheck source=tests/reap.sh
. "$(dirname "$0")/reap.sh"
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "tee: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "tee: FAIL - $1"; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbtee.XXXXXX") || exit 1
sb_on_exit 'rm -rf "$scratch"'
export TMPDIR=$scratch

head -c 20000000 /dev/urandom >"$scratch/in"
if sb_run timeout -k 5 120 "$bin" -k 1000000 "$scratch/o1" "$scratch/o2" "$scratch/o3" \
    <"$scratch/in" && cmp -s "$scratch/in" "$scratch/o1" &&
    cmp -s "$scratch/in" "$scratch/o2" && cmp -s "$scratch/in" "$scratch/o3"; then
    ok "three outputs of a 20 MB input equal it (1 MB retained at most)"
else
    fail "three outputs of a 20 MB input equal it (1 MB retained at most)"
fi

# 1 GiB through a 4 MiB bound: the peak RSS stays far below the stream.
{ yes 'streambuffer tee test line' | head -c 1073741824 |
    timeout -k 5 300 "$bin" -v -k 4194304 /dev/null - 2>"$scratch/report" >/dev/null; } &
wait $!
report=$(cat "$scratch/report")
rss=$(printf '%s\n' "$report" | sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p')
released=$(printf '%s\n' "$report" | sed -n 's/.* \([0-9]*\) released.*/\1/p')
echo "    $report"
if [ -n "$rss" ] && [ "$rss" -lt 65536 ] && [ -n "$released" ] &&
    [ "$released" -ge $((1073741824 - 8388608)) ]; then
    ok "1 GiB with a 4 MiB bound: peak RSS ${rss} KiB, ${released} bytes released"
else
    fail "1 GiB with a 4 MiB bound: peak RSS < 64 MiB and all but the bound released"
fi

# An output that fails (a full device) must not stop the others.
if [ -w /dev/full ]; then
    if ! sb_run timeout -k 5 120 "$bin" -k 100000 /dev/full "$scratch/o4" <"$scratch/in" \
        2>"$scratch/err" && grep -q 'No space left' "$scratch/err" &&
        cmp -s "$scratch/in" "$scratch/o4"; then
        ok "a failing output (/dev/full) fails the run but the others get everything"
    else
        fail "a failing output (/dev/full) fails the run but the others get everything"
    fi
fi

# An output whose reader goes away early (a pipe to head -c): EPIPE, not
# death by SIGPIPE; it is reported, the file output still gets every byte,
# and the exit status is 1 (GNU tee --output-error=warn).  20 MB cannot
# fit in the pipe, so tee must write to it after head has gone.
{
    timeout -k 5 120 "$bin" -k 1000000 - "$scratch/o5" <"$scratch/in" 2>"$scratch/err5"
    echo $? >"$scratch/rc5"
} | timeout -k 5 120 head -c 1000 >"$scratch/head5" &
wait $!
rc=$(cat "$scratch/rc5")
if [ "$rc" -eq 1 ] && grep -q '^tee: -: Broken pipe$' "$scratch/err5" &&
    [ "$(wc -c <"$scratch/head5")" -eq 1000 ] && cmp -s "$scratch/in" "$scratch/o5"; then
    ok "a pipe whose reader exits early: EPIPE reported, status 1, the file gets every byte"
else
    fail "a pipe whose reader exits early: EPIPE reported, status 1 (got $rc), the file gets every byte"
    sed 's/^/    /' "$scratch/err5"
fi

echo "tee: $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "tee $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ]
