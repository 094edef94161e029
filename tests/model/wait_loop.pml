/* SPDX-License-Identifier: MIT */
/*
 * tests/model/wait_loop.pml: a model of weft's one blocking loop, checked exhaustively by
 * spin (run.sh). parker.pml checks the layer below it (the Parker word's SLEEPING/NOTIFIED
 * futex protocol, the WordLock, stop_callback registration); this model abstracts that
 * layer to what the loop relies on (a decision CAS, NOTIFIED, park returning once NOTIFIED)
 * and checks the loop and the sources as the code is written:
 *
 *   WaitLoop::wait()                 include/weft/detail/wait_loop.hpp     inline wait_round
 *   WaitLoop::~WaitLoop (pass_on)    include/weft/detail/wait_loop.hpp     inline pass_on
 *   WaitSource::link/unlink/claim    include/weft/detail/wait_source.hpp   inline link, ...
 *     WordAnnouncement (the bit checked in the announcing CAS, under the source's lock)
 *     FlagAnnouncement (link + announce under the lock, re-check after unlocking)
 *   Waiter::try_claim/abort/wake, Parker::park/settle   parker.hpp, src/parker.cpp
 *   WaitList::claim_front, push_front (Position::front)  parker.hpp
 *   QueueWaitOp (getters of a queue, pass_on)       include/weft/detail/queue_core.hpp
 *   Select::run (two operations, claimed op first)  include/weft/select.hpp
 *   Lock::try_acquire/release/acquire_slow/release_slow/defer_wakes   lock.hpp, lock.cpp
 *   Condition::wait_slow/notify, ConditionWaitOp (before_park)   src/condition.cpp
 *
 * Each inline and proctype below names the C++ function it mirrors. Memory is sequentially
 * consistent here (Promela): the model checks the protocol's interleavings; the orderings
 * weaker than seq_cst are argued in the code beside each atomic and checked by TSAN and the
 * schedule explorer (tests/dsched).
 *
 * Sources: Q0, Q1 (flag-announced: a queue's getters, readiness items[q] > 0), LK (a Lock:
 * word-announced, state word st = LOCKED | WAITERS | DEFERRED) and CV (a Condition's
 * waiters: flag-announced, link() never finds it ready). Waiter thread w owns nodes 2w and
 * 2w + 1 (its operation 0 and 1 in a round).
 *
 * Properties:
 *   P1 at most one decision per round: the decision word leaves "undecided" once (a claim,
 *      the deadline or a stop request), by try_claim or abort (assert in both);
 *   P2 a claimed node is unlinked before its claim, and before its wake (assert in wake and
 *      at the end of the park: WEFT_INVARIANT "a claimed node is unlinked");
 *   P3 the announcement (flag or WAITERS bit) is set iff the list is non-empty, whenever a
 *      source's lock is released (WaitSource::check(), WEFT_INVARIANT);
 *   P4 mutual exclusion for the Lock (holders <= 1);
 *   P5 no lost wake-up: when no thread can move (Promela `timeout`), the Monitor asserts
 *      that every parked waiter is undecided (a claimed waiter is always woken), each of its
 *      nodes is still linked, and none of its sources is ready (a queue with items, a free
 *      Lock, a Condition whose predicate holds). It then lets the parked waiters go (as a
 *      shutdown would), so that spin's end-state check reports any thread stuck elsewhere;
 *   P6 Condition: the waiter returns holding the Lock, having seen the predicate unless it
 *      timed out or was cancelled.
 *   Not modelled: Condition::wait_slow's own checks before its round (a stop already
 *   requested returns false; an expired deadline releases and retakes the Lock), the queues'
 *   putters and joiners (the same FlagSource and loop), Semaphore and RLock (word sources and
 *   the loop, as the Lock).
 *
 * Configuration (-D on the spin command line; run.sh names the combinations):
 *   CONFIG   C_QUEUE (two getters on Q0, one producer, one item; a getter's retry after a
 *            claim may throw), C_SELECT (a selector over Q0 and Q1, a getter on Q1, a
 *            producer for each), C_LOCK (three threads acquire and release the Lock; thread 0 twice, so that it
 *            can beat a woken waiter, which re-registers in front),
 *            C_CONDITION (a Condition over the Lock: a waiter, a notifier, a third thread
 *            contending for the Lock)
 *   TIMED    bit mask of waiters whose deadline may pass at any point
 *   CANCEL   bit mask of waiters with a stop_token; a Canceller requests the stop
 *   THROWS   how many retries after a claim may throw (C_QUEUE, C_SELECT)
 *   LOCKER0_ROUNDS  C_LOCK: how many times thread 0 takes the Lock (default 2)
 *   Seeded bugs, for the negative controls (each must make spin report an error):
 *   BUG_NO_RECHECK   FlagAnnouncement: no re-check after link() (WaitSource::link)
 *   BUG_NO_PASS_ON   ~WaitLoop does not pass an unused claim on
 *   BUG_MORPH_LOST   release_slow does not take the wakes Condition::notify() deferred
 *   BUG_CLAIM_DECIDED=1  try_claim overrides a decided (timed-out/cancelled) round
 *   BUG_RELEASE_BLIND  release_slow frees the Lock with a fetch_and instead of a CAS on the
 *                    word it read: a waiter that registered after its claim round (WAITERS
 *                    set again) is left parked on a free Lock
 *   BUG_WORD_SPLIT_CHECK  WordAnnouncement: the readiness check is a load apart from the
 *                    RMW that sets the bit (a release between them is missed)
 */

