/*
 * SPDX-License-Identifier: MIT
 *
 * parts.c - where a seekable source's fetchers go: the state of the parts
 * and the policy, all under parts->mu, with no I/O (fetch.c does that).
 *
 * A fetcher's *reach* is [at, limit): the bytes it will store if it runs
 * on, up to the first byte that is held or that another fetcher reaches.
 * Reaches and extents never overlap, which is what keeps each byte
 * fetched once.  A new part at m cuts the reach that held m at m.
 *
 * The policy runs whenever something it looks at changes: a read starts
 * waiting (a want), a fetcher comes free, a part opens.  For each want it
 * finds the first missing byte m; if the fetcher whose reach holds m is
 * within the seek gap of it, that fetcher will do (its demand rises); else
 * a free fetcher opens a part at m, or, with max_parts busy, a fetcher no
 * want needs within its own seek gap is stopped and comes free for it.
 * Free fetchers with nothing wanted drain (no read_ahead, or sb_wait_end):
 * the largest gap no one reaches, else half of the largest reach (once the
 * length is known), so a rate-limited server is drained over max_parts
 * connections.
 *
 * A read that waits for a part to open comes first: until that part has
 * given its first bytes, no drain part opens and fetchers that no read
 * needs pause (drain_held), so that the far read has the server, the
 * connections and the CPUs to itself for its round trip; a blocked read
 * keeps the hold until it has woken and unwanted, and the drain goes on
 * then.
 *
 * Wakes: what is decided under mu wakes fetchers (to_wake) and far
 * readers (recheck) only once mu is let go (sb__parts_unlock), or before
 * a fetcher waits itself: a thread woken under mu would only wake to wait
 * for it.  Only the fetchers waiting on a seam are woken for new bytes.
 *
 * Seams: a fetcher that reaches held bytes compares up to SB__SEAM of them
 * (cmp_end, meet) and then joins its run with them; a part that opens
 * right after a run no fetcher extends opens SB__SEAM before it and
 * compares first.  Runs join only after an equal compare; a mismatch makes
 * the stream stale (extents stop counting) and fails it with ESTALE.
 */
#include "internal.h"
#include "fault.h"
#include "lock.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct sb__parts *parts_of(sb_buffer *b)
{
    return b->parts;
}

static uint64_t filled_of(const struct sb__parts *p)
{
    return sb__wait_filled(&p->b->wait);
}

static bool running(const struct sb__parts *p)
{
    int err;
    return !p->over && sb__wait_state(&p->b->wait, &err) == SB_RUNNING;
}

uint64_t sb__parts_run(sb_buffer *b, uint64_t off)
{
    struct sb__parts *p = parts_of(b);
    uint64_t fl = sb__wait_filled(&b->wait);
    if (off < fl)
        return fl;
    if (atomic_load_explicit(&p->stale, memory_order_acquire))
        return off;
    return sb__extents_run(&p->ext, off);
}

/* The first byte of [off, need) not held (need when all are). */
static uint64_t first_missing(sb_buffer *b, uint64_t off, uint64_t need)
{
    uint64_t m = off;
    while (m < need) {
        uint64_t e = sb__parts_run(b, m);
        if (e <= m)
            return m;
        m = e;
    }
    return need;
}

static bool active(const struct sb__fetcher *f)
{
    return f->st != SB__F_IDLE;
}

/* The seek gap of fetcher f: what it delivers while a part opens. */
static uint64_t gap_of(const struct sb__parts *p, const struct sb__fetcher *f)
{
    if (p->seek_gap != 0)
        return p->seek_gap;
    double g = f != NULL ? f->rate * p->open_ns / 1e9 : 0;
    if (!(g > (double)p->chunk))
        return p->chunk;
    return g > 1e18 ? (uint64_t)1e18 : (uint64_t)g;
}

/* The active fetcher whose reach holds byte m, or that stands at m (its
   reach empty for now: it waits there for the next run's first bytes, and
   goes on from m if that run's fetcher leaves), or NULL. */
static struct sb__fetcher *reaching(struct sb__parts *p, uint64_t m)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *f = &p->f[i];
        if (active(f) && !f->stop && f->at <= m
            && (m < f->limit || (f->at == m && f->ext_lo != SB__UNKNOWN)))
            return f;
    }
    return NULL;
}

/* The first byte at or past off that is held or that a fetcher other than
   self reaches, or the length (UINT64_MAX when unknown). */
static uint64_t limit_above(struct sb__parts *p, uint64_t off,
                            const struct sb__fetcher *self)
{
    uint64_t lim = sb__parts_length(p);
    if (lim == SB__UNKNOWN)
        lim = UINT64_MAX;
    if (off < filled_of(p))
        return off;
    size_t i = sb__extents_find_locked(&p->ext, off);
    if (i < sb__extents_count_locked(&p->ext)) {
        uint64_t lo, hi;
        sb__extents_get_locked(&p->ext, i, &lo, &hi);
        uint64_t start = lo > off ? lo : off;
        if (start < lim)
            lim = start;
    }
    for (unsigned k = 0; k < p->nthreads; k++) {
        const struct sb__fetcher *g = &p->f[k];
        if (g == self || !active(g))
            continue;
        uint64_t start = g->reach_lo;
        if (g->stop) {
            /* Told to stop, but a read of its may still land. */
            if (g->inflight <= g->at)
                continue;
            start = g->at;
        }
        if (start >= off && start < lim)
            lim = start;
    }
    return lim;
}

_Static_assert(SB__MAX_PARTS <= 64, "to_wake has a bit per fetcher");

static void wake(struct sb__fetcher *f)
{
    f->parts->to_wake |= (uint64_t)1 << f->id;
}

/* Signal the fetchers of the bits in w, and recheck far readers. */
static void send_wakes(struct sb__parts *p, uint64_t w, bool recheck)
{
    for (unsigned i = 0; w != 0; i++, w >>= 1)
        if (w & 1)
            sb__cond_signal(&p->f[i].cv);
    if (recheck)
        sb__wait_recheck(&p->b->wait);
}

/* The wakes decided so far, now (before mu is let go in a wait, which
   could be for long). */
static void flush_wakes_locked(struct sb__parts *p)
{
    uint64_t w = p->to_wake;
    bool recheck = p->recheck;
    p->to_wake = 0;
    p->recheck = false;
    send_wakes(p, w, recheck);
}

static void wake_all(struct sb__parts *p);

/* A hold's end woke one fetcher for all (release_locked): this one wakes
   the rest. */
static void pass_release_locked(struct sb__parts *p)
{
    if (p->wake_rest) {
        p->wake_rest = false;
        wake_all(p);
    }
}

/*
 * A fetcher that sleeps while a far read holds the drain sleeps under
 * SCHED_BATCH, and is back under SCHED_OTHER once it runs again (as
 * soon as it has mu back).
 * The read that ends the hold (its unwant, once it has its bytes) wakes
 * the fetchers it held; a woken SCHED_OTHER thread may preempt its waker,
 * and on two cores the read then waited a millisecond or more to return
 * (bench-http F1).  The kernel never lets a SCHED_BATCH thread preempt on
 * its wake-up.  Only for the sleep: a fetcher woken by its socket must
 * preempt what runs, or a far read's part would wait for the tick.  A
 * thread under another policy (real-time, SCHED_IDLE: the application's
 * choice, inherited from the thread that made it) is left as it is; so is
 * one the system will not switch (best effort).  Returns whether it
 * switched.  Called by f's own thread, with mu held: two system calls,
 * which do not block, a hold's sleep.
 */
