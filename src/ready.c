/*
 * SPDX-License-Identifier: MIT
 *
 * ready.c - non-blocking readers: their armings, the ready list, and the
 * poll fd (see "Event loops" in the header; poll.c is the public face).
 *
 * The rules:
 *
 *   - Everything here is under the wait's mu (wait.h), the lock a publish
 *     and the end state take anyway: a reader becomes ready exactly when
 *     filled or the state passes its range, so arming and publishing can
 *     never cross (an arm checks the range under mu; a publish moves
 *     every due arming under mu).
 *   - Why a heap, and not the sorted queue the blocked waiters use: an
 *     event loop may hold thousands of armed readers at once (a server's
 *     clients), and arming must stay cheap (log n, no allocation: heap
 *     room is reserved when a non-blocking reader opens), while a publish
 *     that makes no one ready looks at the top record only and costs no
 *     system call.
 *   - The fd (an eventfd) is readable while the ready list is not empty.
 *     It is signalled (written) when the list goes from empty to not
 *     empty, by the thread that did it, after that thread has let go of
 *     mu, so the loop it wakes never runs into the lock; an eventfd write
 *     never blocks.
 *   - It is drained (read) by whatever empties the list: sb_poll_ready
 *     taking the last reader, a close or a new arm of the last one
 *     listed.  The drain is under mu, in the same critical section that
 *     emptied the list: drained after letting go, a reader made ready in
 *     between would be on the list with the fd quiet, and a loop waiting
 *     on the fd would never hear of it (a lost wake-up).
 *   - The one spurious wake-up: a signal sent after its sender let go of
 *     mu can land after a consumer took that reader and drained, leaving
 *     the fd readable with the list empty.  The next sb_poll_ready
 *     returns 0 and drains it.  Once per such race, never more: it is
 *     drained, not re-signalled.
 *
 * model/ready.pml is these rules in Promela, checked by `make model` for
 * lost wake-ups (a listed reader with the fd quiet) and for spurious ones
 * beyond that race.
 */
#include "wait.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

void sb__ready_init(struct sb__ready *rd)
{
    rd->heap = NULL;
    rd->nheap = rd->heap_cap = rd->armable = 0;
    rd->head = rd->tail = NULL;
    rd->far = NULL;
    atomic_init(&rd->efd, -1);
}

void sb__ready_destroy(struct sb__ready *rd)
{
    free(rd->heap);
    int fd = atomic_load_explicit(&rd->efd, memory_order_relaxed);
    if (fd >= 0)
        close(fd);
}

/* ---- the heap of armed readers, by need --------------------------------- */

static bool heap_less(const struct sb__armed *a, const struct sb__armed *b)
{
    return a->need < b->need;
}

static void heap_set_locked(struct sb__wait *w, size_t i, struct sb__armed *a)
{
    w->ready.heap[i] = a;
    a->slot = i;
}

static void sift_up_locked(struct sb__wait *w, size_t i)
{
    struct sb__armed **heap = w->ready.heap;
    struct sb__armed *a = heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_less(a, heap[up]))
            break;
        heap_set_locked(w, i, heap[up]);
        i = up;
    }
    heap_set_locked(w, i, a);
}

static void sift_down_locked(struct sb__wait *w, size_t i)
{
    struct sb__armed **heap = w->ready.heap;
    size_t n = w->ready.nheap;
    struct sb__armed *a = heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(heap[c + 1], heap[c]))
            c++;
        if (!heap_less(heap[c], a))
            break;
        heap_set_locked(w, i, heap[c]);
        i = c;
    }
    heap_set_locked(w, i, a);
}

/* keep: as far_unarm_locked's. */
static void heap_remove_locked(struct sb__wait *w, struct sb__armed *a,
                               bool keep)
{
    sb__wait_assert_locked(w);
    size_t i = a->slot;
    assert(i < w->ready.nheap && w->ready.heap[i] == a);
    struct sb__armed *last = w->ready.heap[--w->ready.nheap];
    a->slot = SB__UNARMED;
    if (!keep)
        atomic_store_explicit(&a->armed, false, memory_order_relaxed);
    if (last != a) {
        heap_set_locked(w, i, last);
        sift_up_locked(w, i);
        sift_down_locked(w, last->slot);
    }
}

