/* SPDX-License-Identifier: MIT */
/*
 * tests/model/parker.pml: a model of weft's parking layer under an Event, checked
 * exhaustively by spin (run.sh).
 *
 * What is modelled, statement for statement where it matters (docs/design.md section 2):
 *   - the Parker word: token << 2 | SLEEPING << 1 | NOTIFIED; prepare(), try_claim() (CAS
 *     from undecided), abort() (CAS from undecided, sets NOTIFIED itself), wake()
 *     (fetch_or NOTIFIED, futex_wake only if SLEEPING), wait_notified() (announce SLEEPING by
 *     CAS, futex_wait with the value check, deadline only while undecided);
 *   - futex: futex_wait(word, v) sleeps only if word == v at the call (atomically), returns
 *     on a wake, on its deadline (timed waits), or spuriously (a bounded number of times);
 *     futex_wake wakes the sleeper, or nobody ("stale" wake);
 *   - WordLock, the three-state futex mutex guarding the wait list (Drepper's mutex);
 *   - WaitList, a FIFO under that lock, with push_back, remove and claim_front;
 *   - Event::wait_slow (fast path, deadline check, one round of WaitLoop::wait over
 *     EventWaitOp: register with the kWaiters CAS, park, unregister, and the retry of is_set()
 *     after a deadline round) against Event::set (fast path + set_slow: claim every waiter
 *     under the lock, then publish kSet with a CAS that fails if a waiter registered
 *     meanwhile, wake after through a WakeBatch: "claim first, publish last") and
 *     Event::clear; CPython issue 13502 ("waiting when set() is called": linked when set()
 *     starts);
 *   - cancellation: std::stop_callback registration (the callback runs at once if a stop was
 *     already requested), request_stop running it on the requesting thread, and
 *     ~stop_callback waiting for a callback that is running;
 *   - timeouts: a timed waiter's deadline may pass at every point the code looks at it.
 *
 * The wait loop above the Parker (the flag handshake, select, pass_on, Position::front,
 * the Lock and Condition's wait morphing) is modelled in wait_loop.pml, over this layer
 * abstracted to its contract.
 *
 * Properties (assertions; spin also reports any deadlock as an invalid end state, which is
 * how a lost wake-up shows: an untimed waiter blocked for good):
 *   P1 exactly one decision per park: the word leaves "undecided" once (claim, timeout or
 *      cancel), and the park ends with NOTIFIED set;
 *   P2 a claim never succeeds on an aborted park (no wake of a thread that was not waiting);
 *   P3 no lost wake-up: every waiter ends (valid end states); a claimed waiter returns true;
 *      a waiter returns true only if claimed or it saw the flag without parking (before
 *      registering, or in the retry after its deadline);
 *   P4 the waker never touches a node after its owner returned (I3), and a claimed owner
 *      returns only after the waker's last access to the Event (I2/I3: the publishing CAS);
 *   P5 13502: an untimed, uncancelled waiter linked when set() is called returns true;
 *   P7 invariants under the list lock: kWaiters set iff the list is non-empty;
 *      a node is linked iff it is in the list; at the end nothing is linked.
 *
 * Configuration (-D on the spin command line, see run.sh):
 *   NW      waiters (1..3)
 *   TIMED   bit mask of waiters with a finite deadline
 *   CANCEL  bit mask of waiters that wait with a stop_token (one stop_source for all)
 *   SPURIOUS  spurious futex wake-ups allowed in a run (default 1)
 *   CLEARER 1 to run Event::clear() concurrently
 *   ABSTRACT_LOCK  the list lock as an atomic mutex rather than the futex WordLock
 */

#ifndef NW
#define NW 2
#endif
#ifndef TIMED
#define TIMED 2
#endif
#ifndef CANCEL
#define CANCEL 0
#endif
#ifndef SPURIOUS
#define SPURIOUS 1
#endif
#ifndef CLEARER
#define CLEARER 1
#endif

#define IS_TIMED(w) (((TIMED) >> (w)) & 1)
#define IS_CANCEL(w) (((CANCEL) >> (w)) & 1)

