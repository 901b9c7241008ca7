#!/bin/sh
# SPDX-License-Identifier: MIT
# test_help.sh - every example behaves like a tool at its door: --help
# prints its usage on standard output, nothing on standard error, and
# exits 0; an unknown option prints the usage on standard error only and
# exits 2.
# usage: tests/test_help.sh PATH/TO/EXAMPLE...
set -u
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "help: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "help: FAIL - $1"; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbhelp.XXXXXX") || exit 1
# shellcheck source=tests/reap.sh
. "$(dirname "$0")/reap.sh"
sb_on_exit 'rm -rf "$scratch"'
for bin in "$@"; do
    name=$(basename "$bin")
    # Standard input is closed off: a program that ignored --help and
    # started on its input would see an empty stream, not hang on a tty.
    timeout -k 5 10 "$bin" --help >"$scratch/out" 2>"$scratch/err" </dev/null
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "^usage: .*$name" "$scratch/out" && [ ! -s "$scratch/err" ]; then
        ok "$name --help: usage on stdout, nothing on stderr, status 0"
    else
        fail "$name --help: usage on stdout, nothing on stderr, status 0 (got $rc)"
        sed 's/^/    out: /' "$scratch/out"
        sed 's/^/    err: /' "$scratch/err"
    fi
    timeout -k 5 10 "$bin" --no-such-option >"$scratch/out" 2>"$scratch/err" </dev/null
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q "^usage: .*$name" "$scratch/err" && [ ! -s "$scratch/out" ]; then
        ok "$name --no-such-option: usage on stderr only, status 2"
    else
        fail "$name --no-such-option: usage on stderr only, status 2 (got $rc)"
        sed 's/^/    out: /' "$scratch/out"
        sed 's/^/    err: /' "$scratch/err"
    fi
done
echo "help: $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "help $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
