#!/bin/sh
# SPDX-License-Identifier: MIT
# runs.sh - sbbench several times, and each row's ratio over the runs.
#
# usage: bench/runs.sh RUNS [SBBENCH [sbbench options...]]
#        (make bench-runs RUNS=5 BENCH_ARGS=...)
#
# One run on a shared machine is one sample of its neighbours' load.  This
# runs sbbench RUNS times, one after the other, keeps each run's table in
# build/bench/run-K.txt and CSV in run-K.csv, and prints per row the median
# of the runs' ratios and their range (lowest-highest): the figure to
# publish, with its spread.
set -eu
runs=${1:?usage: runs.sh RUNS [SBBENCH [options]]}
shift
bin=${1:-build/bench/sbbench}
[ $# -gt 0 ] && shift
out=$(dirname "$bin")
for k in $(seq 1 "$runs"); do
    echo "runs: run $k of $runs" >&2
    "$bin" --csv "$out/run-$k.csv" "$@" >"$out/run-$k.txt"
done
# case,variant,threads,ours,base,unit,ratio,lo,hi,target
awk -F, -v runs="$runs" '
    FNR == 1 { next }
    {
        key = $1 SUBSEP $2 SUBSEP $3
        if (!(key in n)) { order[++rows] = key; target[key] = $10 }
        v[key, ++n[key]] = $7
    }
    END {
        printf "%-10s %-32s %3s %9s %13s %8s   (%d runs)\n", "case", "variant",
               "thr", "median", "range", "target", runs
        for (r = 1; r <= rows; r++) {
            key = order[r]
            m = n[key]
            for (i = 1; i <= m; i++) s[i] = v[key, i]
            for (i = 2; i <= m; i++) {       # insertion sort, m is small
                x = s[i]
                for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]
                s[j + 1] = x
            }
            med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
            split(key, f, SUBSEP)
            printf "%-10s %-32s %3s %9.3f %6.3f-%-6.3f %8s\n", f[1], f[2], f[3],
                   med, s[1], s[m], target[key] == "" ? "-" : target[key]
        }
    }' $(seq -f "$out/run-%g.csv" 1 "$runs")
