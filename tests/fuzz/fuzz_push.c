/* SPDX-License-Identifier: MIT */
/*
 * fuzz_push.c - libFuzzer target: push mode, one thread, a model.
 *
 * Each input opens a writer buffer (sb_open_writer) with a small memory
 * limit, so that it spills to the fuzzer's spill directory, and runs a
 * sequence of operations from the fuzzing thread alone: sb_write,
 * sb_finish, sb_cancel, reads that never block (sb_pread and sb_view only
 * when the model says the range can be answered now, else
 * sb_pread_timed with timeout 0), sb_available, sb_get_stats,
 * sb_wait_end_timed with timeout 0, and up to four sb_readers, blocking or
 * SB_NONBLOCK, that open, read, view, release and close, with the ready
 * list (sb_poll_ready, sb_reader_armed) and sb_poll_fd.  No thread is
 * started, so an input costs a few system calls.
 *
 * Push mode is deterministic from one thread, so the model is exact:
 * every return value, errno, byte, view length, and every field of
 * sb_get_stats the contract defines (filled, in_memory, spilled,
 * publishes, state, error, floor, demand, released, readers) is predicted
 * and compared.  The rules: a short count only at the end, 0 at or past
 * the end of an ended stream, EFBIG past max_size (the bytes up to it
 * stored), ECANCELED after sb_cancel, EPIPE after sb_finish, ESPIPE below
 * a reader's floor and, with SB_RELEASE, below the buffer's floor,
 * ETIMEDOUT or EAGAIN (arming the reader) only while the range is
 * incomplete on a running stream, no byte copied on failure.  Optionally
 * one spill fault is injected through the seam (creating the spill file,
 * its nth write, its nth pread), and the model says where it hits.  Any
 * mismatch aborts.
 *
 * FUZZ_SB_VERBOSE=1 in the environment prints each operation.
 *
 * Input layout (missing bytes read as 0):
 *   flags u8, seed u8, mem u16, chunk u16, max u16, seam op u8, nth u8,
 *   seam errno u8, then operations: kind u8, a u16, b u16.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "streambuffer.h"

#define FUZZ_NAME "fuzz_push"
#include "fuzz_common.h"

#define CAP ((size_t)128 << 10) /* the longest stream an input writes */
#define SHIFTS ((size_t)64 << 10)
#define MAX_OPS 64
#define NREADERS 4
#define PAGE 4096u
#define WINDOW ((uint64_t)8 << 20) /* a spill mapping's window */
#define SENTINEL 64              /* bytes of buf checked untouched */
#define PIECES 16

/* The stream's bytes: byte p of an input's stream is content[shift + p]. */
static uint8_t content[CAP + SHIFTS];
static uint8_t buf[CAP + 1];
static bool verbose;

/* ---- the model ------------------------------------------------------------- */

typedef struct mreader {
    sb_reader *r;
    bool open, nb;
    uint64_t floor;
    bool armed, listed; /* waits for need; on the ready list */
    uint64_t need;
} mreader;

typedef struct model {
    /* options */
    size_t mem, chunk;
    uint64_t max;
    bool release, mmap;
    /* the stream */
    uint64_t filled;
    int state, err;
    bool finished;
    uint64_t floor, demand, publishes, released;
    const uint8_t *bytes;
    mreader rd[NREADERS];
    /* the seam: op (-1: none), the call that fails, calls so far */
    int fop;
    unsigned long nth, calls;
    int ferr;
    bool fired, file;
} model;

static model m;

static bool running(void)
{
    return m.state == SB_RUNNING;
}

static void raise_demand(uint64_t d)
{
    if (d > m.demand)
        m.demand = d;
}

/* A call of the armed seam operation op: whether it fails now. */
static bool seam(int op)
{
    if (m.fop != op || m.fired)
        return false;
    if (++m.calls != m.nth)
        return false;
    m.fired = true;
    return true;
}

/* A non-blocking reader's range becomes answerable: on the ready list. */
static void make_ready(uint64_t limit)
{
    for (int i = 0; i < NREADERS; i++) {
        mreader *r = &m.rd[i];
        if (r->open && r->armed && r->need <= limit) {
            r->armed = false;
            r->listed = true;
        }
    }
}

