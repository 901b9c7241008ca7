/* SPDX-License-Identifier: MIT */
/*
 * test_pages.c - what the memory region costs in pages: a small stream
 * commits one small page, a large one gets 2 MiB-aligned extents advised
 * for huge pages (never past mem_limit), release gives back exactly what
 * it says across a huge page, SB_NO_HUGEPAGES keeps every page small, and
 * the stream's bytes are the same either way.
 *
 * Nothing here depends on the machine's transparent_hugepage mode: the
 * tests read it (never change it) and assert what each mode promises.
 * Residency is read with mincore(2), page by page, and eligibility for
 * huge pages from /proc/self/smaps (THPeligible), whatever the kernel then
 * chose to allocate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "helpers.h"
#include "stream.h"

#define MiB ((size_t)1 << 20)
#define SMALL MiB       /* the small-page head of every region */
#define HUGE (2 * MiB)  /* a huge page */

/* The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled:
   "always", "madvise" or "never"; "never" where the file is missing (a
   kernel without THP). */
static const char *thp_mode(void)
{
    static char mode[16];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char line[128];
    strcpy(mode, "never");
    if (f == NULL)
        return mode;
    if (fgets(line, sizeof line, f) != NULL) {
        char *a = strchr(line, '['), *z = a ? strchr(a, ']') : NULL;
        if (a && z && (size_t)(z - a - 1) < sizeof mode) {
            memcpy(mode, a + 1, (size_t)(z - a - 1));
            mode[z - a - 1] = '\0';
        }
    }
    fclose(f);
    return mode;
}

/* The THPeligible field of the mapping that holds p: 1, 0, or -1 when
   smaps does not say (an old kernel). */
static int thp_eligible(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[256];
    int in = 0, found = -1;
    uintptr_t at = (uintptr_t)p;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long a, z;
        int v;
        if (sscanf(line, "%lx-%lx ", &a, &z) == 2)
            in = at >= a && at < z;
        else if (in && sscanf(line, "THPeligible: %d", &v) == 1)
            found = v;
    }
    fclose(f);
    return found;
}

/* Resident small pages of [p, p + n), p page-aligned; -1 on error. */
static long resident(const void *p, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + pg - 1) / pg;
    unsigned char *vec = fx_calloc(pages);
    if (mincore((void *)(uintptr_t)p, n, vec) != 0)
        return -1;
    long k = 0;
    for (size_t i = 0; i < pages; i++)
        k += vec[i] & 1;
    return k;
}

/* A writer buffer holding len pattern bytes, with mem_limit mem. */
static sb_buffer *written(size_t len, size_t mem, uint32_t flags)
{
    sb_options o = {.mem_limit = mem, .flags = flags, .tmp_dir = fx_scratch()};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    if (b == NULL)
        return NULL;
    /* No bigger than the stream: under the sanitizers calloc touches
       every page it returns, which the RSS checks would count. */
    unsigned char *chunk = fx_calloc(len < (64 << 10) ? len + 1 : 64 << 10);
    for (size_t off = 0; off < len; off += 64 << 10) {
        size_t k = len - off < (64 << 10) ? len - off : 64 << 10;
        gen_fill(chunk, k, off);
        if (sb_write(b, chunk, k) != (ssize_t)k)
            return NULL;
    }
    if (sb_finish(b, 0) != 0)
        return NULL;
    return b;
}

/* Where byte off of b's memory region lives. */
static const unsigned char *at(sb_buffer *b, uint64_t off)
{
    const void *p = NULL;
    if (sb_view(b, off, 1, &p) != 1)
        return NULL;
    return p;
}

/* ---- small streams ----------------------------------------------------------- */

