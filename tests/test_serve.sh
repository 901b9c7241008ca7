#!/bin/sh
# SPDX-License-Identifier: MIT
# test_serve.sh - examples/serve, the one-thread epoll HTTP/1.1 server of
# standard input, against curl and the Python clients of
# tests/serve_client.py.
#
# The first server reads a FIFO whose feeder writes the input in three
# parts, each only when a marker file appears, so that "live" (the stream
# still running) and "not arrived yet" are states the test controls, not
# timings: while live, whole-stream GET is chunked, ranges say "/*", a range
# that has not arrived is answered only once it has, a suffix range only
# once the stream has ended; after the end, Content-Length and "/LEN".
# Then HEAD, 416, 400/431/505, 405, 404, keep-alive, pipelining, HTTP/1.0,
# clients that vanish mid-body, SIGTERM; a second server exits after -n
# clients; a third serves 1,000 concurrent clients a live stream.
# Every command runs under timeout -k (killed if a TERM does not end it:
# an ASan server can hang in LeakSanitizer's exit-time check), and on any
# way out, a signal included, every process the test started is ended
# (tests/reap.sh); the sleeps are the 50 ms steps of waiting for a file or
# a log line to appear, and one pause of the third server's feeder, on
# which no check depends.
#
# usage: tests/test_serve.sh PATH/TO/serve      (needs curl and python3;
#        $PYTHON, if set, is the python3 to use; $SB_PART, the name its
#        counts go under in $SB_TALLY, serve by default)
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
client=$here/serve_client.py
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "serve: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "serve: FAIL - $1"; }
finish() {
    echo "serve: $passed passed, $failed failed, 0 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "${SB_PART:-serve} $passed $failed 0" >>"$SB_TALLY"; fi
    [ "$failed" -eq 0 ]
    exit
}
# check DESCRIPTION COMMAND...: one test, passed if COMMAND succeeds.
check() {
    d=$1
    shift
    if "$@"; then ok "$d"; else fail "$d"; fi
}
command -v curl >/dev/null 2>&1 || { fail "curl is not installed (apt-get install curl)"; finish; }
command -v "$py" >/dev/null 2>&1 || { fail "$py is not installed"; finish; }
# shellcheck source=tests/reap.sh
. "$here/reap.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbserve.XXXXXX") || exit 1
sb_on_exit 'rm -rf "$scratch"'
export TMPDIR=$scratch # the servers' spill files

# wait_for FILE: until FILE exists (at most 20 s).
wait_for() {
    i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ "$i" -gt 400 ] && return 1
        sleep 0.05
    done
}
# port_of LOG PID: the port the server's "listening" line names, once it is
# there (at most 20 s, and not after the server PID has exited).  The log
# is made empty before the server starts, so it is there to read.
port_of() {
    sb_wait_for_line "$1" '^serve: listening on 127\.0\.0\.1:[0-9]+$' 20 "$2" &&
        sed -n 's/^serve: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$1"
}
# hdr FILE NAME: the value of header NAME in the curl -D file FILE.
hdr() { tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1; }
# code FILE: the status code in the curl -D file FILE.
code() { tr -d '\r' <"$1" | sed -n 's/^HTTP\/1\.1 \([0-9]*\).*/\1/p' | tail -n 1; }
# slice FROM COUNT: bytes [FROM, FROM + COUNT) of the input.
slice() { tail -c +$(($1 + 1)) "$in" | head -c "$2"; }
# get NAME CURL-ARGS...: curl to $url, headers in NAME.h, body in NAME.b.
get() {
    n=$1
    shift
    sb_run timeout -k 5 20 curl -s -D "$scratch/$n.h" -o "$scratch/$n.b" "$@" "$url"
}
# range_ok NAME STATUS CONTENT-RANGE FROM COUNT: the response NAME is
# STATUS with that Content-Range, and its body is those bytes of the input.
range_ok() {
    [ "$(code "$scratch/$1.h")" = "$2" ] &&
        [ "$(hdr "$scratch/$1.h" Content-Range)" = "$3" ] &&
        slice "$4" "$5" | cmp -s - "$scratch/$1.b"
}
pyc() { sb_run timeout -k 5 60 "$py" "$client" "$@"; }

