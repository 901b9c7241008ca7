/* SPDX-License-Identifier: MIT */
/*
 * ready.pml - the ready list and the poll fd of src/ready.c, in Promela,
 * for spin.
 *
 * What is checked (make model):
 *   - no lost wake-up: when nothing can move any more (spin's timeout),
 *     with the event loop waiting on the fd, no reader is on the ready list
 *     while the fd is quiet, and no armed reader's range is answerable
 *     (a publish or the end state passed it without making it ready);
 *   - spurious wake-ups only in the documented race: in every state, the
 *     fd is readable with the list empty only after a signal landed on an
 *     empty list (one sent after its sender let go of mu, overtaken by a
 *     consumer that emptied the list and drained), and only until the
 *     next drain;
 *   - the list never yields a closed reader, yields each arming at most
 *     once, and only a reader whose range is answerable;
 *   - no deadlock, for NR readers that each arm (and re-arm, replacing the
 *     range, possibly while listed) up to NA times from threads of their
 *     own and may close, one producer that publishes byte by byte and may
 *     end the stream (or cancel: the same call), and one event loop that
 *     makes the fd (possibly after readers became ready), waits on it and
 *     takes up to 1 or NR readers at a time, and may also take once
 *     without waiting (an EPOLLET loop, or a caller that polls after
 *     arming).
 *
 * Every access to the list, the heap, filled and the state is under the
 * wait mutex mu, so each critical section is one atomic step here; what
 * runs outside mu, and so interleaves with everything, is the signal
 * (sb__ready_signal, an eventfd write after unlocking) and the loop's poll
 * of the fd.  The drain (an eventfd read) is inside the critical section
 * that empties the list, as in the C code; moving it after the unlock
 * makes spin find the lost wake-up.  Each step names the code it stands
 * for.  The heap is a set here (armed[]): a publish moves every armed
 * reader whose need it passes, whatever their order, which is what the
 * heap's top-first loop does.  The list is a set too (listed[]): its
 * order is not relied on.  efd is the eventfd's counter; the loop's poll
 * blocks while it is 0.
 */

#ifndef NR
#define NR 2          /* readers */
#endif
#ifndef F
#define F  2          /* bytes the producer publishes */
#endif
#ifndef NA
#define NA 2          /* arms per reader */
#endif

byte filled = 0;             /* w->filled */
bit over = 0;                /* w->state != SB_RUNNING */
bit fd_made = 0;             /* w->ready.efd >= 0 */
byte efd = 0;                /* the eventfd's counter */
byte nlisted = 0;            /* length of the ready list */
bit late = 0;                /* ghost: a signal landed on an empty list
                                since the last drain */
bit done[NR];                /* ghost: the reader's thread is finished */
bit producer_done = 0;

byte need[NR];               /* a->need */
bit armed[NR];               /* a->slot != SB__UNARMED (in the heap) */
bit listed[NR];              /* a->listed */
bit closed[NR];              /* sb_reader_close ran */
byte gen[NR];                /* ghost: the reader's arming count */
byte taken[NR];              /* ghost: the arming sb_poll_ready last
                                yielded (0: none) */

/* drain_if_empty_locked */
inline drain_if_empty() {
    if
    :: fd_made && nlisted == 0 -> efd = 0; late = 0   /* read(fd) */
    :: else -> skip
    fi
}

/* sb__ready_signal, one eventfd write; the ghost notes when it lands on an
   empty list. */
inline signal() {
    atomic {
        if
        :: fd_made ->
            if
            :: efd < 255 -> efd++
            :: else -> skip
            fi;
            if
            :: nlisted == 0 -> late = 1
            :: else -> skip
            fi
        :: else -> skip
        fi
    }
}

/* sb__ready_make_locked(w, limit): sig is set if the list went from empty
   to not empty. */
inline make_ready(limit, sig) {
    byte m_i = 0;
    bit was_empty = (nlisted == 0);
    bit moved = 0;
    do
    :: m_i < NR ->
        if
        :: armed[m_i] && need[m_i] <= limit ->
            armed[m_i] = 0;              /* heap_remove_locked */
            listed[m_i] = 1;             /* onto the list's tail */
            nlisted++;
            moved = 1
        :: else -> skip
        fi;
        m_i++
    :: else -> break
    od;
    sig = was_empty && moved;
    m_i = 0; was_empty = 0; moved = 0    /* dead from here: fewer states */
}

