#!/bin/sh
# SPDX-License-Identifier: MIT
# test_install.sh - install like a system library, then use it like a user.
#
# Builds the library in a scratch directory, runs `make install` into a
# scratch DESTDIR (PREFIX=/usr/local), and checks what landed there: the
# header, the static archive, the shared library with its soname and
# symlinks, streambuffer.pc, the exported symbols, and the version in all
# of them.  Then it compiles small C and C++ programs with nothing but
# `pkg-config` flags (PKG_CONFIG_SYSROOT_DIR/PKG_CONFIG_LIBDIR point into the
# DESTDIR), links them against the shared library and against the static
# archive, proves from `readelf -d` which one each binary uses, and runs
# them.  Where libcurl's development files are, the same for
# libstreambuffer_http (its header, libraries, soname, symbols and version
# node, streambuffer-http.pc, a program built with it).  Last, `make
# uninstall` must leave no file behind.
#
# usage: tests/test_install.sh      (CC, CXX as usual; needs pkg-config,
#                                    readelf, nm, a C++ compiler)
# Prints one line per check and "install: N passed, M failed"; exits 1 if
# anything failed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
CXX=${CXX:-g++}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sbinstall.XXXXXX")
# shellcheck source=tests/reap.sh
. "$root/tests/reap.sh"
sb_on_exit 'rm -rf "$scratch"'
log=$scratch/log
passed=0
failed=0

ok() {
    passed=$((passed + 1))
    echo "install: ok   - $1"
}

fail() {
    failed=$((failed + 1))
    echo "install: FAIL - $1"
    if [ -s "$log" ]; then sed 's/^/    /' "$log"; fi
}

# check NAME COMMAND...: run COMMAND, output to $log; pass if it succeeds.
check() {
    name=$1
    shift
    if "$@" >"$log" 2>&1; then ok "$name"; else fail "$name"; fi
}

finish() {
    echo "install: $passed passed, $failed failed, 0 skipped"
    if [ -n "${SB_TALLY:-}" ]; then echo "install $passed $failed 0" >>"$SB_TALLY"; fi
    if [ "$failed" -eq 0 ]; then exit 0; fi
    exit 1
}

# Run make on the repository, untouched by the make (if any) that runs us:
# no inherited command-line variables, sanitizer or build directory.
run_make() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u SAN \
        -u BUILD -u CFLAGS -u CPPFLAGS -u LDFLAGS -u DESTDIR -u PREFIX \
        -u LIBDIR -u INCLUDEDIR -u PCDIR \
        timeout -k 10 600 make --no-print-directory -C "$root" BUILD="$scratch/build" "$@" &
    wait $! # interrupted by a signal, unlike a foreground command
}

for tool in pkg-config readelf nm make "$CC" "$CXX"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        : >"$log"
        fail "$tool is not installed; it is needed to check the install"
        finish
    fi
done

# ---- the version, from the header -------------------------------------------

hdr=$root/include/streambuffer.h
macro() { sed -n "s/^#define SB_VERSION_$1 \\([0-9][0-9]*\\)\$/\\1/p" "$hdr"; }
major=$(macro MAJOR)
minor=$(macro MINOR)
patch=$(macro PATCH)
version=$(sed -n 's/^#define SB_VERSION "\(.*\)"$/\1/p' "$hdr")
echo "SB_VERSION \"$version\", macros $major.$minor.$patch" >"$log"
if [ -n "$major" ] && [ -n "$minor" ] && [ -n "$patch" ] &&
    [ "$version" = "$major.$minor.$patch" ]; then
    ok "SB_VERSION ($version) agrees with SB_VERSION_MAJOR/MINOR/PATCH"
else
    fail "SB_VERSION agrees with SB_VERSION_MAJOR/MINOR/PATCH"
fi

# ---- make install --------------------------------------------------------------

dest=$scratch/root
prefix=/usr/local
lib=$dest$prefix/lib
inc=$dest$prefix/include
real=libstreambuffer.so.$version
# While the version is 0.x every minor release may break the ABI: the
# soname carries the minor.  From 1.0 on, the major alone.
if [ "$major" = 0 ]; then sover=0.$minor; else sover=$major; fi
soname=libstreambuffer.so.$sover

