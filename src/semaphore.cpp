// SPDX-License-Identifier: MIT
// Semaphore slow paths. Invariant: kWaiters is set iff waiters_ is non-empty, and both
// change only under list_lock_.
#include "weft/semaphore.hpp"

#include <limits>
#include <stdexcept>

namespace weft {

using detail::Deadline;
using detail::Parker;
using detail::WaitNode;
using detail::WakeBatch;
using detail::WordLockGuard;

namespace {
constexpr std::uint64_t kMaxPermits = std::numeric_limits<std::uint64_t>::max() >> 1;
constexpr int kAcquireSpins = 32;
}  // namespace

Semaphore::Semaphore(std::size_t value) : Semaphore(value, false) {}

Semaphore::Semaphore(std::size_t value, bool bounded)
    : state_(std::uint64_t{value} << kCountShift),
      bound_(bounded ? std::uint64_t{value} : kMaxPermits),
      bounded_(bounded) {
  if (value > kMaxPermits) throw std::invalid_argument("weft::Semaphore: value too large");
}

bool Semaphore::acquire_slow(Deadline deadline, const std::stop_token* stop) {
  for (int i = 0; i < kAcquireSpins; ++i) {
    if (try_acquire()) return true;
    detail::cpu_relax();
  }
  if (deadline.expired()) return try_acquire();
  Parker& parker = Parker::current();
  bool requeue = false;
  for (;;) {
    parker.prepare();
    WaitNode node;
    node.parker = &parker;
    {
      WordLockGuard g(list_lock_);
      std::uint64_t s = state_.load(std::memory_order_relaxed);
      for (;;) {
        if (s >= kOne) {
          if (state_.compare_exchange_weak(s, s - kOne, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
            return true;
          }
          continue;
        }
        // No permit: announce the waiter in the same word release() adds permits to.
        if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
          break;
        }
      }
      if (requeue) {
        waiters_.push_front(node);
      } else {
        waiters_.push_back(node);
      }
    }
    // Wake-up sources: release() (claims up to n nodes), the deadline, a stop request.
    const std::uint32_t outcome = parker.park(deadline, stop);
    if (outcome == detail::kWoken) {
      if (try_acquire()) return true;
      // A running thread took the permit first; that is not a missed wake-up (the permit
      // was consumed). Queue again at the front.
      requeue = true;
      if (deadline.expired()) return false;
      continue;
    }
    WordLockGuard g(list_lock_);
    if (node.linked) {
      waiters_.remove(node);
      if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
    }
    return false;
  }
}

// Claim first, publish last: the CAS that adds the permits is this call's final access to
// the Semaphore, so a thread that takes one (even one that timed out and retried) may destroy
// it at once. Up to n waiters are claimed before the permits appear; a waiter that registers
// in between sets kWaiters, which makes the CAS fail until it is claimed too (or n are).
void Semaphore::release(std::size_t n) {
  if (n == 0) throw std::invalid_argument("weft::Semaphore::release: n must be one or more");
  WakeBatch woken;  // declared first: wakes after the CAS, touching only Parkers
  std::size_t claimed = 0;
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t count = s >> kCountShift;
    if (n > bound_ || count > bound_ - n) {
      // Claimed waiters (if a concurrent release raced us past the bound) are still woken,
      // and retry; the count is unchanged.
      if (bounded_) {
        throw std::logic_error("weft::BoundedSemaphore::release: released too many times");
      }
      throw std::overflow_error("weft::Semaphore::release: count would overflow");
    }
    if ((s & kWaiters) && claimed < n) {
      WordLockGuard g(list_lock_);
      for (; claimed < n; ++claimed) {
        WaitNode* w = waiters_.claim_front();
        if (w == nullptr) break;
        woken.add(w);
      }
      if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
      s = state_.load(std::memory_order_relaxed);
      if ((s & kWaiters) && claimed < n) continue;  // registered since: claim it too
    }
    // release: publishes the releaser's writes to the thread that takes the permit.
    if (state_.compare_exchange_weak(s, s + (std::uint64_t{n} << kCountShift),
                                     std::memory_order_release, std::memory_order_relaxed)) {
      return;
    }
  }
}

bool Semaphore::register_waiter(WaitNode& node) noexcept {
  WordLockGuard g(list_lock_);
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s >= kOne) return false;
    if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  waiters_.push_back(node);
  return true;
}

void Semaphore::unregister_waiter(WaitNode& node) noexcept {
  WordLockGuard g(list_lock_);
  if (!node.linked) return;
  waiters_.remove(node);
  if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
}

}  // namespace weft