/* Parker word */
#define NOTIFIED 1
#define SLEEPING 2
#define TOKEN(v) ((v) >> 2)
#define WOKEN 1
#define TIMEDOUT 2
#define CANCELLED 3

/* Event state */
#define SET 1
#define WAITERS 2

#define NPROC 10

/* ---- shared state ---- */
byte word[NW];        /* Parker words (one Parker per waiter thread) */
bool psleep[NW];      /* the owner sleeps in futex_wait on its word */
byte lk;              /* the source's WordLock: 0 free, 1 locked, 2 locked + sleepers */
bool lsleep[NPROC];   /* sleepers in futex_wait on lk, by _pid */
byte ev;              /* Event state */
byte list[NW];        /* the WaitList, FIFO of waiter ids */
byte count;
bool linked[NW];      /* WaitNode::linked */
byte spurious_left = SPURIOUS;

/* stop_source / stop_callback (one source shared by the cancellable waiters) */
bool stop_req;
bool cb_reg[NW];      /* callback registered, not yet run or removed */
bool cb_running[NW];  /* request_stop is running this waiter's callback */

/* ---- ghost state for the properties ---- */
byte decisions[NW];      /* successful decision CASes in the current park */
bool aborted[NW];
bool claimed[NW];
bool node_alive[NW];     /* the waiter's frame (its WaitNode) exists */
bool returned[NW];
bool result[NW];
bool linked_at_set[NW];  /* linked when set() raised the flag */
bool waker_released[NW]; /* the claimer of this node released the list lock (its last
                            access to the primitive) */

/* ---- primitives ---- */

/* compare_exchange: on failure, `expected` receives the current value */
inline cas(var, expected, desired, ok) {
  d_step {
    if
    :: var == expected -> var = desired; ok = 1
    :: else -> expected = var; ok = 0
    fi
  }
}

/* futex_wake on a Parker word: the owner is the only thread that sleeps on it */
inline futex_wake_parker(w) {
  psleep[w] = 0
}

/* WordLock (parker.hpp / parker.cpp): lock_slow's spin only retries the CAS, which the
   interleavings of the loop below already cover. With -DABSTRACT_LOCK the list lock is an
   atomic test-and-set mutex instead (smaller state space; the WordLock's own protocol is
   then checked by the configurations that keep it). */
#ifdef ABSTRACT_LOCK
inline wl_lock() {
  atomic { lk == 0 -> lk = 1 }
}
inline wl_unlock() {
  lk = 0
}
#else
inline futex_wait_lock() {
  atomic {
    if
    :: lk == 2 -> lsleep[_pid] = 1
    :: else -> skip
    fi
  };
  (lsleep[_pid] == 0)
}

inline wl_lock() {
  e = 0;
  cas(lk, e, 1, ok);
  if
  :: ok -> skip
  :: else ->
    do
    :: true ->
      d_step { e = lk; lk = 2 };  /* exchange(2) */
      if
      :: e == 0 -> break
      :: else -> futex_wait_lock()
      fi
    od
  fi;
  skip  /* a jump target outside any d_step that follows the call */
}

inline wl_unlock() {
  d_step { e = lk; lk = 0 };  /* exchange(0) */
  if
  :: e == 2 ->  /* futex_wake_one(state_) */
    atomic {
      i = 0;
      do
      :: i < NPROC && lsleep[i] -> lsleep[i] = 0; break
      :: i < NPROC && !lsleep[i] -> i++
      :: i == NPROC -> break
      od
    }
  :: else -> skip
  fi;
  skip  /* a jump target outside any d_step that follows the call */
}

#endif

/* WaitList (under lk) */
inline push_back(w) {
  d_step {
    assert(!linked[w]);
    list[count] = w;
    count++;
    linked[w] = 1
  }
}

inline push_front(w) {
  d_step {
    assert(!linked[w]);
    i = count;
    do
    :: i > 0 -> list[i] = list[i - 1]; i--
    :: else -> break
    od;
    list[0] = w;
    count++;
    linked[w] = 1
  }
}

inline list_remove(w) {
  d_step {
    assert(linked[w]);
    i = 0;
    do
    :: list[i] == w -> break
    :: else -> i++
    od;
    do
    :: i + 1 < count -> list[i] = list[i + 1]; i++
    :: else -> break
    od;
    count--;
    list[count] = 0;
    linked[w] = 0
  }
}

