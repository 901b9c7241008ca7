/*
 * SPDX-License-Identifier: MIT
 *
 * fixture.h - cleanup that runs even when an assertion fails.
 *
 * A cmocka assertion that fails longjmps out of the test: whatever the test
 * would have joined, closed or freed after it is left behind, and threads
 * still running on the test's stack objects would poison the tests that
 * follow.  So every test runs between fx_setup and fx_teardown (FX_TEST),
 * and keeps what threads touch on the heap, made by the fx_* helpers below,
 * which record how to undo it.  Teardown undoes everything in two passes:
 *
 *   1. unblock, in the order things were made: cancel every buffer, end
 *      every gate, release every hold, stop every pipe writer, so that no
 *      thread can stay blocked;
 *   2. clean up, in reverse order: join readers, background calls and
 *      writers, close buffers, destroy sources, remove scratch directories
 *      (unmounting a tmpfs), close fds, put back limits and signal
 *      actions, free memory.
 *
 * A test that finishes cleans up what it wants to check itself (fx_close,
 * reader_join) and leaves the rest to teardown.  Teardown fails the test if
 * its own cleanup could not run (a thread that did not return in time).
 */
#ifndef SB_TESTS_FIXTURE_H
#define SB_TESTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "helpers.h"

int fx_setup(void **state);
int fx_teardown(void **state);
#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
/* One test body run with a state (*state on entry), e.g. the memory-only
   and the spilled variant of one case: FX_TEST_STATE(f, &spilled). */
#define FX_TEST_STATE(f, st)                                                  \
    cmocka_unit_test_prestate_setup_teardown(f, fx_setup, fx_teardown,        \
                                             (void *)(st))

/*
 * A table of cases: rows is an array of structs whose first member is the
 * row's name (a const char *).  Each row becomes one test, named by the
 * row so that a failure says which row, that runs f between fx_setup and
 * fx_teardown with *state pointing at the row.  fx_rows fills
 * out[0 .. nrows) and returns nrows; FX_ROWS takes the count and the size
 * from the array, FX_NROWS is its count (a constant, to size an array of
 * tests with).
 */
struct CMUnitTest;
size_t fx_rows(struct CMUnitTest *out, void (*f)(void **state),
               const void *rows, size_t row_size, size_t nrows);
#define FX_NROWS(rows) (sizeof(rows) / sizeof((rows)[0]))
#define FX_ROWS(out, f, rows)                                                 \
    fx_rows((out), (f), (rows), sizeof((rows)[0]), FX_NROWS(rows))

/* Record obj: unblock (may be NULL) runs in pass 1, cleanup in pass 2. */
void fx_track(void *obj, void (*unblock)(void *), void (*cleanup)(void *));
/* Forget every record of obj: the test has cleaned it up itself. */
void fx_untrack(void *obj);

/* A point in the records, and undoing back to it: what was made since the
   mark is unblocked and cleaned up now, as teardown would.  For loops whose
   rounds must not pile up until the end of the test. */
size_t fx_mark(void);
void fx_unwind(size_t mark);

/* Zeroed memory, freed in pass 2.  Never NULL (aborts the test). */
void *fx_calloc(size_t n);

/* b (which may be NULL) is cancelled in pass 1 and closed in pass 2. */
sb_buffer *fx_buffer(sb_buffer *b);
/* Close b now: sb_close, and teardown forgets it. */
void fx_close(sb_buffer *b);

/* Sources on the heap, initialised; gates are ended and holds released in
   pass 1, all are destroyed in pass 2. */
gate_src *fx_gate(void);
hold_src *fx_hold(sb_source inner);
chunk_src *fx_chunk(uint64_t len, const size_t *pattern, size_t npattern);
iter_src *fx_iter(uint64_t len, const size_t *pattern, size_t npattern);

/* A reader thread (see reader_start) on the heap, joined in pass 2 unless
   the test joined it.  NULL if it could not be started. */
reader *fx_reader(sb_buffer *b, int kind, uint64_t off, size_t n,
                  int timeout_ms);
/* fn(arg) on a background thread, joined in pass 2.  NULL on failure. */
bg_call *fx_bg(void (*fn)(void *), void *arg);
/* sb_close(b) on a background thread, as fx_bg; from then on it is that
   call's to close, not the teardown's.  NULL (b still the teardown's) if
   the thread could not be started. */
bg_call *fx_close_in_bg(sb_buffer *b);

/*
 * A pipe_writer (see writer_start) on the heap.  fd becomes the writer's:
 * it is made non-blocking, so that pass 1 can stop the writer (stop) even
 * on a pipe nobody reads any more; the writer closes it, and teardown
 * forgets any fx_fd record of it.  Joined in pass 2 unless the test joined
 * it (writer_join).  NULL if it could not be started.
 */
pipe_writer *fx_writer(int fd, uint64_t len, size_t chunk, int pause_every,
                       int pause_ms);

/* A scratch directory under /tmp, removed with its contents in pass 2. */
char *fx_scratch(void);
/* A scratch directory with a tmpfs of size bytes (mount's size=, e.g.
   "64k"; NULL: 64 KiB) mounted on it (mount(2) flags, e.g. MS_RDONLY),
   unmounted and removed in pass 2; NULL, with the reason on stderr, if it
   cannot be mounted (the test may skip). */
char *fx_tmpfs(unsigned long flags, const char *size);
/* fd (returned as is), closed in pass 2 unless fx_close_fd closed it. */
int fx_fd(int fd);
void fx_close_fd(int fd);
/* pipe2(p, flags), both ends as fx_fd; fails the test if it cannot. */
void fx_pipe(int p[2], int flags);

/* setrlimit: resource's soft limit becomes cur, the hard one stays.
   Returns setrlimit's result.  The limits as they were at the first call
   come back in pass 2, or now with fx_rlimit_restore. */
int fx_rlimit(int resource, rlim_t cur);
void fx_rlimit_restore(int resource);
/* sigaction(sig) with handler; the old action comes back in pass 2, or
   now with fx_signal_restore. */
void fx_signal(int sig, void (*handler)(int));
void fx_signal_restore(int sig);

#endif /* SB_TESTS_FIXTURE_H */
