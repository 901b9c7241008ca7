#!/bin/sh
# SPDX-License-Identifier: MIT
# ready.sh - check model/ready.pml (the ready list and the poll fd of
# src/ready.c) with spin: every configuration must verify with no error.
# Run by `make model` after tests/test_model.sh (model/wait.pml).
# usage: model/ready.sh [BUILD_DIR]     (needs spin and a C compiler)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$root/build}
CC=${CC:-cc}
passed=0 failed=0
mkdir -p "$base" || exit 1
base=$(cd "$base" && pwd) # pan runs in its own directory: no relative paths
out=$(mktemp -d "$base/model.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT
# About 20 s and 5 million states each on one core.  Two readers that arm
# twice over two bytes: every re-arm of a listed reader against a publish,
# a take and a close; three readers that arm once: three on one publish.
for cfg in "NR=2 NA=2 F=2" "NR=3 NA=1 F=1"; do
    flags=$(for d in $cfg; do printf ' -D%s' "$d"; done)
    log=$out/pan.log
    # shellcheck disable=SC2086 # flag list
    if (cd "$out" && spin $flags -a "$root/model/ready.pml" >"$log" 2>&1 &&
        $CC -w -O2 -DSAFETY -DCOLLAPSE -o pan pan.c >>"$log" 2>&1 &&
        ./pan -m1000000 -w26 >>"$log" 2>&1) &&
        grep -q 'errors: 0' "$log" && ! grep -q 'search not completed\|max search depth too small' "$log"; then
        passed=$((passed + 1))
        states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$log")
        echo "model: ok   - ready.pml $cfg: no assertion violated, no invalid end state ($states states)"
    else
        failed=$((failed + 1))
        echo "model: FAIL - ready.pml $cfg"
        sed 's/^/    /' "$log" | tail -30
    fi
done
echo "model (ready.pml): $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "model-ready $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ]