if run_make PREFIX=$prefix DESTDIR="$dest" install >"$log" 2>&1; then
    ok "make install PREFIX=$prefix DESTDIR=..."
else
    fail "make install PREFIX=$prefix DESTDIR=..."
    finish
fi

check "header installed, identical to include/streambuffer.h" \
    cmp "$hdr" "$inc/streambuffer.h"
check "static archive installed" test -f "$lib/libstreambuffer.a"
check "shared library installed as $real (a file)" \
    sh -c "test -f '$lib/$real' && ! test -L '$lib/$real'"
check "$soname -> $real" \
    sh -c "test -L '$lib/$soname' && test \"\$(readlink '$lib/$soname')\" = '$real'"
check "libstreambuffer.so -> ... -> $real" \
    sh -c "test -L '$lib/libstreambuffer.so' &&
           test \"\$(readlink -f '$lib/libstreambuffer.so')\" = \"\$(readlink -f '$lib/$real')\""
check "streambuffer.pc installed in lib/pkgconfig" \
    test -f "$lib/pkgconfig/streambuffer.pc"

readelf -d "$lib/$real" >"$scratch/dyn" 2>&1 || true
if grep -q "(SONAME).*\[$soname\]" "$scratch/dyn"; then
    ok "SONAME is $soname"
else
    cp "$scratch/dyn" "$log"
    fail "SONAME is $soname"
fi

# ---- exported symbols --------------------------------------------------------------

sed -n 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]\(sb_[a-z0-9_]*\)(.*/\1/p' "$hdr" |
    sort -u >"$scratch/api"
# (The version node itself shows as an absolute symbol; versions cut off.)
nm -D --defined-only "$lib/$real" | awk 'NF >= 3 && $2 != "A" { print $3 }' |
    sed 's/@.*//' | sort -u >"$scratch/exported"
{
    echo "exported, not sb_*:"
    grep -v '^sb_' "$scratch/exported" || true
    echo "exported sb__* (internal):"
    grep '^sb__' "$scratch/exported" || true
} >"$log"
if grep -v '^sb_' "$scratch/exported" >/dev/null ||
    grep '^sb__' "$scratch/exported" >/dev/null; then
    fail "the shared library exports only public sb_* symbols"
else
    ok "the shared library exports only public sb_* symbols"
fi
if diff "$scratch/api" "$scratch/exported" >"$log" 2>&1; then
    ok "it exports exactly the $(wc -l <"$scratch/api" | tr -d ' ') functions the header declares"
else
    fail "it exports exactly the functions the header declares (< header, > library)"
fi
# Every export carries the version node of the map, named after the
# version while it is 0.x; the map lists exactly the header's functions.
node=$(sed -n 's/^\(STREAMBUFFER_[0-9.]*\) {.*/\1/p' "$root/src/streambuffer.map" | tail -n 1)
if [ "$major" = 0 ]; then want_node=STREAMBUFFER_0.$minor; else want_node=STREAMBUFFER_$major.0; fi
echo "map node: $node, expected: $want_node" >"$log"
if [ "$node" = "$want_node" ]; then
    ok "src/streambuffer.map's version node is $want_node"
else
    fail "src/streambuffer.map's version node is $want_node"
fi
sed -n 's/^ *\(sb_[a-z0-9_]*\);$/\1/p' "$root/src/streambuffer.map" | sort -u >"$scratch/map"
if diff "$scratch/api" "$scratch/map" >"$log" 2>&1; then
    ok "the map lists exactly the functions the header declares"
else
    fail "the map lists exactly the functions the header declares (< header, > map)"
fi
objdump -T "$lib/$real" | awk '$NF ~ /^sb_/ && $(NF-1) !~ /STREAMBUFFER_/ { print }' >"$log"
if [ -s "$log" ] || ! objdump -T "$lib/$real" | grep -q "$want_node.*sb_pread\$"; then
    fail "every exported function carries the version $want_node"
else
    ok "every exported function carries the version $want_node"
fi
# The fault-injection seam is built into the tests' archive only.
{ nm "$lib/libstreambuffer.a"; nm -D "$lib/$real"; } 2>/dev/null | grep 'sb__fault' >"$log" || true
if [ -s "$log" ]; then
    fail "the installed libraries have no fault-injection seam"
else
    ok "the installed libraries have no fault-injection seam"
fi
nm -g --defined-only "$lib/libstreambuffer.a" | awk 'NF == 3 { print $3 }' |
    grep -v '^sb_' >"$log" || true
if [ -s "$log" ]; then
    fail "the static archive defines only sb_-prefixed globals"
else
    ok "the static archive defines only sb_-prefixed globals"
fi

# ---- pkg-config ------------------------------------------------------------------

unset PKG_CONFIG_PATH
PKG_CONFIG_SYSROOT_DIR=$dest
PKG_CONFIG_LIBDIR=$lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

pcver=$(pkg-config --modversion streambuffer 2>"$log" || true)
if [ "$pcver" = "$version" ]; then
    ok "pkg-config --modversion streambuffer is $version"
else
    echo "got '$pcver'" >>"$log"
    fail "pkg-config --modversion streambuffer is $version"
fi
# (Read from the file: pkg-config would prepend the sysroot.)
pcprefix=$(sed -n 's/^prefix=//p' "$lib/pkgconfig/streambuffer.pc")
: >"$log"
if [ "$pcprefix" = "$prefix" ]; then
    ok "streambuffer.pc has prefix=$prefix (not the DESTDIR)"
else
    echo "got '$pcprefix'" >>"$log"
    fail "streambuffer.pc has prefix=$prefix (not the DESTDIR)"
fi
cflags=$(pkg-config --cflags streambuffer)
libs=$(pkg-config --libs streambuffer)
static_libs=$(pkg-config --static --libs streambuffer)
echo "cflags: $cflags" >"$log"
echo "libs: $libs" >>"$log"
echo "static libs: $static_libs" >>"$log"
case " $cflags $libs " in
*" -I$inc "*" -L$lib "*) ok "pkg-config flags point into the install" ;;
*) fail "pkg-config flags point into the install" ;;
esac

