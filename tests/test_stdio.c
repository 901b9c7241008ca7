/* SPDX-License-Identifier: MIT */
/*
 * test_stdio.c - sb_fopen: a read-only FILE * with its own cursor.
 *
 * fread, fgets, getc, fseek, ftell and rewind over memory-only and spilled
 * streams, every byte checked against the generator; reads that return as
 * soon as their bytes are there (fgets does not wait for a stdio buffer's
 * worth); SEEK_END waiting for the end, or using length_hint; the stream's
 * errors as ferror + errno; EOF; one FILE per thread over one buffer;
 * invalid seeks and writes; and fclose leaving the buffer alone.
 *
 * A FILE blocked in a read is a reader blocked in the library, so
 * wait_for_waiters tells when it waits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "stream.h"

/* ---- local helpers (no asserts) ------------------------------------------ */

static void close_file(void *f)
{
    fclose(f);
}

/* sb_fopen(b), fclose'd by teardown.  Made after b, so it is closed before
   b is. */
static FILE *fx_fopen(sb_buffer *b)
{
    FILE *f = sb_fopen(b);
    if (f != NULL)
        fx_track(f, NULL, close_file);
    return f;
}

/* fclose f now, for a test that checks what fclose returns. */
static int fx_fclose(FILE *f)
{
    fx_untrack(f);
    return fclose(f);
}

/* A read-style source over fixed text that delivers only what the test has
   allowed; past that it blocks until more is allowed, or the stream is
   ended or failed.  Like gate_src, but with text, so fgets has lines. */
typedef struct text_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *text;
    size_t len;
    size_t allowed;
    size_t pos;
    int ended;
    int err;
    int blocked;
} text_gate;

static ssize_t tg_read(void *ctx, void *buf, size_t cap)
{
    text_gate *g = ctx;
    ssize_t ret;
    pthread_mutex_lock(&g->mu);
    while (g->pos >= g->allowed && !g->ended && !g->err) {
        g->blocked = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_cond_wait(&g->cv, &g->mu);
    }
    g->blocked = 0;
    if (g->pos < g->allowed) {
        size_t n = g->allowed - g->pos < cap ? g->allowed - g->pos : cap;
        memcpy(buf, g->text + g->pos, n);
        g->pos += n;
        ret = (ssize_t)n;
    } else {
        ret = g->err ? -(ssize_t)g->err : 0;
    }
    pthread_mutex_unlock(&g->mu);
    return ret;
}

