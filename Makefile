# SPDX-License-Identifier: MIT
# streambuffer - plain Makefile.
#
#   make               build/libstreambuffer.a and build/libstreambuffer.so,
#                      and libstreambuffer_http (.a, .so) where libcurl is
#   make test          the newcomer's one command: make deps, then the suite
#                      plain, under ThreadSanitizer and under ASan+UBSan, the
#                      README's example, the install and example tests
#   make check         the suite in this build variant only; installs nothing
#   make deps          install what `make test` needs (as root on Debian),
#                      or print the one apt-get line that does
#   make tsan / asan   the suite under ThreadSanitizer / ASan+UBSan only
#   make valgrind      the suite under valgrind memcheck, leaks checked
#   make model         check model/wait.pml (src/wait.c's hand-off) and
#                      model/ready.pml (src/ready.c's list and fd) with spin
#   make fuzz          the libFuzzer targets for FUZZ_SECONDS each (default 60)
#   make http-test     libstreambuffer_http against nginx and a fault server,
#                      plain, under ASan+UBSan and under TSan (in make test)
#   make demo          build and run examples/fanout (the stress demo)
#   make bench         build and run the benchmark harness (BENCH_ARGS=...)
#   make bench-runs    RUNS=5 runs of it: each row's median ratio and range
#   make bench-http    sb_open_url against a local nginx at 100 MB/s a
#                      connection (bench/http.sh): far read, random reads,
#                      drain vs one libcurl client; the Python row too
#                      (RUNS=1, REPS=5, BENCH_HTTP_SIZE=1G by default)
#   make examples      build the examples
#   make install       PREFIX=/usr/local, DESTDIR= for staging; make uninstall
#   make clean
#
# Build variants live in their own directories (BUILD=...), so a sanitizer
# build never mixes objects with the normal one.  Within a variant, the
# release library (obj/) is built without the fault-injection seam; the
# tests link a second archive (tobj/, libstreambuffer-test.a) built with it.

# The version lives in the header only.
version_of = $(shell sed -n 's/^\#define SB_VERSION_$(1) \([0-9]*\)$$/\1/p' include/streambuffer.h)
VERSION_MAJOR := $(call version_of,MAJOR)
VERSION_MINOR := $(call version_of,MINOR)
VERSION_PATCH := $(call version_of,PATCH)
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

# SONAME policy: while the major version is 0, every minor release may
# break the ABI, so the soname carries the minor (libstreambuffer.so.0.MINOR)
# and a program built against 0.MINOR refuses to load 0.MINOR+1.  From 1.0
# on it is libstreambuffer.so.MAJOR, new symbols go into new version nodes
# of src/streambuffer.map, and only an ABI break bumps MAJOR.  The numbers
# are the header's; `make -s print-version` shows them.
SOVERSION := $(if $(filter 0,$(VERSION_MAJOR)),0.$(VERSION_MINOR),$(VERSION_MAJOR))
SONAME    := libstreambuffer.so.$(SOVERSION)
REALNAME  := libstreambuffer.so.$(VERSION)
MAPFILE   := src/streambuffer.map

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig

CC      ?= cc
BUILD   ?= build
SAN     ?=
TIMEOUT ?= 300
# The interpreter of the Python tests: PYTHON if given, else python3, or
# Debian's /usr/bin/python3 where python3 on PATH cannot get pytest (see
# tests/pick-python.sh).  Picked once, for the goals that use it, and
# exported so that the sub-makes of `make test` keep the choice.
ifeq ($(origin PYTHON),undefined)
ifneq ($(filter test deps python python-test bench-python bench-http,$(MAKECMDGOALS)),)
PYTHON := $(shell sh tests/pick-python.sh)
endif
endif
PYTHON  ?= python3
export PYTHON

WARN     := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion \
            -Wmissing-prototypes -Wstrict-prototypes
override CPPFLAGS += -D_GNU_SOURCE -Iinclude
CFLAGS   ?= -O2 -g
DEPFLAGS := -MMD -MP
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer \
              -fno-sanitize-recover=all)