# ---- the header alone, as C99, C11 and C++11 --------------------------------------

src=$scratch/src
mkdir "$src"
# Every declaration used, the header included twice, nothing else included
# before it and no feature-test macros: it must be self-contained.
cat >"$src/header.c" <<'EOF'
#include <streambuffer.h>
#include <streambuffer.h>

typedef ssize_t (*pread_fn)(sb_buffer *, void *, size_t, uint64_t);
static pread_fn const pread_ptr = sb_pread;
static sb_buffer *(*const opens[])(const sb_options *) = {sb_open_writer};
static const sb_source src_init = {0, 0, 0, 0, 0, 0, 0, {0}};
static const sb_options opt_init = {0, 0, 0, 0, 0, 0, 0, SB_RELEASE, 0,
                                    0, 0, 0, {0}};
static const sb_stats stats_init = {0, 0, 0, 0, 0, 0, SB_RUNNING, 0,
                                    0, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0, 0, 0, 0, 0, 0, {0}};

int header_use(void);
int header_use(void)
{
    sb_source src = src_init;
    sb_options opt = opt_init;
    sb_stats st = stats_init;
    enum sb_state s = SB_ENDED;
    sb_buffer *b = sb_open(&src, &opt);
    FILE *f = sb_fopen(b);
    (void)f;
    (void)opens;
    (void)sb_open_fd(0, &opt);
    (void)sb_open_mem("", 0, 0);
    (void)sb_write(b, "", 0);
    (void)sb_finish(b, 0);
    (void)pread_ptr(b, &st, sizeof st, 0);
    (void)sb_pread_timed(b, &st, sizeof st, 0, -1);
    (void)sb_available(b);
    (void)sb_get_stats(b, &st);
    (void)sb_wait_end(b, 0);
    sb_reader *r = sb_reader_open(b, sb_floor(b));
    (void)sb_reader_pread(r, &st, sizeof st, 0);
    (void)sb_reader_pread_timed(r, &st, sizeof st, 0, 0);
    (void)sb_reader_release(r, 1);
    (void)sb_reader_fopen(r);
    sb_reader_close(r);
    sb_cancel(b);
    sb_close(b);
    return (int)s + SB_FAILED + SB_VERSION_NUMBER + (sb_version()[0] == SB_VERSION[0]);
}
EOF
for std in c99 c11; do
    # shellcheck disable=SC2086 # flag lists
    check "the header compiles as -std=$std -Wall -Wextra -Wpedantic -Werror" \
        $CC -std=$std -Wall -Wextra -Wpedantic -Werror $cflags \
        -c "$src/header.c" -o "$scratch/header_$std.o"