/* Let the stream reach `upto` bytes of the text (capped at its length). */
static void tg_allow(text_gate *g, size_t upto)
{
    pthread_mutex_lock(&g->mu);
    if (upto > g->len)
        upto = g->len;
    if (upto > g->allowed)
        g->allowed = upto;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void tg_end(void *p)
{
    text_gate *g = p;
    pthread_mutex_lock(&g->mu);
    g->ended = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void tg_destroy(void *p)
{
    text_gate *g = p;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* A text gate on the heap, ended in pass 1 and destroyed in pass 2. */
static text_gate *fx_text_gate(const char *text)
{
    text_gate *g = fx_calloc(sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->text = text;
    g->len = strlen(text);
    fx_track(g, tg_end, tg_destroy);
    return g;
}

/* fread n bytes at the FILE's position and compare them with the generator
   at off.  0 if fread returned want and the bytes match, else -1. */
static int fread_check(FILE *f, size_t n, uint64_t off, size_t want)
{
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return -1;
    size_t got = fread(buf, 1, n, f);
    int rc = 0;
    if (got != want) {
        fprintf(stderr, "fread(%zu) at %llu = %zu, expected %zu\n", n,
                (unsigned long long)off, got, want);
        rc = -1;
    } else if (gen_mismatches(buf, got, off) != 0) {
        fprintf(stderr, "fread(%zu) at %llu: wrong bytes\n", n,
                (unsigned long long)off);
        rc = -1;
    }
    free(buf);
    return rc;
}

/* fseek + ftell in one: the position after fseek(f, off, whence), or -2
   if fseek failed (errno kept). */
static long seek_tell(FILE *f, long off, int whence)
{
    if (fseek(f, off, whence) != 0)
        return -2;
    return ftell(f);
}

/* A FILE over a gated stream (options o, may be NULL) whose producer has
   taken the first `allow` bytes and is blocked for more. */
struct gated {
    gate_src *g;
    sb_buffer *b;
    FILE *f;
};

static struct gated gated_file(const sb_options *o, uint64_t allow)
{
    struct gated t;
    t.g = fx_gate();
    t.b = fx_buffer(open_gate(t.g, o));
    assert_non_null(t.b);
    t.f = fx_fopen(t.b);
    assert_non_null(t.f);
    gate_allow(t.g, allow);
    assert_true(gate_wait_blocked(t.g, WAIT_LONG_MS));
    return t;
}

/* bg (a call on f of b, just started) waits in the library: it started,
   a reader of b waits, and it has not returned. */
static void expect_waiting(sb_buffer *b, bg_call *bg)
{
    assert_non_null(bg);
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
}

/* ---- the FILE over complete streams -------------------------------------- */

static void test_fopen_null(void **state)
{
    (void)state;
    errno = 0;
    assert_null(sb_fopen(NULL));
    assert_int_equal(errno, EINVAL);
}

/* A stream of len generated bytes: in memory (sb_open_mem) or from a source
   that spills most of it to a file. */
struct stream {
    sb_buffer *b;
    uint64_t len;
    int spilled;
};

#define STREAM_MEM (64 << 10)

static void stream_open(struct stream *s, int spill, uint64_t len)
{
    s->len = len;
    s->spilled = spill;
    if (!spill) {
        unsigned char *data = fx_calloc((size_t)len);
        gen_fill(data, (size_t)len, 0);
        s->b = fx_buffer(sb_open_mem(data, (size_t)len, NULL));
    } else {
        static const size_t pattern[] = {1000, 17, 65536, 3, 4096};
        char *dir = fx_scratch();
        chunk_src *cs = fx_chunk(len, pattern, 5);
        sb_options o = {.mem_limit = STREAM_MEM, .tmp_dir = dir};
        s->b = fx_buffer(open_chunk(cs, &o));
    }
    assert_non_null(s->b);
}

/* The spilled variant is only worth its name if it did spill. */
static void stream_check_spilled(const struct stream *s)
{
    if (!s->spilled)
        return;
    sb_stats st;
    assert_int_equal(sb_wait_end(s->b, NULL), 0);
    assert_int_equal(sb_get_stats(s->b, &st), 0);
    assert_int_equal(st.spilled, s->len - STREAM_MEM);
}

/*
 * The cases over a complete stream are a table: each row names a check of
 * the FILE and the stream it runs over (in memory or spilled, and its
 * length).  The runner opens the stream and the FILE; after the check,
 * fclose must succeed, the stream must still read as its len generated
 * bytes, and the spilled variant must have spilled.
 */
struct stream_case {
    const char *name;
    void (*check)(FILE *f, uint64_t len);
    int spill;
    uint64_t len;
};

static void run_stream_case(void **state)
{
    const struct stream_case *c = *state;
    struct stream s;
    stream_open(&s, c->spill, c->len);
    FILE *f = fx_fopen(s.b);
    assert_non_null(f);
    c->check(f, c->len);
    assert_int_equal(fx_fclose(f), 0);
    assert_int_equal(check_stream(s.b, c->len), 0);
    stream_check_spilled(&s);
}

static void check_fread(FILE *f, uint64_t len)
{
    static const size_t sizes[] = {1, 7, 4093, 65536, 100, 8192, 3};
    uint64_t off = 0;
    for (size_t i = 0; off < len; i++) {
        size_t n = sizes[i % 7];
        size_t want = len - off < n ? (size_t)(len - off) : n;
        assert_int_equal(fread_check(f, n, off, want), 0);
        off += want;
        assert_int_equal(ftell(f), (long)off);
        assert_int_equal(feof(f) != 0, want < n);
    }
    assert_true(feof(f));
    assert_false(ferror(f));
    unsigned char c;
    assert_int_equal(fread(&c, 1, 1, f), 0);
    assert_int_equal(getc(f), EOF);
    assert_true(feof(f));
    assert_false(ferror(f));
}

static void check_getc_fgets(FILE *f, uint64_t len)
{
    /* getc, byte by byte. */
    size_t bad = 0;
    uint64_t i;
    for (i = 0; i < len; i++) {
        int c = getc(f);
        if (c == EOF)
            break;
        if (c != gen_byte(i))
            bad++;
    }
    assert_int_equal(i, len);
    assert_int_equal(bad, 0);
    assert_int_equal(getc(f), EOF);
    assert_true(feof(f));

    /* fgets, line by line (lines end at the generator's '\n' bytes, or
       at the buffer size); ftell says how many bytes each returned. */
    rewind(f);
    assert_false(feof(f));
    assert_int_equal(ftell(f), 0);
    char line[97];
    uint64_t off = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        long pos = ftell(f);
        size_t n = (size_t)(pos - (long)off);
        if (n == 0 || n > sizeof line - 1) {
            bad++;
            break;
        }
        if (gen_mismatches(line, n, off))
            bad++;
        /* It stopped at a newline, the buffer size or the end. */
        if (line[n - 1] != '\n' && n != sizeof line - 1 && (uint64_t)pos != len)
            bad++;
        if (line[n] != '\0')
            bad++;
        off = (uint64_t)pos;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(off, len);
    assert_true(feof(f));
    assert_false(ferror(f));
}

static void check_seek(FILE *f, uint64_t len)
{
    const long L = (long)len;

    /* SEEK_SET anywhere, including across the memory limit (64 KiB). */
    static const long at[] = {0, 65536 - 10, 65536, 12345, 1, 100000};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        assert_int_equal(seek_tell(f, at[i], SEEK_SET), at[i]);
        assert_int_equal(fread_check(f, 100, (uint64_t)at[i], 100), 0);
        assert_int_equal(ftell(f), at[i] + 100);
    }
    /* SEEK_CUR forward and back. */
    assert_int_equal(seek_tell(f, 1000, SEEK_SET), 1000);
    assert_int_equal(seek_tell(f, 5000, SEEK_CUR), 6000);
    assert_int_equal(getc(f), gen_byte(6000));
    assert_int_equal(seek_tell(f, -4001, SEEK_CUR), 2000);
    assert_int_equal(fread_check(f, 70000, 2000, 70000), 0);
    assert_int_equal(seek_tell(f, -70000, SEEK_CUR), 2000);
    assert_int_equal(getc(f), gen_byte(2000));
    /* SEEK_END: the stream's length. */
    assert_int_equal(seek_tell(f, 0, SEEK_END), L);
    assert_int_equal(getc(f), EOF);
    assert_true(feof(f));
    assert_int_equal(seek_tell(f, -50, SEEK_END), L - 50);
    assert_false(feof(f)); /* fseek clears it */
    assert_int_equal(fread_check(f, 100, len - 50, 50), 0);
    assert_true(feof(f));
    assert_int_equal(seek_tell(f, -L, SEEK_END), 0);
    assert_int_equal(getc(f), gen_byte(0));
    /* Past the end: nothing to read, and no error. */
    assert_int_equal(seek_tell(f, L + 1000, SEEK_SET), L + 1000);
    assert_int_equal(fread_check(f, 10, len + 1000, 0), 0);
    assert_true(feof(f));
    assert_false(ferror(f));
    /* rewind. */
    rewind(f);
    assert_int_equal(ftell(f), 0);
    assert_false(feof(f));
    assert_int_equal(fread_check(f, 3000, 0, 3000), 0);
}

static void check_seek_before_start_fails(FILE *f, uint64_t len)
{
    assert_fails_with(fseek(f, -1, SEEK_SET), EINVAL);
    assert_int_equal(ftell(f), 0);
    assert_int_equal(fread_check(f, 10, 0, 10), 0);
    assert_fails_with(fseek(f, -11, SEEK_CUR), EINVAL);
    assert_int_equal(ftell(f), 10);
    assert_int_equal(getc(f), gen_byte(10));
    assert_fails_with(fseek(f, -(long)len - 1, SEEK_END), EINVAL);
    assert_int_equal(ftell(f), 11);
    assert_int_equal(getc(f), gen_byte(11));
    assert_false(ferror(f));
}

/* The runner checks, after fclose, that nothing was written. */
static void check_write_fails(FILE *f, uint64_t len)
{
    assert_int_equal(fputc('x', f), EOF);
    assert_true(ferror(f));
    clearerr(f);
    assert_int_equal(fwrite("abc", 1, 3, f), 0);
    assert_true(ferror(f));
    clearerr(f);
    assert_int_equal(fputs("abc", f), EOF);
    assert_true(ferror(f));
    clearerr(f);
    /* Nothing was written: the stream reads as before. */
    assert_int_equal(fread_check(f, (size_t)len, 0, (size_t)len), 0);
}

static const struct stream_case stream_cases[] = {
    {"test_fread/in_memory", check_fread, 0, 200003},
    {"test_fread/spilled", check_fread, 1, 1000003},
    {"test_getc_fgets/in_memory", check_getc_fgets, 0, 100003},
    {"test_getc_fgets/spilled", check_getc_fgets, 1, 300007},
    {"test_seek/in_memory", check_seek, 0, 150001},
    {"test_seek/spilled", check_seek, 1, 700001},
    {"test_seek_before_start_fails/in_memory", check_seek_before_start_fails, 0,
     5000},
    {"test_seek_before_start_fails/spilled", check_seek_before_start_fails, 1,
     STREAM_MEM + 5000},
    {"test_write_fails/in_memory", check_write_fails, 0, 5000},
    {"test_write_fails/spilled", check_write_fails, 1, STREAM_MEM + 5000},
};

static void test_fclose_keeps_buffer(void **state)
{
    (void)state;
    int fds = count_fds();
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 3000);

    for (int i = 0; i < 3; i++) {
        FILE *f = fx_fopen(b);
        assert_non_null(f);
        assert_int_equal(fread_check(f, 1000, 0, 1000), 0);
        assert_int_equal(fx_fclose(f), 0);
    }
    /* The stream runs on and reads as before. */
    assert_int_equal(wait_available(b, 3000, WAIT_LONG_MS), 1);
    assert_int_equal(check_read(b, 0, 3000, 3000), 0);
    gate_allow(g, 9000);
    gate_end(g);
    assert_int_equal(check_stream(b, 9000), 0);
    FILE *f = fx_fopen(b);
    assert_non_null(f);
    assert_int_equal(fread_check(f, 10000, 0, 9000), 0);
    assert_int_equal(fx_fclose(f), 0);
    assert_int_equal(check_stream(b, 9000), 0);
    fx_close(b);
    assert_int_equal(count_fds(), fds);
}

/* ---- slow streams ---------------------------------------------------------- */

struct line_call {
    FILE *f;
    char buf[256];
    char *ret;
    int eof;
    int error;
};

static void do_fgets(void *arg)
{
    struct line_call *c = arg;
    c->ret = fgets(c->buf, sizeof c->buf, c->f);
    c->eof = feof(c->f) != 0;
    c->error = ferror(c->f) != 0;
}

/* An fgets of f on its own thread; its record lives until teardown. */
static struct line_call *fgets_bg(FILE *f, bg_call **bg)
{
    struct line_call *c = fx_calloc(sizeof *c);
    c->f = f;
    *bg = fx_bg(do_fgets, c);
    return c;
}

static const char text[] = "first line\n"
                           "second line\n"
                           "3\n";

/* fgets returns each line as soon as it has arrived.  A pulling source
   (text gate) or a writer feeds the stream: one row each. */
struct lines_case {
    const char *name;
    int pushing;
};

static const struct lines_case lines_cases[] = {
    {"test_fgets_returns_lines_as_they_arrive/pull", 0},
    {"test_fgets_returns_lines_as_they_arrive/push", 1},
};

static void test_fgets_returns_lines_as_they_arrive(void **state)
{
    const int pushing = ((const struct lines_case *)*state)->pushing;
    text_gate *g = NULL;
    sb_buffer *b;
    if (pushing) {
        b = fx_buffer(sb_open_writer(NULL));
    } else {
        g = fx_text_gate(text);
        sb_source src = {.read = tg_read, .ctx = g};
        b = fx_buffer(sb_open(&src, NULL));
    }
    assert_non_null(b);
    FILE *f = fx_fopen(b);
    assert_non_null(f);

    const size_t l1 = strlen("first line\n");
    const size_t l2 = strlen("second line\n");
    const size_t part = strlen("sec");
    struct line_call *c;
    bg_call *bg;

    /* Blocks while nothing has arrived. */
    c = fgets_bg(f, &bg);
    expect_waiting(b, bg);
    /* One line arrives: fgets returns it, while the rest has not. */
    if (pushing)
        assert_int_equal(sb_write(b, text, l1), (ssize_t)l1);
    else
        tg_allow(g, l1);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_ptr_equal(c->ret, c->buf);
    assert_string_equal(c->buf, "first line\n");
    assert_false(c->eof);
    assert_false(c->error);
    assert_int_equal(sb_available(b), l1);

    /* Part of a line is not a line: fgets waits for the rest.  Once "sec"
       is published, a waiting reader can only be one that took it and
       waits for what follows. */
    c = fgets_bg(f, &bg);
    assert_non_null(bg);
    if (pushing)
        assert_int_equal(sb_write(b, text + l1, part), (ssize_t)part);
    else
        tg_allow(g, l1 + part);
    assert_true(wait_available(b, l1 + part, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    if (pushing)
        assert_int_equal(sb_write(b, text + l1 + part, l2 - part),
                         (ssize_t)(l2 - part));
    else
        tg_allow(g, l1 + l2);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_ptr_equal(c->ret, c->buf);
    assert_string_equal(c->buf, "second line\n");
    assert_int_equal(sb_available(b), l1 + l2);

    /* The last line, then the end: EOF. */
    if (pushing) {
        assert_int_equal(sb_write(b, text + l1 + l2, 2), 2);
    } else {
        tg_allow(g, sizeof text - 1);
    }
    c = fx_calloc(sizeof *c);
    c->f = f;
    do_fgets(c);
    assert_string_equal(c->buf, "3\n");
    c = fgets_bg(f, &bg);
    expect_waiting(b, bg);
    if (pushing)
        assert_int_equal(sb_finish(b, 0), 0);
    else
        tg_end(g);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_null(c->ret);
    assert_true(c->eof);
    assert_false(c->error);
    assert_int_equal(fx_fclose(f), 0);
}

struct getc_call {
    FILE *f;
    int c;
    int eof;
    int error;
    int err;
};

static void do_getc(void *arg)
{
    struct getc_call *c = arg;
    errno = 0;
    c->c = getc(c->f);
    c->err = errno;
    c->eof = feof(c->f) != 0;
    c->error = ferror(c->f) != 0;
}

static struct getc_call *getc_bg(FILE *f, bg_call **bg)
{
    struct getc_call *c = fx_calloc(sizeof *c);
    c->f = f;
    *bg = fx_bg(do_getc, c);
    return c;
}

static void test_getc_returns_each_byte_as_it_arrives(void **state)
{
    (void)state;
    struct gated t = gated_file(NULL, 0);
    gate_src *g = t.g;
    sb_buffer *b = t.b;
    FILE *f = t.f;

    /* Each getc waits until its byte is there, not for more. */
    for (uint64_t i = 0; i < 5; i++) {
        bg_call *bg;
        struct getc_call *c = getc_bg(f, &bg);
        expect_waiting(b, bg);
        gate_allow(g, i + 1);
        assert_true(bg_wait(bg, WAIT_LONG_MS));
        assert_int_equal(c->c, gen_byte(i));
        assert_int_equal(ftell(f), (long)i + 1);
    }
    /* At the end of what arrived, getc waits; the end of the stream gives
       EOF, not an error. */
    bg_call *bg;
    struct getc_call *c = getc_bg(f, &bg);
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    expect_waiting(b, bg);
    gate_end(g);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(c->c, EOF);
    assert_true(c->eof);
    assert_false(c->error);
    assert_int_equal(fx_fclose(f), 0);
}

/* ---- SEEK_END ------------------------------------------------------------ */

struct seek_call {
    FILE *f;
    long off;
    int rc;
    int err;
    long pos;
};

static void do_seek_end(void *arg)
{
    struct seek_call *c = arg;
    errno = 0;
    c->rc = fseek(c->f, c->off, SEEK_END);
    c->err = errno;
    c->pos = ftell(c->f);
}

static void test_seek_end_waits_for_end(void **state)
{
    (void)state;
    struct gated t = gated_file(NULL, 1000);
    gate_src *g = t.g;
    sb_buffer *b = t.b;
    FILE *f = t.f;

    struct seek_call *c = fx_calloc(sizeof *c);
    *c = (struct seek_call){.f = f, .off = -10};
    bg_call *bg = fx_bg(do_seek_end, c);
    expect_waiting(b, bg);
    /* More bytes, but not the end: with all 5000 published, the seek
       still waits. */
    gate_allow(g, 5000);
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    assert_true(wait_for_waiters(b, 1, WAIT_LONG_MS));
    assert_false(bg_wait(bg, 0));
    gate_end(g);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->pos, 4990);
    assert_int_equal(fread_check(f, 100, 4990, 10), 0);
    assert_true(feof(f));
    assert_int_equal(fx_fclose(f), 0);
}

static void test_seek_end_uses_length_hint(void **state)
{
    (void)state;
    sb_options o = {.length_hint = 123456};
    struct gated t = gated_file(&o, 1000);
    gate_src *g = t.g;
    sb_buffer *b = t.b;
    FILE *f = t.f;

    /* The stream is running and will not end until told: the seek must not
       wait for it. */
    struct seek_call *c = fx_calloc(sizeof *c);
    *c = (struct seek_call){.f = f, .off = 0};
    bg_call *bg = fx_bg(do_seek_end, c);
    assert_non_null(bg);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->pos, 123456);
    c->off = -456;
    do_seek_end(c);
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->pos, 123000);
    /* Back into what has arrived. */
    assert_int_equal(seek_tell(f, 500, SEEK_SET), 500);
    assert_int_equal(fread_check(f, 500, 500, 500), 0);

    /* Once the stream has ended, SEEK_END is its real length, whatever the
       hint said. */
    gate_allow(g, 3000);
    gate_end(g);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 3000);
    c->off = 0;
    do_seek_end(c);
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->pos, 3000);
    assert_int_equal(fx_fclose(f), 0);
}

