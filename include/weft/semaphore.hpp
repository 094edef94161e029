// SPDX-License-Identifier: MIT
// weft/semaphore.hpp: weft::Semaphore and weft::BoundedSemaphore, Python's
// threading.Semaphore and threading.BoundedSemaphore.
//
// A counter of permits: acquire() takes one, blocking while there are none; release(n) adds
// n and wakes up to n waiters. BoundedSemaphore refuses (std::logic_error, nothing changed)
// a release that would raise the count past its initial value.
//
// Guarantees:
//  - Uncontended acquire/release are one atomic read-modify-write each: no lock, no system
//    call. release(n) wakes at most n waiters, and none when nobody waits.
//  - Not strictly FIFO: a running thread may take a permit before a woken waiter; a woken
//    waiter that loses the race goes back to the front of the queue.
//  - acquire(timeout) with timeout <= 0 only tries; duration::max() waits forever.
//  - release(0) throws std::invalid_argument (Python: ValueError).
//  - A stop request wakes acquire(..., stop_token), which returns false without a permit.
//
// Memory ordering: for threads X and Y, everything X did before release() happens-before
// everything Y does after an acquire() that took a permit released by X.
//
// ThreadSanitizer: a Semaphore is not a mutex to TSAN (no __tsan_mutex_* annotations, unlike
// Lock and RLock). A permit has no holder: it is as often given back by another thread (a
// signal, a hand-off) as by its taker, and TSAN's lock-order checker would then believe the
// taker holds it for ever and report inversions that cannot deadlock (a thread that waits
// for a signal with a Lock held, then takes that Lock again). What a permit carries is
// happens-before, and TSAN sees it with no annotation: the release's CAS (release) and the
// acquiring CAS (acquire) are instrumented atomics on one word. Explicit __tsan_release /
// __tsan_acquire calls would add nothing. Tests: tsan_annotations_test.cpp.
//
// Example:
//     weft::Semaphore slots(4);           // at most 4 concurrent downloads
//     slots.acquire(); download(url); slots.release();
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>

#include "weft/detail/deadline.hpp"
#include "weft/detail/diag_hooks.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/wait_loop.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft {

namespace detail {
struct SelectAccess;
class SemaphoreAcquireOp;
}  // namespace detail

class Semaphore {
 public:
  explicit Semaphore(std::size_t value = 1, SourceSite site = SourceSite::current());
  // A Semaphore that diagnostics call `name` (weft/diagnostics.hpp).
  Semaphore(std::size_t value, Name name, SourceSite site = SourceSite::current());
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() { detail::diag_destroyed(this); }

  bool acquire(bool blocking = true) {
    if (try_acquire()) return true;
    return blocking && acquire_slow(detail::Deadline::never(), nullptr);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return try_acquire() || acquire_slow(detail::Deadline::after(timeout), nullptr);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline) {
    return try_acquire() || acquire_slow(detail::Deadline::at(deadline), nullptr);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return try_acquire() || acquire_slow(detail::Deadline::at(deadline), &stop);
  }
  bool acquire(std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return try_acquire() || acquire_slow(detail::Deadline::never(), &stop);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return try_acquire() || acquire_slow(detail::Deadline::after(timeout), &stop);
  }

  // Throws std::invalid_argument for n == 0; for a BoundedSemaphore, std::logic_error (and
  // nothing changes) when the count would exceed the initial value.
  void release(std::size_t n = 1);

  // Permits available now (a snapshot; Python: Semaphore._value).
  std::size_t value() const noexcept {
    return static_cast<std::size_t>(state().load(std::memory_order_relaxed) >> kCountShift);
  }

 protected:
  enum class Bound : bool { none, initial };  // release() may exceed the initial value?
  Semaphore(std::size_t value, Bound bound);

 private:
  friend struct detail::SelectAccess;
  friend class detail::SemaphoreAcquireOp;

  // The state word = permits << 1 | kWaiters. One word, so that a release's RMW and a
  // waiter's registration are totally ordered (no lost wake-up); kWaiters is the waiters'
  // announcement (wait_source.hpp).
  static constexpr std::uint64_t kWaiters = 1;
  static constexpr int kCountShift = 1;
  static constexpr std::uint64_t kOne = std::uint64_t{1} << kCountShift;
  using Source = detail::WaitSource<detail::WordAnnouncement<std::uint64_t, kWaiters>>;

  detail::Atomic<std::uint64_t>& state() noexcept { return waiters_.announcement().word(); }
  const detail::Atomic<std::uint64_t>& state() const noexcept {
    return waiters_.announcement().word();
  }
  bool try_acquire() noexcept {
    std::uint64_t s = state().load(std::memory_order_relaxed);
    while (s >= kOne) {
      // acquire: pairs with release()'s release.
      if (state().compare_exchange_weak(s, s - kOne, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  bool acquire_slow(detail::Deadline deadline, const std::stop_token* stop);

  Source waiters_;       // threads in acquire(), oldest first; owns the state word
  std::uint64_t bound_;  // the most permits release() may create
  bool bounded_;
};

// A Semaphore whose release() refuses to exceed the initial value (also when called through
// a Semaphore&).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::size_t value = 1, SourceSite site = SourceSite::current())
      : Semaphore(value, Bound::initial) {
    detail::diag_constructed(this, detail::SourceKind::semaphore, site);
  }
  BoundedSemaphore(std::size_t value, Name name, SourceSite site = SourceSite::current())
      : Semaphore(value, Bound::initial) {
    detail::diag_named(this, detail::SourceKind::semaphore, name, site);
  }
};

namespace detail {

// Waiting for a permit (the wait loop's operation; select's too): registration announces
// the waiter in the word release() adds permits to, so one of the two sees the other.
class SemaphoreAcquireOp {
 public:
  explicit SemaphoreAcquireOp(Semaphore& s) noexcept : s_(&s) {}
  Link link(WaitNode& node, Position pos) {
    return s_->waiters_.link(node, pos, [](std::uint64_t st) { return st >= Semaphore::kOne; });
  }
  void unlink(WaitNode& node) noexcept { s_->waiters_.unlink(node); }
  WaitTarget target() const noexcept { return {SourceKind::semaphore, s_}; }

 protected:
  Semaphore* s_;
};

}  // namespace detail

}  // namespace weft
