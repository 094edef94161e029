// SPDX-License-Identifier: MIT
// weft/detail/wait_source.hpp: WaitSource, the one kind of place where weft's threads wait.
//
// A WaitSource is a FIFO of WaitNodes (parker.hpp) under a small WordLock, plus its
// *announcement*: how a notifier learns, without taking the lock, whether anyone may be
// waiting. Every primitive's waiters live in WaitSources; the two announcements are
//
//   WordAnnouncement<W, Bit>  a bit of the primitive's own state word (Event, Lock,
//                             Semaphore). The source owns that word; the primitive's fast
//                             paths use the other bits. A registration sets the bit by a CAS
//                             that also checks the state, so a state change (an RMW on the
//                             same word) and a registration are totally ordered: either the
//                             notifier's RMW sees the bit and comes to claim, or the
//                             registration sees the new state and does not link.
//   FlagAnnouncement          a flag of its own, in the store-buffering (Dekker) handshake
//                             with the source's state, for sources whose state is not one
//                             word (a queue's storage, a Condition's user lock, a queue's
//                             task count):
//
//       notifier:  make the condition true (a seq_cst RMW, or under a lock the waiter takes too)
//                  then  flag.load(seq_cst)              -> false: nobody to wake
//       waiter:    link, flag.store(true, seq_cst)  (under the source's lock, in link())
//                  then  re-check the condition          -> true: unlink, retry
//
//     The re-check runs after the source's lock is released, because it may take another
//     lock (a locked storage's, a user's mutex) that a notifier holds while it claims.
//
//     In the single total order of seq_cst operations, either the waiter's re-check comes
//     after the notifier's change (and sees it), or the waiter's store comes before the
//     notifier's load (and the notifier comes to claim). Where the state is under a lock both
//     sides take, that lock orders them, and the argument goes through happens-before.
//
// Invariant (checked under the lock with WEFT_INVARIANT): the announcement is set iff the
// list is non-empty. Both change only under the source's lock. A claimed node is unlinked
// before its waiter is claimed, and woken (WakeBatch) only after the lock is released.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "weft/detail/check.hpp"
#include "weft/detail/parker.hpp"

namespace weft::detail {

// Where a registration goes: the back (arrival order), or the front, for a waiter that was
// woken, lost the race for what the wake-up announced to a running thread, and waits again
// (Lock, Semaphore: it keeps its place ahead of later arrivals).
enum class Position : std::uint8_t { back, front };

// What link() did.
enum class Link : std::uint8_t {
  linked,     // the node is in the list: the caller may park
  ready,      // the source was ready when checked: nothing was linked, retry the operation
  withdrawn,  // the re-check after linking found the source ready and the node was
              // unlinked again; a notifier may have claimed it in between, so the waiter
              // must settle() before it retries (the wait loop does)
};

// The announcement by a flag of its own; see the handshake above.
class FlagAnnouncement {
 public:
  bool maybe_waiting() const noexcept { return flag_.load(std::memory_order_seq_cst); }

 private:
  template <class>
  friend class WaitSource;

  // The re-check comes after link() released the source's lock (see the handshake above).
  static constexpr bool kRecheckAfterLink = true;
  void announce() noexcept { flag_.store(true, std::memory_order_seq_cst); }
  // relaxed: under the source's lock; a stale true only costs a notifier the lock.
  void retract() noexcept { flag_.store(false, std::memory_order_relaxed); }
  bool announced() const noexcept { return flag_.load(std::memory_order_relaxed); }

  Atomic<bool> flag_{false};
};

// The announcement by bit `Bit` of the state word `W`, which this announcement owns and the
// primitive shares (word()).
template <class W, W Bit>
class WordAnnouncement {
 public:
  static constexpr W kWaiters = Bit;

  explicit WordAnnouncement(W initial = 0) noexcept : word_(initial) {}
  Atomic<W>& word() noexcept { return word_; }
  const Atomic<W>& word() const noexcept { return word_; }
  bool maybe_waiting() const noexcept { return (word_.load(std::memory_order_relaxed) & Bit) != 0; }

 private:
  template <class>
  friend class WaitSource;

