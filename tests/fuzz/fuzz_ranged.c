/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ranged.c - libFuzzer target: a seekable source (sb_source.open_at),
 * parts, extents that grow and merge, reads, against a flat array.
 *
 * Each input describes a stream (length, contents seed, a memory limit so
 * that it spills, chunk_size, max_parts, seek_gap, read_ahead), its
 * source (a plain first stream or none, read- or next-style parts, a
 * chunk-size sequence, the length reported or not, parts that ignore
 * `end`, parts that drop or fail after N bytes, an object that changes
 * after K opens) and a sequence of operations: positional reads and views
 * at any offset (far ones open parts), timed reads with timeout 0,
 * sb_available, sb_get_stats, sb_cancel, sb_wait_end.  Every byte a read
 * returns is checked against the flat array of its version, and no read
 * may return bytes of two versions; a stream that ends must be whole and
 * exactly the array; the stats must agree with what the source counted
 * (fetched) and with each other (filled <= length, extents >= 1 while
 * anything is held, fetched - refetched == length after a clean drain);
 * every part opened must be closed exactly once by sb_close and cancelled
 * at most once.  Any mismatch aborts.
 *
 * Input layout (missing bytes read as 0):
 *   flags u8, len u16 (x 16), seed u8, mem u16, chunk u16, parts u8,
 *   gap u16, ahead u16, npat u8, pat[npat] u8, fail_after u16, fail u8,
 *   change u8, then operations: kind u8, off u16, n u16.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streambuffer.h"

#define FUZZ_NAME "fuzz_ranged"
#include "fuzz_common.h"

#define UNIT 16u                  /* len is u16 times this */
#define MAX_LEN (65535u * UNIT)   /* about 1 MiB */
#define MAX_OPS 48
#define NPAT_MAX 8
#define MAX_PARTS_MADE 4096

/* Version 0 and version 1 of the object. */
static uint8_t content[2][MAX_LEN + 64 * 1024];

/* ---- the seekable source --------------------------------------------------- */

typedef struct fpart {
    struct fsrc *s;
    uint64_t start, end, pos, delivered;
    int version;
    bool first;
    size_t idx;
    uint8_t *scratch;
    atomic_int cancels, closes, calls_after_close;
} fpart;

typedef struct fsrc {
    uint64_t len;         /* bytes the object has */
    bool report_len;
    bool ignore_end;
    bool iter;
    uint64_t fail_after;  /* a part fails after this many bytes (0: never) */
    int fail_err;         /* 0: drops (returns 0 early) */
    int change_after;     /* opens that succeed after this many: version 1
                             (-1: never) */
    size_t pat[NPAT_MAX];
    size_t npat;
    pthread_mutex_t mu;
    fpart *parts[MAX_PARTS_MADE];
    size_t nparts;
    int opens, opens_ok;
    int src_closes;
    atomic_ullong delivered;
} fsrc;

static fsrc source;

static ssize_t part_len(fpart *p, size_t cap)
{
    fsrc *s = p->s;
    if (atomic_load(&p->closes) > 0)
        atomic_fetch_add(&p->calls_after_close, 1);
    if (atomic_load(&p->cancels) > 0)
        return -ECANCELED;
    if (s->fail_after != 0 && p->delivered >= s->fail_after)
        return s->fail_err ? -s->fail_err : 0;
    uint64_t stop = s->len;
    if (!s->ignore_end && p->end < stop)
        stop = p->end;
    if (p->pos >= stop)
        return 0;
    size_t n = s->pat[p->idx++ % s->npat];
    if (n > cap)
        n = cap;
    if (n > stop - p->pos)
        n = (size_t)(stop - p->pos);
    if (s->fail_after != 0 && n > s->fail_after - p->delivered)
        n = (size_t)(s->fail_after - p->delivered);
    return (ssize_t)n;
}

static void part_took(fpart *p, size_t n)
{
    p->pos += n;
    p->delivered += n;
    atomic_fetch_add(&p->s->delivered, n);
}

