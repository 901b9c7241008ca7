/* SPDX-License-Identifier: MIT */
/*
 * cases_zerocopy.c - case 12: what not copying buys.
 *
 *   view      random 4 KiB sb_view of filled in-memory bytes, the consumer
 *             touching the first and last byte in place, vs sb_pread of the
 *             same ranges into a buffer, touched the same way (goal 5x:
 *             nothing is copied);
 *   mmap      random 4 KiB sb_pread of spilled bytes with SB_MMAP_READS vs
 *             pread(2) of a page-cached temp file of the same bytes (goal
 *             1.5x);
 *   sendfile  sb_sendfile of a spilled stream (--mem-limit in memory) to a
 *             loopback TCP socket drained by another thread, vs sendfile(2)
 *             of a plain temp file of the same bytes (goal 0.9).
 * One thread each (the sendfile receiver aside); interleaved reps.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define ZC_READ (4 * KiB)
#define ZC_OPS (1u << 18)

static uint64_t *random_offsets(size_t lo, size_t hi, uint64_t seed)
{
    uint64_t *o = malloc(ZC_OPS * sizeof *o);
    if (o == NULL)
        die("out of memory");
    for (size_t i = 0; i < ZC_OPS; i++)
        o[i] = lo + splitmix64(&seed) % (hi - lo - ZC_READ);
    return o;
}

/* ---- view --------------------------------------------------------------------------- */

static double views_once(sb_buffer *b, const uint64_t *offs, unsigned *sink)
{
    double t0 = now();
    unsigned s = 0;
    for (size_t i = 0; i < ZC_OPS; i++) {
        const void *p;
        if (sb_view(b, offs[i], ZC_READ, &p) != (ssize_t)ZC_READ)
            die_errno("sb_view");
        const unsigned char *c = p;
        s += c[0] + c[ZC_READ - 1];
    }
    *sink += s;
    return now() - t0;
}

static double preads_once(sb_buffer *b, const uint64_t *offs, unsigned char *buf,
                          unsigned *sink)
{
    double t0 = now();
    unsigned s = 0;
    for (size_t i = 0; i < ZC_OPS; i++) {
        if (sb_pread(b, buf, ZC_READ, offs[i]) != (ssize_t)ZC_READ)
            die_errno("sb_pread");
        CLOBBER(buf);
        s += buf[0] + buf[ZC_READ - 1];
    }
    *sink += s;
    return now() - t0;
}

static void view_row(void)
{
    struct mem_src ms;
    sb_buffer *b = open_filled(&ms, stream_bytes(), opt.size, opt.size);
    uint64_t *offs = random_offsets(0, opt.size, 0xfeed);
    unsigned char *buf = map_fresh(ZC_READ);
    unsigned sink = 0;
    double v[2][MAX_REPS];
    views_once(b, offs, &sink);
    preads_once(b, offs, buf, &sink);
    for (int k = 0; k < opt.reps; k++) {
        v[0][k] = ZC_OPS / views_once(b, offs, &sink);
        v[1][k] = ZC_OPS / preads_once(b, offs, buf, &sink);
    }
    struct row row = row_init("zerocopy", 1, "Mop/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "view 4 KiB vs sb_pread");
    row_reps(&row, v[0], v[1], opt.reps, 1e-6);
    row.target = 5.0;
    report(&row);
    if (sink == 1)
        printf("(sink %u)\n", sink);
    unmap(buf, ZC_READ);
    free(offs);
    sb_close(b);
}

/* ---- mmap --------------------------------------------------------------------------- */

static double file_preads_once(int fd, size_t mem, const uint64_t *offs,
                               unsigned char *buf)
{
    double t0 = now();
    for (size_t i = 0; i < ZC_OPS; i++) {
        pread_all(fd, buf, ZC_READ, offs[i] - mem);
        CLOBBER(buf);
    }
    return now() - t0;
}

static void mmap_row(void)
{
    const unsigned char *data = stream_bytes();
    size_t mem = opt.mem_limit;
    struct mem_src ms = { .data = data, .len = opt.size };
    sb_source src = { .read = mem_src_read, .ctx = &ms };
    sb_options o = { .mem_limit = mem, .tmp_dir = opt.tmp_dir,
                     .flags = SB_MMAP_READS };
    sb_buffer *b = sb_open(&src, &o);
    if (b == NULL || sb_wait_end(b, NULL) != 0)
        die_errno("sb_open");
    int fd = tmp_file();
    pwrite_all(fd, data + mem, opt.size - mem, 0);
    uint64_t *offs = random_offsets(mem, opt.size, 0xbeef);
    unsigned char *buf = map_fresh(ZC_READ);
    unsigned sink = 0;
    double v[2][MAX_REPS];
    /* Warm both: the spill file's pages and the mapping's page tables. */
    preads_once(b, offs, buf, &sink);
    file_preads_once(fd, mem, offs, buf);
    for (int k = 0; k < opt.reps; k++) {
        v[0][k] = ZC_OPS / preads_once(b, offs, buf, &sink);
        v[1][k] = ZC_OPS / file_preads_once(fd, mem, offs, buf);
    }
    struct row row = row_init("zerocopy", 1, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "SB_MMAP_READS 4 KiB vs pread");
    row_reps(&row, v[0], v[1], opt.reps, (double)ZC_READ / (double)GiB);
    row.target = 1.5;
    report(&row);
    unmap(buf, ZC_READ);
    free(offs);
    close(fd);
    sb_close(b);
}

/* ---- sendfile ------------------------------------------------------------------------- */

struct sink {
    int fd;
    uint64_t want;
};

static void *drain(void *arg)
{
    struct sink *s = arg;
    static char buf[1 << 20];
    uint64_t got = 0;
    while (got < s->want) {
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r <= 0)
            die_errno("sendfile: drain");
        got += (uint64_t)r;
    }
    return NULL;
}

