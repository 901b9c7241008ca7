#!/bin/sh
# SPDX-License-Identifier: MIT
# test_edge.sh - examples/serve --url, the edge server: a private nginx
# upstream, serve in front of it, curl and the Python clients of
# tests/serve_client.py in front of serve, and a second nginx as a
# reverse proxy in front of serve.
#
# The upstream serves one generated object (6 MiB and a bit, the same
# bytes every run) from several locations, each logging "$request $status
# $bytes_sent $body_bytes_sent $http_range" to a log of its own, so that
# the test counts the requests and bytes each serve made:
#   /f/      at full speed;
#   /slow/   at 512 KiB/s a connection, in 8 KiB writes: the object takes
#            seconds, and a request the library cancels had little in
#            flight;
#   /crawl/, /once/, /die/  the first 128 KiB of each response at once,
#            then 4 KiB/s: the object could not be drained in the test's
#            lifetime, so every answer is given while it is arriving, one
#            about its far end proves that it did not wait for the bytes
#            before it, and the log shows all it took.
# The checks:
#   - crawl: HEAD and GET / are 200 with Content-Length (the length is
#     known; the body goes out as it comes), and the first bytes, the far
#     end (a range, a suffix, an open range) and a 416 are answered as for
#     an ended stream, bytes a-b/LEN, exact: afterwards the upstream had
#     sent less than half the object, one request of it starting at the far
#     range;
#   - once: with --parts 1, one plain GET upstream and no ranged request;
#     the answers still have the length (the first response's);
#   - slow: 50 clients of the same far range at once all get its bytes, and
#     then one the whole object; the upstream sent the range once and the
#     object about once (at most 2 % and 64 KiB more), in a handful of
#     requests, not 50;
#   - f: the whole object, ranges at its start, middle and end, a suffix,
#     an open range, a clamped one, a 416 and HEAD; then the same through
#     nginx as a reverse proxy in front of serve;
#   - a 404 and a refused connection upstream: serve exits 1 with one line
#     naming the error, without listening;
#   - die: the upstream goes away while a body is under way: that response
#     is cut short (never other bytes), later requests are 500;
#   - and no process the test started is left.
# Every process runs under timeout -k, and on any way out every process
# the test started is ended (tests/reap.sh); every wait is a bounded loop
# (the sleeps are its 50 ms steps).  nginx's log lines are read once nginx
# has no connection left but the status request's (stub_status), so that
# every request serve made has been logged.
#
# usage: tests/test_edge.sh PATH/TO/serve   (needs nginx, curl, python3
#        and a serve built with libcurl, else it skips: exit 0, 1 with
#        SB_NO_SKIPS=1; $PYTHON, if set, is the python3 to use; $SB_PART,
#        the name its counts go under in $SB_TALLY, edge by default)
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
client=$here/serve_client.py
part=${SB_PART:-edge}
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "$part: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "$part: FAIL - $1"; }
finish() {
    echo "$part: $passed passed, $failed failed, 0 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "$part $passed $failed 0" >>"$SB_TALLY"; fi
    [ "$failed" -eq 0 ]
    exit
}
skip() {
    echo "$part: skipped: $1"
    echo "$part: 0 passed, 0 failed, 1 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "$part 0 0 1" >>"$SB_TALLY"; fi
    if [ "${SB_NO_SKIPS:-0}" = 1 ]; then exit 1; fi
    exit 0
}
# check DESCRIPTION COMMAND...: one test, passed if COMMAND succeeds (and
# then true).
check() {
    d=$1
    shift
    if "$@"; then ok "$d"; else fail "$d" && false; fi
}

nginx=$(command -v nginx 2>/dev/null || true)
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; }
[ -n "$nginx" ] || skip "nginx is missing (apt-get install nginx-light)"
"$nginx" -V 2>&1 | grep -q -- --with-http_stub_status_module ||
    skip "this nginx has no stub_status module"