static ssize_t part_read(void *ctx, void *buf, size_t cap)
{
    fpart *p = ctx;
    ssize_t n = part_len(p, cap);
    if (n > 0) {
        memcpy(buf, content[p->version] + p->pos, (size_t)n);
        part_took(p, (size_t)n);
    }
    return n;
}

static int part_next(void *ctx, const void **chunk, size_t *len)
{
    fpart *p = ctx;
    ssize_t n = part_len(p, 65536);
    if (n <= 0)
        return (int)n;
    /* A scratch copy, overwritten next time: a library that kept the
       pointer would read other bytes. */
    memcpy(p->scratch, content[p->version] + p->pos, (size_t)n);
    part_took(p, (size_t)n);
    *chunk = p->scratch;
    *len = (size_t)n;
    return 1;
}

static void part_cancel(void *ctx)
{
    fpart *p = ctx;
    atomic_fetch_add(&p->cancels, 1);
}

static void part_close(void *ctx)
{
    fpart *p = ctx;
    atomic_fetch_add(&p->closes, 1);
}

static fpart *new_part(fsrc *s, uint64_t off, uint64_t end, int version,
                       bool first)
{
    if (s->nparts == MAX_PARTS_MADE)
        return NULL;
    fpart *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->scratch = malloc(65536);
    if (p->scratch == NULL) {
        free(p);
        return NULL;
    }
    p->s = s;
    p->start = p->pos = off;
    p->end = end;
    p->version = version;
    p->first = first;
    s->parts[s->nparts++] = p;
    return p;
}