done
# shellcheck disable=SC2086
check "the header compiles with -Wshadow -Wconversion -Wstrict-prototypes too" \
    $CC -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion \
    -Wstrict-prototypes -Werror $cflags -c "$src/header.c" -o "$scratch/h.o"

# ---- a program that uses the library --------------------------------------------

# Exits 0 only if the library behaves and is the version of its header;
# prints sb_version().  No threads of its own: its only link flags are
# pkg-config's.
cat >"$src/use.c" <<'EOF'
#include <streambuffer.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    static const char msg[] = "hello, streambuffer\nsecond line\n";
    const size_t len = sizeof msg - 1;
    char buf[64], ver[32];
    int bad = 0;

    snprintf(ver, sizeof ver, "%d.%d.%d", SB_VERSION_MAJOR, SB_VERSION_MINOR,
             SB_VERSION_PATCH);
    bad |= strcmp(ver, SB_VERSION) != 0;
    bad |= (strcmp(sb_version(), SB_VERSION) != 0) << 1;
    bad |= (SB_VERSION_NUMBER != SB_VERSION_MAJOR * 10000 +
                                     SB_VERSION_MINOR * 100 +
                                     SB_VERSION_PATCH) << 2;

    sb_buffer *m = sb_open_mem(msg, len, NULL);
    bad |= (m == NULL) << 3;
    if (m != NULL) {
        bad |= (sb_pread(m, buf, 12, 7) != 12 || memcmp(buf, "streambuffer", 12)
                != 0) << 4;
        sb_close(m);
    }

    sb_options o = {0};
    o.mem_limit = 8; /* spill: the file part works too */
    sb_buffer *w = sb_open_writer(&o);
    bad |= (w == NULL) << 5;
    if (w != NULL) {
        uint64_t total = 0;
        bad |= (sb_write(w, msg, 10) != 10 ||
                sb_write(w, msg + 10, len - 10) != (ssize_t)(len - 10) ||
                sb_finish(w, 0) != 0 || sb_wait_end(w, &total) != 0 ||
                total != len) << 6;
        FILE *f = sb_fopen(w);
        bad |= (f == NULL) << 7;
        if (f != NULL) {
            bad |= (fgets(buf, sizeof buf, f) == NULL ||
                    strcmp(buf, "hello, streambuffer\n") != 0 ||
                    fgets(buf, sizeof buf, f) == NULL ||
                    strcmp(buf, "second line\n") != 0 ||
                    fgets(buf, sizeof buf, f) != NULL || !feof(f)) << 8;
            fclose(f);
        }
        sb_close(w);
    }
    printf("%s\n", sb_version());
    if (bad)
        fprintf(stderr, "use: failed checks, mask %#x\n", (unsigned)bad);
    return bad != 0;
}
EOF

ld_path=$lib
# run_prog NAME BINARY [LD_LIBRARY_PATH]: runs it; it must exit 0 and print
# the header's version.
run_prog() {
    if [ -n "${3:-}" ]; then
        out=$(LD_LIBRARY_PATH=$3 timeout -k 5 60 "$2" 2>"$log") || { fail "$1"; return 0; }
    else
        out=$(env -u LD_LIBRARY_PATH timeout -k 5 60 "$2" 2>"$log") || { fail "$1"; return 0; }
    fi
    if [ "$out" = "$version" ]; then
        ok "$1"
    else
        echo "printed '$out', expected '$version'" >>"$log"
        fail "$1"
    fi
}

needed() { readelf -d "$1" 2>/dev/null | grep '(NEEDED)' || true; }