static bool sleep_as_batch(struct sb__parts *p, struct sb__fetcher *f,
                           bool on)
{
#ifdef SCHED_BATCH
    struct sched_param sp;
    int policy;
    if (on && (!p->drain_held || f->other == 0))
        return false;
    if (f->other < 0) {
        f->other = pthread_getschedparam(pthread_self(), &policy, &sp) == 0
                   && policy == SCHED_OTHER;
        if (!f->other)
            return false;
    }
    memset(&sp, 0, sizeof sp);
    return pthread_setschedparam(pthread_self(), on ? SCHED_BATCH : SCHED_OTHER,
                                 &sp) == 0;
#else
    (void)p;
    (void)f;
    (void)on;
    return false;
#endif
}

/* f waits on its cv until woken, or until *until (CLOCK_MONOTONIC) when
   until is not NULL: whatever it decided to wake is woken first.  false
   when the deadline passed. */
static bool wait_until_locked(struct sb__parts *p, struct sb__fetcher *f,
                              const struct timespec *until)
{
    pass_release_locked(p);
    flush_wakes_locked(p);
    f->waiting = true;
    bool batch = sleep_as_batch(p, f, true);
    int e = until != NULL ? pthread_cond_timedwait(&f->cv, &p->mu, until)
                          : pthread_cond_wait(&f->cv, &p->mu);
    if (batch)
        (void)sleep_as_batch(p, f, false);
    f->waiting = false;
    if (e != 0 && e != ETIMEDOUT)
        abort(); /* see lock.h */
    pass_release_locked(p);
    return e != ETIMEDOUT;
}

static void wait_locked(struct sb__parts *p, struct sb__fetcher *f)
{
    (void)wait_until_locked(p, f, NULL);
}

void sb__parts_unlock(struct sb__parts *p)
{
    sb__assert_held(&p->mu);
    uint64_t w = p->to_wake;
    bool recheck = p->recheck;
    p->to_wake = 0;
    p->recheck = false;
    sb__mutex_unlock(&p->mu);
    /* A signal after the unlock: the fetcher checks its state under mu
       when it wakes, so one that no longer waits, or waits again, loses
       nothing; and cv lives until every fetcher is joined. */
    send_wakes(p, w, recheck);
}

static void wake_all(struct sb__parts *p)
{
    for (unsigned i = 0; i < p->nthreads; i++)
        wake(&p->f[i]);
}

/* Wakes the fetchers that wait on a seam (step_locked), and no other:
   every part's first bytes come here, and waking every idle fetcher for
   each would have them all take the lock to find nothing to do. */
static void wake_seam(struct sb__parts *p)
{
    if (p->seam_waiters == 0)
        return;
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->f[i].seam_wait)
            wake(&p->f[i]);
}

/* f waits on a seam until woken. */
static void seam_wait_locked(struct sb__parts *p, struct sb__fetcher *f)
{
    p->seam_waiters++;
    f->seam_wait = true;
    wait_locked(p, f);
    f->seam_wait = false;
    p->seam_waiters--;
}

/* Whether a running fetcher extends the run that ends at end now (one
   paused by flow control may never: the compare then takes what is
   there, as the header allows). */
static bool growing(const struct sb__parts *p, uint64_t end)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        const struct sb__fetcher *g = &p->f[i];
        if (g->st == SB__F_RUNNING && !g->stop && !g->paused && g->at == end
            && g->ext_lo != SB__UNKNOWN)
            return true;
    }
    return false;
}

/* Fail the stream (its first error stays) and send every fetcher home. */
static void fail_locked(struct sb__parts *p, int err)
{
    if (err == ESTALE)
        atomic_store_explicit(&p->stale, true, memory_order_release);
    sb__wait_finish(&p->b->wait, err);
    p->over = true;
    wake_all(p);
}

static void end_locked(struct sb__parts *p)
{
    /* A reported length is checked at the tail (one read past it) before
       the stream may end there: a longer object fails with EIO. */
    if (sb__parts_exact_length(p) != SB__UNKNOWN && !p->tail_checked)
        return;
    if (sb__parts_exact_length(p) == SB__UNKNOWN)
        atomic_store_explicit(&p->length, filled_of(p), memory_order_release);
    sb__wait_finish(&p->b->wait, 0);
    p->over = true;
    wake_all(p);
}

/* Call a part's cancel, at most once: it may be blocked in its source. */
static void cancel_part_locked(struct sb__fetcher *f)
{
    if (f->has_part && !f->part_cancelled && f->part.cancel != NULL) {
        f->part_cancelled = true;
        f->part.cancel(f->part.ctx);
    }
}

static void schedule_locked(struct sb__parts *p);

/* f's thread, with every signal blocked (the application's handlers run
   on its own threads): 0 or an errno. */
static int make_thread(struct sb__parts *p, struct sb__fetcher *f)
{
    sigset_t all, old;
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0)
        return rc;
    rc = sb__fault(SB__FAULT_THREAD);
    if (rc == 0)
        rc = pthread_create(&f->thread, NULL, p->thread_main, f);
    sb__check(pthread_sigmask(SIG_SETMASK, &old, NULL));
    return rc;
}

/*
 * Each fetcher thread makes the next one's thread, idle until the policy
 * needs it: made there, without mu, rather than by start_locked under mu
 * when a part is wanted, where it would make the read wait for it and
 * hold up everyone who needs mu (a drain's fetchers were seen to make a
 * far read's return wait a few milliseconds).  It does so first thing
 * when its own job is the first stream (which can wait that long), else
 * when it has nothing to do: a part to open comes first.  The fetcher
 * made is counted in nthreads and marked starting meanwhile, so that
 * free_fetcher passes it over (and a read waits for it rather than make
 * another); its thread is joined after its maker's (the lower id), which
 * has set started by then.  mu is let go meanwhile: the caller looks at
 * its state again.  Not while a far read holds the drain: the thread is
 * for the drain, and making it then takes a CPU from the read's part
 * (bench-http F1, on two cores).  Once the hold ends, the one that would
 * have made it does (an idle one in its wait for a job, the first
 * stream's at its next step), unless the policy has already given that
 * fetcher a thread under mu, as it does for a fetcher without one when
 * a read or the drain needs it (the drain's fill may do so on the thread
 * whose unwant ended the hold).
 */
static void start_next_locked(struct sb__fetcher *self)
{
    struct sb__parts *p = self->parts;
    if (self->made_next || p->drain_held)
        return;
    self->made_next = true; /* one try: a thread that fails is made later */
    if (p->off || !running(p) || p->nthreads >= p->max_parts)
        return;
    struct sb__fetcher *f = &p->f[p->nthreads++];
    f->starting = true;
    sb__parts_unlock(p);
    int rc = make_thread(p, f);
    sb__mutex_lock(&p->mu);
    f->starting = false;
    f->started = rc == 0; /* none: start_locked tries again when needed */
    schedule_locked(p); /* a read may have waited for this fetcher */
}

/* Give f a thread if it has none yet.  Returns false if none could be
   made (the fetcher then stays unused). */
static bool start_locked(struct sb__parts *p, struct sb__fetcher *f)
{
    if (f->started)
        return true;
    if (make_thread(p, f) != 0)
        return false;
    f->started = true;
    if (f->id >= p->nthreads)
        p->nthreads = f->id + 1;
    return true;
}

/* Whether a fetcher is being given its thread (start_next_locked),
   which runs the policy once it has it. */
static bool coming(const struct sb__parts *p)
{
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->f[i].starting)
            return true;
    return false;
}

/* A free fetcher: an idle one, else one that has no thread yet; none
   while one is coming (making another here, under mu, is what
   start_next_locked spares). */
static struct sb__fetcher *free_fetcher(struct sb__parts *p)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *f = &p->f[i];
        if (f->started ? f->st == SB__F_IDLE && !f->stop : !f->starting)
            return f;
    }
    if (p->nthreads < p->max_parts && !coming(p))
        return &p->f[p->nthreads];
    return NULL;
}

/* The start of the held run that ends exactly at m (m's byte before is
   held and no fetcher extends that run), or m if there is none. */