LIBFLAGS := -fPIC -fvisibility=hidden
LDLIBS   := -lpthread

LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TLIB_OBJ := $(patsubst src/%.c,$(BUILD)/tobj/%.o,$(LIB_SRC))
STATIC   := $(BUILD)/libstreambuffer.a
SHARED   := $(BUILD)/libstreambuffer.so
TSTATIC  := $(BUILD)/libstreambuffer-test.a

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_LIB := tests/helpers.c tests/fixture.c tests/stream.c tests/seek.c
TEST_LIB_OBJ := $(patsubst tests/%.c,$(BUILD)/tests/lib/%.o,$(TEST_LIB))

# cases_http.c is sbbench_http's alone: the core harness has no libcurl.
BENCH_SRC := $(filter-out bench/cases_http.c,$(wildcard bench/*.c))
BENCH_BIN := $(BUILD)/bench/sbbench
BENCH_HTTP_BIN := $(BUILD)/bench/sbbench_http

# http_tail needs libcurl; without it the other examples still build.
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null)
EXAMPLE_SRC := $(wildcard examples/*.c)
ifeq ($(CURL_LIBS),)
EXAMPLE_SRC := $(filter-out examples/http_tail.c,$(EXAMPLE_SRC))
endif
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

# The HTTP source, libstreambuffer_http: its own library over libcurl and
# the core, with its own header, map and .pc; built where pkg-config knows
# libcurl (the core never depends on it).  Its soname follows the core's.
HTTP_SRC      := $(wildcard src/http/*.c)
HTTP_OBJ      := $(patsubst src/http/%.c,$(BUILD)/obj/http/%.o,$(HTTP_SRC))
HTTP_STATIC   := $(BUILD)/libstreambuffer_http.a
HTTP_SHARED   := $(BUILD)/libstreambuffer_http.so
HTTP_SONAME   := libstreambuffer_http.so.$(SOVERSION)
HTTP_REALNAME := libstreambuffer_http.so.$(VERSION)
HTTP_MAP      := src/http/streambuffer_http.map
HTTP_LIBS     := $(if $(CURL_LIBS),$(HTTP_STATIC) $(HTTP_SHARED))
HTTP_TEST     := $(BUILD)/tests/http/test_http

.PHONY: all lib test check tsan asan valgrind fuzz deps examples demo bench bench-runs bench-http \
	install uninstall install-test examples-test serve-asan quickstart model clean FORCE \
	http-lib http-check http-test http-parts install-http
.DELETE_ON_ERROR:

all: lib
lib: $(STATIC) $(SHARED) $(HTTP_LIBS)
http-lib: $(HTTP_STATIC) $(HTTP_SHARED)

# The version, the soname and the file name of the shared library, as the
# header's SB_VERSION_* make them.
.PHONY: print-version
print-version:
	@echo "version $(VERSION), soname $(SONAME), $(REALNAME)"

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(LIBFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/tobj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSB_FAULT_INJECTION $(WARN) $(CFLAGS) $(SANFLAGS) \
		$(LIBFLAGS) $(DEPFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(TSTATIC): $(TLIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# -z defs: every symbol the library uses must come from a library it names.
$(BUILD)/$(REALNAME): $(LIB_OBJ) $(MAPFILE)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=$(MAPFILE) -Wl,-z,defs -o $@ $(LIB_OBJ) $(LDLIBS)

$(SHARED): $(BUILD)/$(REALNAME)
	ln -sf $(REALNAME) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(BUILD)/obj/http/%.o: src/http/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CURL_CFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(LIBFLAGS) \
		$(DEPFLAGS) -c $< -o $@

$(HTTP_STATIC): $(HTTP_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Linked against the core's shared library by its soname, and libcurl.
$(BUILD)/$(HTTP_REALNAME): $(HTTP_OBJ) $(HTTP_MAP) $(BUILD)/$(REALNAME)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(HTTP_SONAME) \
		-Wl,--version-script=$(HTTP_MAP) -Wl,-z,defs -o $@ $(HTTP_OBJ) \
		$(BUILD)/$(REALNAME) $(CURL_LIBS) $(LDLIBS)

$(HTTP_SHARED): $(BUILD)/$(HTTP_REALNAME) $(SHARED)
	ln -sf $(HTTP_REALNAME) $(BUILD)/$(HTTP_SONAME)
	ln -sf $(HTTP_SONAME) $@

$(BUILD)/streambuffer-http.pc: FORCE
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: streambuffer-http' \
		'Description: an HTTP(S) URL as a seekable streambuffer source' \
		'Version: $(VERSION)' 'Requires: streambuffer' \
		'Requires.private: libcurl' 'Libs: -L$${libdir} -lstreambuffer_http' \
		'Cflags: -I$${includedir}' > $@

# Always regenerated: it records PREFIX, which may differ from the last run.
$(BUILD)/streambuffer.pc: FORCE
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: streambuffer' \
		'Description: many threads, one byte stream, random access' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lstreambuffer' \
		'Libs.private: -lpthread' 'Cflags: -I$${includedir}' > $@

# As root into the running system (no DESTDIR), refresh the loader's
# cache, or the README's example would not find the new library.
install: lib $(BUILD)/streambuffer.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/streambuffer.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(REALNAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libstreambuffer.so
	install -m 644 $(BUILD)/streambuffer.pc $(DESTDIR)$(PCDIR)/
ifneq ($(CURL_LIBS),)
	$(MAKE) --no-print-directory install-http
endif
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
		echo ldconfig; ldconfig; \
	fi

# The HTTP library: installed with the core where libcurl is there.
install-http: $(HTTP_LIBS) $(BUILD)/streambuffer-http.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/streambuffer_http.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(HTTP_STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(HTTP_REALNAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(HTTP_REALNAME) $(DESTDIR)$(LIBDIR)/$(HTTP_SONAME)
	ln -sf $(HTTP_SONAME) $(DESTDIR)$(LIBDIR)/libstreambuffer_http.so
	install -m 644 $(BUILD)/streambuffer-http.pc $(DESTDIR)$(PCDIR)/

# Removes what install made, then the directories that are left empty:
# under a DESTDIR all of them (the staging tree was made by install); in
# the running system only the pkgconfig directory, so that an empty
# /usr/local/include that the system shipped stays where it was.
uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/streambuffer.h \
		$(DESTDIR)$(LIBDIR)/libstreambuffer.a \
		$(DESTDIR)$(LIBDIR)/$(REALNAME) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libstreambuffer.so \
		$(DESTDIR)$(PCDIR)/streambuffer.pc \
		$(DESTDIR)$(INCLUDEDIR)/streambuffer_http.h \
		$(DESTDIR)$(LIBDIR)/libstreambuffer_http.a \
		$(DESTDIR)$(LIBDIR)/$(HTTP_REALNAME) $(DESTDIR)$(LIBDIR)/$(HTTP_SONAME) \
		$(DESTDIR)$(LIBDIR)/libstreambuffer_http.so \
		$(DESTDIR)$(PCDIR)/streambuffer-http.pc
	-@rmdir $(DESTDIR)$(PCDIR) 2>/dev/null || true
	-@if [ -n "$(DESTDIR)" ]; then \
		for d in $(INCLUDEDIR) $(LIBDIR) $(PREFIX); do \
			rmdir -p "$(DESTDIR)$$d" 2>/dev/null || true; \
		done; \
	fi

# Tests link the fault-injection archive, so they exercise the objects
# built here and may use the internal seams declared in src/*.h.
# The tests' shared helpers are compiled once per build, not into each test.
$(BUILD)/tests/lib/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSB_FAULT_INJECTION -Isrc $(WARN) $(CFLAGS) $(SANFLAGS) \
		$(DEPFLAGS) -c $< -o $@

# Named only by the pattern rule below, they would count as intermediate
# and be deleted after each build, so that the next `make check` built them
# and relinked every test again.
.SECONDARY: $(TEST_LIB_OBJ)

$(BUILD)/tests/%: tests/%.c $(TEST_LIB_OBJ) $(TSTATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSB_FAULT_INJECTION -Isrc $(WARN) $(CFLAGS) $(SANFLAGS) \
		$(DEPFLAGS) $(LDFLAGS) -o $@ $< $(TEST_LIB_OBJ) $(TSTATIC) -lcmocka $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(DEPFLAGS) $(LDFLAGS) \
		-o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/examples/http_tail: examples/http_tail.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CURL_CFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(DEPFLAGS) \
		$(LDFLAGS) -o $@ $< $(STATIC) $(CURL_LIBS) $(LDLIBS)

# serve's --url (an edge server) is libstreambuffer_http's sb_open_url:
# built in where libcurl is, as http_tail is; without it serve still
# builds, and --url says why it is not there.
ifneq ($(CURL_LIBS),)
$(BUILD)/examples/serve: examples/serve.c $(HTTP_STATIC) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSERVE_HTTP $(WARN) $(CFLAGS) $(SANFLAGS) $(DEPFLAGS) \
		$(LDFLAGS) -o $@ $< $(HTTP_STATIC) $(STATIC) $(CURL_LIBS) $(LDLIBS)
endif

examples: $(EXAMPLE_BIN)

# The harness uses the public API only, plus the baselines it measures
# against in the same run.
$(BENCH_BIN): $(BENCH_SRC) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ \
		$(BENCH_SRC) $(STATIC) $(LDLIBS) -lm

# The serve case measures the serve example: built with the harness.
bench: $(BENCH_BIN) $(BUILD)/examples/serve
	$(BENCH_BIN) $(BENCH_ARGS)

# The figures to publish: RUNS runs, each row's median ratio and range.
RUNS ?= 5
bench-runs: $(BENCH_BIN) $(BUILD)/examples/serve
	@sh bench/runs.sh $(RUNS) $(BENCH_BIN) $(BENCH_ARGS)

# The HTTP source against nginx, in a scratch directory: bench/http.sh
# makes the file, starts the server and runs sbbench_http RUNS times (one
# unless RUNS is given), then bench/http_python.py beside each run.  The
# Python module is built if it can be (make python); without it, or
# without from_url, that row is skipped.  Not part of make test.
$(BENCH_HTTP_BIN): $(BENCH_SRC) bench/cases_http.c $(wildcard bench/*.h) \
		include/streambuffer_http.h $(HTTP_STATIC) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSBBENCH_HTTP $(CURL_CFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) \
		$(LDFLAGS) -o $@ $(BENCH_SRC) bench/cases_http.c $(HTTP_STATIC) $(STATIC) \
		$(CURL_LIBS) $(LDLIBS) -lm

HTTP_RUNS := $(if $(filter command line environment,$(origin RUNS)),$(RUNS),1)
REPS ?= 5
bench-http:
	@test -n "$(CURL_LIBS)" || { echo "bench-http: libcurl's development files are" \
		"missing (make deps)" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(BENCH_HTTP_BIN)
	@$(MAKE) --no-print-directory python || echo "bench-http: no Python module," \
		"the Python row is skipped" >&2
	@RUNS=$(HTTP_RUNS) REPS=$(REPS) PYTHON=$(PYTHON) sh bench/http.sh $(BENCH_HTTP_BIN)

demo: $(BUILD)/examples/fanout
	$(BUILD)/examples/fanout

# Checks every tool `make test` uses; installs the missing ones in one go
# as root on Debian, else prints the apt-get line and fails.
deps:
	@PYTHON=$(PYTHON) ./tests/deps.sh install


check: $(TEST_BIN)
	@TIMEOUT=$(TIMEOUT) ./tests/run.sh "$(if $(SAN),$(SAN),plain)" $(TEST_BIN)

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread check

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined check

# memcheck over the plain build; SB_VALGRIND=1 tells tests that depend on
# timing or on resource limits valgrind changes to say so and skip.
valgrind: $(TEST_BIN)
	@command -v valgrind >/dev/null || \
		{ echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
	@SB_VALGRIND=1 TIMEOUT=$$(($(TIMEOUT) * 4)) \
	RUNNER="valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --track-fds=no" \
	./tests/run.sh valgrind $(TEST_BIN)

# The HTTP source against real servers (tests/test_http.sh: its own nginx
# and tests/http/faultserver.py on 127.0.0.1): plain, under ASan+UBSan and
# under ThreadSanitizer, one server set for the three.  http-check: this
# build variant only.
$(BUILD)/tests/http/%: tests/http/%.c $(HTTP_STATIC) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CURL_CFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(DEPFLAGS) \
		$(LDFLAGS) -o $@ $< $(HTTP_STATIC) $(STATIC) -lcmocka $(CURL_LIBS) $(LDLIBS)

http-check: $(if $(CURL_LIBS),$(HTTP_TEST))
	@TIMEOUT=$(TIMEOUT) sh ./tests/test_http.sh "$(if $(SAN),$(SAN),plain)=$(HTTP_TEST)"

# test_http (the source alone, sb_open_url on one stream) and
# test_http_parts (sb_open_url with the core's parts: far reads, drops
# resumed, fallback, seams, close in flight), each in the three variants.
HTTP_BINS = tests/http/test_http tests/http/test_http_parts
http-test:
	@if [ -n "$(CURL_LIBS)" ]; then \
		$(MAKE) --no-print-directory $(addprefix $(BUILD)/,$(HTTP_BINS)) && \
		$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined \
			$(addprefix build/asan/,$(HTTP_BINS)) && \
		$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread \
			$(addprefix build/tsan/,$(HTTP_BINS)); \
	fi
	@TIMEOUT=$(TIMEOUT) sh ./tests/test_http.sh \
		plain=$(BUILD)/tests/http/test_http,$(BUILD)/tests/http/test_http_parts \
		address,undefined=build/asan/tests/http/test_http,build/asan/tests/http/test_http_parts \
		thread=build/tsan/tests/http/test_http,build/tsan/tests/http/test_http_parts

# The parts tests alone, in this build variant.
http-parts: $(BUILD)/tests/http/test_http_parts
	@TIMEOUT=$(TIMEOUT) sh ./tests/test_http.sh "$(if $(SAN),$(SAN),plain)=$<"

# Installs into a scratch DESTDIR and builds programs with pkg-config only.
install-test:
	@sh ./tests/test_install.sh

# --help of every example; http_tail against a local HTTP server; tee in
# bounded space; serve to curl and Python clients: ranges live and ended,
# keep-alive, 1,000 at once; serve --url, the edge server, between an
# nginx upstream and clients (and an nginx reverse proxy); then those
# tests killed midway, which must leave no process and no file behind.
examples-test: $(EXAMPLE_BIN)
	@sh ./tests/test_help.sh $(EXAMPLE_BIN)
	@sh ./tests/test_http_tail.sh $(BUILD)/examples/http_tail
	@sh ./tests/test_tee.sh $(BUILD)/examples/tee
	@sh ./tests/test_serve.sh $(BUILD)/examples/serve
	@sh ./tests/test_edge.sh $(BUILD)/examples/serve
	@sh ./tests/test_cleanup.sh $(BUILD)/examples/serve $(BUILD)/examples/tee \
		$(if $(CURL_LIBS),$(BUILD)/examples/http_tail)

# The server again, built with ASan and UBSan: its one thread, the
# library's producer under it, every client path of tests/test_serve.sh;
# and with --url (libstreambuffer_http's fetchers under it too), every
# path of tests/test_edge.sh.
serve-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined \
		build/asan/examples/serve
	@ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" \
	UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" SB_PART=serve-asan \
		sh ./tests/test_serve.sh build/asan/examples/serve
	@ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" \
	UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" SB_PART=edge-asan \
		sh ./tests/test_edge.sh build/asan/examples/serve

# The waiter hand-off of src/wait.c and the ready list of src/ready.c,
# model-checked with spin.
model:
	@sh ./tests/test_model.sh $(BUILD)
	@sh ./model/ready.sh $(BUILD)

# The README's first example, built from examples/quickstart.c (which the
# README shows) and run on a pipe.
quickstart: $(BUILD)/examples/quickstart
	@sh ./tests/test_quickstart.sh $(BUILD)/examples/quickstart

# Every part, the model check in the background beside the rest, each
# built with -j and its binaries run several at once (tests/all.sh).  Each
# part appends its counts to $(TALLY) and its times to $(TIMES); the last
# lines sum the counts and name the five slowest tests.
TALLY := build/tally
TIMES := build/times
test: deps
	@mkdir -p build && rm -f $(TALLY) $(TIMES)
	@SB_TALLY=$(CURDIR)/$(TALLY) SB_TIMES=$(CURDIR)/$(TIMES) MAKE="$(MAKE)" \
		sh ./tests/all.sh

# The fuzz targets build the library's sources themselves with clang's
# libFuzzer, ASan and UBSan: fuzz_sb (a producer thread per input),
# fuzz_push (push mode from one thread, no thread per input) and
# fuzz_ranged (a seekable source: parts, extents, seams); fuzz_serve
# builds examples/serve's request parser (examples/serve_parse.h) alone.
# New inputs go to build/fuzz/corpus (fuzz_sb), build/fuzz/corpus_push,
# build/fuzz/corpus_ranged and build/fuzz/corpus_serve; the seeds kept in
# the repo are tests/fuzz/corpus, tests/fuzz/corpus_push, corpus_ranged
# and corpus_serve (corpus_push and corpus_serve written by
# tests/fuzz/make_corpus.py and make_corpus_serve.py).  `make fuzz` runs
# each of the four targets for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BIN     := build/fuzz/fuzz_sb
FUZZ_PUSH    := build/fuzz/fuzz_push
FUZZ_RANGED  := build/fuzz/fuzz_ranged
FUZZ_DEPS    := tests/fuzz/fuzz_common.h $(LIB_SRC) $(wildcard src/*.h) include/streambuffer.h
$(FUZZ_BIN) $(FUZZ_PUSH) $(FUZZ_RANGED): build/fuzz/%: tests/fuzz/%.c $(FUZZ_DEPS)
	@command -v $(FUZZ_CC) >/dev/null || \
		{ echo "$(FUZZ_CC) is missing: apt-get install clang libclang-rt-dev" >&2; exit 1; }
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) -DSB_FAULT_INJECTION -DSB_CHECK_INVARIANTS -Isrc -std=c11 -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $< $(LIB_SRC) $(LDLIBS)

FUZZ_SERVE   := build/fuzz/fuzz_serve
$(FUZZ_SERVE): tests/fuzz/fuzz_serve.c examples/serve_parse.h
	@command -v $(FUZZ_CC) >/dev/null || \
		{ echo "$(FUZZ_CC) is missing: apt-get install clang libclang-rt-dev" >&2; exit 1; }
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) -Iexamples -std=c11 -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $<

fuzz: $(FUZZ_BIN) $(FUZZ_PUSH) $(FUZZ_RANGED) $(FUZZ_SERVE)
	@mkdir -p build/fuzz/corpus build/fuzz/corpus_push build/fuzz/corpus_ranged build/fuzz/corpus_serve
	@sh ./tests/fuzz/run.sh $(FUZZ_SERVE) $(FUZZ_SECONDS) build/fuzz/corpus_serve tests/fuzz/corpus_serve
	@sh ./tests/fuzz/run.sh $(FUZZ_PUSH) $(FUZZ_SECONDS) build/fuzz/corpus_push tests/fuzz/corpus_push
	@sh ./tests/fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS) build/fuzz/corpus tests/fuzz/corpus
	@sh ./tests/fuzz/run.sh $(FUZZ_RANGED) $(FUZZ_SECONDS) build/fuzz/corpus_ranged tests/fuzz/corpus_ranged

clean:
	rm -rf build

include python/python.mk

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tobj/*.d $(BUILD)/tests/*.d $(BUILD)/tests/lib/*.d \
	$(BUILD)/examples/*.d $(BUILD)/obj/http/*.d $(BUILD)/tests/http/*.d)