command -v curl >/dev/null 2>&1 || skip "curl is missing (apt-get install curl)"
command -v "$py" >/dev/null 2>&1 || skip "$py is missing"
[ -x "$bin" ] || { fail "$bin is not built"; finish; }
"$bin" --help 2>/dev/null | grep -q -- '--url' || { fail "$bin --help has no --url"; finish; }
if "$bin" --help | grep -q 'not in this build'; then
    skip "serve was built without libcurl (apt-get install libcurl4-openssl-dev)"
fi

# shellcheck source=tests/reap.sh
. "$here/reap.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbedge.XXXXXX") || exit 1
sb_on_exit 'rm -rf "$scratch"'
export TMPDIR=$scratch # serve's spill files

www=$scratch/www
mkdir -p "$www" "$scratch/up/tmp" "$scratch/proxy/tmp"
# The object: 6 MiB and a bit, the same bytes on every run.
timeout -k 2 60 "$py" - "$www/obj" <<'EOF' || exit 1
import random, sys
with open(sys.argv[1], "wb") as f:
    f.write(random.Random(24).randbytes(6 * 1024 * 1024 + 12345))
EOF
obj=$www/obj
len=$(wc -c <"$obj" | tr -d ' ')
echo ok >"$www/ready"

# ---- helpers -----------------------------------------------------------------

# free_port, nginx_temps
# shellcheck source=tests/nginx.sh
. "$here/nginx.sh"
# start_nginx DIR SERVER-BODY: an nginx on a free port of 127.0.0.1, its
# files in DIR, SERVER-BODY in its server block (besides /ready, what the
# test waits for, and /status); sets nginx_pid and nginx_port, or fails.
start_nginx() {
    d=$1
    nginx_port=
    tries=0
    while [ $tries -lt 5 ] && [ -z "$nginx_port" ]; do
        tries=$((tries + 1))
        p=$(free_port) || break
        cat >"$d/nginx.conf" <<EOF
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    log_format edge '\$request \$status \$bytes_sent \$body_bytes_sent "\$http_range"';
    default_type application/octet-stream;
    $(nginx_temps "$d/tmp")
    server {
        listen 127.0.0.1:$p;
        location = /ready { root $www; }
        location = /status { stub_status; }
$2
    }
}
EOF
        : >"$d/out.log"
        timeout -k 5 900 "$nginx" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
            -g 'daemon off;' >"$d/out.log" 2>&1 &
        nginx_pid=$!
        i=0
        while [ $i -lt 200 ]; do
            if timeout -k 2 5 curl -sf -o /dev/null "http://127.0.0.1:$p/ready" 2>/dev/null; then
                nginx_port=$p
                break
            fi
            [ -n "$(sb_alive "$nginx_pid")" ] || break
            sleep 0.05
            i=$((i + 1))
        done
        if [ -z "$nginx_port" ]; then
            kill "$nginx_pid" 2>/dev/null
            wait "$nginx_pid" 2>/dev/null
        fi
    done
    if [ -z "$nginx_port" ]; then
        cat "$d/out.log" "$d/error.log" 2>/dev/null | sed 's/^/    /'
        return 1
    fi
}
# stop PID: SIGTERM to PID (a job of this shell) and its status, waited for.
stop() {
    kill -TERM "$1" 2>/dev/null
    wait "$1"
}
# up_idle: until the upstream nginx has no connection but the one that
# asks (at most 20 s): every request made to it has ended and is logged.
up_idle() {
    i=0
    while [ $i -lt 400 ]; do
        a=$(timeout -k 2 5 curl -s "http://127.0.0.1:$up/status" 2>/dev/null |
            sed -n 's/^Active connections: *\([0-9]*\).*/\1/p')
        [ "$a" = 1 ] && return 0
        sleep 0.05
        i=$((i + 1))
    done
    echo "    the upstream still has ${a:-?} connections"
    return 1
}
# upstream_log NAME: the upstream's log of NAME, to read when a check of
# it failed.
upstream_log() { sed 's/^/    upstream: /' "$scratch/up-$1.log"; }
# logsum LOG FIRST LAST: what the upstream's log LOG says serve read:
# "REQUESTS BODY-BYTES OVERLAP STARTS UNREAD".  A request's bytes start
# where its Range does (0 without).  The first GET (no Range) is read
# until it meets bytes another request fetched and that it does not read
# through, and 4 KiB past them (the seam compared); what the upstream sent
# it past that is UNREAD and not in BODY-BYTES: what was in flight when
# the library let that connection go (sb_source.done).  That point is
# taken to be the lowest start of another request from which the other
# requests' bytes cover all the rest of the first GET's.  OVERLAP is how
# many of BODY-BYTES fell in [FIRST, LAST]; STARTS, the Range starts.
logsum() {
    timeout -k 2 30 "$py" - "$@" <<'EOF'
import re, sys
reqs = []
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) (\S+) (\S+) (\d+) (\d+) (\d+) "(.*)"$', line.strip())
    if m:
        r = re.match(r"bytes=(\d+)-", m.group(7))
        reqs.append([int(r.group(1)) if r else 0, int(m.group(6)), bool(r)])
