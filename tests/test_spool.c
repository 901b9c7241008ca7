/* SPDX-License-Identifier: MIT */
/*
 * test_spool.c - the memory/file boundary: reads in memory, in the spill
 * file and across the boundary; the spill file is created only when needed,
 * in the right directory, and is never visible; no fd is left behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* Restores $TMPDIR after a test that changes it. */
static char *saved_tmpdir;
static int had_tmpdir;

static void save_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    had_tmpdir = t != NULL;
    saved_tmpdir = t ? strdup(t) : NULL;
}

static void restore_tmpdir(void)
{
    if (had_tmpdir)
        setenv("TMPDIR", saved_tmpdir, 1);
    else
        unsetenv("TMPDIR");
    free(saved_tmpdir);
    saved_tmpdir = NULL;
}

/* ---- reads on each side of the boundary -------------------------------------- */

static void test_reads_in_memory(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    chunk_src s;
    chunk_init(&s, 20000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_read(b, 0, 4096, 4096), 0);
    assert_int_equal(check_read(b, 0, 1, 1), 0);
    assert_int_equal(check_read(b, 4095, 1, 1), 0);
    assert_int_equal(check_read(b, 1234, 2000, 2000), 0);
    for (uint64_t off = 0; off < 4096; off += 97)
        assert_int_equal(check_read(b, off, 50, 50), 0);
    sb_close(b);
    scratch_free(dir);
}

static void test_reads_in_file(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    chunk_src s;
    chunk_init(&s, 20000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_read(b, 4096, 1, 1), 0);
    assert_int_equal(check_read(b, 4096, 15904, 15904), 0);
    assert_int_equal(check_read(b, 19999, 1, 1), 0);
    assert_int_equal(check_read(b, 10000, 3000, 3000), 0);
    for (uint64_t off = 4096; off + 100 <= 20000; off += 331)
        assert_int_equal(check_read(b, off, 100, 100), 0);
    assert_int_equal(check_read(b, 19950, 100, 50), 0);
    /* The file really is in use. */
    assert_true(fds_into_dir(dir) >= 1);
    sb_close(b);
    assert_int_equal(fds_into_dir(dir), 0);
    scratch_free(dir);
}

static void straddle_checks(size_t mem_limit)
{
    char *dir = scratch_new();
    assert_non_null(dir);
    static const size_t pat[] = {333, 1, 4000};
    chunk_src s;
    chunk_init(&s, 30000, pat, 3);
    sb_options o = {.mem_limit = mem_limit, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    static const size_t sizes[] = {1, 2, 11, 100, 5000};
    for (uint64_t off = mem_limit - 10; off <= mem_limit + 1; off++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            assert_int_equal(check_read(b, off, sizes[i], (ssize_t)sizes[i]),
                             0);
    /* The whole stream in one read, and from the start to just past the
       boundary. */
    assert_int_equal(check_read(b, 0, 30000, 30000), 0);
    assert_int_equal(check_read(b, 0, mem_limit + 1, (ssize_t)mem_limit + 1),
                     0);
    sb_close(b);
    scratch_free(dir);
}

static void test_reads_straddle_boundary_4096(void **state)
{
    (void)state;
    straddle_checks(4096);
}

static void test_reads_straddle_boundary_1000(void **state)
{
    (void)state;
    straddle_checks(1000); /* not a multiple of the page size */
}

static void test_strided_reads_over_boundary(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    chunk_src s;
    chunk_init(&s, 12000, NULL, 0);
    sb_options o = {.mem_limit = 1000, .tmp_dir = dir, .chunk_size = 777};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    static const size_t strides[] = {1, 7, 999, 1001, 4096};
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++) {
        size_t st = strides[i];
        size_t bad = 0, wrong_count = 0;
        unsigned char *buf = malloc(st);
        assert_non_null(buf);
        for (uint64_t off = 0; off < 12000; off += st) {
            size_t want = 12000 - off < st ? (size_t)(12000 - off) : st;
            ssize_t got = sb_pread(b, buf, st, off);
            if (got != (ssize_t)want)
                wrong_count++;
            else
                bad += gen_mismatches(buf, want, off);
        }
        free(buf);
        assert_int_equal(wrong_count, 0);
        assert_int_equal(bad, 0);
    }
    sb_close(b);
    scratch_free(dir);
}

static void test_large_spilled_stream(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    chunk_src s;
    chunk_init(&s, 4u << 20, NULL, 0);
    sb_options o = {.mem_limit = 65536, .tmp_dir = dir, .chunk_size = 10000};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 4u << 20), 0);
    assert_int_equal(count_dir_entries(dir), 0);
    sb_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
    scratch_free(dir);
}

