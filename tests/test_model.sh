#!/bin/sh
# SPDX-License-Identifier: MIT
# test_model.sh - check model/wait.pml (the waiter hand-off of src/wait.c)
# with spin: every configuration must verify with no error.
# usage: tests/test_model.sh [BUILD_DIR]     (needs spin and a C compiler)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$root/build}
CC=${CC:-cc}
passed=0 failed=0
mkdir -p "$base" || exit 1
base=$(cd "$base" && pwd) # pan runs in its own directory: no relative paths
# A directory of its own: two runs at once must not share pan's files.
out=$(mktemp -d "$base/model.XXXXXX") || exit 1
# shellcheck source=tests/reap.sh
. "$root/tests/reap.sh"
sb_on_exit 'rm -rf "$out"'
# -w26: a hash table of 2^26 slots for the 38 million states of the larger
# configuration (the default 2^24 makes its chains long: 80 s, not 60).
# Two readers over two bytes covers every interleaving of two waiters with
# each other; three readers over one byte, three waiters on one publish.
for cfg in "NR=2 F=2" "NR=3 F=1"; do
    flags=$(for d in $cfg; do printf ' -D%s' "$d"; done)
    log=$out/pan.log
    # shellcheck disable=SC2086 # flag list
    # In the background, waited for: a signal ends the test at once.
    (cd "$out" && timeout -k 10 300 spin $flags -a "$root/model/wait.pml" >"$log" 2>&1 &&
        timeout -k 10 300 $CC -O2 -DSAFETY -DCOLLAPSE -o pan pan.c >>"$log" 2>&1 &&
        timeout -k 10 600 ./pan -m1000000 -w26 >>"$log" 2>&1) &
    if wait $! &&
        grep -q 'errors: 0' "$log" && ! grep -q 'search not completed\|max search depth too small' "$log"; then
        passed=$((passed + 1))
        states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$log")
        echo "model: ok   - $cfg: no assertion violated, no invalid end state ($states states)"
    else
        failed=$((failed + 1))
        echo "model: FAIL - $cfg"
        sed 's/^/    /' "$log" | tail -30
    fi
done
echo "model: $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "model $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ]
