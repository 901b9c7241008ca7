/*
 * SPDX-License-Identifier: MIT
 *
 * fixture.c - cleanup that runs even when an assertion fails; see fixture.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

typedef struct record {
    void *obj;
    void (*unblock)(void *);
    void (*cleanup)(void *);
} record;

/* The running test's records.  Tests run one at a time on the main thread,
   so plain statics do. */
static record *records;
static size_t nrecords, caprecords;
static int teardown_failures;

int fx_setup(void **state)
{
    (void)state;
    nrecords = 0;
    teardown_failures = 0;
    return 0;
}

void fx_track(void *obj, void (*unblock)(void *), void (*cleanup)(void *))
{
    if (nrecords == caprecords) {
        size_t cap = caprecords ? 2 * caprecords : 64;
        record *r = realloc(records, cap * sizeof *r);
        if (r == NULL) {
            fprintf(stderr, "fixture: out of memory\n");
            abort();
        }
        records = r;
        caprecords = cap;
    }
    records[nrecords++] = (record){obj, unblock, cleanup};
}

void fx_untrack(void *obj)
{
    for (size_t i = 0; i < nrecords; i++)
        if (records[i].obj == obj)
            records[i].obj = NULL;
}

size_t fx_mark(void)
{
    return nrecords;
}

void fx_unwind(size_t mark)
{
    for (size_t i = mark; i < nrecords; i++)
        if (records[i].obj != NULL && records[i].unblock != NULL)
            records[i].unblock(records[i].obj);
    /* A cleanup may add records of its own; those go too. */
    while (nrecords > mark) {
        record r = records[--nrecords];
        if (r.obj != NULL && r.cleanup != NULL)
            r.cleanup(r.obj);
    }
}

int fx_teardown(void **state)
{
    (void)state;
    fx_unwind(0);
    return teardown_failures == 0 ? 0 : -1;
}

size_t fx_rows(struct CMUnitTest *out, void (*f)(void **state),
               const void *rows, size_t row_size, size_t nrows)
{
    const char *row = rows;
    for (size_t i = 0; i < nrows; i++, row += row_size) {
        const char *name;
        memcpy(&name, row, sizeof name); /* the row's first member */
        out[i] = (struct CMUnitTest){.name = name,
                                     .test_func = f,
                                     .setup_func = fx_setup,
                                     .teardown_func = fx_teardown,
                                     .initial_state = (void *)row};
    }
    return nrows;
}

void *fx_calloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "fixture: out of memory\n");
        abort();
    }
    fx_track(p, NULL, free);
    return p;
}

/* ---- buffers ------------------------------------------------------------------ */

static void cancel_buffer(void *b)
{
    sb_cancel(b);
}

static void close_buffer(void *b)
{
    sb_close(b);
}

sb_buffer *fx_buffer(sb_buffer *b)
{
    if (b != NULL)
        fx_track(b, cancel_buffer, close_buffer);
    return b;
}

void fx_close(sb_buffer *b)
{
    fx_untrack(b);
    sb_close(b);
}

/* ---- sources -------------------------------------------------------------------- */

static void end_gate(void *g)
{
    gate_end(g);
}

static void destroy_gate(void *g)
{
    gate_destroy(g);
}

gate_src *fx_gate(void)
{
    gate_src *g = fx_calloc(sizeof *g);
    gate_init(g);
    /* Destroyed after everything made later is gone, freed after that. */
    fx_track(g, end_gate, destroy_gate);
    return g;
}

static void release_hold(void *h)
{
    hold_release(h);
}

static void destroy_hold(void *h)
{
    hold_destroy(h);
}

hold_src *fx_hold(sb_source inner)
{
    hold_src *h = fx_calloc(sizeof *h);
    hold_init(h, inner);
    fx_track(h, release_hold, destroy_hold);
    return h;
}

chunk_src *fx_chunk(uint64_t len, const size_t *pattern, size_t npattern)
{
    chunk_src *s = fx_calloc(sizeof *s);
    chunk_init(s, len, pattern, npattern);
    return s;
}

static void destroy_iter(void *s)
{
    iter_destroy(s);
}

iter_src *fx_iter(uint64_t len, const size_t *pattern, size_t npattern)
{
    iter_src *s = fx_calloc(sizeof *s);
    if (iter_init(s, len, pattern, npattern) != 0)
        fail_msg("iter_init: out of memory");
    fx_track(s, NULL, destroy_iter);
    return s;
}

/* ---- threads -------------------------------------------------------------------- */

/* Pass 1 has cancelled every buffer and opened every gate: a thread that
   still does not return is a bug, and joining it would hang. */
#define FX_JOIN_MS WAIT_LONG_MS

static void join_reader(void *p)
{
    reader *r = p;
    if (r->started && !reader_wait(r, FX_JOIN_MS)) {
        fprintf(stderr, "fixture: a reader thread did not return\n");
        teardown_failures++;
        abort(); /* its buffer must not be freed under it */
    }
    reader_join(r);
}

reader *fx_reader(sb_buffer *b, int kind, uint64_t off, size_t n,
                  int timeout_ms)
{
    reader *r = fx_calloc(sizeof *r);
    if (reader_start(r, b, kind, off, n, timeout_ms) != 0)
        return NULL;
    fx_track(r, NULL, join_reader);
    return r;
}