# ---- the first server: a live stream that the test feeds -----------------
in=$scratch/in
head -c 3000000 /dev/urandom >"$in"
len=3000000
mkfifo "$scratch/feed"
# The feeder: the first MB now, the second when go2 appears, the rest (and
# the end of the stream) when go3 does.  The Python client of the "not
# arrived yet" checks makes go2 and go3.
(
    slice 0 1000000
    wait_for "$scratch/go2" && slice 1000000 1000000
    wait_for "$scratch/go3" && slice 2000000 1000000
) >"$scratch/feed" &
# -m 1000000: the first MB in memory, the rest spilled to the file.
: >"$scratch/log"
timeout -k 10 120 "$bin" -m 1000000 <"$scratch/feed" 2>"$scratch/log" &
server=$!
if ! port=$(port_of "$scratch/log" "$server"); then
    fail "serve prints the port it listens on"
    cat "$scratch/log"
    finish
fi
ok "serve prints: listening on 127.0.0.1:$port"
url=http://127.0.0.1:$port/

# Live: the input's first MB is (or will be) in; the stream goes on.
get live_ab -r 100-199
check "live: bytes=100-199 is 206, Content-Range bytes 100-199/*, exact" \
    range_ok live_ab 206 "bytes 100-199/*" 100 100
# This one waits, if it has to, until the whole first MB is in.
get live_end -r 999990-999999
check "live: bytes=999990-999999 (the end of what is in) is exact, /*" \
    range_ok live_end 206 "bytes 999990-999999/*" 999990 10
get live_from -r 1000-
cr=$(hdr "$scratch/live_from.h" Content-Range)
last=$(echo "$cr" | sed -n 's/^bytes 1000-\([0-9]*\)\/\*$/\1/p')
check "live: bytes=1000- is 206 with what has arrived, bytes 1000-$last/* (RFC 8673)" \
    eval '[ -n "$last" ] && [ "$last" -ge 999999 ] && [ "$last" -lt 2000000 ] &&
        range_ok live_from 206 "$cr" 1000 $((last - 999))'
# The whole stream while live: chunked.  It finishes once the stream ends.
timeout -k 5 60 curl -s -D "$scratch/whole_live.h" -o "$scratch/whole_live.b" "$url" &
whole=$!
check "live: HEAD / is 200 chunked, no body (a GET follows on the connection)" \
    pyc head "$port" "$in" live
check "live: a client that vanishes mid-body, one that vanishes while waiting" \
    pyc vanish "$port" "$in"
get after_vanish -r 0-65535
check "live: the server goes on serving after they vanished" \
    range_ok after_vanish 206 "bytes 0-65535/*" 0 65536
# Bytes that have not arrived: no answer until they do (go2), then exact
# with /*; the suffix waits for the end (go3), then /LEN; a live tail
# (bytes=1900000-999999999999) ends cleanly with the stream.
check "not arrived: bytes=a-b, a-, -n and a-HUGE wait for their bytes, then are exact" \
    pyc pending "$port" "$in" "$scratch"
touch "$scratch/go2" "$scratch/go3" # if that failed: end the stream anyway
wait "$whole"
rc=$?
check "live: GET / was chunked (Transfer-Encoding: chunked)" \
    eval '[ "$(hdr "$scratch/whole_live.h" Transfer-Encoding)" = chunked ]'
check "live: GET / of the whole stream got exactly the input" \
    eval '[ "$rc" -eq 0 ] && cmp -s "$in" "$scratch/whole_live.b"'

# Ended: the length is known.
get whole
check "ended: GET / is 200 with Content-Length $len, and the input" \
    eval '[ "$(code "$scratch/whole.h")" = 200 ] &&
        [ "$(hdr "$scratch/whole.h" Content-Length)" = "$len" ] &&
        cmp -s "$in" "$scratch/whole.b"'
get e_ab -r 1234567-2345678
check "ended: bytes=1234567-2345678 is 206, bytes 1234567-2345678/$len, exact" \
    range_ok e_ab 206 "bytes 1234567-2345678/$len" 1234567 1111112
get e_from -r 2999000-
check "ended: bytes=2999000- is 206, bytes 2999000-2999999/$len, exact" \
    range_ok e_from 206 "bytes 2999000-2999999/$len" 2999000 1000
get e_suffix -r -4321
check "ended: bytes=-4321 is 206, bytes 2995679-2999999/$len, exact" \
    range_ok e_suffix 206 "bytes 2995679-2999999/$len" 2995679 4321
get e_clamp -r 2999990-99999999
check "ended: bytes=2999990-99999999 is clamped to bytes 2999990-2999999/$len" \
    range_ok e_clamp 206 "bytes 2999990-2999999/$len" 2999990 10
