#!/bin/sh
# SPDX-License-Identifier: MIT
# all.sh - `make test`: every part, the model check beside the rest.
#
# The model check (one core for about a minute and a half) runs in the
# background from the start; the parts that follow build with -j and run
# their binaries several at once (tests/run.sh), so that the machine's
# cores are used throughout.  Each part appends its counts to $SB_TALLY
# and its time to $SB_TIMES; the last lines are the sum and the five
# slowest tests.
# usage: tests/all.sh    (from the Makefile: MAKE, SB_TALLY, SB_TIMES set)
set -u
make=${MAKE:-make}
jobs=$(nproc 2>/dev/null || echo 2)
times=${SB_TIMES:?}
rc=0
broken="" # parts whose make failed, whatever their counts said
mlog=$(mktemp) || exit 1
# On any way out (Ctrl-C, a kill), the model check in the background and
# the part in progress end with this script (tests/reap.sh).
# shellcheck source=tests/reap.sh
. ./tests/reap.sh
sb_on_exit 'rm -f "$mlog"'

# part NAME: run `make NAME`, and note how long it took.
part() {
    s=$(date +%s.%N)
    # timeout --foreground: in this process group, as Ctrl-C expects, and
    # with SIGINT at its default (sh ignores it in what it starts with &).
    sb_run timeout --foreground -k 30 3600 $make --no-print-directory -j"$jobs" "$1" ||
        { rc=1; broken="$broken $1"; }
    echo "$s $(date +%s.%N) $1" | awk '{ printf "%.1f part %s\n", $2 - $1, $3 }' >>"$times"
}

s0=$(date +%s.%N)
timeout --foreground -k 30 3600 $make --no-print-directory model >"$mlog" 2>&1 &
model=$!
for p in check tsan asan quickstart install-test examples-test serve-asan http-test python-test; do
    part "$p"
done
wait "$model" || { rc=1; broken="$broken model"; }
cat "$mlog"
echo "$s0 $(date +%s.%N)" | awk '{ printf "%.1f part model (in the background)\n", $2 - $1 }' >>"$times"

./tests/tally.sh "$SB_TALLY" || rc=1
echo "slowest:"
grep -v ' part ' "$times" | sort -rn | head -n 5 |
    awk '{ printf "    %6.1f s  %s %s\n", $1, $2, $3 }'
echo "$s0 $(date +%s.%N)" | awk '{ printf "make test: %.0f s in all\n", $2 - $1 }'
[ -z "$broken" ] || echo "make test: FAILED:$broken"
exit $rc
