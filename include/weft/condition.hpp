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
#include "weft/detail/diag_hooks.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/wait_source.hpp"
#include "weft/lock.hpp"

namespace weft {

namespace detail {

class ConditionWaitOp;
struct AsyncAccess;

// The user's lock of a Condition, a Lock or an RLock, behind one small table of what
// Condition needs from it.
struct ConditionLock {
  struct Ops {
    bool (*acquire)(void* lock, Deadline deadline);
    void (*release)(void* lock);
    std::size_t (*release_save)(void* lock);  // releases fully; returns what restore needs
    void (*acquire_restore)(void* lock, std::size_t saved);
    Lock& (*base)(void* lock) noexcept;  // the Lock whose release wakes notified waiters
  };
  void* lock;
  const Ops* ops;
  // Whether `lock` is an RLock (else a Lock). is_owned() runs on notify()'s fast path, so it
  // tests the kind inline: a call through the table there costs about 1 ns of the 5 an idle
  // notify takes (`weft_bench run cond_notify_idle weft`).
  bool recursive;

  static ConditionLock of(Lock& l) noexcept;
  static ConditionLock of(RLock& l) noexcept;

  bool acquire(Deadline d) const { return ops->acquire(lock, d); }
  void release() const { ops->release(lock); }
  bool is_owned() const noexcept {
    return recursive ? static_cast<const RLock*>(lock)->is_owned()
                     : static_cast<const Lock*>(lock)->locked();
  }
  std::size_t release_save() const { return ops->release_save(lock); }
  void acquire_restore(std::size_t saved) const { ops->acquire_restore(lock, saved); }
  Lock& base() const noexcept { return ops->base(lock); }
};

}  // namespace detail

class Condition {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a default constructor in practice.
  Condition(SourceSite site = SourceSite::current())
      : owned_(std::make_unique<RLock>(site)), lock_(detail::ConditionLock::of(*owned_)) {
    detail::diag_constructed(this, detail::SourceKind::condition, site);
  }
  explicit Condition(Lock& lock, SourceSite site = SourceSite::current()) noexcept
      : lock_(detail::ConditionLock::of(lock)) {
    detail::diag_constructed(this, detail::SourceKind::condition, site);
  }
  explicit Condition(RLock& lock, SourceSite site = SourceSite::current()) noexcept
      : lock_(detail::ConditionLock::of(lock)) {
    detail::diag_constructed(this, detail::SourceKind::condition, site);
  }
  // A Condition that diagnostics call `name` (weft/diagnostics.hpp), over its own RLock or
  // the given lock.
  explicit Condition(Name name, SourceSite site = SourceSite::current())
      : owned_(std::make_unique<RLock>(site)), lock_(detail::ConditionLock::of(*owned_)) {
    detail::diag_named(this, detail::SourceKind::condition, name, site);
  }
  Condition(Lock& lock, Name name, SourceSite site = SourceSite::current()) noexcept
      : lock_(detail::ConditionLock::of(lock)) {
    detail::diag_named(this, detail::SourceKind::condition, name, site);
  }
  Condition(RLock& lock, Name name, SourceSite site = SourceSite::current()) noexcept
      : lock_(detail::ConditionLock::of(lock)) {
    detail::diag_named(this, detail::SourceKind::condition, name, site);
  }
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition() { detail::diag_destroyed(this); }

  // The underlying lock, forwarded.
  bool acquire(bool blocking = true) {
    return lock_.acquire(blocking ? detail::Deadline::never() : detail::Deadline::poll());
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return lock_.acquire(detail::Deadline::after(timeout));
  }
  void release() { lock_.release(); }
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
  friend class detail::ConditionWaitOp;
  friend struct detail::AsyncAccess;

  bool is_owned() const noexcept { return lock_.is_owned(); }
  // `as`: what diagnostics report the wait as, when not as this Condition's (a Barrier's
  // waits are the Barrier's); the default (no object) is this Condition.
  bool wait_slow(detail::Deadline deadline, const std::stop_token* stop,
                 detail::WaitTarget as = {});

  template <class Pred>
  bool wait_pred(Pred pred, detail::Deadline deadline, const std::stop_token* stop,
                 detail::WaitTarget as = {}) {
    bool result = pred();
    while (!result) {
      if (deadline.expired() || (stop && stop->stop_requested())) break;
      wait_slow(deadline, stop, as);
      result = pred();
    }
    return result;
  }

  std::unique_ptr<RLock> owned_;  // the default Condition's own RLock
  detail::ConditionLock lock_;    // the user's lock (owned_, or the one given)
  // Threads in wait(), oldest first: notify wakes from the front. Waiters register while
  // holding the user lock and notify() holds it too, so the lock orders them (the flag
  // handshake's "under a lock both sides take").
  detail::FlagSource waiters_;
};

}  // namespace weft