/* A FILE over an SB_NONBLOCK reader reads like a FILE over a non-blocking
   fd: SEEK_END on a running stream without a length hint fails at once
   with EAGAIN instead of waiting for the end.  The seek runs on its own
   thread, so a seek that waits fails the test instead of hanging it. */
static void test_seek_end_nonblocking_eagain(void **state)
{
    (void)state;
    gate_src *g = fx_gate();
    sb_buffer *b = fx_buffer(open_gate(g, NULL));
    assert_non_null(b);
    gate_allow(g, 1000); /* and never ends */
    assert_true(gate_wait_blocked(g, WAIT_LONG_MS));
    sb_reader *r = sb_reader_open_flags(b, 0, SB_NONBLOCK);
    assert_non_null(r);
    fx_track(r, NULL, fx_reader_close);
    FILE *f = sb_reader_fopen(r);
    assert_non_null(f);
    fx_track(f, NULL, close_file);

    struct seek_call *c = fx_calloc(sizeof *c);
    *c = (struct seek_call){.f = f, .off = 0};
    bg_call *bg = fx_bg(do_seek_end, c);
    assert_non_null(bg);
    assert_true(bg_wait(bg, WAIT_LONG_MS));
    assert_int_equal(c->rc, -1);
    assert_int_equal(c->err, EAGAIN);
    assert_int_equal(sb_reader_armed(r), 0);
    /* The position is where it was, and the bytes that are there read. */
    assert_int_equal(ftell(f), 0);
    assert_int_equal(fread_check(f, 100, 0, 100), 0);

    /* Once the stream has ended, SEEK_END is its length. */
    gate_end(g);
    uint64_t len = 0;
    assert_int_equal(sb_wait_end(b, &len), 0);
    assert_int_equal(len, 1000);
    c->off = -10;
    do_seek_end(c);
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->pos, 990);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_source_failure_is_ferror(void **state)
{
    (void)state;
    struct gated t = gated_file(NULL, 100);
    sb_buffer *b = t.b;
    FILE *f = t.f;
    gate_fail(t.g, EPROTO);
    uint64_t len;
    assert_fails_with(sb_wait_end(b, &len), EPROTO);

    /* The bytes that arrived, then the error. */
    unsigned char buf[1000];
    errno = 0;
    assert_int_equal(fread(buf, 1, sizeof buf, f), 100);
    assert_int_equal(errno, EPROTO);
    assert_true(ferror(f));
    assert_false(feof(f));
    assert_int_equal(gen_mismatches(buf, 100, 0), 0);

    /* The error stays; earlier bytes stay readable. */
    clearerr(f);
    errno = 0;
    assert_int_equal(getc(f), EOF);
    assert_int_equal(errno, EPROTO);
    assert_true(ferror(f));
    clearerr(f);
    rewind(f);
    assert_int_equal(fread_check(f, 100, 0, 100), 0);
    assert_false(ferror(f));
    assert_int_equal(fx_fclose(f), 0);
}

