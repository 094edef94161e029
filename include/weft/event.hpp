// SPDX-License-Identifier: MIT
// weft/event.hpp: weft::Event, Python's threading.Event.
//
// An Event is a flag that threads wait on: set() raises it and wakes every thread waiting
// at that moment, clear() lowers it, wait() blocks until it is raised.
//
// Guarantees:
//  - A thread that is waiting when set() is called returns true, even if clear() runs before
//    it is scheduled (CPython issue 13502): set() claims each waiter it wakes.
//  - is_set(), set() and clear() with nobody waiting, and wait() on a set event are a few
//    atomic instructions: no lock, no allocation, no system call.
//  - wait() with a timeout <= 0 polls; duration::max() waits forever; deadlines are measured
//    on the monotonic clock.
//  - A thread woken by set() may destroy the Event at once: set() touches no member of the
//    Event after the wake. Destroying an Event while threads wait on it is undefined.
//  - With a std::stop_token, a stop request wakes the waiter, which returns false.
//
// Memory ordering: for threads X and Y, if X calls set() and Y's wait() (or is_set()) then
// returns true because of it, everything X did before set() happens-before what Y does after.
//
// Example:
//     weft::Event ready;
//     std::jthread worker([&] { load_config(); ready.set(); });
//     if (!ready.wait(2s)) throw std::runtime_error("config not ready");
#pragma once

#include <atomic>
#include <chrono>
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
class EventWaitOp;
}  // namespace detail

class Event {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a default constructor in practice.
  Event(SourceSite site = SourceSite::current()) noexcept {
    detail::diag_constructed(this, detail::SourceKind::event, site);
  }
  // An Event that diagnostics call `name` (weft/diagnostics.hpp).
  explicit Event(Name name, SourceSite site = SourceSite::current()) noexcept {
    detail::diag_named(this, detail::SourceKind::event, name, site);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { detail::diag_destroyed(this); }

  bool is_set() const noexcept { return (state().load(std::memory_order_acquire) & kSet) != 0; }

  void set() noexcept {
    std::uint32_t s = state().load(std::memory_order_relaxed);
    while ((s & kWaiters) == 0) {
      // Already set with nobody waiting: nothing to publish that a waiter could rely on
      // (no waiter can be woken by this call), so no write is needed.
      if (s & kSet) return;
      // release: publishes the setter's writes to whoever observes the flag with acquire.
      if (state().compare_exchange_weak(s, s | kSet, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        return;
      }
    }
    set_slow();
  }

  void clear() noexcept {
    // relaxed: clearing publishes nothing; waiters never return because the flag is clear.
    if (state().load(std::memory_order_relaxed) & kSet) {
      state().fetch_and(~kSet, std::memory_order_relaxed);
    }
  }

  bool wait() { return is_set() || wait_slow(detail::Deadline::never(), nullptr); }

  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return is_set() || wait_slow(detail::Deadline::after(timeout), nullptr);
  }

  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return is_set() || wait_slow(detail::Deadline::at(deadline), nullptr);
  }

  // Cancellable forms: a stop request (also one made before the call) returns false.
  bool wait(std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return is_set() || wait_slow(detail::Deadline::never(), &stop);
  }

  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return is_set() || wait_slow(detail::Deadline::after(timeout), &stop);
  }

  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop) {
    if (stop.stop_requested()) return false;
    return is_set() || wait_slow(detail::Deadline::at(deadline), &stop);
  }

 private:
  friend struct detail::SelectAccess;
  friend class detail::EventWaitOp;

  static constexpr std::uint32_t kSet = 1;
  // The waiters' announcement: set while the list is non-empty, changed only under the
  // source's lock, so a setter that sees it clear knows no waiter is linked or linking.
  static constexpr std::uint32_t kWaiters = 2;
  using Source = detail::WaitSource<detail::WordAnnouncement<std::uint32_t, kWaiters>>;

  detail::Atomic<std::uint32_t>& state() noexcept { return waiters_.announcement().word(); }
  const detail::Atomic<std::uint32_t>& state() const noexcept {
    return waiters_.announcement().word();
  }
  bool wait_slow(detail::Deadline deadline, const std::stop_token* stop);
  void set_slow() noexcept;

  Source waiters_;  // threads in wait(), oldest first; owns the state word (kSet | kWaiters)
};

namespace detail {

// Waiting for the flag (the wait loop's operation; select's too): registration is atomic
// with the flag (WordAnnouncement), so a set() either sees the node or the node is not
// linked.
class EventWaitOp {
 public:
  explicit EventWaitOp(Event& e) noexcept : e_(&e) {}
  Link link(WaitNode& node, Position pos) {
    return e_->waiters_.link(node, pos, [](std::uint32_t s) { return (s & Event::kSet) != 0; });
  }
  void unlink(WaitNode& node) noexcept { e_->waiters_.unlink(node); }
  WaitTarget target() const noexcept { return {SourceKind::event, e_}; }

 protected:
  Event* e_;
};

}  // namespace detail

}  // namespace weft