static void publish(uint64_t to)
{
    if (!running() || to <= m.filled)
        return;
    m.filled = to;
    m.publishes++;
    make_ready(to);
}

static void finish(int err)
{
    if (!running())
        return;
    m.state = err ? SB_FAILED : SB_ENDED;
    m.err = err;
    make_ready(UINT64_MAX);
}

/* sb__raise_floor_locked: the lowest reader's floor, with SB_RELEASE. */
static void raise_floor(void)
{
    if (!m.release)
        return;
    uint64_t low = UINT64_MAX;
    bool any = false;
    for (int i = 0; i < NREADERS; i++)
        if (m.rd[i].open) {
            any = true;
            if (m.rd[i].floor < low)
                low = m.rd[i].floor;
        }
    if (any && low > m.floor)
        m.floor = low;
}

/* Giving back what is below the floor: a chunk's worth at a time. */
static void give_back(void)
{
    if (!m.release)
        return;
    uint64_t to = m.floor < m.filled ? m.floor : m.filled;
    to -= to % PAGE;
    if (to > m.released && to - m.released >= m.chunk)
        m.released = to;
}

/* Why a write or finish is refused now (0: it is not). */
static int refusal(void)
{
    if (m.finished)
        return EPIPE;
    return running() ? 0 : m.err;
}

/* sb_write of n bytes: the expected return and errno, the model updated. */
static ssize_t model_write(size_t n, int *want_err)
{
    int rc = refusal();
    for (size_t left = n; rc == 0 && left > 0;) {
        size_t piece = left < m.chunk ? left : m.chunk;
        give_back();
        uint64_t off = m.filled;
        size_t len = piece;
        bool over = false;
        if (len > m.max - off) {
            len = (size_t)(m.max - off);
            over = true;
        }
        size_t stored = 0;
        int werr = 0;
        if (len > 0) {
            size_t head = off < m.mem ? m.mem - (size_t)off : 0;
            if (head > len)
                head = len;
            stored = head;
            if (len > head) {
                if (!m.file) {
                    if (seam(SB__FAULT_SPILL_CREATE))
                        werr = m.ferr;
                    else
                        m.file = true;
                }
                if (werr == 0) {
                    if (seam(SB__FAULT_SPILL_WRITE))
                        werr = m.ferr;
                    else
                        stored = len;
                }
            }
        }
        if (stored > 0)
            publish(off + stored);
        if (werr)
            finish(werr);
        else if (over)
            finish(EFBIG);
        if (werr || over)
            rc = m.err;
        left -= piece;
    }
    *want_err = rc;
    return rc ? -1 : (ssize_t)n;
}

/* What a read of [off, off + n) through r (NULL: plain) returns now, before
   any spill read fault: *wait says that it would have to wait. */
static ssize_t model_read(const mreader *r, uint64_t off, size_t n,
                          int *want_err, bool *wait)
{
    *wait = false;
    *want_err = 0;
    if (off > UINT64_MAX - n) {
        *want_err = EINVAL;
        return -1;
    }
    if (r != NULL ? off < r->floor : m.release && off < m.floor) {
        *want_err = ESPIPE;
        return -1;
    }
    if (n == 0)
        return 0;
    if (off + n > m.filled && running()) {
        *wait = true;
        return -1;
    }
    return expect(m.filled, m.err, off, n, want_err);
}

/* A read that found its range missing on a running stream. */
static void model_wait(mreader *r, uint64_t off, size_t n)
{
    raise_demand(off + n);
    if (r != NULL && r->nb) {
        r->armed = true;
        r->listed = false;
        r->need = off + n;
    }
}

/* ---- checks --------------------------------------------------------------------- */

static void check_bytes(const void *p, uint64_t off, ssize_t got,
                        const char *what)
{
    if (got <= 0)
        return;
    CHECK(off + (uint64_t)got <= CAP &&
              memcmp(p, m.bytes + off, (size_t)got) == 0,
          "%s(%llu): %zd wrong bytes", what, (unsigned long long)off, got);
}