struct fread_call {
    FILE *f;
    size_t n;
    size_t got;
    size_t bad;
    int err;
    int eof;
    int error;
};

static void do_fread(void *arg)
{
    struct fread_call *c = arg;
    unsigned char *buf = malloc(c->n);
    if (buf == NULL) {
        c->err = ENOMEM;
        return;
    }
    long pos = ftell(c->f);
    errno = 0;
    c->got = fread(buf, 1, c->n, c->f);
    c->err = errno;
    c->eof = feof(c->f) != 0;
    c->error = ferror(c->f) != 0;
    c->bad = pos < 0 ? 1 : gen_mismatches(buf, c->got, (uint64_t)pos);
    free(buf);
}

/* ---- SEEK_SET and SEEK_CUR never wait ------------------------------------------- */

struct set_call {
    FILE *f;
    long off;
    int whence;
    long pos;     /* ftell after, or -2 if fseek failed */
    int err;
};

static void do_seek(void *arg)
{
    struct set_call *c = arg;
    errno = 0;
    c->pos = seek_tell(c->f, c->off, c->whence);
    c->err = errno;
}

/*
 * glibc's fseek reads a buffer at the block boundary below its target
 * through the cookie; none of that may wait for bytes that have not
 * arrived.  Offsets inside a block, on a boundary, far ahead, back in
 * what arrived; SEEK_SET, SEEK_CUR, rewind.
 */
