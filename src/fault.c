/*
 * SPDX-License-Identifier: MIT
 *
 * fault.c - the fault-injection seam.  See fault.h.  Empty in the release
 * library, which is built without SB_FAULT_INJECTION.
 */
#include "fault.h"

#ifdef SB_FAULT_INJECTION

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fault {
    atomic_ulong calls;
    atomic_ulong nth;   /* 0: not armed */
    atomic_int err;
    atomic_bool fired;
};

atomic_int sb__fault_armed;
static struct fault faults[SB__FAULT_NOPS];

int sb__fault_hit(enum sb__fault_op op)
{
    struct fault *f = &faults[op];
    unsigned long nth = atomic_load(&f->nth);
    unsigned long call = atomic_fetch_add(&f->calls, 1) + 1;
    if (nth == 0 || call != nth)
        return 0;
    atomic_store(&f->fired, true);
    return atomic_load(&f->err);
}

void sb__fault_arm(enum sb__fault_op op, unsigned long nth, int err)
{
    struct fault *f = &faults[op];
    atomic_store(&f->nth, 0);
    atomic_store(&f->calls, 0);
    atomic_store(&f->fired, false);
    atomic_store(&f->err, err);
    atomic_store(&f->nth, nth);
    atomic_store(&sb__fault_armed, 1);
}

void sb__fault_disarm(void)
{
    atomic_store(&sb__fault_armed, 0);
    for (int i = 0; i < SB__FAULT_NOPS; i++)
        atomic_store(&faults[i].nth, 0);
}

bool sb__fault_fired(enum sb__fault_op op)
{
    return atomic_load(&faults[op].fired);
}

unsigned long sb__fault_calls(enum sb__fault_op op)
{
    return atomic_load(&faults[op].calls);
}

void *sb__malloc(size_t n)
{
    if (sb__fault(SB__FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(n);
}

void *sb__calloc(size_t n, size_t size)
{
    if (sb__fault(SB__FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, size);
}

void *sb__aligned_alloc(size_t align, size_t n)
{
    if (sb__fault(SB__FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_alloc(align, n);
}

char *sb__strdup(const char *s)
{
    if (sb__fault(SB__FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return strdup(s);
}

#else
/* ISO C wants a translation unit to declare something. */
typedef int sb__fault_seam_compiled_out;
#endif /* SB_FAULT_INJECTION */