#define C_QUEUE 1
#define C_SELECT 2
#define C_LOCK 3
#define C_CONDITION 4

#ifndef CONFIG
#define CONFIG C_QUEUE
#endif
#ifndef TIMED
#define TIMED 0
#endif
#ifndef CANCEL
#define CANCEL 0
#endif
#ifndef THROWS
#define THROWS 0
#endif
#ifndef BUG_CLAIM_DECIDED
#define BUG_CLAIM_DECIDED 0
#endif
#ifndef LOCKER0_ROUNDS
#define LOCKER0_ROUNDS 2
#endif
#define IS_TIMED(w) (((TIMED) >> (w)) & 1)
#define IS_CANCEL(w) (((CANCEL) >> (w)) & 1)

#define NWT 3   /* waiter threads */
#define NS 4    /* sources */
#define CAP 3   /* list capacity per source */
#define Q0 0
#define Q1 1
#define LK 2
#define CV 3

/* Decision codes (parker.hpp, Decision) */
#define UNDECIDED 0
#define D_TIMED_OUT 1
#define D_CANCELLED 2
#define D_FIRST_CLAIM 3
/* Link (wait_source.hpp) */
#define L_LINKED 0
#define L_READY 1
#define L_WITHDRAWN 2
/* RoundEnd (wait_loop.hpp); R_NONE while the round runs */
#define R_NONE 0
#define R_CLAIMED 1
#define R_READY 2
#define R_DEADLINE 3
#define R_TIMED_OUT 4
#define R_CANCELLED 5
#define ENDED(r) ((r) == R_TIMED_OUT || (r) == R_CANCELLED)
/* Lock state word (lock.hpp) */
#define LOCKED 1
#define WAITERS 2
#define DEFERRED 4
#define NONE 255