static void check_stats(sb_buffer *b)
{
    sb_stats s;
    memset(&s, 0xA5, sizeof s);
    CHECK(sb_get_stats(b, &s) == 0, "sb_get_stats failed");
    uint64_t in_mem = m.filled < m.mem ? m.filled : m.mem;
    uint64_t nreaders = 0;
    for (int i = 0; i < NREADERS; i++)
        nreaders += m.rd[i].open;
    CHECK(s.filled == m.filled && s.in_memory == in_mem &&
              s.spilled == m.filled - in_mem && s.publishes == m.publishes &&
              s.state == m.state && s.error == m.err && s.floor == m.floor &&
              s.demand == m.demand && s.released == m.released &&
              s.readers == nreaders && s.waiting == 0 && s.pauses == 0 &&
              s.paused == 0 && s.paused_ns == 0 && s.huge_pages == 0,
          "stats: filled %llu in_memory %llu spilled %llu publishes %llu "
          "state %d error %d floor %llu demand %llu released %llu readers "
          "%llu waiting %llu pauses %llu paused %llu huge %llu; expected "
          "filled %llu publishes %llu state %d error %d floor %llu demand "
          "%llu released %llu readers %llu",
          (unsigned long long)s.filled, (unsigned long long)s.in_memory,
          (unsigned long long)s.spilled, (unsigned long long)s.publishes,
          s.state, s.error, (unsigned long long)s.floor,
          (unsigned long long)s.demand, (unsigned long long)s.released,
          (unsigned long long)s.readers, (unsigned long long)s.waiting,
          (unsigned long long)s.pauses, (unsigned long long)s.paused,
          (unsigned long long)s.huge_pages, (unsigned long long)m.filled,
          (unsigned long long)m.publishes, m.state, m.err,
          (unsigned long long)m.floor, (unsigned long long)m.demand,
          (unsigned long long)m.released, (unsigned long long)nreaders);
    CHECK(sb_available(b) == m.filled && sb_floor(b) == m.floor,
          "available %llu floor %llu, expected %llu, %llu",
          (unsigned long long)sb_available(b),
          (unsigned long long)sb_floor(b), (unsigned long long)m.filled,
          (unsigned long long)m.floor);
    for (int i = 0; i < NREADERS; i++) {
        const mreader *r = &m.rd[i];
        if (!r->open)
            continue;
        CHECK(sb_reader_floor(r->r) == r->floor &&
                  sb_reader_armed(r->r) == (int)r->armed,
              "reader %d: floor %llu armed %d, expected %llu, %d", i,
              (unsigned long long)sb_reader_floor(r->r),
              sb_reader_armed(r->r), (unsigned long long)r->floor,
              (int)r->armed);
    }
}

/* Set when a read is to fail in its pread(2) of the spill file: it may
   have copied the memory part by then. */
static bool spill_failed;

/* A result against the model's; bytes untouched when it failed (but for a
   failed pread of the spill file). */
static void check_result(const char *what, uint64_t off, size_t n,
                         ssize_t got, int err, ssize_t want, int want_err)
{
    CHECK(got == want && (got != -1 || err == want_err),
          "%s(%llu, %zu) = %zd errno %d, expected %zd errno %d (filled %llu "
          "state %d error %d floor %llu)",
          what, (unsigned long long)off, n, got, got == -1 ? err : 0, want,
          want_err, (unsigned long long)m.filled, m.state, m.err,
          (unsigned long long)m.floor);
    if (got == -1 && !spill_failed)
        for (size_t i = 0; i < SENTINEL; i++)
            CHECK(buf[i] == 0xA5, "%s(%llu, %zu) failed but wrote bytes",
                  what, (unsigned long long)off, n);
}

/* ---- operations ---------------------------------------------------------------- */

enum op_kind {
    O_WRITE, O_WRITE2, O_WRITE3, O_FINISH, O_CANCEL, O_PREAD, O_TIMED0,
    O_VIEW, O_AVAIL, O_STATS, O_WAIT_END, O_ROPEN, O_RREAD, O_RREAD2,
    O_RVIEW, O_RRELEASE, O_RCLOSE, O_POLL, O_POLL_FD, O_NKINDS
};