static void test_seek_set_never_waits(void **state)
{
    (void)state;
    struct gated t = gated_file(NULL, 100);
    gate_src *g = t.g;
    sb_buffer *b = t.b;
    FILE *f = t.f;

    static const struct { long off; int whence; long want; } seeks[] = {
        {10000, SEEK_SET, 10000}, {16384, SEEK_SET, 16384},
        {8191, SEEK_SET, 8191},   {(1L << 20) + 5, SEEK_SET, (1L << 20) + 5},
        {50, SEEK_SET, 50},       {20000, SEEK_CUR, 20050},
        {-50, SEEK_CUR, 20000},   {123457, SEEK_SET, 123457},
    };
    for (size_t i = 0; i < sizeof seeks / sizeof seeks[0]; i++) {
        struct set_call *c = fx_calloc(sizeof *c);
        *c = (struct set_call){.f = f, .off = seeks[i].off,
                               .whence = seeks[i].whence};
        bg_call *bg = fx_bg(do_seek, c);
        assert_non_null(bg);
        assert_true(bg_wait(bg, 10000));
        assert_int_equal(c->pos, seeks[i].want);
        assert_false(ferror(f));
    }
    rewind(f);
    assert_int_equal(ftell(f), 0);
    assert_int_equal(fread_check(f, 100, 0, 100), 0);

    /* After a seek past what arrived, the read waits, then reads there:
       inside a block, then on a block boundary. */
    static const long targets[] = {10000, 16384};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(seek_tell(f, targets[i], SEEK_SET), targets[i]);
        struct fread_call *c = fx_calloc(sizeof *c);
        *c = (struct fread_call){.f = f, .n = 10};
        bg_call *bg = fx_bg(do_fread, c);
        expect_waiting(b, bg);
        gate_allow(g, (uint64_t)targets[i] + 5000);
        assert_true(bg_wait(bg, WAIT_LONG_MS));
        assert_int_equal(c->got, 10);
        assert_int_equal(c->bad, 0);
        assert_false(ferror(f));
        assert_false(feof(f));
    }
}

