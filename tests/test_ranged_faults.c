/* SPDX-License-Identifier: MIT */
/*
 * test_ranged_faults.c - ranged sources when things go wrong: an object
 * that changed (ESTALE, never bytes of two versions), open_at's -ESPIPE
 * and -ESTALE (parts off for good), parts that drop or fail (reopened,
 * part_retries), open_at failing for a while or for good (retries), the
 * length rules (reads past it, a straddling read, a part that ends short
 * or delivers past it), and sb_cancel / sb_close with parts blocked in
 * their sources (each part's cancel at most once, its close exactly once).
 *
 * As in test_ranged.c, nothing waits on the clock: the source's events
 * and the stats are what the tests wait for.
 */
#include "ranged.h"

/* ---- a changed object -------------------------------------------------------------- */

/*
 * The first stream is version 0, every part version 1 (the object changed
 * after the first request).  Where they meet the seam compares unequal:
 * the stream fails with ESTALE, [0, filled) stays readable and right,
 * every read past it fails with ESTALE, and no read returned bytes of two
 * versions.
 */
static void test_changed_object_fails_with_estale(void **state)
{
    (void)state;
    const uint64_t len = 8 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->change_after = 0;
    s->gate_first_only = 1;
    seek_gate(s, 1 * MB, 0);
    sb_options o = {.mem_limit = 2 * MB, .seek_gap = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    /* A read wholly inside the part's extent: one version (the new one),
       or the stream's failure if the seam was met first. */
    unsigned char buf[4096];
    ssize_t n = sb_pread(b, buf, sizeof buf, 4 * MB);
    if (n == (ssize_t)sizeof buf)
        assert_int_equal(
            pat_mismatches(buf, sizeof buf, 4 * MB + SEEK_VERSION_SHIFT), 0);
    else
        assert_int_equal(errno, ESTALE);
    seek_release(s);
    assert_fails_with(sb_wait_end(b, NULL), ESTALE);
    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_FAILED);
    assert_int_equal(st.error, ESTALE);
    assert_true(st.filled >= 1 * MB && st.filled < len);
    /* The prefix is version 0's, every byte. */
    assert_int_equal(pat_read(b, 0, (size_t)st.filled, (ssize_t)st.filled), 0);
    /* Past it, nothing, not even the part's own extent. */
    assert_fails_with(sb_pread(b, buf, 1, st.filled), ESTALE);
    assert_fails_with(sb_pread(b, buf, sizeof buf, 4 * MB), ESTALE);
    /* Straddling it: the prefix's bytes, short, as any failed stream. */
    assert_int_equal(sb_pread(b, buf, sizeof buf, st.filled - 10), 10);
    assert_int_equal(pat_mismatches(buf, 10, st.filled - 10), 0);
    const void *p;
    assert_fails_with(sb_view(b, 4 * MB, 10, &p), ESTALE);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* The object changes under 4 threads' random reads: every read returns
   one version, whole (never a mix), or fails with ESTALE. */
struct mix_arg {
    sb_buffer *b;
    uint64_t len;
    uint64_t seed;
    atomic_int *mixed;
};

static void mixed_reads(void *arg)
{
    struct mix_arg *a = arg;
    unsigned char *buf = malloc(64 * KB);
    if (buf == NULL) {
        atomic_fetch_add(a->mixed, 1);
        return;
    }
    uint64_t x = a->seed;
    for (int i = 0; i < 32; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint64_t off = (x >> 16) % a->len;
        size_t n = 1 + (size_t)((x >> 40) % (64 * KB));
        ssize_t got = sb_pread(a->b, buf, n, off);
        if (got < 0) {
            if (errno != ESTALE) {
                fprintf(stderr, "read at %llu: errno %d\n",
                        (unsigned long long)off, errno);
                atomic_fetch_add(a->mixed, 1);
            }
            continue;
        }
        size_t k = (size_t)got;
        if (pat_mismatches(buf, k, off) != 0 &&
            pat_mismatches(buf, k, off + SEEK_VERSION_SHIFT) != 0) {
            fprintf(stderr, "read at %llu: bytes of two versions\n",
                    (unsigned long long)off);
            atomic_fetch_add(a->mixed, 1);
        }
    }
    free(buf);
}

static void test_changed_object_never_mixes(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    seek_src *s = fx_seek(len);
    s->change_after = 2; /* the first stream and one part: version 0 */
    s->rate = 64 * MB;
    sb_options o = {.mem_limit = 2 * MB, .max_parts = 4,
                    .seek_gap = 128 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    atomic_int *mixed = fx_calloc(sizeof *mixed);
    struct mix_arg *args = fx_calloc(4 * sizeof *args);
    bg_call *bg[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct mix_arg){b, len, 99u + (uint64_t)i, mixed};
        bg[i] = fx_bg(mixed_reads, &args[i]);
        assert_non_null(bg[i]);
    }
    int late = 0;
    for (int i = 0; i < 4; i++)
        if (bg_wait(bg[i], WAIT_LONG_MS))
            bg_join(bg[i]);
        else
            late++;
    assert_int_equal(late, 0);
    assert_int_equal(atomic_load(mixed), 0);
    /* The stream ends whole only in one version (every part that stored
       bytes was of it: the first streams may be moved before their first
       byte); else it fails with ESTALE, and what it holds from 0 is of
       one version. */
    uint64_t got = 0;
    sb_stats st;
    if (sb_wait_end(b, &got) == 0) {
        assert_int_equal(got, len);
        st = stats(b);
    } else {
        assert_int_equal(errno, ESTALE);
        st = stats(b);
        assert_int_equal(st.error, ESTALE);
    }
    unsigned char *all = fx_calloc(st.filled + 1);
    assert_int_equal(sb_pread(b, all, (size_t)st.filled, 0), (ssize_t)st.filled);
    assert_true(pat_mismatches(all, (size_t)st.filled, 0) == 0
                || pat_mismatches(all, (size_t)st.filled, SEEK_VERSION_SHIFT) == 0);
}

/* ---- parts off: -ESPIPE, -ESTALE from open_at ------------------------------------- */

struct off_row {
    const char *name;
    int err; /* what open_at returns */
    int first;
};

static const struct off_row off_rows[] = {
    {"espipe_plain_first_read", ESPIPE, SEEK_FIRST_READ},
    {"espipe_plain_first_next", ESPIPE, SEEK_FIRST_NEXT},
    {"estale_plain_first_read", ESTALE, SEEK_FIRST_READ},
};

/* open_at says no for good: it is never called again, and the plain
   first stream goes on and serves every read. */
static void test_open_at_turns_parts_off(void **state)
{
    const struct off_row *row = *state;
    const uint64_t len = 6 * MB;
    seek_src *s = fx_seek(len);
    s->first = row->first;
    if (row->err == ESPIPE) {
        s->no_seek = 1;
    } else {
        s->open_err = row->err;
        s->open_fails = -1;
    }
    s->rate = 64 * MB; /* slow enough that a far read asks for a part */
    sb_options o = {.mem_limit = 1 * MB, .seek_gap = 64 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 5 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 2 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 5 * MB + 512 * KB, 4 * KB, 4 * KB), 0);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_stream(b, len, 1 * MB), 0);
    assert_true(seek_opens(s) <= 1);
    sb_stats st = stats(b);
    assert_int_equal(st.parts_opened, 0);
    assert_int_equal(st.refetched, 0);
    assert_int_equal(st.fetched, len);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* Without a first stream of its own, a source whose open_at says -ESPIPE
   at 0 has no stream at all: it fails with ESPIPE, and is asked once. */