/* A read of the spool through pread(2) (not a mapping) past memory: a
   call of the spill read seam. */
static bool spill_pread(const mreader *r, uint64_t off, ssize_t got)
{
    bool mapped = m.mmap && (r != NULL || !m.release);
    return got > 0 && !mapped && off + (uint64_t)got > m.mem &&
           seam(SB__FAULT_SPILL_READ);
}

static void op_read(sb_buffer *b, mreader *r, int kind, uint64_t off,
                    size_t n, bool variant)
{
    int want_err;
    bool wait;
    ssize_t want = model_read(r, off, n, &want_err, &wait);
    memset(buf, 0xA5, SENTINEL);
    ssize_t got;
    const char *what;
    bool timed = r == NULL ? kind == O_TIMED0 || wait
                           : !r->nb && (wait || variant);
    if (r != NULL && r->nb && variant) {
        /* The _timed calls refuse a non-blocking reader. */
        errno = 0;
        got = sb_reader_pread_timed(r->r, buf, n, off, 0);
        check_result("nonblocking reader_pread_timed", off, n, got, errno,
                     -1, EINVAL);
        return;
    }
    if (wait) {
        want = -1;
        want_err = r != NULL && r->nb ? EAGAIN : ETIMEDOUT;
        model_wait(r, off, n);
    } else if (spill_pread(r, off, want)) {
        want = -1;
        want_err = m.ferr;
        spill_failed = true;
    }
    errno = 0;
    if (r == NULL) {
        what = timed ? "pread_timed" : "pread";
        got = timed ? sb_pread_timed(b, buf, n, off, 0)
                    : sb_pread(b, buf, n, off);
    } else {
        what = timed ? "reader_pread_timed" : "reader_pread";
        got = timed ? sb_reader_pread_timed(r->r, buf, n, off, 0)
                    : sb_reader_pread(r->r, buf, n, off);
    }
    check_result(what, off, n, got, errno, want, want_err);
    check_bytes(buf, off, got, what);
    spill_failed = false;
}

static void op_view(sb_buffer *b, mreader *r, uint64_t off, size_t n)
{
    int want_err;
    bool wait;
    ssize_t want = model_read(r, off, n, &want_err, &wait);
    if (r == NULL && m.release) {
        want = -1; /* a plain view needs a reader under SB_RELEASE */
        want_err = EINVAL;
        wait = false;
    }
    if (wait && (r == NULL || !r->nb)) {
        op_read(b, r, O_TIMED0, off, n, false); /* it would block */
        return;
    }
    if (wait) {
        want = -1;
        want_err = EAGAIN;
        model_wait(r, off, n);
    }
    if (want > 0) {
        /* Contiguous: up to the end of memory, or of the spill window. */
        uint64_t contig = off < m.mem ? m.mem - off
                                      : WINDOW - ((off - m.mem) % WINDOW);
        if ((uint64_t)want > contig)
            want = (ssize_t)contig;
    }
    const void *p = NULL;
    errno = 0;
    ssize_t got = r == NULL ? sb_view(b, off, n, &p)
                            : sb_reader_view(r->r, off, n, &p);
    int err = errno;
    const char *what = r == NULL ? "view" : "reader_view";
    memset(buf, 0xA5, SENTINEL);
    check_result(what, off, n, got, err, want, want_err);
    if (got > 0)
        check_bytes(p, off, got, what);
    else
        CHECK(p == NULL, "%s(%llu, %zu) = %zd set the pointer", what,
              (unsigned long long)off, n, got);
}

static void reader_close(int i)
{
    mreader *r = &m.rd[i];
    if (!r->open)
        return;
    sb_reader_close(r->r);
    memset(r, 0, sizeof *r);
    raise_floor();
    give_back();
}

