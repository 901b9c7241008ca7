/*
 * SPDX-License-Identifier: MIT
 *
 * ready.h - non-blocking readers' armings, the ready list and the poll
 * fd (ready.c).  Internal.
 *
 * The state lives inside struct sb__wait (wait.h), under its mutex, because
 * a reader becomes ready exactly when a publish or the end state passes
 * its range; ready.c owns every field of struct sb__ready.
 */
#ifndef SB_READY_H
#define SB_READY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb__wait;

/*
 * A non-blocking reader's arming (see "Event loops" in the header): the
 * range it waits for, kept in the buffer's heap of armed readers until it
 * becomes answerable, then on the ready list until sb_poll_ready takes it.
 * Lives in the reader; every field but armed is under the wait's mu.
 */
struct sb__armed {
    uint64_t need;              /* answerable once filled >= need */
    size_t slot;                /* index in the heap; SB__UNARMED if none */
    struct sb__armed *prev, *next; /* on the ready list */
    bool listed;                /* on the ready list */
    atomic_bool armed;          /* in the heap; stored under mu, loaded
                                   anywhere (sb_reader_armed) */
    void *owner;                /* the sb_reader, which poll_ready returns */
    uint64_t off;               /* far: armed for [off, need) on the far
                                   list (prev, next), not in the heap */
    bool far;
};
#define SB__UNARMED SIZE_MAX

/*
 * Under the wait's mu: the armed readers in a binary min-heap by need,
 * with room for every non-blocking reader reserved when it opens, so
 * arming never allocates; the ready list, oldest first; and the eventfd
 * (-1 until sb_poll_fd), stored under mu, loaded anywhere.
 */
struct sb__ready {
    struct sb__armed **heap;
    size_t nheap, heap_cap, armable;
    struct sb__armed *head, *tail;
    struct sb__armed *far;      /* armed for ranges past filled (ranged
                                   sources), unsorted */
    _Atomic int efd;
};

void sb__ready_init(struct sb__ready *rd);
void sb__ready_destroy(struct sb__ready *rd);

/*
 * The two calls wait.c makes, on a publish and on the end state.
 * sb__ready_make_locked (w's mu held) moves the armed readers whose need
 * is at most limit to the ready list, and returns true if the list went
 * from empty to not empty: the caller must then call sb__ready_signal once
 * it has let go of mu (so that the loop it wakes does not run into the
 * lock).
 */
bool sb__ready_make_locked(struct sb__wait *w, uint64_t limit);
/* The same for the far armings: those now held (all: every one). */
bool sb__ready_make_far_locked(struct sb__wait *w, bool all);
/* sb__wait_arm for a range [off, need) past filled (ranged sources). */
int sb__wait_arm_range(struct sb__wait *w, struct sb__armed *a, uint64_t off,
                       uint64_t need, uint64_t demand);
void sb__ready_signal(struct sb__wait *w);

/*
 * The calls of the readers and of poll.c, each taking w's mu.
 * sb__wait_armable(w, +1) reserves heap room for one more non-blocking
 * reader (0 or -ENOMEM), (w, -1) gives it back.  sb__wait_arm: if the
 * range ending at need is answerable now, 0 and nothing changes; else the
 * demand rises as for a wait, a takes the place of its old arming (off
 * the heap and the ready list) and -EAGAIN.  sb__wait_disarm takes a off
 * both (a closing reader).  sb__wait_take_ready moves up to max owners
 * off the ready list into out and drains the eventfd when it leaves the
 * list empty.  sb__wait_poll_fd makes the eventfd once: the fd or -errno.
 */
int sb__wait_armable(struct sb__wait *w, int delta);
int sb__wait_arm(struct sb__wait *w, struct sb__armed *a, uint64_t need,
                 uint64_t demand);
void sb__wait_disarm(struct sb__wait *w, struct sb__armed *a);
size_t sb__wait_take_ready(struct sb__wait *w, void **out, size_t max);
int sb__wait_poll_fd(struct sb__wait *w);

#endif /* SB_READY_H */