static void test_espipe_without_first_stream_fails(void **state)
{
    (void)state;
    seek_src *s = fx_seek(1 * MB);
    s->no_seek = 1;
    sb_buffer *b = open_seek(s, NULL);
    assert_non_null(b);
    assert_fails_with(sb_wait_end(b, NULL), ESPIPE);
    unsigned char c;
    assert_fails_with(sb_pread(b, &c, 1, 0), ESPIPE);
    assert_int_equal(seek_opens(s), 1);
    assert_int_equal(stats(b).error, ESPIPE);
}

/* ---- parts that drop or fail --------------------------------------------------------- */

struct drop_row {
    const char *name;
    int err;   /* 0: the connection drops (0 before the length) */
    int first; /* the first stream: a plain read, or open_at */
    int iter;
};

static const struct drop_row drop_rows[] = {
    {"drop_every_256k_parts_only", 0, SEEK_FIRST_NONE, 0},
    {"eio_every_256k_parts_only", EIO, SEEK_FIRST_NONE, 1},
    /* A plain first stream that drops before any part reported the
       length looks like the end: it fails with EIO instead. */
    {"eio_every_256k_plain_first_too", EIO, SEEK_FIRST_READ, 0},
};

/*
 * Every stream fails after 256 KiB: each is reopened at the byte it
 * reached (a part that delivered bytes starts its count again), so the
 * stream completes, every byte right, with the reopens counted in
 * part_retries and only the seams fetched twice.
 */