static void test_cancel_is_ferror_ecanceled(void **state)
{
    (void)state;
    struct gated t = gated_file(NULL, 100);
    sb_buffer *b = t.b;

    /* One FILE waits inside a fread, another in a getc past the end. */
    FILE *f1 = t.f, *f2 = fx_fopen(b);
    assert_non_null(f2);
    assert_int_equal(fseek(f2, 100, SEEK_SET), 0);
    struct fread_call *r = fx_calloc(sizeof *r);
    *r = (struct fread_call){.f = f1, .n = 1000};
    bg_call *b1 = fx_bg(do_fread, r);
    assert_non_null(b1);
    bg_call *b2;
    struct getc_call *c = getc_bg(f2, &b2);
    assert_non_null(b2);
    assert_true(wait_for_waiters(b, 2, WAIT_LONG_MS));
    assert_false(bg_wait(b1, 0));
    assert_false(bg_wait(b2, 0));

    sb_cancel(b);
    assert_true(bg_wait(b1, WAIT_LONG_MS));
    assert_true(bg_wait(b2, WAIT_LONG_MS));
    assert_int_equal(r->got, 100);
    assert_int_equal(r->bad, 0);
    assert_true(r->error);
    assert_false(r->eof);
    assert_int_equal(r->err, ECANCELED);
    assert_int_equal(c->c, EOF);
    assert_true(c->error);
    assert_false(c->eof);
    assert_int_equal(c->err, ECANCELED);

    assert_int_equal(fx_fclose(f1), 0);
    assert_int_equal(fx_fclose(f2), 0);
}