/* ---- the spill file: only when needed, never visible -------------------------- */

static void test_small_stream_creates_no_file(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    chunk_src s;
    chunk_init(&s, 4000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 4000), 0);
    assert_int_equal(fds_into_dir(dir), 0);
    assert_int_equal(count_dir_entries(dir), 0);
    sb_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
    scratch_free(dir);
}

static void test_small_stream_needs_no_tmp_dir(void **state)
{
    (void)state;
    /* A stream that fits in memory never touches tmp_dir, so a missing
       directory does not matter. */
    chunk_src s;
    chunk_init(&s, 3000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = "/nonexistent/sbtest/dir"};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 3000), 0);
    sb_close(b);
}

static void test_stream_of_exactly_mem_limit_needs_no_file(void **state)
{
    (void)state;
    /* "created only once the stream outgrows mem_limit": a stream of
       exactly mem_limit bytes does not outgrow it. */
    static const size_t pat[] = {1000};
    chunk_src s;
    chunk_init(&s, 4000, pat, 1);
    sb_options o = {.mem_limit = 4000, .tmp_dir = "/nonexistent/sbtest/dir"};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 4000), 0);
    sb_close(b);
}

static void test_spill_file_never_visible(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    int fds = count_fds();
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);

    /* In memory only: no file at all. */
    gate_allow(&g, 3000);
    assert_true(wait_available(b, 3000, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(&g, WAIT_LONG_MS));
    assert_int_equal(fds_into_dir(dir), 0);
    assert_int_equal(count_dir_entries(dir), 0);

    /* Spilled and still open: the file exists, in dir, but has no name. */
    gate_allow(&g, 50000);
    assert_true(wait_available(b, 50000, WAIT_LONG_MS));
    assert_true(gate_wait_blocked(&g, WAIT_LONG_MS));
    assert_int_equal(count_dir_entries(dir), 0);
    assert_true(fds_into_dir(dir) >= 1);
    assert_int_equal(check_read(b, 0, 50000, 50000), 0);

    gate_end(&g);
    assert_int_equal(check_stream(b, 50000), 0);
    assert_int_equal(count_dir_entries(dir), 0);
    sb_close(b);
    assert_int_equal(count_dir_entries(dir), 0);
    assert_int_equal(fds_into_dir(dir), 0);
    assert_int_equal(count_fds(), fds);
    gate_destroy(&g);
    scratch_free(dir);
}

static void test_tmp_dir_string_is_copied(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    gate_src g;
    gate_init(&g);
    sb_options o = {.mem_limit = 4096, .tmp_dir = path};
    sb_buffer *b = open_gate(&g, &o);
    assert_non_null(b);
    /* Change the caller's string before the stream spills. */
    snprintf(path, sizeof path, "/nonexistent/sbtest/%s", "elsewhere");
    gate_allow(&g, 20000);
    gate_end(&g);
    assert_int_equal(check_stream(b, 20000), 0);
    assert_true(fds_into_dir(dir) >= 1);
    sb_close(b);
    gate_destroy(&g);
    scratch_free(dir);
}

/* ---- $TMPDIR ---------------------------------------------------------------------- */