static void test_dropped_parts_complete_the_stream(void **state)
{
    const struct drop_row *row = *state;
    const uint64_t len = 3 * MB;
    seek_src *s = fx_seek(len);
    s->first = row->first;
    s->iter = row->iter;
    s->fail_after = 256 * KB;
    s->fail_err = row->err;
    s->fail_first = 1;
    sb_options o = {.mem_limit = 1 * MB, .max_parts = 4,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    uint64_t got = 0;
    int rc = sb_wait_end_timed(b, &got, WAIT_LONG_MS);
    sb_stats st = stats(b);
    if (rc != 0)
        fprintf(stderr, "drain: errno %d; filled %llu, %d opens, %llu "
                "retries, %llu extents\n", errno,
                (unsigned long long)st.filled, seek_opens(s),
                (unsigned long long)st.part_retries,
                (unsigned long long)st.extents);
    assert_int_equal(rc, 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_stream(b, len, 256 * KB), 0);
    st = stats(b);
    /* At least len / 256 KiB streams.  Each stream that reached 256 KiB
       failed, and each failure is one reopen, counted once, unless
       nothing was left in the failed part's reach (it failed just where
       another run began): at most one such a fetcher. */
    uint64_t streams = len / (256 * KB);
    int failures = atomic_load(&s->failures);
    assert_true(failures >= 1);
    assert_true(st.part_retries <= (uint64_t)failures);
    assert_true(st.part_retries + 4 >= (uint64_t)failures);
    assert_true((uint64_t)seek_opens_ok(s) >= streams - 1);
    assert_int_equal(st.fetched, atomic_load(&s->delivered));
    assert_int_equal(st.fetched - st.refetched, len);
    /* Not stored: the seams, and (an iterator) the rest of the chunk in
       hand where a fetcher stopped, at most 64 KiB from this source. */
    uint64_t per = SEAM + (row->iter ? 64 * (uint64_t)KB : 0);
    assert_true(st.refetched <= (uint64_t)seek_opens_ok(s) * per);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* open_at fails twice, then works: the far read is served by the third
   try, part_retries counts the two. */
static void test_open_at_failing_for_a_while(void **state)
{
    (void)state;
    const uint64_t len = 8 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->gate_first_only = 1;
    seek_gate(s, 64 * KB, 0);
    s->open_err = ECONNRESET;
    s->open_fails = 2;
    sb_options o = {.mem_limit = 1 * MB, .seek_gap = 256 * KB,
                    .read_ahead = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 6 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(seek_opens_in(s, 6 * MB, 6 * MB), 3);
    assert_int_equal(seek_opens_ok(s), 1);
    sb_stats st = stats(b);
    assert_int_equal(st.part_retries, 2);
    assert_int_equal(st.parts_opened, 1);
    assert_int_equal(st.state, SB_RUNNING);
}

/* open_at always fails: after `retries` reopens the stream fails with
   its error; nothing past that is asked of the source. */
static void test_open_at_failing_for_good(void **state)
{
    (void)state;
    seek_src *s = fx_seek(4 * MB);
    s->open_err = EHOSTUNREACH;
    s->open_fails = -1;
    sb_options o = {.retries = 2};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_fails_with(sb_wait_end_timed(b, NULL, WAIT_LONG_MS), EHOSTUNREACH);
    unsigned char c;
    assert_fails_with(sb_pread(b, &c, 1, 0), EHOSTUNREACH);
    assert_int_equal(seek_opens(s), 1 + 2);
    sb_stats st = stats(b);
    assert_int_equal(st.part_retries, 2);
    assert_int_equal(st.error, EHOSTUNREACH);
    fx_close(b);
    assert_int_equal(seek_opens(s), 1 + 2);
    assert_int_equal(seek_check(s, 1), 0);
}

/* A part's read failing for good: every stream that reaches 1 MiB fails
   there with EPROTO, having delivered nothing new, so the reopens count
   up to `retries` and the stream fails with EPROTO; the bytes before 1 MiB
   stay readable and right. */
static void test_part_failing_for_good(void **state)
{
    (void)state;
    const uint64_t len = 2 * MB;
    seek_src *s = fx_seek(len);
    s->fail_at = 1 * MB;
    s->fail_err = EPROTO;
    sb_options o = {.retries = 2, .mem_limit = 4 * MB};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_fails_with(sb_wait_end_timed(b, NULL, WAIT_LONG_MS), EPROTO);
    sb_stats st = stats(b);
    assert_int_equal(st.error, EPROTO);
    /* Other fetchers may have held bytes below 1 MiB apart when the
       stream failed: the prefix is at most 1 MiB. */
    assert_true(st.filled <= 1 * MB);
    assert_true(st.part_retries >= 2);
    assert_true(seek_opens_in(s, 1 * MB - SEAM, 1 * MB) >= 2);
    assert_int_equal(pat_read(b, 0, (size_t)st.filled, (ssize_t)st.filled), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- the length ----------------------------------------------------------------------- */

/*
 * Once open_at has reported the length: a read wholly past it returns 0
 * at once (a timed read with timeout 0 does not time out), a read that
 * straddles it returns the bytes before it, short, while the stream still
 * runs, and no part opens at or past it.  The stream runs on because the
 * first stream is held at 64 KiB and only it can bring the bytes after:
 * a plain first stream, which is never moved (an open_at first part could
 * be moved to the straddling read, its bytes then fetched by another, and
 * the stream could end before the checks).
 */
static void test_reads_past_and_across_the_length(void **state)
{
    (void)state;
    const uint64_t len = 10 * MB + 123;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->gate_first_only = 1;
    seek_gate(s, 64 * KB, 0);
    sb_options o = {.mem_limit = 1 * MB, .seek_gap = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    /* A far read opens a part, which reports the length. */
    assert_int_equal(pat_read(b, 5 * MB, 4 * KB, 4 * KB), 0);
    assert_true(wait_stat(b, length, len, WAIT_LONG_MS));
    assert_int_equal(stats(b).length, len);
    unsigned char buf[8192];
    assert_int_equal(sb_pread_timed(b, buf, 100, len, 0), 0);
    assert_int_equal(sb_pread_timed(b, buf, 100, len + 5 * MB, 0), 0);
    assert_int_equal(sb_pread(b, buf, sizeof buf, UINT64_MAX - 8192), 0);
    /* Straddling: the 4 KiB before the end. */
    assert_int_equal(pat_read(b, len - 4 * KB, 8 * KB, 4 * KB), 0);
    assert_int_equal(stats(b).state, SB_RUNNING);
    assert_int_equal(seek_opens_in(s, len, UINT64_MAX), 0);
    seek_release(s);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(seek_opens_in(s, len, UINT64_MAX), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* The object is 100 KiB shorter than the length open_at reports: the part
   that ends early is retried, then the stream fails with EIO; the bytes
   that came stay readable. */
static void test_part_ending_before_length_is_eio(void **state)
{
    (void)state;
    const uint64_t len = 2 * MB;
    seek_src *s = fx_seek(len);
    s->data_len = len - 100 * KB;
    sb_options o = {.retries = 2, .mem_limit = 4 * MB};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_fails_with(sb_wait_end_timed(b, NULL, WAIT_LONG_MS), EIO);
    sb_stats st = stats(b);
    assert_int_equal(st.error, EIO);
    assert_int_equal(st.length, len);
    assert_int_equal(st.filled, s->data_len);
    assert_int_equal(pat_read(b, 0, (size_t)st.filled, (ssize_t)st.filled), 0);
    /* Reopened at the byte reached (or a seam before it), twice at least
       (idle fetchers may try the missing tail too). */
    assert_true(st.part_retries >= 2);
    assert_true(seek_opens_in(s, s->data_len - SEAM, s->data_len) >= 2);
    unsigned char c;
    assert_fails_with(sb_pread(b, &c, 1, s->data_len), EIO);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* The object is longer than the length open_at reports: EIO, and the
   bytes before the length stay readable. */
static void test_delivering_past_length_is_eio(void **state)
{
    (void)state;
    const uint64_t len = 1 * MB;
    seek_src *s = fx_seek(len);
    s->data_len = len + 64 * KB;
    sb_options o = {.mem_limit = 4 * MB};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_fails_with(sb_wait_end_timed(b, NULL, WAIT_LONG_MS), EIO);
    sb_stats st = stats(b);
    assert_int_equal(st.error, EIO);
    assert_true(st.filled <= len);
    assert_int_equal(pat_read(b, 0, (size_t)st.filled, (ssize_t)st.filled), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- cancel and close with parts blocked in their sources ----------------------------- */

struct block_row {
    const char *name;
    int first;
    int iter;
    int cancel; /* sb_cancel with a reader waiting, then close; else close */
};

static const struct block_row block_rows[] = {
    {"cancel_parts_blocked", SEEK_FIRST_NONE, 0, 1},
    {"cancel_parts_blocked_plain_first", SEEK_FIRST_READ, 0, 1},
    {"close_parts_blocked", SEEK_FIRST_NONE, 0, 0},
    {"close_parts_blocked_iter", SEEK_FIRST_NEXT, 1, 0},
};

/*
 * Four streams blocked in their sources (the gate lets each deliver 64 KiB
 * from where it starts): the first stream at 64 KiB, parts at 1, 3 and 5
 * MiB after reads there.  Only a stream's cancel lets it go, so sb_close
 * can return only if it cancels every one; each is cancelled at most once
 * and closed exactly once, and open_at is never called after the close.
 */
static void test_cancel_close_with_parts_blocked(void **state)
{
    const struct block_row *row = *state;
    const uint64_t len = 16 * MB;
    seek_src *s = fx_seek(len);
    s->first = row->first;
    s->iter = row->iter;
    /* No length: idle fetchers would otherwise split the gaps on their
       own and park parts at the gates, below the reads. */
    s->report_len = 0;
    seek_gate(s, 64 * KB, 1 * MB);
    seek_gate(s, 1 * MB + 64 * KB, 3 * MB);
    seek_gate(s, 3 * MB + 64 * KB, 5 * MB);
    seek_gate(s, 5 * MB + 64 * KB, 0);
    /* No read_ahead: each part drains on from its read until the gate
       holds it (a part under read_ahead would ask for its read alone, and
       end before the gate).  No length, so no free fetcher splits a
       drain: the parts are where the reads put them. */
    sb_options o = {.mem_limit = 1 * MB, .max_parts = 4,
                    .seek_gap = 256 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 1 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 3 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 5 * MB, 4 * KB, 4 * KB), 0);
    assert_true(seek_wait_blocked(s, 4, WAIT_LONG_MS));
    assert_int_equal(seek_open_now(s), row->first == SEEK_FIRST_NONE ? 4 : 3);
    if (row->cancel) {
        /* A reader waits past every held byte, where only a moved
           fetcher (blocked at once) could serve it. */
        reader *r = fx_reader(b, RD_PREAD, 9 * MB, 4 * KB, -1);
        assert_non_null(r);
        assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
        sb_cancel(b);
        assert_true(reader_wait(r, WAIT_LONG_MS));
        assert_int_equal(r->ret, -1);
        assert_int_equal(r->err, ECANCELED);
        assert_int_equal(stats(b).error, ECANCELED);
        /* Held bytes stay readable. */
        assert_int_equal(pat_read(b, 3 * MB, 64 * KB, 64 * KB), 0);
        reader_join(r); /* before sb_close; teardown's join is then a no-op */
    }
    bg_call *c = fx_close_in_bg(b);
    assert_non_null(c);
    assert_true(bg_wait(c, WAIT_LONG_MS));
    bg_join(c);
    /* Every stream made was closed once, cancelled at most once. */
    assert_int_equal(seek_check(s, 1), 0);
    assert_int_equal(s->blocked, 0);
}

int main(void)
{
    struct CMUnitTest tests[32 + FX_NROWS(off_rows) + FX_NROWS(drop_rows) +
                            FX_NROWS(block_rows)] = {
        FX_TEST(test_changed_object_fails_with_estale),
        FX_TEST(test_changed_object_never_mixes),
        FX_TEST(test_espipe_without_first_stream_fails),
        FX_TEST(test_open_at_failing_for_a_while),
        FX_TEST(test_open_at_failing_for_good),
        FX_TEST(test_part_failing_for_good),
        FX_TEST(test_reads_past_and_across_the_length),
        FX_TEST(test_part_ending_before_length_is_eio),
        FX_TEST(test_delivering_past_length_is_eio),
    };
    size_t n = 0;
    while (tests[n].test_func != NULL)
        n++;
    n += FX_ROWS(tests + n, test_open_at_turns_parts_off, off_rows);
    n += FX_ROWS(tests + n, test_dropped_parts_complete_the_stream, drop_rows);
    n += FX_ROWS(tests + n, test_cancel_close_with_parts_blocked, block_rows);
    return seek_run_tests("test_ranged_faults", tests, n);
}
