#!/bin/sh
# SPDX-License-Identifier: MIT
# http.sh - make bench-http: the HTTP source (sb_open_url) against a real
# nginx and against one libcurl client of the same server, in one run.
#
# usage: bench/http.sh [SBBENCH_HTTP]        (make bench-http)
#   RUNS=1             runs of the whole set (a median over them at the end)
#   REPS=5             measurements per side and row in a run
#   BENCH_HTTP_SIZE=1G the object's size (K, M, G suffixes, binary)
#   PYTHON=python3     the interpreter of bench/http_python.py
#
# In a scratch directory under $TMPDIR (or /tmp), after checking with df
# that it has room for the object and one spill file of it: makes the
# object (random bytes), starts Debian's nginx on a free port of 127.0.0.1
# (master_process off; its config, pid, logs and temp paths in the scratch
# directory) with `limit_rate 100m` on the location - a CDN edge's rate,
# which nginx applies to each connection - and an access log of
# "$status $bytes_sent $body_bytes_sent $http_range $request", which
# sbbench_http empties before each measurement and reads after it.  Then
# each run: sbbench_http --case http (F1 far read, F2 random reads, F3
# drain, each against its limit), then bench/http_python.py (the same
# through the Python module's StreamBuffer.from_url, against the C times
# of that run).  Each run's table and CSV are kept in build/bench
# (http-run-K.txt/.csv, http-python-K.txt/.csv).  Every process runs
# under timeout -k and is ended on any way out (tests/reap.sh); every wait
# is a bounded loop.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/reap.sh
. "$root/tests/reap.sh"

bin=${1:-$root/build/bench/sbbench_http}
runs=${RUNS:-1}
reps=${REPS:-5}
python=${PYTHON:-python3}
out=$(cd "$(dirname "$bin")" && pwd)

die() {
    echo "bench-http: $*" >&2
    exit 1
}

[ -x "$bin" ] || die "$bin is not built (make $bin)"
case $runs in '' | *[!0-9]* | 0) die "RUNS must be a positive number: $runs" ;; esac
case $reps in '' | *[!0-9]* | 0) die "REPS must be a positive number: $reps" ;; esac

# "1G", "512M", "4096K", "100000000": bytes.
size_of() {
    n=${1%[KkMmGg]}
    case $n in '' | *[!0-9]*) return 1 ;; esac
    case $1 in
    *[Kk]) echo $((n * 1024)) ;;
    *[Mm]) echo $((n * 1024 * 1024)) ;;
    *[Gg]) echo $((n * 1024 * 1024 * 1024)) ;;
    *) echo "$n" ;;
    esac
}
size=$(size_of "${BENCH_HTTP_SIZE:-1G}") ||
    die "BENCH_HTTP_SIZE is not a size: ${BENCH_HTTP_SIZE:-}"
[ "$size" -ge $((4 * 1024 * 1024)) ] || die "BENCH_HTTP_SIZE must be at least 4M"
mib=$(((size + 1048575) / 1048576))

nginx=$(command -v nginx 2>/dev/null || true)
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; }
[ -n "$nginx" ] || die "nginx is missing (apt-get install nginx-light)"
command -v curl >/dev/null 2>&1 || die "curl is missing (apt-get install curl)"
command -v "$python" >/dev/null 2>&1 || die "$python is missing (PYTHON=...)"

# Room: the object, and the spill file of one drained buffer (4 MiB of it
# in memory), at once; and 256 MiB to spare.
tmp=${TMPDIR:-/tmp}
need=$((mib * 2 + 256))
free=$(df -Pk "$tmp" 2>/dev/null | awk 'NR == 2 { print int($4 / 1024) }')
[ -n "$free" ] || die "df cannot tell the free space of $tmp"
if [ "$free" -lt "$need" ]; then
    die "$tmp has $free MiB free, the bench needs $need MiB (the object" \
        "twice: served and spilled); set TMPDIR or a smaller BENCH_HTTP_SIZE"
fi

