#!/bin/sh
# SPDX-License-Identifier: MIT
# test_http.sh - libstreambuffer_http against real servers on 127.0.0.1.
#
# Starts nginx (its own config, pid, logs and temp paths in a scratch
# directory, master_process off, on a free port) serving generated files
# with Range and ETag, and a location that limits the rate (also over
# HTTP/2 without TLS on a second port, logging connections); and for each
# test binary a fresh tests/http/faultserver.py (Python's http.server,
# misbehaving on request).  Then runs each binary through tests/run.sh
# with SB_HTTP_NGINX, SB_HTTP_FAULT, SB_HTTP_H2 (HTTPS), SB_HTTP_H2C (base
# URLs), SB_HTTP_H2CERT (the certificate to trust), SB_HTTP_H2LOG (the
# HTTP/2 server's log) and SB_HTTP_DIR (the files)
# in its environment.  Every process runs under timeout -k and is killed
# on exit; every wait is a bounded loop.
#
# usage: tests/test_http.sh VARIANT=BINARY...
#   VARIANT: plain, address,undefined or thread (the sanitizer); the counts
#   are tallied as http, http-asan and http-tsan.
# Without libcurl (the binaries are not built), nginx or python3 it skips,
# exit 0 (1 with SB_NO_SKIPS=1).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbhttptest.XXXXXX") || exit 1
nginx_pid=
fault_pid=
# shellcheck disable=SC2317 # called by the traps
cleanup() {
    for p in $nginx_pid $fault_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() {
    echo "http: skipped: $1"
    if [ -n "${SB_TALLY:-}" ]; then echo "http 0 0 1" >>"$SB_TALLY"; fi
    if [ "${SB_NO_SKIPS:-0}" = 1 ]; then exit 1; fi
    exit 0
}

nginx=$(command -v nginx 2>/dev/null || true)
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; }
[ -n "$nginx" ] || skip "nginx is missing (apt-get install nginx-light)"
command -v python3 >/dev/null 2>&1 || skip "python3 is missing"
pkg-config --exists libcurl 2>/dev/null ||
    skip "libcurl's development files are missing (apt-get install libcurl4-openssl-dev)"

www=$scratch/www
mkdir -p "$www" "$scratch/nginx/tmp"
# Deterministic bytes: the same files on every run.
python3 - "$www" <<'EOF' || exit 1
import random, sys
d = sys.argv[1]
for name, size, seed in (("big.bin", 3 * 1024 * 1024 + 12345, 1),
                         ("small.bin", 1000, 2), ("empty.bin", 0, 3)):
    with open("%s/%s" % (d, name), "wb") as f:
        f.write(random.Random(seed).randbytes(size))
EOF

# ---- nginx -------------------------------------------------------------------

# A certificate for 127.0.0.1, for the HTTP/2 server over TLS; the tests
# trust it (CURLOPT_CAINFO), nothing else does.
command -v openssl >/dev/null 2>&1 || skip "openssl is missing (apt-get install openssl)"
timeout -k 5 60 openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$scratch/key.pem" \
    -out "$scratch/cert.pem" >/dev/null 2>&1 || { echo "http: openssl req failed"; exit 1; }

