/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sb.c - libFuzzer target: a random stream, random reads, a model.
 *
 * Each input describes a stream (length, contents seed, read- or
 * iterator-style source or sb_open_mem, a chunk-size sequence, chunk_size,
 * a small memory limit so that it spills, an optional failure point with
 * an errno, an optional max_size, an optional fault injected through the
 * seam) and a sequence of operations (positional reads, plain or timed,
 * sb_available, sb_wait_end, sb_get_stats, sb_cancel), run from the
 * fuzzing thread and, optionally, in reverse from one more reader thread.
 * Every result is checked against a flat-array model with the contract's
 * rules: a short count only at the end, 0 at or past the end of an ended
 * stream, the stream's error only when no byte can be returned, EFBIG past
 * max_size, the source's errno at the failure point, ECANCELED only after
 * sb_cancel, ETIMEDOUT only while the range is incomplete.  Any mismatch
 * aborts.
 *
 * The model of where an injected spill fault stops the stream follows the
 * producer's documented steps: it asks a read-style source for at most
 * chunk_size bytes, less to fill the memory part exactly; an iterator's
 * chunks are appended whole; each append that has bytes past the memory
 * part is one spill write (the first also creates the file).
 *
 * FUZZ_SB_VERBOSE=1 in the environment prints each scenario, what the
 * model predicts and what happened.
 *
 * Input layout (missing bytes read as 0):
 *   flags u8, len u16, seed u8, mem u16, chunk u16, npat u8, pat[npat] u8,
 *   fail kind u8, fail_at u16, errno u8, max u16, seam op u8, nth u8,
 *   seam errno u8, then operations: kind u8, off u16, n u16.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "streambuffer.h"

#define FUZZ_NAME "fuzz_sb"
#include "fuzz_common.h"

#define MAX_LEN 65535u
#define MAX_OPS 64
#define MAX_N 65535u
#define NPAT_MAX 8

/* ---- the stream's bytes --------------------------------------------------- */

static uint8_t content[MAX_LEN + 1];

/* ---- the source ------------------------------------------------------------ */

enum mode { M_READ, M_ITER, M_MEM };
enum fail_kind { F_ERRNO, F_NONSENSE, F_BAD };

typedef struct fsrc {
    uint64_t stop;       /* where it ends or fails */
    bool fails;
    int fail_kind;
    int fail_err;
    size_t pat[NPAT_MAX];
    size_t npat;
    size_t idx;
    uint64_t pos;
    bool null_empty;     /* empty chunks with a NULL pointer */
    uint8_t scratch[MAX_LEN + 16];
    atomic_int closes;
    atomic_int calls_after_close;
} fsrc;

static size_t next_pat(fsrc *s)
{
    return s->pat[s->idx++ % s->npat];
}

static ssize_t src_read(void *ctx, void *buf, size_t cap)
{
    fsrc *s = ctx;
    if (atomic_load(&s->closes))
        atomic_fetch_add(&s->calls_after_close, 1);
    if (s->pos >= s->stop) {
        if (!s->fails)
            return 0;
        switch (s->fail_kind) {
        case F_ERRNO:
            return -(ssize_t)s->fail_err;
        case F_NONSENSE:
            return -5000;
        default: /* writes what it may, claims one byte more */
            memset(buf, 0xEE, cap);
            return (ssize_t)cap + 1;
        }
    }
    size_t c = next_pat(s);
    if (c == 0)
        c = 1; /* a read source cannot return an empty chunk */
    if (c > cap)
        c = cap;
    if (c > s->stop - s->pos)
        c = (size_t)(s->stop - s->pos);
    memcpy(buf, content + s->pos, c);
    s->pos += c;
    return (ssize_t)c;
}

