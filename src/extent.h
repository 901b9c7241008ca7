/*
 * SPDX-License-Identifier: MIT
 *
 * extent.h - the runs of held bytes past the watermark, for a stream that
 * several fetchers fill at once (see "Ranged sources" in the header).
 * Internal.
 *
 * The watermark (wait.h's filled) is the run that starts at 0.  Every
 * other run of held bytes is an extent [lo, hi) here, kept sorted and
 * disjoint.  An extent's hi only grows; an extent leaves the map only when
 * it joins the one below it (or the watermark), so a byte once held stays
 * held: a stale look at the map can only miss bytes, never invent them.
 *
 * Writers (the fetchers' bookkeeping) change the map one at a time, under
 * a lock of the caller's (parts.c's mu).  Readers look up without any lock
 * and write nothing shared: a sequence count, odd while the shape of the
 * map changes (an extent added, joined or the arrays grown), tells them to
 * look again; a hi that grows in place needs no count, since a reader that
 * sees the old hi sees fewer held bytes.  Arrays outgrown are kept until
 * the map is destroyed (a reader may still be looking at them): they double
 * each time, so that costs less than the arrays in use.
 *
 * Knows nothing of threads beyond its atomics, nor of where bytes are kept.
 */
#ifndef SB_EXTENT_H
#define SB_EXTENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct sb__extent_arr {
    size_t cap;
    struct sb__extent_arr *older; /* outgrown arrays, freed at destroy */
    _Atomic uint64_t *lo, *hi;   /* [cap] each */
};

struct sb__extents {
    _Atomic uint64_t seq;                   /* odd: the shape is changing */
    _Atomic(struct sb__extent_arr *) arr;
    _Atomic size_t n;                       /* extents in arr */
};

/* Returns 0 or -ENOMEM. */
int sb__extents_init(struct sb__extents *x);
void sb__extents_destroy(struct sb__extents *x);

/*
 * Lock-free: the end of the held run that contains byte off, or off when
 * off is not held in any extent (the watermark is the caller's to check).
 * The answer may be stale, and then short: never past what is held.
 */
uint64_t sb__extents_run(const struct sb__extents *x, uint64_t off);

/* The rest are the writer's, under the caller's lock. */

/* How many extents there are. */
size_t sb__extents_count_locked(const struct sb__extents *x);
/* Extent i's bounds (0 <= i < count). */
void sb__extents_get_locked(const struct sb__extents *x, size_t i,
                            uint64_t *lo, uint64_t *hi);
/* The index of the first extent whose hi is above off (count if none):
   the one holding off, or the next one up. */
size_t sb__extents_find_locked(const struct sb__extents *x, uint64_t off);
/* Add [lo, hi), which overlaps no extent.  Returns 0 or -ENOMEM. */
int sb__extents_add_locked(struct sb__extents *x, uint64_t lo, uint64_t hi);
/* Raise the hi of the extent that starts at lo (release: its bytes are
   stored). */
void sb__extents_grow_locked(struct sb__extents *x, uint64_t lo, uint64_t hi);
/* Remove the extent that starts at lo; returns its hi. */
uint64_t sb__extents_remove_locked(struct sb__extents *x, uint64_t lo);

#endif /* SB_EXTENT_H */