spans = sorted((a, a + body) for a, body, ranged in reqs if ranged and body > 0)

def covered(lo, hi):
    for a, b in spans:
        if a > lo:
            break
        lo = max(lo, b)
    return lo >= hi

unread = 0
for q in reqs:
    if q[2]:
        continue
    for a, _ in spans:
        if a < q[1] and covered(a, q[1]):
            if q[1] > a + 4096:
                unread += q[1] - (a + 4096)
                q[1] = a + 4096
            break
lo, hi = int(sys.argv[2]), int(sys.argv[3]) + 1
total = sum(body for a, body, ranged in reqs)
overlap = sum(max(0, min(hi, a + body) - max(lo, a)) for a, body, ranged in reqs)
starts = ",".join(str(a) for a, body, ranged in reqs) or "-"
print(len(reqs), total, overlap, starts, unread)
EOF
}
# port_of LOG PID: the port serve's "listening" line names, once it is there
# (at most 30 s: it connects upstream first; not after PID has exited).
port_of() {
    sb_wait_for_line "$1" '^serve: listening on 127\.0\.0\.1:[0-9]+$' 30 "$2" &&
        sed -n 's/^serve: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$1"
}
# start_serve NAME ARGS...: serve ARGS in the background, stderr in
# serve-NAME.log; sets server and port (url: its address), or fails.
start_serve() {
    n=$1
    shift
    : >"$scratch/serve-$n.log"
    timeout -k 10 300 "$bin" "$@" 2>"$scratch/serve-$n.log" &
    server=$!
    if ! port=$(port_of "$scratch/serve-$n.log" "$server"); then
        sed 's/^/    /' "$scratch/serve-$n.log"
        return 1
    fi
    url=http://127.0.0.1:$port/
}
# hdr FILE NAME: the value of header NAME in the curl -D file FILE.
hdr() { tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1; }
# code FILE: the status code in the curl -D file FILE.
code() { tr -d '\r' <"$1" | sed -n 's/^HTTP\/1\.1 \([0-9]*\).*/\1/p' | tail -n 1; }
# slice FROM COUNT: bytes [FROM, FROM + COUNT) of the object.
slice() { tail -c +$(($1 + 1)) "$obj" | head -c "$2"; }
# get NAME CURL-ARGS...: curl to $url, headers in NAME.h, body in NAME.b.
get() {
    n=$1
    shift
    sb_run timeout -k 5 60 curl -s -D "$scratch/$n.h" -o "$scratch/$n.b" "$@" "$url"
}
# range_ok NAME STATUS CONTENT-RANGE FROM COUNT: the response NAME is
# STATUS with that Content-Range and Content-Length COUNT, and its body
# is those bytes of the object.
range_ok() {
    [ "$(code "$scratch/$1.h")" = "$2" ] &&
        [ "$(hdr "$scratch/$1.h" Content-Range)" = "$3" ] &&
        [ "$(hdr "$scratch/$1.h" Content-Length)" = "$5" ] &&
        slice "$4" "$5" | cmp -s - "$scratch/$1.b"
}
# whole_ok NAME: the response NAME is 200 with Content-Length, the object.
whole_ok() {
    [ "$(code "$scratch/$1.h")" = 200 ] &&
        [ "$(hdr "$scratch/$1.h" Content-Length)" = "$len" ] &&
        cmp -s "$obj" "$scratch/$1.b"
}
# is416 NAME: the response NAME is 416 with Content-Range bytes */LEN.
is416() {
    [ "$(code "$scratch/$1.h")" = 416 ] &&
        [ "$(hdr "$scratch/$1.h" Content-Range)" = "bytes */$len" ]
}
pyc() { sb_run timeout -k 5 90 "$py" "$client" "$@"; }