/* ---- one FILE per thread ------------------------------------------------------- */

enum { FILE_THREADS = 4 };

struct file_reader {
    sb_buffer *b;
    FILE *f;       /* NULL: the thread opens its own */
    int how;       /* 0 fread, 1 getc, 2 fgets, 3 seeks then fread */
    uint64_t len;  /* expected length */
    uint64_t got;
    size_t bad;
    int open_failed;
    int error;
    int eof;
};

static void file_reader_main(void *arg)
{
    struct file_reader *r = arg;
    FILE *f = r->f != NULL ? r->f : sb_fopen(r->b);
    if (f == NULL) {
        r->open_failed = 1;
        return;
    }
    unsigned char buf[5000];
    switch (r->how) {
    case 0:
        for (size_t n; (n = fread(buf, 1, 4093, f)) > 0; r->got += n)
            r->bad += gen_mismatches(buf, n, r->got);
        break;
    case 1:
        for (int c; (c = getc(f)) != EOF; r->got++)
            r->bad += c != gen_byte(r->got);
        break;
    case 2:
        while (fgets((char *)buf, 999, f) != NULL) {
            long pos = ftell(f);
            if (pos <= (long)r->got) {
                r->bad++;
                break;
            }
            r->bad += gen_mismatches(buf, (size_t)pos - r->got, r->got);
            r->got = (uint64_t)pos;
        }
        break;
    default: {
        /* Jump around the stream, then read it all from the start. */
        uint64_t x = 12345;
        for (int i = 0; i < 200; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            uint64_t off = (x >> 20) % r->len;
            if (fseek(f, (long)off, SEEK_SET) != 0) {
                r->bad++;
                continue;
            }
            size_t n = fread(buf, 1, sizeof buf, f);
            size_t want = r->len - off < sizeof buf ? (size_t)(r->len - off)
                                                    : sizeof buf;
            r->bad += (n != want) + gen_mismatches(buf, n, off);
        }
        rewind(f);
        for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0; r->got += n)
            r->bad += gen_mismatches(buf, n, r->got);
        break;
    }
    }
    r->error = ferror(f) != 0;
    r->eof = feof(f) != 0;
    if (fclose(f) != 0)
        r->error = 1;
}

