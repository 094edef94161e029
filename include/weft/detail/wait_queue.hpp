// SPDX-License-Identifier: MIT
// weft/detail/wait_queue.hpp: a list of parked threads waiting for one condition of a
// source (a queue's "not empty", "not full", "all tasks done"), with a fast "anyone there?"
// check for the notifier.
//
// The notifier's fast path is one seq_cst load of `waiting_`. That is enough to never miss a
// waiter, provided both sides follow the store-buffering (Dekker) handshake:
//
//     notifier:  make the condition true (a seq_cst RMW, or under the source's mutex)
//                then  waiting_.load(seq_cst)          -> false: nobody to wake
//     waiter:    link(node): waiting_.store(true, seq_cst)
//                then  re-check the condition (a seq_cst load, or under the source's mutex)
//                      -> true: unlink and retry, do not park
//
// In the single total order of seq_cst operations, either the waiter's re-check comes after
// the notifier's change (and sees it), or the waiter's store comes before the notifier's load
// (and the notifier wakes it). Where the source uses a mutex instead of seq_cst atomics, the
// mutex orders the two critical sections, and the same argument goes through happens-before.
#pragma once

#include <atomic>
#include <cstddef>

#include "weft/detail/parker.hpp"

namespace weft::detail {

class WaitQueue {
 public:
  // Registers `node` (its parker prepared by the caller).
  void link(WaitNode& node) noexcept {
    WordLockGuard g(lock_);
    list_.push_back(node);
    waiting_.store(true, std::memory_order_seq_cst);  // see the handshake above
  }

  // Removes `node` if a notifier has not already taken it off.
  void unlink(WaitNode& node) noexcept {
    WordLockGuard g(lock_);
    if (!node.linked) return;
    list_.remove(node);
    if (list_.empty()) waiting_.store(false, std::memory_order_relaxed);
  }

  bool has_waiters() const noexcept { return waiting_.load(std::memory_order_seq_cst); }

  // Claims the longest-waiting thread that is still waiting, if any, into `woken`; the
  // caller wakes it (WakeBatch) once it has made its last access to the source, so that the
  // woken thread may destroy the source at once.
  void claim_one(WakeBatch& woken) noexcept {
    if (has_waiters()) claim_slow(woken, 1);
  }
  void claim_all(WakeBatch& woken) noexcept {
    if (has_waiters()) claim_slow(woken, static_cast<std::size_t>(-1));
  }

 private:
  [[gnu::noinline]] void claim_slow(WakeBatch& woken, std::size_t n) noexcept {
    WordLockGuard g(lock_);
    for (; n > 0; --n) {
      WaitNode* w = list_.claim_front();
      if (w == nullptr) break;
      woken.add(w);
    }
    if (list_.empty()) waiting_.store(false, std::memory_order_relaxed);
  }

  // true iff list_ may be non-empty; set with seq_cst (handshake), cleared under lock_ (a
  // stale true only costs a notifier taking lock_).
  Atomic<bool> waiting_{false};
  WordLock lock_;  // protects list_
  WaitList list_;
};

}  // namespace weft::detail
