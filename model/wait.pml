/* SPDX-License-Identifier: MIT */
/*
 * wait.pml - the waiter hand-off of src/wait.c, in Promela, for spin.
 *
 * What is checked (make model):
 *   - no lost wake-up: once the producer and the canceller are done, no
 *     reader is still queued whose bytes are there or whose stream is over
 *     (the monitor); and when the stream ends, every reader returns (spin
 *     reports an invalid end state otherwise).  The producer may also stop
 *     for good without ending the stream (a source that blocks forever):
 *     readers still waiting for bytes that never come are then a valid end;
 *   - no waiter record used after its reader returned: every access of a
 *     record by a waker asserts that its reader is still inside
 *     sb__wait_until (alive[i]);
 *   - a reader returns only with its bytes there, the stream over, or its
 *     own timeout;
 *   - no deadlock, for NR readers (each with or without a timeout, needing
 *     any byte), one producer that publishes byte by byte and ends the
 *     stream, and a canceller that may cancel at any moment.
 *
 * The model follows the C code step by step; each step names the code it
 * stands for, as "function: statement".  mu is the wait mutex; a record's
 * state is its futex word; futex_wait sleeps while the word is W_WAITING
 * (spin's blocking guard), and futex_wake needs no step of its own here
 * because a sleeper wakes as soon as the word changes (a real futex_wake
 * only makes that prompt).  Spurious wake-ups are covered: the reader
 * loops on its word as the C code does.
 */

#ifndef NR
#define NR 3          /* readers */
#endif
#ifndef F
#define F  2          /* bytes the producer publishes */
#endif
#define NONE 255

#define W_WAITING 0
#define W_WOKEN   1
#define W_DONE    2

bit mu = 0;                  /* the wait mutex */
bit producer_done = 0;
bit canceller_done = 0;
byte filled = 0;             /* w->filled */
bit over = 0;                /* w->state != SB_RUNNING */

/* The waiter records, one per reader (on its stack in C). */
byte need[NR];
byte wstate[NR];             /* me.state */
bit linked[NR];              /* me.linked */
byte next[NR];               /* me.next: the rest of a waker's list */
bit alive[NR];               /* the reader is inside sb__wait_until */

inline lock()   { atomic { mu == 0 -> mu = 1 } }
inline unlock() { mu = 0 }

/* take_locked: unlink every linked record with need <= limit, as a list
   (head in `head`, linked through next[]).  In C the queue is sorted, so
   this is a prefix; here any order does: the list order is not relied on. */
inline take(limit, head) {
    byte t_i = 0;
    byte t_tail = NONE;
    head = NONE;
    do
    :: t_i < NR ->
        if
        :: linked[t_i] && need[t_i] <= limit ->
            assert(alive[t_i]);
            linked[t_i] = 0;          /* dequeue_locked */
            next[t_i] = NONE;         /* take_locked: first->next = NULL */
            if
            :: t_tail == NONE -> head = t_i
            :: else -> next[t_tail] = t_i   /* take_locked: *tail = first */
            fi;
            t_tail = t_i
        :: else -> skip
        fi;
        t_i++
    :: else -> break
    od
}

/* hand_over: the waker's three steps on a record, then hands off. */
inline hand_over(j) {
    assert(alive[j]);
    wstate[j] = W_WOKEN;   /* hand_over: store W_WOKEN */
    assert(alive[j]);      /* hand_over: futex_wake(&me->state) */
    wstate[j] = W_DONE     /* hand_over: store W_DONE; not touched after */
}

/* wake_rest: a woken reader wakes the ones that came with it. */
inline wake_rest(first) {
    byte r_j = first;
    byte r_n;
    do
    :: r_j != NONE ->
        assert(alive[r_j]);
        r_n = next[r_j];       /* wake_rest: rest = me->next */
        next[r_j] = NONE;      /* wake_rest: me->next = NULL */
        hand_over(r_j);
        r_j = r_n
    :: else -> break
    od
}

