#!/bin/sh
# Make sure the test suite's one external dependency, cmocka, is installed.
# As root on Debian it installs libcmocka-dev; otherwise it says what to run.
set -e
probe() {
    printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\nint main(void){return 0;}\n' |
        ${CC:-cc} -x c - -o /dev/null -lcmocka >/dev/null 2>&1
}
probe && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing libcmocka-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q libcmocka-dev >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q libcmocka-dev >/dev/null; }
    probe && exit 0
fi
echo "deps: cmocka is missing; run: sudo apt-get install libcmocka-dev" >&2
exit 1