static uint64_t run_below(struct sb__parts *p, uint64_t m)
{
    if (m == 0)
        return 0;
    uint64_t fl = filled_of(p);
    if (m == fl)
        return 0;
    if (m < fl || atomic_load(&p->stale))
        return m;
    size_t i = sb__extents_find_locked(&p->ext, m - 1);
    if (i < sb__extents_count_locked(&p->ext)) {
        uint64_t lo, hi;
        sb__extents_get_locked(&p->ext, i, &lo, &hi);
        if (lo <= m - 1 && hi == m)
            return lo;
    }
    return m;
}

/* Send f to store from m on, up to the next bytes held or reached, its
   reach cut from the one (cut) that held m, comparing first across the
   seam with a run that ends at m. */
static bool assign_locked(struct sb__parts *p, struct sb__fetcher *f,
                          uint64_t m, uint64_t need, struct sb__fetcher *cut,
                          bool seam)
{
    /* A read in flight brings [its at, inflight) whatever happens to its
       fetcher (cut, moved, stopped): start past it, and past the next
       one's that this lands in (reads in flight may touch, and the
       fetchers are in no order). */
    uint64_t m0 = m;
    for (bool moved = true; moved;) {
        moved = false;
        for (unsigned i = 0; i < p->nthreads; i++) {
            const struct sb__fetcher *g = &p->f[i];
            if (g != f && g->inflight > m && g->at <= m) {
                m = g->inflight;
                moved = true;
            }
        }
    }
    if (m != m0) {
        /* Past a read in flight, m may be in another fetcher's reach:
           those bytes are its, and f would store them a second time. */
        const struct sb__fetcher *r = reaching(p, m);
        if (r != NULL && r != cut && r != f)
            return false;
        if (need < m)
            need = m;
    }
    uint64_t below = run_below(p, m);
    uint64_t floor = sb__wait_floor(&p->b->wait);
    if ((p->b->flags & SB_RELEASE) && below < floor)
        below = floor < m ? floor : m; /* released bytes cannot be compared */
    uint64_t k = m - below < SB__SEAM ? m - below : SB__SEAM;
    f->st = SB__F_ASSIGNED;
    f->stop = false;
    f->first = false;
    f->at = m - k;
    f->open_off = m - k;
    f->cmp_end = m;
    f->meet = false;
    f->reach_lo = m;
    f->ext_lo = SB__UNKNOWN;
    f->demand = need > m ? need : m;
    f->open_demand = f->demand;
    f->fails = 0;
    f->retry = false;
    f->probed = false;
    f->moved_for = SB__UNKNOWN;
    if (cut != NULL && cut->limit > m)
        cut->limit = m;
    if (cut != NULL && cut->inflight > cut->limit)
        cut->limit = cut->inflight; /* a read in flight lands whole */
    f->limit = limit_above(p, m, f);
    if (f->limit <= m && !seam) {
        f->st = SB__F_IDLE; /* nothing to fetch after all */
        return false;
    }
    if (!start_locked(p, f)) {
        f->st = SB__F_IDLE;
        if (cut != NULL)
            cut->limit = limit_above(p, cut->at, cut);
        return false;
    }
    wake(f);
    return true;
}

/* Whether a want needs f within f's seek gap. */
static bool needed_soon(struct sb__parts *p, const struct sb__fetcher *f)
{
    uint64_t gap = gap_of(p, f);
    for (struct sb__want *w = p->wants; w != NULL; w = w->next) {
        uint64_t m = first_missing(p->b, w->off, w->need);
        if (m < w->need && m >= f->at && m < f->limit && m - f->at <= gap)
            return true;
    }
    return false;
}

/* With max_parts busy: the lowest fetcher that no want needs soon. */
static struct sb__fetcher *victim(struct sb__parts *p)
{
    struct sb__fetcher *best = NULL;
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *f = &p->f[i];
        /* The source's own stream cannot be reopened where it was: it is
           never moved. */
        /* Nor one that compares a seam: runs join only through it, and a
           repair would only send another there. */
        if (f->st != SB__F_RUNNING || f->stop || f->first
            || f->moved_for != SB__UNKNOWN || f->at < f->cmp_end || f->meet
            || needed_soon(p, f))
            continue;
        if (best == NULL || f->at < best->at)
            best = f;
    }
    return best;
}

static bool moving_to(const struct sb__parts *p, uint64_t m)
{
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->f[i].moved_for == m)
            return true;
    return false;
}

static bool draining(const struct sb__parts *p)
{
    return p->read_ahead == 0
           || atomic_load_explicit(&p->b->wait.demand, memory_order_relaxed)
                  == UINT64_MAX;
}

static uint64_t window_end(struct sb__parts *p);

/* The size of the gap from c that nobody holds or reaches, within end;
   0 if c is held, reached, or past end (or max_size). */
static uint64_t gap_at(struct sb__parts *p, uint64_t c, uint64_t end)
{
    if (c >= end || reaching(p, c) != NULL || sb__parts_run(p->b, c) > c)
        return 0;
    if (p->max_size != 0 && c >= p->max_size)
        return 0;
    uint64_t lim = limit_above(p, c, NULL);
    if (lim > end)
        lim = end;
    return lim > c ? lim - c : 0;
}

/* A free fetcher with no want: take the largest gap nobody reaches, else
   split the largest reach (the length known).  Returns false if there is
   nothing worth taking. */
static bool fill_locked(struct sb__parts *p, struct sb__fetcher *f)
{
    uint64_t len = sb__parts_length(p);
    uint64_t end = len == SB__UNKNOWN ? UINT64_MAX : len;
    if (end > window_end(p))
        end = window_end(p);
    uint64_t best = 0, best_at = 0;
    /* Candidate gap starts: the watermark, each extent's end, and where
       a fetcher's reach was cut and it stops short. */
    size_t n = sb__extents_count_locked(&p->ext);
    for (size_t i = 0; i <= n + p->nthreads; i++) {
        uint64_t c = filled_of(p);
        if (i > n) {
            const struct sb__fetcher *g = &p->f[i - n - 1];
            if (!active(g))
                continue;
            c = g->limit;
        } else if (i > 0) {
            uint64_t lo;
            sb__extents_get_locked(&p->ext, i - 1, &lo, &c);
        }
        uint64_t size = gap_at(p, c, end);
        if (size > best) {
            best = size;
            best_at = c;
        }
    }
    if (best > 0)
        return assign_locked(p, f, best_at, best_at, NULL, false);
    if (len == SB__UNKNOWN || p->max_retained != 0)
        return false; /* a split would fetch ahead of the window */
    /* A stretch is split only once its fetcher's rate is known: until
       then the seek gap, by which a split is judged worth its round trip,
       is a guess; and a far read that comes right after the open (the
       length known from the start) finds the source and the CPUs free of
       drain parts (bench-http F1). */
    struct sb__fetcher *big = NULL;
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *g = &p->f[i];
        if (g->st != SB__F_RUNNING || g->stop || g->limit > len
            || !(g->rate > 0))
            continue;
        if (big == NULL || g->limit - g->at > big->limit - big->at)
            big = g;
    }
    if (big == NULL)
        return false;
    uint64_t rem = big->limit - big->at;
    uint64_t gap = gap_of(p, big);
    if (rem < 4 * gap || rem < 4 * (uint64_t)p->chunk)
        return false;
    uint64_t mid = big->at + rem / 2;
    mid -= mid % p->chunk;
    if (mid <= big->at)
        return false;
    return assign_locked(p, f, mid, mid, big, false);
}

/* Whether a fetcher will compare the seam at s: one whose run ends there
   and that runs on into it, or one that opened to compare it. */
static bool seam_handled(const struct sb__parts *p, uint64_t s)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        const struct sb__fetcher *f = &p->f[i];
        /* One told to stop still finishes a compare it is in, and joins. */
        if (active(f) && f->meet && f->met == s)
            return true;
        if (!active(f) || f->stop)
            continue;
        if (f->at <= s && s <= f->cmp_end && f->cmp_end == s)
            return true;
        if (f->at == s && f->ext_lo != SB__UNKNOWN)
            return true;
        if (f->st == SB__F_ASSIGNED && f->reach_lo == s)
            return true;
    }
    return false;
}