static int src_open_at(void *ctx, uint64_t off, uint64_t end,
                       sb_source *part, uint64_t *length)
{
    fsrc *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->opens++;
    CHECK(s->src_closes == 0, "open_at after the source's close");
    int version = s->change_after >= 0 && s->opens_ok >= s->change_after;
    /* Past the end a part is empty (as an HTTP source answers a 416): the
       buffer learns that the stream ends at or before off. */
    fpart *p = new_part(s, off, end, version, false);
    int rc = -EIO;
    if (p != NULL) {
        s->opens_ok++;
        if (s->iter)
            part->next = part_next;
        else
            part->read = part_read;
        part->cancel = part_cancel;
        part->close = part_close;
        part->ctx = p;
        if (s->report_len)
            *length = s->len;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static ssize_t first_read(void *ctx, void *buf, size_t cap)
{
    fsrc *s = ctx;
    return part_read(s->parts[0], buf, cap);
}

static void first_cancel(void *ctx)
{
    fsrc *s = ctx;
    part_cancel(s->parts[0]);
}

static void src_close(void *ctx)
{
    fsrc *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->src_closes++;
    if (s->nparts > 0 && s->parts[0]->first)
        part_close(s->parts[0]);
    pthread_mutex_unlock(&s->mu);
}

/* ---- checks ------------------------------------------------------------------ */

/* buf[0..got) is wholly one version's bytes at off: which, or -1. */
static int version_of(const uint8_t *buf, size_t got, uint64_t off)
{
    for (int v = 0; v < 2; v++)
        if (memcmp(buf, content[v] + off, got) == 0)
            return v;
    return -1;
}

static void check_bytes(const char *what, const uint8_t *buf, ssize_t got,
                        uint64_t off, size_t n, bool changes)
{
    if (got <= 0)
        return;
    CHECK((size_t)got <= n, "%s(%zu at %llu) returned %zd", what, n,
          (unsigned long long)off, got);
    CHECK(off + (uint64_t)got <= source.len, "%s past the length", what);
    int v = version_of(buf, (size_t)got, off);
    CHECK(v == 0 || (changes && v == 1),
          "%s(%zu at %llu): %zd bytes not of one version (%d)", what, n,
          (unsigned long long)off, got, v);
}

static uint8_t rbuf[MAX_LEN + 64 * 1024];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    if (!inited) {
        make_tmp_dir();
        inited = true;
    }
    input in = {data, size, 0};
    unsigned flags = u8(&in);
    uint64_t len = (uint64_t)u16(&in) * UNIT;
    unsigned seed = u8(&in);
    unsigned ml = u16(&in), ch = u16(&in), parts = u8(&in);
    unsigned gap = u16(&in), ahead = u16(&in);

    fsrc *s = &source;
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->len = len;
    s->report_len = !(flags & 0x01);
    s->ignore_end = flags & 0x02;
    s->iter = flags & 0x04;
    bool plain_first = flags & 0x08;
    s->npat = 1 + u8(&in) % NPAT_MAX;
    for (size_t i = 0; i < s->npat; i++) {
        unsigned v = u8(&in);
        s->pat[i] = v < 128 ? 1 + v : (size_t)(v - 127) * 512;
    }
    /* At most about 4000 source calls per part, so an input stays cheap. */
    size_t least = (size_t)(len / 4000);
    for (size_t i = 0; i < s->npat; i++)
        if (s->pat[i] < least)
            s->pat[i] = least;
    unsigned fa = u16(&in), fk = u8(&in), chg = u8(&in);
    if (flags & 0x10) {
        s->fail_after = 1 + (uint64_t)fa * UNIT;
        s->fail_err = fk & 1 ? errnos[(fk >> 1) % NERRNOS] : 0;
        if (s->fail_err == ECANCELED)
            s->fail_err = EIO;
    }
    s->change_after = flags & 0x20 ? (int)(chg % 4) : -1;
    bool changes = s->change_after >= 0;
    fill_content(content[0], seed, len + 64 * 1024);
    fill_content(content[1], seed + 1000u, len + 64 * 1024);

    sb_options o = {0};
    o.mem_limit = ml == 0xFFFF ? 0 : 1 + ml % (256 * 1024);
    o.chunk_size = 1 + ch % 65536;
    if (o.chunk_size < least)
        o.chunk_size = least;
    o.max_parts = parts % 9; /* 0 (4) .. 8 */
    o.seek_gap = gap % 3 == 0 ? 0 : (uint64_t)gap * UNIT;
    o.read_ahead = flags & 0x40 ? 1 + (uint64_t)ahead * UNIT : 0;
    o.retries = 1 + (fk >> 5) % 3;
    o.tmp_dir = tmp_dir;

    sb_source src = {.open_at = src_open_at, .close = src_close, .ctx = s};
    if (plain_first) {
        if (new_part(s, 0, UINT64_MAX, 0, true) == NULL)
            abort();
        src.read = first_read;
        src.cancel = first_cancel;
    }
    snprintf(scenario, sizeof scenario,
             "len %llu seed %u mem %zu chunk %zu parts %u gap %llu ahead %llu "
             "first %s %s len %s end %s fail %llu/%d change %d",
             (unsigned long long)len, seed, o.mem_limit, o.chunk_size,
             o.max_parts, (unsigned long long)o.seek_gap,
             (unsigned long long)o.read_ahead, plain_first ? "read" : "open_at",
             s->iter ? "next" : "read", s->report_len ? "reported" : "unknown",
             s->ignore_end ? "ignored" : "kept",
             (unsigned long long)s->fail_after, s->fail_err, s->change_after);

    sb_buffer *b = sb_open(&src, &o);
    CHECK(b != NULL, "sb_open: %d", errno);
    bool cancelled = false;
    bool faults = s->fail_after != 0 || changes;
    /* Without a reported length a part that drops looks like the end: the
       stream may end there, short (its bytes still right).  So does a
       plain first stream read with parts off (max_parts 1): no part ever
       tells the length. */
    bool short_ok = s->fail_after != 0 && s->fail_err == 0 &&
                    (!s->report_len || (plain_first && o.max_parts == 1));
    for (int k = 0; k < MAX_OPS && in.i < in.n; k++) {
        unsigned kind = u8(&in) % 8;
        uint64_t off = pick_off(u16(&in), len, o.mem_limit);
        size_t n = u16(&in) % 65536;
        if (off > UINT64_MAX - n)
            off = UINT64_MAX - n;
        ssize_t got;
        int err;
        switch (kind) {
        case 0:
        case 1:
        case 2: /* a read: far ones open parts */
            errno = 0;
            got = sb_pread(b, rbuf, n, off);
            err = errno;
            if (got < 0) {
                CHECK(cancelled || faults || err == EINVAL,
                      "pread(%zu at %llu): errno %d on a clean stream", n,
                      (unsigned long long)off, err);
            } else {
                check_bytes("pread", rbuf, got, off, n, changes);
                if (!faults && !cancelled) {
                    int we;
                    ssize_t want = expect(len, 0, off, n, &we);
                    CHECK(got == want, "pread(%zu at %llu): %zd, want %zd",
                          n, (unsigned long long)off, got, want);
                }
            }
            break;
        case 3: { /* a view: one version, at most n, within the stream */
            const void *p = NULL;
            got = sb_view(b, off, n, &p);
            if (got > 0)
                check_bytes("view", p, got, off, n, changes);
            break;
        }
        case 4: /* a poll with timeout 0: now or ETIMEDOUT */
            errno = 0;
            got = sb_pread_timed(b, rbuf, n, off, 0);
            if (got > 0)
                check_bytes("timed", rbuf, got, off, n, changes);
            break;
        case 5: { /* the stats, consistent with each other and the source */
            sb_stats st;
            CHECK(sb_get_stats(b, &st) == 0, "sb_get_stats");
            CHECK(st.filled <= len, "filled %llu past %llu",
                  (unsigned long long)st.filled, (unsigned long long)len);
            CHECK(st.refetched <= st.fetched, "refetched > fetched");
            CHECK(st.fetched <= atomic_load(&s->delivered),
                  "fetched %llu > delivered %llu",
                  (unsigned long long)st.fetched,
                  (unsigned long long)atomic_load(&s->delivered));
            CHECK(st.length == 0 || st.length == len || faults,
                  "length %llu", (unsigned long long)st.length);
            CHECK(st.parts_active <= (o.max_parts ? o.max_parts : 4),
                  "parts_active %llu", (unsigned long long)st.parts_active);
            CHECK(st.filled == 0 || st.extents >= 1, "no extent");
            CHECK(sb_available(b) <= len, "available past the length");
            break;
        }
        case 6:
            if ((u8(&in) & 7) == 0) {
                sb_cancel(b);
                cancelled = true;
            }
            break;
        default: { /* the end: every byte of version 0, or a failure */
            uint64_t total = 0;
            if (sb_wait_end(b, &total) == 0) {
                CHECK(total == len || (short_ok && total < len),
                      "ended at %llu, want %llu", (unsigned long long)total,
                      (unsigned long long)len);
                CHECK(sb_pread(b, rbuf, (size_t)total, 0) == (ssize_t)total,
                      "whole read");
                CHECK(total == 0 ||
                          memcmp(rbuf, content[0], (size_t)total) == 0 ||
                          (changes && memcmp(rbuf, content[1],
                                             (size_t)total) == 0),
                      "an ended stream's bytes differ");
                sb_stats st;
                sb_get_stats(b, &st);
                CHECK(st.extents == 1 || total == 0, "extents %llu at the end",
                      (unsigned long long)st.extents);
                if (!s->ignore_end && !faults && st.parts_active == 0)
                    CHECK(st.fetched - st.refetched == len,
                          "fetched %llu - refetched %llu != %llu",
                          (unsigned long long)st.fetched,
                          (unsigned long long)st.refetched,
                          (unsigned long long)len);
            } else {
                CHECK(cancelled || faults, "clean stream failed: %d", errno);
            }
            break;
        }
        }
    }
    sb_close(b);
    CHECK(s->src_closes == 1, "source closed %d times", s->src_closes);
    for (size_t i = 0; i < s->nparts; i++) {
        fpart *p = s->parts[i];
        CHECK(atomic_load(&p->closes) == 1, "part %zu at %llu closed %d times",
              i, (unsigned long long)p->start, atomic_load(&p->closes));
        CHECK(atomic_load(&p->cancels) <= 1, "part %zu cancelled %d times", i,
              atomic_load(&p->cancels));
        CHECK(atomic_load(&p->calls_after_close) == 0,
              "part %zu called after its close", i);
        free(p->scratch);
        free(p);
    }
    pthread_mutex_destroy(&s->mu);
    return 0;
}