static int spill_into(const char *tmp_dir, const char *expect_dir,
                      int *fds_in)
{
    chunk_src s;
    chunk_init(&s, 20000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = tmp_dir};
    sb_buffer *b = open_chunk(&s, &o);
    if (b == NULL)
        return -1;
    int rc = check_stream(b, 20000);
    *fds_in = fds_into_dir(expect_dir);
    sb_close(b);
    return rc;
}

static void test_tmpdir_env_is_honoured(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    save_tmpdir();
    setenv("TMPDIR", dir, 1);
    int in = -1;
    int rc = spill_into(NULL, dir, &in);
    int entries = count_dir_entries(dir);
    restore_tmpdir();
    assert_int_equal(rc, 0);
    assert_true(in >= 1);
    assert_int_equal(entries, 0);
    scratch_free(dir);
}

static void test_tmpdir_env_missing_dir_fails_spill(void **state)
{
    (void)state;
    /* $TMPDIR names a directory that does not exist: the spill fails with
       ENOENT, which shows $TMPDIR was really used. */
    save_tmpdir();
    setenv("TMPDIR", "/nonexistent/sbtest/tmpdir", 1);
    chunk_src s;
    chunk_init(&s, 20000, NULL, 0);
    sb_options o = {.mem_limit = 4096};
    sb_buffer *b = open_chunk(&s, &o);
    if (b == NULL)
        restore_tmpdir();
    assert_non_null(b);
    errno = 0;
    int rc = sb_wait_end(b, NULL);
    int err = errno;
    int head = check_read(b, 0, 4096, 4096);
    int tail = check_read_err(b, 4096, 1, ENOENT);
    sb_close(b);
    restore_tmpdir(); /* only now: the library may read $TMPDIR late */
    assert_int_equal(rc, -1);
    assert_int_equal(err, ENOENT);
    assert_int_equal(head, 0);
    assert_int_equal(tail, 0);
}

static void test_opts_tmp_dir_beats_env(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    save_tmpdir();
    setenv("TMPDIR", "/nonexistent/sbtest/tmpdir", 1);
    int in = -1;
    int rc = spill_into(dir, dir, &in);
    restore_tmpdir();
    assert_int_equal(rc, 0);
    assert_true(in >= 1);
    scratch_free(dir);
}

static void test_tmpdir_empty_or_unset_means_tmp(void **state)
{
    (void)state;
    save_tmpdir();
    setenv("TMPDIR", "", 1);
    int in_empty = -1;
    int rc_empty = spill_into(NULL, "/tmp", &in_empty);
    unsetenv("TMPDIR");
    int in_unset = -1;
    int rc_unset = spill_into(NULL, "/tmp", &in_unset);
    restore_tmpdir();
    assert_int_equal(rc_empty, 0);
    assert_true(in_empty >= 1);
    assert_int_equal(rc_unset, 0);
    assert_true(in_unset >= 1);
}

/* ---- the memory region ----------------------------------------------------------- */

static void test_memory_committed_only_as_bytes_arrive(void **state)
{
    (void)state;
    /* A 512 MiB region holding a 1 MiB stream costs about 1 MiB. */
    long long before = rss_bytes();
    chunk_src s;
    chunk_init(&s, 1u << 20, NULL, 0);
    sb_options o = {.mem_limit = 512u << 20};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1u << 20), 0);
    long long during = rss_bytes();
    sb_close(b);
    assert_true(before > 0);
    assert_true(during - before < (long long)(64u << 20));
}

static void test_unreservable_mem_limit_is_enomem(void **state)
{
    (void)state;
    /* Valid (not above SSIZE_MAX) but more address space than exists. */
    const size_t huge = (size_t)1 << 62;
    int fds = count_fds();
    int threads = count_threads();
    chunk_src s;
    chunk_init(&s, 100, NULL, 0);
    sb_options o = {.mem_limit = huge};
    errno = 0;
    sb_buffer *b = open_chunk(&s, &o);
    int err = errno;
    sb_close(b);
    assert_null(b);
    assert_int_equal(err, ENOMEM);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(atomic_load(&s.closes), 0);

    int p[2];
    assert_int_equal(pipe(p), 0);
    errno = 0;
    b = sb_open_fd(p[0], &o);
    err = errno;
    sb_close(b);
    assert_null(b);
    assert_int_equal(err, ENOMEM);
    assert_true(fcntl(p[0], F_GETFD) != -1); /* still ours */
    close(p[0]);
    close(p[1]);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(count_threads(), threads);
}