  // The state is checked by the CAS that announces (atomic with it), under the lock.
  static constexpr bool kRecheckAfterLink = false;
  // ready(state) says whether a waiter could proceed in that state. relaxed: the CAS is
  // ordered with the notifier's RMW by the word's modification order; a caller told "ready"
  // retries its operation, whose own atomic carries the acquire.
  template <class Ready>
  bool announce(Ready& ready) {
    W s = word_.load(std::memory_order_relaxed);
    for (;;) {
      if (ready(s)) return false;
      if (word_.compare_exchange_weak(s, s | Bit, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
  }
  // relaxed: under the source's lock, which publishes the list; the bit is ordered with the
  // primitive's RMWs by the word's modification order.
  void retract() noexcept { word_.fetch_and(static_cast<W>(~Bit), std::memory_order_relaxed); }
  bool announced() const noexcept { return (word_.load(std::memory_order_relaxed) & Bit) != 0; }

  Atomic<W> word_;
};

template <class Announcement>
class WaitSource {
 public:
  WaitSource() = default;
  template <class... Args>
  explicit WaitSource(Args&&... args) noexcept : announcement_(std::forward<Args>(args)...) {}

  Announcement& announcement() noexcept { return announcement_; }
  const Announcement& announcement() const noexcept { return announcement_; }

  // Links `node` (its waiter prepared by the caller) unless ready() says the caller could
  // proceed. A word announcement calls ready(state) in the CAS loop that announces, under
  // the source's lock (Link::ready: nothing was linked); a flag announcement links and
  // announces under the lock, then calls ready() after releasing it (Link::withdrawn: the
  // node was linked and is unlinked again).
  template <class Ready>
  Link link(WaitNode& node, Position pos, Ready&& ready) {
    if constexpr (Announcement::kRecheckAfterLink) {
      {
        WordLockGuard g(lock_);
        push(node, pos);
        announcement_.announce();
        check();
      }
      if (!ready()) return Link::linked;
      unlink(node);
      return Link::withdrawn;
    } else {
      WordLockGuard g(lock_);
      if (!announcement_.announce(ready)) {
        check();
        return Link::ready;
      }
      push(node, pos);
      check();
      return Link::linked;
    }
  }

  // Removes `node` if a notifier has not already taken it off.
  void unlink(WaitNode& node) noexcept {
    WordLockGuard g(lock_);
    if (node.linked) {
      list_.remove(node);
      if (list_.empty()) announcement_.retract();
    }
    check();
  }

  bool maybe_waiting() const noexcept { return announcement_.maybe_waiting(); }

  // Claims up to n waiters that are still waiting, oldest first, into `woken` (which wakes
  // them once the caller has made its last access to the primitive); returns how many.
  std::size_t claim(WakeBatch& woken, std::size_t n) noexcept {
    WordLockGuard g(lock_);
    return claim_locked(woken, n);
  }
  static constexpr std::size_t kAll = static_cast<std::size_t>(-1);
  // The same, when maybe_waiting() says someone may be there: on every queue operation's fast
  // path, where it costs one load and one test.
  void claim_one(WakeBatch& woken) noexcept {
    if (maybe_waiting()) [[unlikely]]
      claim_slow(woken, 1);
  }
  void claim_all(WakeBatch& woken) noexcept {
    if (maybe_waiting()) claim_slow(woken, kAll);
  }

  // For a primitive whose notifier changes its state under the source's lock (a queue's task
  // count; Lock's deferred wakes): the lock, and claim() for when it is held.
  WordLock& lock() noexcept { return lock_; }
  std::size_t claim_locked(WakeBatch& woken, std::size_t n) noexcept {
    std::size_t claimed = 0;
    for (; claimed < n; ++claimed) {
      WaitNode* w = list_.claim_front();
      if (w == nullptr) break;
      woken.add(w);
    }
    if (list_.empty() && announcement_.announced()) announcement_.retract();
    check();
    return claimed;
  }
  bool empty_locked() const noexcept { return list_.empty(); }

 private:
  void push(WaitNode& node, Position pos) noexcept {
    if (pos == Position::front) {
      list_.push_front(node);
    } else {
      list_.push_back(node);
    }
  }
  [[gnu::noinline]] std::size_t claim_slow(WakeBatch& woken, std::size_t n) noexcept {
    return claim(woken, n);
  }
  // Under lock_: the announcement is set iff the list is non-empty.
  void check() const noexcept {
    WEFT_INVARIANT(announcement_.announced() == !list_.empty(),
                   "a source announces waiters iff its list is non-empty");
  }

  Announcement announcement_;
  WordLock lock_;  // protects list_ and the announcement's transitions
  WaitList list_;
};

// The flag-announced source: a queue's getters, putters and joiners, a Condition's waiters.
using FlagSource = WaitSource<FlagAnnouncement>;

}  // namespace weft::detail
