// SPDX-License-Identifier: MIT
// Condition: waiters_ is the FIFO of threads in wait(), a flag-announced WaitSource whose
// handshake is ordered by the user's lock (both wait() and notify() hold it).
#include "weft/condition.hpp"

#include <stdexcept>

#include "weft/detail/wait_loop.hpp"

namespace weft {

using detail::Deadline;
using detail::WaitLoop;
using detail::WakeBatch;

namespace detail {

// The tables are built inside the members (the friends of Lock and RLock), as captureless
// lambdas, so they may use the locks' internals.
ConditionLock ConditionLock::of(Lock& l) noexcept {
  static constexpr Ops kOps{
      [](void* p, Deadline d) {
        Lock& lock = *static_cast<Lock*>(p);
        return lock.noted(lock.try_acquire() ||
                          (!(d == Deadline::poll()) && lock.acquire_slow(d, nullptr)));
      },
      [](void* p) { static_cast<Lock*>(p)->release(); },
      [](void* p) -> std::size_t {
        static_cast<Lock*>(p)->release();  // throws only if another thread released it under us
        return 1;
      },
      [](void* p, std::size_t) { static_cast<Lock*>(p)->acquire(); },
      [](void* p) noexcept -> Lock& { return *static_cast<Lock*>(p); },
  };
  return {&l, &kOps, false};
}

ConditionLock ConditionLock::of(RLock& l) noexcept {
  static constexpr Ops kOps{
      [](void* p, Deadline d) {
        RLock& r = *static_cast<RLock*>(p);
        if (r.reenter()) return true;
        Lock& lock = r.lock_;
        return r.adopt(lock.try_acquire() ||
                       (!(d == Deadline::poll()) && lock.acquire_slow(d, nullptr, &r)));
      },
      [](void* p) { static_cast<RLock*>(p)->release(); },
      [](void* p) { return static_cast<RLock*>(p)->release_all(); },
      [](void* p, std::size_t depth) { static_cast<RLock*>(p)->restore(depth); },
      [](void* p) noexcept -> Lock& { return static_cast<RLock*>(p)->lock_; },
  };
  return {&l, &kOps, true};
}

// One wait: registered before the user lock is released (before_park), so a notify() that
// runs after the release sees the node and no notification can fall between "unlock" and
// "sleep".
class ConditionWaitOp {
 public:
  ConditionWaitOp(Condition& c, WaitTarget as) noexcept
      : c_(c), as_(as.object != nullptr ? as : WaitTarget{SourceKind::condition, &c}) {}
  Link link(WaitNode& node, Position) {
    return c_.waiters_.link(node, Position::back, [] { return false; });  // FIFO, always waits
  }
  void unlink(WaitNode& node) noexcept { c_.waiters_.unlink(node); }
  void before_park() {
    saved_ = c_.lock_.release_save();
    released_ = true;
  }
  WaitTarget target() const noexcept { return as_; }
  // A notify() that claimed this waiter while its release of the user's lock threw (another
  // thread had released that Lock under it): the notification goes to the next waiter, woken
  // now, since the lock it would have been deferred to is in no known state.
  void pass_on() noexcept {
    WakeBatch woken;  // wakes on return, after the source's lock is released
    c_.waiters_.claim(woken, 1);
  }

  // Reacquired unconditionally once released, even when cancelled: the caller's scope owns
  // the lock again.
  void restore() const {
    if (released_) c_.lock_.acquire_restore(saved_);
  }

 private:
  Condition& c_;
  WaitTarget as_;  // what diagnostics report this wait as
  std::size_t saved_ = 0;
  bool released_ = false;
};

}  // namespace detail

bool Condition::wait_slow(Deadline deadline, const std::stop_token* stop, detail::WaitTarget as) {
  if (!is_owned()) throw std::logic_error("weft::Condition::wait: lock not held by the caller");
  if (stop != nullptr && stop->stop_requested()) return false;  // cancelled: nothing changes
  if (deadline.expired()) {
    // As Python: the lock is released and taken again, and the wait reports a timeout.
    lock_.acquire_restore(lock_.release_save());
    return false;
  }
  detail::ConditionWaitOp op(*this, as);
  bool notified = false;
  {
    // One round: a claim is the notification; anything else ends the wait.
    WaitLoop loop(deadline, stop);
    try {
      notified = loop.wait(op).claimed();
    } catch (...) {
      op.restore();  // weft::Deadlock thrown after the lock was released: the caller owns it
      throw;
    }
  }
  op.restore();
  return notified;
}

void Condition::notify(std::size_t n) {
  if (!is_owned()) throw std::logic_error("weft::Condition::notify: lock not held by the caller");
  // Every waiter that matters registered while holding the user lock, which this thread now
  // holds, so its announcement is visible here. A stale one (the waiter timed out) only
  // costs taking the source's lock.
  if (n == 0 || !waiters_.maybe_waiting()) return;
  WakeBatch claimed;
  waiters_.claim(claimed, n);
  // Wait morphing: the claimed waiters must take the lock before they can return, and the
  // caller holds it, so they are woken by the release that frees it (Lock::defer_wakes)
  // rather than now, to wake, find the lock held and sleep again on it.
  lock_.base().defer_wakes(claimed);
}

}  // namespace weft
