// SPDX-License-Identifier: MIT
// weft/detail/parker.hpp: the waiting layer every blocking call of weft stands on.
//
// A blocked thread is a Parker (one per thread) plus one WaitNode per source it waits on
// (an Event, a Lock, a queue's "not empty" list...). Blocking is always
//
//     register   (link a WaitNode into the source's WaitList, under the source's lock)
//     park       (sleep on the Parker's word until claimed, the deadline, or a stop request)
//     unregister (unlink the nodes that are still linked)
//
// A waker never "signals a condition": it *claims* one specific waiter. Claiming is a CAS on
// the waiter's Parker word from "waiting" to a token naming the node that won; only one claim
// can ever succeed per park, which is what lets one Parker sit in several WaitLists at once
// (select) and be cancelled or time out without losing or duplicating a wake-up:
//
//  - A claim succeeds only while the waiter is still waiting; a waiter whose deadline passed
//    or whose stop_token fired aborts by the same CAS, so exactly one of {claim, timeout,
//    cancel} wins. A waker that loses the race moves on to the next node: nobody is woken who
//    was not waiting, and a wake-up is never spent on a thread that is leaving.
//  - Claim and wake are two steps. The claim happens under the source's lock (the node is
//    known to be alive while it is linked); the wake happens after the waker has released
//    that lock and touches only the Parker. A claimed waiter does not return until woken, so
//    the waker's last access to the primitive happens-before the woken thread returns, and
//    the woken thread may destroy the primitive at once (docs/api.md, Lifetime).
//  - Parkers come from a process-wide pool and are never freed, so the one access a waker
//    makes after the waiter may have returned (the futex_wake system call, on the Parker's
//    word) can at worst cause a spurious wake-up of a later park, which parks re-check.
//
// Word layout (Waiter::word_): bits 2.. hold the decision (Decision below; 0 while
// undecided), bit 1 SLEEPING (the owner is, or is about to be, in futex_wait: wakers must make
// the system call), bit 0 NOTIFIED (the decider is done with the primitive: the owner may
// return).
//
// Who wakes a claimed waiter is the Waiter's business: a thread's Parker sleeps on its word
// and is woken by a futex call; any other waiter (a coroutine's, handed to a scheduler)
// supplies its own wake step. The claim protocol is the same for both.
//
// Signals (SignalStopScope below): a thread that must run signal handlers while it is
// blocked (CPython's main thread) lends its Parker a std::stop_source. A signal handler that
// interrupts the Parker's kernel sleep then requests a stop on that source, and a wait that
// was given the source's token ends exactly as a cancelled one does: by the same abort CAS
// (a claim that came first wins and is honoured), having changed nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <stop_token>

#include "weft/detail/check.hpp"
#include "weft/detail/deadline.hpp"
#include "weft/detail/futex.hpp"
#include "weft/detail/probes.hpp"

#ifndef WEFT_DIAGNOSTICS
#define WEFT_DIAGNOSTICS 1
#endif

namespace weft::detail {

class Waiter;

// Diagnostics' switches (weft/diagnostics.hpp, detail/diag_hooks.hpp). relaxed everywhere: a
// primitive that misses a change only goes unrecorded.
inline constexpr std::uint32_t kDiagTrack = 1;  // record construction sites and Lock holders
inline constexpr std::uint32_t kDiagTrace = 2;  // record events, with who claimed whom
inline std::atomic<std::uint32_t> g_diag_flags{0};
// A claim, for diagnostics (who ended which wait) and the trace: the calling thread (the
// notifier) claimed `woken`.
void diag_claimed(const Waiter* woken) noexcept;

// How a park ended.
enum class Outcome : std::uint8_t {
  claimed,    // a notifier claimed one of the waiter's nodes (Decision::index says which)
  timed_out,  // the deadline passed first
  cancelled,  // the stop token fired first
};

// The decision stored in a Waiter's word: which of {a claim of node i, the deadline, a stop
// request} won the park. Encoded only here.
class Decision {
 public:
  static constexpr Decision claim(std::uint32_t node_index) noexcept {
    return Decision(kFirstClaim + node_index);
  }
  static constexpr Decision timed_out() noexcept { return Decision(kTimedOut); }
  static constexpr Decision cancelled() noexcept { return Decision(kCancelled); }