# ---- the upstream ------------------------------------------------------------

if ! start_nginx "$scratch/up" "
        location /f/ { alias $www/; access_log $scratch/up-f.log edge; }
        location /slow/ {
            alias $www/;
            limit_rate 512k;
            output_buffers 2 8k;
            access_log $scratch/up-slow.log edge;
        }
        location /crawl/ {
            alias $www/;
            limit_rate_after 128k;
            limit_rate 4k;
            access_log $scratch/up-crawl.log edge;
        }
        location /once/ {
            alias $www/;
            limit_rate_after 128k;
            limit_rate 4k;
            access_log $scratch/up-once.log edge;
        }
        location /die/ { alias $www/; limit_rate_after 128k; limit_rate 4k; }"; then
    fail "the upstream nginx started"
    finish
fi
up=$nginx_port
up_pid=$nginx_pid
ok "the upstream nginx listens on 127.0.0.1:$up"
base=http://127.0.0.1:$up

# ---- crawl: far reads do not wait for the bytes before them ----------------------

# The seek gap is fixed (--seek-gap): the one the library measures is a
# fetcher's rate per read call times a part's opening time, and a read of
# bytes libcurl had already buffered takes microseconds, so it grows to
# tens of MB, past the object; a far read then waits for the request
# that will reach it, which here crawls, instead of opening its own.
far=$((len - 100000))
if start_serve crawl --url "$base/crawl/obj" --seek-gap 262144 -m 1000000; then
    ok "crawl: serve --url prints: listening on 127.0.0.1:$port"
    check "crawl: HEAD / is 200 with Content-Length $len while the object arrives" \
        pyc head "$port" "$obj" ended
    check "crawl: GET / is 200 with Content-Length $len, not chunked; its first 100000 bytes are right" \
        pyc prefix "$port" "$obj" 100000
    get c_first -r 0-99
    check "crawl: bytes=0-99 is 206, bytes 0-99/$len, exact" \
        range_ok c_first 206 "bytes 0-99/$len" 0 100
    get c_far -r "$far-$((len - 1))"
    check "crawl: the far range bytes=$far-$((len - 1)) is 206, bytes $far-$((len - 1))/$len, exact" \
        range_ok c_far 206 "bytes $far-$((len - 1))/$len" "$far" 100000
    get c_suffix -r -4321
    check "crawl: bytes=-4321 is 206, bytes $((len - 4321))-$((len - 1))/$len, exact" \
        range_ok c_suffix 206 "bytes $((len - 4321))-$((len - 1))/$len" $((len - 4321)) 4321
    get c_open -r $((len - 5000))-
    check "crawl: bytes=$((len - 5000))- is 206, bytes $((len - 5000))-$((len - 1))/$len, exact" \
        range_ok c_open 206 "bytes $((len - 5000))-$((len - 1))/$len" $((len - 5000)) 5000
    get c_416 -r "$len"-
    check "crawl: bytes=$len- is 416 with Content-Range bytes */$len" is416 c_416
    stop "$server"
    rc=$?
    check "crawl: SIGTERM: serve exits cleanly (status 0) and logged only its port" \
        eval '[ "$rc" -eq 0 ] && [ "$(wc -l <"$scratch/serve-crawl.log")" -eq 1 ]'
    if up_idle; then
        read -r nreq sent _ starts unread <<EOF