static void op_ropen(sb_buffer *b, int i, uint64_t floor, bool nb)
{
    reader_close(i);
    mreader *r = &m.rd[i];
    errno = 0;
    sb_reader *sr = sb_reader_open_flags(b, floor, nb ? SB_NONBLOCK : 0);
    if (floor < m.floor) {
        CHECK(sr == NULL && errno == ESPIPE,
              "reader_open(%llu) below the floor %llu: %p errno %d",
              (unsigned long long)floor, (unsigned long long)m.floor,
              (void *)sr, errno);
        return;
    }
    CHECK(sr != NULL, "reader_open(%llu) failed: errno %d",
          (unsigned long long)floor, errno);
    r->r = sr;
    r->open = true;
    r->nb = nb;
    r->floor = floor;
    raise_floor();
    raise_demand(floor);
    give_back();
}

static void op_rrelease(int i, unsigned v)
{
    mreader *r = &m.rd[i];
    uint64_t to;
    if (v & 0x8000) {
        unsigned d = v & 0xFF;
        to = r->floor >= d ? r->floor - d : 0;
    } else {
        to = r->floor + (v & 0x1FFF);
    }
    int want_err = 0;
    if (to < r->floor) {
        want_err = EINVAL;
    } else if (to > r->floor) {
        r->floor = to;
        raise_floor();
        raise_demand(to);
        give_back();
    }
    errno = 0;
    int rc = sb_reader_release(r->r, to);
    CHECK(want_err ? rc == -1 && errno == want_err : rc == 0,
          "reader_release(%llu) = %d errno %d, expected errno %d",
          (unsigned long long)to, rc, errno, want_err);
}

static void op_poll(sb_buffer *b)
{
    sb_reader *out[NREADERS + 1];
    size_t k = sb_poll_ready(b, out, NREADERS + 1);
    size_t want = 0;
    for (int i = 0; i < NREADERS; i++) {
        mreader *r = &m.rd[i];
        if (!r->open || !r->listed)
            continue;
        want++;
        bool found = false;
        for (size_t j = 0; j < k; j++)
            found |= out[j] == r->r;
        CHECK(found, "poll_ready: reader %d is not on the list", i);
        r->listed = false;
    }
    CHECK(k == want, "poll_ready: %zu readers, expected %zu", k, want);
}

static void op_poll_fd(sb_buffer *b)
{
    int fd = sb_poll_fd(b);
    CHECK(fd >= 0 && sb_poll_fd(b) == fd, "poll_fd: %d errno %d", fd, errno);
    bool listed = false;
    for (int i = 0; i < NREADERS; i++)
        listed |= m.rd[i].open && m.rd[i].listed;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, 0);
    CHECK(rc == (listed ? 1 : 0), "poll_fd readable %d, readers ready %d",
          rc, listed);
}

static void op_wait_end(sb_buffer *b, bool blocking)
{
    uint64_t len = UINT64_MAX;
    errno = 0;
    int rc;
    if (running()) {
        rc = sb_wait_end_timed(b, &len, 0);
        CHECK(rc == -1 && errno == ETIMEDOUT && len == UINT64_MAX,
              "wait_end_timed on a running stream: %d errno %d", rc, errno);
        raise_demand(UINT64_MAX);
        return;
    }
    rc = blocking ? sb_wait_end(b, &len) : sb_wait_end_timed(b, &len, 0);
    if (m.err == 0)
        CHECK(rc == 0 && len == m.filled,
              "wait_end = %d errno %d length %llu, expected %llu", rc, errno,
              (unsigned long long)len, (unsigned long long)m.filled);
    else
        CHECK(rc == -1 && errno == m.err && len == UINT64_MAX,
              "wait_end = %d errno %d, expected errno %d", rc, errno, m.err);
}

/* The size of a write: mostly small, sometimes up to 64 KiB. */
static size_t write_size(unsigned v)
{
    size_t n = (v & 0xC000) == 0xC000 ? v & 0x3FFF : v % 1025;
    if ((v & 0xF000) == 0xF000)
        n = (size_t)(v & 0x0FFF) << 4;
    if (n > CAP - m.filled)
        n = (size_t)(CAP - m.filled);
    return n;
}