/* ---- shared state ---- */
byte dec[NWT];          /* Waiter::word_'s decision */
bool ntf[NWT];          /* Waiter::word_'s NOTIFIED */
bool in_park[NWT];      /* inside Parker::park */
bool park_cancellable[NWT];  /* ... with a stop_callback registered */
bool slk[NS];           /* each source's WordLock, as an atomic mutex (parker.pml checks it) */
byte lst[NS * CAP];     /* each source's WaitList (FIFO of node ids) */
byte cnt[NS];
bool linked[2 * NWT];   /* WaitNode::linked */
bool flag[NS];          /* FlagAnnouncement::flag_ (Q0, Q1, CV) */
byte st;                /* Lock's state word: LOCKED | WAITERS (its announcement) | DEFERRED */
byte deferred[2];       /* Lock::deferred_ (nodes Condition::notify() claimed) */
byte ndeferred;
byte items[2];          /* Q0's and Q1's stored items */
bool stop_req;          /* the stop_source shared by the cancellable waiters */
byte throws_left = THROWS;
bool pred;              /* C_CONDITION: the user's predicate, under the Lock */
bool quiesced;          /* set by the Monitor: parked waiters may go (P5) */

/* ---- ghost state ---- */
byte ndec[NWT];         /* successful decision CASes in the current round (P1) */
byte holders;           /* threads holding the Lock (P4) */
byte round_src[2 * NWT];  /* the source of each node in its waiter's current round */

#define W_OF(n) ((n) / 2)
#define IDX_OF(n) ((n) % 2)
#define ANN(s) ((s) == LK -> ((st & WAITERS) != 0) : flag[s])
/* For the Monitor (P5): could a waiter on s proceed? */
#define SRC_READY(s) ((s) == LK -> ((st & LOCKED) == 0) : ((s) == CV -> pred : (items[s] > 0)))

/* WordLockGuard on source s's lock; unlock checks WaitSource::check() (P3). */
inline slock(s) {
  atomic { !slk[s] -> slk[s] = 1 }
}
inline sunlock(s) {
  d_step {
    assert(ANN(s) == (cnt[s] > 0));  /* P3 */
    slk[s] = 0
  }
}

/* WaitList::push_back / push_front (under the source's lock); body of a d_step */
inline push(s, n, front) {
  assert(!linked[n]);
  if
  :: front ->
    i = cnt[s];
    do
    :: i > 0 -> lst[s * CAP + i] = lst[s * CAP + i - 1]; i--
    :: else -> break
    od;
    lst[s * CAP] = n
  :: else -> lst[s * CAP + cnt[s]] = n
  fi;
  cnt[s]++;
  linked[n] = 1;
  round_src[n] = s
}

/* WaitList::remove (under the source's lock); body of a d_step */
inline list_remove(s, n) {
  assert(linked[n]);
  i = 0;
  do
  :: lst[s * CAP + i] == n -> break
  :: else -> i++
  od;
  do
  :: i + 1 < cnt[s] -> lst[s * CAP + i] = lst[s * CAP + i + 1]; i++
  :: else -> break
  od;
  cnt[s]--;
  lst[s * CAP + cnt[s]] = 0;
  linked[n] = 0
}

/* WordAnnouncement::retract / FlagAnnouncement::retract; body of a d_step */
inline retract(s) {
  if
  :: s == LK -> st = st & ~WAITERS
  :: else -> flag[s] = 0
  fi
}

/* Waiter::abort(d): the CAS from undecided, setting NOTIFIED itself; body of a d_step */
inline abort_body(w, d) {
  if
  :: dec[w] == UNDECIDED ->
    assert(ndec[w] == 0);  /* P1 */
    ndec[w]++;
    dec[w] = d;
    ntf[w] = 1
  :: else -> skip
  fi
}

/* WaitList::claim_front + Waiter::try_claim, one node (under the source's lock): unlinks the
   front node and claims its waiter for that node's index; ok = 0 if the waiter was decided
   (the node is dropped, its owner finds it unlinked). */
inline claim_front_one(s, m, ok) {
  d_step {
    m = lst[s * CAP];
    list_remove(s, m);
    if
    :: dec[W_OF(m)] == UNDECIDED || BUG_CLAIM_DECIDED ->
      assert(ndec[W_OF(m)] == 0);  /* P1 */
      ndec[W_OF(m)]++;
      dec[W_OF(m)] = D_FIRST_CLAIM + IDX_OF(m);
      ok = 1
    :: else -> ok = 0
    fi
  }
}

