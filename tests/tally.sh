#!/bin/sh
# SPDX-License-Identifier: MIT
# The closing line of `make test`: the counts every part of it appended to
# the tally file (tests/run.sh and the shell tests), summed.
# usage: tally.sh FILE      (SB_NO_SKIPS=1: any skip fails)
tally=$1
[ -s "$tally" ] || { echo "tally: nothing was counted"; exit 1; }
awk -v noskips="${SB_NO_SKIPS:-0}" '
    { p += $2; f += $3; s += $4; parts = parts sep $1; sep = ", " }
    END {
        printf "make test: %d passed, %d failed, %d skipped (%s)\n", p, f, s, parts
        exit (f > 0 || (s > 0 && noskips == 1)) ? 1 : 0
    }' "$tally"