# Shared.
# shellcheck disable=SC2086
if $CC -std=c11 -Wall -Wextra -Wpedantic -Werror "$src/use.c" -o "$scratch/use_shared" \
    $cflags $libs >"$log" 2>&1; then
    ok "cc use.c \$(pkg-config --cflags --libs streambuffer)"
    needed "$scratch/use_shared" >"$log"
    if grep -q "\[$soname\]" "$log"; then
        ok "the binary NEEDs $soname"
    else
        fail "the binary NEEDs $soname"
    fi
    LD_LIBRARY_PATH=$ld_path ldd "$scratch/use_shared" >"$log" 2>&1 || true
    if grep -q "$soname => $lib/$soname" "$log"; then
        ok "with LD_LIBRARY_PATH it loads the installed $soname"
    else
        fail "with LD_LIBRARY_PATH it loads the installed $soname"
    fi
    run_prog "it runs against the installed shared library" \
        "$scratch/use_shared" "$ld_path"
else
    fail "cc use.c \$(pkg-config --cflags --libs streambuffer)"
fi

# Static archive, everything else dynamic: -Bstatic around pkg-config's
# --static libs makes the linker take libstreambuffer.a although the .so
# sits next to it.
# shellcheck disable=SC2086
if $CC -std=c11 -Wall -Wextra -Wpedantic -Werror "$src/use.c" -o "$scratch/use_static" \
    $cflags -Wl,-Bstatic $static_libs -Wl,-Bdynamic >"$log" 2>&1; then
    ok "cc use.c \$(pkg-config --cflags) -Wl,-Bstatic \$(pkg-config --static --libs) -Wl,-Bdynamic"
    needed "$scratch/use_static" >"$log"
    if [ -s "$log" ] && ! grep -q libstreambuffer "$log"; then
        ok "that binary is dynamic but NEEDs no libstreambuffer"
    else
        fail "that binary is dynamic but NEEDs no libstreambuffer"
    fi
    nm "$scratch/use_static" >"$scratch/syms" 2>&1 || true
    if grep -q ' T sb_pread$' "$scratch/syms" && grep -q ' T sb_open_writer$' "$scratch/syms"; then
        ok "the library's code is inside it (T sb_pread, T sb_open_writer)"
    else
        : >"$log"
        fail "the library's code is inside it (T sb_pread, T sb_open_writer)"
    fi
    run_prog "it runs with no LD_LIBRARY_PATH" "$scratch/use_static"
else
    fail "cc use.c ... -Wl,-Bstatic \$(pkg-config --static --libs) -Wl,-Bdynamic"
fi

# Fully static.
# shellcheck disable=SC2086
if $CC -static -std=c11 "$src/use.c" -o "$scratch/use_full_static" \
    $cflags $static_libs >"$log" 2>&1; then
    ok "cc -static use.c \$(pkg-config --static --cflags --libs streambuffer)"
    needed "$scratch/use_full_static" >"$log"
    if [ ! -s "$log" ]; then
        ok "that binary NEEDs no shared library at all"
    else
        fail "that binary NEEDs no shared library at all"
    fi
    run_prog "it runs" "$scratch/use_full_static"
else
    fail "cc -static use.c \$(pkg-config --static --cflags --libs streambuffer)"
fi

# ---- C++ -----------------------------------------------------------------------

cat >"$src/use.cpp" <<'EOF'
#include <streambuffer.h>

#include <cstdio>
#include <cstring>
#include <string>

int main()
{
    const std::string msg = "from C++\nline two\n";
    sb_buffer *b = sb_open_writer(nullptr);
    if (b == nullptr)
        return 1;
    int bad = sb_write(b, msg.data(), msg.size()) !=
              static_cast<ssize_t>(msg.size());
    bad |= sb_finish(b, 0) != 0;
    char buf[16] = {};
    bad |= sb_pread(b, buf, 8, 0) != 8 || std::strcmp(buf, "from C++") != 0;
    std::FILE *f = sb_fopen(b);
    bad |= f == nullptr;
    if (f != nullptr) {
        char line[32];
        bad |= std::fgets(line, sizeof line, f) == nullptr ||
               std::string(line) != "from C++\n";
        std::fclose(f);
    }
    sb_stats st;
    bad |= sb_get_stats(b, &st) != 0 || st.state != SB_ENDED ||
           st.filled != msg.size();
    sb_close(b);
    bad |= std::string(sb_version()) != SB_VERSION;
    std::printf("%s\n", sb_version());
    return bad;
}
EOF
# shellcheck disable=SC2086
if $CXX -std=c++11 -Wall -Wextra -Wpedantic -Werror "$src/use.cpp" \
    -o "$scratch/use_cpp" $cflags $libs >"$log" 2>&1; then
    ok "g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror use.cpp \$(pkg-config ...) links (extern \"C\")"
    run_prog "the C++ program runs" "$scratch/use_cpp" "$ld_path"
