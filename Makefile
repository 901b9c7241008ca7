# streambuffer - plain Makefile.
#
#   make               build/libstreambuffer.a and build/libstreambuffer.so
#   make test          the cmocka suite normally, under ThreadSanitizer, and
#                      under AddressSanitizer + UBSan; then install-test and
#                      examples-test
#   make check         the suite in this build variant only
#   make tsan          the suite under ThreadSanitizer only
#   make asan          the suite under AddressSanitizer + UBSan only
#   make valgrind      the suite under valgrind memcheck, leaks checked
#   make fuzz          the libFuzzer target for FUZZ_SECONDS (default 60)
#   make demo          build and run examples/fanout
#   make bench         build and run the benchmark harness (BENCH_ARGS=...)
#   make examples      build the examples
#   make install       PREFIX=/usr/local, DESTDIR= for staging; make uninstall
#   make clean
#
# Build variants live in their own directories (BUILD=...), so a sanitizer
# build never mixes objects with the normal one.

# The version lives in the header only.
version_of = $(shell sed -n 's/^\#define SB_VERSION_$(1) \([0-9]*\)$$/\1/p' include/streambuffer.h)
VERSION_MAJOR := $(call version_of,MAJOR)
VERSION_MINOR := $(call version_of,MINOR)
VERSION_PATCH := $(call version_of,PATCH)
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig

CC      ?= cc
BUILD   ?= build
SAN     ?=
TIMEOUT ?= 300

WARN     := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion
CPPFLAGS += -D_GNU_SOURCE -Iinclude
CFLAGS   ?= -O2 -g
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer \
              -fno-sanitize-recover=all)
LIBFLAGS := -fPIC -fvisibility=hidden
LDLIBS   := -lpthread

SONAME   := libstreambuffer.so.$(VERSION_MAJOR)
LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
STATIC   := $(BUILD)/libstreambuffer.a
SHARED   := $(BUILD)/libstreambuffer.so

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_LIB := $(wildcard tests/helpers.c)

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BUILD)/bench/sbbench

# http_tail needs libcurl; without it the other examples still build.
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null)
EXAMPLE_SRC := $(wildcard examples/*.c)
ifeq ($(CURL_LIBS),)
EXAMPLE_SRC := $(filter-out examples/http_tail.c,$(EXAMPLE_SRC))
endif
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all lib test check tsan asan valgrind fuzz deps examples demo bench \
	install uninstall install-test examples-test clean FORCE
.DELETE_ON_ERROR:

all: lib
lib: $(STATIC) $(SHARED)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/streambuffer.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(LIBFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/$(SONAME).$(VERSION_MINOR).$(VERSION_PATCH): $(LIB_OBJ)
	$(CC) $(CFLAGS) $(SANFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(SHARED): $(BUILD)/$(SONAME).$(VERSION_MINOR).$(VERSION_PATCH)
	ln -sf $(notdir $<) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# Always regenerated: it records PREFIX, which may differ from the last run.
$(BUILD)/streambuffer.pc: FORCE
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' '' 'Name: streambuffer' \
		'Description: many threads, one byte stream, random access' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lstreambuffer' \
		'Libs.private: -lpthread' 'Cflags: -I$${includedir}' > $@

install: lib $(BUILD)/streambuffer.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/streambuffer.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(SONAME).$(VERSION_MINOR).$(VERSION_PATCH) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME).$(VERSION_MINOR).$(VERSION_PATCH) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libstreambuffer.so
	install -m 644 $(BUILD)/streambuffer.pc $(DESTDIR)$(PCDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/streambuffer.h \
		$(DESTDIR)$(LIBDIR)/libstreambuffer.a \
		$(DESTDIR)$(LIBDIR)/$(SONAME).$(VERSION_MINOR).$(VERSION_PATCH) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libstreambuffer.so \
		$(DESTDIR)$(PCDIR)/streambuffer.pc

# Tests link the static library, so they exercise exactly the objects built
# here, and may use the internal seams declared in src/*.h.
$(BUILD)/tests/%: tests/%.c $(TEST_LIB) tests/helpers.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< $(TEST_LIB) \
		$(STATIC) -lcmocka $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/examples/http_tail: examples/http_tail.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CURL_CFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< \
		$(STATIC) $(CURL_LIBS) $(LDLIBS)

examples: $(EXAMPLE_BIN)

# The harness uses the public API only, plus the baselines it measures
# against in the same run.
$(BENCH_BIN): $(BENCH_SRC) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $(BENCH_SRC) $(STATIC) \
		$(LDLIBS) -lm

bench: $(BENCH_BIN)
	$(BENCH_BIN) $(BENCH_ARGS)

demo: $(BUILD)/examples/fanout
	$(BUILD)/examples/fanout

# cmocka is the one thing the suite needs that a fresh Debian lacks.
deps:
	@./tests/deps.sh

check: deps $(TEST_BIN)
	@TIMEOUT=$(TIMEOUT) ./tests/run.sh "$(if $(SAN),$(SAN),plain)" $(TEST_BIN)

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread check

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined check

# memcheck over the plain build; SB_VALGRIND=1 tells tests that depend on
# timing or on resource limits valgrind changes to say so and skip.
valgrind: deps $(TEST_BIN)
	@SB_VALGRIND=1 TIMEOUT=$$(($(TIMEOUT) * 4)) \
	RUNNER="valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --track-fds=no" \
	./tests/run.sh valgrind $(TEST_BIN)

# Installs into a scratch DESTDIR and builds programs with pkg-config only.
install-test:
	@sh ./tests/test_install.sh

# http_tail against a local HTTP server; skips without libcurl.
examples-test: $(if $(CURL_LIBS),$(BUILD)/examples/http_tail)
	@sh ./tests/test_http_tail.sh $(BUILD)/examples/http_tail

test:
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory install-test
	@$(MAKE) --no-print-directory examples-test

# The fuzz target builds the library's sources itself with clang's
# libFuzzer, ASan and UBSan; new inputs go to build/fuzz/corpus, the seeds
# kept in the repo to tests/fuzz/corpus.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BIN     := build/fuzz/fuzz_sb
$(FUZZ_BIN): tests/fuzz/fuzz_sb.c $(LIB_SRC) $(wildcard src/*.h) include/streambuffer.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) -Isrc -std=c11 -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ tests/fuzz/fuzz_sb.c $(LIB_SRC) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@mkdir -p build/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		build/fuzz/corpus tests/fuzz/corpus

clean:
	rm -rf build
