/*
 * stdio.c - a standard FILE * per reader (glibc's fopencookie).
 *
 * Each FILE keeps its own read position over the shared stream, so code
 * that takes a FILE * (a parser, an fgets loop) can read the buffer from its
 * own thread without knowing about it.  Reads block exactly as sb_pread.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct cursor {
    sb_buffer *b;
    uint64_t pos;
};

static ssize_t cursor_read(void *c, char *buf, size_t size)
{
    struct cursor *cur = c;
    /* Like read(2): return what has arrived rather than wait for a whole
       stdio buffer's worth, or fgets would stall on a slow stream. */
    ssize_t n = sb__read(cur->b, buf, size, cur->pos, 1, -1);
    if (n > 0)
        cur->pos += (uint64_t)n;
    return n; /* -1 with errno: stdio sets the error indicator */
}

/* Where SEEK_END is: the length if the stream has ended, else the hint if
   one was given, else wait for the end. */
static int end_offset(sb_buffer *b, uint64_t *end)
{
    int err;
    if (sb__wait_state(&b->wait, &err) == SB_RUNNING && b->length_hint != 0) {
        *end = b->length_hint;
        return 0;
    }
    return sb_wait_end(b, end);
}

static int cursor_seek(void *c, off64_t *offset, int whence)
{
    struct cursor *cur = c;
    uint64_t base;

    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = cur->pos;
        break;
    case SEEK_END:
        if (end_offset(cur->b, &base) != 0)
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

SB_API FILE *sb_fopen(sb_buffer *b)
{
    static const cookie_io_functions_t io = {
        .read = cursor_read,
        .seek = cursor_seek,
        .close = cursor_close,
    };
    if (b == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct cursor *cur = sb__malloc(sizeof *cur);
    if (cur == NULL)
        return NULL;
    cur->b = b;
    cur->pos = 0;
    FILE *f = fopencookie(cur, "r", io);
    if (f == NULL) {
        int err = errno;
        free(cur);
        errno = err;
    }
    return f;
}