get e_416 -r 3000000-
check "ended: bytes=3000000- is 416 with Content-Range bytes */$len" \
    eval '[ "$(code "$scratch/e_416.h")" = 416 ] &&
        [ "$(hdr "$scratch/e_416.h" Content-Range)" = "bytes */$len" ]'
get e_multi -r 0-9,20-29
check "ended: several ranges are ignored: 200, the whole stream" \
    eval '[ "$(code "$scratch/e_multi.h")" = 200 ] && cmp -s "$in" "$scratch/e_multi.b"'
check "ended: HEAD / is 200 with Content-Length, no body" \
    pyc head "$port" "$in" ended
check "keep-alive: three requests on one connection (http.client) all answered" \
    pyc keepalive "$port" "$in"
check "pipelining: four requests in one write, four responses in order, then close" \
    pyc pipeline "$port" "$in"
check "HTTP/1.0: closes after the response, or persists with keep-alive" \
    pyc http10 "$port" "$in"
check "malformed requests: 400 (431 for a big head, 505), and the connection closed" \
    pyc bad "$port" "$in"
sb_run timeout -k 5 20 curl -s -D "$scratch/post.h" -o /dev/null -X POST -d x "$url"
check "POST is 405 with Allow: GET, HEAD" \
    eval '[ "$(code "$scratch/post.h")" = 405 ] &&
        [ "$(hdr "$scratch/post.h" Allow)" = "GET, HEAD" ]'
sb_run timeout -k 5 20 curl -s -D "$scratch/404.h" -o /dev/null "${url}other"
check "a path other than / is 404" eval '[ "$(code "$scratch/404.h")" = 404 ]'
kill -TERM "$server"
wait "$server"
rc=$?
check "SIGTERM: the server exits cleanly (status 0)" eval '[ "$rc" -eq 0 ]'
check "the server logged nothing but its port" \
    eval '[ "$(wc -l <"$scratch/log")" -eq 1 ]'

# ---- the second server: -n 3 ----------------------------------------------
head -c 100000 "$in" >"$scratch/small"
: >"$scratch/log2"
timeout -k 10 30 "$bin" -n 3 <"$scratch/small" 2>"$scratch/log2" &
server=$!
if port=$(port_of "$scratch/log2" "$server"); then
    url=http://127.0.0.1:$port/
    good=0
    for k in 1 2 3; do
        get n$k -r $((k * 1000))-$((k * 1000 + 99)) &&
            slice $((k * 1000)) 100 | cmp -s - "$scratch/n$k.b" && good=$((good + 1))
    done
    wait "$server"
    rc=$?
    check "-n 3: three clients served, then the server exits by itself (status 0)" \
        eval '[ "$good" -eq 3 ] && [ "$rc" -eq 0 ] && [ "$(wc -l <"$scratch/log2")" -eq 1 ]'
else
    fail "-n 3: the server prints its port"
fi

# ---- the third server: 1,000 clients at once on a live stream -------------
head -c 3000000 /dev/urandom >"$scratch/in3"
: >"$scratch/log3" # before the server's redirect, so that port_of can read it
# The first MB now; the rest only once all the clients have sent their
# requests (the client makes go_many), so that many responses start while
# the stream is live and many wait for bytes; a pause before the last MB
# has more of them decided while live.  What each client must get does not
# depend on when the bytes come.
(
    head -c 1000000 "$scratch/in3"
    wait_for "$scratch/go_many" && tail -c +1000001 "$scratch/in3" | head -c 1000000
    sleep 0.3
    tail -c +2000001 "$scratch/in3"
) | timeout -k 10 120 "$bin" -m 2000000 2>"$scratch/log3" &
server=$!
if port=$(port_of "$scratch/log3" "$server"); then
    check "1000 concurrent clients (ranges, suffixes, whole streams, some vanish) all succeed" \
        pyc many "$port" "$scratch/in3" 1000 "$scratch/go_many"
    url=http://127.0.0.1:$port/
    get final
    check "after them, GET / is still exactly the input" \
        eval 'cmp -s "$scratch/in3" "$scratch/final.b"'
    kill -TERM "$server"
    wait "$server"
    rc=$?
    check "SIGTERM after 1000 clients: exits cleanly (status 0), logged only its port" \
        eval '[ "$rc" -eq 0 ] && [ "$(wc -l <"$scratch/log3")" -eq 1 ]'
else
    fail "1000 clients: the server prints its port"
fi
finish