/* sb__wait_publish, byte by byte, then sb__wait_finish(0) at the end. */
active proctype producer()
{
    byte head;
    do
    :: filled < F ->
        lock();
        if
        :: !over ->
            filled++;                 /* sb__wait_publish: store filled */
            take(filled, head)        /* sb__wait_publish: take_locked */
        :: else -> head = NONE
        fi;
        unlock();
        if                            /* sb__wait_publish: wake_list */
        :: head != NONE -> hand_over(head)
        :: else -> skip
        fi
    :: filled == F -> break
    :: over -> break                  /* the producer sees the state */
    :: filled < F ->                  /* the source blocks for ever */
        producer_done = 1;
        goto stuck
    od;
    /* sb__wait_finish(w, 0) when the source ends */
    lock();
    if
    :: !over -> over = 1; take(255, head)
    :: else -> head = NONE
    fi;
    unlock();
    if
    :: head != NONE -> hand_over(head)
    :: else -> skip
    fi;
    producer_done = 1;
stuck:
    skip
}

/* sb_cancel -> sb__wait_finish(w, ECANCELED), at any moment, or never. */
active proctype canceller()
{
    byte head;
    if
    :: skip ->
        lock();
        if
        :: !over -> over = 1; take(255, head)   /* wake everyone */
        :: else -> head = NONE
        fi;
        unlock();
        if
        :: head != NONE -> hand_over(head)
        :: else -> skip
        fi
    :: skip                                     /* no cancel */
    fi;
    canceller_done = 1
}

/* When nothing can move any more (spin's timeout: every process blocked
   or done), a reader still asleep must be one still queued for bytes that
   never came, in a stream that is not over: one that is ready, or that a
   waker took off the queue and never handed over, is a lost wake-up. */
active proctype monitor()
{
    byte m_i = 0;
    atomic {
        timeout ->
        assert(producer_done && canceller_done);
        do
        :: m_i < NR ->
            assert(!(linked[m_i] && (need[m_i] <= filled || over)));
            assert(!(alive[m_i] && !linked[m_i] && wstate[m_i] == W_WAITING));
            m_i++
        :: else -> break
        od
    }
}

/* sb__wait_until(w, need, ..., timeout_ms): a reader, with or without a
   timeout, for any byte. */
proctype reader(byte i)
{
    bit timed;
    bit timed_out = 0;
    bit mine;
    /* any byte of the stream, or one past it (it waits for the end) */
    need[i] = 1;
    do
    :: need[i] <= F -> need[i]++
    :: break
    od;
    if
    :: timed = 0
    :: timed = 1
    fi;

    lock();
    if
    :: filled >= need[i] || over ->   /* ready_locked */
        unlock();
        goto out
    :: else -> skip
    fi;
    alive[i] = 1;                     /* struct sb__waiter me = ... */
    wstate[i] = W_WAITING;            /* atomic_init(&me.state, W_WAITING) */
    next[i] = NONE;
    linked[i] = 1;                    /* enqueue_locked */
    unlock();

    do
    :: wstate[i] == W_DONE -> break   /* st == W_DONE */
    :: wstate[i] == W_WOKEN -> skip   /* sched_yield(); continue */
    :: wstate[i] == W_WAITING ->
        /* A reader may sleep here for good: its bytes never come. */
end_sleep:
        if
        :: atomic { wstate[i] != W_WAITING -> skip }   /* futex_wait returns */
        :: timed ->                                     /* ETIMEDOUT */
            lock();
            mine = linked[i];         /* bool mine = me.linked */
            if
            :: mine -> linked[i] = 0  /* dequeue_locked(w, &me) */
            :: else -> skip
            fi;
            unlock();
            if
            :: mine -> timed_out = 1; break   /* rc = -ETIMEDOUT */
            :: else -> timed = 0              /* until = NULL */
            fi
        fi
    od;
    if
    :: !timed_out ->
        /* woken: its bytes are there or the stream is over */
        assert(filled >= need[i] || over);
        wake_rest(next[i])            /* if (rc == 0) wake_rest(me.next) */
    :: else -> skip
    fi;
    alive[i] = 0;                     /* return: the record is gone */
out:
    skip
}

init
{
    byte k = 0;
    atomic {
        do
        :: k < NR -> next[k] = NONE; run reader(k); k++
        :: else -> break
        od
    }
}
