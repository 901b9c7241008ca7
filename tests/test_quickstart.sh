#!/bin/sh
# SPDX-License-Identifier: MIT
# test_quickstart.sh - the README's first example, built from
# examples/quickstart.c, on a pipe: its output must be the bytes at 0 and at
# 1 MiB of the input and its length.  Also checks that the README shows
# that file exactly, so the example a newcomer reads is the one tested.
# usage: tests/test_quickstart.sh PATH/TO/quickstart
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "quickstart: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "quickstart: FAIL - $1"; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbquick.XXXXXX") || exit 1
# shellcheck source=tests/reap.sh
. "$root/tests/reap.sh"
sb_on_exit 'rm -rf "$scratch"'

yes abcdefghijklmnopqrstuvwxyz0123456789 | tr -d '\n' | head -c 3000000 >"$scratch/in"
{
    printf 'at 1 MiB: %s\n' "$(tail -c +1048577 "$scratch/in" | head -c 16)"
    printf 'at 0: %s\n' "$(head -c 16 "$scratch/in")"
    echo "3000000 bytes in all"
} | sort >"$scratch/want"
if cat "$scratch/in" | timeout -k 5 60 "$bin" | sort >"$scratch/got" 2>&1 &&
    cmp -s "$scratch/want" "$scratch/got"; then
    ok "quickstart < 3 MB pipe prints the bytes at 0, at 1 MiB, and the length"
else
    fail "quickstart < 3 MB pipe prints the bytes at 0, at 1 MiB, and the length"
    diff "$scratch/want" "$scratch/got" | sed 's/^/    /'
fi

# A short stream: the far read gets nothing, the rest still works.
printf 'hello, streambuffer' >"$scratch/short"
printf 'at 0: hello, streambuf\nat 1 MiB: \n19 bytes in all\n' | sort >"$scratch/want"
if timeout -k 5 60 "$bin" <"$scratch/short" | sort >"$scratch/got" &&
    cmp -s "$scratch/want" "$scratch/got"; then
    ok "quickstart < 19-byte file: short reads, length 19"
else
    fail "quickstart < 19-byte file: short reads, length 19"
    diff "$scratch/want" "$scratch/got" | sed 's/^/    /'
fi

# The README's C block under "Use" is examples/quickstart.c, verbatim.
awk '/^## Use/ { on = 1 } on && /^```c$/ { c = 1; next } c && /^```$/ { exit } c' \
    "$root/README.md" >"$scratch/readme.c"
if cmp -s "$scratch/readme.c" "$root/examples/quickstart.c"; then
    ok "README.md shows examples/quickstart.c as it is"
else
    fail "README.md shows examples/quickstart.c as it is"
    diff "$root/examples/quickstart.c" "$scratch/readme.c" | sed 's/^/    /' | head -20
fi

echo "quickstart: $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "quickstart $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ]
