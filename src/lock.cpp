// SPDX-License-Identifier: MIT
// Lock and RLock slow paths. The waiters live in a WaitSource announced by kWaiters in the
// state word (wait_source.hpp); deferred_ and kDeferred change only under that source's lock.
#include "weft/lock.hpp"

#include <stdexcept>

#include "weft/detail/wait_loop.hpp"

namespace weft {

using detail::Deadline;
using detail::WaitLoop;
using detail::WakeBatch;
using detail::WordLockGuard;

namespace {
constexpr int kAcquireSpins = 64;
}

bool Lock::acquire_slow(Deadline deadline, const std::stop_token* stop, const void* rlock) {
  for (int i = 0; i < kAcquireSpins; ++i) {
    if (try_acquire()) return true;
    detail::cpu_relax();
  }
  detail::LockAcquireOp op = rlock == nullptr
                                 ? detail::LockAcquireOp(*this)
                                 : detail::LockAcquireOp(*this, detail::SourceKind::rlock, rlock);
  WaitLoop loop(deadline, stop);
  for (;;) {
    // A woken waiter competes again with running threads; if one of them wins, the loop
    // re-registers it at the front, so that it does not lose its place to later arrivals.
    if (try_acquire()) {
#if WEFT_HAVE_PROBES
      const detail::WaitTarget t = op.target();
      WEFT_PROBE2(acquire, static_cast<int>(t.kind), t.object);
#endif
      return true;
    }
    if (loop.wait(op).ended()) return false;  // timed out or cancelled
  }
}

// Claim first, publish last: the CAS that frees the lock is this call's final access to
// the Lock, so the next owner may destroy it at once (as with std::mutex). The CAS may free
// the lock only if a waiter was claimed (it will retry, or whoever beats it will release
// again) or none is registered; a waiter that registered after the claim phase found the list
// empty makes the CAS fail and is claimed in another round (tests/dsched, lock_timeout_race:
// freeing the lock under a fresh waiter would leave it parked on a free lock).
void Lock::release_slow(detail::SourceKind kind) {
  std::uint32_t s = state().load(std::memory_order_relaxed);
  if ((s & kLocked) == 0) throw std::logic_error("weft::Lock::release: lock is not locked");
  // Before the lock can be freed: the next holder may be recorded as soon as it is.
  if (s & kTracked) detail::diag_lock_released(this);
  WakeBatch woken;  // declared first: wakes after the CAS, touching only the Parkers
  bool claimed = false;
#if WEFT_HAVE_PROBES
  bool probed = false;  // the USDT release probe has fired (the CAS may fail and retry)
#else
  (void)kind;
#endif
  for (;;) {
    if (s & kDeferred) {
      // Waiters that Condition::notify() claimed while the lock was held: they wake with
      // the rest, after the CAS that frees the lock.
      WordLockGuard g(waiters_.lock());
      woken.take_from(deferred_);
      state().fetch_and(~kDeferred, std::memory_order_relaxed);
      s = state().load(std::memory_order_relaxed);
      continue;
    }
    if ((s & kWaiters) && !claimed) {
      claimed = waiters_.claim(woken, 1) != 0;
      s = state().load(std::memory_order_relaxed);
      continue;
    }
    // Another thread released it under us (a Lock has no owner): still wake the waiter we
    // claimed (it will retry), and report the misuse.
    if ((s & kLocked) == 0) throw std::logic_error("weft::Lock::release: lock is not locked");
      // Before the CAS: once the lock is free, the next holder may destroy it (the probe
      // passes the address only) and its own probes must come after this one.
#if WEFT_HAVE_PROBES
    if (!woken.empty() && !probed) {
      WEFT_PROBE2(release, static_cast<int>(kind), this);
      probed = true;
    }
#endif
    // release: publishes the critical section to the next acquirer.
    if (state().compare_exchange_weak(s, s & ~(kLocked | kTracked), std::memory_order_release,
                                      std::memory_order_relaxed)) {
      return;
    }
  }
}

// The decision is made inside one critical section of the source's lock, from the RMW's own
// result, and nothing but Parkers is touched after it: a release frees the lock only after
// taking deferred_ under that lock, so while deferred_ is non-empty outside it the Lock is
// held, and the release that frees it wakes them. (A notify() from a thread that does not
// hold the Lock, which Python allows, may find it already free: then nobody else will wake
// the waiters, and the WakeBatch does it after the unlock. Reading the state after the unlock
// instead would race with a woken waiter that destroys the Lock.)
void Lock::defer_wakes(WakeBatch& claimed) noexcept {
  if (claimed.empty()) return;
  WakeBatch woken;  // declared first: wakes after the guard unlocks, touching only Parkers
  WordLockGuard g(waiters_.lock());
  // relaxed: the source's lock publishes deferred_; the bit only has to be ordered with the
  // release's CAS on the same word, which the word's modification order does.
  if (state().fetch_or(kDeferred, std::memory_order_relaxed) & kLocked) {
    deferred_.take_from(claimed);  // the release that frees the lock fails its CAS on the bit
  } else {
    woken.take_from(claimed);
    woken.take_from(deferred_);
    state().fetch_and(~kDeferred, std::memory_order_relaxed);
  }
}

bool Lock::undefer(const detail::WaitNode& node) noexcept {
  // relaxed: a hint; a caller that misses a fresh kDeferred asks again (it waits in a loop).
  // Without the lock, a caller waiting for the deferral to happen spins on reads only.
  if ((state().load(std::memory_order_relaxed) & kDeferred) == 0) return false;
  WordLockGuard g(waiters_.lock());
  if (!deferred_.remove(&node)) return false;
  // relaxed: as in defer_wakes; kDeferred stays set iff deferred_ is non-empty.
  if (deferred_.empty()) state().fetch_and(~kDeferred, std::memory_order_relaxed);
  return true;
}

void RLock::release() {
  if (!is_owned()) throw std::logic_error("weft::RLock::release: lock not held by this thread");
  detail::tsan_unlocked(this);
  if (--count_ == 0) {
    detail::diag_released(this);
    owner_.store(nullptr, std::memory_order_relaxed);
    lock_.release(detail::SourceKind::rlock);
  }
}

std::size_t RLock::release_all() {
  const std::size_t depth = count_;
  detail::tsan_unlocked(this, true);
  count_ = 0;
  detail::diag_released(this);
  owner_.store(nullptr, std::memory_order_relaxed);
  lock_.release(detail::SourceKind::rlock);
  return depth;
}

void RLock::restore(std::size_t depth) {
  if (!lock_.try_acquire()) lock_.acquire_slow(Deadline::never(), nullptr, this);
  owner_.store(self(), std::memory_order_relaxed);
  count_ = depth;
  detail::tsan_locked(this, static_cast<int>(depth));
  detail::diag_acquired(this, detail::SourceKind::rlock);
}

}  // namespace weft