$(logsum "$scratch/up-crawl.log" "$far" $((len - 1)))
EOF
        sent=$((sent + unread)) # all of it, read or not
        echo "    upstream: $nreq requests, $sent body bytes, Range starts $starts"
        check "crawl: the upstream sent less than half the object ($sent of $len bytes)" \
            eval '[ "$sent" -lt $((len / 2)) ]' || upstream_log crawl
        check "crawl: one upstream request started at the far range ($far)" \
            eval 'case ",$starts," in *",$far,"*) true ;; *) false ;; esac' ||
            upstream_log crawl
    else
        fail "crawl: the upstream logged every request"
    fi
else
    fail "crawl: serve --url prints the port it listens on"
fi

# ---- --parts 1: one plain GET upstream ---------------------------------------------

if start_serve once --url "$base/once/obj" --parts 1; then
    get o_first -r 0-99
    check "--parts 1: bytes=0-99 is 206, bytes 0-99/$len (the first response's length), exact" \
        range_ok o_first 206 "bytes 0-99/$len" 0 100
    stop "$server"
    rc=$?
    if up_idle; then
        read -r nreq sent _ starts _ <<EOF
$(logsum "$scratch/up-once.log" 0 0)
EOF
        check "--parts 1: serve exits cleanly; the upstream had one request, without Range" \
            eval '[ "$rc" -eq 0 ] && [ "$nreq" -eq 1 ] && [ "$starts" = 0 ] &&
                ! grep -q "bytes=" "$scratch/up-once.log"'
    else
        fail "--parts 1: the upstream logged every request"
    fi
else
    fail "--parts 1: serve --url prints the port it listens on"
fi

# ---- slow: one upstream fetch for many clients ------------------------------------

# 50 clients of one far range at once, then one of the whole object, while
# the upstream trickles it: then the upstream's log must show each byte
# sent about once: what serve read, and with it what was in flight on
# the first GET's connection when the library let it go (see logsum).
first=$((4 * 1024 * 1024 + 1234))
last=$((first + 512 * 1024 - 1))
if start_serve slow --url "$base/slow/obj" -m 2000000; then
    check "slow: 50 concurrent clients of bytes=$first-$last all get 206 and exactly its bytes" \
        pyc same "$port" "$obj" 50 "$first" "$last"
    get s_whole
    check "slow: GET / is 200 with Content-Length $len, the object" whole_ok s_whole
    stop "$server"
    rc=$?
    check "slow: SIGTERM: serve exits cleanly (status 0) and logged only its port" \
        eval '[ "$rc" -eq 0 ] && [ "$(wc -l <"$scratch/serve-slow.log")" -eq 1 ]'
    if up_idle; then
        read -r nreq sent inrange starts unread <<EOF
$(logsum "$scratch/up-slow.log" "$first" "$last")
EOF
        echo "    upstream: $nreq requests, $sent body bytes read by serve, $inrange of them in bytes=$first-$last; Range starts $starts; $unread more sent to the first GET past where serve stopped reading it"
        check "slow: the upstream sent the object about once: $sent <= $len * 1.02 + 64 KiB" \
            eval '[ "$sent" -ge "$len" ] && [ "$sent" -le $((len + len / 50 + 65536)) ]' ||
            upstream_log slow
        check "slow: all the upstream sent, unread bytes too: $((sent + unread)) <= $len * 1.02 + 64 KiB" \
            eval '[ $((sent + unread)) -le $((len + len / 50 + 65536)) ]' || upstream_log slow
        check "slow: the 50 clients' range was fetched once: $inrange <= $((last - first + 1)) + 64 KiB" \
            eval '[ "$inrange" -le $((last - first + 1 + 65536)) ]' || upstream_log slow
        check "slow: a handful of upstream requests ($nreq), not one a client" \
            eval '[ "$nreq" -le 12 ]' || upstream_log slow
    else
        fail "slow: the upstream logged every request"
    fi
