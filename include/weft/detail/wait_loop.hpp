// SPDX-License-Identifier: MIT
// weft/detail/wait_loop.hpp: the one blocking loop of weft.
//
// Every blocking call of weft (queue put/get/join, Lock/RLock/Semaphore acquire, Event and
// Condition wait, and select over any number of operations) is
//
//     WaitLoop loop(deadline, stop);
//     for (;;) {
//       try the operation                    -> done: return its result
//                                            (if it may throw: catch, loop.pass_on_claim(),
//                                            rethrow)
//       Round r = loop.wait(op...);          register, re-check, park, unregister
//       if (r.ended()) return the failure;   timed out or cancelled
//     }                                      claimed or ready: try again
//
// The caller writes only "try the operation" (so that a result such as a queue's item is
// built straight in the caller's return value, moving once). Everything else of the waiting
// protocol (parker.hpp) is WaitLoop::wait(), written once:
//   1. the deadline and the stop token, checked before registering;
//   2. registration of one node per operation, each op's link() re-checking its source
//      (wait_source.hpp); a source found ready ends the round without parking, and a claim
//      that raced the abandoned registrations is honoured;
//   3. the park, between the diagnostics hooks "now waiting on these sources" and "stopped
//      waiting, with this outcome";
//   4. unregistration of every node a notifier did not take;
//   5. the claim's bookkeeping: the claimed operation is reported (select performs it
//      first), a waiter that lost its wake-up's object re-registers in front
//      (Position::front), and if the retry that follows a claim throws (an item's move, a
//      comparator), the caller's catch hands the wake-up to the next waiter of that source
//      (pass_on_claim, which calls the op's pass_on), so it is never lost.
//
// An operation (the pieces a primitive supplies; select's operations add try_fire, see
// select.hpp) is any type with
//     Link link(WaitNode& node, Position pos)   register node unless the operation could
//                                               proceed now (Link::ready: nothing linked;
//                                               Link::withdrawn: linked, then unlinked)
//     void unlink(WaitNode& node) noexcept      remove node if no notifier took it
// and optionally
//     void pass_on() noexcept                   give a claimed wake-up to the next waiter
//     void before_park()                        runs after registration, before the park
//                                               (Condition: releases the user's lock); if it
//                                               throws, the registration is undone and a
//                                               claim that came in meanwhile is passed on
//     WaitTarget target() const noexcept        what the operation waits on, for diagnostics
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stop_token>
#include <utility>

#include "weft/detail/check.hpp"
#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/probes.hpp"
#include "weft/detail/wait_source.hpp"

// WEFT_WAIT_HOOKS=0 removes the diagnostics hooks from the loop entirely.
#ifndef WEFT_WAIT_HOOKS
#define WEFT_WAIT_HOOKS 1
#endif

namespace weft::detail {

// ---- diagnostics hooks ----------------------------------------------------------------------

// What a waiting operation waits on.
enum class SourceKind : std::uint8_t {
  event,
  lock,
  rlock,
  semaphore,
  condition,
  queue_get,   // a queue's getters ("not empty")
  queue_put,   // a queue's putters ("not full")
  queue_join,  // a queue's joiners ("all tasks done")
  barrier,     // a Barrier's waiters (its internal Condition's waits, reported as the Barrier's)
  other,       // an operation that does not say (a user's own source)
};

struct WaitTarget {
  SourceKind kind = SourceKind::other;
  const void* object = nullptr;  // the primitive (the queue, for the queue kinds)
};

// How a round of waiting ended.
enum class RoundEnd : std::uint8_t {
  claimed,    // a notifier claimed the waiter for operation index(): try it again
  ready,      // a source was found ready while registering: try again, nothing was parked
  deadline,   // the park timed out: try once more, then the next round reports timed_out
  timed_out,  // the deadline had passed before registering: give up
  cancelled,  // the stop token fired: give up
};

class Round {
 public:
  constexpr Round(RoundEnd end, std::uint32_t index = 0) noexcept : end_(end), index_(index) {}
  RoundEnd end() const noexcept { return end_; }
  // Give up (timed out or cancelled) rather than try again.
  bool ended() const noexcept { return end_ == RoundEnd::timed_out || end_ == RoundEnd::cancelled; }
  bool claimed() const noexcept { return end_ == RoundEnd::claimed; }
  bool cancelled() const noexcept { return end_ == RoundEnd::cancelled; }
  std::uint32_t index() const noexcept { return index_; }