/* ---- the ready list and the fd ------------------------------------------ */

static void unlist_locked(struct sb__wait *w, struct sb__armed *a)
{
    sb__wait_assert_locked(w);
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        w->ready.head = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    else
        w->ready.tail = a->prev;
    a->prev = a->next = NULL;
    a->listed = false;
}

/* Drain the fd once the list is empty (see the top for why under mu).  An
   eventfd read never blocks (EFD_NONBLOCK). */
static void drain_if_empty_locked(struct sb__wait *w)
{
    sb__wait_assert_locked(w);
    int fd = atomic_load_explicit(&w->ready.efd, memory_order_relaxed);
    if (w->ready.head == NULL && fd >= 0) {
        uint64_t count;
        if (read(fd, &count, sizeof count) < 0) {
            /* EAGAIN: nothing to drain */
        }
    }
}

/* Off the far list (ranged sources).  keep: the reader is armed again at
   once, under the same lock, so armed must not read 0 meanwhile. */
static void far_unarm_locked(struct sb__wait *w, struct sb__armed *a,
                             bool keep)
{
    sb__wait_assert_locked(w);
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        w->ready.far = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    a->far = false;
    if (!keep)
        atomic_store_explicit(&a->armed, false, memory_order_relaxed);
}

/* Off the heap and the list (a closing reader, or a send whose out_fd took
   nothing).  A reader that leaves the list empty drains the fd, as
   sb_poll_ready does: a level-triggered loop must not wake for a list that
   has emptied. */
static void disarm_locked(struct sb__wait *w, struct sb__armed *a)
{
    sb__wait_assert_locked(w);
    if (a->far)
        far_unarm_locked(w, a, false);
    if (a->slot != SB__UNARMED)
        heap_remove_locked(w, a, false);
    if (a->listed) {
        unlist_locked(w, a);
        drain_if_empty_locked(w);
    }
}

/* Put a (off the heap or the far list) at the ready list's tail. */
static void list_locked(struct sb__wait *w, struct sb__armed *a)
{
    sb__wait_assert_locked(w);
    struct sb__ready *rd = &w->ready;
    a->next = NULL;
    a->prev = rd->tail;
    if (rd->tail != NULL)
        rd->tail->next = a;
    else
        rd->head = a;
    rd->tail = a;
    a->listed = true;
}

bool sb__ready_make_locked(struct sb__wait *w, uint64_t limit)
{
    sb__wait_assert_locked(w);
    struct sb__ready *rd = &w->ready;
    bool was_empty = rd->head == NULL;
    bool moved = false;
    while (rd->nheap > 0 && rd->heap[0]->need <= limit) {
        struct sb__armed *a = rd->heap[0];
        heap_remove_locked(w, a, false);
        list_locked(w, a);
        moved = true;
    }
    return was_empty && moved;
}

bool sb__ready_make_far_locked(struct sb__wait *w, bool all)
{
    sb__wait_assert_locked(w);
    struct sb__ready *rd = &w->ready;
    bool was_empty = rd->head == NULL;
    bool moved = false;
    struct sb__armed *a = rd->far;
    while (a != NULL) {
        struct sb__armed *next = a->next;
        if (all || sb__wait_held_locked(w, a->off, a->need)) {
            far_unarm_locked(w, a, false);
            list_locked(w, a);
            moved = true;
        }
        a = next;
    }
    return was_empty && moved;
}

/* An eventfd write never blocks here: the counter would have to reach
   2^64 - 1, and the loop drains it each time the list empties. */
void sb__ready_signal(struct sb__wait *w)
{
    int fd = atomic_load_explicit(&w->ready.efd, memory_order_acquire);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: already signalled past counting; nothing is lost */
    }
}

/* ---- the calls ----------------------------------------------------------- */

int sb__wait_armable(struct sb__wait *w, int delta)
{
    struct sb__ready *rd = &w->ready;
    int rc = 0;
    sb__wait_lock(w);
    if (delta < 0) {
        assert(rd->armable > 0);
        rd->armable--;
    } else if (rd->armable == rd->heap_cap) {
        size_t cap = rd->heap_cap < 16 ? 16 : 2 * rd->heap_cap;
        struct sb__armed **h = cap > SIZE_MAX / sizeof *h
                                   ? NULL
                                   : realloc(rd->heap, cap * sizeof *h);
        if (h == NULL) {
            rc = -ENOMEM;
        } else {
            rd->heap = h;
            rd->heap_cap = cap;
            rd->armable++;
        }
    } else {
        rd->armable++;
    }
    sb__wait_unlock(w);
    return rc;
}