/* WaitSource::claim_locked(woken, k): claims up to k live waiters into the local WakeBatch
   wb[0..nwb), then retracts the announcement if the list emptied. */
inline claim_locked(s, k) {
  c = 0;
  do
  :: c < k && cnt[s] > 0 ->
    claim_front_one(s, m, ok);
    if
    :: ok -> wb[nwb] = m; nwb++; c++
    :: else -> skip
    fi
  :: else -> break
  od;
  skip;  /* a jump target outside the d_step */
  d_step {
    if
    :: cnt[s] == 0 && ANN(s) -> retract(s)
    :: else -> skip
    fi
  }
}

/* WakeBatch::wake_all -> Waiter::wake -> notify(): NOTIFIED, after the source's lock */
inline wake_all() {
  do
  :: nwb > 0 ->
    nwb--;
    d_step {
      assert(!linked[wb[nwb]]);  /* P2: a claimed node is unlinked before its wake */
      assert(dec[W_OF(wb[nwb])] == D_FIRST_CLAIM + IDX_OF(wb[nwb]));
      ntf[W_OF(wb[nwb])] = 1;
      wb[nwb] = 0
    }
  :: else -> break
  od
}

/* WaitSource::unlink: removes node n if no notifier took it */
inline unlink(s, n) {
  slock(s);
  d_step {
    if
    :: linked[n] ->
      list_remove(s, n);
      if
      :: cnt[s] == 0 -> retract(s)
      :: else -> skip
      fi
    :: else -> skip
    fi
  };
  sunlock(s)
}

/* WaitSource::link(node, pos, ready), for the operation on source s; sets res */
inline link(s, n, front, res) {
  if
  :: s == LK ->
    /* WordAnnouncement::announce: the readiness check (the Lock is free:
       LockAcquireOp::link's lambda) and the WAITERS bit in one CAS, under the lock */
    slock(s);
#ifdef BUG_WORD_SPLIT_CHECK
    v = st;  /* the check, apart from the announcing RMW */
    if
    :: (v & LOCKED) == 0 -> res = L_READY
    :: else -> d_step { st = st | WAITERS; push(s, n, front); res = L_LINKED }
    fi;
#else
    d_step {
      if
      :: (st & LOCKED) == 0 -> res = L_READY
      :: else -> st = st | WAITERS; push(s, n, front); res = L_LINKED
      fi
    };
#endif
    sunlock(s)
  :: else ->
    /* FlagAnnouncement: push + announce (seq_cst store) under the lock ... */
    slock(s);
    d_step { push(s, n, front); flag[s] = 1 };
    sunlock(s);
    /* ... then ready() after releasing it (QueueWaitOp: pop_ready; ConditionWaitOp: false) */
#ifdef BUG_NO_RECHECK
    res = L_LINKED
#else
    if
    :: s != CV && items[s] > 0 -> unlink(s, n); res = L_WITHDRAWN
    :: else -> res = L_LINKED
    fi
#endif
  fi
}

/* Parker::park: the stop_callback runs at once if a stop was requested; then wait for
   NOTIFIED, or, while undecided, for the deadline (abort(timed_out)). Wake-up sources: a
   claimer's wake(), the Canceller's abort(cancelled), the deadline (and the Monitor's
   release, P5). */
inline park(w, tm, cn) {
  d_step {
    in_park[w] = 1;
    park_cancellable[w] = cn;
    if
    :: cn && stop_req -> abort_body(w, D_CANCELLED)
    :: else -> skip
    fi
  };
  do
  :: ntf[w] -> break
  :: d_step { tm && dec[w] == UNDECIDED -> abort_body(w, D_TIMED_OUT) }
  :: d_step { quiesced && dec[w] == UNDECIDED -> abort_body(w, D_CANCELLED) }
  od;
  in_park[w] = 0
}

