#!/bin/sh
# SPDX-License-Identifier: MIT
# Run a fuzz target for SECONDS and print a one-line summary, not
# libFuzzer's progress lines: executions, their rate, the coverage it
# reached (libFuzzer's cov: edges and ft: features) and the corpus; any
# crash or model mismatch in full.
# usage: run.sh BINARY SECONDS CORPUS-DIR SEED-DIR...
set -u
bin=$1 seconds=$2
shift 2
name=$(basename "$bin")
log=$(mktemp) || exit 1
# shellcheck source=tests/reap.sh
. "$(dirname "$0")/../reap.sh"
sb_on_exit 'rm -f "$log"'
# libFuzzer stops itself after SECONDS, between inputs.  One input that
# hangs (a deadlock in the library under its threads) is caught by
# libFuzzer's own -timeout, which prints the input (its bytes and base64)
# and saves it beside the corpus, so that a hang seen only on a CI machine
# can be replayed here; the outer timeout is for a target that does not
# even manage that, and kills it if it does not go.
artifacts=$(dirname "$1")/
timeout -k 10 $((seconds + 60)) "$bin" -max_total_time="$seconds" \
    -timeout=25 -artifact_prefix="$artifacts" \
    -print_final_stats=1 "$@" >"$log" 2>&1 &
wait $!
rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$log"
    [ "$rc" -eq 124 ] && echo "fuzz: $name: still running $((seconds + 60)) s after it began"
    echo "fuzz: $name: FAILED (exit $rc)"
    exit 1
fi
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
echo "fuzz: $name: ${seconds}s, $execs executions ($rate/s), cov $cov edges, ft $ft features, corpus $corp, no crash or failed check"