/*
 * Two runs that touch (a run ending where the next begins) join only once
 * a fetcher has compared across their seam.  The fetcher that was to do it
 * may have stopped (failed, moved, reached its limit as the other run
 * began): a free fetcher then opens just before the seam, compares both
 * sides and joins them, or reads across it would wait forever.
 */
static void repair_seams_locked(struct sb__parts *p)
{
    /* The tail is a seam too: the stream ends only once a stream read
       past the length found nothing, and the fetcher that reached the
       length may have had a part bounded short of it. */
    uint64_t len = sb__parts_exact_length(p);
    if (len != SB__UNKNOWN && len > 0 && !p->tail_checked
        && sb__parts_run(p->b, len - 1) >= len && !seam_handled(p, len)) {
        struct sb__fetcher *f = free_fetcher(p);
        if (f == NULL)
            return;
        assign_locked(p, f, len, len, NULL, true);
    }
    size_t n = sb__extents_count_locked(&p->ext);
    uint64_t prev_hi = filled_of(p);
    for (size_t i = 0; i < n; i++) {
        uint64_t lo, hi;
        sb__extents_get_locked(&p->ext, i, &lo, &hi);
        if (lo == prev_hi && lo > 0 && !seam_handled(p, lo)) {
            struct sb__fetcher *f = free_fetcher(p);
            if (f == NULL)
                return;
            assign_locked(p, f, lo, lo, NULL, true);
        }
        prev_hi = hi;
    }
}

/*
 * The first byte want w waits for, in *m; false when it waits for none
 * that a part could bring (all held, past the length, or released).
 */
static bool want_missing_locked(struct sb__parts *p, const struct sb__want *w,
                                uint64_t *m)
{
    uint64_t len = sb__parts_length(p);
    *m = first_missing(p->b, w->off, w->need);
    if (*m >= w->need || (len != SB__UNKNOWN && *m >= len))
        return false;
    return !((p->b->flags & SB_RELEASE) && *m < sb__wait_floor(&p->b->wait));
}

/*
 * Whether a read waits for a part that has not given its first bytes:
 * one opening for it, or open and not yet delivering.  Then the drain
 * holds off (no part opens for it, and fetchers no read needs pause) so
 * that the part's round trip has the source and the CPUs to itself.  A
 * read that no fetcher reaches yet holds nothing: the fetchers must go on,
 * or none might come free for it; nor one that waits only for a seam to
 * be compared (every byte held), which a fetcher that comes free repairs.
 * The hold lasts while a blocked read past the watermark has its bytes
 * and has not yet unwanted: it is woken, and the drain let go at the
 * part's first bytes would take the CPUs it needs to return (on two
 * cores it waited a millisecond or two to run).  Its run from off is
 * whole, so its wait is over (sb__wait_recheck), and its unwant ends
 * the hold.  Not an armed reader's: it may not read for long.
 */
static bool drain_held_locked(struct sb__parts *p)
{
    for (struct sb__want *w = p->wants; w != NULL; w = w->next) {
        uint64_t m;
        if (w->blocked && w->off > filled_of(p)
            && sb__parts_run(p->b, w->off) >= w->need)
            return true;
        if (!want_missing_locked(p, w, &m))
            continue;
        const struct sb__fetcher *r = reaching(p, m);
        if (r != NULL
            && !(r->st == SB__F_RUNNING && (r->delivered || r->first)))
            return true;
    }
    return false;
}

/*
 * The hold ended: the fetchers it paused go on.  Often a reader ends it
 * (its read is answered), and waking every fetcher would cost it their
 * futex calls and, on a busy machine, its CPU to the woken threads before
 * it returns (bench-http F1 lost milliseconds so).  So it wakes one that
 * sleeps on its cv (a paused one first), and that one wakes the rest
 * (pass_release_locked) on its own thread.  A fetcher checks wake_rest
 * under mu whenever it is about to wait, takes a step or looks for a
 * job, so none sleeps through it; when none sleeps, the first to come
 * back to mu passes it on.
 */
static void release_locked(struct sb__parts *p)
{
    p->wake_rest = true;
    struct sb__fetcher *pick = NULL;
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *g = &p->f[i];
        if (g->waiting && (pick == NULL || (g->paused && !pick->paused)))
            pick = g;
    }
    if (pick != NULL)
        wake(pick);
}

static void schedule_locked(struct sb__parts *p)
{
    sb__assert_held(&p->mu);
    p->starved = false;
    if (!running(p))
        return;
    for (struct sb__want *w = p->wants; w != NULL; w = w->next) {
        uint64_t m;
        if (!want_missing_locked(p, w, &m))
            continue;
        struct sb__fetcher *r = reaching(p, m);
        /* A fetcher whose own bytes start at m (after the seam it compares
           first) is the part for m, however far its compare starts. */
        if (r != NULL && (m - r->at <= gap_of(p, r) || r->reach_lo == m)) {
            /* It will be there soon: it serves this read (read_ahead
               holds it past the read's end, not past the rest). */
            if (w->need > r->demand) {
                r->demand = w->need;
                wake(r);
            }
            continue;
        }
        if (!p->off && moving_to(p, m))
            continue;
        struct sb__fetcher *f = p->off ? NULL : free_fetcher(p);
        if (f != NULL && assign_locked(p, f, m, w->need, r, false))
            continue;
        if (f == NULL && !p->off && coming(p))
            continue; /* a thread being made runs this again once it is */
        /* max_parts 1 without a first stream of the source's own is one
           part at a time, moved like any other: held by read_ahead where
           it is, it would leave this read waiting for good. */
        struct sb__fetcher *v = !p->off && f == NULL ? victim(p) : NULL;
        if (v != NULL) {
            v->stop = true;
            v->moved_for = m;
            p->parts_moved++;
            cancel_part_locked(v);
            wake(v);
            continue;
        }
        /* Under read_ahead, every fetcher busy and needed: the read
           waits for one to come free (starved: an unwant, a fetcher's
           pause and a fetcher gone idle run this again).  Raising the
           demand of the one that reaches m would have it ask for, and
           fetch, everything up to the read: tens of megabytes nobody
           asked for (bench-http F2 saw parts of 60 MB for reads of 64
           KiB).  A drain fetches it all anyway: there the one that
           reaches m goes on to it, as it does where no part can open
           (parts off, no thread to be had). */
        if (f == NULL && !p->off && !draining(p)) {
            p->starved = true;
            continue;
        }
        if (r != NULL && w->need > r->demand) {
            r->demand = w->need;
            wake(r);
        }
    }
    if (!p->off)
        repair_seams_locked(p);
    bool was_held = p->drain_held;
    p->drain_held = draining(p) && drain_held_locked(p);
    if (was_held && !p->drain_held)
        release_locked(p);
    if (p->off || !draining(p) || p->drain_held)
        return;
    struct sb__fetcher *f;
    while ((f = free_fetcher(p)) != NULL && fill_locked(p, f))
        ;
}

static void unwant_locked(struct sb__parts *p, struct sb__want *w)
{
    sb__assert_held(&p->mu);
    if (!w->linked)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->wants = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->linked = false;
}

void sb__parts_want(sb_buffer *b, struct sb__want *w, uint64_t off,
                    uint64_t need)
{
    struct sb__parts *p = parts_of(b);
    sb__mutex_lock(&p->mu);
    unwant_locked(p, w);
    w->off = off;
    w->need = need;
    w->prev = NULL;
    w->next = p->wants;
    if (p->wants != NULL)
        p->wants->prev = w;
    p->wants = w;
    w->linked = true;
    schedule_locked(p);
    sb__parts_unlock(p);
}

