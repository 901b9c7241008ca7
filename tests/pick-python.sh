#!/bin/sh
# SPDX-License-Identifier: MIT
# pick-python.sh - print the interpreter the Python tests run under, when
# PYTHON was not given.
#
# python3 on PATH, if it has what the tests use (Python.h, pytest, pip and
# setuptools) or is Debian's own (sys.prefix /usr), whose packages apt-get
# can add.  Otherwise (say, pyenv's python3 without pytest, common on a
# developer's machine) Debian's /usr/bin/python3 if there is one, and one
# line on standard error says so.  With neither, python3, and tests/deps.sh
# says what to do.
set -u
py=python3
has_all() {
    "$1" -c '
import os, sys, sysconfig
import pytest, pip, setuptools
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
' >/dev/null 2>&1
}
is_debians() { "$1" -c 'import sys; sys.exit(sys.prefix != "/usr")' >/dev/null 2>&1; }
if ! command -v "$py" >/dev/null 2>&1 || has_all "$py" || is_debians "$py"; then
    echo "$py"
    exit 0
fi
if [ -x /usr/bin/python3 ] && is_debians /usr/bin/python3; then
    echo "python: $(command -v "$py") lacks pytest, pip or Python.h and apt-get" \
        "cannot add them to it; the Python tests use /usr/bin/python3 (set PYTHON to choose)" >&2
    echo /usr/bin/python3
    exit 0
fi
echo "$py"