/* Parker::settle: abort(timed_out), then wait for NOTIFIED (a claimer's wake) */
inline settle(w) {
  d_step { abort_body(w, D_TIMED_OUT) };
  ntf[w]
}

/* WaitLoop::wait(ops...) with nops (1 or 2) operations on sources s0, s1; bp: the operation
   has before_park (ConditionWaitOp: releases the user's Lock). Sets rend, ridx, and the
   loop's position (pos) and pass_on (passon: the source whose pass_on the destructor calls
   if the retry throws). */
inline wait_round(w, nops, s0, s1, bp, tm, cn) {
  passon = NONE;  /* pass_on_ = nullptr: the previous claim's retry did not throw */
  rend = R_NONE;
  ridx = 0;
  /* 1. the stop token, the deadline */
  if
  :: cn && stop_req -> rend = R_CANCELLED
  :: else ->
    if
    :: tm -> rend = R_TIMED_OUT  /* deadline_.expired() */
    :: true -> skip
    fi
  fi;
  if
  :: rend == R_NONE ->
    /* Parker::prepare() */
    d_step { dec[w] = UNDECIDED; ntf[w] = 0; ndec[w] = 0 };
    /* 2. link_all: one node per operation until one source is ready */
    nl = 0;
    link(s0, 2 * w, pos, last);
    if
    :: last == L_LINKED ->
      nl = 1;
      if
      :: nops == 2 ->
        link(s1, 2 * w + 1, pos, last);
        if
        :: last == L_LINKED -> nl = 2
        :: else -> skip
        fi
      :: else -> skip
      fi
    :: else -> skip
    fi;
    if
    :: nl < nops ->
      if
      :: nl == 0 && last == L_READY -> rend = R_READY  /* nothing was linked */
      :: else ->
        /* unlink_except(nodes, linked, N): the abandoned registrations */
        if
        :: nl >= 1 -> unlink(s0, 2 * w)
        :: else -> skip
        fi;
        /* a claim that raced them is honoured */
        settle(w);
        if
        :: dec[w] >= D_FIRST_CLAIM -> rend = R_CLAIMED; ridx = dec[w] - D_FIRST_CLAIM
        :: else -> rend = R_READY
        fi
      fi
    :: else ->
      if
      :: bp -> lock_release(w); released = 1  /* ConditionWaitOp::before_park */
      :: else -> skip
      fi;
      /* 3. park */
      park(w, tm, cn);
      if
      :: dec[w] >= D_FIRST_CLAIM ->
        rend = R_CLAIMED;
        ridx = dec[w] - D_FIRST_CLAIM;
        assert(ridx < nops);               /* a claim names one of this round's nodes */
        assert(!linked[2 * w + ridx])      /* P2: a claimed node is unlinked */
      :: dec[w] == D_CANCELLED -> rend = R_CANCELLED
      :: else -> rend = R_DEADLINE
      fi;
      /* 4. unlink_except(nodes, N, claimed index) */
      if
      :: !(rend == R_CLAIMED && ridx == 0) -> unlink(s0, 2 * w)
      :: else -> skip
      fi;
      if
      :: nops == 2 && !(rend == R_CLAIMED && ridx == 1) -> unlink(s1, 2 * w + 1)
      :: else -> skip
      fi
    fi;
    /* 5. claimed(): the claimed operation re-registers in front; its pass_on is remembered */
    if
    :: rend == R_CLAIMED ->
      pos = 1;
      passon = (ridx == 0 -> s0 : s1)
    :: else -> skip
    fi
  :: else -> skip
  fi
}

/* QueueWaitOp::pass_on -> WaitSource::claim_one, called by ~WaitLoop when the retry after a
   claim throws */