else
    fail "g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror use.cpp \$(pkg-config ...) links (extern \"C\")"
fi

# ---- another PREFIX, same build directory ----------------------------------------

# `make install` a second time with another PREFIX must not reuse the
# first .pc: its paths would point to the old prefix.
dest2=$scratch/root2
prefix2=/opt/sbalt
if run_make PREFIX=$prefix2 DESTDIR="$dest2" install >"$log" 2>&1; then
    got=$(sed -n 's/^prefix=//p' "$dest2$prefix2/lib/pkgconfig/streambuffer.pc" \
        2>"$log" || true)
    if [ "$got" = "$prefix2" ]; then
        ok "reinstalling with PREFIX=$prefix2 gives a .pc with prefix=$prefix2"
    else
        echo "streambuffer.pc says prefix=$got" >>"$log"
        fail "reinstalling with PREFIX=$prefix2 gives a .pc with prefix=$prefix2"
    fi
else
    fail "make install PREFIX=$prefix2 DESTDIR=... (second install)"
fi

# ---- a packager's flags -----------------------------------------------------------

# CPPFLAGS on the command line adds to the project's own (it used to
# replace -Iinclude); LDFLAGS reaches every link.
if run_make BUILD="$scratch/build2" CPPFLAGS=-DNDEBUG \
    LDFLAGS=-Wl,-rpath,/sb-ldflags-check lib examples >"$log" 2>&1; then
    ok "make CPPFLAGS=-DNDEBUG LDFLAGS=... lib examples builds"
    readelf -d "$scratch/build2/$real" >"$log" 2>&1 || true
    if grep -q 'sb-ldflags-check' "$log"; then
        ok "LDFLAGS reaches the shared library's link"
    else
        fail "LDFLAGS reaches the shared library's link"
    fi
    readelf -d "$scratch/build2/examples/quickstart" >"$log" 2>&1 || true
    if grep -q 'sb-ldflags-check' "$log"; then
        ok "LDFLAGS reaches the examples' link"
    else
        fail "LDFLAGS reaches the examples' link"
    fi
else
    fail "make CPPFLAGS=-DNDEBUG LDFLAGS=... lib examples builds"
fi

# ---- the README's compile line -----------------------------------------------------

# README: cc prog.c $(pkg-config --cflags --libs streambuffer), then run it
# (here with LD_LIBRARY_PATH, as the install is staged, not in ld.so's path).
# shellcheck disable=SC2046
if $CC "$root/examples/quickstart.c" $(pkg-config --cflags --libs streambuffer) \
    -o "$scratch/quickstart" >"$log" 2>&1; then
    ok "cc examples/quickstart.c \$(pkg-config --cflags --libs streambuffer)"
    out=$(printf 'hello, installed library' |
        LD_LIBRARY_PATH=$lib timeout -k 5 60 "$scratch/quickstart" 2>"$log") || true
    case $out in
    *"24 bytes in all"*) ok "the README's example runs against the installed library" ;;
    *) echo "$out" >>"$log"; fail "the README's example runs against the installed library" ;;
    esac
else
    fail "cc examples/quickstart.c \$(pkg-config --cflags --libs streambuffer)"
fi

# ---- libstreambuffer_http (where libcurl's development files are) -----------------

# Installed with the core by the same `make install`: its header, both
# libraries with the core's soname policy, its .pc, exactly the functions
# its header declares under its own version node, and a program built with
# nothing but `pkg-config streambuffer-http`.  libcurl's .pc is the
# system's: its directories come after the install's.
syspc=$(env -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_LIBDIR \
    pkg-config --variable pc_path pkg-config 2>/dev/null || true)