static int src_next(void *ctx, const void **chunk, size_t *len)
{
    fsrc *s = ctx;
    if (atomic_load(&s->closes))
        atomic_fetch_add(&s->calls_after_close, 1);
    memset(s->scratch, 0xDD, sizeof s->scratch); /* the last chunk dies */
    if (s->pos >= s->stop) {
        if (!s->fails)
            return 0;
        switch (s->fail_kind) {
        case F_ERRNO:
            return -s->fail_err;
        case F_NONSENSE:
            return INT_MIN;
        default: /* a NULL chunk with a length */
            *chunk = NULL;
            *len = 16;
            return 1;
        }
    }
    size_t c = next_pat(s);
    if (c == 0) {
        *chunk = s->null_empty ? NULL : s->scratch;
        *len = 0;
        return 1;
    }
    if (c > s->stop - s->pos)
        c = (size_t)(s->stop - s->pos);
    memcpy(s->scratch, content + s->pos, c);
    s->pos += c;
    *chunk = s->scratch;
    *len = c;
    return 1;
}

static void src_close(void *ctx)
{
    fsrc *s = ctx;
    atomic_fetch_add(&s->closes, 1);
}

/* ---- setup that lives across inputs ---------------------------------------- */

static unsigned long k_open; /* seam allocations of sb_open */
static unsigned long k_mem;  /* ... of sb_open_mem */

static int empty_next(void *ctx, const void **chunk, size_t *len)
{
    (void)ctx;
    (void)chunk;
    (void)len;
    return 0;
}

static void init_once(void)
{
    make_tmp_dir();
    /* Count the allocations of an open through the seam, armed so that
       it never fires; an iterator's producer allocates nothing. */
    sb_options o = {.mem_limit = 100, .tmp_dir = tmp_dir};
    sb_source src = {.next = empty_next};
    sb__fault_arm(SB__FAULT_ALLOC, ULONG_MAX, ENOMEM);
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL || sb_wait_end(b, NULL) != 0)
        abort();
    k_open = sb__fault_calls(SB__FAULT_ALLOC);
    sb_close(b);
    sb__fault_arm(SB__FAULT_ALLOC, ULONG_MAX, ENOMEM);
    b = sb_open_mem(content, 10, &o);
    if (b == NULL)
        abort();
    k_mem = sb__fault_calls(SB__FAULT_ALLOC);
    sb_close(b);
    sb__fault_disarm();
    if (k_open == 0 || k_mem == 0)
        abort();
}

/* ---- the model --------------------------------------------------------------- */

typedef struct cfg {
    int mode;
    uint64_t len;
    size_t mem_limit;    /* 0: the default, 5 MiB */
    size_t chunk_size;   /* 0: the default, 64 KiB */
    uint64_t max_size;   /* 0: none */
    int seam_op;         /* -1: none */
    unsigned long nth;
    int seam_err;
    bool thread;
    bool mmap_reads;     /* SB_MMAP_READS */
} cfg;

typedef struct outcome {
    int open_err;        /* the open fails with it; 0: it opens */
    uint64_t len;        /* bytes the stream ends or fails with */
    int err;             /* 0: ended */
    bool fires;          /* the armed producer-side fault fires */
} outcome;

static size_t mem_cap(const cfg *c)
{
    return c->mem_limit ? c->mem_limit : (size_t)5 << 20;
}