int sb__wait_arm(struct sb__wait *w, struct sb__armed *a, uint64_t need,
                 uint64_t demand)
{
    struct sb__ready *rd = &w->ready;
    sb__wait_lock(w);
    if (sb__wait_answerable_locked(w, need)) {
        sb__wait_unlock(w);
        return 0;
    }
    sb__wait_raise_demand_locked(w, demand > need ? demand : need);
    if (a->listed) {
        unlist_locked(w, a);
        drain_if_empty_locked(w);
    }
    if (a->far)
        far_unarm_locked(w, a, true); /* now for a range from filled */
    a->need = need;
    if (a->slot != SB__UNARMED) {
        /* Armed already: the new range replaces the old one in place, and
           the reader stays armed throughout, so that sb_reader_armed on
           another thread never reads 0 while it is (its staleness has one
           direction only: armed to ready). */
        sift_up_locked(w, a->slot);
        sift_down_locked(w, a->slot);
    } else {
        assert(rd->nheap < rd->heap_cap);
        rd->heap[rd->nheap++] = a;
        sift_up_locked(w, rd->nheap - 1);
        atomic_store_explicit(&a->armed, true, memory_order_relaxed);
    }
    sb__wait_unlock(w);
    return -EAGAIN;
}

int sb__wait_arm_range(struct sb__wait *w, struct sb__armed *a, uint64_t off,
                       uint64_t need, uint64_t demand)
{
    sb__wait_lock(w);
    if (sb__wait_held_locked(w, off, need)
        || sb__wait_answerable_locked(w, UINT64_MAX)) {
        sb__wait_unlock(w);
        return 0;
    }
    sb__wait_raise_demand_locked(w, demand > need ? demand : need);
    /* Re-arming replaces the old range and keeps the reader armed
       throughout (see sb__wait_arm). */
    if (a->listed) {
        unlist_locked(w, a);
        drain_if_empty_locked(w);
    }
    if (a->slot != SB__UNARMED)
        heap_remove_locked(w, a, true);
    if (a->far)
        far_unarm_locked(w, a, true);
    a->off = off;
    a->need = need;
    a->far = true;
    a->prev = NULL;
    a->next = w->ready.far;
    if (w->ready.far != NULL)
        w->ready.far->prev = a;
    w->ready.far = a;
    atomic_store_explicit(&a->armed, true, memory_order_relaxed);
    sb__wait_unlock(w);
    return -EAGAIN;
}

void sb__wait_disarm(struct sb__wait *w, struct sb__armed *a)
{
    sb__wait_lock(w);
    disarm_locked(w, a);
    sb__wait_unlock(w);
}

size_t sb__wait_take_ready(struct sb__wait *w, void **out, size_t max)
{
    size_t k = 0;
    if (max == 0)
        return 0;
    sb__wait_lock(w);
    while (k < max && w->ready.head != NULL) {
        struct sb__armed *a = w->ready.head;
        unlist_locked(w, a);
        out[k++] = a->owner;
    }
    /* A signal still on its way in (sent after its sender let go of mu)
       makes the fd readable once more with the list empty, which the
       header allows. */
    drain_if_empty_locked(w);
    sb__wait_unlock(w);
    return k;
}

int sb__wait_poll_fd(struct sb__wait *w)
{
    int fd = atomic_load_explicit(&w->ready.efd, memory_order_acquire);
    if (fd >= 0)
        return fd;
    int mine = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (mine < 0)
        return -errno;
    sb__wait_lock(w);
    fd = atomic_load_explicit(&w->ready.efd, memory_order_relaxed);
    if (fd < 0) {
        fd = mine;
        mine = -1;
        atomic_store_explicit(&w->ready.efd, fd, memory_order_release);
        /* Readers that became ready before the fd existed. */
        if (w->ready.head != NULL)
            sb__ready_signal(w);
    }
    sb__wait_unlock(w);
    if (mine >= 0)
        close(mine); /* another thread made it first */
    return fd;
}