static void test_small_streams_commit_one_small_page(void **state)
{
    (void)state;
    /* 100 buffers of 10 bytes with the default 5 MiB region: each commits
       one small page, whatever the THP mode, and none a huge page. */
    enum { N = 100 };
    sb_buffer *b[N];
    long long before = rss_bytes();
    for (int i = 0; i < N; i++) {
        b[i] = written(10, 0, 0);
        assert_non_null(b[i]);
    }
    long long after = rss_bytes();
    for (int i = 0; i < N; i++) {
        const unsigned char *p = at(b[i], 0);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 4096, 0);
        assert_int_equal(resident(p, 5 * MiB), 1);
        assert_int_equal(stats(b[i]).huge_pages, 0);
        assert_int_equal(check_stream(b[i], 10), 0);
    }
    assert_true(before > 0 && after > 0);
    assert_true(after - before < (long long)N * (64 << 10));
}

/*
 * Pulled streams (a read source, sb_open_fd) commit what arrives, as
 * pushed ones do: the producer reads straight into the region, so a
 * page faulted in ahead of read(2) for a chunk that never comes is a page
 * the stream's bytes do not touch.  A 10-byte stream commits one small
 * page, not a chunk's worth; one that ends just short of the small-page
 * MiB commits the pages its bytes span, not a huge extent past them.
 */
static const size_t pulled_lens[] = {10, 100000, 1040000};

/* A file of len pattern bytes in a scratch directory, opened for reading. */
static int pattern_file(size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/stream", fx_scratch());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    unsigned char *buf = fx_calloc(len);
    gen_fill(buf, len, 0);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return fx_fd(open(path, O_RDONLY | O_CLOEXEC));
}

static void pulled_commits_what_arrives(int fd_source)
{
    static const size_t pattern[] = {5000, 4096, 70000};
    for (size_t i = 0; i < FX_NROWS(pulled_lens); i++) {
        size_t len = pulled_lens[i];
        sb_buffer *b;
        if (fd_source) {
            int fd = pattern_file(len);
            assert_true(fd >= 0);
            b = fx_buffer(sb_open_fd(fd, NULL));
        } else {
            b = fx_buffer(open_chunk(fx_chunk(len, pattern, 3), NULL));
        }
        assert_non_null(b);
        uint64_t got = 0;
        assert_int_equal(sb_wait_end(b, &got), 0);
        assert_int_equal(got, len);
        const unsigned char *p = at(b, 0);
        assert_non_null(p);
        long want = (long)((len + 4095) / 4096);
        long have = resident(p, 5 * MiB);
        print_message("      %s, %zu bytes: %ld pages committed, %ld spanned\n",
                      fd_source ? "sb_open_fd" : "read source", len, have,
                      want);
        assert_int_equal(have, want);
        assert_int_equal(check_stream(b, len), 0);
    }
}

static void test_small_fd_streams_commit_what_arrives(void **state)
{
    (void)state;
    pulled_commits_what_arrives(1);
}

static void test_small_read_streams_commit_what_arrives(void **state)
{
    (void)state;
    pulled_commits_what_arrives(0);
}

static void test_small_head_is_never_huge(void **state)
{
    (void)state;
    /* Whatever the mode: the first MiB of a large region is in a mapping
       advised against huge pages. */
    sb_buffer *b = written(100, 64 * MiB, 0);
    assert_non_null(b);
    assert_int_not_equal(thp_eligible(at(b, 0)), 1);
    assert_int_equal(resident(at(b, 0), SMALL), 1);
}

/* ---- large streams ----------------------------------------------------------- */

static void test_large_region_is_aligned_and_advised(void **state)
{
    (void)state;
    sb_buffer *b = written(16 * MiB, 32 * MiB, 0);
    assert_non_null(b);
    const unsigned char *p = at(b, SMALL);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % HUGE, 0);
    assert_ptr_equal(p, at(b, 0) + SMALL); /* one region, never moved */
    int elig = thp_eligible(p);
    uint64_t huge = stats(b).huge_pages;
    const char *mode = thp_mode();
    print_message("      thp mode %s, eligible %d, %llu huge pages\n", mode,
                  elig, (unsigned long long)huge);
    if (strcmp(mode, "never") == 0) {
        assert_int_not_equal(elig, 1);
        assert_int_equal(huge, 0);
    } else {
        /* Eligible under madvise and always; whether the kernel found 2
           MiB of free memory is its business, but it never gives more
           than the extents the stream reaches into: [1 MiB, 17 MiB),
           8 of them. */
        if (elig != -1)
            assert_int_equal(elig, 1);
        assert_true(huge <= 8);
    }
    assert_int_equal(check_stream(b, 16 * MiB), 0);
}