 private:
  RoundEnd end_;
  std::uint32_t index_;
};

// A listener for "this thread now waits on these sources" and "stopped waiting". Both run
// in the waiting thread, the first just before it parks (registered on every source), the
// second just after the park ended (before unregistering). They must not block on a weft
// primitive or throw. on_wait returns false to refuse the park (a deadlock it detected):
// the loop then unregisters and throws weft::Deadlock (throw_deadlock(), src/diagnostics.cpp),
// without calling on_wake; but if a notifier claimed the waiter in the meantime, the wait
// ends as that claim, and on_wake reports it (so the claim's bookkeeping is not left over).
struct WaitHooks {
  bool (*on_wait)(const WaitTarget* targets, std::size_t n, Deadline deadline,
                  bool cancellable) noexcept = nullptr;
  void (*on_wake)(const WaitTarget* targets, std::size_t n, RoundEnd end,
                  std::uint32_t index) noexcept = nullptr;
};

// The installed hooks, or null (the default: then the loop pays one load per park). A plain
// std::atomic, also under the schedule explorer: the hooks are not part of the protocol.
inline std::atomic<const WaitHooks*> g_wait_hooks{nullptr};

// Installs `hooks` (null removes them); returns the previous ones. `hooks` must outlive every
// wait that may still call it.
inline const WaitHooks* set_wait_hooks(const WaitHooks* hooks) noexcept {
  // release: a waiter that loads the pointer (acquire) sees the hooks' members.
  return g_wait_hooks.exchange(hooks, std::memory_order_acq_rel);
}

// Throws weft::Deadlock with the report of the deadlock this thread's hooks detected.
[[noreturn]] void throw_deadlock();

template <class Op>
WaitTarget target_of(const Op& op) noexcept {
  if constexpr (requires { op.target(); }) {
    return op.target();
  } else {
    return WaitTarget{SourceKind::other, &op};
  }
}

// ---- the pieces of a round, shared by the thread loop and the coroutine awaiter (async.hpp) --

// Links nodes[0..] in order until one source is ready; `linked` counts the linked ones,
// `last` is the last link()'s answer. False when a source was ready.
template <class... Ops>
bool link_all(WaitNode* nodes, Position pos, std::size_t& linked, Link& last, Ops&... ops) {
  return (((last = ops.link(nodes[linked], pos)) == Link::linked && (++linked, true)) && ...);
}

// Unlinks nodes[0..count) but nodes[skip].
template <class... Ops>
void unlink_except(WaitNode* nodes, std::size_t count, std::size_t skip, Ops&... ops) noexcept {
  std::size_t i = 0;
  ((i < count && i != skip ? ops.unlink(nodes[i]) : void(), ++i), ...);
}

// The bookkeeping of claims across rounds (see 5. above): after a claim the waiter
// re-registers in front, and until its retry has succeeded the claimed operation's wake-up
// can be passed on.
class ClaimBook {
 public:
  Position position() const noexcept { return position_; }

  // A claim for operation `index` of `ops`.
  template <class... Ops>
  void claimed(std::uint32_t index, Ops&... ops) noexcept {
    position_ = Position::front;
    std::uint32_t i = 0;
    ((i++ == index ? remember_pass_on(ops) : void()), ...);
  }
  // The retry after the last claim did not throw: its wake-up is spent.
  void spent() noexcept { pass_on_ = nullptr; }
  bool holds_wake_up() const noexcept { return pass_on_ != nullptr; }
  // Gives the claimed wake-up to the next waiter of its source (once).
  void pass_on() noexcept {
    if (pass_on_ != nullptr) {
      auto* f = pass_on_;
      pass_on_ = nullptr;
      f(pass_on_op_);
    }
  }

