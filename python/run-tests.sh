#!/bin/sh
# SPDX-License-Identifier: MIT
# run-tests.sh - pytest over python/tests, counted like tests/run.sh counts.
#
# usage: python/run-tests.sh PYTHON [PYTEST-ARGS...]     (from the top)
#   TIMEOUT    seconds for the whole run (default 300)
#   SB_TALLY   a file to append "python PASSED FAILED SKIPPED" to (make test)
#   SB_NO_SKIPS=1  a skipped test fails the run
# tests/conftest.py writes the counts; a run that crashes or times out
# before it can counts as one failure.
py=${1:?usage: run-tests.sh PYTHON [PYTEST-ARGS...]}
shift
if ! "$py" -c 'import pytest' >/dev/null 2>&1; then
    echo "python: $py has no pytest; run with PYTHON=/usr/bin/python3" \
        "(Debian's, with python3-pytest: tests/deps.sh install)"
    echo "python: 0 passed, 1 failed, 0 skipped"
    [ -n "${SB_TALLY:-}" ] && echo "python 0 1 0" >>"$SB_TALLY"
    exit 1
fi
counts=$(mktemp) || exit 1
trap 'rm -f "$counts"' EXIT
SB_PY_COUNTS=$counts PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} \
    timeout -k 10 "${TIMEOUT:-300}" "$py" -m pytest -p no:cacheprovider \
    -c python/pyproject.toml --rootdir python python/tests "$@"
rc=$?
p=0 f=0 s=0
if [ -s "$counts" ]; then
    read -r p f s <"$counts"
fi
[ "$rc" -eq 124 ] && echo "python: timed out after ${TIMEOUT:-300}s"
# pytest failed without a failed test to show for it: a crash, a timeout,
# an internal or usage error.
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "python: $p passed, $f failed, $s skipped"
[ -n "${SB_TALLY:-}" ] && echo "python $p $f $s" >>"$SB_TALLY"
[ "$rc" -eq 0 ] || exit 1
if [ "$s" -gt 0 ] && [ "${SB_NO_SKIPS:-0}" = 1 ]; then
    echo "python: $s skipped, and SB_NO_SKIPS=1 allows none"
    exit 1
fi
exit 0