  constexpr Outcome outcome() const noexcept {
    if (code_ >= kFirstClaim) return Outcome::claimed;
    return code_ == kTimedOut ? Outcome::timed_out : Outcome::cancelled;
  }
  constexpr bool claimed() const noexcept { return code_ >= kFirstClaim; }
  // For a claim: the index of the node claimed (0 for a wait on one source; for select, the
  // operation's position).
  constexpr std::uint32_t index() const noexcept { return code_ - kFirstClaim; }
  constexpr std::uint32_t code() const noexcept { return code_; }
  static constexpr Decision from_code(std::uint32_t code) noexcept { return Decision(code); }

  friend bool operator==(Decision, Decision) = default;

 private:
  static constexpr std::uint32_t kUndecided = 0;
  static constexpr std::uint32_t kTimedOut = 1;
  static constexpr std::uint32_t kCancelled = 2;
  static constexpr std::uint32_t kFirstClaim = 3;
  constexpr explicit Decision(std::uint32_t code) noexcept : code_(code) {}
  std::uint32_t code_;
};

// One waiting party: a thread (Parker) or anything else that can be woken (a coroutine's
// awaiter, see `Waiter(WakeFn)`). Owned by the waiting side, which arms it with prepare()
// before registering anywhere.
class Waiter {
 public:
  // A custom wake step, called by wake() in place of the futex path, after the waker's last
  // access to the primitive. It must let the owner know when the waker is done with the
  // Waiter, as notify() does for threads (a coroutine's awaiter: its gate, async.hpp).
  using WakeFn = void (*)(Waiter&) noexcept;

  Waiter() noexcept = default;
  explicit Waiter(WakeFn wake_fn) noexcept : wake_fn_(wake_fn) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() = default;

  // Arms the waiter for a new wait. Only the owner calls it, before registering anywhere;
  // relaxed is enough because the node that carries this Waiter is published to wakers by
  // the source's lock, whose release orders this store before it.
  void prepare() noexcept { word_.store(0, std::memory_order_relaxed); }

  // Claims the waiter for node `index`. Called with the source's lock held, while the node
  // is linked. acq_rel: acquire pairs with prepare()/the owner's earlier writes seen through
  // the lock (harmless), release publishes what the claimer wrote before (e.g. a handed-off
  // item) to the owner, which reads the word with acquire.
  bool try_claim(std::uint32_t index) noexcept {
    const std::uint32_t token = Decision::claim(index).code() << kDecisionShift;
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    while (undecided(v)) {
      if (word_.compare_exchange_weak(v, token | (v & kSleeping), std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
        WEFT_PROBE1(claim, this);
#if WEFT_DIAGNOSTICS
        if (g_diag_flags.load(std::memory_order_relaxed) & (kDiagTrack | kDiagTrace)) [[unlikely]]
          diag_claimed(this);
#endif
        return true;
      }
    }
    return false;
  }

  // Second step after a successful try_claim, after the source's lock was released. The
  // owner may return (and free the WaitNode and the primitive) as soon as NOTIFIED is set.
  void wake() noexcept {
    if (wake_fn_ != nullptr) [[unlikely]] {
      wake_fn_(*this);
      return;
    }
    notify();
  }

  // Sets NOTIFIED (and makes the futex call a sleeping owner needs). release: everything the
  // waker did, including releasing the source's lock, happens before the owner's acquire
  // load that sees NOTIFIED.
  void notify() noexcept {
    const std::uint32_t v = word_.fetch_or(kNotified, std::memory_order_release);
    if (v & kSleeping) futex_wake_one(word_);
  }

  // Decides the wait as `d` (timed out or cancelled) from any thread, unless a claim or
  // another abort decided it first; true if this call decided it. An abort needs no second
  // step: nobody touches the primitive on its behalf, so it sets NOTIFIED itself.
  bool abort(Decision d) noexcept;

  // Aborts the park from another thread (a stop_callback). No-op once decided.
  void cancel() noexcept {
    abort(Decision::cancelled());
  }

  // Whether a claim, a timeout or a cancellation has decided the current park (for
  // diagnostics, from any thread: a waiter that is decided is about to return).
  bool decided() const noexcept {
    return !undecided(word_.load(std::memory_order_seq_cst));
  }

  // The decision, once NOTIFIED has been seen (acquire).
  bool notified() const noexcept {
    return (word_.load(std::memory_order_acquire) & kNotified) != 0;
  }
  Decision decision() const noexcept {
    return Decision::from_code(word_.load(std::memory_order_acquire) >> kDecisionShift);
  }

 protected:
  static constexpr std::uint32_t kNotified = 1;
  static constexpr std::uint32_t kSleeping = 2;
  static constexpr int kDecisionShift = 2;
  static constexpr bool undecided(std::uint32_t word) noexcept {
    return (word >> kDecisionShift) == 0;
  }

  Atomic<std::uint32_t> word_{0};

 private:
  WakeFn wake_fn_ = nullptr;  // null: a thread (Parker), woken through its word's futex
};

// A thread's Waiter: sleeps on its word in the kernel.
class Parker : public Waiter {
 public:
  // The calling thread's Parker (taken from the pool on first use, returned at thread exit).
  // May throw std::bad_alloc the first time a thread parks.
  static Parker& current();