/* What the producer does, step by step, without cancel. */
static outcome simulate(const cfg *c, fsrc *proto)
{
    outcome o = {0, 0, 0, false};
    uint64_t max = c->max_size ? c->max_size : UINT64_MAX;
    if (c->mode == M_MEM) {
        if (c->seam_op == SB__FAULT_ALLOC && c->nth <= k_mem) {
            o.open_err = ENOMEM;
            o.fires = true;
            return o;
        }
        o.len = c->len < max ? c->len : max;
        o.err = c->len > max ? EFBIG : 0;
        return o;
    }
    if (c->seam_op == SB__FAULT_ALLOC && c->nth <= k_open) {
        o.open_err = ENOMEM;
        o.fires = true;
        return o;
    }
    if (c->seam_op == SB__FAULT_THREAD && c->nth == 1) {
        o.open_err = c->seam_err;
        o.fires = true;
        return o;
    }
    size_t mem = mem_cap(c);
    size_t chunk = c->chunk_size ? c->chunk_size : (size_t)64 << 10;
    unsigned long allocs = k_open, creates = 0, writes = 0;
    bool scratch = false, file = false;
    uint64_t pos = 0, spos = 0;
    size_t idx = 0;
    int fail_err = !proto->fails ? 0
                   : proto->fail_kind == F_ERRNO ? proto->fail_err
                                                 : EIO;
    for (;;) {
        uint64_t r;
        if (c->mode == M_READ) {
            /* sb__reserve: a whole chunk (less only near max_size: what is
               left and one byte more), in place if it fits in memory, else
               in the bounce buffer, allocated the first time. */
            size_t cap = chunk;
            if (max - pos < cap)
                cap = (size_t)(max - pos) + 1;
            if (pos + cap > mem && !scratch) {
                scratch = true;
                if (c->seam_op == SB__FAULT_ALLOC && ++allocs == c->nth) {
                    o.len = pos;
                    o.err = ENOMEM;
                    o.fires = true;
                    return o;
                }
            }
            if (spos >= proto->stop) {
                o.len = pos;
                o.err = fail_err;
                return o;
            }
            r = proto->pat[idx++ % proto->npat];
            if (r == 0)
                r = 1;
            if (r > cap)
                r = cap;
        } else {
            if (spos >= proto->stop) {
                o.len = pos;
                o.err = fail_err;
                return o;
            }
            r = proto->pat[idx++ % proto->npat];
            if (r == 0)
                continue;
        }
        if (r > proto->stop - spos)
            r = proto->stop - spos;
        spos += r;
        /* sb__append */
        bool over = false;
        if (r > max - pos) {
            r = max - pos;
            over = true;
        }
        if (pos + r > mem) {
            /* A failed spill keeps what went to memory: published first. */
            uint64_t kept = pos < mem ? mem : pos;
            if (!file) {
                file = true;
                if (c->seam_op == SB__FAULT_SPILL_CREATE &&
                    ++creates == c->nth) {
                    o.len = kept;
                    o.err = c->seam_err;
                    o.fires = true;
                    return o;
                }
            }
            if (c->seam_op == SB__FAULT_SPILL_WRITE && ++writes == c->nth) {
                o.len = kept;
                o.err = c->seam_err;
                o.fires = true;
                return o;
            }
        }
        pos += r;
        if (over) {
            o.len = pos;
            o.err = EFBIG;
            return o;
        }
    }
}

/* ---- operations ------------------------------------------------------------ */

enum op_kind { O_PREAD, O_TIMED0, O_PREAD2, O_AVAIL, O_WAIT_END, O_CANCEL,
               O_STATS, O_TIMED1, O_NKINDS };

typedef struct op {
    int kind;
    uint64_t off;
    size_t n;
} op;

/* A result, as the reader saw it. */
typedef struct res {
    ssize_t ret;
    int err;
    uint64_t length;
    uint64_t avail_before;
    int state_before;
    sb_stats st;
    bool bytes_ok;
} res;

/* Run one operation; the bytes are checked against the contents. */
static void run_op(sb_buffer *b, const op *o, uint8_t *buf, res *r)
{
    sb_stats st;
    sb_get_stats(b, &st);
    r->avail_before = st.filled;
    r->state_before = st.state;
    errno = 0;
    switch (o->kind) {
    case O_PREAD:
    case O_PREAD2:
        r->ret = sb_pread(b, buf, o->n, o->off);
        break;
    case O_TIMED0:
        r->ret = sb_pread_timed(b, buf, o->n, o->off, 0);
        break;
    case O_TIMED1:
        r->ret = sb_pread_timed(b, buf, o->n, o->off, 1);
        break;
    case O_AVAIL:
        r->length = sb_available(b);
        r->ret = 0;
        break;
    case O_WAIT_END:
        r->length = UINT64_MAX;
        r->ret = sb_wait_end(b, &r->length);
        break;
    case O_STATS:
        r->ret = sb_get_stats(b, &r->st);
        break;
    default:
        r->ret = 0;
        break;
    }
    r->err = r->ret == -1 ? errno : 0;
    r->bytes_ok = true;
    if ((o->kind == O_PREAD || o->kind == O_PREAD2 || o->kind == O_TIMED0 ||
         o->kind == O_TIMED1) && r->ret > 0)
        r->bytes_ok = (size_t)r->ret <= o->n && o->off < sizeof content &&
                      (size_t)r->ret <= sizeof content - o->off &&
                      memcmp(buf, content + o->off, (size_t)r->ret) == 0;
}