hpc() { PKG_CONFIG_LIBDIR=$lib/pkgconfig:$syspc pkg-config "$@"; }
if hpc --exists libcurl 2>/dev/null; then
    hhdr=$root/include/streambuffer_http.h
    hreal=libstreambuffer_http.so.$version
    hsoname=libstreambuffer_http.so.$sover
    hmap=$root/src/http/streambuffer_http.map
    check "streambuffer_http.h installed, identical to include/streambuffer_http.h" \
        cmp "$hhdr" "$inc/streambuffer_http.h"
    check "libstreambuffer_http.a installed" test -f "$lib/libstreambuffer_http.a"
    check "$hsoname -> $hreal, libstreambuffer_http.so -> ... -> $hreal" \
        sh -c "test -f '$lib/$hreal' && ! test -L '$lib/$hreal' &&
               test \"\$(readlink '$lib/$hsoname')\" = '$hreal' &&
               test \"\$(readlink -f '$lib/libstreambuffer_http.so')\" = \"\$(readlink -f '$lib/$hreal')\""
    check "streambuffer-http.pc installed in lib/pkgconfig" \
        test -f "$lib/pkgconfig/streambuffer-http.pc"
    readelf -d "$lib/$hreal" >"$scratch/hdyn" 2>&1 || true
    cp "$scratch/hdyn" "$log"
    if grep -q "(SONAME).*\[$hsoname\]" "$scratch/hdyn"; then
        ok "libstreambuffer_http's SONAME is $hsoname"
    else
        fail "libstreambuffer_http's SONAME is $hsoname"
    fi
    if grep -q "(NEEDED).*\[$soname\]" "$scratch/hdyn" &&
        grep -q "(NEEDED).*\[libcurl" "$scratch/hdyn"; then
        ok "libstreambuffer_http NEEDs $soname and libcurl"
    else
        fail "libstreambuffer_http NEEDs $soname and libcurl"
    fi
    # The core keeps no dependency on libcurl.
    readelf -d "$lib/$real" >"$log" 2>&1 || true
    if grep -q 'libcurl' "$log"; then
        fail "libstreambuffer does not NEED libcurl"
    else
        ok "libstreambuffer does not NEED libcurl"
    fi
    sed -n 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]\(sb_[a-z0-9_]*\)(.*/\1/p' "$hhdr" |
        sort -u >"$scratch/hapi"
    nm -D --defined-only "$lib/$hreal" | awk 'NF >= 3 && $2 != "A" { print $3 }' |
        sed 's/@.*//' | sort -u >"$scratch/hexported"
    if [ -s "$scratch/hapi" ] && diff "$scratch/hapi" "$scratch/hexported" >"$log" 2>&1; then
        ok "libstreambuffer_http exports exactly the $(wc -l <"$scratch/hapi" | tr -d ' ') functions its header declares"
    else
        fail "libstreambuffer_http exports exactly the functions its header declares (< header, > library)"
    fi
    sed -n 's/^ *\(sb_[a-z0-9_]*\);$/\1/p' "$hmap" | sort -u >"$scratch/hmapped"
    if diff "$scratch/hapi" "$scratch/hmapped" >"$log" 2>&1; then
        ok "its map lists exactly the functions its header declares"
    else
        fail "its map lists exactly the functions its header declares (< header, > map)"
    fi
    # Its node is the core's with HTTP_: STREAMBUFFER_HTTP_0.MINOR while 0.x.
    hnode=$(sed -n 's/^\(STREAMBUFFER_HTTP_[0-9.]*\) {.*/\1/p' "$hmap" | tail -n 1)
    want_hnode=STREAMBUFFER_HTTP_${want_node#STREAMBUFFER_}
    objdump -T "$lib/$hreal" |
        awk -v n="$want_hnode" '$NF ~ /^sb_/ && $0 !~ /UND/ && $(NF-1) != n { print }' >"$log"
    echo "map node: $hnode, expected: $want_hnode" >>"$log"
    if [ "$hnode" = "$want_hnode" ] && ! grep -q 'sb_' "$log" &&
        objdump -T "$lib/$hreal" | grep -q "$want_hnode.*sb_open_url\$"; then
        ok "every function it exports carries the version $want_hnode"
    else
        fail "every function it exports carries the version $want_hnode"
    fi
    nm -g --defined-only "$lib/libstreambuffer_http.a" | awk 'NF == 3 { print $3 }' |
        grep -v '^sb_' >"$log" || true
    if [ -s "$log" ]; then
        fail "libstreambuffer_http.a defines only sb_-prefixed globals"
    else
        ok "libstreambuffer_http.a defines only sb_-prefixed globals"
    fi

    hver=$(hpc --modversion streambuffer-http 2>"$log" || true)
    if [ "$hver" = "$version" ]; then
        ok "pkg-config --modversion streambuffer-http is $version"
    else
        echo "got '$hver'" >>"$log"
        fail "pkg-config --modversion streambuffer-http is $version"
    fi
    hflags="$(hpc --cflags streambuffer-http 2>"$log") $(hpc --libs streambuffer-http 2>>"$log")"
    echo "flags: $hflags" >>"$log"
    case " $hflags " in
    *" -lstreambuffer_http -lstreambuffer "*)
        ok "pkg-config --libs streambuffer-http gives -lstreambuffer_http -lstreambuffer" ;;
    *) fail "pkg-config --libs streambuffer-http gives -lstreambuffer_http -lstreambuffer" ;;
    esac
    : >"$log"
    if grep -q '^Requires.private:.*libcurl' "$lib/pkgconfig/streambuffer-http.pc" &&
        grep -q '^Requires: *streambuffer$' "$lib/pkgconfig/streambuffer-http.pc"; then
        ok "streambuffer-http.pc: Requires streambuffer, Requires.private libcurl"
    else
        cp "$lib/pkgconfig/streambuffer-http.pc" "$log"
        fail "streambuffer-http.pc: Requires streambuffer, Requires.private libcurl"
    fi

    # No server: a bad URL and a refused connection are enough to prove
    # that the library is there and works.  Prints sb_version().
    cat >"$src/use_http.c" <<'EOF'