/* Parker::try_claim (waker, list lock held). The ghost updates share the CAS's atomic
   step, so that the properties see the decision exactly when it happens. */
inline try_claim(w, tok, ok) {
  v = word[w];
  do
  :: TOKEN(v) == 0 ->
    d_step {
      if
      :: word[w] == v ->
        word[w] = (tok << 2) | (v & SLEEPING);
        ok = 1;
        assert(decisions[w] == 0);  /* P1 */
        assert(!aborted[w]);        /* P2 */
        decisions[w]++;
        claimed[w] = 1
      :: else -> v = word[w]; ok = 0
      fi
    };
    if
    :: ok -> break
    :: else -> skip
    fi
  :: else -> ok = 0; break
  od;
  skip  /* a jump target outside any d_step that follows the call */
}

/* WaitList::claim_front: unlinks from the front until a claim succeeds; n = 255 if none */
inline claim_front(n, tok) {
  n = 255;
  do
  :: count > 0 ->
    m = list[0];
    assert(node_alive[m]);  /* P4: a linked node belongs to a live frame */
    list_remove(m);
    try_claim(m, tok, ok);
    if
    :: ok -> n = m; break
    :: else -> skip
    fi
  :: else -> break
  od;
  skip  /* a jump target outside any d_step that follows the call */
}

/* Parker::wake (after the list lock was released) */
inline wake(w) {
  d_step { v = word[w]; word[w] = word[w] | NOTIFIED };
  if
  :: v & SLEEPING -> futex_wake_parker(w)
  :: else -> skip
  fi;
  skip  /* a jump target outside any d_step that follows the call */
}

/* Parker::abort (owner on timeout, or the stop callback) */
inline abort_park(w, tok, ok) {
  v = word[w];
  do
  :: TOKEN(v) == 0 ->
    d_step {
      if
      :: word[w] == v ->
        word[w] = (tok << 2) | NOTIFIED | (v & SLEEPING);
        ok = 1;
        assert(decisions[w] == 0);  /* P1 */
        decisions[w]++;
        aborted[w] = 1
      :: else -> v = word[w]; ok = 0
      fi
    };
    if
    :: ok ->
      if
      :: v & SLEEPING -> futex_wake_parker(w)
      :: else -> skip
      fi;
      break
    :: else -> skip
    fi
  :: else -> ok = 0; break
  od;
  skip  /* a jump target outside any d_step that follows the call */
}

/* Parker::wait_notified + park(): the owner */
inline park(w) {
  /* std::stop_callback: runs the callback at once if a stop was already requested */
  if
  :: IS_CANCEL(w) ->
    atomic {
      if
      :: stop_req -> inline_cb = 1
      :: else -> cb_reg[w] = 1
      fi
    };
    if
    :: inline_cb -> abort_park(w, CANCELLED, ok)
    :: else -> skip
    fi
  :: else -> skip
  fi;
  /* if (deadline.expired()) abort(kTimedOut) */
  if
  :: IS_TIMED(w) -> abort_park(w, TIMEDOUT, ok)
  :: true -> skip
  fi;
  do
  :: v = word[w];
    if
    :: v & NOTIFIED -> break
    :: else -> skip
    fi;
    ok = 1;
    if
    :: !(v & SLEEPING) ->
      cas(word[w], v, v | SLEEPING, ok);
      if
      :: ok -> v = v | SLEEPING
      :: else -> skip  /* the word changed: look again */
      fi
    :: else -> skip
    fi;
    if
    :: ok ->
      /* futex_wait(word, v, undecided ? deadline : never) */
      fres = 1;
      atomic {
        if
        :: word[w] == v -> psleep[w] = 1
        :: else -> skip  /* EAGAIN */
        fi
      };
      if
      :: psleep[w] ->
        /* the only place a waiter may legitimately block for good (nobody sets the event);
           the Monitor decides at a global deadlock whether that was legitimate */
end_sleep:
        if
        :: atomic { psleep[w] == 0 -> skip }  /* woken */
        :: atomic { IS_TIMED(w) && TOKEN(v) == 0 && psleep[w] -> psleep[w] = 0; fres = 0 }
        :: atomic { spurious_left > 0 && psleep[w] -> spurious_left--; psleep[w] = 0 }
        fi
      :: else -> skip
      fi;
      if
      :: !fres -> abort_park(w, TIMEDOUT, ok)  /* deadline passed while undecided */
      :: else -> skip
      fi
    :: else -> skip
    fi
  od;
  assert(decisions[w] == 1);  /* P1: decided once, and NOTIFIED */
  /* ~stop_callback: removes the callback, or waits for the one request_stop is running */
  if
  :: IS_CANCEL(w) ->
    atomic { cb_reg[w] = 0 };
    (cb_running[w] == 0)
  :: else -> skip
  fi;
  outcome = TOKEN(word[w])
}

