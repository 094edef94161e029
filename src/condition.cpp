// SPDX-License-Identifier: MIT
// Condition: waiters_ is the FIFO of threads in wait(); has_waiters_ is true iff it is
// non-empty; both change only under list_lock_.
#include "weft/condition.hpp"

#include <stdexcept>

namespace weft {

using detail::Deadline;
using detail::Parker;
using detail::WaitNode;
using detail::WakeBatch;
using detail::WordLockGuard;

bool Condition::wait_slow(Deadline deadline, const std::stop_token* stop) {
  if (!is_owned()) throw std::logic_error("weft::Condition::wait: lock not held by the caller");
  if (stop != nullptr && stop->stop_requested()) return false;  // cancelled: nothing changes
  Parker& parker = Parker::current();
  parker.prepare();
  WaitNode node;
  node.parker = &parker;
  {
    WordLockGuard g(list_lock_);
    waiters_.push_back(node);
    has_waiters_.store(true, std::memory_order_relaxed);
  }
  // Registered before the user lock is released: a notify() that runs after the release sees
  // the node, so no notification can fall between "unlock" and "sleep".
  std::size_t depth = 0;
  if (rlock_) {
    depth = rlock_->release_all();
  } else {
    try {
      lock_->release();  // throws only if another thread released the Lock under us
    } catch (...) {
      {
        WordLockGuard g(list_lock_);
        if (node.linked) {
          waiters_.remove(node);
          if (waiters_.empty()) has_waiters_.store(false, std::memory_order_relaxed);
        }
      }
      parker.settle();
      throw;
    }
  }
  // Wake-up sources: notify() (claims the node), the deadline, a stop request.
  const std::uint32_t outcome = parker.park(deadline, stop);
  if (outcome != detail::kWoken) {
    WordLockGuard g(list_lock_);
    if (node.linked) {
      waiters_.remove(node);
      if (waiters_.empty()) has_waiters_.store(false, std::memory_order_relaxed);
    }
  }
  // Reacquired unconditionally, even when cancelled: the caller's scope owns the lock again.
  if (rlock_) {
    rlock_->restore(depth);
  } else {
    lock_->acquire();
  }
  return outcome == detail::kWoken;
}

void Condition::notify(std::size_t n) {
  if (!is_owned()) throw std::logic_error("weft::Condition::notify: lock not held by the caller");
  // relaxed: every waiter that matters registered while holding the user lock, which this
  // thread now holds, so the store of `true` happens-before this load. A stale `true` (the
  // waiter timed out) only costs taking list_lock_.
  if (n == 0 || !has_waiters_.load(std::memory_order_relaxed)) return;
  WakeBatch claimed;
  {
    WordLockGuard g(list_lock_);
    for (; n > 0; --n) {
      WaitNode* w = waiters_.claim_front();
      if (w == nullptr) break;
      claimed.add(w);
    }
    if (waiters_.empty()) has_waiters_.store(false, std::memory_order_relaxed);
  }
  // Wait morphing: the claimed waiters must take the lock before they can return, and the
  // caller holds it, so they are woken by the release that frees it (Lock::defer_wakes)
  // rather than now, to wake, find the lock held and sleep again on it.
  (rlock_ ? rlock_->lock_ : *lock_).defer_wakes(claimed);
}

}  // namespace weft