/* A connected loopback TCP pair: *tx to send on, *rx to drain. */
static void tcp_pair(int *tx, int *rx)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0
        || listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &al) != 0)
        die_errno("sendfile: listen");
    *tx = socket(AF_INET, SOCK_STREAM, 0);
    if (*tx < 0 || connect(*tx, (struct sockaddr *)&a, sizeof a) != 0)
        die_errno("sendfile: connect");
    *rx = accept(l, NULL, NULL);
    if (*rx < 0)
        die_errno("sendfile: accept");
    close(l);
}

static double send_once(sb_buffer *b, int plain_fd, size_t len)
{
    int tx, rx;
    tcp_pair(&tx, &rx);
    struct sink s = { .fd = rx, .want = len };
    pthread_t th;
    if (pthread_create(&th, NULL, drain, &s) != 0)
        die("pthread_create");
    double t0 = now();
    for (size_t done = 0; done < len;) {
        ssize_t w;
        if (b != NULL) {
            w = sb_sendfile(b, tx, done, len - done);
        } else {
            off_t off = (off_t)done;
            w = sendfile(tx, plain_fd, &off, len - done);
        }
        if (w <= 0)
            die_errno("sendfile");
        done += (size_t)w;
    }
    pthread_join(th, NULL);
    double t1 = now();
    close(tx);
    close(rx);
    return t1 - t0;
}

static void sendfile_row(void)
{
    const unsigned char *data = stream_bytes();
    size_t len = opt.size;
    struct mem_src ms;
    sb_buffer *b = open_filled(&ms, data, len, opt.mem_limit);
    int fd = tmp_file();
    pwrite_all(fd, data, len, 0);
    double v[2][MAX_REPS];
    send_once(b, -1, len);
    send_once(NULL, fd, len);
    for (int k = 0; k < opt.reps; k++) {
        v[0][k] = (double)len / send_once(b, -1, len);
        v[1][k] = (double)len / send_once(NULL, fd, len);
    }
    char ml[16];
    struct row row = row_init("zerocopy", 1, "GiB/s", HIGHER);
    snprintf(row.variant, sizeof row.variant, "sendfile TCP (mem %s)",
             fmt_size(opt.mem_limit, ml, sizeof ml));
    row_reps(&row, v[0], v[1], opt.reps, 1.0 / (double)GiB);
    row.target = 0.9;
    report(&row);
    close(fd);
    sb_close(b);
}

void case_zerocopy(void)
{
    view_row();
    mmap_row();
    sendfile_row();
}
