/* SPDX-License-Identifier: MIT */
/*
 * fuzz_common.h - what the two libFuzzer targets share: reading the input,
 * reporting a mismatch, the stream's bytes, the errno table, picking an
 * offset, and the flat-array model of what one read of a stream that is
 * over (or whose range has arrived) returns.
 *
 * Each target defines FUZZ_NAME (a string) before including it.  Every
 * function is static inline, so a target that does not use one gets no
 * warning.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_common.h"
#endif

/* ---- input --------------------------------------------------------------- */

/* The input, read front to back; missing bytes read as 0. */
typedef struct input {
    const uint8_t *p;
    size_t n, i;
} input;

static inline unsigned u8(input *in)
{
    return in->i < in->n ? in->p[in->i++] : 0;
}

static inline unsigned u16(input *in)
{
    unsigned lo = u8(in);
    return lo | u8(in) << 8;
}

/* ---- failure reports ----------------------------------------------------- */

/* What the current input is, for the report; the spill directory, removed
   (it is empty: spill files never have a name) before aborting. */
static char scenario[512];
static char tmp_dir[64];

static inline void remove_tmp_dir(void)
{
    rmdir(tmp_dir);
}

/* Make the spill directory once per process; removed at exit. */
static inline void make_tmp_dir(void)
{
    /* tmpfs where there is one: a spill write per input is then a copy,
       not a trip through a disk file system's journal. */
    const char *base = getenv("FUZZ_TMPDIR");
    if (base == NULL)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/%s.XXXXXX", base, FUZZ_NAME);
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tmp_dir);
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static inline void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, FUZZ_NAME ": mismatch: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  scenario: %s\n", scenario);
    remove_tmp_dir();
    abort();
}

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond))                                                          \
            die(__VA_ARGS__);                                                 \
    } while (0)

/* ---- the stream's bytes --------------------------------------------------- */

/* len pseudo-random bytes from seed: a stream's contents. */
static inline void fill_content(uint8_t *dst, unsigned seed, size_t len)
{
    uint64_t x = 0x9E3779B97F4A7C15u * (seed + 1);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        dst[i] = (uint8_t)(x >> 24);
    }
}

/* Error numbers a source, a writer's sb_finish or the seam fail with. */
static const int errnos[] = {EIO, ECONNRESET, EPROTO, ENOSPC, EACCES,
                             ETIMEDOUT, EBADMSG, EPIPE, ENOMEM, EFBIG,
                             ECANCELED, EAGAIN, EDQUOT, EROFS, ENXIO, 1};
#define NERRNOS (sizeof errnos / sizeof errnos[0])

/* An offset from 16 bits of input: mostly in [0, len + 256], sometimes
   near the memory limit, the end, 2^40 or UINT64_MAX. */
static inline uint64_t pick_off(unsigned v, uint64_t len, size_t mem)
{
    if ((v & 0xC000) != 0xC000)
        return v % (len + 257);
    unsigned d = v & 0x7F;
    switch ((v >> 7) & 7) {
    case 0:
        return mem > d ? mem - d : 0;
    case 1:
        return mem + d;
    case 2:
        return len > d ? len - d : 0;
    case 3:
        return len + d;
    case 4:
        return UINT64_MAX - d;
    case 5:
        return ((uint64_t)1 << 40) + d;
    default:
        return d;
    }
}

/* ---- the model of one read ------------------------------------------------- */

/*
 * What sb_pread(off, n) returns once the range has arrived or the stream
 * is over, with len bytes and err (0: ended), or -1 and *want_err: a short
 * count only at the end, 0 at or past the end of an ended stream, the
 * stream's error only when no byte can be returned.
 */
static inline ssize_t expect(uint64_t len, int err, uint64_t off, size_t n,
                             int *want_err)
{
    *want_err = 0;
    if (off > UINT64_MAX - n) {
        *want_err = EINVAL;
        return -1;
    }
    if (n == 0)
        return 0;
    if (off + n <= len)
        return (ssize_t)n;
    if (off < len)
        return (ssize_t)(len - off);
    if (err) {
        *want_err = err;
        return -1;
    }
    return 0;
}

#endif /* FUZZ_COMMON_H */
