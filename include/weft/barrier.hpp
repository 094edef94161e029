// SPDX-License-Identifier: MIT
// weft/barrier.hpp: weft::Barrier, Python's threading.Barrier.
//
// A reusable rendezvous for a fixed number of threads (parties): each calls wait(), and when
// the last arrives, one of them runs the optional action and all are released. wait()
// returns an index in 0..parties-1, distinct per thread within a cycle: the arrival order,
// the last arrival (which runs the action) getting parties-1.
//
// Guarantees (Python's semantics):
//  - abort() breaks the barrier: current and future waiters throw BrokenBarrierError until
//    reset(). reset() while threads wait breaks the cycle for them (BrokenBarrierError) and
//    makes the barrier usable again once they have left.
//  - A wait that times out (its own timeout, or the default given at construction) breaks
//    the barrier and throws BrokenBarrierError, as do the other waiters.
//  - If the action throws, the thread that ran it gets that exception, the barrier breaks,
//    and the others get BrokenBarrierError.
//  - wait(..., stop_token): a stop request before the barrier trips withdraws the caller as
//    if it had never arrived (the others keep waiting; indices stay distinct) and throws
//    weft::Cancelled. Once the barrier has tripped the call returns its index as usual.
//  - Barrier(0) throws std::invalid_argument.
//
// Memory ordering: everything each party did before wait() happens-before the action, and
// the action and everything before wait() in every party happens-before every party's return.
//
// Example:
//     weft::Barrier step(workers, [] { swap_buffers(); });
//     for (;;) { compute(part); step.wait(); }
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stop_token>

#include "weft/condition.hpp"
#include "weft/detail/atomic.hpp"
#include "weft/detail/deadline.hpp"
#include "weft/detail/diag_hooks.hpp"
#include "weft/lock.hpp"

namespace weft {

namespace detail {
struct AsyncAccess;
}

class Barrier {
 public:
  explicit Barrier(std::size_t parties, std::function<void()> action = {},
                   SourceSite site = SourceSite::current());
  template <class Rep, class Period>
  Barrier(std::size_t parties, std::function<void()> action,
          std::chrono::duration<Rep, Period> default_timeout,
          SourceSite site = SourceSite::current())
      : Barrier(parties, std::move(action), site) {
    default_timeout_ = Timeout(default_timeout);
  }
  // Barrier(n, nullptr): no action (std::function's nullptr), not a null name.
  Barrier(std::size_t parties, std::nullptr_t, SourceSite site = SourceSite::current())
      : Barrier(parties, std::function<void()>{}, site) {}
  // A Barrier that diagnostics call `name` (weft/diagnostics.hpp): a thread in wait() is
  // reported as waiting on it.
  Barrier(std::size_t parties, Name name, std::function<void()> action = {},
          SourceSite site = SourceSite::current());
  template <class Rep, class Period>
  Barrier(std::size_t parties, Name name, std::function<void()> action,
          std::chrono::duration<Rep, Period> default_timeout,
          SourceSite site = SourceSite::current())
      : Barrier(parties, name, std::move(action), site) {
    default_timeout_ = Timeout(default_timeout);
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier() { detail::diag_destroyed(this); }

  std::size_t wait() { return wait_impl(default_timeout_, nullptr); }
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_impl(Timeout(timeout), nullptr);
  }
  std::size_t wait(std::stop_token stop) { return wait_impl(default_timeout_, &stop); }
  template <class Rep, class Period>
  std::size_t wait(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return wait_impl(Timeout(timeout), &stop);
  }

  void reset();
  void abort();
  std::size_t parties() const noexcept { return parties_; }
  std::size_t n_waiting() const;
  bool broken() const;

 private:
  friend struct detail::AsyncAccess;

  // Relative timeouts are kept exact in any rep (long double nanoseconds holds
  // duration::max() of every standard duration) and turned into a Deadline at each wait().
  using Timeout = std::chrono::duration<long double, std::nano>;
  enum class State { filling, draining, resetting, broken };
  struct Arrival {
    std::size_t index = 0;
    Arrival* next = nullptr;
    Arrival* prev = nullptr;
  };

  std::size_t wait_impl(std::optional<Timeout> timeout, const std::stop_token* stop);
  // What diagnostics report a wait on changed_ as: this Barrier.
  detail::WaitTarget diag_target() const noexcept { return {detail::SourceKind::barrier, this}; }

  // A coroutine's wait (async.hpp), as wait_impl's steps between its Condition waits.
  struct AsyncArrival {
    Arrival me;
    std::optional<Timeout> timeout;  // from arrival on
    detail::Deadline deadline = detail::Deadline::never();
    bool arrived = false;  // linked in this cycle and counted
  };
  // With lock_ held: true when the wait is over (the index in a.me.index; or it throws as
  // wait() does), false to wait on changed_ until `wait_deadline`. `stopped`: the stop token
  // was requested by the time of the call.
  bool async_step(AsyncArrival& a, bool stopped, detail::Deadline& wait_deadline);
  // Without lock_: the coroutine is gone (its frame destroyed, or its resumption dropped)
  // before the wait was over. Withdraws an arrival of a cycle that has not tripped (as a
  // cancelled wait does), leaves one that has.
  void async_abandon(AsyncArrival& a) noexcept;
  State state() const noexcept { return state_.load(std::memory_order_relaxed); }
  void link(Arrival& a) noexcept;
  void unlink(Arrival& a) noexcept;
  void leave(Arrival& a);
  void break_barrier();

  const std::size_t parties_;
  std::function<void()> action_;
  std::optional<Timeout> default_timeout_;

  Lock lock_;                 // protects everything below (writes to state_ and count_ too)
  Condition changed_{lock_};  // notified on every state change and when the last one leaves
  // Written under lock_, read without it by n_waiting()/broken(), which Python lets the
  // action call while the barrier's lock is held; relaxed: they are snapshots.
  detail::Atomic<State> state_{State::filling};
  detail::Atomic<std::size_t> count_{0};  // threads inside wait() of the current cycle
  Arrival* first_ = nullptr;              // arrivals of the filling cycle, oldest first
  Arrival* last_ = nullptr;
};

}  // namespace weft
