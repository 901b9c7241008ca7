#!/bin/sh
# SPDX-License-Identifier: MIT
# deps.sh - check every tool `make test` needs, and install what is missing.
#
# usage: tests/deps.sh [install] [GROUP...]
#   GROUP: test (the default: what `make test` runs), fuzz (clang and its
#   libFuzzer runtime, for `make fuzz`)
#   PYTHON: the interpreter the Python tests run under (default python3)
#
# Each tool is probed (a compile, an import, a command), not looked up by
# package name, so whatever provides it counts.  With `install`, as root on
# a Debian-like system, every missing package is installed in one apt-get
# call; otherwise it prints the one apt-get line to run and fails at once.
set -u
install=0
groups=""
for a in "$@"; do
    case $a in
    install) install=1 ;;
    *) groups="$groups $a" ;;
    esac
done
[ -n "$groups" ] || groups=test
CC=${CC:-cc}
PYTHON=${PYTHON:-python3}

missing=""  # packages
what=""     # tools, for the message
need() { missing="$missing $1"; what="$what $2"; }

compiles() { # compiles FLAGS... < source
    tmp=$(mktemp -d) || return 1
    cat >"$tmp/p.c"
    "$CC" "$tmp/p.c" -o "$tmp/p" "$@" >/dev/null 2>&1
    rc=$?
    rm -rf "$tmp"
    return $rc
}

check_test() {
    command -v make >/dev/null 2>&1 || need make make
    command -v "$CC" >/dev/null 2>&1 || need gcc "$CC"
    command -v g++ >/dev/null 2>&1 || need g++ g++
    command -v pkg-config >/dev/null 2>&1 || need pkg-config pkg-config
    { command -v readelf && command -v nm; } >/dev/null 2>&1 || need binutils readelf/nm
    printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\nint main(void){return 0;}\n' |
        compiles -lcmocka || need libcmocka-dev cmocka
    { printf '#include <curl/curl.h>\nint main(void){return 0;}\n' | compiles &&
        pkg-config --exists libcurl 2>/dev/null; } || need libcurl4-openssl-dev libcurl
    command -v spin >/dev/null 2>&1 || need spin spin
    command -v curl >/dev/null 2>&1 || need curl curl
    command -v openssl >/dev/null 2>&1 || need openssl openssl
    # The HTTP source's tests serve files with nginx (Debian keeps it in
    # /usr/sbin, which a user's PATH may lack).
    { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || need nginx-light nginx
    # No interpreter at all: Debian's, with what the tests use of it.
    if command -v "$PYTHON" >/dev/null 2>&1; then check_python
    else need "python3 python3-dev python3-pytest python3-pip python3-build python3-wheel python3-venv python3-mypy" "$PYTHON"; fi
}

# The Python tests build the module against $PYTHON's Python.h and run
# pytest (and pip, for the install test) under it; the packaging tests
# build the sdist and wheels offline (build, wheel), install them into a
# fresh venv (venv, whose ensurepip is python3-venv's) and check the stubs
# and the examples' types (mypy).  Debian's packages serve Debian's
# interpreter only (sys.prefix /usr): another one is told so.  The probes
# run from / (py), where nothing shadows a module: from the repository,
# "import build" found the build directory (a namespace package), so that
# python3-build was never installed once make had run.
py() {
    case $PYTHON in
    */*) pyabs=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON") ;;
    *) pyabs=$PYTHON ;;
    esac
    (cd / && "$pyabs" "$@")
}

check_python() {
    pyneed=""
    inc=$(py -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
    [ -n "$inc" ] && [ -f "$inc/Python.h" ] || pyneed="$pyneed python3-dev"
    py -c 'import pytest' >/dev/null 2>&1 || pyneed="$pyneed python3-pytest"
    py -c 'import setuptools, pip' >/dev/null 2>&1 || pyneed="$pyneed python3-pip"
    py -c 'import build' >/dev/null 2>&1 || pyneed="$pyneed python3-build"
    py -c 'import wheel' >/dev/null 2>&1 || pyneed="$pyneed python3-wheel"
    py -c 'import ensurepip, venv' >/dev/null 2>&1 || pyneed="$pyneed python3-venv"
    py -c 'import mypy.stubtest' >/dev/null 2>&1 || pyneed="$pyneed python3-mypy"
    [ -n "$pyneed" ] || return 0
    if "$PYTHON" -c 'import sys; sys.exit(sys.prefix != "/usr")' 2>/dev/null; then
        need "$pyneed" "Python.h/pytest/pip/build/wheel/venv/mypy"
        return 0
    fi
    echo "deps: $PYTHON ($(command -v "$PYTHON")) lacks what$pyneed would give" \
        "Debian's python3, and apt-get cannot add it to this interpreter;" \
        "run with PYTHON=/usr/bin/python3 (make test PYTHON=/usr/bin/python3)" >&2
    exit 1
}

check_fuzz() {
    if ! command -v clang >/dev/null 2>&1; then
        need "clang libclang-rt-dev" clang
        return
    fi
    # The runtime must match the clang that is there, whatever its version.
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' |
        CC=clang compiles -fsanitize=fuzzer,address,undefined && return
    major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
    if apt-cache show "libclang-rt-$major-dev" >/dev/null 2>&1; then
        need "libclang-rt-$major-dev" "clang-$major's runtime"
    else
        need libclang-rt-dev "clang's runtime"
    fi
}

for g in $groups; do
    case $g in
    test) check_test ;;
    fuzz) check_fuzz ;;
    *) echo "deps: unknown group $g" >&2; exit 2 ;;
    esac
done

[ -z "$missing" ] && exit 0
# shellcheck disable=SC2086 # word lists
set -- $missing
if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing (for$what)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@"; }; } ||
        { echo "deps: apt-get install$missing failed" >&2; exit 1; }
    exec "$0" $groups # check again: everything must be there now
fi
echo "deps: missing$what; install them with:" >&2
echo "    apt-get install$missing" >&2
exit 1