inline pass_on(q) {
#ifndef BUG_NO_PASS_ON
  if
  :: flag[q] ->
    slock(q);
    claim_locked(q, 1);
    sunlock(q);
    wake_all()
  :: else -> skip
  fi;
#endif
  skip
}

/* QueueCore::try_push -> Ring::try_push / LockedStorage::try_push: the state change (the
   ring's seq_cst CAS on tail_ reserving a slot; the locked storage's push, under its lock),
   then not_empty().claim_one(woken) (WaitSource::claim_one: the seq_cst flag load of the
   handshake), wake after. The ring publishes the item after the claim; a pop that finds the
   slot reserved waits for it, so here the item counts from the reservation. */
inline push_item(q) {
  d_step { items[q]++ };
  if
  :: flag[q] ->  /* maybe_waiting(): the seq_cst load of the handshake */
    slock(q);
    claim_locked(q, 1);
    sunlock(q);
    wake_all()
  :: else -> skip
  fi
}

/* QueueCore::try_pop (a PopTicket that finds an item): got = 1 if an item was taken */
inline try_pop(q, got) {
  d_step {
    if
    :: items[q] > 0 -> items[q]--; got = 1
    :: else -> got = 0
    fi
  }
}

/* The retry after a claim may throw (an item's move): the item stays, ~WaitLoop passes the
   claim on. threw = 1 when it did. */
inline maybe_throw(q, threw) {
  if
  :: passon != NONE && throws_left > 0 && items[q] > 0 ->
    d_step { throws_left--; threw = 1 };
    pass_on(passon)
  :: true -> skip
  fi
}

/* Lock::try_acquire (the CAS on the state word); got = 1 if taken */
inline try_acquire(got) {
  d_step {
    if
    :: (st & LOCKED) == 0 -> st = st | LOCKED; got = 1; holders++; assert(holders == 1)  /* P4 */
    :: else -> got = 0
    fi
  }
}

/* Lock::acquire -> Lock::acquire_slow: a WaitLoop of its own over LockAcquireOp */
inline lock_acquire(w, got, tm, cn) {
  pos = 0;  /* a new WaitLoop: Position::back */
  do
  :: try_acquire(got);
    if
    :: got -> break
    :: else -> skip
    fi;
    wait_round(w, 1, LK, LK, 0, tm, cn);
    if
    :: ENDED(rend) -> got = 0; break
    :: else -> skip
    fi
  od
}

/* Lock::release (fast CAS from exactly LOCKED) -> Lock::release_slow: take the deferred
   wakes, claim one waiter, then free the lock with a CAS that fails if WAITERS/DEFERRED
   changed; wake after the CAS. */
inline lock_release(w) {
  d_step { assert(holders == 1); holders-- };
  nwb = 0;
  d_step {
    if
    :: st == LOCKED -> st = 0; ok = 1
    :: else -> v = st; ok = 0
    fi
  };
  if
  :: !ok ->
    rclaimed = 0;
    do
    :: v & DEFERRED ->
      slock(LK);
      d_step {
#ifndef BUG_MORPH_LOST
        do
        :: ndeferred > 0 -> ndeferred--; wb[nwb] = deferred[ndeferred]; deferred[ndeferred] = 0; nwb++
        :: else -> break
        od;
#endif
        st = st & ~DEFERRED
      };
      sunlock(LK);
      v = st
    :: !(v & DEFERRED) && (v & WAITERS) && !rclaimed ->
      slock(LK);
      c0 = nwb;
      claim_locked(LK, 1);
      rclaimed = (nwb > c0);
      sunlock(LK);
      v = st
    :: else ->
      assert(v & LOCKED);
#ifdef BUG_RELEASE_BLIND
      d_step { st = st & ~LOCKED; ok = 1 };
#else
      d_step {
        if
        :: st == v -> st = v & ~LOCKED; ok = 1
        :: else -> v = st; ok = 0
        fi
      };
#endif
      if
      :: ok -> break
      :: else -> skip
      fi
    od;
    wake_all()
  :: else -> skip
  fi
}