 private:
  template <class Op>
  void remember_pass_on(Op& op) noexcept {
    if constexpr (requires { op.pass_on(); }) {
      pass_on_ = [](void* p) noexcept { static_cast<Op*>(p)->pass_on(); };
      pass_on_op_ = &op;
    }
  }

  Position position_ = Position::back;
  void (*pass_on_)(void*) noexcept = nullptr;  // set while a claim's retry may throw
  void* pass_on_op_ = nullptr;
};

// ---- the loop -------------------------------------------------------------------------------

class WaitLoop {
 public:
  WaitLoop(Deadline deadline, const std::stop_token* stop) noexcept
      : deadline_(deadline), stop_(stop) {}
  WaitLoop(const WaitLoop&) = delete;
  WaitLoop& operator=(const WaitLoop&) = delete;
  ~WaitLoop() = default;

  // For the caller's catch around an attempt that may throw (an item's move, a comparator):
  // if the attempt followed a claim, that claim's wake-up goes to the next waiter of its
  // source (see 5. above); otherwise nothing happens. A catch costs nothing until something
  // throws, where asking std::uncaught_exceptions() in a destructor cost ~50 instructions a
  // call (libstdc++ reaches it through dynamic TLS) on every blocking round trip.
  void pass_on_claim() noexcept { book_.pass_on(); }

  Deadline deadline() const noexcept { return deadline_; }

  // One round of waiting on every operation of `ops` (their order is their index).
  template <class... Ops>
  Round wait(Ops&... ops) {
    static_assert(sizeof...(Ops) > 0);
    constexpr std::size_t N = sizeof...(Ops);
    book_.spent();  // the previous claim's retry did not throw: its wake-up is spent
    if (stop_ != nullptr && stop_->stop_requested()) return RoundEnd::cancelled;
    if (deadline_.expired()) return RoundEnd::timed_out;
    if (parker_ == nullptr) parker_ = &Parker::current();
    Parker& parker = *parker_;
    parker.prepare();
    WaitNode nodes[N];
    for (std::uint32_t i = 0; i < N; ++i) {
      nodes[i].waiter = &parker;
      nodes[i].index = i;
    }

    // 2. Register everywhere, unless one source is ready.
    std::size_t linked = 0;
    Link last = Link::linked;
    const bool ready = !link_all(nodes, book_.position(), linked, last, ops...);
    if (ready) {
      // Nothing was ever linked: nothing can have been claimed.
      if (linked == 0 && last == Link::ready) return RoundEnd::ready;
      // Settle before unlinking: a claimed node was unlinked by its claimer, and once that
      // claimer has woken another waiter, the claimed source may already be destroyed.
      const Decision d = parker.settle();
      unlink_except(nodes, linked, d.claimed() ? d.index() : N, ops...);
      // A claim that raced the abandoned registrations carries a wake-up meant for us:
      // report it, so that its operation is tried first and not left unperformed.
      return d.claimed() ? claimed(d.index(), ops...) : Round(RoundEnd::ready);
    }
    if constexpr ((requires { ops.before_park(); } || ...)) {
      try {
        (before_park(ops), ...);
      } catch (...) {
        // The wait is not happening. Settled first, as above; a claim that came in between
        // carries a wake-up this waiter will not use, so it goes to the next waiter of that
        // source (the op's pass_on), as after a retry that throws.
        const Decision d = parker.settle();
        unlink_except(nodes, N, d.claimed() ? d.index() : N, ops...);
        if (d.claimed()) {
          book_.claimed(d.index(), ops...);
          book_.pass_on();
        }
        throw;
      }
    }

    // 3. Park. Wake-up sources: a notifier of any of the sources claiming its node (a put, a
    // get, set(), release(), notify(), task_done(), shutdown()), the deadline, a stop
    // request.
    const WaitHooks* hooks = load_hooks();
    if (hooks != nullptr) [[unlikely]] {
      if (!call_on_wait(hooks, ops...)) {
        // A deadlock this wait would close: do not park. A claim that came in after all
        // (the verdict raced a wake-up) is honoured instead of the exception.
        const Decision s = parker.settle();  // settled first, as above
        unlink_except(nodes, N, s.claimed() ? s.index() : N, ops...);
        if (s.claimed()) {
          call_on_wake(hooks, Round(RoundEnd::claimed, s.index()), ops...);
          return claimed(s.index(), ops...);
        }
        throw_deadlock();
      }
    }
#if WEFT_HAVE_PROBES
    const WaitTarget first = first_target(ops...);
    WEFT_PROBE4(wait, static_cast<int>(first.kind), first.object, N,
                static_cast<const Waiter*>(&parker));
#endif
    const Decision d = parker.park(deadline_, stop_);
    const Round r = d.claimed() ? Round(RoundEnd::claimed, d.index())
                                : Round(d.outcome() == Outcome::cancelled ? RoundEnd::cancelled
                                                                          : RoundEnd::deadline);
#if WEFT_HAVE_PROBES
    probe_end(r, static_cast<const Waiter*>(&parker), ops...);
#endif
    if (hooks != nullptr) [[unlikely]]
      call_on_wake(hooks, r, ops...);

    // 4. Unregister what no notifier took (a claimed node was unlinked by its claimer).
    WEFT_INVARIANT(!d.claimed() || d.index() < N, "a claim names one of this round's nodes");
    WEFT_INVARIANT(!d.claimed() || !nodes[d.index()].linked, "a claimed node is unlinked");
    unlink_except(nodes, N, d.claimed() ? d.index() : N, ops...);
    return d.claimed() ? claimed(d.index(), ops...) : r;
  }