/* disarm_locked */
inline disarm(i) {
    armed[i] = 0;                        /* heap_remove_locked */
    if
    :: listed[i] ->
        listed[i] = 0;                   /* unlist_locked */
        nlisted--;
        drain_if_empty()
    :: else -> skip
    fi
}

/* sb__wait_publish byte by byte, then maybe sb__wait_finish. */
active proctype producer()
{
    bit sig;
    do
    :: filled < F ->
        atomic {                         /* sb__wait_publish: lock */
            filled++;                    /* store filled */
            make_ready(filled, sig)      /* sb__ready_make_locked */
        };                               /* unlock */
        if
        :: sig -> signal()               /* sb__ready_signal */
        :: else -> skip
        fi;
        sig = 0
    :: break                             /* the source blocks for ever */
    od;
    if
    :: atomic {                          /* sb__wait_finish: lock */
            over = 1;
            make_ready(255, sig)
        };                               /* unlock */
        if
        :: sig -> signal()
        :: else -> skip
        fi
    :: skip
    fi;
    producer_done = 1
}

/* A reader's thread: sb_reader_pread on an SB_NONBLOCK reader, NA times
   (each arming replaces the last), then maybe sb_reader_close. */
proctype reader(byte i)
{
    byte a = 0;
    byte want;
    do
    :: a < NA ->
        want = 1;                        /* any byte, or one past the end */
        do
        :: want <= F -> want++
        :: break
        od;
        atomic {                         /* sb__wait_arm: lock */
            if
            :: filled >= want || over -> /* answerable: arming unchanged */
                skip
            :: else ->
                disarm(i);               /* disarm_locked */
                need[i] = want;
                armed[i] = 1;            /* into the heap */
                gen[i]++
            fi
        };                               /* unlock */
        want = 0;                        /* dead from here: fewer states */
        a++
    :: break
    od;
    if
    :: atomic {                          /* sb_reader_close: sb__wait_disarm */
            disarm(i);
            closed[i] = 1
        }
    :: skip
    fi;
    done[i] = 1
}

/* The event loop: sb_poll_fd, then poll and sb_poll_ready. */
active proctype loop()
{
    bit free_take = 0;
    byte max, k, j;
    atomic {                             /* sb__wait_poll_fd: lock */
        fd_made = 1;
        if                               /* readers ready before the fd */
        :: nlisted > 0 -> signal()
        :: else -> skip
        fi
    };
end_wait:
    do
    :: atomic { efd > 0 -> skip }        /* poll: POLLIN */
        goto take
    :: !free_take ->                     /* a take without the fd */
        free_take = 1;
        goto take
    od;
take:
    if
    :: max = 1
    :: max = NR
    fi;
    atomic {                             /* sb__wait_take_ready: lock */
        k = 0;
        do
        :: k < max && nlisted > 0 ->
            j = 0;                       /* the list's head (any one:
                                            its order is not relied on) */
            do
            :: listed[j] -> break
            :: else -> j++
            od;
            listed[j] = 0;               /* unlist_locked */
            nlisted--;
            assert(!closed[j]);          /* never a closed reader */
            assert(taken[j] != gen[j]);  /* each arming at most once */
            taken[j] = gen[j];
            assert(filled >= need[j] || over); /* only an answerable one */
            k++
        :: else -> break
        od;
        drain_if_empty();
        k = 0; j = 0; max = 0            /* dead from here: fewer states */
    };                                   /* unlock */
    goto end_wait
}

/* The lost wake-up: when nothing can move any more, the loop waits on the
   fd; a reader listed with the fd quiet would never be taken, and an armed
   reader whose range is answerable would never be listed. */
active proctype monitor()
{
    byte m_i = 0;
    atomic {
        timeout ->
        assert(producer_done);
        do
        :: m_i < NR ->
            assert(done[m_i]);
            assert(!(armed[m_i] && (need[m_i] <= filled || over)));
            m_i++
        :: else -> break
        od;
        assert(!(nlisted > 0 && efd == 0))
    }
}

/* Spurious wake-ups: the fd readable with the list empty only after a late
   signal, and until the next drain.  Checked in every state (no state
   here is inside a critical section). */
active proctype spurious()
{
end_never:
    atomic { (fd_made && efd > 0 && nlisted == 0 && !late) -> assert(0) }
}

init
{
    byte k = 0;
    atomic {
        do
        :: k < NR -> run reader(k); k++
        :: else -> break
        od
    }
}
