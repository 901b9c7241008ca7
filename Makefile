# streambuffer - plain Makefile.
#
#   make               build/libstreambuffer.a and build/libstreambuffer.so
#   make test          the cmocka suite, normally and under ThreadSanitizer
#   make check         the suite in this build variant only
#   make tsan          the suite under ThreadSanitizer only
#   make demo          build and run examples/fanout
#   make bench         build and run the benchmark harness (BENCH_ARGS=...)
#   make examples      build the examples
#   make clean
#
# Build variants live in their own directories (BUILD=...), so a sanitizer
# build never mixes objects with the normal one.

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

CC      ?= cc
BUILD   ?= build
SAN     ?=
TIMEOUT ?= 300

WARN     := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion
CPPFLAGS += -D_GNU_SOURCE -Iinclude
CFLAGS   ?= -O2 -g
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer)
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

EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all lib test check tsan deps examples demo bench clean
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

# Tests link the static library, so they exercise exactly the objects built
# here, and may use the internal seams declared in src/*.h.
$(BUILD)/tests/%: tests/%.c $(TEST_LIB) tests/helpers.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< $(TEST_LIB) \
		$(STATIC) -lcmocka $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

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

test:
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory tsan

clean:
	rm -rf build