static void test_one_file_per_thread(void **state)
{
    (void)state;
    char *dir = fx_scratch();
    const uint64_t len = 2 * (1 << 20) + 4321;
    static const size_t pattern[] = {3000, 1, 65536, 77};
    chunk_src *cs = fx_chunk(len, pattern, 4);
    sb_options o = {.mem_limit = 256 << 10, .tmp_dir = dir};
    sb_buffer *b = fx_buffer(open_chunk(cs, &o));
    assert_non_null(b);

    /* Readers start while the stream is still arriving. */
    struct file_reader *r = fx_calloc(FILE_THREADS * sizeof *r);
    bg_call *bg[FILE_THREADS];
    for (int i = 0; i < FILE_THREADS; i++) {
        r[i].b = b;
        r[i].how = i;
        r[i].len = len;
        if (i % 2 == 0) { /* half opened here, half by their thread */
            r[i].f = fx_fopen(b);
            assert_non_null(r[i].f);
        }
        bg[i] = fx_bg(file_reader_main, &r[i]);
        assert_non_null(bg[i]);
        if (r[i].f != NULL)
            fx_untrack(r[i].f); /* the thread closes it */
    }
    for (int i = 0; i < FILE_THREADS; i++) {
        assert_true(bg_wait(bg[i], WAIT_LONG_MS * 3));
        assert_false(r[i].open_failed);
        assert_int_equal(r[i].got, len);
        assert_int_equal(r[i].bad, 0);
        assert_false(r[i].error);
        assert_true(r[i].eof);
    }
    assert_int_equal(check_stream(b, len), 0);
}

int main(void)
{
    static const struct CMUnitTest single[] = {
        FX_TEST(test_fclose_keeps_buffer),
        FX_TEST(test_getc_returns_each_byte_as_it_arrives),
        FX_TEST(test_seek_set_never_waits),
        FX_TEST(test_seek_end_waits_for_end),
        FX_TEST(test_seek_end_uses_length_hint),
        FX_TEST(test_seek_end_nonblocking_eagain),
        FX_TEST(test_source_failure_is_ferror),
        FX_TEST(test_cancel_is_ferror_ecanceled),
        FX_TEST(test_one_file_per_thread),
    };
    struct CMUnitTest tests[1 + FX_NROWS(stream_cases) + FX_NROWS(lines_cases) +
                            FX_NROWS(single)];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest)FX_TEST(test_fopen_null);
    n += FX_ROWS(&tests[n], run_stream_case, stream_cases);
    n += FX_ROWS(&tests[n], test_fgets_returns_lines_as_they_arrive,
                 lines_cases);
    memcpy(&tests[n], single, sizeof single);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
