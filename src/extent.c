/*
 * SPDX-License-Identifier: MIT
 *
 * extent.c - the extent map: sorted runs of held bytes, looked up without
 * a lock.  See extent.h for the rules.
 *
 * A reader's look is a seqlock read: the count before and after must be
 * the same even number, or it looks again.  Every load inside is atomic
 * (relaxed, but for hi), so a look torn by a writer is never undefined
 * behaviour, only wrong, and the count catches it.  The array a reader
 * loaded may have been outgrown meanwhile; n is clipped to its cap so a
 * torn look never reads past it.
 */
#include "extent.h"
#include "fault.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

static struct sb__extent_arr *arr_new(size_t cap)
{
    struct sb__extent_arr *a = sb__calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->cap = cap;
    a->lo = sb__calloc(cap, sizeof *a->lo);
    a->hi = sb__calloc(cap, sizeof *a->hi);
    if (a->lo == NULL || a->hi == NULL) {
        free((void *)a->lo);
        free((void *)a->hi);
        free(a);
        return NULL;
    }
    return a;
}

int sb__extents_init(struct sb__extents *x)
{
    struct sb__extent_arr *a = arr_new(16);
    if (a == NULL)
        return -ENOMEM;
    atomic_init(&x->seq, 0);
    atomic_init(&x->arr, a);
    atomic_init(&x->n, 0);
    return 0;
}

void sb__extents_destroy(struct sb__extents *x)
{
    struct sb__extent_arr *a = atomic_load(&x->arr);
    while (a != NULL) {
        struct sb__extent_arr *older = a->older;
        free((void *)a->lo);
        free((void *)a->hi);
        free(a);
        a = older;
    }
    atomic_store(&x->arr, NULL);
}

/* The index of the first extent with hi > off, by binary search over the
   sorted his (the extents are disjoint, so his are sorted too). */
static size_t find(const struct sb__extent_arr *a, size_t n, uint64_t off)
{
    size_t l = 0, r = n;
    while (l < r) {
        size_t m = l + (r - l) / 2;
        if (atomic_load_explicit(&a->hi[m], memory_order_relaxed) <= off)
            l = m + 1;
        else
            r = m;
    }
    return l;
}

uint64_t sb__extents_run(const struct sb__extents *x, uint64_t off)
{
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&x->seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield(); /* a writer is moving entries: a moment */
            continue;
        }
        const struct sb__extent_arr *a =
            atomic_load_explicit(&x->arr, memory_order_acquire);
        size_t n = atomic_load_explicit(&x->n, memory_order_relaxed);
        if (n > a->cap)
            n = a->cap;
        uint64_t end = off;
        size_t i = find(a, n, off);
        if (i < n && atomic_load_explicit(&a->lo[i], memory_order_relaxed) <= off) {
            /* acquire: the bytes below hi are stored (the fetcher's store
               of them happens before its release of hi). */
            uint64_t hi = atomic_load_explicit(&a->hi[i], memory_order_acquire);
            if (hi > off)
                end = hi;
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&x->seq, memory_order_relaxed) == s1)
            return end;
    }
}

static struct sb__extent_arr *arr_locked(const struct sb__extents *x)
{
    return atomic_load_explicit(&x->arr, memory_order_relaxed);
}

size_t sb__extents_count_locked(const struct sb__extents *x)
{
    return atomic_load_explicit(&x->n, memory_order_relaxed);
}

void sb__extents_get_locked(const struct sb__extents *x, size_t i,
                            uint64_t *lo, uint64_t *hi)
{
    const struct sb__extent_arr *a = arr_locked(x);
    assert(i < sb__extents_count_locked(x));
    *lo = atomic_load_explicit(&a->lo[i], memory_order_relaxed);
    *hi = atomic_load_explicit(&a->hi[i], memory_order_relaxed);
}

size_t sb__extents_find_locked(const struct sb__extents *x, uint64_t off)
{
    return find(arr_locked(x), sb__extents_count_locked(x), off);
}

/* Start and end a change of shape: readers that saw the count odd, or a
   different count after their look, look again. */