else
    fail "slow: serve --url prints the port it listens on"
fi

# ---- f: a fast upstream, and nginx as a reverse proxy in front of serve ---------------

if start_serve f --url "$base/f/obj" -m 1000000; then
    get f_first -r 0-65535
    check "f: bytes=0-65535 is 206, bytes 0-65535/$len, exact" \
        range_ok f_first 206 "bytes 0-65535/$len" 0 65536
    get f_mid -r 3000000-3999999
    check "f: bytes=3000000-3999999 is 206, bytes 3000000-3999999/$len, exact" \
        range_ok f_mid 206 "bytes 3000000-3999999/$len" 3000000 1000000
    get f_last -r $((len - 10))-$((len - 1))
    check "f: bytes=$((len - 10))-$((len - 1)) is 206, exact" \
        range_ok f_last 206 "bytes $((len - 10))-$((len - 1))/$len" $((len - 10)) 10
    get f_clamp -r $((len - 10))-99999999
    check "f: bytes=$((len - 10))-99999999 is clamped to bytes $((len - 10))-$((len - 1))/$len" \
        range_ok f_clamp 206 "bytes $((len - 10))-$((len - 1))/$len" $((len - 10)) 10
    get f_suffix -r -70000
    check "f: bytes=-70000 is 206, bytes $((len - 70000))-$((len - 1))/$len, exact" \
        range_ok f_suffix 206 "bytes $((len - 70000))-$((len - 1))/$len" $((len - 70000)) 70000
    get f_open -r 5000000-
    check "f: bytes=5000000- is 206, bytes 5000000-$((len - 1))/$len, exact" \
        range_ok f_open 206 "bytes 5000000-$((len - 1))/$len" 5000000 $((len - 5000000))
    get f_416 -r $((len + 5))-
    check "f: bytes=$((len + 5))- is 416 with Content-Range bytes */$len" is416 f_416
    check "f: HEAD / is 200 with Content-Length $len" pyc head "$port" "$obj" ended
    get f_whole
    check "f: GET / is 200 with Content-Length $len, the object" whole_ok f_whole

    # The reverse proxy: nginx in front of serve, the README's snippet.
    if start_nginx "$scratch/proxy" "
        location / {
            proxy_pass http://127.0.0.1:$port;
            proxy_buffering off;
            proxy_http_version 1.1;
        }"; then
        proxy_pid=$nginx_pid
        serve_url=$url
        url=http://127.0.0.1:$nginx_port/
        get p_whole
        check "proxy: GET / through nginx is 200 with Content-Length $len, the object" \
            whole_ok p_whole
        get p_mid -r 1234567-2345678
        check "proxy: bytes=1234567-2345678 through nginx is 206, bytes 1234567-2345678/$len, exact" \
            range_ok p_mid 206 "bytes 1234567-2345678/$len" 1234567 1111112
        get p_suffix -r -1000
        check "proxy: bytes=-1000 through nginx is 206, bytes $((len - 1000))-$((len - 1))/$len, exact" \
            range_ok p_suffix 206 "bytes $((len - 1000))-$((len - 1))/$len" $((len - 1000)) 1000
        get p_open -r 6000000-
        check "proxy: bytes=6000000- through nginx is 206, bytes 6000000-$((len - 1))/$len, exact" \
            range_ok p_open 206 "bytes 6000000-$((len - 1))/$len" 6000000 $((len - 6000000))
        get p_416 -r "$len"-
        check "proxy: bytes=$len- through nginx is 416, bytes */$len" is416 p_416
        sb_run timeout -k 5 20 curl -s -I -o "$scratch/p_head.h" "$url"
        check "proxy: HEAD / through nginx is 200 with Content-Length $len" \
            eval '[ "$(code "$scratch/p_head.h")" = 200 ] &&
                [ "$(hdr "$scratch/p_head.h" Content-Length)" = "$len" ]'
        stop "$proxy_pid"
        url=$serve_url
    else
        fail "proxy: nginx in front of serve started"
    fi
    stop "$server"
    rc=$?
    check "f: SIGTERM: serve exits cleanly (status 0) and logged only its port" \
        eval '[ "$rc" -eq 0 ] && [ "$(wc -l <"$scratch/serve-f.log")" -eq 1 ]'