/* ---- weft::Event (include/weft/event.hpp, src/event.cpp) ---- */

proctype EventWaiter(byte w) {
  byte v, e, s, i, outcome;
  bool ok, fres, inline_cb;
  /* Event::wait(stop): a stop already requested returns false (the loop's first check) */
  if
  :: IS_CANCEL(w) && stop_req -> result[w] = 0; goto done
  :: else -> skip
  fi;
  /* is_set() fast path */
  if
  :: ev & SET -> result[w] = 1; goto done
  :: else -> skip
  fi;
  /* wait_slow: if (deadline.expired()) return is_set(); */
  if
  :: IS_TIMED(w) -> result[w] = ((ev & SET) != 0); goto done
  :: true -> skip
  fi;
  node_alive[w] = 1;
  word[w] = 0;  /* WaitLoop::wait: Parker::prepare() */
  /* EventWaitOp::link -> WaitSource::link: WordAnnouncement::announce (the kSet check in the
     CAS that sets kWaiters), under the source's lock */
  wl_lock();
  s = ev;
  do
  :: s & SET ->
    wl_unlock();
    node_alive[w] = 0;
    result[w] = 1;
    goto done
  :: else ->
    cas(ev, s, s | WAITERS, ok);
    if
    :: ok -> break
    :: else -> skip
    fi
  od;
  skip;
  push_back(w);
  assert(((ev & WAITERS) != 0) == (count > 0));  /* P7 */
  wl_unlock();
  park(w);
  if
  :: outcome == WOKEN -> result[w] = 1
  :: else ->
    /* WaitLoop::wait, step 4: WaitSource::unlink */
    wl_lock();
    if
    :: linked[w] ->
      list_remove(w);
      if
      :: count == 0 -> d_step { ev = ev & (255 - WAITERS) }
      :: else -> skip
      fi
    :: else -> skip
    fi;
    assert(((ev & WAITERS) != 0) == (count > 0));  /* P7 */
    wl_unlock();
    /* Event::wait_slow: after a deadline round the loop tries once more (is_set()), then
       the next round reports timed_out; a cancelled round returns false */
    if
    :: outcome == TIMEDOUT -> result[w] = ((ev & SET) != 0)
    :: else -> result[w] = 0
    fi
  fi;
  assert(!linked[w]);
  assert(outcome == WOKEN || outcome == TIMEDOUT || !result[w]);  /* P3 */
  assert(!claimed[w] || waker_released[w]);       /* P4: the waker is done with the Event */
  node_alive[w] = 0;
done:
  /* P5 (13502): linked when the flag went up, and neither timed nor cancelled: true */
  assert(!linked_at_set[w] || IS_TIMED(w) || IS_CANCEL(w) || result[w]);
  /* a waiter that was claimed returns true (P3) */
  assert(!claimed[w] || result[w]);
  returned[w] = 1
}

/* Event::set, as of "claim first, publish last" (design.md I3): set_slow claims every linked
   waiter under the list lock and clears kWaiters, then publishes kSet with a CAS that fails if
   a waiter registered in between (kWaiters set again), in which case it claims that one too;
   the wakes come after the publication (the WakeBatch is destroyed at return). */