static void test_huge_pages_stop_at_mem_limit(void **state)
{
    (void)state;
    /* 3 MiB + 100 KiB: one whole extent [1 MiB, 3 MiB), and a small tail
       that must stay small so nothing past mem_limit is ever committed. */
    size_t mem = 3 * MiB + (100 << 10);
    sb_buffer *b = written(mem + 5000, mem, 0);
    assert_non_null(b);
    assert_int_equal((uintptr_t)at(b, SMALL) % HUGE, 0);
    assert_int_not_equal(thp_eligible(at(b, 3 * MiB)), 1);
    assert_true(stats(b).huge_pages <= 1);
    /* Every page of the region holds stream bytes, and no more. */
    assert_int_equal(resident(at(b, 0), mem), (long)((mem + 4095) / 4096));
    sb_stats s = stats(b);
    assert_int_equal(s.in_memory, mem);
    assert_int_equal(s.spilled, 5000);
    assert_int_equal(check_stream(b, mem + 5000), 0);
}

static void test_huge_pages_counted_in_stats(void **state)
{
    (void)state;
    /* The count follows the kernel's own (smaps): under never it is 0;
       otherwise it is what the region's extents got, at most one a 2 MiB
       extent the stream reached. */
    sb_buffer *b = written(8 * MiB, 8 * MiB, 0);
    assert_non_null(b);
    uint64_t huge = stats(b).huge_pages;
    if (strcmp(thp_mode(), "never") == 0)
        assert_int_equal(huge, 0);
    else
        assert_true(huge >= 1 && huge <= 3);
    sb_buffer *small = written(8 * MiB, 8 * MiB, SB_NO_HUGEPAGES);
    assert_non_null(small);
    assert_int_equal(stats(small).huge_pages, 0);
}

/* The count is reused for 10 ms (a read of smaps each time would cost a
   server that asks on every request more than its work), and no longer:
   once the region is given back and that time has passed, it says 0.  The
   20 ms sleep is the period elapsing, which is what this tests. */