scratch=$(mktemp -d "$tmp/sbbenchhttp.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2016 # expanded when the trap runs
sb_on_exit 'rm -rf "$scratch"'
www=$scratch/www
spill=$scratch/spill
d=$scratch/nginx
mkdir -p "$www" "$spill" "$d/tmp" || exit 1

# Time budgets: at 100 MiB/s a connection the limit's drain takes
# size / 100 MiB/s, ours a quarter of it, Python's too; F1 and F2 seconds.
drain=$((mib / 100 + 1))
run_budget=$((120 + reps * (drain * 4 + 10)))
total_budget=$((runs * run_budget * 2 + 300))

# ---- the object ----------------------------------------------------------------------

echo "bench-http: $size random bytes in $scratch" >&2
sb_run timeout -k 5 600 head -c "$size" /dev/urandom >"$www/obj.bin" ||
    die "cannot write the object"
[ "$(wc -c <"$www/obj.bin")" -eq "$size" ] || die "the object is short"
# Written back before the runs: its writeback (a gigabyte, for seconds)
# shared the disk and the CPUs with the first run's spill files, and that
# run's F2 came out twice the next one's.
sb_run timeout -k 5 600 sync "$www/obj.bin" || die "cannot sync the object"

# ---- nginx ---------------------------------------------------------------------------

# shellcheck source=tests/nginx.sh
. "$root/tests/nginx.sh"
temps=$(nginx_temps "$d/tmp")
# The proxies of the environment are not for 127.0.0.1.
no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY
unset http_proxy HTTP_PROXY all_proxy ALL_PROXY 2>/dev/null || :

log=$d/access.log
port=
tries=0
while [ $tries -lt 5 ] && [ -z "$port" ]; do
    tries=$((tries + 1))
    p=$(free_port) || break
    cat >"$d/nginx.conf" <<EOF
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    log_format bench '\$status \$bytes_sent \$body_bytes_sent \$http_range "\$request"';
    access_log $log bench;
    default_type application/octet-stream;
    # sendfile, as an edge serves files; no tcp_nopush: its cork stalls
    # each keep-alive response on loopback for the 40 ms of a delayed ACK.
    sendfile on;
    keepalive_requests 10000;
    $temps
    server {
        listen 127.0.0.1:$p;
        root $www;
        location / { limit_rate 100m; }
    }
}
EOF
    timeout -k 5 "$total_budget" "$nginx" -p "$d" -c "$d/nginx.conf" \
        -e "$d/error.log" -g 'daemon off;' >"$d/out.log" 2>&1 &
    nginx_pid=$!
    i=0
    while [ $i -lt 100 ]; do
        if curl -sf --max-time 2 -o /dev/null -r 0-0 "http://127.0.0.1:$p/obj.bin" \
            2>/dev/null; then
            port=$p
            break
        fi
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        kill "$nginx_pid" 2>/dev/null || :
        wait "$nginx_pid" 2>/dev/null || :
    fi
done
if [ -z "$port" ]; then
    cat "$d/out.log" "$d/error.log" 2>/dev/null | sed 's/^/    /' >&2
    die "nginx did not start"
fi
url=http://127.0.0.1:$port/obj.bin
echo "bench-http: $(timeout -k 1 10 "$nginx" -v 2>&1), $url, limit_rate 100m a connection;" \
    "$runs run(s) of $reps reps" >&2

# ---- the runs ------------------------------------------------------------------------

# run_logged TXT COMMAND...: COMMAND under timeout, its output shown and
# kept in TXT; its status.
run_logged() {
    txt=$1
    shift
    rm -f "$scratch/rc"
    # shellcheck disable=SC2016 # expanded by the inner shell
    sb_run sh -c 'b=$1; r=$2; shift 2
        { timeout -k 10 "$b" "$@" 2>&1; echo $? >"$r"; } | tee "$0"' \
        "$txt" "$run_budget" "$scratch/rc" "$@"
    [ -s "$scratch/rc" ] || return 1
    return "$(cat "$scratch/rc")"
}

rc=0
csvs=
for k in $(seq 1 "$runs"); do
    echo "bench-http: run $k of $runs" >&2
    c_csv=$out/http-run-$k.csv
    py_csv=$out/http-python-$k.csv
    rm -f "$c_csv" "$py_csv"
    if ! run_logged "$out/http-run-$k.txt" "$bin" --case http --url "$url" \
        --http-log "$log" --http-file "$www/obj.bin" --tmp-dir "$spill" \
        --reps "$reps" --csv "$c_csv"; then
        echo "bench-http: sbbench_http failed (run $k)" >&2
        rc=1
        continue
    fi
    csvs="$csvs $c_csv"
    if ! run_logged "$out/http-python-$k.txt" env PYTHONPATH="$root/python" \
        "$python" "$root/bench/http_python.py" --url "$url" --reps "$reps" \
        --c-csv "$c_csv" --csv "$py_csv" --http-log "$log" \
        --http-file "$www/obj.bin" --tmp-dir "$spill"; then
        echo "bench-http: http_python.py failed (run $k)" >&2
        rc=1
    fi
    [ -s "$py_csv" ] && csvs="$csvs $py_csv"
done

# ---- over the runs -------------------------------------------------------------------

# Each row's median ratio over the runs, its range, the target and whether
# the median meets it: the figure to publish.
if [ -n "$csvs" ]; then
    echo
    # shellcheck disable=SC2086 # a list of files
    awk -F, -v runs="$runs" '
        FNR == 1 { next }
        {
            key = $1 SUBSEP $2
            if (!(key in n)) { order[++rows] = key; target[key] = $10 }
            v[key, ++n[key]] = $7
        }
        END {
            printf "%-10s %-32s %9s %13s %8s %5s   (%d runs)\n", "case", "variant",
                   "median", "range", "target", "", runs
            for (r = 1; r <= rows; r++) {
                key = order[r]
                m = n[key]
                for (i = 1; i <= m; i++) s[i] = v[key, i]
                for (i = 2; i <= m; i++) {
                    x = s[i]
                    for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]
                    s[j + 1] = x
                }
                med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
                t = target[key]; mark = ""
                if (t ~ /^<=/) { mark = med <= substr(t, 3) + 0 ? "ok" : "over" }
                else if (t ~ /^>=/) { mark = med >= substr(t, 3) + 0 ? "ok" : "under" }
                split(key, f, SUBSEP)
                printf "%-10s %-32s %9.3f %6.3f-%-6.3f %8s %5s\n", f[1], f[2], med,
                       s[1], s[m], t == "" ? "-" : t, mark
            }
        }' $csvs
fi
exit $rc