/* ---- the Monitor (P5) ---- */
proctype Monitor() {
  byte w, k, n;
end_monitor:
  atomic {
      timeout ->
      w = 0;
      do
      :: w < NWT ->
        if
        :: in_park[w] && !ntf[w] ->
          assert(dec[w] == UNDECIDED);  /* a claimed waiter is always woken */
          k = 0;
          do
          :: k < 2 ->
            n = 2 * w + k;
            if
            :: round_src[n] != NONE ->
              assert(linked[n]);                      /* undecided: no notifier took it */
              assert(!SRC_READY(round_src[n]))         /* no lost wake-up */
            :: else -> skip
            fi;
            k++
          :: else -> break
          od
        :: else -> skip
        fi;
        w++
      :: else -> break
      od;
      quiesced = 1
  }
}

/* ---- C_QUEUE and C_SELECT ---- */

/* QueueCore::pop's blocking path (queue.hpp get -> QueueGetOp): try, wait, retry; a retry
   after a claim may throw */
proctype Getter(byte w; byte q) {
  byte rend, ridx, passon, last, nl, pos, i, m, c, c0, nwb, v;
  byte wb[2];
  bool ok, got, threw, rclaimed, released;
  pos = 0;  /* WaitLoop loop(deadline, stop) */
  do
  :: maybe_throw(q, threw);
    if
    :: threw -> break  /* the exception leaves get() */
    :: else -> skip
    fi;
    try_pop(q, got);
    if
    :: got -> break
    :: else -> skip
    fi;
    wait_round(w, 1, q, q, 0, IS_TIMED(w), IS_CANCEL(w));
    if
    :: ENDED(rend) -> break
    :: else -> skip
    fi
  od
}

/* Select::run over get(Q0) and get(Q1): each round tries the operations in a random order;
   after a claim, the claimed operation first */
proctype Selector(byte w) {
  byte rend, ridx, passon, last, nl, pos, i, m, c, c0, nwb, v;
  byte wb[2];
  bool ok, got, threw, rclaimed, released;
  pos = 0;
  do
  :: /* fair order: Q0 then Q1, or Q1 then Q0 */
    if
    :: try_pop(Q0, got);
      if
      :: !got -> try_pop(Q1, got)
      :: else -> skip
      fi
    :: try_pop(Q1, got);
      if
      :: !got -> try_pop(Q0, got)
      :: else -> skip
      fi
    fi;
    if
    :: got -> break
    :: else -> skip
    fi;
    wait_round(w, 2, Q0, Q1, 0, IS_TIMED(w), IS_CANCEL(w));
    if
    :: rend == R_CLAIMED ->
      /* fire<true>(r.index()): the claimed operation; it may throw */
      maybe_throw(passon, threw);
      if
      :: threw -> break
      :: else -> skip
      fi;
      try_pop(passon, got);
      if
      :: got -> break
      :: else -> skip
      fi
    :: ENDED(rend) -> break
    :: else -> skip
    fi
  od
}

proctype Producer(byte q) {
  byte i, m, c, nwb;
  byte wb[2];
  bool ok;
  push_item(q)
}

/* ---- C_LOCK ---- */

/* n times: acquire (timed/cancellable as configured), a critical section, release */
proctype Locker(byte w; byte n) {
  byte rend, ridx, passon, last, nl, pos, i, m, c, c0, nwb, v;
  byte wb[2];
  bool ok, got, rclaimed, released;
  do
  :: n > 0 ->
    n--;
    lock_acquire(w, got, IS_TIMED(w), IS_CANCEL(w));
    if
    :: got -> lock_release(w)
    :: else -> skip
    fi
  :: else -> break
  od
}

/* ---- C_CONDITION ---- */

