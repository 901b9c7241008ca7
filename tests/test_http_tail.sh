#!/bin/sh
# SPDX-License-Identifier: MIT
# test_http_tail.sh - examples/http_tail against a local HTTP server.
#
# Serves generated files from a scratch directory with python3's
# http.server on 127.0.0.1 (port chosen by the kernel), runs http_tail on
# them, and compares the head and tail it read (-o PREFIX) with `head -c`
# and `tail -c` of the file.  Also: a file shorter than 64 KiB, an empty
# one, -n, a 404 and a refused connection, which must fail, not hang.
# Loopback only; every run of http_tail is bounded by timeout(1).
#
# usage: tests/test_http_tail.sh [PATH/TO/http_tail]
#        (default: build/examples/http_tail)
# Prints one line per check and "http_tail: N passed, M failed"; exits 1 if
# anything failed.  Without libcurl's headers (or python3) it skips, exit 0.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/examples/http_tail}
CC=${CC:-cc}
passed=0
failed=0

skip() {
    echo "http_tail: skipped: $1"
    echo "http_tail: 0 passed, 0 failed, 1 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "http_tail 0 0 1" >>"$SB_TALLY"; fi
    if [ "${SB_NO_SKIPS:-0}" = 1 ]; then exit 1; fi
    exit 0
}

# The Makefile builds http_tail where pkg-config knows libcurl; both come
# with libcurl's development package.
if ! printf '#include <curl/curl.h>\n' | $CC -E -x c - >/dev/null 2>&1 ||
    ! pkg-config --exists libcurl 2>/dev/null; then
    skip "libcurl's headers (curl/curl.h, libcurl.pc) are missing; on Debian: apt-get install libcurl4-openssl-dev"
fi
command -v python3 >/dev/null 2>&1 || skip "python3 is needed for its http.server"

# shellcheck source=tests/reap.sh
. "$root/tests/reap.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbhttp.XXXXXX")
server=
sb_on_exit 'rm -rf "$scratch"'
log=$scratch/log
www=$scratch/www
mkdir "$www"

ok() {
    passed=$((passed + 1))
    echo "http_tail: ok   - $1"
}

fail() {
    failed=$((failed + 1))
    echo "http_tail: FAIL - $1"
    if [ -s "$log" ]; then sed 's/^/    /' "$log"; fi
}

finish() {
    echo "http_tail: $passed passed, $failed failed, 0 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "http_tail $passed $failed 0" >>"$SB_TALLY"; fi
    if [ "$failed" -eq 0 ]; then exit 0; fi
    exit 1
}

if [ ! -x "$bin" ]; then
    : >"$log"
    fail "$bin is not built (libcurl is there, so it should be)"
    finish
fi

# Deterministic bytes: the same files on every run.
gen() {
    timeout -k 5 60 python3 -c 'import random, sys
sys.stdout.buffer.write(random.Random(int(sys.argv[2])).randbytes(int(sys.argv[1])))' "$1" "$2"
}
gen $((8 * 1024 * 1024 + 12345)) 1 >"$www/big.bin"    # spills past 5 MiB
gen 100000 2 >"$www/mid.bin"     # head and tail overlap
gen 1000 3 >"$www/small.bin"     # shorter than either range
: >"$www/empty.bin"

# The server, on a port the kernel picks; its first line names it.
: >"$scratch/server.log" # there to read before the server's redirect
timeout -k 5 300 python3 -u -m http.server --bind 127.0.0.1 0 --directory "$www" \
    >"$scratch/server.log" 2>&1 &
server=$!
port=
if sb_wait_for_line "$scratch/server.log" '^Serving HTTP on 127\.0\.0\.1 port [0-9]+' 10 "$server"; then
    port=$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9][0-9]*\).*/\1/p' \
        "$scratch/server.log")
fi
if [ -z "$port" ]; then
    cp "$scratch/server.log" "$log"
    fail "python3 -m http.server started on 127.0.0.1"
    finish
fi
url=http://127.0.0.1:$port

# run NAME ARGS...: http_tail, at most 60 s; stdout in $scratch/out.txt.
run() {
    sb_run timeout -k 5 60 "$bin" -t 50 "$@" >"$scratch/out.txt" 2>"$scratch/err.txt"
}

# fetch FILE [HEAD_BYTES]: download it, compare both ends with the file.
fetch() {
    file=$1
    n=${2:-65536}
    path=$www/$file
    size=$(wc -c <"$path" | tr -d ' ')
    name="$file ($size bytes, head $n)"
    rm -f "$scratch/got.head" "$scratch/got.tail"
    if run -n "$n" -o "$scratch/got" "$url/$file"; then
        rc=0
    else
        rc=$?
    fi
    cat "$scratch/out.txt" "$scratch/err.txt" >"$log"
    if [ $rc -ne 0 ]; then
        echo "exit status $rc" >>"$log"
        fail "$name: http_tail exits 0"
        return 0
    fi
    ok "$name: http_tail exits 0"
    len=$(sed -n 's/^  length  *\([0-9][0-9]*\) bytes.*/\1/p' "$scratch/out.txt")
    if [ "$len" = "$size" ] && grep -q '(Content-Length)' "$scratch/out.txt"; then
        ok "$name: it reports the length, from Content-Length"
    else
        fail "$name: it reports the length, from Content-Length"
    fi
    head -c "$n" "$path" >"$scratch/want.head"
    tail -c 65536 "$path" >"$scratch/want.tail"
    if cmp "$scratch/want.head" "$scratch/got.head" >>"$log" 2>&1; then
        ok "$name: the head it read is the file's first $n bytes"
    else
        fail "$name: the head it read is the file's first $n bytes"
    fi
    if cmp "$scratch/want.tail" "$scratch/got.tail" >>"$log" 2>&1; then
        ok "$name: the tail it read is the file's last 64 KiB"
    else
        fail "$name: the tail it read is the file's last 64 KiB"
    fi
}

fetch big.bin
fetch big.bin 100
fetch mid.bin
fetch small.bin
fetch empty.bin

# Failures are reported, not hung on.
expect_failure() {
    name=$1
    shift
    if run "$@"; then rc=0; else rc=$?; fi
    cat "$scratch/out.txt" "$scratch/err.txt" >"$log"
    echo "exit status $rc" >>"$log"
    if [ $rc -eq 1 ] && grep -q 'result   FAILED' "$scratch/out.txt"; then
        ok "$name: http_tail fails with status 1"
    else
        fail "$name: http_tail fails with status 1"
    fi
}

expect_failure "404" "$url/missing.bin"

kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=
expect_failure "connection refused" "$url/big.bin"

finish