void sb__parts_unwant(sb_buffer *b, struct sb__want *w)
{
    struct sb__parts *p = parts_of(b);
    sb__mutex_lock(&p->mu);
    unwant_locked(p, w);
    /* It may have held the drain, or needed a fetcher that another read
       waits for (starved). */
    if (p->drain_held || p->starved)
        schedule_locked(p);
    sb__parts_unlock(p);
}

void sb__parts_poke(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    if (p == NULL)
        return;
    sb__mutex_lock(&p->mu);
    wake_all(p);
    schedule_locked(p);
    sb__parts_unlock(p);
}

/* ---- the fetchers' steps --------------------------------------------------- */

bool sb__parts_next_job_locked(struct sb__fetcher *f)
{
    struct sb__parts *p = f->parts;
    pass_release_locked(p);
    if (f->first && f->st == SB__F_ASSIGNED)
        start_next_locked(f); /* the first stream can wait for it */
    for (;;) {
        if (!running(p))
            return false;
        if (f->st == SB__F_ASSIGNED)
            return true;
        schedule_locked(p);
        if (f->st == SB__F_ASSIGNED)
            return true;
        if (!f->made_next && !p->drain_held) {
            start_next_locked(f); /* nothing to do: the next thread */
            continue;
        }
        wait_locked(p, f);
    }
}

bool sb__parts_retry_pause_locked(struct sb__fetcher *f)
{
    struct sb__parts *p = f->parts;
    if (!f->retry)
        return running(p);
    f->retry = false;
    /* A part that stored bytes before it failed (a dropped connection)
       reopens at once; failures in a row without progress wait 50 ms,
       then twice as long each time. */
    if (f->fails <= 1 && f->progressed)
        return running(p);
    unsigned shift = f->fails > 1 ? f->fails - 2 : 0;
    uint64_t ms = 50u << (shift < 10 ? shift : 10);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    while (running(p) && wait_until_locked(p, f, &t))
        ;
    return running(p);
}

/* Nobody can deliver the bytes f was to fetch: fail with err unless the
   source's own stream still runs and will reach them. */
static void nobody_locked(struct sb__parts *p, struct sb__fetcher *f, int err)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *g = &p->f[i];
        if (g != f && g->first && active(g) && !g->stop) {
            /* The plain stream goes on, now through everything. */
            g->limit = limit_above(p, g->at, g);
            return;
        }
    }
    fail_locked(p, err);
}

