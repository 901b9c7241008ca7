/* SPDX-License-Identifier: MIT */
/*
 * test_ranged.c - ranged sources (sb_source.open_at): the rules of the
 * header's "Ranged sources" that hold when nothing fails.  A far read
 * waits for one part, not for the bytes before it, and holds the drain
 * until that part's bytes come; two fetchers meet at a compared seam and
 * fetch no byte twice beyond it; idle fetchers split the largest gap;
 * max_parts, the options' errors, the first stream from open_at;
 * read_ahead, SB_RELEASE and max_retained with parts; views and armed
 * SB_NONBLOCK readers on far extents; 64 threads of random reads; and a
 * table of options that never change the bytes.
 *
 * Nothing here waits on the clock: the source's events (open_at calls,
 * gates, closes) and the stats (waiting, parts_active, pauses) are what
 * the tests wait for, each with a generous bound.  Failures, lengths,
 * changed objects and cancels are in test_ranged_faults.c.
 */
#include "ranged.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>

/* ---- a far read -------------------------------------------------------------------- */

/*
 * The case: 4 KiB at 900 MiB of a 1 GiB source delivering 100 MB/s
 * a part.  Waiting for the first stream would take 9 s and fetch 900 MiB;
 * a part at 900 MiB takes its latency and its own bytes.  Asserted through
 * what was fetched, not through the clock.  mem_limit is small, so the
 * part's bytes go to the spill file at their own offset (sparse).
 */
