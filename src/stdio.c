/*
 * SPDX-License-Identifier: MIT
 *
 * stdio.c - a standard FILE * per reader (glibc's fopencookie).
 *
 * Each FILE keeps its own read position over the shared stream, so code
 * that takes a FILE * (a parser, an fgets loop) can read the buffer from its
 * own thread without knowing about it.  Reads block like read(2) on a pipe
 * (through an SB_NONBLOCK reader: fail with EAGAIN, as on a non-blocking
 * one, and so does a SEEK_END that would wait for the end).
 *
 * Seeking must not block, and glibc makes that take some care.  fseek on a
 * buffered read stream (_IO_new_file_seekoff) seeks the cookie to the block
 * boundary below the target and reads a buffer there through the cookie;
 * a cookie read that blocked would make fseek wait for bytes at that
 * boundary.  glibc copes with a read that returns fewer bytes than it
 * wanted, or -1: it seeks the cookie the rest of the way instead.  So the
 * one read that comes from inside fseek must not wait, while every read
 * that comes from fread, fgets or getc must.  They can be told apart: the
 * fseek read comes right after a SEEK_SET of the cookie with the FILE's
 * cached offset (_offset, public in glibc's struct _IO_FILE) still unknown,
 * which _IO_cookie_seekoff sets at the start of every fseek and every
 * completed fseek replaces with the new offset before it returns.  A read
 * that only looks like it (none is known) would merely not wait, and
 * test_stdio checks both sides on the glibc it is built with.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct cursor {
    sb_buffer *b;
    sb_reader *r;     /* sb_reader_fopen: read through it, release behind */
    FILE *f;          /* the FILE this cookie belongs to */
    uint64_t pos;
    bool seek_set;    /* the last call was a SEEK_SET */
};

/* Whether this read is the one glibc's fseek makes (see the top). */
static bool inside_fseek(const struct cursor *cur)
{
    return cur->seek_set && cur->f != NULL && cur->f->_offset == -1;
}

static ssize_t cursor_read(void *c, char *buf, size_t size)
{
    struct cursor *cur = c;
    int timeout_ms = inside_fseek(cur) ? 0 : -1;
    cur->seek_set = false;
    /* Like read(2): return what has arrived rather than wait for a whole
       stdio buffer's worth, or fgets would stall on a slow stream. */
    ssize_t n = sb__read(cur->b, cur->r, buf, size, cur->pos, 1, timeout_ms);
    if (n > 0) {
        cur->pos += (uint64_t)n;
        /* stdio holds its own copy of what it read: the reader may let go
           of it.  A release that fails has failed the stream; the bytes
           just read are still good. */
        if (cur->r != NULL)
            sb_reader_release(cur->r, cur->pos);
    }
    return n; /* -1 with errno: stdio sets the error indicator, except
                 inside fseek, which seeks the rest of the way instead */
}

/* Where SEEK_END is: the length if the stream has ended, else the hint if
   one was given, else wait for the end; through an SB_NONBLOCK reader,
   which never waits, EAGAIN instead (nothing is armed: there is no range
   to arm for). */
static int end_offset(const struct cursor *cur, uint64_t *end)
{
    sb_buffer *b = cur->b;
    int err;
    if (sb__wait_state(&b->wait, &err) == SB_RUNNING) {
        if (b->length_hint != 0) {
            *end = b->length_hint;
            return 0;
        }
        if (cur->r != NULL && sb__reader_arm(cur->r) != NULL) {
            errno = EAGAIN;
            return -1;
        }
    }
    return sb_wait_end(b, end);
}

static int cursor_seek(void *c, off64_t *offset, int whence)
{
    struct cursor *cur = c;
    uint64_t base;

    cur->seek_set = whence == SEEK_SET;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = cur->pos;
        break;
    case SEEK_END:
        if (end_offset(cur, &base) != 0)
            return -1;
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (base > INT64_MAX || (*offset < 0 && (uint64_t)-(*offset + 1) >= base) ||
        (*offset > 0 && (uint64_t)*offset > INT64_MAX - base)) {
        errno = EINVAL; /* before the start, or past what off64_t holds */
        return -1;
    }
    cur->pos = *offset < 0 ? base - (uint64_t)-(*offset + 1) - 1
                           : base + (uint64_t)*offset;
    *offset = (off64_t)cur->pos;
    return 0;
}

static int cursor_close(void *c)
{
    free(c);
    return 0;
}

static FILE *open_cursor(sb_buffer *b, sb_reader *r)
{
    static const cookie_io_functions_t io = {
        .read = cursor_read,
        .seek = cursor_seek,
        .close = cursor_close,
    };
    struct cursor *cur = sb__malloc(sizeof *cur);
    if (cur == NULL)
        return NULL;
    cur->b = b;
    cur->r = r;
    cur->f = NULL;
    cur->pos = r != NULL ? sb__reader_floor(r) : 0;
    cur->seek_set = false;
    FILE *f = fopencookie(cur, "r", io);
    if (f == NULL) {
        int err = errno;
        free(cur);
        errno = err;
        return NULL;
    }
    cur->f = f;
    /* fopencookie starts at offset 0: tell stdio where a reader's FILE
       starts, without reading (SEEK_SET never waits). */
    if (r != NULL && cur->pos != 0
        && fseeko(f, (off_t)cur->pos, SEEK_SET) != 0) {
        int err = errno;
        fclose(f);
        errno = err;
        return NULL;
    }
    return f;
}

SB_API FILE *sb_fopen(sb_buffer *b)
{
    if (b == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return open_cursor(b, NULL);
}

SB_API FILE *sb_reader_fopen(sb_reader *r)
{
    if (r == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return open_cursor(sb__reader_buffer(r), r);
}