/* f failed with err: pause and reopen where it got to, or give up. */
static void failed_locked(struct sb__fetcher *f, int err)
{
    struct sb__parts *p = f->parts;
    f->progressed = f->delivered;
    if (f->delivered)
        f->fails = 0;
    f->delivered = false;
    f->fails++;
    f->first = false;
    if (p->off) {
        f->st = SB__F_IDLE;
        nobody_locked(p, f, err);
        return;
    }
    if (f->fails > p->retries) {
        f->st = SB__F_IDLE;
        fail_locked(p, err);
        return;
    }
    p->part_retries++;
    /* Reopen at the byte it reached, comparing back across its own seam;
       one that failed while it compared a seam it met reopens there, so
       that the seam is still compared and the runs join. */
    uint64_t m = f->meet ? f->met : f->at > f->cmp_end ? f->at : f->cmp_end;
    uint64_t lim = f->limit;
    unsigned fails = f->fails;
    uint64_t demand = f->demand;
    bool seam = f->meet;
    f->st = SB__F_IDLE;
    if (!seam && m >= lim)
        return; /* nothing left in its reach (a seam there is repaired) */
    bool progressed = f->progressed;
    if (assign_locked(p, f, m, demand, NULL, seam)) {
        f->fails = fails;
        f->retry = true;
        f->progressed = progressed;
    }
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t sb__parts_open_end_locked(const struct sb__fetcher *f)
{
    struct sb__parts *p = f->parts;
    /* A part that reaches the length is asked for the rest of the stream,
       so that one read past the length tells whether there is more. */
    uint64_t len = sb__parts_length(p);
    uint64_t end = UINT64_MAX;
    if (f->limit != UINT64_MAX && (len == SB__UNKNOWN || f->limit < len)) {
        end = sat_add(f->limit, SB__SEAM);
        if (len != SB__UNKNOWN && end > len)
            end = len;
    }
    /* Under read_ahead the fetcher stops read_ahead past what is demanded,
       and the part asks for no more than it will read, so that a server
       does not send what could only wait unread (an HTTP connection's
       buffers: megabytes a part).  Nor does it ask for all of read_ahead
       at once: past the demand, a part asks for as much as the run it
       continues already holds, at most read_ahead (a part that no read
       is waiting in, at least a chunk).  A reader that jumps about costs
       the server its reads and nothing more, and each part ends soon
       enough for its connection to carry the next; a reader that goes on
       doubles the run, and the window with it, each part
       (sb__parts_ended_locked asks for the next window at once when
       readers go on into one).  A window that reaches the bytes held at
       its limit asks for the seam past them as well, or the runs could
       never join. */
    if (p->read_ahead != 0 && !draining(p)) {
        uint64_t ahead = f->reach_lo - run_below(p, f->reach_lo);
        if (f->demand <= f->reach_lo && ahead < p->chunk)
            ahead = p->chunk;
        if (ahead > p->read_ahead)
            ahead = p->read_ahead;
        uint64_t base = f->demand > f->reach_lo ? f->demand : f->reach_lo;
        uint64_t w = sat_add(base, ahead);
        if (w > sat_add(f->demand, p->read_ahead))
            w = sat_add(f->demand, p->read_ahead);
        if (w < f->limit && w < end && (len == SB__UNKNOWN || w < len))
            end = w;
    }
    return end;
}

void sb__parts_opened_locked(struct sb__fetcher *f, int rc, uint64_t length)
{
    struct sb__parts *p = f->parts;
    if (rc == 0) {
        p->parts_opened++;
        f->delivered = false;
        f->has_part = true;
        f->part_cancelled = false;
        f->st = SB__F_RUNNING;
        if (length != SB__UNKNOWN) {
            uint64_t known = sb__parts_exact_length(p);
            if (known == SB__UNKNOWN) {
                atomic_store_explicit(&p->length, length, memory_order_release);
                for (unsigned i = 0; i < p->nthreads; i++)
                    if (p->f[i].limit > length)
                        p->f[i].limit = length;
                /* The stream is whole already (a part of an empty one). */
                if (filled_of(p) >= length)
                    end_locked(p);
                sb__wait_recheck(&p->b->wait);
            } else if (known != length) {
                fail_locked(p, ESTALE); /* another object now */
            }
        }
        if (!running(p) || f->stop)
            cancel_part_locked(f);
        /* A length now known lets free fetchers split the drain. */
        schedule_locked(p);
        return;
    }
    if (rc == -ESPIPE || rc == -ESTALE) {
        p->off = true;
        f->st = SB__F_IDLE;
        nobody_locked(p, f, -rc);
        wake_all(p);
        return;
    }
    if (!running(p) || f->stop) {
        f->st = SB__F_IDLE;
        return;
    }
    failed_locked(f, -rc);
}

void sb__parts_first_running_locked(struct sb__fetcher *f)
{
    struct sb__parts *p = f->parts;
    uint64_t len = sb__parts_exact_length(p);
    if (len != SB__UNKNOWN && f->limit > len)
        f->limit = len; /* as a reported length bounds it */
    schedule_locked(p);
}

void sb__parts_left_locked(struct sb__fetcher *f)
{
    struct sb__parts *p = f->parts;
    if (f->st == SB__F_RUNNING)
        f->st = SB__F_IDLE;
    f->stop = false;
    f->moved_for = SB__UNKNOWN;
    f->ext_lo = SB__UNKNOWN;
    f->first = false;
    f->meet = false;
    wake_seam(p); /* a run they wait on stopped growing */
}

void sb__parts_probed_locked(struct sb__fetcher *f, ssize_t r)
{
    struct sb__parts *p = f->parts;
    f->probed = true;
    if (r > 0) {
        fail_locked(p, EIO); /* bytes past the length */
        return;
    }
    p->tail_checked = true;
    uint64_t len = sb__parts_length(p);
    if (len != SB__UNKNOWN && filled_of(p) >= len)
        end_locked(p);
}

/* With max_retained, nothing past floor + max_retained is fetched: a run
   out there would take the budget from the bytes the readers are at. */
static uint64_t window_end(struct sb__parts *p)
{
    if (p->max_retained == 0)
        return UINT64_MAX;
    uint64_t floor = sb__wait_floor(&p->b->wait);
    return floor > UINT64_MAX - p->max_retained ? UINT64_MAX
                                                 : floor + p->max_retained;
}

/* Bytes held at or above the floor, in all runs together. */
static uint64_t retained_locked(struct sb__parts *p)
{
    uint64_t floor = sb__wait_floor(&p->b->wait);
    uint64_t fl = filled_of(p);
    uint64_t sum = fl > floor ? fl - floor : 0;
    size_t n = sb__extents_count_locked(&p->ext);
    for (size_t i = 0; i < n; i++) {
        uint64_t lo, hi;
        sb__extents_get_locked(&p->ext, i, &lo, &hi);
        if (hi > floor)
            sum += hi - (lo > floor ? lo : floor);
    }
    return sum;
}

static bool must_pause_locked(struct sb__parts *p, struct sb__fetcher *f)
{
    if (p->drain_held && f->demand <= f->at)
        return true;
    if (p->read_ahead != 0 && !draining(p)) {
        /* A reader's demand in its reach carries it on, but only within
           its seek gap: a read farther on has a part of its own opening
           (schedule_locked), which this one must not race to. */
        uint64_t d = atomic_load_explicit(&p->b->wait.demand, memory_order_relaxed);
        if (d >= f->reach_lo && d <= f->limit && d > f->demand
            && (d <= f->at || d - f->at <= gap_of(p, f)))
            f->demand = d;
        uint64_t until = f->demand > UINT64_MAX - p->read_ahead
                             ? UINT64_MAX
                             : f->demand + p->read_ahead;
        if (f->at >= until)
            return true;
    }
    if (p->max_retained != 0
        && (f->at >= window_end(p) || retained_locked(p) >= p->max_retained))
        return true;
    return false;
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static enum sb__step step_locked(struct sb__fetcher *f, size_t chunk,
                                 size_t *cap);

enum sb__step sb__parts_step_locked(struct sb__fetcher *f, size_t chunk,
                                    size_t *cap)
{
    pass_release_locked(f->parts);
    if (f->first && !f->made_next && !f->parts->drain_held)
        start_next_locked(f); /* held back by a hold (start_next_locked) */
    enum sb__step step = step_locked(f, chunk, cap);
    if (f->paused) {
        struct sb__parts *p = f->parts;
        uint64_t now = mono_ns();
        f->paused = false;
        f->resumed_ns = now; /* a pause is not delivery time */
        p->npaused--;
        p->paused_ns += now - f->paused_at;
    }
    return step;
}

static enum sb__step step_locked(struct sb__fetcher *f, size_t chunk,
                                 size_t *cap)
{
    struct sb__parts *p = f->parts;
    bool looked = false; /* the policy ran before this step's pause */
    for (;;) {
        if (!running(p))
            return SB__STEP_QUIT;
        if (f->stop)
            return SB__STEP_STOP;
        uint64_t len = sb__parts_length(p);
        if (f->at < f->cmp_end) {
            uint64_t k = f->cmp_end - f->at;
            *cap = k < chunk ? (size_t)k : chunk;
            return SB__STEP_SEAM;
        }
        if (f->meet) {
            /* The seam compared equal (compared_locked joined the runs).
               The source's own stream goes on through held bytes once
               parts are off: nothing else can fetch what lies past. */
            if (!(f->first && p->off))
                return SB__STEP_STOP;
            f->meet = false;
            f->limit = limit_above(p, f->at, f);
            continue;
        }
        if (len != SB__UNKNOWN && f->at >= len) {
            /* A stream asked for bytes up to the length must end there,
               and so must one asked for less that brought more (its
               source ignores end): one more read tells that it does. */
            if ((f->req_end >= len || f->at > f->req_end) && !f->probed
                && len == sb__parts_exact_length(p)) {
                *cap = 1;
                return SB__STEP_PROBE;
            }
            return SB__STEP_STOP;
        }
        uint64_t held = sb__parts_run(p->b, f->at);
        if (held > f->at) {
            /* It met held bytes: compare across the seam, then join. */
            if (f->ext_lo == SB__UNKNOWN)
                return SB__STEP_STOP; /* no bytes of its own to join */
            uint64_t k = held - f->at;
            if (k > SB__SEAM && !(f->first && p->off))
                k = SB__SEAM;
            if (len != SB__UNKNOWN && k > len - f->at)
                k = len - f->at;
            /* A whole seam's worth is compared: while the other run is
               shorter and still growing, wait for its bytes. */
            uint64_t whole = SB__SEAM;
            if (len != SB__UNKNOWN && whole > len - f->at)
                whole = len - f->at;
            if (k < whole && growing(p, held)) {
                seam_wait_locked(p, f);
                continue;
            }
            f->cmp_end = f->at + k;
            f->meet = true;
            f->met = f->at;
            continue;
        }
        if (f->at >= f->limit) {
            /* Its reach ends where another fetcher's begins: it waits for
               that one's first bytes (to compare the seam), or for it to
               go, when its reach is free again. */
            uint64_t lim = limit_above(p, f->at, f);
            if (lim > f->at) {
                f->limit = lim;
                continue;
            }
            if (f->ext_lo == SB__UNKNOWN)
                return SB__STEP_STOP;
            seam_wait_locked(p, f);
            continue;
        }
        if (must_pause_locked(p, f)) {
            if (!f->paused && !looked && p->starved) {
                /* A read that found every fetcher busy and needed waits
                   for one to come free: one about to pause may be moved
                   to it now (it was not while it compared a seam, or
                   opened).  Whatever the policy decides for f itself, its
                   wake of f would be lost on f's own thread: look again
                   before pausing. */
                looked = true;
                schedule_locked(p);
                continue;
            }
            if (!f->paused) {
                f->paused = true;
                f->paused_at = mono_ns();
                p->pauses++;
                p->npaused++;
                wake_seam(p); /* its run stops growing for now */
            }
            wait_locked(p, f);
            continue;
        }
        uint64_t room = f->limit - f->at;
        if (p->max_size != 0) {
            /* One byte past max_size tells that the stream is too long. */
            uint64_t left = f->at < p->max_size ? p->max_size - f->at + 1 : 1;
            if (room > left)
                room = left;
        }
        *cap = room < chunk ? (size_t)room : chunk;
        f->inflight = f->at + *cap;
        return SB__STEP_STORE;
    }
}

/* Join the run that ends at lo_b (starting at lo_a; 0: the watermark)
   with the extent at lo_b. */
static void join_locked(struct sb__parts *p, uint64_t lo_a, uint64_t lo_b)
{
    /* Only a run that still starts at lo_b (another compare of the same
       seam may have joined it first). */
    size_t at = sb__extents_find_locked(&p->ext, lo_b);
    uint64_t lo, end;
    if (at >= sb__extents_count_locked(&p->ext))
        return;
    sb__extents_get_locked(&p->ext, at, &lo, &end);
    if (lo != lo_b)
        return;
    uint64_t hi = sb__extents_remove_locked(&p->ext, lo_b);
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->f[i].ext_lo == lo_b)
            p->f[i].ext_lo = lo_a;
    if (lo_a == 0) {
        sb__wait_publish(&p->b->wait, hi);
        uint64_t len = sb__parts_length(p);
        if (len != SB__UNKNOWN && hi >= len)
            end_locked(p);
    } else {
        sb__extents_grow_locked(&p->ext, lo_a, hi);
        sb__wait_recheck(&p->b->wait);
    }
}

/* The lo of the run that holds byte off - 1 (0: the watermark). */
static uint64_t run_lo(struct sb__parts *p, uint64_t off)
{
    if (off <= filled_of(p))
        return 0;
    size_t i = sb__extents_find_locked(&p->ext, off - 1);
    uint64_t lo = 0, hi = 0;
    if (i < sb__extents_count_locked(&p->ext))
        sb__extents_get_locked(&p->ext, i, &lo, &hi);
    return lo;
}

void sb__parts_compared_locked(struct sb__fetcher *f, size_t n, bool equal)
{
    struct sb__parts *p = f->parts;
    p->fetched += n;
    p->refetched += n;
    if (!equal) {
        fail_locked(p, ESTALE);
        return;
    }
    f->at += n;
    if (f->at < f->cmp_end)
        return;
    if (f->meet) {
        /* It met held bytes and they match: its run and theirs are one.
           The step that follows stops it. */
        join_locked(p, f->ext_lo, f->met);
        if (p->drain_held)
            schedule_locked(p); /* the join may end the hold */
        return;
    }
    /* It opened before a run no one extends: it grows that run now. */
    if (f->at > f->open_off)
        f->ext_lo = run_lo(p, f->at);
}

/*
 * A fetcher's rate is what it delivers over wall time while it runs, not
 * per read: a read of bytes the source had buffered (a socket's, libcurl's
 * stage) returns at once, and timing reads alone made rates of GB/s and
 * seek gaps of tens of MB.  So the time from the end of one read to the end
 * of the next (from a resume, when flow control held it between) is summed
 * with the bytes, and each window of at least RATE_WINDOW_NS updates the
 * average.
 */
#define RATE_WINDOW_NS 50000000u

static void measure_locked(struct sb__fetcher *f, size_t n, uint64_t t0, uint64_t t1)
{
    uint64_t from = f->last_ns;
    if (from == 0 || from < f->resumed_ns)
        from = f->resumed_ns;
    if (from == 0 || from > t0)
        from = t0; /* at least the read itself */
    f->last_ns = t1;
    f->win_bytes += n;
    f->win_ns += t1 - from;
    if (f->win_ns < RATE_WINDOW_NS)
        return;
    double r = (double)f->win_bytes * 1e9 / (double)f->win_ns;
    f->rate = f->rate == 0 ? r : 0.7 * f->rate + 0.3 * r;
    f->win_bytes = f->win_ns = 0;
}

void sb__parts_stored_locked(struct sb__fetcher *f, size_t n, uint64_t t0,
                             uint64_t t1, bool first_bytes, uint64_t since_open_ns)
{
    struct sb__parts *p = f->parts;
    f->inflight = 0;
    if (f->stop)
        wake_all(p); /* what it claimed in flight is free now */
    if (n == 0)
        return;
    if (!running(p)) {
        /* A read that lands after the end, a failure or a cancel: its
           bytes were delivered, and are not stored. */
        p->fetched += n;
        p->refetched += n;
        return;
    }
    uint64_t lo = f->at, hi = lo + n;
    p->fetched += n;
    bool unrated = !(f->rate > 0);
    f->delivered = true;
    measure_locked(f, n, t0, t1);
    if (first_bytes) {
        double o = (double)since_open_ns;
        p->open_ns = p->open_ns == 0 ? o : 0.8 * p->open_ns + 0.2 * o;
    }
    bool past = false;
    if (p->max_size != 0 && hi > p->max_size) {
        hi = p->max_size > lo ? p->max_size : lo;
        n = (size_t)(hi - lo);
        past = true;
    }
    if (f->ext_lo == SB__UNKNOWN) {
        /* Its own run, even where it touches the watermark: runs join
           only after a compare across their seam. */
        if (lo == 0) {
            f->ext_lo = 0;
        } else if (n > 0) {
            if (sb__extents_add_locked(&p->ext, lo, hi) < 0) {
                fail_locked(p, ENOMEM);
                return;
            }
            f->ext_lo = lo;
        }
    } else if (f->ext_lo != 0 && n > 0) {
        sb__extents_grow_locked(&p->ext, f->ext_lo, hi);
    }
    /* A fetcher may wait for these bytes to compare, or for this new
       run's seam. */
    wake_seam(p);
    f->at = lo + n;
    uint64_t len = sb__parts_length(p);
    if (f->ext_lo == 0) {
        if (n > 0 && !sb__wait_publish(&p->b->wait, hi))
            return;
        if (len != SB__UNKNOWN && hi >= len)
            end_locked(p);
    } else {
        p->recheck = true; /* readers far off: once mu is let go */
    }
    if (past)
        fail_locked(p, EFBIG); /* the bytes up to max_size stay */
    else if (p->drain_held || (unrated && f->rate > 0 && draining(p)))
        schedule_locked(p); /* the hold may end; its reach may split */
}

void sb__parts_ended_locked(struct sb__fetcher *f, int rc)
{
    struct sb__parts *p = f->parts;
    f->inflight = 0;
    if (f->first && rc == 0 && !f->stop) {
        /* The source's own stream ended.  A plain stream cannot tell a
           dropped connection from the end: where parts can be had, a part
           opened there says which (it finds nothing, or goes on). */
        uint64_t len = sb__parts_exact_length(p);
        if (len == SB__UNKNOWN && !p->off) {
            f->first = false;
            f->st = SB__F_IDLE;
            assign_locked(p, f, f->at, f->at, NULL, false);
            return;
        }
        if (len == SB__UNKNOWN) {
            atomic_store_explicit(&p->length, f->at, memory_order_release);
            len = f->at;
        }
        if (f->at == len)
            p->tail_checked = true;
        f->st = SB__F_IDLE;
        f->first = false;
        if (f->at != len) {
            failed_locked(f, EIO);
            return;
        }
        if (filled_of(p) >= len)
            end_locked(p);
        sb__wait_recheck(&p->b->wait);
        return;
    }
    bool was_first = f->first;
    f->first = false;
    if (!running(p) || f->stop) {
        f->st = SB__F_IDLE;
        return;
    }
    if (rc < 0) {
        if (was_first && p->off) {
            f->st = SB__F_IDLE;
            fail_locked(p, -rc);
            return;
        }
        failed_locked(f, -rc);
        return;
    }
    /* The part ended (rc == 0). */
    uint64_t len = sb__parts_exact_length(p);
    if (f->req_end != UINT64_MAX && f->at >= f->req_end) {
        /* It stopped where it was asked to.  A seam it was comparing
           there is whole as far as it got. */
        if (f->meet && f->at > f->met) {
            join_locked(p, f->ext_lo, f->met);
            f->st = SB__F_IDLE;
            return;
        }
        f->st = SB__F_IDLE;
        /* Readers went on into its bytes since it opened, and read_ahead
           lets it go further: the next window at once (the part asked for
           less than read_ahead, sb__parts_open_end_locked). */
        uint64_t demand = f->demand;
        if (p->read_ahead != 0 && !draining(p) && demand > f->open_demand
            && f->at < f->limit && f->at < sat_add(demand, p->read_ahead)
            && f->ext_lo != SB__UNKNOWN
            && assign_locked(p, f, f->at, demand, NULL, false)) {
            /* read_ahead counts from what readers asked, not from where
               the fetcher got to. */
            f->demand = demand;
            f->open_demand = demand;
        }
        return;
    }
    if (len != SB__UNKNOWN) {
        if (f->at < len) {
            failed_locked(f, EIO); /* cut short: reopen */
            return;
        }
        f->st = SB__F_IDLE;
        p->tail_checked = true; /* it ended at the length */
        if (filled_of(p) >= len)
            end_locked(p);
        return;
    }
    f->st = SB__F_IDLE;
    if (f->ext_lo == SB__UNKNOWN && f->at == f->reach_lo) {
        /* Nothing at all from here: the stream ends at or before it, but
           the bytes before may not all exist. */
        uint64_t max = atomic_load(&p->end_max);
        if (f->at < max)
            atomic_store_explicit(&p->end_max, f->at, memory_order_release);
        p->tail_checked = true;
        if (filled_of(p) >= f->at)
            end_locked(p);
        sb__wait_recheck(&p->b->wait);
        return;
    }
    /* An end where none was asked for, after bytes: the stream ends
       here. */
    atomic_store_explicit(&p->length, f->at, memory_order_release);
    p->tail_checked = true;
    if (sb__extents_count_locked(&p->ext) > 0) {
        uint64_t lo, hi;
        sb__extents_get_locked(&p->ext, sb__extents_count_locked(&p->ext) - 1,
                               &lo, &hi);
        if (hi > f->at) {
            fail_locked(p, EIO); /* bytes held past the end */
            return;
        }
    }
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct sb__fetcher *g = &p->f[i];
        if (g != f && active(g) && g->at >= f->at) {
            g->stop = true;
            cancel_part_locked(g);
            wake(g);
        }
    }
    if (filled_of(p) >= f->at)
        end_locked(p);
    sb__wait_recheck(&p->b->wait);
}

