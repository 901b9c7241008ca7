#!/bin/sh
# SPDX-License-Identifier: MIT
# test_serve.sh - examples/serve streams standard input, while it is still
# arriving, to several curl clients at once, each from the start; every
# client gets exactly the input.
# usage: tests/test_serve.sh PATH/TO/serve      (needs curl)
set -u
bin=$1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "serve: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "serve: FAIL - $1"; }
finish() {
    echo "serve: $passed passed, $failed failed, 0 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "serve $passed $failed 0" >>"$SB_TALLY"; fi
    [ "$failed" -eq 0 ]
    exit
}
command -v curl >/dev/null 2>&1 || { fail "curl is not installed (apt-get install curl)"; finish; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbserve.XXXXXX") || exit 1
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$scratch"' EXIT
export TMPDIR=$scratch

head -c 24000000 /dev/urandom >"$scratch/in"
mkfifo "$scratch/feed"
# The input arrives in three parts, with pauses: the clients connect while
# most of it is still to come.
{
    head -c 1000000 "$scratch/in"
    sleep 0.5
    tail -c +1000001 "$scratch/in" | head -c 11000000
    sleep 0.5
    tail -c +12000001 "$scratch/in"
} >"$scratch/feed" &
feeder=$!
timeout 120 "$bin" -n 4 -m 2000000 <"$scratch/feed" 2>"$scratch/log" &
server=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$scratch/log")
    [ -n "$port" ] && break
    sleep 0.05
done
if [ -z "$port" ]; then
    fail "serve prints the port it listens on"
    cat "$scratch/log"
    finish
fi
ok "serve listens on 127.0.0.1:$port"
pids=
for k in 1 2 3 4; do
    timeout 120 curl -s -o "$scratch/out$k" "http://127.0.0.1:$port/" &
    pids="$pids $!"
done
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
wait "$feeder"
if wait "$server"; then ok "serve exits after its 4 clients"; else fail "serve exits after its 4 clients"; fi
server=
[ "$bad" -eq 0 ] && ok "4 concurrent curl clients succeed" || fail "4 concurrent curl clients succeed ($bad failed)"
same=0
for k in 1 2 3 4; do cmp -s "$scratch/in" "$scratch/out$k" && same=$((same + 1)); done
if [ "$same" -eq 4 ]; then
    ok "each of the 4 clients got the 24 MB input exactly, from the start"
else
    fail "each of the 4 clients got the 24 MB input exactly ($same of 4 did)"
fi
finish