static void test_far_read_waits_for_one_part(void **state)
{
    (void)state;
    seek_src *s = fx_seek(1 * GB);
    s->first = SEEK_FIRST_READ;
    s->latency_us = 2000;
    s->rate = 100 * MB;
    sb_options o = {.mem_limit = 1 * MB, .read_ahead = 64 * KB,
                    .chunk_size = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 900 * MB, 4 * KB, 4 * KB), 0);
    sb_stats st = stats(b);
    assert_true(st.parts_opened >= 1);
    /* One part at the read's first missing byte. */
    assert_int_equal(seek_opens_in(s, 900 * MB, 900 * MB), 1);
    assert_int_equal(seek_opens_in(s, 1, 900 * MB - 1), 0);
    /* What came: the first stream's read_ahead and the part's, each a
       chunk or so past demand: nothing like 900 MiB. */
    assert_true(st.fetched <= 4 * MB);
    assert_true(st.filled < 4 * MB);
    assert_int_equal(st.length, 1 * GB);
    /* The far run, and the first stream's run once it has a byte (both
       wait out the same latency: either may come first). */
    assert_true(st.extents >= 1 + (st.filled > 0));
    /* The prefix still reads as ever. */
    assert_int_equal(pat_read(b, 0, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 900 * MB + 1000, 2000, 2000), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* With read and next both NULL, the first stream is open_at(ctx, 0, ...):
   the whole stream comes through parts, each byte right, none twice but
   the compared seams. */
static void test_first_stream_from_open_at(void **state)
{
    (void)state;
    const uint64_t len = 3 * MB + 17;
    seek_src *s = fx_seek(len);
    sb_options o = {.mem_limit = 1 * MB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_true(seek_opens(s) >= 1);
    assert_int_equal(seek_lowest_open(s), 0);
    assert_int_equal(pat_stream(b, len, 256 * KB), 0);
    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_ENDED);
    assert_int_equal(st.length, len);
    assert_int_equal(st.extents, 1);
    assert_int_equal(st.filled, len);
    assert_int_equal(st.fetched - st.refetched, len);
    assert_int_equal(st.fetched, atomic_load(&s->delivered));
    assert_true(st.parts_opened >= 1);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- seams and each byte once ------------------------------------------------------ */

/*
 * Two (or more) fetchers meet: the first stream is held at 1 MiB by the
 * gate while a part serves a read at 6 MiB and idle fetchers fill the gap
 * below it; then the first stream goes on.  Every part's start meets bytes
 * of another fetcher once, and each such seam compares exactly 4 KiB (each
 * upper side is whole by then): fetched - refetched is the length,
 * refetched is 4 KiB a seam.
 */
static void test_fetchers_meet_at_compared_seams(void **state)
{
    (void)state;
    const uint64_t len = 8 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->gate_first_only = 1;
    seek_gate(s, 1 * MB, 0);
    sb_options o = {.mem_limit = 2 * MB, .max_parts = 2,
                    .seek_gap = 256 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    assert_int_equal(pat_read(b, 6 * MB, 4 * KB, 4 * KB), 0);
    assert_true(seek_opens_in(s, 6 * MB, 6 * MB) == 1);
    /* Then the first stream goes on and meets what the parts hold. */
    seek_release(s);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_stream(b, len, 512 * KB), 0);
    sb_stats st = stats(b);
    int seams = seek_opens_ok(s) - seek_opens_in(s, 0, 0);
    assert_true(seams >= 1);
    assert_int_equal(st.extents, 1);
    assert_int_equal(st.fetched, atomic_load(&s->delivered));
    assert_int_equal(st.fetched - st.refetched, len);
    assert_int_equal(st.refetched, (uint64_t)seams * SEAM);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/*
 * At max_parts, a fetcher that no waiting read needs is moved (the lowest
 * first), and a part opened right after held bytes starts 4 KiB before
 * them.  The stream drains (no read_ahead) at 2 MB/s a part, so every
 * fetcher is busy for seconds and the moves are the only way the reads
 * can be served; the length is not reported, so no idle fetcher splits
 * the drain on its own:
 *   read at 60 KiB F0 at 0, draining;
 *   read at 4 MiB  a part at 4 MiB (max_parts 2 reached);
 *   read at 8 MiB  F0 is needed by nobody and is the lowest: moved there;
 *   read at the end of the prefix: nobody reaches it, the part at 4 MiB
 *                  is the lowest one no read needs: moved there, opened
 *                  4 KiB before it (held bytes end there).
 */
static void test_moved_fetcher_opens_a_seam_before_held(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    seek_src *s = fx_seek(len);
    s->report_len = 0;
    s->rate = 2 * MB;
    sb_options o = {.mem_limit = 1 * MB, .max_parts = 2,
                    .chunk_size = 16 * KB, .seek_gap = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 60 * KB, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, 4 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(seek_opens_in(s, 4 * MB, 4 * MB), 1);
    assert_int_equal(pat_read(b, 8 * MB, 4 * KB, 4 * KB), 0);
    assert_int_equal(seek_opens_in(s, 8 * MB, 8 * MB), 1);
    /* F0 was cancelled and closed to move. */
    assert_true(seek_wait_closed(s, 1, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_int_equal(st.parts_moved, 1);
    assert_true(st.parts_active <= 2);
    uint64_t e0 = st.filled;
    assert_true(e0 >= 64 * KB && e0 < 4 * MB);
    uint64_t ref0 = st.refetched;
    assert_int_equal(pat_read(b, e0, 4 * KB, 4 * KB), 0);
    assert_int_equal(seek_opens_in(s, e0 - SEAM, e0 - SEAM), 1);
    assert_int_equal(seek_opens_in(s, e0 - SEAM + 1, e0), 0);
    st = stats(b);
    assert_int_equal(st.parts_moved, 2);
    /* The part at 4 MiB was the one moved: closed too. */
    assert_true(seek_wait_closed(s, 2, WAIT_LONG_MS));
    /* The 4 KiB before e0 came again and were compared. */
    assert_true(st.refetched >= ref0 + SEAM);
    size_t whole = (size_t)(e0 + 4 * KB);
    assert_int_equal(pat_read(b, 0, whole, (ssize_t)whole), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- idle fetchers split the largest gap --------------------------------------------- */

/*
 * A server that limits each connection's rate is drained over max_parts
 * connections: with the length known and nothing pausing the stream, a
 * drain of a paced source by max_parts 4 opens at least 4 streams and has
 * 4 running at once.  Waited for on the stats, not on time.
 */
static void test_idle_fetchers_split_largest_gap(void **state)
{
    (void)state;
    const uint64_t len = UNDER_SAN ? 16 * MB : 32 * MB;
    seek_src *s = fx_seek(len);
    s->rate = 16 * MB;
    s->latency_us = 1000;
    sb_options o = {.mem_limit = 4 * MB, .max_parts = 4,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    reader *end = fx_reader(b, RD_WAIT_END, 0, 0, -1);
    assert_non_null(end);
    /* One part alone would take len / rate (1 or 2 s): long enough that
       the other three must have opened before it is done. */
    assert_true(wait_stat(b, parts_active, 4, WAIT_LONG_MS));
    assert_true(reader_wait(end, WAIT_LONG_MS));
    assert_int_equal(end->ret, 0);
    assert_int_equal(end->length, len);
    sb_stats st = stats(b);
    assert_true(st.parts_opened >= 4);
    assert_true(seek_opens_ok(s) >= 4);
    assert_int_equal(st.fetched - st.refetched, len);
    assert_true(st.refetched <= (uint64_t)seek_opens_ok(s) * SEAM);
    assert_int_equal(pat_stream(b, len, 1 * MB), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* Without a length nothing splits the gaps: a drain of an unpaced source
   that does not report its length still ends, every byte right, fetched
   no more than once beyond the seams. */
static void test_drain_without_length(void **state)
{
    (void)state;
    const uint64_t len = 5 * MB + 3;
    seek_src *s = fx_seek(len);
    s->report_len = 0;
    s->first = SEEK_FIRST_READ;
    static const size_t odd[] = {1, 7, 4093, 65537, 3, 8191};
    s->chunks = odd;
    s->nchunks = 6;
    sb_options o = {.mem_limit = 1 * MB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 4 * MB, 1000, 1000), 0);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_stream(b, len, 300 * KB), 0);
    sb_stats st = stats(b);
    assert_int_equal(st.length, len);
    assert_int_equal(st.fetched - st.refetched, len);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- options ------------------------------------------------------------------------- */

/* The options' and the source's errors: max_parts above 64, open_at with
   both read and next, a reserved field; and nothing called on a source
   whose open failed. */
static void test_options_einval(void **state)
{
    (void)state;
    seek_src *s = fx_seek(1 * MB);
    sb_source src = seek_source(s);
    sb_options o = {.max_parts = 65};
    assert_null_with(sb_open(&src, &o), EINVAL);
    o.max_parts = UINT32_MAX;
    assert_null_with(sb_open(&src, &o), EINVAL);
    /* open_at with both read and next: EINVAL, as without it. */
    sb_source both = src;
    both.read = count_source(fx_count(1, 0)).read;
    both.next = iter_source(fx_iter(1, NULL, 0)).next;
    assert_null_with(sb_open(&both, NULL), EINVAL);
    /* A reserved field of the source is still checked. */
    sb_source res = src;
    res.reserved[1] = &res;
    assert_null_with(sb_open(&res, NULL), EINVAL);
    assert_int_equal(seek_opens(s), 0);
    assert_int_equal(s->first_closed, 0);
}

/*
 * SB_LENGTH_KNOWN: length_hint is the length from the start, before any
 * part reports one (this source reports none): sb_stats shows it while
 * read_ahead holds the first stream near its start, a read past it
 * returns 0 at once and opens nothing, one that straddles it is short,
 * and the stream ends at it; and free fetchers split a drain at once.  A stream longer than the length fails with EIO.  EINVAL without
 * open_at, with length_hint 0, and from the opens that have no open_at.
 */
static void test_length_known_from_the_start(void **state)
{
    (void)state;
    const uint64_t len = 1 * MB;
    seek_src *s = fx_seek(len);
    s->report_len = 0;
    s->first = SEEK_FIRST_READ;
    /* read_ahead holds the first stream near its start (no drain), so
       any part would be a read's. */
    sb_options o = {.length_hint = len, .flags = SB_LENGTH_KNOWN, .read_ahead = 64 * KB,
                    .seek_gap = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    sb_stats st = stats(b);
    assert_int_equal(st.length, len);
    unsigned char buf[16];
    assert_int_equal(sb_pread(b, buf, sizeof buf, len), 0);
    assert_int_equal(sb_pread(b, buf, sizeof buf, len + 100), 0);
    assert_int_equal(seek_opens(s), 0);
    assert_int_equal(pat_read(b, len - 8, 16, 8), 0); /* short at the end */
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_read(b, 0, (size_t)len, (ssize_t)len), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);

    /* The object is longer than the length given: EIO, and the bytes
       before the length stay readable.  The tail is held at a gate until
       the first bytes have come: else a part split off to the tail could
       fail the stream before any byte at 0 arrived. */
    seek_src *t = fx_seek(len);
    t->report_len = 0;
    t->first = SEEK_FIRST_READ;
    t->data_len = len + 10;
    seek_gate(t, len - 64 * KB, 0);
    sb_options o2 = {.length_hint = len, .flags = SB_LENGTH_KNOWN,
                     .tmp_dir = fx_scratch()};
    b = open_seek(t, &o2);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 0, 4 * KB, 4 * KB), 0);
    seek_release(t);
    assert_int_equal(sb_wait_end(b, &got), -1);
    assert_int_equal(errno, EIO);
    assert_int_equal(pat_read(b, 0, 4 * KB, 4 * KB), 0);
    fx_close(b);

    /* Known from the start, the length lets free fetchers split the
       drain (once the first stream's rate is measured): a paced first
       stream (2 s alone) and no read at all, yet four streams run. */
    seek_src *u = fx_seek(32 * MB);
    u->report_len = 0;
    u->first = SEEK_FIRST_READ;
    u->rate = 16 * MB;
    sb_options o3 = {.length_hint = 32 * MB, .flags = SB_LENGTH_KNOWN, .max_parts = 4,
                     .mem_limit = 4 * MB, .tmp_dir = fx_scratch()};
    b = open_seek(u, &o3);
    assert_non_null(b);
    assert_true(wait_stat(b, parts_active, 4, WAIT_LONG_MS));
    fx_close(b);

    /* But not before: while the first stream is held at the gate before
       its first byte, its rate unknown, no part opens to split it; once
       released, it is split. */
    seek_src *v = fx_seek(32 * MB);
    v->report_len = 0;
    v->first = SEEK_FIRST_READ;
    v->rate = 16 * MB;
    v->gate_first_only = 1;
    seek_gate(v, 0, 1);
    b = open_seek(v, &o3);
    assert_non_null(b);
    assert_true(seek_wait_blocked(v, 1, WAIT_LONG_MS));
    /* An absence, so a bound: unheld, the split opens a part within a
       millisecond or two of the open; 300 ms is ample. */
    assert_false(seek_wait_opens(v, 1, 300));
    seek_release(v);
    assert_true(wait_stat(b, parts_active, 4, WAIT_LONG_MS));
    fx_close(b);

    sb_options bad = {.flags = SB_LENGTH_KNOWN};
    sb_source src = seek_source(s);
    assert_null_with(sb_open(&src, &bad), EINVAL); /* length_hint 0 */
    bad.length_hint = 10;
    sb_source plain = count_source(fx_count(1, 0));
    assert_null_with(sb_open(&plain, &bad), EINVAL); /* no open_at */
    assert_null_with(sb_open_mem("0123456789", 10, &bad), EINVAL);
    assert_null_with(sb_open_writer(&bad), EINVAL);
    assert_null_with(sb_open_fd(0, &bad), EINVAL);
}

/*
 * The measured seek gap is what a fetcher delivers over wall time while a
 * part opens, even when its bytes come in bursts (a socket's buffer: the
 * reads inside a burst return at once).  Parts at 16 MiB/s in 256 KiB
 * bursts, 10 ms of latency: a part's first byte comes with its first
 * burst, 10 ms + 256 KiB / 16 MiB/s = 25.6 ms after open_at, so the gap
 * is about 16 MiB/s x 25.6 ms = 420 KiB (the source's model, seek.c),
 * not what one instant read would make of it (GB/s, a gap of tens of
 * MiB).  (This test used to expect 16 MiB/s x 10 ms, leaving out the
 * first burst: every run measured 2.4 times that, and a loaded TSan run
 * went past its 4 times.)
 */
static void test_measured_seek_gap_over_bursts(void **state)
{
    (void)state;
    const uint64_t len = UNDER_SAN ? 6 * MB : 12 * MB;
    seek_src *s = fx_seek(len);
    s->rate = 16 * MB;
    s->burst = 256 * KB;
    s->latency_us = 10000;
    sb_options o = {.mem_limit = 1 * MB, .max_parts = 2, .chunk_size = 64 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    sb_stats st = stats(b);
    /* rate x (latency + the first burst's time) */
    const uint64_t want = 16 * MB / 100 + 256 * KB;
    if (st.seek_gap < want / 4 || st.seek_gap > want * 4)
        fail_msg("seek_gap %llu, want about %llu", (unsigned long long)st.seek_gap,
                 (unsigned long long)want);
    assert_int_equal(pat_read(b, 0, (size_t)len, (ssize_t)len), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/*
 * The source's done: a plain first stream that meets bytes a part
 * fetched stops there, and the source hears so once (its connection can
 * go), with no read after it; a first stream that ends by itself never
 * hears it.  The seek source counts the calls and flags any broken rule.
 */
static void test_done_when_the_first_stream_stops(void **state)
{
    (void)state;
    const uint64_t len = 4 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->rate = 32 * MB;
    sb_options o = {.mem_limit = 1 * MB, .max_parts = 2, .read_ahead = 64 * KB,
                    .seek_gap = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    /* A part from 1 MiB, then the drain: the first stream runs into it. */
    assert_int_equal(pat_read(b, 1 * MB, 4 * KB, 4 * KB), 0);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_read(b, 0, (size_t)len, (ssize_t)len), 0);
    fx_close(b); /* joins the fetchers: done was called by now, or never */
    assert_int_equal(atomic_load(&s->first_done), 1);
    assert_int_equal(seek_check(s, 1), 0);

    /* Ends by itself: no done. */
    seek_src *t = fx_seek(256 * KB);
    t->first = SEEK_FIRST_NEXT;
    sb_options o2 = {.max_parts = 2, .tmp_dir = fx_scratch()};
    b = open_seek(t, &o2);
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, 256 * KB);
    fx_close(b);
    assert_int_equal(atomic_load(&t->first_done), 0);
    assert_int_equal(seek_check(t, 1), 0);
}

/* 64 is the most, and open_at alone is a source: it drains, each byte
   right, the source closed once. */
static void test_max_parts_64_open_at_alone(void **state)
{
    (void)state;
    seek_src *s = fx_seek(1 * MB);
    sb_source src = seek_source(s);
    sb_options o = {.max_parts = 64};
    sb_buffer *b = fx_buffer(sb_open(&src, &o));
    assert_non_null(b);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(pat_stream(b, 1 * MB, 64 * KB), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
    assert_int_equal(s->first_closed, 1);
}

/* max_parts 1: no parts; the source is read as a plain one, open_at is
   never called, a far read waits for the first stream. */
static void test_max_parts_one_means_no_parts(void **state)
{
    (void)state;
    const uint64_t len = 4 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_NEXT;
    sb_options o = {.max_parts = 1, .mem_limit = 1 * MB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 3 * MB, 64 * KB, 64 * KB), 0);
    assert_int_equal(sb_wait_end(b, NULL), 0);
    assert_int_equal(seek_opens(s), 0);
    sb_stats st = stats(b);
    assert_int_equal(st.parts_opened, 0);
    assert_int_equal(st.refetched, 0);
    assert_int_equal(st.fetched, len);
    assert_int_equal(pat_stream(b, len, 512 * KB), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/*
 * max_parts 1 with open_at alone: one part at a time, moved to a far read
 * like any other.  read_ahead pauses the one fetcher past each read; a
 * read below where it paused, in bytes nobody holds or reaches, used to
 * wait for good (no second fetcher, and none was ever moved at max_parts
 * 1: found by fuzz_ranged).
 */
static void test_one_part_moves_to_each_read(void **state)
{
    (void)state;
    const uint64_t len = 4 * MB;
    seek_src *s = fx_seek(len);
    sb_options o = {.max_parts = 1, .mem_limit = 1 * MB, .read_ahead = 64 * KB,
                    .chunk_size = 64 * KB, .seek_gap = 64 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read_timed(b, 0, 4 * KB, 4 * KB, WAIT_LONG_MS), 0);
    assert_int_equal(pat_read_timed(b, 2 * MB, 4 * KB, 4 * KB, WAIT_LONG_MS), 0);
    assert_int_equal(pat_read_timed(b, 1 * MB, 4 * KB, 4 * KB, WAIT_LONG_MS), 0);
    assert_int_equal(pat_read_timed(b, 3 * MB, 4 * KB, 4 * KB, WAIT_LONG_MS), 0);
    /* One stream at a time.  (Where the 1 MiB read's bytes came from
       depends on timing: a part opened there, or the one fetcher went on
       to 2 MiB through it when it could not be moved, comparing a seam.) */
    sb_stats st = stats(b);
    assert_true(st.parts_active <= 1);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- flow control with parts ---------------------------------------------------------- */

/* The fetchers have stopped (all idle, or paused) and the stats count
   every byte the source delivered. */
struct settled_arg {
    sb_buffer *b;
    seek_src *s;
};

static int settled(void *arg)
{
    const struct settled_arg *a = arg;
    sb_stats st;
    if (sb_get_stats(a->b, &st) != 0)
        return 0;
    return (st.parts_active == 0 || st.paused)
           && st.fetched == atomic_load(&a->s->delivered);
}

/*
 * read_ahead ramps up.  A far read opens a part that asks for the read's
 * bytes alone (it continues no run); a reader that goes on from there
 * earns read_ahead, each part asking past the demand for as much as the
 * run holds (so that its reads find their bytes fetched ahead, and open
 * fewer parts than there are reads), and never more than read_ahead past
 * the furthest byte demanded: what was fetched is what was read,
 * read_ahead and a chunk per fetcher, and the seams.
 */
static void test_read_ahead_ramps_up(void **state)
{
    (void)state;
    const uint64_t len = 64 * MB, ra = 256 * KB, chunk = 64 * KB;
    const uint64_t far = 32 * MB;
    seek_src *s = fx_seek(len);
    sb_options o = {.mem_limit = 1 * MB, .read_ahead = ra,
                    .chunk_size = chunk, .seek_gap = 1 * MB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_int_equal(pat_read(b, 0, 4 * KB, 4 * KB), 0);
    assert_int_equal(pat_read(b, far, 4 * KB, 4 * KB), 0);
    /* The far part asked for the 4 KiB and nothing more. */
    pthread_mutex_lock(&s->mu);
    int far_opens = 0;
    uint64_t far_end = 0;
    for (int i = 0; i < s->opens; i++)
        if (s->offs[i] == far) {
            far_opens++;
            far_end = s->ends[i];
        }
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(far_opens, 1);
    assert_int_equal(far_end, far + 4 * KB);
    /* Read on, 64 KiB at a time, for 2 MiB. */
    const int nreads = 32;
    uint64_t at = far + 4 * KB;
    for (int i = 0; i < nreads; i++, at += 64 * KB)
        assert_int_equal(pat_read(b, at, 64 * KB, 64 * KB), 0);
    /* Fewer parts than reads: once the window grew, reads found their
       bytes fetched ahead. */
    int opens = seek_opens_in(s, far + 1, len);
    assert_true(opens >= 2);
    assert_true(opens <= nreads / 2);
    /* No part asked for more than read_ahead past the furthest byte read
       (a read that finds its bytes held demands nothing, so the demand
       is at most that). */
    pthread_mutex_lock(&s->mu);
    uint64_t max_end = 0;
    for (int i = 0; i < s->opens; i++)
        if (s->offs[i] > far && s->ends[i] > max_end)
            max_end = s->ends[i];
    pthread_mutex_unlock(&s->mu);
    assert_true(max_end <= at + ra);
    /* Once the fetcher has stopped (idle, or paused), every byte the
       source delivered is counted. */
    struct settled_arg sa = {b, s};
    assert_true(poll_until(settled, &sa, WAIT_LONG_MS));
    sb_stats st = stats(b);
    uint64_t read = 4 * KB + 4 * KB + (uint64_t)nreads * 64 * KB;
    uint64_t bound = read + 2 * (ra + chunk) + (uint64_t)(opens + 2) * SEAM;
    if (st.fetched > bound)
        fprintf(stderr, "fetched %llu > %llu\n",
                (unsigned long long)st.fetched, (unsigned long long)bound);
    assert_true(st.fetched <= bound);
    assert_int_equal(st.fetched, atomic_load(&s->delivered));
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* SB_RELEASE: no part opens below the floor; max_retained bounds the bytes
   held at or above it in all extents together. */
static void test_release_and_max_retained_with_parts(void **state)
{
    (void)state;
    const uint64_t len = 64 * MB, keep = 1 * MB, chunk = 64 * KB;
    seek_src *s = fx_seek(len);
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = chunk,
                    .flags = SB_RELEASE, .max_retained = keep,
                    .max_parts = 4, .seek_gap = 256 * KB,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    sb_reader *r = fx_sb_reader(b, 0);
    assert_non_null(r);
    assert_true(wait_for_pauses(b, 1, WAIT_LONG_MS));
    /* Release to 8 MiB, then read 4 KiB at 8.5 MiB. */
    assert_int_equal(sb_reader_release(r, 8 * MB), 0);
    unsigned char buf[4096];
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf, 8 * MB + 512 * KB),
                     sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 8 * MB + 512 * KB), 0);
    /* Nothing was opened below the floor of that moment. */
    assert_true(seek_opens_in(s, 1, 8 * MB - SEAM - 1) == 0);
    assert_true(wait_for_pauses(b, 2, WAIT_LONG_MS));
    sb_stats st = stats(b);
    /* Held at or above the floor (what the source delivered there):
       within max_retained plus a chunk per fetcher and the seams. */
    assert_true(st.floor >= 8 * MB);
    uint64_t above = seek_delivered_in(s, st.floor, UINT64_MAX);
    if (above > keep + 4 * chunk + 4 * SEAM)
        fprintf(stderr, "held above the floor: %llu\n",
                (unsigned long long)above);
    assert_true(above <= keep + 4 * chunk + 4 * SEAM);
    /* A far read past floor + max_retained is refused, as always. */
    assert_fails_with(sb_reader_pread(r, buf, sizeof buf, 40 * MB), ENOBUFS);
}

/* ---- views and armed readers on far extents ------------------------------------------ */

/*
 * A view of a far extent points at its bytes; it stops at the end of the
 * extent (the first stream is held at 64 KiB, a part serves [3 MiB, 5 MiB)
 * and is held at 5 MiB), and a view across the gap waits like a read.
 */
static void test_view_of_far_extent(void **state)
{
    (void)state;
    const uint64_t len = 8 * MB;
    seek_src *s = fx_seek(len);
    /* No length: no idle fetcher splits the gaps on its own, so the
       extents are the reads' only. */
    s->report_len = 0;
    seek_gate(s, 64 * KB, 3 * MB);
    seek_gate(s, 5 * MB, 0);
    sb_options o = {.mem_limit = 16 * MB, .max_parts = 2,
                    .seek_gap = 256 * KB};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    const void *p = NULL;
    ssize_t n = sb_view(b, 3 * MB, 4 * KB, &p);
    assert_int_equal(n, 4 * KB);
    assert_int_equal(pat_mismatches(p, (size_t)n, 3 * MB), 0);
    /* Both streams held: [0, 64K) and [3M, 5M). */
    assert_true(seek_wait_blocked(s, 2, WAIT_LONG_MS));
    sb_stats st = stats(b);
    assert_int_equal(st.extents, 2);
    assert_int_equal(st.filled, 64 * KB);
    /* In memory, inside one extent: the whole range. */
    n = sb_view(b, 4 * MB, 1 * MB, &p);
    assert_int_equal(n, 1 * MB);
    assert_int_equal(pat_mismatches(p, (size_t)n, 4 * MB), 0);
    /* Across the held part's end: waits (the range is not held). */
    reader *r = fx_reader(b, RD_PREAD, 5 * MB - 1024, 2048, -1);
    assert_non_null(r);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    seek_release(s);
    assert_true(reader_wait(r, WAIT_LONG_MS));
    assert_int_equal(sb_wait_end(b, NULL), 0);
    n = sb_view(b, 5 * MB - 1024, 2048, &p);
    assert_int_equal(n, 2048); /* joined now: one extent */
    assert_int_equal(pat_mismatches(p, 2048, 5 * MB - 1024), 0);
    assert_int_equal(stats(b).extents, 1);
}

/* An SB_NONBLOCK reader armed at off: its first read of n bytes there
   finds none (EAGAIN).  The buffer's poll fd, made first, in *pfd. */
static sb_reader *arm_at(sb_buffer *b, uint64_t off, void *buf, size_t n,
                         int *pfd)
{
    *pfd = sb_poll_fd(b);
    assert_true(*pfd >= 0);
    sb_reader *r = sb_reader_open_flags(b, 0, SB_NONBLOCK);
    assert_non_null(r);
    fx_track(r, NULL, fx_reader_close);
    assert_fails_with(sb_reader_pread(r, buf, n, off), EAGAIN);
    return r;
}

/* Once the poll fd is readable (within WAIT_LONG_MS): the readers
   sb_poll_ready gives, in ready[0..4), and their count; -1 if it is not. */
static int poll_ready(sb_buffer *b, int pfd, sb_reader **ready)
{
    struct pollfd pl = {.fd = pfd, .events = POLLIN};
    if (poll(&pl, 1, WAIT_LONG_MS) != 1)
        return -1;
    return (int)sb_poll_ready(b, ready, 4);
}

/* An armed SB_NONBLOCK reader is demand: its far range opens a part, it
   becomes ready, the poll fd is readable, and the answer is right. */
static void test_armed_reader_on_far_extent(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->gate_first_only = 1;
    seek_gate(s, 64 * KB, 0);
    /* No length and read_ahead: nothing fills the gaps on its own, so the
       prefix stays the held first stream's. */
    s->report_len = 0;
    sb_options o = {.mem_limit = 1 * MB, .seek_gap = 256 * KB,
                    .read_ahead = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    unsigned char buf[8192];
    int pfd;
    sb_reader *r = arm_at(b, 12 * MB, buf, sizeof buf, &pfd);
    assert_true(seek_wait_open_in(s, 12 * MB - SEAM, 12 * MB, WAIT_LONG_MS));
    sb_reader *ready[4];
    assert_int_equal(poll_ready(b, pfd, ready), 1);
    assert_ptr_equal(ready[0], r);
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf, 12 * MB),
                     sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, 12 * MB), 0);
    /* The first stream is still held: the stream is not whole. */
    assert_true(stats(b).filled <= 64 * KB);
}

/* ---- many threads --------------------------------------------------------------------- */

struct rand_team {
    sb_buffer *b;
    uint64_t len;
    int reads;
    size_t max_read;
    atomic_int failures;
    atomic_int started;
};

struct rand_arg {
    struct rand_team *t;
    uint64_t seed;
};

static uint64_t next_rand(uint64_t *x)
{
    *x += 0x9E3779B97F4A7C15u;
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void rand_reads(void *arg)
{
    struct rand_arg *a = arg;
    struct rand_team *t = a->t;
    unsigned char *buf = malloc(t->max_read);
    if (buf == NULL) {
        atomic_fetch_add(&t->failures, 1);
        return;
    }
    atomic_fetch_add(&t->started, 1);
    uint64_t x = a->seed;
    for (int i = 0; i < t->reads; i++) {
        uint64_t off = next_rand(&x) % t->len;
        size_t n = 1 + (size_t)(next_rand(&x) % t->max_read);
        size_t want = t->len - off < n ? (size_t)(t->len - off) : n;
        ssize_t got = sb_pread(t->b, buf, n, off);
        int err = errno;
        if (got != (ssize_t)want || pat_mismatches(buf, want, off) != 0) {
            fprintf(stderr, "random read %zu at %llu: %zd (errno %d)\n", n,
                    (unsigned long long)off, got, got < 0 ? err : 0);
            atomic_fetch_add(&t->failures, 1);
        }
    }
    free(buf);
}

/* ---- a far read comes first --------------------------------------------------------- */

struct far_read {
    sb_buffer *b;
    uint64_t off;
    int rc;
};

static void far_read_call(void *arg)
{
    struct far_read *r = arg;
    r->rc = pat_read(r->b, r->off, 4 * KB, 4 * KB);
}

/* 4 KiB at off read on a background thread; its rc in (*r)->rc once the
   call has returned. */
static bg_call *far_read_bg(sb_buffer *b, uint64_t off, struct far_read **r)
{
    *r = fx_calloc(sizeof **r);
    **r = (struct far_read){b, off, -1};
    return fx_bg(far_read_call, *r);
}

/* The far read on bg returns in time, and right. */
static void far_read_join(bg_call *bg, const struct far_read *r)
{
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    bg_join(bg);
    assert_int_equal(r->rc, 0);
}

/* Every byte of the stream, 1 MiB at a time, is version 0's. */
static void assert_whole(sb_buffer *b, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += 1 * MB)
        assert_int_equal(pat_read(b, off, 1 * MB, 1 * MB), 0);
}

/*
 * The header: a read that waits for a part to open comes first.  The far
 * part is held at the gate before its first byte; meanwhile the first
 * stream pauses (the pause in the stats is the event) and no part opens
 * to drain, though the part has reported the length and three fetchers
 * are idle.  Once the part's bytes come, the drain goes on over parts
 * and the whole stream is right.  Without the hold the first stream never
 * pauses here (no read_ahead, no max_retained) and drain parts open at
 * once.
 */
static void test_far_read_holds_the_drain(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    const uint64_t far = 12 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->rate = 4 * MB; /* the first stream alone: 3 s to the far read */
    seek_gate(s, far, far + 1);
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 4, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    struct far_read *r;
    bg_call *bg = far_read_bg(b, far, &r);
    assert_non_null(bg);
    /* The far part has opened (the length is known from it) and waits at
       the gate for its first byte. */
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    assert_true(wait_stat(b, paused, 1, WAIT_LONG_MS));
    assert_int_equal(seek_opens(s), 1);
    assert_int_equal(seek_opens_in(s, far, far), 1);
    sb_stats st = stats(b);
    assert_int_equal(st.length, len);
    assert_int_equal(st.parts_opened, 1);
    seek_release(s);
    far_read_join(bg, r);
    /* The drain goes on, over parts. */
    uint64_t total = 0;
    assert_int_equal(sb_wait_end(b, &total), 0);
    assert_int_equal(total, len);
    st = stats(b);
    assert_true(st.parts_opened >= 2);
    assert_whole(b, len);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/*
 * The header: with max_parts fetchers busy and each needed by a read, a
 * read waits for one to come free.  An armed reader and a blocked read
 * hold both fetchers at their gates before their first bytes; a read
 * between them gets a part of its own once one is free, and the fetcher
 * below it does not stream there meanwhile.  It used to: the read raised
 * that fetcher's demand, and under read_ahead it then asked for, and
 * fetched, everything up to the read (bench-http F2 saw parts of 60 MB
 * for reads of 64 KiB).  The armed reader's want stays until it reads,
 * so no unwant of its own moves its fetcher away first.
 */
static void test_busy_fetchers_make_a_read_wait(void **state)
{
    (void)state;
    const uint64_t len = 64 * MB;
    const uint64_t a = 8 * MB, c = 20 * MB, d = 40 * MB;
    seek_src *s = fx_seek(len); /* the first stream is open_at(0) */
    seek_gate(s, a, a + 1);
    seek_gate(s, d, d + 1);
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 2, .read_ahead = 64 * KB,
                    .seek_gap = 64 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    unsigned char buf[4096];
    int pfd;
    sb_reader *r = arm_at(b, a, buf, sizeof buf, &pfd);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    struct far_read *rd, *rc;
    bg_call *bd = far_read_bg(b, d, &rd);
    assert_non_null(bd);
    assert_true(seek_wait_blocked(s, 2, WAIT_LONG_MS));
    bg_call *bc = far_read_bg(b, c, &rc);
    assert_non_null(bc);
    assert_true(wait_stat(b, waiting, 2, WAIT_LONG_MS));
    seek_release(s);
    far_read_join(bd, rd);
    far_read_join(bc, rc);
    assert_int_equal(seek_opens_in(s, c, c), 1);
    assert_int_equal(seek_delivered_in(s, a + 1 * MB, c), 0);
    /* The armed reader's bytes come, if not already: its poll fd says
       when.  (Its fetcher may have gone to c before they were stored.) */
    ssize_t got = -1;
    for (int i = 0; i < 100 && got < 0; i++) {
        got = sb_reader_pread(r, buf, sizeof buf, a);
        if (got < 0) {
            assert_int_equal(errno, EAGAIN);
            sb_reader *ready[4];
            assert_true(poll_ready(b, pfd, ready) >= 0);
        }
    }
    assert_int_equal(got, sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, a), 0);
    assert_int_equal(seek_check(s, 0), 0);
    /* The teardown closes the reader, then the buffer. */
}

static int no_part_active(void *arg)
{
    sb_stats st;
    return sb_get_stats(arg, &st) == 0 && st.parts_active == 0;
}

/*
 * SB_RELEASE: the floor may pass a seam after the policy chose it.  A
 * part opens 4 KiB before a run nobody extends, to compare the seam, and
 * is held at the gate before its first byte; a reader then releases
 * everything below the run's end, so the run's last 4 KiB are given back.
 * The compare must not count them (nobody can read them any more): the
 * stream goes on, and the read right after the run gets its bytes.  It
 * failed with ESTALE, the given-back bytes reading back as zeros (found
 * by a stress of armed readers releasing behind themselves).
 */
static void test_release_passes_a_seam(void **state)
{
    (void)state;
    const uint64_t len = 8 * MB;
    seek_src *s = fx_seek(len); /* the first stream is open_at(0) */
    /* read_ahead past a chunk: the first part asks for less than the
       fetcher would read, so it ends (and closes) rather than pause at
       its end. */
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 2, .read_ahead = 256 * KB,
                    .seek_gap = 64 * KB, .flags = SB_RELEASE,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    sb_reader *r = sb_reader_open(b, 0);
    assert_non_null(r);
    fx_track(r, NULL, fx_reader_close);
    unsigned char buf[4096];
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf, 0), sizeof buf);
    /* The first part asked for the read's bytes or a chunk and ended (it
       is closed, its fetcher idle): nobody extends [0, e). */
    assert_true(seek_wait_closed(s, 1, WAIT_LONG_MS));
    assert_true(poll_until(no_part_active, b, WAIT_LONG_MS));
    uint64_t e = stats(b).filled;
    assert_true(e >= 4 * KB && e < len);
    seek_gate(s, e - 4 * KB, e - 4 * KB + 1);
    struct far_read *rf;
    bg_call *bg = far_read_bg(b, e, &rf);
    assert_non_null(bg);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    assert_int_equal(seek_opens_in(s, e - 4 * KB, e - 4 * KB), 1);
    assert_int_equal(sb_reader_release(r, e), 0);
    seek_release(s);
    far_read_join(bg, rf);
    sb_stats st = stats(b);
    assert_int_equal(st.state, SB_RUNNING);
    assert_int_equal(st.error, 0);
    /* The teardown closes the reader, then the buffer. */
}

/* The first stream's fetcher policy (sched_getscheduler) while a far
   read holds the drain, and after; the far part's while it is held
   before its first byte (in the source's read, not asleep on its cv). */
struct hold_policies {
    int first_held, part_held, first_after;
};

/* sb_open over the seek source, on the thread that runs this (its policy
   is what the first fetcher inherits), under policy. */
struct open_call {
    seek_src *s;
    sb_options o;
    int policy;
    int policy_rc;
    sb_buffer *b;
};

static void open_call(void *arg)
{
    struct open_call *c = arg;
    struct sched_param sp = {0};
    if (c->policy != SCHED_OTHER)
        c->policy_rc = sched_setscheduler(0, c->policy, &sp);
    sb_source src = seek_source(c->s);
    c->b = sb_open(&src, &c->o);
}

static struct hold_policies hold_policies(int policy)
{
    const uint64_t len = 4 * MB;
    const uint64_t far = 3 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->rate = 4 * MB; /* the first stream alone: 750 ms to the far read */
    seek_gate(s, far, far + 1);
    struct open_call *c = fx_calloc(sizeof *c);
    c->s = s;
    c->o = (sb_options){.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                        .max_parts = 2, .tmp_dir = fx_scratch()};
    c->policy = policy;
    bg_call *ob = fx_bg(open_call, c);
    assert_non_null(ob);
    assert_true(bg_wait(ob, WAIT_LONG_MS));
    bg_join(ob);
    assert_int_equal(c->policy_rc, 0);
    sb_buffer *b = fx_buffer(c->b);
    assert_non_null(b);
    /* The first stream's fetcher has read (its thread is known). */
    assert_true(wait_stat(b, filled, 64 * KB, WAIT_LONG_MS));
    struct far_read *r;
    bg_call *bg = far_read_bg(b, far, &r);
    assert_non_null(bg);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    /* The stats are read under the lock the fetcher lets go of only in
       its wait: once it shows paused, the fetcher sleeps as it will. */
    assert_true(wait_stat(b, paused, 1, WAIT_LONG_MS));
    struct hold_policies h;
    int first = seek_thread_id(s, 1, 0), part = seek_thread_id(s, 0, far);
    assert_true(first > 0 && part > 0);
    h.first_held = sched_getscheduler(first);
    h.part_held = sched_getscheduler(part);
    seek_release(s);
    far_read_join(bg, r);
    /* The first stream goes on (the watermark is its alone): its fetcher
       has woken and runs, or sleeps in the source or in a wait of its own
       that no hold makes. */
    assert_true(wait_stat(b, filled, stats(b).filled + 64 * KB, WAIT_LONG_MS));
    h.first_after = sched_getscheduler(first);
    uint64_t total = 0;
    assert_int_equal(sb_wait_end(b, &total), 0);
    assert_int_equal(total, len);
    assert_whole(b, len);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
    return h;
}

/*
 * A fetcher that sleeps while a far read holds the drain sleeps under
 * SCHED_BATCH (so that the read's return, which wakes it, keeps its CPU),
 * and only then: the far part's fetcher, blocked in its source, and the
 * first stream's once the hold is over, run under SCHED_OTHER as the
 * thread that made them.  Without the switch the held fetcher shows
 * SCHED_OTHER.
 */
static void test_held_fetchers_sleep_as_batch(void **state)
{
    (void)state;
    struct hold_policies h = hold_policies(SCHED_OTHER);
    assert_int_equal(h.first_held, SCHED_BATCH);
    assert_int_equal(h.part_held, SCHED_OTHER);
    assert_int_equal(h.first_after, SCHED_OTHER);
}

/* A fetcher made by a thread under another policy keeps it, held or not:
   the application chose it.  Here SCHED_BATCH, which any thread may take
   and leave (SCHED_IDLE could not be left without CAP_SYS_NICE, so a
   wrong switch would go unseen, and its threads may starve on a busy
   machine): after the hold it must not have been put under SCHED_OTHER. */
static void test_held_fetchers_keep_other_policies(void **state)
{
    (void)state;
    struct hold_policies h = hold_policies(SCHED_BATCH);
    assert_int_equal(h.first_held, SCHED_BATCH);
    assert_int_equal(h.first_after, SCHED_BATCH);
}

struct fds_in {
    const char *dir;
    int want;
};

static int fds_in_reached(void *arg)
{
    struct fds_in *f = arg;
    return fds_into_dir(f->dir) == f->want;
}

/*
 * A read that waits for bytes past the memory region makes the spill
 * file while its part opens, so that the part's first bytes are stored
 * at once.  The part is held at the gate before its first byte; the file
 * (an fd into tmp_dir) must appear meanwhile.  Without the read's making
 * it, the first fetcher to store past memory would, and none does while
 * the gate holds.
 */
static void test_far_read_makes_the_spill_file(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    const uint64_t far = 12 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->gate_first_only = 0;
    seek_gate(s, 512 * KB, 0); /* every stream, past 512 KiB: in memory */
    const char *dir = fx_scratch();
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 4, .tmp_dir = dir};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS)); /* the first */
    assert_int_equal(fds_into_dir(dir), 0);
    struct far_read *r;
    bg_call *bg = far_read_bg(b, far, &r);
    assert_non_null(bg);
    assert_true(seek_wait_blocked(s, 2, WAIT_LONG_MS)); /* and the far part */
    assert_true(poll_until(fds_in_reached, &(struct fds_in){dir, 1}, WAIT_LONG_MS));
    seek_release(s);
    far_read_join(bg, r);
    assert_int_equal(fds_into_dir(dir), 1); /* one file, not two */
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

struct wait_end_call {
    sb_buffer *b;
    int rc;
    uint64_t total;
};

static void wait_end_call(void *arg)
{
    struct wait_end_call *w = arg;
    w->rc = sb_wait_end(w->b, &w->total);
}

/* The drain reaches the end by itself: the watermark gets to len within
   WAIT_LONG_MS * 3, watched through the stats, which (unlike
   sb_wait_end, which demands everything and so wakes every fetcher)
   touch nothing.  Then sb_wait_end answers; if it did not, the buffer is
   cancelled so that the call returns, and the test fails. */
static void assert_drains(sb_buffer *b, uint64_t len)
{
    assert_true(wait_stat(b, filled, len, WAIT_LONG_MS * 3));
    struct wait_end_call *w = fx_calloc(sizeof *w);
    *w = (struct wait_end_call){b, -2, 0};
    bg_call *bg = fx_bg(wait_end_call, w);
    assert_non_null(bg);
    int in_time = bg_wait(bg, WAIT_LONG_MS);
    if (!in_time)
        sb_cancel(b);
    bg_join(bg);
    assert_true(in_time);
    assert_int_equal(w->rc, 0);
    assert_int_equal(w->total, len);
}

/*
 * The hold is for a read that returns at once with its bytes: an armed
 * reader whose range has come may not read for long (its event loop
 * decides), and it holds nothing.  Here it never reads: the drain still
 * goes on to the end.  Were an armed reader's want to hold the drain like
 * a blocked read's, every fetcher would stay paused and the drain would
 * never end.
 */
static void test_armed_reader_does_not_hold_the_drain(void **state)
{
    (void)state;
    const uint64_t len = 16 * MB;
    const uint64_t far = 12 * MB;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    s->rate = 8 * MB;
    /* The first stream stops at 1 MiB until released: the watermark
       stays there, far below the armed range. */
    s->gate_first_only = 1;
    seek_gate(s, 1 * MB, 0);
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 4, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    unsigned char buf[4096];
    int pfd;
    sb_reader *r = arm_at(b, far, buf, sizeof buf, &pfd);
    sb_reader *ready[4];
    assert_int_equal(poll_ready(b, pfd, ready), 1);
    assert_ptr_equal(ready[0], r);
    /* Its bytes are held, far past the watermark, and it does not read. */
    assert_true(stats(b).filled <= 1 * MB);
    seek_release(s);
    assert_drains(b, len);
    assert_int_equal(sb_reader_pread(r, buf, sizeof buf, far), sizeof buf);
    assert_int_equal(pat_mismatches(buf, sizeof buf, far), 0);
    assert_whole(b, len);
    /* The teardown closes the reader, then the buffer. */
}

/*
 * A hold's end wakes every fetcher it paused, though the reader that ends
 * it wakes only one (which wakes the rest).  Four fetchers drain; a far
 * read moves one of them, whose part is held at the gate before its first
 * byte; the other three pause (the event waited on).  Once the read has
 * its bytes and returns, all of them must go on: the drain ends.  A
 * fetcher left asleep would leave its stretch unfetched for good.
 */
static void test_hold_end_wakes_every_paused_fetcher(void **state)
{
    (void)state;
    const uint64_t len = 32 * MB;
    const uint64_t far = 29 * MB + 12345;
    seek_src *s = fx_seek(len);
    s->first = SEEK_FIRST_READ;
    /* A stream: 16 s for the whole, alone.  The drain's four stretches
       start 8 MiB apart at most, so the one below far is some 2.5 s from
       it when the read comes (it must need a part of its own); the read
       comes at once, once all four run. */
    s->rate = 2 * MB;
    seek_gate(s, far, far + 1);
    sb_options o = {.mem_limit = 1 * MB, .chunk_size = 64 * KB,
                    .max_parts = 4, .seek_gap = 64 * KB,
                    .length_hint = len, .flags = SB_LENGTH_KNOWN,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    /* The drain runs over every fetcher (once the first one's rate is
       known, its stretch is split). */
    assert_true(wait_stat(b, parts_active, 4, WAIT_LONG_MS));
    struct far_read *r;
    bg_call *bg = far_read_bg(b, far, &r);
    assert_non_null(bg);
    assert_true(seek_wait_blocked(s, 1, WAIT_LONG_MS));
    /* Nothing paused before (no read_ahead, no max_retained): three
       pauses are the three other fetchers'. */
    assert_true(wait_stat(b, pauses, 3, WAIT_LONG_MS));
    assert_true(stats(b).parts_moved >= 1);
    seek_release(s);
    far_read_join(bg, r);
    assert_drains(b, len);
    assert_whole(b, len);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* 64 threads of random reads, max_parts 8, a paced source with latency:
   parts open, move and meet under TSan; every byte is checked, no stream
   is closed twice, and at most 8 streams ran at once. */
static void test_many_threads_random_reads(void **state)
{
    (void)state;
    const uint64_t len = 256 * MB;
    seek_src *s = fx_seek(len);
    s->latency_us = 500;
    s->rate = 400 * MB;
    sb_options o = {.mem_limit = 2 * MB, .max_parts = 8,
                    .read_ahead = 256 * KB, .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    struct rand_team *t = fx_calloc(sizeof *t);
    t->b = b;
    t->len = len;
    t->reads = UNDER_SAN ? 8 : 24;
    t->max_read = 64 * KB;
    enum { N = 64 };
    struct rand_arg *args = fx_calloc(N * sizeof *args);
    bg_call *bg[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct rand_arg){t, 1000u + (uint64_t)i};
        bg[i] = fx_bg(rand_reads, &args[i]);
        assert_non_null(bg[i]);
    }
    int late = 0;
    for (int i = 0; i < N; i++)
        if (bg_wait(bg[i], WAIT_LONG_MS * 3))
            bg_join(bg[i]);
        else
            late++;
    assert_int_equal(late, 0);
    assert_int_equal(atomic_load(&t->failures), 0);
    sb_stats st = stats(b);
    assert_true(st.parts_opened >= 2);
    assert_true(st.parts_active <= 8);
    /* The fetchers still run (read_ahead): what the source handed over
       and the buffer has not counted yet is at most a read in flight per
       fetcher. */
    uint64_t delivered = atomic_load(&s->delivered);
    assert_true(st.fetched <= delivered);
    assert_true(delivered - st.fetched <= 8 * (uint64_t)(64 * KB));
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

/* ---- the bytes never depend on the options --------------------------------------------- */

struct bytes_row {
    const char *name;
    size_t mem_limit;
    size_t chunk_size;
    uint32_t max_parts;
    uint64_t seek_gap;
    int iter;
    int first;
    int ignore_end;
};

static const size_t odd_chunks[] = {1, 2, 3, 5, 7, 4099, 65521};

static const struct bytes_row bytes_rows[] = {
    {"bytes_default", 0, 0, 0, 0, 0, SEEK_FIRST_NONE, 0},
    {"bytes_tiny_mem_small_chunks", 4096, 4096, 4, 0, 0, SEEK_FIRST_READ, 0},
    {"bytes_odd_chunks_iter_parts", 100000, 7777, 8, 64 * KB, 1,
     SEEK_FIRST_NEXT, 0},
    {"bytes_two_parts_gap_one_chunk", 1 * MB, 64 * KB, 2, 64 * KB, 0,
     SEEK_FIRST_NONE, 0},
    {"bytes_max_parts_64", 512 * KB, 32 * KB, 64, 16 * KB, 0,
     SEEK_FIRST_READ, 0},
    {"bytes_parts_ignore_end", 1 * MB, 64 * KB, 4, 128 * KB, 0,
     SEEK_FIRST_NONE, 1},
    {"bytes_no_parts", 1 * MB, 64 * KB, 1, 0, 0, SEEK_FIRST_READ, 0},
};

/* The same stream under every row: 4 threads read it at scattered offsets
   while it fills, then it is read whole; every byte is version 0's. */
static void test_options_never_change_bytes(void **state)
{
    const struct bytes_row *row = *state;
    const uint64_t len = 6 * MB + 4097;
    seek_src *s = fx_seek(len);
    s->first = row->first;
    s->iter = row->iter;
    s->ignore_end = row->ignore_end;
    if (row->chunk_size == 4096 || row->iter) {
        s->chunks = odd_chunks;
        s->nchunks = sizeof odd_chunks / sizeof odd_chunks[0];
    }
    sb_options o = {.mem_limit = row->mem_limit, .chunk_size = row->chunk_size,
                    .max_parts = row->max_parts, .seek_gap = row->seek_gap,
                    .tmp_dir = fx_scratch()};
    sb_buffer *b = open_seek(s, &o);
    assert_non_null(b);
    struct rand_team *t = fx_calloc(sizeof *t);
    t->b = b;
    t->len = len;
    t->reads = 16;
    t->max_read = 100 * KB;
    struct rand_arg *args = fx_calloc(4 * sizeof *args);
    bg_call *bg[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct rand_arg){t, 77u * (uint64_t)i + 5};
        bg[i] = fx_bg(rand_reads, &args[i]);
        assert_non_null(bg[i]);
    }
    int late = 0;
    for (int i = 0; i < 4; i++)
        if (bg_wait(bg[i], WAIT_LONG_MS))
            bg_join(bg[i]);
        else
            late++;
    assert_int_equal(late, 0);
    assert_int_equal(atomic_load(&t->failures), 0);
    uint64_t got = 0;
    assert_int_equal(sb_wait_end(b, &got), 0);
    assert_int_equal(got, len);
    assert_int_equal(pat_stream(b, len, 333 * KB), 0);
    sb_stats st = stats(b);
    assert_int_equal(st.extents, 1);
    if (!row->ignore_end)
        assert_int_equal(st.fetched - st.refetched, len);
    assert_int_equal(st.fetched, atomic_load(&s->delivered));
    if (row->max_parts == 1)
        assert_int_equal(seek_opens(s), 0);
    fx_close(b);
    assert_int_equal(seek_check(s, 1), 0);
}

int main(void)
{
    struct CMUnitTest tests[32 + FX_NROWS(bytes_rows)] = {
        FX_TEST(test_far_read_waits_for_one_part),
        FX_TEST(test_first_stream_from_open_at),
        FX_TEST(test_fetchers_meet_at_compared_seams),
        FX_TEST(test_moved_fetcher_opens_a_seam_before_held),
        FX_TEST(test_idle_fetchers_split_largest_gap),
        FX_TEST(test_drain_without_length),
        FX_TEST(test_options_einval),
        FX_TEST(test_length_known_from_the_start),
        FX_TEST(test_measured_seek_gap_over_bursts),
        FX_TEST(test_done_when_the_first_stream_stops),
        FX_TEST(test_max_parts_64_open_at_alone),
        FX_TEST(test_max_parts_one_means_no_parts),
        FX_TEST(test_one_part_moves_to_each_read),
        FX_TEST(test_far_read_holds_the_drain),
        FX_TEST(test_held_fetchers_sleep_as_batch),
        FX_TEST(test_busy_fetchers_make_a_read_wait),
        FX_TEST(test_held_fetchers_keep_other_policies),
        FX_TEST(test_armed_reader_does_not_hold_the_drain),
        FX_TEST(test_far_read_makes_the_spill_file),
        FX_TEST(test_hold_end_wakes_every_paused_fetcher),
        FX_TEST(test_read_ahead_ramps_up),
        FX_TEST(test_release_and_max_retained_with_parts),
        FX_TEST(test_release_passes_a_seam),
        FX_TEST(test_view_of_far_extent),
        FX_TEST(test_armed_reader_on_far_extent),
        FX_TEST(test_many_threads_random_reads),
    };
    size_t n = 0;
    while (tests[n].test_func != NULL)
        n++;
    n += FX_ROWS(tests + n, test_options_never_change_bytes, bytes_rows);
    return seek_run_tests("test_ranged", tests, n);
}