static void run_op(sb_buffer *b, unsigned kv, unsigned a, unsigned bv)
{
    int kind = (int)((kv & 0x1F) % O_NKINDS);
    bool variant = (kv & 0x20) != 0;
    int slot = (int)(kv >> 6) % NREADERS;
    mreader *r = &m.rd[slot];
    uint64_t off = pick_off(a, m.filled, m.mem);
    size_t n = bv % 4097;
    if ((bv & 0xF000) == 0xF000)
        n = (size_t)(bv & 0x0FFF) << 4;
    if (verbose)
        fprintf(stderr, "  op %d%s slot %d a %u b %u (filled %llu state %d)"
                        "\n", kind, variant ? "'" : "", slot, a, bv,
                (unsigned long long)m.filled, m.state);
    if ((kind == O_RREAD || kind == O_RREAD2 || kind == O_RVIEW ||
         kind == O_RRELEASE || kind == O_RCLOSE) && !r->open)
        kind = O_ROPEN;
    switch (kind) {
    case O_WRITE:
    case O_WRITE2:
    case O_WRITE3: {
        size_t len = write_size(a);
        const uint8_t *data = m.bytes + m.filled;
        int want_err;
        ssize_t want = model_write(len, &want_err);
        errno = 0;
        ssize_t got = sb_write(b, data, len);
        CHECK(got == want && (got != -1 || errno == want_err),
              "write(%zu) = %zd errno %d, expected %zd errno %d", len, got,
              errno, want, want_err);
        break;
    }
    case O_FINISH: {
        int e = variant ? errnos[bv % NERRNOS] : 0;
        int want_err = refusal();
        if (want_err == 0) {
            finish(e);
            m.finished = true;
        }
        errno = 0;
        int rc = sb_finish(b, e);
        CHECK(want_err ? rc == -1 && errno == want_err : rc == 0,
              "finish(%d) = %d errno %d, expected errno %d", e, rc, errno,
              want_err);
        break;
    }
    case O_CANCEL:
        sb_cancel(b);
        finish(ECANCELED);
        break;
    case O_PREAD:
    case O_TIMED0:
        op_read(b, NULL, kind, off, n, variant);
        break;
    case O_VIEW:
        op_view(b, NULL, off, n);
        break;
    case O_AVAIL:
        CHECK(sb_available(b) == m.filled, "available %llu, expected %llu",
              (unsigned long long)sb_available(b),
              (unsigned long long)m.filled);
        break;
    case O_STATS:
        check_stats(b);
        break;
    case O_WAIT_END:
        op_wait_end(b, variant);
        break;
    case O_ROPEN: {
        /* Mostly at or above the floor, near what has arrived. */
        uint64_t base = variant ? m.floor : 0, f;
        if (m.floor > m.filled)
            f = m.floor > UINT64_MAX - 0xFF ? m.floor : m.floor + (a & 0xFF);
        else if (bv & 0x8000)
            f = pick_off(a, m.filled, m.mem);
        else
            f = base + a % (m.filled - base + 65);
        op_ropen(b, slot, f, (bv & 1) != 0);
        break;
    }
    case O_RREAD:
    case O_RREAD2:
        op_read(b, r, kind, off, n, variant && (a & 1));
        break;
    case O_RVIEW:
        op_view(b, r, off, n);
        break;
    case O_RRELEASE:
        op_rrelease(slot, a);
        break;
    case O_RCLOSE:
        reader_close(slot);
        break;
    case O_POLL:
        op_poll(b);
        break;
    default:
        op_poll_fd(b);
        break;
    }
}

