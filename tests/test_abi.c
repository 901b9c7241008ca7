/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - the public structs can grow without breaking old binaries.
 *
 * The sizes and field offsets of sb_source, sb_options and sb_stats are
 * pinned here: a change that moves or resizes them breaks every program
 * built against the old header, and must come with a new soname (see the
 * Makefile) and a change of these numbers.  A new field takes the place of
 * reserved words and leaves the sizes alone.  Reserved words must be zero
 * on the way in (EINVAL otherwise, so an old library refuses an option it
 * does not know) and are zero on the way out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#if UINTPTR_MAX == UINT64_MAX /* LP64: the layouts below */
_Static_assert(sizeof(sb_source) == 9 * 8, "sb_source size");
_Static_assert(offsetof(sb_source, read) == 0, "sb_source.read");
_Static_assert(offsetof(sb_source, next) == 8, "sb_source.next");
_Static_assert(offsetof(sb_source, close) == 16, "sb_source.close");
_Static_assert(offsetof(sb_source, cancel) == 24, "sb_source.cancel");
_Static_assert(offsetof(sb_source, ctx) == 32, "sb_source.ctx");
_Static_assert(offsetof(sb_source, open_at) == 40, "sb_source.open_at");
/* 0.5 took one reserved word of sb_source for done: the size stays. */
_Static_assert(offsetof(sb_source, done) == 48, "sb_source.done");
_Static_assert(offsetof(sb_source, reserved) == 56, "sb_source.reserved");

_Static_assert(sizeof(sb_options) == 128, "sb_options size");
_Static_assert(offsetof(sb_options, mem_limit) == 0, "mem_limit");
_Static_assert(offsetof(sb_options, max_size) == 8, "max_size");
_Static_assert(offsetof(sb_options, tmp_dir) == 16, "tmp_dir");
_Static_assert(offsetof(sb_options, chunk_size) == 24, "chunk_size");
_Static_assert(offsetof(sb_options, length_hint) == 32, "length_hint");
_Static_assert(offsetof(sb_options, flags) == 56, "flags");
_Static_assert(offsetof(sb_options, seek_gap) == 64, "seek_gap");
_Static_assert(offsetof(sb_options, max_parts) == 72, "max_parts");
_Static_assert(offsetof(sb_options, retries) == 76, "retries");
_Static_assert(offsetof(sb_options, reserved) == 80, "sb_options.reserved");

/* 0.5 grew sb_stats (its reserved tail was used up), as 0.x minors may. */
_Static_assert(sizeof(sb_stats) == 256, "sb_stats size");
_Static_assert(offsetof(sb_stats, filled) == 0, "filled");
_Static_assert(offsetof(sb_stats, in_memory) == 8, "in_memory");
_Static_assert(offsetof(sb_stats, spilled) == 16, "spilled");
_Static_assert(offsetof(sb_stats, publishes) == 24, "publishes");
_Static_assert(offsetof(sb_stats, waiting) == 32, "waiting");
_Static_assert(offsetof(sb_stats, wakeups) == 40, "wakeups");
_Static_assert(offsetof(sb_stats, state) == 48, "state");
_Static_assert(offsetof(sb_stats, error) == 52, "error");
_Static_assert(offsetof(sb_stats, huge_pages) == 112, "huge_pages");
_Static_assert(offsetof(sb_stats, parts_opened) == 120, "parts_opened");
_Static_assert(offsetof(sb_stats, part_retries) == 184, "part_retries");
_Static_assert(offsetof(sb_stats, reserved) == 192, "sb_stats.reserved");
#endif

/* The reserved tails end each struct: nothing can follow them. */
_Static_assert(offsetof(sb_source, reserved) + sizeof(((sb_source *)0)->reserved)
                   == sizeof(sb_source), "sb_source ends in reserved");
_Static_assert(offsetof(sb_options, reserved) + sizeof(((sb_options *)0)->reserved)
                   == sizeof(sb_options), "sb_options ends in reserved");
_Static_assert(offsetof(sb_stats, reserved) + sizeof(((sb_stats *)0)->reserved)
                   == sizeof(sb_stats), "sb_stats ends in reserved");

static void test_nonzero_reserved_option_is_einval(void **state)
{
    (void)state;
    size_t nres = sizeof ((sb_options *)0)->reserved
                  / sizeof ((sb_options *)0)->reserved[0];
    static const unsigned char data[10] = {0};
    for (size_t i = 0; i < nres; i++) {
        sb_options o = {.mem_limit = 4096};
        o.reserved[i] = 1;
        chunk_src *s = fx_chunk(100, NULL, 0);
        assert_null_with(fx_buffer(open_chunk(s, &o)), EINVAL);
        assert_null_with(fx_buffer(sb_open_fd(STDIN_FILENO, &o)), EINVAL);
        assert_null_with(fx_buffer(sb_open_mem(data, sizeof data, &o)),
                          EINVAL);
        assert_null_with(fx_buffer(sb_open_writer(&o)), EINVAL);
        assert_int_equal(atomic_load(&s->calls), 0);
    }
    /* The same options with the tail zeroed open. */
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
}

static void test_nonzero_reserved_source_field_is_einval(void **state)
{
    (void)state;
    size_t nres = sizeof ((sb_source *)0)->reserved
                  / sizeof ((sb_source *)0)->reserved[0];
    for (size_t i = 0; i < nres; i++) {
        chunk_src *s = fx_chunk(100, NULL, 0);
        sb_source src = chunk_source(s);
        src.reserved[i] = s;
        assert_null_with(fx_buffer(sb_open(&src, NULL)), EINVAL);
        assert_int_equal(atomic_load(&s->calls), 0);
        assert_int_equal(atomic_load(&s->closes), 0);
    }
}

static void test_stats_write_exactly_their_size(void **state)
{
    (void)state;
    unsigned char data[1000];
    gen_fill(data, sizeof data, 0);
    sb_buffer *b = fx_buffer(sb_open_mem(data, sizeof data, NULL));
    assert_non_null(b);

    /* A caller's struct with canaries on both sides and garbage inside. */
    struct {
        unsigned char before[64];
        sb_stats st;
        unsigned char after[64];
    } box;
    memset(&box, 0x5A, sizeof box);
    assert_int_equal(sb_get_stats(b, &box.st), 0);
    for (size_t i = 0; i < sizeof box.before; i++)
        assert_int_equal(box.before[i], 0x5A);
    for (size_t i = 0; i < sizeof box.after; i++)
        assert_int_equal(box.after[i], 0x5A);
    assert_int_equal(box.st.filled, sizeof data);
    size_t nres = sizeof box.st.reserved / sizeof box.st.reserved[0];
    for (size_t i = 0; i < nres; i++)
        assert_int_equal(box.st.reserved[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_nonzero_reserved_option_is_einval),
        FX_TEST(test_nonzero_reserved_source_field_is_einval),
        FX_TEST(test_stats_write_exactly_their_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