/* ---- no fd left behind ----------------------------------------------------------- */

static void test_fd_count_restored_after_close(void **state)
{
    (void)state;
    char *dir = scratch_new();
    assert_non_null(dir);
    int start = count_fds();

    /* Memory only. */
    chunk_src s;
    chunk_init(&s, 1000, NULL, 0);
    sb_options o = {.mem_limit = 4096, .tmp_dir = dir};
    sb_buffer *b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 1000), 0);
    sb_close(b);
    assert_int_equal(count_fds(), start);

    /* Spilled. */
    chunk_init(&s, 50000, NULL, 0);
    b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 50000), 0);
    assert_true(count_fds() > start);
    sb_close(b);
    assert_int_equal(count_fds(), start);

    /* Closed mid-stream while spilling. */
    chunk_init(&s, CHUNK_FOREVER, NULL, 0);
    b = open_chunk(&s, &o);
    assert_non_null(b);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    sb_close(b);
    assert_int_equal(count_fds(), start);

    /* sb_open_fd over a pipe, spilled; our pipe ends are ours to close. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    pipe_writer w;
    assert_int_equal(writer_start(&w, p[1], 30000, 1000, 0, 0), 0);
    b = sb_open_fd(p[0], &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, 30000), 0);
    writer_join(&w);
    sb_close(b);
    close(p[0]);
    assert_int_equal(w.err, 0);
    assert_int_equal(count_fds(), start);

    /* sb_open_fd over an endless device, closed mid-stream. */
    int fd = open("/dev/zero", O_RDONLY);
    assert_true(fd >= 0);
    int with_fd = count_fds();
    b = sb_open_fd(fd, &o);
    assert_non_null(b);
    assert_true(wait_available(b, 10000, WAIT_LONG_MS));
    sb_close(b);
    assert_int_equal(count_fds(), with_fd);
    close(fd);

    /* sb_open_mem. */
    unsigned char data[100];
    gen_fill(data, sizeof data, 0);
    b = sb_open_mem(data, sizeof data, &o);
    assert_non_null(b);
    assert_int_equal(check_stream(b, sizeof data), 0);
    sb_close(b);
    assert_int_equal(count_fds(), start);

    assert_int_equal(count_dir_entries(dir), 0);
    scratch_free(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_in_memory),
        cmocka_unit_test(test_reads_in_file),
        cmocka_unit_test(test_reads_straddle_boundary_4096),
        cmocka_unit_test(test_reads_straddle_boundary_1000),
        cmocka_unit_test(test_strided_reads_over_boundary),
        cmocka_unit_test(test_large_spilled_stream),
        cmocka_unit_test(test_small_stream_creates_no_file),
        cmocka_unit_test(test_small_stream_needs_no_tmp_dir),
        cmocka_unit_test(test_stream_of_exactly_mem_limit_needs_no_file),
        cmocka_unit_test(test_spill_file_never_visible),
        cmocka_unit_test(test_tmp_dir_string_is_copied),
        cmocka_unit_test(test_tmpdir_env_is_honoured),
        cmocka_unit_test(test_tmpdir_env_missing_dir_fails_spill),
        cmocka_unit_test(test_opts_tmp_dir_beats_env),
        cmocka_unit_test(test_tmpdir_empty_or_unset_means_tmp),
        cmocka_unit_test(test_memory_committed_only_as_bytes_arrive),
        cmocka_unit_test(test_unreservable_mem_limit_is_enomem),
        cmocka_unit_test(test_fd_count_restored_after_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
