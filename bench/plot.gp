# SPDX-License-Identifier: MIT
# plot.gp - throughput against threads, from sbbench's CSV.
#
#   build/bench/sbbench --csv bench.csv
#   gnuplot -e "csv='bench.csv'" bench/plot.gp                 # bench.png
#   gnuplot -e "csv='bench.csv'; out='bench.svg'" bench/plot.gp
#
# One panel per thread-scaling row group (rand-mem 64 B and 4 KiB, large
# 1 MiB, rand-spill 4 KiB): ours, the baseline measured in the same run,
# and the seed's design where it was measured (gnuplot warns "no valid
# points" for its series when the run left the seed out).

if (!exists("csv")) csv = 'bench.csv'
if (!exists("out")) out = 'bench.png'
if (strlen(out) > 4 && out[strlen(out)-3:] eq '.svg') {
    set terminal svg size 1200,900 dynamic
} else {
    set terminal pngcairo size 1200,900
}
set output out

set datafile separator comma
set datafile missing NaN
set key top left
set grid
set xlabel 'threads'
set yrange [0:*]
set xtics 1

array C[4] = ['rand-mem', 'rand-mem', 'large', 'rand-spill']
array V[4] = ['64 B', '4 KiB', '1 MiB', '4 KiB']
array U[4] = ['Mop/s', 'GiB/s', 'GiB/s', 'GiB/s']
array S[4] = [1, 1, 0, 1]   # has a seed series (large has none)

# Column col of the rows of case c, variant v; NaN (missing) elsewhere.
pick(c, v, col) = (strcol(1) eq c && strcol(2) eq v) ? column(col) : NaN

set multiplot layout 2,2 title 'sbbench: throughput against threads'
do for [i = 1:4] {
    set title sprintf('%s %s', C[i], V[i])
    set ylabel U[i]
    if (S[i]) {
        plot csv using 3:(pick(C[i], V[i], 4)) with linespoints lw 2 pt 7 title 'ours', \
             csv using 3:(pick(C[i], V[i], 5)) with linespoints lw 2 pt 5 dt 2 title 'baseline', \
             csv using 3:(pick('seed', C[i].' '.V[i], 4)) with linespoints lw 2 pt 9 dt 3 title 'seed design'
    } else {
        plot csv using 3:(pick(C[i], V[i], 4)) with linespoints lw 2 pt 7 title 'ours', \
             csv using 3:(pick(C[i], V[i], 5)) with linespoints lw 2 pt 5 dt 2 title 'baseline'
    }
}
unset multiplot
