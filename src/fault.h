/*
 * SPDX-License-Identifier: MIT
 *
 * fault.h - the fault-injection seam for tests.  Internal.
 *
 * Every operation the library depends on and that can fail asks here first.
 * A test arms one operation to fail on its Nth call from now with a chosen
 * errno, runs a scenario, and checks what happened; it then arms N+1, until
 * the scenario no longer reaches an Nth call.  Disarmed, the check is one
 * relaxed atomic load.
 *
 * The state is process-wide by necessity (the failure must reach sb_open
 * before any buffer exists), so only tests arm it, one at a time.
 *
 * The seam exists only where SB_FAULT_INJECTION is defined: in the archive
 * the tests link and in the fuzz target.  The release library is built
 * without it, and there every sb__fault() is the constant 0 and the
 * allocation wrappers are the plain functions.
 */
#ifndef SB_FAULT_H
#define SB_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum sb__fault_op {
    SB__FAULT_ALLOC,        /* malloc, calloc, strdup, mmap: ENOMEM */
    SB__FAULT_THREAD,       /* pthread_create: EAGAIN */
    SB__FAULT_SPILL_CREATE, /* creating the spill file */
    SB__FAULT_SPILL_WRITE,  /* pwrite to the spill file */
    SB__FAULT_SPILL_READ,   /* pread from the spill file */
    SB__FAULT_RELEASE,      /* giving back memory or spill-file space */
    SB__FAULT_MAP,          /* mapping a window of the spill file */
    SB__FAULT_NOPS
};

#ifdef SB_FAULT_INJECTION

extern atomic_int sb__fault_armed;

int sb__fault_hit(enum sb__fault_op op);

/* 0: go on; else the errno this call must fail with. */
static inline int sb__fault(enum sb__fault_op op)
{
    if (atomic_load_explicit(&sb__fault_armed, memory_order_relaxed) == 0)
        return 0;
    return sb__fault_hit(op);
}

/* Make the nth call (1-based) of op from now fail with err; the calls
   before and after it succeed.  Re-arming resets op's count. */
void sb__fault_arm(enum sb__fault_op op, unsigned long nth, int err);
/* Disarm every op. */
void sb__fault_disarm(void);
/* Whether op's armed failure has happened. */
bool sb__fault_fired(enum sb__fault_op op);
/* How many calls of op were made since it was armed. */
unsigned long sb__fault_calls(enum sb__fault_op op);

/* Allocation through the seam: NULL with errno ENOMEM when injected. */
void *sb__malloc(size_t n);
void *sb__calloc(size_t n, size_t size);
void *sb__aligned_alloc(size_t align, size_t n);
char *sb__strdup(const char *s);

#else /* !SB_FAULT_INJECTION */

#include <stdlib.h>
#include <string.h>

static inline int sb__fault(enum sb__fault_op op)
{
    (void)op;
    return 0;
}
#define sb__malloc malloc
#define sb__calloc calloc
#define sb__aligned_alloc aligned_alloc
#define sb__strdup strdup

#endif /* SB_FAULT_INJECTION */

#endif /* SB_FAULT_H */
