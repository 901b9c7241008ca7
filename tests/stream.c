/* SPDX-License-Identifier: MIT */
/*
 * stream.c - long and endless streams for the flow-control tests; see
 * stream.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t pat_word(uint64_t k)
{
    uint64_t x = k * 0x9E3779B97F4A7C15u;
    return x ^ (x >> 31) ^ k;
}

void pat_fill(void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t k = off / 8, w = pat_word(k);
        size_t at = (size_t)(off % 8);
        if (at == 0 && n >= 8) {
            memcpy(p, &w, 8); /* the host's byte order: tests run on it */
            p += 8;
            off += 8;
            n -= 8;
            continue;
        }
        const unsigned char *wb = (const unsigned char *)&w;
        *p++ = wb[at];
        off++;
        n--;
    }
}

size_t pat_mismatches(const void *buf, size_t n, uint64_t off)
{
    unsigned char want[4096];
    const unsigned char *p = buf;
    size_t bad = 0;
    while (n > 0) {
        size_t k = n < sizeof want ? n : sizeof want;
        pat_fill(want, k, off);
        if (memcmp(p, want, k) != 0)
            for (size_t i = 0; i < k; i++)
                bad += p[i] != want[i];
        p += k;
        off += k;
        n -= k;
    }
    return bad;
}

/* ---- the counting source --------------------------------------------------- */

static ssize_t count_read(void *ctx, void *buf, size_t cap)
{
    count_src *s = ctx;
    atomic_fetch_add(&s->calls, 1);
    uint64_t pos = atomic_load(&s->pulled);
    if (pos >= s->len)
        return 0;
    size_t n = cap;
    if (s->max_chunk != 0 && n > s->max_chunk)
        n = s->max_chunk;
    if (s->len - pos < n)
        n = (size_t)(s->len - pos);
    pat_fill(buf, n, pos);
    atomic_store(&s->pulled, pos + n);
    return (ssize_t)n;
}

static void count_close(void *ctx)
{
    count_src *s = ctx;
    atomic_fetch_add(&s->closes, 1);
}

count_src *fx_count(uint64_t len, size_t max_chunk)
{
    count_src *s = fx_calloc(sizeof *s);
    s->len = len;
    s->max_chunk = max_chunk;
    return s;
}

sb_source count_source(count_src *s)
{
    return (sb_source){.read = count_read, .close = count_close, .ctx = s};
}

sb_buffer *open_count(count_src *s, const sb_options *o)
{
    sb_source src = count_source(s);
    return fx_buffer(sb_open(&src, o));
}

sb_stats stats(sb_buffer *b)
{
    sb_stats st;
    memset(&st, 0xff, sizeof st);
    if (sb_get_stats(b, &st) != 0)
        fail_msg("sb_get_stats: %d", errno);
    return st;
}

void fx_reader_close(void *r)
{
    sb_reader_close(r);
}

sb_reader *fx_sb_reader(sb_buffer *b, uint64_t floor)
{
    sb_reader *r = sb_reader_open(b, floor);
    if (r != NULL)
        fx_track(r, NULL, fx_reader_close);
    return r;
}

void do_write(void *arg)
{
    write_call *w = arg;
    unsigned char *p = malloc(w->len);
    if (p == NULL) {
        w->ret = -1;
        w->err = ENOMEM;
        return;
    }
    pat_fill(p, w->len, w->off);
    errno = 0;
    w->ret = sb_write(w->b, p, w->len);
    w->err = errno;
    w->returned_ms = now_ms();
    free(p);
}

/* ---- waiting on the stats ---------------------------------------------------- */

struct stat_want {
    sb_buffer *b;
    size_t field;  /* offset of a uint64_t of sb_stats */
    uint64_t want;
};

static int stat_reached(void *arg)
{
    struct stat_want *w = arg;
    sb_stats st;
    uint64_t v;
    if (sb_get_stats(w->b, &st) != 0)
        return 0;
    memcpy(&v, (const char *)&st + w->field, sizeof v);
    return v >= w->want;
}

static int wait_stat(sb_buffer *b, size_t field, uint64_t want, int timeout_ms)
{
    struct stat_want w = {b, field, want};
    return poll_until(stat_reached, &w, timeout_ms);
}

int wait_for_pauses(sb_buffer *b, uint64_t n, int timeout_ms)
{
    return wait_stat(b, offsetof(sb_stats, pauses), n, timeout_ms);
}

int wait_for_paused(sb_buffer *b, int timeout_ms)
{
    return wait_stat(b, offsetof(sb_stats, paused), 1, timeout_ms);
}

int wait_for_floor(sb_buffer *b, uint64_t f, int timeout_ms)
{
    return wait_stat(b, offsetof(sb_stats, floor), f, timeout_ms);
}

/* ---- followers ------------------------------------------------------------------ */

static void follow(void *arg)
{
    follower *f = arg;
    sb_reader *r = f->r;
    unsigned char *buf = malloc(f->step);
    if (buf == NULL) {
        f->err = ENOMEM;
        sb_reader_close(r);
        return;
    }
    for (uint64_t off = f->from; off < f->until;) {
        size_t n = f->step;
        if (f->until - off < n)
            n = (size_t)(f->until - off);
        ssize_t got = sb_reader_pread(r, buf, n, off);
        if (got < 0) {
            f->err = errno;
            break;
        }
        if (got == 0) {
            f->at_end = 1;
            break;
        }
        f->bad += pat_mismatches(buf, (size_t)got, off);
        f->checked += (uint64_t)got;
        off += (uint64_t)got;
        if (sb_reader_release(r, off) != 0) {
            f->err = errno;
            break;
        }
    }
    sb_reader_close(r);
    free(buf);
}

follower *fx_follower(sb_buffer *b, uint64_t from, uint64_t until, size_t step)
{
    follower *f = fx_calloc(sizeof *f);
    *f = (follower){.b = b, .from = from, .until = until, .step = step};
    /* Opened here, so that every follower a test starts holds its floor
       before any of them reads and releases. */
    f->r = sb_reader_open(b, from);
    return f->r != NULL ? f : NULL;
}

int follower_start(follower *f)
{
    f->bg = fx_bg(follow, f);
    if (f->bg == NULL) {
        sb_reader_close(f->r);
        return -1;
    }
    return 0;
}

int follower_join(follower *f, int timeout_ms)
{
    if (!bg_wait(f->bg, timeout_ms))
        return 0;
    bg_join(f->bg);
    return 1;
}