static void join_bg(void *p)
{
    bg_call *c = p;
    if (c->joined)
        return;
    if (!bg_wait(c, FX_JOIN_MS)) {
        fprintf(stderr, "fixture: a background call did not return\n");
        teardown_failures++;
        abort();
    }
    bg_join(c);
}

bg_call *fx_bg(void (*fn)(void *), void *arg)
{
    bg_call *c = fx_calloc(sizeof *c);
    if (bg_start(c, fn, arg) != 0)
        return NULL;
    fx_track(c, NULL, join_bg);
    return c;
}

static void stop_writer(void *p)
{
    pipe_writer *w = p;
    atomic_store(&w->stop, 1);
}

static void join_writer(void *p)
{
    writer_join(p);
}

pipe_writer *fx_writer(int fd, uint64_t len, size_t chunk, int pause_every,
                       int pause_ms)
{
    fx_untrack((void *)(intptr_t)(fd + 1)); /* no longer an fx_fd */
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
        close(fd);
        return NULL;
    }
    pipe_writer *w = fx_calloc(sizeof *w);
    if (writer_start(w, fd, len, chunk, pause_every, pause_ms) != 0) {
        close(fd);
        return NULL;
    }
    fx_track(w, stop_writer, join_writer);
    return w;
}

bg_call *fx_close_in_bg(sb_buffer *b)
{
    bg_call *c = fx_bg(close_buffer, b);
    if (c != NULL)
        fx_untrack(b);
    return c;
}

/* ---- the file system ------------------------------------------------------------ */

static void free_scratch(void *dir)
{
    scratch_free(dir);
}

char *fx_scratch(void)
{
    char *dir = scratch_new();
    if (dir == NULL)
        fail_msg("cannot make a scratch directory");
    fx_track(dir, NULL, free_scratch);
    return dir;
}

static void unmount_scratch(void *dir)
{
    umount(dir);
    scratch_free(dir);
}

char *fx_tmpfs(unsigned long flags, const char *size)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", size != NULL ? size : "64k");
    char *dir = scratch_new();
    if (dir == NULL)
        fail_msg("cannot make a scratch directory");
    if (mount("tmpfs", dir, "tmpfs", flags, opts) != 0) {
        fprintf(stderr, "cannot mount a%s tmpfs on %s (%s): skipping\n",
                flags & MS_RDONLY ? " read-only" : "", dir, strerror(errno));
        scratch_free(dir);
        return NULL;
    }
    fx_track(dir, NULL, unmount_scratch);
    return dir;
}

static void close_fd(void *p)
{
    close((int)(intptr_t)p - 1);
}

int fx_fd(int fd)
{
    if (fd >= 0)
        fx_track((void *)(intptr_t)(fd + 1), NULL, close_fd);
    return fd;
}

void fx_close_fd(int fd)
{
    fx_untrack((void *)(intptr_t)(fd + 1));
    close(fd);
}

void fx_pipe(int p[2], int flags)
{
    if (pipe2(p, flags) != 0)
        fail_msg("pipe2: %s", strerror(errno));
    fx_fd(p[0]);
    fx_fd(p[1]);
}

/* ---- process state ------------------------------------------------------------- */

/* Indexed by resource and by signal; a record points at its slot. */
static struct rlimit saved_limits[RLIM_NLIMITS];
static bool limit_saved[RLIM_NLIMITS];
static struct sigaction saved_actions[NSIG];
static bool action_saved[NSIG];

static void restore_limit(void *slot)
{
    int resource = (int)((struct rlimit *)slot - saved_limits);
    setrlimit(resource, slot);
    limit_saved[resource] = false;
}

int fx_rlimit(int resource, rlim_t cur)
{
    if (resource < 0 || resource >= RLIM_NLIMITS) {
        errno = EINVAL;
        return -1;
    }
    if (!limit_saved[resource]) {
        if (getrlimit(resource, &saved_limits[resource]) != 0)
            return -1;
        limit_saved[resource] = true;
        fx_track(&saved_limits[resource], NULL, restore_limit);
    }
    struct rlimit lim = {.rlim_cur = cur,
                         .rlim_max = saved_limits[resource].rlim_max};
    return setrlimit(resource, &lim);
}

void fx_rlimit_restore(int resource)
{
    if (resource < 0 || resource >= RLIM_NLIMITS || !limit_saved[resource])
        return;
    fx_untrack(&saved_limits[resource]);
    restore_limit(&saved_limits[resource]);
}

static void restore_action(void *slot)
{
    int sig = (int)((struct sigaction *)slot - saved_actions);
    sigaction(sig, slot, NULL);
    action_saved[sig] = false;
}

void fx_signal(int sig, void (*handler)(int))
{
    if (sig <= 0 || sig >= NSIG)
        fail_msg("fx_signal: no signal %d", sig);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    if (sigaction(sig, &sa, &old) != 0)
        fail_msg("sigaction(%d): %s", sig, strerror(errno));
    if (!action_saved[sig]) {
        saved_actions[sig] = old;
        action_saved[sig] = true;
        fx_track(&saved_actions[sig], NULL, restore_action);
    }
}

void fx_signal_restore(int sig)
{
    if (sig <= 0 || sig >= NSIG || !action_saved[sig])
        return;
    fx_untrack(&saved_actions[sig]);
    restore_action(&saved_actions[sig]);
}
