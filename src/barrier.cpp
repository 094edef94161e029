// SPDX-License-Identifier: MIT
// Barrier: Python's state machine (filling -> draining -> filling; resetting and broken on
// the side), on a weft::Lock and a weft::Condition.
#include "weft/barrier.hpp"

#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "weft/errors.hpp"

namespace weft {

namespace {

// The barrier whose action runs on this thread (lock_ held), if any. The action may destroy
// the frame of a coroutine waiting on that same barrier: its async_abandon() then already
// holds lock_, and must not wait for it.
thread_local const Barrier* t_in_action = nullptr;

// Runs the action, with t_in_action naming the barrier meanwhile (restored on the way out:
// an action may wait on another barrier, whose action runs here too).
void run_action(const Barrier* b, const std::function<void()>& action) {
  struct Scope {
    explicit Scope(const Barrier* b) noexcept : prev(std::exchange(t_in_action, b)) {}
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() { t_in_action = prev; }
    const Barrier* prev;
  } scope(b);
  action();
}

}  // namespace

Barrier::Barrier(std::size_t parties, std::function<void()> action, SourceSite site)
    : parties_(parties), action_(std::move(action)) {
  if (parties == 0) throw std::invalid_argument("weft::Barrier: parties must be at least 1");
  detail::diag_constructed(this, detail::SourceKind::barrier, site);
}

Barrier::Barrier(std::size_t parties, Name name, std::function<void()> action, SourceSite site)
    : parties_(parties), action_(std::move(action)) {
  if (parties == 0) throw std::invalid_argument("weft::Barrier: parties must be at least 1");
  detail::diag_named(this, detail::SourceKind::barrier, name, site);
}

void Barrier::link(Arrival& a) noexcept {
  a.prev = last_;
  a.next = nullptr;
  (last_ ? last_->next : first_) = &a;
  last_ = &a;
}

void Barrier::unlink(Arrival& a) noexcept {
  (a.prev ? a.prev->next : first_) = a.next;
  (a.next ? a.next->prev : last_) = a.prev;
  a.prev = a.next = nullptr;
}

// The caller leaves the cycle; the last one out of a draining or resetting barrier reopens it.
void Barrier::leave(Arrival& a) {
  unlink(a);
  count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  const State s = state_.load(std::memory_order_relaxed);
  if (count_.load(std::memory_order_relaxed) == 0 &&
      (s == State::draining || s == State::resetting)) {
    state_.store(State::filling, std::memory_order_relaxed);
    changed_.notify_all();
  }
}

void Barrier::break_barrier() {
  state_.store(State::broken, std::memory_order_relaxed);
  changed_.notify_all();
}

std::size_t Barrier::wait_impl(std::optional<Timeout> timeout, const std::stop_token* stop) {
  std::unique_lock<Lock> guard(lock_);
  // A previous cycle is still draining (or resetting): wait until it has left. (As in
  // Python, the timeout starts only once this thread has arrived.)
  while (state() == State::draining || state() == State::resetting) {
    if (stop != nullptr) {
      // no deadline: false means stopped
      if (!changed_.wait_slow(detail::Deadline::never(), stop, diag_target())) throw Cancelled();
    } else {
      changed_.wait_slow(detail::Deadline::never(), nullptr, diag_target());
    }
  }
  if (state() == State::broken) throw BrokenBarrierError();
  if (stop != nullptr && stop->stop_requested()) throw Cancelled();

  const detail::Deadline deadline =
      timeout ? detail::Deadline::after(*timeout) : detail::Deadline::never();
  Arrival me;
  link(me);
  count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (count_.load(std::memory_order_relaxed) == parties_) {
    // Last arrival: number the cycle in arrival order, run the action, release everyone.
    std::size_t i = 0;
    for (Arrival* a = first_; a != nullptr; a = a->next) a->index = i++;
    try {
      if (action_) run_action(this, action_);
    } catch (...) {
      break_barrier();
      leave(me);
      throw;
    }
    state_.store(State::draining, std::memory_order_relaxed);
    changed_.notify_all();
    leave(me);
    return me.index;
  }

  const auto released = [&] { return state() != State::filling; };
  bool in_time;
  try {
    in_time = changed_.wait_pred(released, deadline, stop, diag_target());
  } catch (...) {
    // Only the first Condition::wait can throw (std::bad_alloc: this thread's first park
    // allocates its Parker), before it releases lock_: nothing changed since we arrived, so
    // withdraw as if never arrived rather than leave `me` linked with our frame gone.
    unlink(me);
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    throw;
  }
  if (!in_time) {
    if (stop != nullptr && stop->stop_requested()) {
      // Withdraw as if never arrived: later arrivals take the freed place in the order.
      unlink(me);
      count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      throw Cancelled();
    }
    break_barrier();
    leave(me);
    throw BrokenBarrierError();
  }
  if (state() == State::broken || state() == State::resetting) {
    leave(me);
    throw BrokenBarrierError();
  }
  leave(me);
  return me.index;
}

bool Barrier::async_step(AsyncArrival& a, bool stopped, detail::Deadline& wait_deadline) {
  if (!a.arrived) {
    // wait_impl's steps up to the arrival.
    if (state() == State::draining || state() == State::resetting) {
      if (stopped) throw Cancelled();
      wait_deadline = detail::Deadline::never();
      return false;
    }
    if (state() == State::broken) throw BrokenBarrierError();
    if (stopped) throw Cancelled();
    a.deadline = a.timeout ? detail::Deadline::after(*a.timeout) : detail::Deadline::never();
    link(a.me);
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    a.arrived = true;
    if (count_.load(std::memory_order_relaxed) == parties_) {
      std::size_t i = 0;
      for (Arrival* x = first_; x != nullptr; x = x->next) x->index = i++;
      a.arrived = false;  // it leaves below, whatever happens
      try {
        if (action_) run_action(this, action_);
      } catch (...) {
        break_barrier();
        leave(a.me);
        throw;
      }
      state_.store(State::draining, std::memory_order_relaxed);
      changed_.notify_all();
      leave(a.me);
      return true;
    }
  }
  // wait_pred's loop over `state() != filling`, one turn per call.
  if (state() == State::filling) {
    if (!a.deadline.expired() && !stopped) {
      wait_deadline = a.deadline;
      return false;
    }
    a.arrived = false;
    if (stopped) {
      unlink(a.me);  // withdrawn as if never arrived
      count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      throw Cancelled();
    }
    break_barrier();
    leave(a.me);
    throw BrokenBarrierError();
  }
  a.arrived = false;
  const bool broken = state() == State::broken || state() == State::resetting;
  leave(a.me);  // the last one out of a reset reopens the barrier
  if (broken) throw BrokenBarrierError();
  return true;
}

void Barrier::async_abandon(AsyncArrival& a) noexcept {
  if (!a.arrived) return;
  // Inside this barrier's action, on the thread running it: lock_ is held here already.
  const bool in_action = t_in_action == this;
  // Wake-up source: the release by the barrier's current holder (lock_ is held only for a
  // step of some wait, reset(), abort(), or the action): spin, then yield.
  for (int i = 0; !in_action && !lock_.try_lock(); ++i) {
    if (i < 64) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  a.arrived = false;
  if (state() == State::filling) {
    unlink(a.me);
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  } else {
    try {
      leave(a.me);  // notify_all holds the lock it needs: cannot throw here
    } catch (...) {
    }
  }
  if (in_action) return;  // the action's caller releases it
  try {
    lock_.release();
  } catch (...) {  // held by this call
  }
}

void Barrier::reset() {
  std::lock_guard<Lock> guard(lock_);
  if (count_.load(std::memory_order_relaxed) > 0) {
    if (state() == State::filling || state() == State::broken) {
      state_.store(State::resetting, std::memory_order_relaxed);
    }
  } else {
    state_.store(State::filling, std::memory_order_relaxed);
  }
  changed_.notify_all();
}

void Barrier::abort() {
  std::lock_guard<Lock> guard(lock_);
  break_barrier();
}

std::size_t Barrier::n_waiting() const {
  return state() == State::filling ? count_.load(std::memory_order_relaxed) : 0;
}

bool Barrier::broken() const {
  return state() == State::broken;
}

}  // namespace weft