int sb__parts_spill(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    struct sb__spool *s = &b->spool;
    /* fd is set under both locks: under spill_mu it can be read alone
       (and a caller that finds the file being made waits for it here). */
    sb__mutex_lock(&p->spill_mu);
    int rc = 0;
    if (s->fd < 0) {
        int fd = sb__spool_new_file(s);
        if (fd >= 0) {
            sb__mutex_lock(&p->mu);
            sb__spool_set_file(s, fd);
            sb__parts_unlock(p);
        } else {
            rc = fd;
        }
    }
    sb__mutex_unlock(&p->spill_mu);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

int sb__parts_init(sb_buffer *b, uint32_t max_parts, uint32_t retries,
                   uint64_t seek_gap, uint64_t length, void *(*thread_main)(void *))
{
    struct sb__parts *p = sb__calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    int rc = sb__extents_init(&p->ext);
    if (rc < 0) {
        free(p);
        return rc;
    }
    rc = -pthread_mutex_init(&p->mu, NULL);
    if (rc < 0) {
        sb__extents_destroy(&p->ext);
        free(p);
        return rc;
    }
    rc = -pthread_mutex_init(&p->spill_mu, NULL);
    if (rc < 0) {
        sb__check(pthread_mutex_destroy(&p->mu));
        sb__extents_destroy(&p->ext);
        free(p);
        return rc;
    }
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0
        || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0) {
        sb__check(pthread_mutex_destroy(&p->spill_mu));
        sb__check(pthread_mutex_destroy(&p->mu));
        sb__extents_destroy(&p->ext);
        free(p);
        return -ENOMEM;
    }
    unsigned made = 0;
    for (; made < SB__MAX_PARTS; made++) {
        struct sb__fetcher *f = &p->f[made];
        f->parts = p;
        f->id = made;
        f->st = SB__F_IDLE;
        f->ext_lo = SB__UNKNOWN;
        f->moved_for = SB__UNKNOWN;
        f->other = -1;
        if (pthread_cond_init(&f->cv, &ca) != 0)
            break;
    }
    sb__check(pthread_condattr_destroy(&ca));
    if (made < SB__MAX_PARTS) {
        while (made-- > 0)
            sb__check(pthread_cond_destroy(&p->f[made].cv));
        sb__check(pthread_mutex_destroy(&p->spill_mu));
        sb__check(pthread_mutex_destroy(&p->mu));
        sb__extents_destroy(&p->ext);
        free(p);
        return -ENOMEM;
    }
    /* SB_LENGTH_KNOWN: as if the first open_at had reported it. */
    atomic_init(&p->length, length);
    atomic_init(&p->end_max, SB__UNKNOWN);
    atomic_init(&p->stale, false);
    p->b = b;
    p->thread_main = thread_main;
    p->src = &b->src;
    p->chunk = b->chunk_size;
    p->max_parts = max_parts;
    p->retries = retries;
    p->seek_gap = seek_gap;
    p->read_ahead = b->wait.read_ahead;
    p->max_retained = b->wait.max_retained;
    p->max_size = b->max_size == UINT64_MAX ? 0 : b->max_size;
    b->parts = p;
    return 0;
}