proctype Setter() {
  byte v, e, s, i, m, n, nb;
  bool ok;
  byte batch[NW];
  /* ghost: the waiters linked when set() is called (13502's "waiting at set()") */
  d_step {
    s = ev;
    i = 0;
    do
    :: i < NW -> linked_at_set[i] = linked[i]; i++
    :: else -> break
    od
  };
  /* Event::set fast path */
  do
  :: (s & WAITERS) == 0 ->
    if
    :: s & SET -> goto fin
    :: else ->
      cas(ev, s, s | SET, ok);
      if
      :: ok -> goto fin
      :: else -> skip
      fi
    fi
  :: else -> break
  od;
  /* set_slow */
  nb = 0;
  do
  :: true ->
    wl_lock();
    do
    :: claim_front(n, WOKEN);
      if
      :: n == 255 -> break
      :: else -> batch[nb] = n; nb++
      fi
    od;
    assert(count == 0);
    skip;
    d_step { ev = ev & (255 - WAITERS) };  /* list empty, under its lock */
    wl_unlock();
    s = ev;
    do
    :: (s & WAITERS) == 0 ->
      if
      :: s & SET -> goto published  /* raised by a concurrent set(): nothing to publish */
      :: else ->
        cas(ev, s, s | SET, ok);
        if
        :: ok -> goto published
        :: else -> skip
        fi
      fi
    :: else -> break  /* a waiter registered since the claims: claim it too */
    od
  od;
published:
  skip;  /* a jump target outside the d_step */
  /* the publication was set()'s last access to the Event */
  d_step {
    i = 0;
    do
    :: i < nb -> waker_released[batch[i]] = 1; i++
    :: else -> break
    od
  };
  /* WakeBatch::wake_all: reads the node (next, parker) before waking it */
  i = 0;
  do
  :: i < nb ->
    assert(node_alive[batch[i]]);  /* P4: the node still exists when read */
    wake(batch[i]);
    i++
  :: else -> break
  od;
fin:
  skip
}

proctype Clearer() {
  /* Event::clear: relaxed load, then fetch_and */
  if
  :: ev & SET -> d_step { ev = ev & (255 - SET) }
  :: else -> skip
  fi
}

/* ---- cancellation: std::stop_source::request_stop ---- */

proctype Canceller() {
  byte v, w;
  bool ok;
  /* request_stop: set the stop bit, then take each registered callback off the list and
     run it on this thread, one at a time */
  stop_req = 1;
  w = 0;
  do
  :: w < NW ->
    atomic {
      if
      :: cb_reg[w] -> cb_reg[w] = 0; cb_running[w] = 1
      :: else -> skip
      fi
    };
    if
    :: cb_running[w] ->
      abort_park(w, CANCELLED, ok);  /* Parker::cancel() */
      cb_running[w] = 0
    :: else -> skip
    fi;
    w++
  :: else -> break
  od
}

/* ---- the end: every waiter returned, nothing linked ---- */

/* At a global deadlock (spin's `timeout`), every waiter still blocked must have had no
   reason to be awake: that is what "no lost wake-up" means when an Event may be cleared
   before a late waiter arrives (that waiter rightly waits for good). */
proctype Monitor() {
  byte i;
  timeout ->
  i = 0;
  do
  :: i < NW ->
    if
    :: !returned[i] ->
      assert(!claimed[i] && !aborted[i]);  /* P1/P3: a decided park always ends */
      assert(!linked_at_set[i]);           /* P5: 13502 */
      assert(!(ev & SET));                 /* P3: blocked although the event is set */
    :: else -> skip
    fi;
    i++
  :: else -> break
  od
}

proctype Final() {
  byte i;
  i = 0;
  do
  :: i < NW ->
end_wait:
    (returned[i]);
    i++
  :: else -> break
  od;
  assert(count == 0);
  i = 0;
  do
  :: i < NW -> assert(!linked[i] && !node_alive[i] && !psleep[i]); i++
  :: else -> break
  od;
  assert((ev & WAITERS) == 0);
}

init {
  byte w;
  atomic {
    w = 0;
    do
    :: w < NW ->
      run EventWaiter(w);
      w++
    :: else -> break
    od;
    run Setter();
#if CLEARER
    run Clearer();
#endif
#if CANCEL
    run Canceller();
#endif
    run Final();
    run Monitor()
  }
}
