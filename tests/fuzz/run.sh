#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the fuzz target for SECONDS and print a summary, not libFuzzer's
# progress lines: executions, coverage, corpus, and any crash in full.
# usage: run.sh BINARY SECONDS CORPUS-DIR SEED-DIR...
set -u
bin=$1 seconds=$2
shift 2
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
"$bin" -max_total_time="$seconds" -print_final_stats=1 "$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$log"
    echo "fuzz: FAILED (exit $rc)"
    exit 1
fi
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
echo "fuzz: ${seconds}s, $execs executions ($rate/s), no crash"
echo "fuzz: last status: $last"