# shellcheck source=tests/nginx.sh
. "$root/tests/nginx.sh"
temps=$(nginx_temps "$scratch/nginx/tmp")
port=
tries=0
while [ $tries -lt 5 ] && [ -z "$port" ]; do
    tries=$((tries + 1))
    p=$(free_port) || break
    p2=$(free_port) || break
    p3=$(free_port) || break
    d=$scratch/nginx
    cat >"$d/nginx.conf" <<EOF
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    default_type application/octet-stream;
    $temps
    log_format conn '\$connection \$status \$request';
    server {
        listen 127.0.0.1:$p;
        root $www;
        location /slow/ { alias $www/; limit_rate 256k; }
    }
    # HTTP/2 over TLS (a certificate made here), every request logged
    # with the number of the connection it came on; and HTTP/2 without TLS
    # (prior knowledge).
    server {
        listen 127.0.0.1:$p2 ssl http2;
        ssl_certificate $scratch/cert.pem;
        ssl_certificate_key $scratch/key.pem;
        root $www;
        access_log $d/h2.log conn;
        location /slow/ { alias $www/; limit_rate 256k; }
    }
    server {
        listen 127.0.0.1:$p3 http2;
        root $www;
        location /slow/ { alias $www/; limit_rate 256k; }
    }
}
EOF
    timeout -k 5 600 "$nginx" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
        -g 'daemon off;' >"$d/out.log" 2>&1 &
    nginx_pid=$!
    i=0
    while [ $i -lt 100 ]; do
        if curl -sf -o /dev/null "http://127.0.0.1:$p/small.bin" 2>/dev/null &&
            curl -sf --cacert "$scratch/cert.pem" -o /dev/null \
                "https://127.0.0.1:$p2/small.bin" 2>/dev/null &&
            curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$p3/small.bin" \
                2>/dev/null; then
            port=$p
            port2=$p2
            port3=$p3
            break
        fi
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=
    fi
done
if [ -z "$port" ]; then
    echo "http: FAIL - nginx did not start"
    cat "$scratch/nginx/out.log" "$scratch/nginx/error.log" 2>/dev/null | sed 's/^/    /'
    if [ -n "${SB_TALLY:-}" ]; then echo "http 0 1 0" >>"$SB_TALLY"; fi
    exit 1
fi

# ---- each binary, with its own fault server -------------------------------------

start_fault() {
    rm -f "$scratch/fault.port"
    timeout -k 5 600 python3 "$root/tests/http/faultserver.py" "$www" \
        "$scratch/fault.port" >"$scratch/fault.log" 2>&1 &
    fault_pid=$!
    i=0
    while [ $i -lt 100 ] && [ ! -s "$scratch/fault.port" ]; do
        kill -0 "$fault_pid" 2>/dev/null || break
        sleep 0.05
        i=$((i + 1))
    done
    [ -s "$scratch/fault.port" ]
}

stop_fault() {
    kill "$fault_pid" 2>/dev/null || true
    wait "$fault_pid" 2>/dev/null || true
    fault_pid=
}

rc=0
for arg in "$@"; do
    variant=${arg%%=*}
    bin=${arg#*=}
    case $variant in
    plain) name=http ;;
    thread) name=http-tsan ;;
    *) name=http-asan ;;
    esac
    # bin may be a comma-separated list: one server set for them all.
    bins=$(printf '%s' "$bin" | tr ',' ' ')
    missing=""
    for b in $bins; do [ -x "$b" ] || missing="$missing $b"; done
    if [ -n "$missing" ]; then
        echo "$name: FAIL -$missing not built"
        if [ -n "${SB_TALLY:-}" ]; then echo "$name 0 1 0" >>"$SB_TALLY"; fi
        rc=1
        continue
    fi
    if ! start_fault; then
        echo "$name: FAIL - tests/http/faultserver.py did not start"
        sed 's/^/    /' "$scratch/fault.log"
        if [ -n "${SB_TALLY:-}" ]; then echo "$name 0 1 0" >>"$SB_TALLY"; fi
        rc=1
        stop_fault
        continue
    fi
    SB_HTTP_NGINX=http://127.0.0.1:$port \
    SB_HTTP_H2=https://127.0.0.1:$port2 \
    SB_HTTP_H2CERT=$scratch/cert.pem \
    SB_HTTP_H2LOG=$scratch/nginx/h2.log \
    SB_HTTP_H2C=http://127.0.0.1:$port3 \
    SB_HTTP_FAULT=http://127.0.0.1:$(cat "$scratch/fault.port") \
    SB_HTTP_DIR=$www \
        sh "$root/tests/run.sh" "$name" $bins || rc=1
    stop_fault
done
exit $rc
