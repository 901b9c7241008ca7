# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# reap.sh - sourced by the shell tests (. tests/reap.sh): whatever a test
# starts ends with it, on every way out of it.
#
#   sb_on_exit 'COMMANDS'   on EXIT: end every process below this shell
#                           (sb_reap), then run COMMANDS (rm -rf ...); INT
#                           and TERM exit (130, 143), which runs EXIT.
#   (Safe under set -e.)
#   sb_reap                 the same, now: freeze the tree (SIGSTOP, swept
#                           until nothing new appears, so that nothing forks
#                           past the sweep), SIGTERM and SIGCONT all of it,
#                           wait up to SB_REAP_GRACE s (default 15, longer
#                           than the tests' timeout -k grace) for it to go,
#                           SIGKILL what is left, and wait for the children.
#   sb_wait_for_line FILE REGEX [SECONDS] [PID]
#                           until a line of FILE matches REGEX (grep -E) or,
#                           if given, PID has exited (a zombie counts as
#                           exited; then false); at most SECONDS (default
#                           20).  FILE may not exist yet.
#
# A trap runs only after the foreground command in progress has returned,
# so the tests run every long command under timeout -k in the background
# and `wait` for it, which a signal interrupts (sb_run).
#   sb_run COMMAND...       run COMMAND and return its status, at once on
#                           INT or TERM.  (sh starts it with SIGINT ignored;
#                           timeout(1), which the tests run it under, puts
#                           SIGINT back to its default for its command.)
# Processes are found in /proc (the ppid of each), which Linux always has.

# sb_below PID: every live process below PID, except the awk that lists them
# and the subshell that runs it.
sb_below() {
    awk -v root="$1" 'BEGIN {
        if ((getline self < "/proc/self/stat") > 0) { split(self, f, " "); me = f[1] }
        for (i = 1; i < ARGC; i++) {
            if ((getline line < ARGV[i]) > 0) {
                pid = line; sub(/ .*/, "", pid)
                sub(/.*\) /, "", line); split(line, f, " ")
                if (f[1] != "Z" && f[1] != "X") parent[pid] = f[2]
            }
            close(ARGV[i])
        }
        skip[me] = 1
        if (parent[me] != root) skip[parent[me]] = 1
        for (p in parent) {
            if (p in skip) continue
            q = parent[p]
            for (n = 0; n < 64 && q != root && (q in parent) && !(q in skip); n++) q = parent[q]
            if (q == root) print p
        }
        exit 0
    }' /proc/[0-9]*/stat 2>/dev/null
}

# sb_alive PID...: those of them that are still running (not zombies).
sb_alive() {
    for _sb_p in "$@"; do
        _sb_s=$(sed 's/.*) \(.\).*/\1/' "/proc/$_sb_p/stat" 2>/dev/null) || continue
        [ -n "$_sb_s" ] && [ "$_sb_s" != Z ] && [ "$_sb_s" != X ] && echo "$_sb_p"
    done
}

sb_reap() {
    _sb_all=
    _sb_round=0
    while [ "$_sb_round" -lt 20 ]; do
        _sb_round=$((_sb_round + 1))
        _sb_new=
        for _sb_p in $(sb_below $$); do
            case " $_sb_all " in *" $_sb_p "*) ;; *) _sb_new="$_sb_new $_sb_p" ;; esac
        done
        [ -n "$_sb_new" ] || break
        # shellcheck disable=SC2086 # pid lists
        kill -STOP $_sb_new 2>/dev/null || :
        _sb_all="$_sb_all$_sb_new"
    done
    [ -n "$_sb_all" ] || return 0
    # shellcheck disable=SC2086
    kill -TERM $_sb_all 2>/dev/null || :
    # shellcheck disable=SC2086
    kill -CONT $_sb_all 2>/dev/null || :
    _sb_i=0
    # shellcheck disable=SC2086
    while [ -n "$(sb_alive $_sb_all)" ]; do
        _sb_i=$((_sb_i + 1))
        if [ "$_sb_i" -gt $((${SB_REAP_GRACE:-15} * 20)) ]; then
            # shellcheck disable=SC2046,SC2086
            kill -KILL $(sb_alive $_sb_all) 2>/dev/null || :
            break
        fi
        sleep 0.05
    done
    wait 2>/dev/null || :
    return 0
}

sb_on_exit() {
    _sb_exit_cmds=$1
    trap 'sb_reap; eval "$_sb_exit_cmds"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

sb_run() {
    # sh gives a command it starts with & /dev/null as its input, before
    # any redirection of its own (even <&0): hand it ours through fd 9.
    exec 9<&0
    "$@" <&9 9<&- &
    _sb_fg=$!
    exec 9<&-
    wait "$_sb_fg"
}

sb_wait_for_line() {
    _sb_i=0
    while ! grep -qE -- "$2" "$1" 2>/dev/null; do
        if [ -n "${4:-}" ] && [ -z "$(sb_alive "$4")" ]; then
            grep -qE -- "$2" "$1" 2>/dev/null
            return
        fi
        _sb_i=$((_sb_i + 1))
        [ "$_sb_i" -gt $((${3:-20} * 20)) ] && return 1
        sleep 0.05
    done
}
