# SPDX-License-Identifier: MIT
# shellcheck shell=sh disable=SC2154 # $nginx: the sourcing script sets it
# nginx.sh - sourced by the shell scripts that start a private nginx
# (tests/test_http.sh, tests/test_edge.sh, bench/http.sh): the two pieces
# every one of their configs needs.  $nginx must name the binary.

# A free port of 127.0.0.1: the kernel's pick, let go of just before nginx
# takes it (a race another process could win: then the caller tries again).
free_port() {
    timeout -k 2 10 "${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_temps DIR: the temp paths of the modules this nginx has, all under
# DIR, so that none points outside the scratch directory.
nginx_temps() {
    t="client_body_temp_path $1/body;"
    for m in proxy fastcgi uwsgi scgi; do
        if ! timeout -k 2 10 "$nginx" -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            t="$t ${m}_temp_path $1/$m;"
        fi
    done
    echo "$t"
}