static void shape_begin(struct sb__extents *x)
{
    atomic_fetch_add_explicit(&x->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void shape_end(struct sb__extents *x)
{
    atomic_fetch_add_explicit(&x->seq, 1, memory_order_release);
}

static void set(struct sb__extent_arr *a, size_t i, uint64_t lo, uint64_t hi)
{
    atomic_store_explicit(&a->lo[i], lo, memory_order_relaxed);
    atomic_store_explicit(&a->hi[i], hi, memory_order_release);
}

/* The map's shape: runs not empty, sorted and apart (two runs that touch
   are joined only after a compare, so they may touch).  An O(n) walk
   after every change, so only in the fuzz targets' builds, where it
   stops a run at the change that broke it rather than at a later lookup
   that trips over it. */
#ifdef SB_CHECK_INVARIANTS
static void check_shape_locked(const struct sb__extents *x)
{
    const struct sb__extent_arr *a = arr_locked(x);
    size_t n = sb__extents_count_locked(x);
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = atomic_load_explicit(&a->lo[i], memory_order_relaxed);
        uint64_t hi = atomic_load_explicit(&a->hi[i], memory_order_relaxed);
        assert(lo < hi);
        assert(i + 1 == n || hi <= atomic_load_explicit(&a->lo[i + 1], memory_order_relaxed));
        (void)lo;
        (void)hi;
    }
}
#else
static void check_shape_locked(const struct sb__extents *x)
{
    (void)x;
}
#endif

int sb__extents_add_locked(struct sb__extents *x, uint64_t lo, uint64_t hi)
{
    struct sb__extent_arr *a = arr_locked(x);
    size_t n = sb__extents_count_locked(x);
    size_t at = find(a, n, lo);
    struct sb__extent_arr *grown = NULL;
    if (n == a->cap) {
        if (a->cap > SIZE_MAX / 2 || (grown = arr_new(a->cap * 2)) == NULL)
            return -ENOMEM;
        grown->older = a;
    }
    shape_begin(x);
    if (grown != NULL) {
        for (size_t i = 0; i < n; i++)
            set(grown, i, atomic_load_explicit(&a->lo[i], memory_order_relaxed),
                atomic_load_explicit(&a->hi[i], memory_order_relaxed));
        atomic_store_explicit(&x->arr, grown, memory_order_release);
        a = grown;
    }
    for (size_t i = n; i > at; i--)
        set(a, i, atomic_load_explicit(&a->lo[i - 1], memory_order_relaxed),
            atomic_load_explicit(&a->hi[i - 1], memory_order_relaxed));
    set(a, at, lo, hi);
    atomic_store_explicit(&x->n, n + 1, memory_order_relaxed);
    shape_end(x);
    check_shape_locked(x);
    return 0;
}

void sb__extents_grow_locked(struct sb__extents *x, uint64_t lo, uint64_t hi)
{
    struct sb__extent_arr *a = arr_locked(x);
    size_t i = find(a, sb__extents_count_locked(x), lo);
    assert(i < sb__extents_count_locked(x)
           && atomic_load_explicit(&a->lo[i], memory_order_relaxed) == lo);
    if (hi > atomic_load_explicit(&a->hi[i], memory_order_relaxed))
        atomic_store_explicit(&a->hi[i], hi, memory_order_release);
    check_shape_locked(x);
}

uint64_t sb__extents_remove_locked(struct sb__extents *x, uint64_t lo)
{
    struct sb__extent_arr *a = arr_locked(x);
    size_t n = sb__extents_count_locked(x);
    size_t at = find(a, n, lo);
    assert(at < n && atomic_load_explicit(&a->lo[at], memory_order_relaxed) == lo);
    uint64_t hi = atomic_load_explicit(&a->hi[at], memory_order_relaxed);
    shape_begin(x);
    for (size_t i = at; i + 1 < n; i++)
        set(a, i, atomic_load_explicit(&a->lo[i + 1], memory_order_relaxed),
            atomic_load_explicit(&a->hi[i + 1], memory_order_relaxed));
    atomic_store_explicit(&x->n, n - 1, memory_order_relaxed);
    shape_end(x);
    check_shape_locked(x);
    return hi;
}