/* with cv.lock: while (!pred) cv.wait(); (Condition::wait_slow: one round of the loop on CV
   whose before_park releases the Lock; then ConditionWaitOp::restore(): acquire again) */
proctype CondWaiter(byte w) {
  byte rend, ridx, passon, last, nl, pos, i, m, c, c0, nwb, v;
  byte wb[2];
  bool ok, got, rclaimed, released;
  lock_acquire(w, got, 0, 0);
  assert(got);
  do
  :: pred -> break
  :: else ->
    pos = 0;  /* WaitLoop loop(deadline, stop): one round */
    released = 0;
    wait_round(w, 1, CV, CV, 1, IS_TIMED(w), IS_CANCEL(w));
    /* restore(): reacquire the Lock if before_park released it */
    if
    :: released -> lock_acquire(w, got, 0, 0);  /* acquire_restore: untimed, uncancellable */
      assert(got)
    :: else -> skip  /* timed out or cancelled before registering: the lock was kept */
    fi;
    if
    :: ENDED(rend) || rend == R_DEADLINE -> break  /* wait() returned false */
    :: else -> skip
    fi
  od;
  assert(pred || ENDED(rend) || rend == R_DEADLINE);  /* P6 */
  lock_release(w)
}

/* with cv.lock: pred = true; cv.notify(1) (Condition::notify -> Lock::defer_wakes) */
proctype Notifier(byte w) {
  byte rend, ridx, passon, last, nl, pos, i, m, c, c0, nwb, v;
  byte wb[2];
  bool ok, got, rclaimed, released;
  lock_acquire(w, got, 0, 0);
  assert(got);
  pred = 1;
  nwb = 0;
  if
  :: flag[CV] ->
    slock(CV);
    claim_locked(CV, 1);
    sunlock(CV);
    /* Lock::defer_wakes(claimed) */
    if
    :: nwb > 0 ->
      slock(LK);
      d_step {
        v = st;
        st = st | DEFERRED;
        if
        :: v & LOCKED ->
          /* deferred_.take_from(claimed): the release that frees the lock wakes them */
          do
          :: nwb > 0 -> nwb--; deferred[ndeferred] = wb[nwb]; wb[nwb] = 0; ndeferred++
          :: else -> break
          od
        :: else ->
          do
          :: ndeferred > 0 -> ndeferred--; wb[nwb] = deferred[ndeferred]; deferred[ndeferred] = 0; nwb++
          :: else -> break
          od;
          st = st & ~DEFERRED
        fi
      };
      sunlock(LK);
      wake_all()
    :: else -> skip
    fi
  :: else -> skip
  fi;
  lock_release(w)
}

/* request_stop(): runs the registered stop_callbacks (Waiter::cancel -> abort(cancelled)) */
proctype Canceller() {
  byte w;
  d_step {
    stop_req = 1;
    w = 0;
    do
    :: w < NWT ->
      if
      :: park_cancellable[w] && in_park[w] -> abort_body(w, D_CANCELLED)
      :: else -> skip
      fi;
      w++
    :: else -> break
    od
  }
}

init {
  byte k;
  d_step {
    k = 0;
    do
    :: k < 2 * NWT -> round_src[k] = NONE; k++
    :: else -> break
    od
  };
  atomic {
    run Monitor();
#if CONFIG == C_QUEUE
    run Getter(0, Q0);
    run Getter(1, Q0);
    run Producer(Q0);
#elif CONFIG == C_SELECT
    run Selector(0);
    run Getter(1, Q1);
    run Producer(Q0);
    run Producer(Q1);
#elif CONFIG == C_LOCK
    run Locker(0, LOCKER0_ROUNDS);  /* a running thread that can beat a woken waiter */
    run Locker(1, 1);
    run Locker(2, 1);
#elif CONFIG == C_CONDITION
    run CondWaiter(0);
    run Notifier(1);
    run Locker(2, 1);
#endif
#if CANCEL != 0
    run Canceller();
#endif
  }
}