  // Sleeps until claimed and woken, until `deadline`, or until `stop` is requested; returns
  // the decision. `stop` may be null.
  Decision park(Deadline deadline, const std::stop_token* stop) noexcept;

  // For an owner that registered but decides not to park after all (its re-check found the
  // condition true): ends the park. If a waker claimed it in the meantime, waits for that
  // waker's wake() first, so that the waker is done with the node before the owner reuses
  // or frees it. Returns the decision (timed_out if nobody claimed it).
  Decision settle() noexcept;

 private:
  Parker() noexcept = default;
  std::uint32_t wait_notified(Deadline deadline) noexcept;
  void interrupted() noexcept;

  Parker* next_free_ = nullptr;  // the pool's free list (guarded by the pool's mutex)
  // Stopped when a signal handler interrupts a sleep (SignalStopScope); owner thread only.
  std::stop_source* on_signal_ = nullptr;
  friend class ParkerPool;
  friend class SignalStopScope;
};

// While it lives, a signal handler that interrupts one of the calling thread's sleeps in a
// weft wait requests a stop on `source` (std::stop_source::request_stop, in this thread, after
// the handler returned). A wait given `source.get_token()` then ends as cancelled (a claim
// that won first is honoured instead) and changes nothing; the caller tells an interruption
// from a cancellation by its own bookkeeping, runs what it must (CPython's
// PyErr_CheckSignals), and waits again, with a source that is not stopped, toward the same
// deadline. Waits given another token or none go on sleeping; a WordLock never stops.
// Needs Linux futexes (the portable fallback never reports an interruption) and handlers
// installed without SA_RESTART. A signal that arrives while the thread is not yet asleep in
// the kernel (spinning, or between the caller's checks and the park) does not interrupt that
// wait. Scopes nest; each restores the previous source. May throw std::bad_alloc (the
// thread's first Parker).
class SignalStopScope {
 public:
  explicit SignalStopScope(std::stop_source& source)
      : parker_(Parker::current()), previous_(parker_.on_signal_) {
    parker_.on_signal_ = &source;
  }
  ~SignalStopScope() { parker_.on_signal_ = previous_; }
  SignalStopScope(const SignalStopScope&) = delete;
  SignalStopScope& operator=(const SignalStopScope&) = delete;

 private:
  Parker& parker_;
  std::stop_source* previous_;
};

// One registration of a Waiter in one source. Lives with the waiting party (a thread's
// stack); linked only under the source's lock.
struct WaitNode {
  Waiter* waiter = nullptr;
  std::uint32_t index = 0;  // passed to try_claim: which of the waiter's nodes won
  bool linked = false;
  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
};

// FIFO of WaitNodes. Not synchronized: the owning primitive's lock protects it.
class WaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  WaitNode* front() const noexcept { return head_; }

  void push_back(WaitNode& n) noexcept {
    WEFT_INVARIANT(!n.linked, "a node is linked in one list at a time");
    n.prev = tail_;
    n.next = nullptr;
    (tail_ ? tail_->next : head_) = &n;
    tail_ = &n;
    n.linked = true;
  }

  void push_front(WaitNode& n) noexcept {
    WEFT_INVARIANT(!n.linked, "a node is linked in one list at a time");
    n.prev = nullptr;
    n.next = head_;
    (head_ ? head_->prev : tail_) = &n;
    head_ = &n;
    n.linked = true;
  }

