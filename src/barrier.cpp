// Barrier: Python's state machine (filling -> draining -> filling; resetting and broken on
// the side), on a weft::Lock and a weft::Condition.
#include "weft/barrier.hpp"

#include <mutex>
#include <stdexcept>

#include "weft/errors.hpp"

namespace weft {

Barrier::Barrier(std::size_t parties, std::function<void()> action)
    : parties_(parties), action_(std::move(action)) {
  if (parties == 0) throw std::invalid_argument("weft::Barrier: parties must be at least 1");
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
  if (--count_ == 0 && (state_ == State::draining || state_ == State::resetting)) {
    state_ = State::filling;
    changed_.notify_all();
  }
}

void Barrier::break_barrier() {
  state_ = State::broken;
  changed_.notify_all();
}

std::size_t Barrier::wait_impl(std::optional<Timeout> timeout, const std::stop_token* stop) {
  const detail::Deadline deadline =
      timeout ? detail::Deadline::after(*timeout) : detail::Deadline::never();
  std::unique_lock<Lock> guard(lock_);
  // A previous cycle is still draining (or resetting): wait until it has left.
  while (state_ == State::draining || state_ == State::resetting) {
    if (stop != nullptr) {
      if (!changed_.wait(*stop)) throw Cancelled();  // no deadline: false means stopped
    } else {
      changed_.wait();
    }
  }
  if (state_ == State::broken) throw BrokenBarrierError();
  if (stop != nullptr && stop->stop_requested()) throw Cancelled();

  Arrival me;
  link(me);
  ++count_;
  if (count_ == parties_) {
    // Last arrival: number the cycle in arrival order, run the action, release everyone.
    std::size_t i = 0;
    for (Arrival* a = first_; a != nullptr; a = a->next) a->index = i++;
    try {
      if (action_) action_();
    } catch (...) {
      break_barrier();
      leave(me);
      throw;
    }
    state_ = State::draining;
    changed_.notify_all();
    leave(me);
    return me.index;
  }

  const auto released = [&] { return state_ != State::filling; };
  if (!changed_.wait_pred(released, deadline, stop)) {
    if (stop != nullptr && stop->stop_requested()) {
      // Withdraw as if never arrived: later arrivals take the freed place in the order.
      unlink(me);
      --count_;
      throw Cancelled();
    }
    break_barrier();
    leave(me);
    throw BrokenBarrierError();
  }
  if (state_ == State::broken || state_ == State::resetting) {
    leave(me);
    throw BrokenBarrierError();
  }
  leave(me);
  return me.index;
}

void Barrier::reset() {
  std::lock_guard<Lock> guard(lock_);
  if (count_ > 0) {
    if (state_ == State::filling || state_ == State::broken) state_ = State::resetting;
  } else {
    state_ = State::filling;
  }
  changed_.notify_all();
}

void Barrier::abort() {
  std::lock_guard<Lock> guard(lock_);
  break_barrier();
}

std::size_t Barrier::n_waiting() const {
  std::lock_guard<Lock> guard(lock_);
  return state_ == State::filling ? count_ : 0;
}

bool Barrier::broken() const {
  std::lock_guard<Lock> guard(lock_);
  return state_ == State::broken;
}

}  // namespace weft