else
    fail "f: serve --url prints the port it listens on"
fi

# ---- an upstream that answers with an error, or not at all ------------------------------

# refused URL ERRNO-TEXT: serve --url URL exits 1 with one line naming
# ERRNO-TEXT, before it listens (its timeout(1) has returned: nothing of
# it is left).
refused() {
    : >"$scratch/err.log"
    timeout -k 5 60 "$bin" --url "$1" 2>"$scratch/err.log" &
    pid=$!
    wait "$pid"
    rc=$?
    [ "$rc" -eq 1 ] && [ "$(wc -l <"$scratch/err.log")" -eq 1 ] &&
        grep -q "^serve: .*: $2\$" "$scratch/err.log" &&
        ! grep -q listening "$scratch/err.log" || {
        echo "    status $rc; stderr:"
        sed 's/^/    /' "$scratch/err.log"
        false
    }
}
check "404 upstream: serve exits 1 with one line, \"No such file or directory\", not listening" \
    refused "$base/f/no-such-object" "No such file or directory"
nowhere=$(free_port)
check "nothing listening upstream: serve exits 1 with one line, \"Connection refused\"" \
    refused "http://127.0.0.1:$nowhere/obj" "Connection refused"

# ---- the upstream dies under a response ----------------------------------------------

if start_serve die --url "$base/die/obj"; then
    timeout -k 5 60 curl -s -D "$scratch/d_whole.h" -o "$scratch/d_whole.b" "$url" &
    whole=$!
    # Until the body's first 100000 bytes (the upstream's quick part) are in.
    i=0
    while [ $i -lt 400 ] && [ "$({ wc -c <"$scratch/d_whole.b"; } 2>/dev/null || echo 0)" -lt 100000 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    stop "$up_pid"
    wait "$whole"
    crc=$?
    got=$(wc -c <"$scratch/d_whole.b" | tr -d ' ')
    check "upstream gone: the response under way is cut short (curl $crc, $got of $len bytes), its bytes right" \
        eval '[ "$crc" -ne 0 ] && [ "$got" -ge 100000 ] && [ "$got" -lt "$len" ] &&
            [ "$(hdr "$scratch/d_whole.h" Content-Length)" = "$len" ] &&
            head -c "$got" "$obj" | cmp -s - "$scratch/d_whole.b"'
    get d_after -r 0-99
    check "upstream gone: a later request is 500" eval '[ "$(code "$scratch/d_after.h")" = 500 ]'
    stop "$server"
    rc=$?
    check "upstream gone: SIGTERM: serve exits cleanly (status 0)" eval '[ "$rc" -eq 0 ]'
else
    fail "die: serve --url prints the port it listens on"
fi
# Everything the test started has ended by now, the upstream included.
[ -z "$(sb_alive "$up_pid")" ] || stop "$up_pid"
sb_below $$ >"$scratch/left"
check "no process of the test is left running" eval '[ ! -s "$scratch/left" ]'
finish