/* ---- one input ------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    if (!inited) {
        make_tmp_dir();
        fill_content(content, 1, sizeof content);
        verbose = getenv("FUZZ_SB_VERBOSE") != NULL;
        inited = true;
    }
    input in = {data, size, 0};
    memset(&m, 0, sizeof m);
    unsigned flags = u8(&in);
    unsigned seed = u8(&in);
    unsigned ml = u16(&in);
    unsigned ch = u16(&in);
    unsigned mx = u16(&in);
    unsigned sop = u8(&in), snth = u8(&in), serr = u8(&in);
    m.bytes = content + (size_t)seed * 257 % SHIFTS;
    m.release = flags & 0x01;
    m.mmap = flags & 0x02;
    /* The default memory limit (5 MiB) rarely, 1 input in 64: its region
       has huge-page extents, so each sb_get_stats reads /proc/self/smaps
       (a millisecond under ASan), and nothing spills. */
    bool dflt_mem = (flags & 0x60) == 0x60 && (seed & 0x0F) == 0;
    m.mem = dflt_mem ? (size_t)5 << 20 : 1 + ml % 8192;
    m.chunk = flags & 0x10 ? (size_t)64 << 10 : 1 + ch % 4096;
    m.max = flags & 0x04 ? 1 + (uint64_t)mx * 2 : UINT64_MAX;
    m.fop = -1;
    if (flags & 0x08) {
        m.fop = (int)(SB__FAULT_SPILL_CREATE + sop % 3);
        m.nth = m.fop == SB__FAULT_SPILL_CREATE ? 1 : 1 + snth % 8;
        m.ferr = errnos[serr % NERRNOS];
    }
    /* Keep each input cheap: each chunk_size piece of a write past the
       memory part is a pwrite(2) and two sigprocmask(2), so the writes
       take at most PIECES pieces together (plus one per write). */
    size_t nops = (in.n - in.i) / 5;
    if (nops > MAX_OPS)
        nops = MAX_OPS;
    size_t total = 0;
    for (size_t i = 0; i < nops; i++) {
        const uint8_t *o = in.p + in.i + 5 * i;
        if ((int)((o[0] & 0x1F) % O_NKINDS) <= O_WRITE3)
            total += write_size((unsigned)(o[1] | o[2] << 8));
    }
    if (total > CAP)
        total = CAP;
    if (m.chunk < total / PIECES)
        m.chunk = total / PIECES;
    snprintf(scenario, sizeof scenario,
             "release %d mmap %d mem %zu chunk %zu max %llu seed %u seam op "
             "%d nth %lu errno %d ops %zu",
             m.release, m.mmap, m.mem, m.chunk, (unsigned long long)m.max,
             seed, m.fop, m.nth, m.ferr, nops);
    if (verbose)
        fprintf(stderr, FUZZ_NAME ": %s\n", scenario);

    sb_options opt = {.mem_limit = dflt_mem ? 0 : m.mem,
                      .max_size = flags & 0x04 ? m.max : 0,
                      .tmp_dir = tmp_dir,
                      .chunk_size = flags & 0x10 ? 0 : m.chunk,
                      .flags = (m.release ? SB_RELEASE : 0) |
                               (m.mmap ? SB_MMAP_READS : 0)};
    sb_buffer *b = sb_open_writer(&opt);
    CHECK(b != NULL, "sb_open_writer: errno %d", errno);
    if (m.fop >= 0)
        sb__fault_arm((enum sb__fault_op)m.fop, m.nth, m.ferr);

    for (size_t i = 0; i < nops; i++) {
        unsigned kv = u8(&in);
        unsigned a = u16(&in);
        unsigned bv = u16(&in);
        run_op(b, kv, a, bv);
    }

    /* The end: every check once more, then every byte. */
    if (!dflt_mem)
        check_stats(b);
    if (m.fop >= 0) {
        bool fired = sb__fault_fired((enum sb__fault_op)m.fop);
        CHECK(fired == m.fired, "the seam fired %d, predicted %d", fired,
              m.fired);
        sb__fault_disarm();
    }
    op_poll(b);
    for (int i = 0; i < NREADERS; i++)
        reader_close(i);
    if (running()) {
        CHECK(sb_finish(b, 0) == 0, "final finish: errno %d", errno);
        finish(0);
        m.finished = true;
    }
    op_wait_end(b, true);
    uint64_t from = m.release ? m.floor : 0;
    if (m.filled > from) {
        size_t len = (size_t)(m.filled - from);
        ssize_t got = sb_pread(b, buf, len, from);
        CHECK(got == (ssize_t)len &&
                  memcmp(buf, m.bytes + from, len) == 0,
              "final read of %zu bytes at %llu: %zd", len,
              (unsigned long long)from, got);
    }
    sb_close(b);
    return 0;
}