int sb__parts_start(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    sb__mutex_lock(&p->mu);
    struct sb__fetcher *f = &p->f[0];
    f->st = SB__F_ASSIGNED;
    f->first = p->src->read != NULL || p->src->next != NULL;
    f->at = 0;
    f->open_off = 0;
    f->cmp_end = 0;
    f->reach_lo = 0;
    f->ext_lo = SB__UNKNOWN;
    f->limit = UINT64_MAX;
    f->demand = 0;
    /* max_parts 1 reads a plain first stream as a plain stream. */
    if (p->max_parts == 1 && f->first)
        p->off = true;
    bool ok = start_locked(p, f);
    if (!ok)
        f->st = SB__F_IDLE;
    sb__parts_unlock(p);
    return ok ? 0 : -EAGAIN;
}

void sb__parts_cancel(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    if (p == NULL)
        return;
    sb__mutex_lock(&p->mu);
    p->over = true;
    for (unsigned i = 0; i < p->nthreads; i++)
        cancel_part_locked(&p->f[i]);
    wake_all(p);
    sb__parts_unlock(p);
}

void sb__parts_join(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    if (p == NULL)
        return;
    sb__parts_cancel(b);
    sb__mutex_lock(&p->mu);
    unsigned n = p->nthreads;
    sb__parts_unlock(p);
    for (unsigned i = 0; i < n; i++)
        if (p->f[i].started)
            sb__check(pthread_join(p->f[i].thread, NULL));
}

void sb__parts_destroy(sb_buffer *b)
{
    struct sb__parts *p = parts_of(b);
    if (p == NULL)
        return;
    for (unsigned i = 0; i < SB__MAX_PARTS; i++)
        sb__check(pthread_cond_destroy(&p->f[i].cv));
    sb__check(pthread_mutex_destroy(&p->spill_mu));
    sb__check(pthread_mutex_destroy(&p->mu));
    sb__extents_destroy(&p->ext);
    free(p);
    b->parts = NULL;
}

void sb__parts_stats(sb_buffer *b, sb_stats *out)
{
    struct sb__parts *p = parts_of(b);
    if (p == NULL) {
        out->fetched = out->filled;
        out->extents = out->filled > 0;
        if (out->state == SB_ENDED)
            out->length = out->filled;
        return;
    }
    sb__mutex_lock(&p->mu);
    out->parts_opened = p->parts_opened;
    out->pauses += p->pauses;
    out->paused_ns += p->paused_ns;
    if (p->npaused > 0)
        out->paused = 1;
    out->parts_moved = p->parts_moved;
    out->part_retries = p->part_retries;
    out->fetched = p->fetched;
    out->refetched = p->refetched;
    uint64_t active_n = 0, gap = 0;
    for (unsigned i = 0; i < p->nthreads; i++) {
        const struct sb__fetcher *f = &p->f[i];
        if (f->st == SB__F_RUNNING && !f->stop)
            active_n++;
        uint64_t g = gap_of(p, f->rate > 0 ? f : NULL);
        if (g > gap)
            gap = g;
    }
    out->parts_active = active_n;
    out->seek_gap = gap != 0 ? gap : gap_of(p, NULL);
    bool stale = atomic_load(&p->stale);
    out->extents = (filled_of(p) > 0)
                   + (stale ? 0 : sb__extents_count_locked(&p->ext));
    uint64_t len = sb__parts_exact_length(p);
    out->length = len == SB__UNKNOWN ? 0 : len;
    sb__parts_unlock(p);
}