 private:
  static const WaitHooks* load_hooks() noexcept {
#if WEFT_WAIT_HOOKS
    // acquire: pairs with set_wait_hooks.
    return g_wait_hooks.load(std::memory_order_acquire);
#else
    return nullptr;
#endif
  }

  template <class... Ops>
  bool call_on_wait(const WaitHooks* h, Ops&... ops) const noexcept {
    if (h->on_wait == nullptr) return true;
    const WaitTarget t[] = {target_of(ops)...};
    return h->on_wait(t, sizeof...(Ops), deadline_, stop_ != nullptr && stop_->stop_possible());
  }
  template <class... Ops>
  void call_on_wake(const WaitHooks* h, Round r, Ops&... ops) noexcept {
    if (h->on_wake == nullptr) return;
    const WaitTarget t[] = {target_of(ops)...};
    h->on_wake(t, sizeof...(Ops), r.end(), r.index());
  }

#if WEFT_HAVE_PROBES
  template <class First, class... Rest>
  static WaitTarget first_target(First& first, Rest&...) noexcept {
    return target_of(first);
  }
  template <class... Ops>
  static void probe_end(Round r, const Waiter* parker, Ops&... ops) noexcept {
    const WaitTarget t[] = {target_of(ops)...};
    const WaitTarget w = r.index() < sizeof...(Ops) ? t[r.index()] : t[0];
    if (r.claimed()) {
      WEFT_PROBE4(wake, static_cast<int>(w.kind), w.object, r.index(), parker);
    } else if (r.cancelled()) {
      WEFT_PROBE3(cancel, static_cast<int>(w.kind), w.object, parker);
    } else {
      WEFT_PROBE3(timeout, static_cast<int>(w.kind), w.object, parker);
    }
  }
#endif

  template <class Op>
  static void before_park(Op& op) {
    if constexpr (requires { op.before_park(); }) op.before_park();
  }

  // A claim for operation `index`: it is tried next; if that throws, its wake-up passes on;
  // if the operation then finds nothing (a running thread took it first), the waiter
  // re-registers in front.
  template <class... Ops>
  Round claimed(std::uint32_t index, Ops&... ops) noexcept {
    book_.claimed(index, ops...);
    return Round(RoundEnd::claimed, index);
  }

  Deadline deadline_;
  const std::stop_token* stop_;
  Parker* parker_ = nullptr;
  ClaimBook book_;
};

}  // namespace weft::detail