#include <streambuffer_http.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int bad = 0;
    errno = 0;
    bad |= (sb_open_url("not a url", NULL, NULL) != NULL || errno != EINVAL);
    sb_source src;
    bad |= (sb_http_source("http://127.0.0.1/x", NULL, &src) != 0 ||
            src.open_at == NULL || src.read != NULL) << 1;
    if (!(bad & 2))
        src.close(src.ctx);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return 3;
    close(fd); /* nothing listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    errno = 0;
    bad |= (sb_open_url(url, NULL, NULL) != NULL || errno != ECONNREFUSED) << 2;
    printf("%s\n", sb_version());
    if (bad)
        fprintf(stderr, "use_http: failed checks, mask %#x\n", (unsigned)bad);
    return bad != 0;
}
EOF
    # shellcheck disable=SC2046
    if $CC -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Wpedantic -Werror "$src/use_http.c" \
        -o "$scratch/use_http" $(hpc --cflags --libs streambuffer-http) >"$log" 2>&1; then
        ok "cc use_http.c \$(pkg-config --cflags --libs streambuffer-http)"
        needed "$scratch/use_http" >"$log"
        if grep -q "\[$hsoname\]" "$log" && grep -q "\[$soname\]" "$log"; then
            ok "that binary NEEDs $hsoname and $soname"
        else
            fail "that binary NEEDs $hsoname and $soname"
        fi
        run_prog "it runs against the installed libraries" "$scratch/use_http" "$ld_path"
    else
        fail "cc use_http.c \$(pkg-config --cflags --libs streambuffer-http)"
    fi
else
    : >"$log"
    echo "install: libcurl's development files are missing: libstreambuffer_http not checked"
    if [ "${SB_NO_SKIPS:-0}" = 1 ]; then
        fail "libcurl's development files are there (SB_NO_SKIPS=1 allows no skip)"
    fi
fi

# ---- make uninstall --------------------------------------------------------------

if run_make PREFIX=$prefix DESTDIR="$dest" uninstall >"$log" 2>&1; then
    ok "make uninstall"
    find "$dest" ! -type d >"$log" 2>/dev/null || true
    if [ -s "$log" ]; then
        fail "make uninstall removes every installed file"
    else
        ok "make uninstall removes every installed file"
    fi
    find "$dest" -mindepth 1 -type d >"$log" 2>/dev/null || true
    if [ -s "$log" ]; then
        fail "make uninstall removes the directories install made, now empty"
    else
        ok "make uninstall removes the directories install made, now empty"
    fi
else
    fail "make uninstall"
fi

finish