static bool is_read(int kind)
{
    return kind == O_PREAD || kind == O_PREAD2 || kind == O_TIMED0 ||
           kind == O_TIMED1;
}

/*
 * Check a result against the stream's final length and error.  spill_err:
 * this read must fail with it instead (an injected spill read fault).
 * *seen: the most bytes known to be there, for monotonicity.
 */
static void check(const cfg *c, const op *o, const res *r, uint64_t len,
                  int err, int spill_err, uint64_t *seen, const char *who)
{
    size_t mem = c->mode == M_MEM ? (size_t)c->len : mem_cap(c);
    if (is_read(o->kind)) {
        bool timed = o->kind == O_TIMED0 || o->kind == O_TIMED1;
        int want_err;
        ssize_t want = expect(len, err, o->off, o->n, &want_err);
        if (spill_err) {
            want = -1;
            want_err = spill_err;
        }
        /* A time-out, unless the stream's own error is ETIMEDOUT. */
        if (timed && r->ret == -1 && r->err == ETIMEDOUT &&
            !(want == -1 && want_err == ETIMEDOUT)) {
            CHECK(o->n > 0 && r->state_before == SB_RUNNING &&
                      o->off + o->n > r->avail_before,
                  "%s: read(%llu, %zu) timed out with %llu there, state %d",
                  who, (unsigned long long)o->off, o->n,
                  (unsigned long long)r->avail_before, r->state_before);
            return;
        }
        CHECK(r->ret == want && r->err == want_err,
              "%s: read(%llu, %zu) = %zd errno %d, expected %zd errno %d "
              "(length %llu, error %d)",
              who, (unsigned long long)o->off, o->n, r->ret, r->err, want,
              want_err, (unsigned long long)len, err);
        CHECK(r->bytes_ok, "%s: read(%llu, %zu): wrong bytes", who,
              (unsigned long long)o->off, o->n);
        if (r->ret > 0 && o->off + (uint64_t)r->ret > *seen)
            *seen = o->off + (uint64_t)r->ret;
        return;
    }
    switch (o->kind) {
    case O_AVAIL:
        CHECK(r->length <= len && r->length >= *seen,
              "%s: available %llu, seen %llu, final %llu", who,
              (unsigned long long)r->length, (unsigned long long)*seen,
              (unsigned long long)len);
        *seen = r->length;
        break;
    case O_WAIT_END:
        if (err == 0)
            CHECK(r->ret == 0 && r->length == len,
                  "%s: wait_end = %zd errno %d length %llu, expected %llu",
                  who, r->ret, r->err, (unsigned long long)r->length,
                  (unsigned long long)len);
        else
            CHECK(r->ret == -1 && r->err == err && r->length == UINT64_MAX,
                  "%s: wait_end = %zd errno %d, expected errno %d", who,
                  r->ret, r->err, err);
        *seen = len;
        break;
    case O_STATS: {
        const sb_stats *s = &r->st;
        uint64_t in_mem = s->filled < mem ? s->filled : mem;
        CHECK(r->ret == 0 && s->filled <= len && s->filled >= *seen &&
                  s->in_memory == in_mem &&
                  s->spilled == s->filled - in_mem,
              "%s: stats filled %llu in_memory %llu spilled %llu; final "
              "%llu, seen %llu", who, (unsigned long long)s->filled,
              (unsigned long long)s->in_memory,
              (unsigned long long)s->spilled, (unsigned long long)len,
              (unsigned long long)*seen);
        if (s->state == SB_RUNNING)
            CHECK(s->error == 0, "%s: running with error %d", who, s->error);
        else
            CHECK(s->state == (err ? SB_FAILED : SB_ENDED) &&
                      s->error == err && s->filled == len,
                  "%s: stats state %d error %d filled %llu; final error %d "
                  "length %llu", who, s->state, s->error,
                  (unsigned long long)s->filled, err,
                  (unsigned long long)len);
        *seen = s->filled;
        break;
    }
    default:
        break;
    }
}

