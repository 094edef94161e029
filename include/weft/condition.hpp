// SPDX-License-Identifier: MIT
// weft/condition.hpp: weft::Condition, Python's threading.Condition.
//
// A Condition pairs a lock (a Lock or an RLock; by default one it owns, an RLock, as Python
// does) with a FIFO of waiting threads. wait() releases the lock, sleeps until notified, and
// reacquires it; notify(n) wakes the n threads that have waited longest.
//
// Requires: wait*() and notify*() are called with the lock held (RLock: owned by the caller;
// Lock: locked), else std::logic_error and nothing changes.
//
// Guarantees:
//  - notify(n) wakes exactly min(n, waiting) threads, oldest first; a waiter that has timed
//    out or been cancelled is never counted as woken.
//  - wait() on an RLock held k times releases it fully and reacquires it k times.
//  - notify() with nobody waiting is an ownership check and one relaxed load: no system call.
//  - wait(timeout) with timeout <= 0 releases and reacquires the lock without sleeping, and
//    returns false (as Python).
//  - A notified thread may destroy the Condition once it holds the lock again.
//  - A stop request wakes wait(..., stop_token), which reacquires the lock and returns false.
//
// Memory ordering: the lock orders everything; a notified waiter's return happens-after the
// notifier's release of the lock.
//
// Example:
//     weft::Condition cv;                 // owns an RLock
//     std::deque<Job> jobs;
//     // consumer
//     { std::unique_lock g(cv); cv.wait_for([&] { return !jobs.empty(); }); take(jobs); }
//     // producer
//     { std::unique_lock g(cv); jobs.push_back(j); cv.notify(); }
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stop_token>

#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/lock.hpp"

namespace weft {

class Condition {
 public:
  Condition() : owned_(std::make_unique<RLock>()), rlock_(owned_.get()) {}
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  explicit Condition(RLock& lock) noexcept : rlock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition() = default;

  // The underlying lock, forwarded.
  bool acquire(bool blocking = true) {
    return rlock_ ? rlock_->acquire(blocking) : lock_->acquire(blocking);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return rlock_ ? rlock_->acquire(timeout) : lock_->acquire(timeout);
  }
  void release() { rlock_ ? rlock_->release() : lock_->release(); }
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return acquire(false); }

  bool wait() { return wait_slow(detail::Deadline::never(), nullptr); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_slow(detail::Deadline::after(timeout), nullptr);
  }
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return wait_slow(detail::Deadline::at(deadline), nullptr);
  }
  bool wait(std::stop_token stop) { return wait_slow(detail::Deadline::never(), &stop); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return wait_slow(detail::Deadline::after(timeout), &stop);
  }
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop) {
    return wait_slow(detail::Deadline::at(deadline), &stop);
  }

  // Waits until pred() is true; returns pred()'s last value (false only on timeout/stop).
  template <class Pred>
  bool wait_for(Pred pred) {
    return wait_pred(std::move(pred), detail::Deadline::never(), nullptr);
  }
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    return wait_pred(std::move(pred), detail::Deadline::after(timeout), nullptr);
  }
  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred pred, std::chrono::time_point<Clock, Duration> deadline) {
    return wait_pred(std::move(pred), detail::Deadline::at(deadline), nullptr);
  }
  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred pred, std::chrono::time_point<Clock, Duration> deadline,
                  std::stop_token stop) {
    return wait_pred(std::move(pred), detail::Deadline::at(deadline), &stop);
  }
  template <class Pred>
  bool wait_for(Pred pred, std::stop_token stop) {
    return wait_pred(std::move(pred), detail::Deadline::never(), &stop);
  }
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return wait_pred(std::move(pred), detail::Deadline::after(timeout), &stop);
  }

  void notify(std::size_t n = 1);
  void notify_all() { notify(static_cast<std::size_t>(-1)); }

 private:
  friend class Barrier;

  bool is_owned() const noexcept { return rlock_ ? rlock_->is_owned() : lock_->locked(); }
  bool wait_slow(detail::Deadline deadline, const std::stop_token* stop);

  template <class Pred>
  bool wait_pred(Pred pred, detail::Deadline deadline, const std::stop_token* stop) {
    bool result = pred();
    while (!result) {
      if (deadline.expired() || (stop && stop->stop_requested())) break;
      wait_slow(deadline, stop);
      result = pred();
    }
    return result;
  }

  std::unique_ptr<RLock> owned_;  // the default Condition's own RLock
  Lock* lock_ = nullptr;          // exactly one of lock_ / rlock_ is set
  RLock* rlock_ = nullptr;
  // Set while waiters_ may be non-empty; read by notify() without list_lock_. Waiters are
  // added only by threads holding the user lock, and notify() holds it too, so a waiter added
  // before notify() is visible to it (ordered by the user lock); see notify().
  detail::Atomic<bool> has_waiters_{false};
  detail::WordLock list_lock_;  // protects waiters_ and has_waiters_ transitions
  detail::WaitList waiters_;    // FIFO: notify wakes from the front
};

}  // namespace weft
