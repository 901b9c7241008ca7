#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cleanup.sh - a shell test killed midway leaves nothing behind.
#
# Runs the example tests (test_serve.sh, test_tee.sh, test_http_tail.sh)
# as `make test` does, each with a tag in its environment that every
# process it starts inherits, and kills it at a random point of its run:
# after a random number of its "ok" lines (or once the program it tests
# runs), so that its servers, clients and feeders are up.  SIGTERM goes to
# the script (a kill of make's child), SIGINT to its process group (Ctrl-C
# at a terminal, which reaches the script and its foreground children but
# not the commands under timeout, which are in groups of their own); each
# twice over the rounds.  Then:
#   - the script exits within 20 s (its trap does not hang on a child),
#   - no process with the tag is left, found by /proc/*/environ,
#   - its scratch directories are gone (its TMPDIR is left empty).
# Whatever a failed round leaves is killed here, and listed.
# usage: tests/test_cleanup.sh PATH/TO/serve PATH/TO/tee [PATH/TO/http_tail]
set -u
here=$(cd "$(dirname "$0")" && pwd)
serve=$1 tee=$2 http_tail=${3:-}
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "cleanup: ok   - $1"; }
fail() { failed=$((failed + 1)); echo "cleanup: FAIL - $1"; }
# shellcheck source=tests/reap.sh
. "$here/reap.sh"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbcleanup.XXXXXX") || exit 1
sb_on_exit 'rm -rf "$scratch"'
py=${PYTHON:-python3}
# The tests run from here: a session of their own, SIGINT by default.
fg='import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
os.execvp(sys.argv[2], sys.argv[2:])'

# tagged TAG: the processes whose environment holds SB_CLEANUP_TAG=TAG.
tagged() {
    for f in $(grep -lzxF "SB_CLEANUP_TAG=$1" /proc/[0-9]*/environ 2>/dev/null); do
        p=${f#/proc/}
        echo "${p%/environ}"
    done
}
# random N: a number from 1 to N.
random() { echo $(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1 + 1)); }

# started TAG NAME: whether a process tagged TAG runs the program NAME.
started() {
    for p in $(tagged "$1"); do
        case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
        *"/$2 "*) return 0 ;;
        esac
    done
    return 1
}

# round NAME SIGNAL POINT SCRIPT ARGS...: run SCRIPT tagged, in a session
# of its own, until POINT: it has printed that many "ok" lines, or (a
# name) a process of it runs that program; then send SIGNAL (TERM to the
# script, INT to its process group) and check what is left.
round() {
    name=$1 sig=$2 point=$3
    shift 3
    n=$((n + 1))
    tag=$scratch/$n
    mkdir "$tag"
    log=$tag.log
    : >"$log"
    # A process group of its own, as a terminal's foreground job has, and
    # SIGINT not ignored: sh ignores it in what it starts with &, and a
    # shell cannot trap a signal ignored when it started.
    t0=$(date +%s.%N)
    SB_CLEANUP_TAG=$tag TMPDIR=$tag timeout -k 5 120 "$py" -c "$fg" "$tag.pid" sh "$@" \
        >"$log" 2>&1 </dev/null &
    job=$!
    # The script's pid, which its process group is named by.
    if ! sb_wait_for_line "$tag.pid" '^[0-9]+$' 20 "$job"; then
        fail "$name: the test started"
        wait "$job"
        return
    fi
    pid=$(cat "$tag.pid")
    case $point in
    [0-9]*) what="$name: $sig after $point ok lines"; cond='[ "$(grep -c ": ok " "$log")" -ge "$point" ]' ;;
    *) what="$name: $sig while $point runs"; cond='started "$tag" "$point"' ;;
    esac
    i=0
    while ! eval "$cond"; do
        i=$((i + 1))
        if [ "$i" -gt 600 ] || [ -z "$(sb_alive "$pid")" ]; then
            fail "$what: the test did not get there"
            sed 's/^/    /' "$log"
            wait "$job"
            return
        fi
        sleep 0.05
    done
    if [ "$sig" = INT ]; then kill -INT "-$pid"; else kill -TERM "$pid"; fi
    # The script must exit by itself, soon: a watchdog kills it at 20 s.
    ( sleep 20 && kill -KILL "-$pid" ) 2>/dev/null &
    dog=$!
    s=$(date +%s.%N)
    wait "$job" # timeout passes the script's status on
    rc=$?
    secs=$(echo "$s $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
    upto=$(echo "$t0 $s" | awk '{ printf "%.1f", $2 - $1 }')
    kill "$dog" 2>/dev/null
    wait "$dog" 2>/dev/null
    left=$(tagged "$tag")
    want=143
    [ "$sig" = INT ] && want=130
    if [ "$rc" -eq "$want" ] && [ -z "$left" ] && [ -z "$(ls -A "$tag")" ]; then
        ok "$what (at $upto s): it exits in $secs s (status $rc), nothing of it is left"
    else
        fail "$what: exits by itself with status $want (got $rc after $secs s), leaves no process and no file"
        for p in $left; do
            echo "    left running: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
        done
        ls -A "$tag" | sed 's/^/    left in TMPDIR: /'
        sed 's/^/    /' "$log" | tail -n 5
        # shellcheck disable=SC2086
        [ -n "$left" ] && kill -KILL $left 2>/dev/null
    fi
}

n=0
# test_serve.sh: its first server, its feeder, curl and the Python clients
# are up from the first line on; the first lines are the live checks.
round serve TERM "$(random 4)" "$here/test_serve.sh" "$serve"
round serve INT "$(random 4)" "$here/test_serve.sh" "$serve"
# test_tee.sh: while tee copies (three outputs, under timeout).
round tee TERM "$(basename "$tee")" "$here/test_tee.sh" "$tee"
if [ -n "$http_tail" ] && [ -x "$http_tail" ]; then
    # test_http_tail.sh: python3's http.server from the first line on.
    round http_tail INT "$(random 4)" "$here/test_http_tail.sh" "$http_tail"
fi

echo "cleanup: $passed passed, $failed failed, 0 skipped"
if [ -n "${SB_TALLY:-}" ]; then echo "cleanup $passed $failed 0" >>"$SB_TALLY"; fi
[ "$failed" -eq 0 ]