static void test_huge_pages_count_is_at_most_10ms_old(void **state)
{
    (void)state;
    sb_options o = {.mem_limit = 8 * MiB, .chunk_size = 64 << 10,
                    .flags = SB_RELEASE};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    unsigned char *buf = fx_calloc(8 * MiB);
    pat_fill(buf, 8 * MiB, 0);
    assert_int_equal(sb_write(b, buf, 8 * MiB), (ssize_t)(8 * MiB));
    uint64_t before = stats(b).huge_pages;
    if (strcmp(thp_mode(), "never") != 0)
        assert_true(before >= 1);
    assert_int_equal(sb_reader_release(r, 8 * MiB), 0);
    assert_int_equal(stats(b).released, 8 * MiB);
    struct timespec pause = {0, 20 * 1000 * 1000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
    assert_int_equal(stats(b).huge_pages, 0);
}

/* ---- release ------------------------------------------------------------------ */

static void test_release_inside_a_huge_page_gives_back_exactly(void **state)
{
    (void)state;
    /* A floor that ends inside the first huge extent: the pages below it
       go (the huge page is split), the pages above stay with their bytes. */
    size_t chunk = 64 << 10;
    sb_options o = {.mem_limit = 8 * MiB, .chunk_size = chunk,
                    .flags = SB_RELEASE};
    sb_buffer *b = fx_buffer(sb_open_writer(&o));
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    unsigned char *buf = fx_calloc(8 * MiB);
    pat_fill(buf, 8 * MiB, 0);
    assert_int_equal(sb_write(b, buf, 8 * MiB), (ssize_t)(8 * MiB));
    const void *p0 = NULL;
    assert_int_equal(sb_reader_view(r, 0, 1, &p0), 1);
    const unsigned char *mem = p0;
    assert_int_equal(resident(mem, 8 * MiB), 2048);

    uint64_t floor = 2 * MiB + 3 * chunk;  /* inside [1 MiB, 3 MiB) */
    assert_int_equal(sb_reader_release(r, floor), 0);
    assert_int_equal(sb_floor(b), floor);
    assert_int_equal(stats(b).released, floor);
    assert_int_equal(resident(mem, floor), 0);
    assert_int_equal(resident(mem + floor, 8 * MiB - floor),
                     (long)((8 * MiB - floor) / 4096));
    /* The bytes that stay are the stream's, and the others are gone. */
    size_t rest = 8 * MiB - floor;
    assert_int_equal(sb_reader_pread(r, buf, rest, floor), (ssize_t)rest);
    assert_int_equal(pat_mismatches(buf, rest, floor), 0);
    assert_int_equal(check_read_err(b, floor - 1, 1, ESPIPE), 0);
}

/* ---- SB_NO_HUGEPAGES ---------------------------------------------------------- */

static void test_no_hugepages_keeps_every_page_small(void **state)
{
    (void)state;
    sb_buffer *b = written(12 * MiB, 16 * MiB, SB_NO_HUGEPAGES);
    assert_non_null(b);
    for (uint64_t off = 0; off < 12 * MiB; off += MiB)
        assert_int_not_equal(thp_eligible(at(b, off)), 1);
    assert_int_equal(stats(b).huge_pages, 0);
    assert_int_equal(resident(at(b, 0), 16 * MiB), (long)(12 * MiB / 4096));
    assert_int_equal(check_stream(b, 12 * MiB), 0);
}

static void test_page_size_never_changes_the_bytes(void **state)
{
    (void)state;
    /* The same pulled stream, spilling past several extents, with and
       without huge pages and across chunk sizes: byte for byte the same. */
    static const uint32_t flags[] = {0, SB_NO_HUGEPAGES};
    static const size_t mems[] = {3 * MiB + 12345, 7 * MiB};
    static const size_t chunks[] = {4096, 100000, 1 << 20};
    for (size_t f = 0; f < 2; f++)
        for (size_t m = 0; m < 2; m++)
            for (size_t c = 0; c < 3; c++) {
                size_t mark = fx_mark();
                chunk_src *s = fx_chunk(10 * MiB + 7, NULL, 0);
                sb_options o = {.mem_limit = mems[m], .chunk_size = chunks[c],
                                .flags = flags[f], .tmp_dir = fx_scratch()};
                sb_buffer *b = fx_buffer(open_chunk(s, &o));
                assert_non_null(b);
                assert_int_equal(check_stream(b, 10 * MiB + 7), 0);
                fx_unwind(mark);
            }
}

static void test_hugepage_flag_is_accepted_everywhere(void **state)
{
    (void)state;
    sb_options o = {.flags = SB_NO_HUGEPAGES};
    static const char data[] = "abc";
    assert_non_null(fx_buffer(sb_open_mem(data, 3, &o)));
    assert_non_null(fx_buffer(sb_open_writer(&o)));
    int p[2];
    fx_pipe(p, 0);
    assert_non_null(fx_buffer(sb_open_fd(p[0], &o)));
    o.flags = 0x80u;
    assert_null_with(fx_buffer(sb_open_writer(&o)), EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_small_streams_commit_one_small_page),
        FX_TEST(test_small_head_is_never_huge),
        FX_TEST(test_small_fd_streams_commit_what_arrives),
        FX_TEST(test_small_read_streams_commit_what_arrives),
        FX_TEST(test_large_region_is_aligned_and_advised),
        FX_TEST(test_huge_pages_stop_at_mem_limit),
        FX_TEST(test_huge_pages_counted_in_stats),
        FX_TEST(test_huge_pages_count_is_at_most_10ms_old),
        FX_TEST(test_release_inside_a_huge_page_gives_back_exactly),
        FX_TEST(test_no_hugepages_keeps_every_page_small),
        FX_TEST(test_page_size_never_changes_the_bytes),
        FX_TEST(test_hugepage_flag_is_accepted_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