/* ---- the second reader --------------------------------------------------- */

typedef struct second {
    sb_buffer *b;
    const op *ops;
    int nops;
    res results[MAX_OPS];
    uint8_t buf[MAX_N + 1];
} second;

static second other;

static void *second_main(void *arg)
{
    second *t = arg;
    for (int i = t->nops - 1; i >= 0; i--)
        if (t->ops[i].kind != O_CANCEL)
            run_op(t->b, &t->ops[i], t->buf, &t->results[i]);
    return NULL;
}

/* ---- one input --------------------------------------------------------------- */

static fsrc source;
static uint8_t buf[MAX_N + 1];
static op ops[MAX_OPS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited, verbose;
    if (!inited) {
        init_once();
        verbose = getenv("FUZZ_SB_VERBOSE") != NULL;
        inited = true;
    }
    input in = {data, size, 0};
    cfg c;
    memset(&c, 0, sizeof c);
    unsigned flags = u8(&in);
    c.mode = (int)(flags & 3) == 3 ? M_READ : (int)(flags & 3);
    c.len = u16(&in) % (MAX_LEN + 1);
    unsigned seed = u8(&in);
    unsigned ml = u16(&in);
    c.mem_limit = ml == 0xFFFF ? 0 : 1 + ml % 4096;
    unsigned chunk = u16(&in);
    c.chunk_size = flags & 0x80 ? 0 : 1 + chunk % 8192;

    fsrc *s = &source;
    memset(s, 0, offsetof(fsrc, scratch));
    atomic_init(&s->closes, 0);
    atomic_init(&s->calls_after_close, 0);
    s->npat = 1 + u8(&in) % NPAT_MAX;
    bool any = false;
    for (size_t i = 0; i < s->npat; i++) {
        unsigned v = u8(&in);
        s->pat[i] = v < 200 ? v : v == 255 ? 65536 : (size_t)(v - 199) * 64;
        /* Empty chunks only from an iterator, and only if asked for. */
        if ((c.mode != M_ITER || !(flags & 0x40)) && s->pat[i] == 0)
            s->pat[i] = 1;
        any |= s->pat[i] != 0;
    }
    if (!any)
        s->pat[0] = 1;
    /* Keep each input cheap: at most about 2000 producer steps. */
    size_t least = (size_t)(c.len / 2000);
    for (size_t i = 0; i < s->npat; i++)
        if (s->pat[i] != 0 && s->pat[i] < least)
            s->pat[i] = least;
    if (c.chunk_size != 0 && c.chunk_size < least)
        c.chunk_size = least;
    s->null_empty = flags & 0x20;

    unsigned fk = u8(&in);
    unsigned fat = u16(&in);
    unsigned fe = u8(&in);
    s->stop = c.len;
    if (flags & 0x04 && c.mode != M_MEM) {
        s->fails = true;
        s->fail_kind = (int)(fk % 3);
        s->fail_err = errnos[fe % NERRNOS];
        s->stop = fat % (c.len + 1);
    }
    unsigned mx = u16(&in);
    if (flags & 0x08)
        c.max_size = 1 + (uint64_t)mx;
    unsigned sop = u8(&in), snth = u8(&in), serr = u8(&in);
    c.seam_op = -1;
    /* Spilled bytes read through the mapping: the model is the same, so
       every read checks the mapping against the flat array. */
    c.mmap_reads = (snth & 0x80) != 0;
    if (flags & 0x10) {
        /* The seam's operations the model knows (not release or mapping,
           which need options this target does not set). */
        c.seam_op = (int)(sop % (SB__FAULT_SPILL_READ + 1));
        /* Mapped reads make no pread(2) to fail. */
        if (c.mmap_reads && c.seam_op == SB__FAULT_SPILL_READ)
            c.seam_op = SB__FAULT_SPILL_WRITE;
        /* Mapping allocates its window table as reads come: the model
           counts allocations of opens and producers only. */
        if (c.seam_op == SB__FAULT_ALLOC)
            c.mmap_reads = false;
        c.nth = 1 + snth % 8;
        c.seam_err = c.seam_op == SB__FAULT_ALLOC    ? ENOMEM
                     : c.seam_op == SB__FAULT_THREAD ? EAGAIN
                                                     : errnos[serr % NERRNOS];
        /* A spill read failing with ETIMEDOUT would look like a timed
           read's time-out. */
        if (c.seam_op == SB__FAULT_SPILL_READ && c.seam_err == ETIMEDOUT)
            c.seam_err = EIO;
    }
    /* The second reader, unless it would make spill read faults hit
       either reader. */
    c.thread = (sop & 0x80) && c.seam_op != SB__FAULT_SPILL_READ;
    int nops = 0;
    while (in.i < in.n && nops < MAX_OPS) {
        op *o = &ops[nops++];
        o->kind = (int)(u8(&in) % O_NKINDS);
        o->off = pick_off(u16(&in), c.len, mem_cap(&c));
        o->n = u16(&in);
    }
    snprintf(scenario, sizeof scenario,
             "mode %d len %llu seed %u mem %zu chunk %zu npat %zu fail %d "
             "kind %d at %llu errno %d max %llu seam op %d nth %lu errno %d "
             "thread %d mmap %d ops %d",
             c.mode, (unsigned long long)c.len, seed, c.mem_limit,
             c.chunk_size, s->npat, s->fails, s->fail_kind,
             (unsigned long long)s->stop, s->fail_err,
             (unsigned long long)c.max_size, c.seam_op, c.nth, c.seam_err,
             c.thread, c.mmap_reads, nops);

    fill_content(content, seed, (size_t)c.len);
    outcome want = simulate(&c, s);
    if (verbose)
        fprintf(stderr, "fuzz_sb: %s\n  model: open errno %d, length %llu, "
                        "error %d, fault fires %d\n",
                scenario, want.open_err, (unsigned long long)want.len,
                want.err, want.fires);

    /* Open. */
    sb_options opt = {.mem_limit = c.mem_limit, .max_size = c.max_size,
                      .tmp_dir = tmp_dir, .chunk_size = c.chunk_size,
                      .flags = c.mmap_reads ? SB_MMAP_READS : 0};
    sb_source src = {.close = src_close, .ctx = s};
    if (c.mode == M_ITER)
        src.next = src_next;
    else
        src.read = src_read;
    if (c.seam_op >= 0)
        sb__fault_arm((enum sb__fault_op)c.seam_op, c.nth, c.seam_err);
    errno = 0;
    sb_buffer *b = c.mode == M_MEM ? sb_open_mem(content, (size_t)c.len, &opt)
                            : sb_open(&src, &opt);
    int open_errno = errno;
    if (want.open_err) {
        CHECK(b == NULL && open_errno == want.open_err,
              "open: %p errno %d, expected to fail with %d", (void *)b,
              open_errno, want.open_err);
        CHECK(sb__fault_fired((enum sb__fault_op)c.seam_op),
              "open failed but the fault did not fire");
        CHECK(atomic_load(&s->closes) == 0 && s->pos == 0 && s->idx == 0,
              "a failed open touched the source");
        sb__fault_disarm();
        return 0;
    }
    CHECK(b != NULL, "open failed: errno %d", open_errno);

    pthread_t th;
    if (c.thread) {
        other.b = b;
        other.ops = ops;
        other.nops = nops;
        if (pthread_create(&th, NULL, second_main, &other) != 0)
            die("pthread_create");
    }

    /* The fuzzing thread's operations, checked as they return. */
    uint64_t len = want.len;
    int err = want.err;
    bool cancelled = false;
    uint64_t seen = 0;
    unsigned long touches = 0; /* reads that needed the spill file */
    bool spill_read_fired = false;
    size_t mem = c.mode == M_MEM ? (size_t)c.len : mem_cap(&c);
    for (int i = 0; i < nops; i++) {
        const op *o = &ops[i];
        if (o->kind == O_CANCEL) {
            sb_cancel(b);
            sb_stats st;
            sb_get_stats(b, &st);
            CHECK(st.state != SB_RUNNING, "running after sb_cancel");
            if (st.state == SB_FAILED && st.error == ECANCELED &&
                !(err == ECANCELED && st.filled == len)) {
                CHECK(!cancelled || st.filled == len,
                      "a second cancel changed the stream");
                CHECK(st.filled <= len && st.filled >= seen,
                      "cancelled with %llu bytes; final %llu, seen %llu",
                      (unsigned long long)st.filled,
                      (unsigned long long)len, (unsigned long long)seen);
                len = st.filled;
                err = ECANCELED;
            } else {
                CHECK(st.filled == len && st.error == err &&
                          st.state == (err ? SB_FAILED : SB_ENDED),
                      "after cancel: state %d error %d filled %llu; "
                      "expected error %d length %llu", st.state, st.error,
                      (unsigned long long)st.filled, err,
                      (unsigned long long)len);
            }
            cancelled = true;
            continue;
        }
        res r;
        memset(&r, 0, sizeof r);
        run_op(b, o, buf, &r);
        int spill_err = 0;
        bool timed_out = (o->kind == O_TIMED0 || o->kind == O_TIMED1) &&
                         r.ret == -1 && r.err == ETIMEDOUT;
        if (is_read(o->kind) && !timed_out) {
            int we;
            ssize_t w = expect(len, err, o->off, o->n, &we);
            if (w > 0 && o->off + (uint64_t)w > mem &&
                c.seam_op == SB__FAULT_SPILL_READ && ++touches == c.nth) {
                spill_err = c.seam_err;
                spill_read_fired = true;
            }
        }
        check(&c, o, &r, len, err, spill_err, &seen, "main");
    }

    /* The end. */
    uint64_t total = UINT64_MAX;
    errno = 0;
    int rc = sb_wait_end(b, &total);
    int we = errno;
    if (err == 0)
        CHECK(rc == 0 && total == len, "wait_end %d length %llu, expected "
              "%llu", rc, (unsigned long long)total, (unsigned long long)len);
    else
        CHECK(rc == -1 && we == err && total == UINT64_MAX,
              "wait_end %d errno %d, expected %d", rc, we, err);
    sb_stats st;
    sb_get_stats(b, &st);
    CHECK(st.filled == len && st.error == err, "final stats: filled %llu "
          "error %d", (unsigned long long)st.filled, st.error);
    if (c.thread) {
        pthread_join(th, NULL);
        uint64_t tseen = 0;
        for (int i = nops - 1; i >= 0; i--)
            if (ops[i].kind != O_CANCEL)
                check(&c, &ops[i], &other.results[i], len, err, 0, &tseen,
                      "second");
    }
    /* The armed fault fired exactly when the model says. */
    if (c.seam_op >= 0) {
        bool fired = sb__fault_fired((enum sb__fault_op)c.seam_op);
        bool predicted = c.seam_op == SB__FAULT_SPILL_READ ? spill_read_fired
                                                           : want.fires;
        if (!cancelled)
            CHECK(fired == predicted, "fault fired %d, predicted %d", fired,
                  predicted);
        else
            CHECK(!fired || predicted, "fault fired, not predicted");
    }
    sb__fault_disarm();
    /* Every byte, once more. */
    if (len > 0) {
        ssize_t got = sb_pread(b, buf, (size_t)len, 0);
        CHECK(got == (ssize_t)len && memcmp(buf, content, (size_t)len) == 0,
              "final read of %llu bytes: %zd", (unsigned long long)len, got);
    }
    if (verbose)
        fprintf(stderr, "  seen: length %llu, error %d, cancelled %d\n",
                (unsigned long long)len, err, cancelled);
    sb_close(b);
    if (c.mode != M_MEM)
        CHECK(atomic_load(&s->closes) == 1 &&
                  atomic_load(&s->calls_after_close) == 0,
              "source closed %d times, called %d times after",
              atomic_load(&s->closes), atomic_load(&s->calls_after_close));
    return 0;
}