  void remove(WaitNode& n) noexcept {
    WEFT_INVARIANT(n.linked, "only a linked node is removed");
    (n.prev ? n.prev->next : head_) = n.next;
    (n.next ? n.next->prev : tail_) = n.prev;
    n.prev = n.next = nullptr;
    n.linked = false;
  }

  // Unlinks nodes from the front until one is claimed for its own token, and returns it
  // (nullptr when none could be). Nodes whose claim fails belong to waiters that already
  // left (timed out, cancelled) or were claimed by another source (select): they are
  // dropped here, and their owners find them unlinked.
  WaitNode* claim_front() noexcept {
    while (WaitNode* n = head_) {
      remove(*n);
      if (n->waiter->try_claim(n->index)) return n;
    }
    return nullptr;
  }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
};

// Claimed nodes waiting for their wake(). Declare it *before* the lock guard of the source
// so that it is destroyed, and the wakes happen, after the lock is released.
// On every queue operation's fast path, so an empty batch costs one store and one test:
// tail_ is meaningful only while head_ is set.
class WakeBatch {
 public:
  // tail_ stays uninitialized: see above.
  // NOLINTNEXTLINE(modernize-use-equals-default,cppcoreguidelines-pro-type-member-init)
  WakeBatch() noexcept {}
  WakeBatch(const WakeBatch&) = delete;
  WakeBatch& operator=(const WakeBatch&) = delete;
  ~WakeBatch() {
    if (head_ != nullptr) [[unlikely]]
      wake_all();
  }

  // g++ cannot see that tail_ is read only once head_ is set, and may warn where add() is
  // inlined: silenced here, for this function only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  void add(WaitNode* n) noexcept {
    n->next = nullptr;
    if (head_ == nullptr) {
      head_ = n;
    } else {
      tail_->next = n;
    }
    tail_ = n;
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  bool empty() const noexcept {
    return head_ == nullptr;
  }

  // Moves every node of `other` to the end of this batch (other is left empty).
  void take_from(WakeBatch& other) noexcept {
    if (other.head_ == nullptr) return;
    if (head_ == nullptr) {
      head_ = other.head_;
    } else {
      tail_->next = other.head_;
    }
    tail_ = other.tail_;
    other.head_ = nullptr;
  }

  // Takes `n` out of the batch without waking it; false if it is not there. Linear: for the
  // rare waiter that withdraws a wake-up deferred to a release (Lock::undefer).
  bool remove(const WaitNode* n) noexcept {
    WaitNode* prev = nullptr;
    for (WaitNode* c = head_; c != nullptr; prev = c, c = c->next) {
      if (c != n) continue;
      (prev != nullptr ? prev->next : head_) = c->next;
      if (tail_ == c) tail_ = prev;  // head_ was set, so tail_ is meaningful
      return true;
    }
    return false;
  }

  // Wakes in claim order (the longest-waiting first).
  void wake_all() noexcept {
    WaitNode* n = head_;
    head_ = nullptr;
    while (n) {
      // Read everything needed from the node first: after wake() its owner may return and
      // the node (on the owner's stack) is gone.
      WaitNode* next = n->next;
      Waiter* w = n->waiter;
      WEFT_INVARIANT(!n->linked, "a claimed node is unlinked before its wake");
      w->wake();
      n = next;
    }
  }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_;
};

// The small internal lock that guards a source's WaitList: a three-state futex mutex
// (free / locked / locked with sleepers) with a short spin. Held only for list surgery,
// never while a thread parks.
class WordLock {
 public:
  void lock() noexcept {
    std::uint32_t expected = 0;
    if (!state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      lock_slow();
    }
  }
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() noexcept {
    // Wake-up source for lock_slow's futex_wait: the exchange tells whether anyone sleeps.
    if (state_.exchange(0, std::memory_order_release) == 2) futex_wake_one(state_);
  }

 private:
  void lock_slow() noexcept;
  Atomic<std::uint32_t> state_{0};
};

// RAII guard for WordLock (std::lock_guard works too; this one is noexcept-clean).
class WordLockGuard {
 public:
  explicit WordLockGuard(WordLock& l) noexcept : l_(l) { l_.lock(); }
  ~WordLockGuard() { l_.unlock(); }
  WordLockGuard(const WordLockGuard&) = delete;
  WordLockGuard& operator=(const WordLockGuard&) = delete;

 private:
  WordLock& l_;
};

}  // namespace weft::detail
