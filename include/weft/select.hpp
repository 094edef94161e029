// SPDX-License-Identifier: MIT
// weft/select.hpp: wait on several queues, events and semaphores at once, and perform
// exactly one operation (Go's select, crossbeam's Select, for weft's primitives).
//
//     auto r = weft::select(weft::get(jobs), weft::get(control), weft::wait(stopping));
//     switch (r.index()) {
//       case 0: if (auto& job = std::get<0>(r)) run(*job); else /* jobs shut down */; break;
//       case 1: apply(*std::get<1>(r)); break;
//       case 2: return;
//     }
//
// Operations and what they yield (the result is a std::variant indexed like the arguments):
//   weft::get(q)          std::optional<T>: the item, or nullopt if q is shut down and drained
//   weft::put(q, item)    bool: true if the item was put (moved from), false if q is shut down
//                         (the item is untouched unless this operation was the one performed)
//   weft::wait(event)     std::monostate: the event is set (nothing is consumed)
//   weft::acquire(sem)    std::monostate: a permit was taken
//
// Forms:
//   select(ops...)                      blocks until one operation proceeds
//   select(stop_token, ops...)          std::optional<...>: nullopt if stopped first
//   try_select(ops...)                  std::optional<...>: never blocks
//   select_for(timeout, ops...)         std::optional<...>: nullopt on timeout
//   select_for(timeout, stop, ops...)   and select_until(deadline[, stop], ops...)
//   Each also accepts weft::biased as its first argument.
//
// Guarantees:
//  - Exactly one operation takes effect; a select that times out or is stopped changes
//    nothing (no item taken, no put made, no permit held).
//  - Fairness: among operations ready at once, the one performed is chosen uniformly at
//    random, so no source starves; with weft::biased, the earliest ready argument wins.
//  - No polling: a blocked select sleeps, registered on every source, until one of them
//    changes; a source nobody selects on pays nothing for select's existence.
//  - Negative timeouts throw std::invalid_argument (as for the queues).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/event.hpp"
#include "weft/queue.hpp"
#include "weft/semaphore.hpp"

namespace weft {

// Selects the earliest ready operation instead of a random one.
struct biased_t {
  explicit biased_t() = default;
};
inline constexpr biased_t biased{};

namespace detail {

// The one place select reaches into the primitives' registration internals.
struct SelectAccess {
  template <class Q>
  static auto& core(Q& q) noexcept {
    return q.core_;
  }
  static bool register_waiter(Event& e, WaitNode& n) noexcept { return e.register_waiter(n); }
  static void unregister_waiter(Event& e, WaitNode& n) noexcept { e.unregister_waiter(n); }
  static bool register_waiter(Semaphore& s, WaitNode& n) noexcept { return s.register_waiter(n); }
  static void unregister_waiter(Semaphore& s, WaitNode& n) noexcept { s.unregister_waiter(n); }
  static bool try_acquire(Semaphore& s) noexcept { return s.try_acquire(); }
};

// Each operation: try_fire (one non-blocking attempt; true when performed, with its result),
// link (register a node; false when already ready, in which case nothing is linked),
// ready (re-check after linking, for the waiting handshake), unlink.
template <class Q>
class GetOp {
 public:
  using result_type = std::optional<typename Q::value_type>;
  explicit GetOp(Q& q) noexcept : q_(&q) {}

  // Builds the result with emit(args...) straight from the queued item (one move: if it
  // throws, the item stays queued).
  template <class Emit>
  bool try_fire_into(Emit& emit) {
    Sink<Emit> sink{emit};
    return SelectAccess::core(*q_).try_pop(sink);
  }
  bool link(WaitNode& n) noexcept {
    SelectAccess::core(*q_).not_empty().link(n);
    return true;
  }
  bool ready() noexcept { return SelectAccess::core(*q_).pop_ready(); }
  void unlink(WaitNode& n) noexcept { SelectAccess::core(*q_).not_empty().unlink(n); }
  // A claimed select whose retry threw hands the wake-up to the next getter.
  void pass_on() noexcept {
    WakeBatch woken;
    SelectAccess::core(*q_).not_empty().claim_one(woken);
  }

 private:
  template <class Emit>
  struct Sink {
    Emit& emit;
    bool take(typename Q::value_type&& item) {
      emit(std::in_place, std::move(item));
      return true;
    }
    bool fail(Status s) {
      if (s != Status::shut_down) return false;  // empty: not ready
      emit(std::nullopt);                        // shut down and drained: fires with nullopt
      return true;
    }
  };
  Q* q_;
};

template <class Q>
class PutOp {
 public:
  using result_type = bool;
  PutOp(Q& q, typename Q::value_type& item) noexcept : q_(&q), item_(&item) {}

  bool try_fire(result_type& out) {
    const PushResult r = SelectAccess::core(*q_).try_push(*item_);
    out = (r == PushResult::ok);
    return r != PushResult::full;  // ok, or shut down (reported as false)
  }
  bool link(WaitNode& n) noexcept {
    SelectAccess::core(*q_).not_full().link(n);
    return true;
  }
  bool ready() noexcept { return SelectAccess::core(*q_).push_ready(); }
  void unlink(WaitNode& n) noexcept { SelectAccess::core(*q_).not_full().unlink(n); }
  void pass_on() noexcept {
    WakeBatch woken;
    SelectAccess::core(*q_).not_full().claim_one(woken);
  }

 private:
  Q* q_;
  typename Q::value_type* item_;
};

class EventOp {
 public:
  using result_type = std::monostate;
  explicit EventOp(Event& e) noexcept : e_(&e) {}

  bool try_fire(result_type&) noexcept { return e_->is_set(); }
  // Claimed by set(): the event fired while we waited, even if clear() ran since (as for
  // Event::wait, CPython issue 13502).
  bool fire_claimed(result_type&) noexcept { return true; }
  bool link(WaitNode& n) noexcept { return SelectAccess::register_waiter(*e_, n); }
  // The registration itself is atomic with the flag (set() claims every linked node).
  bool ready() noexcept { return false; }
  void unlink(WaitNode& n) noexcept { SelectAccess::unregister_waiter(*e_, n); }

 private:
  Event* e_;
};

class AcquireOp {
 public:
  using result_type = std::monostate;
  explicit AcquireOp(Semaphore& s) noexcept : s_(&s) {}

  bool try_fire(result_type&) noexcept { return SelectAccess::try_acquire(*s_); }
  bool link(WaitNode& n) noexcept { return SelectAccess::register_waiter(*s_, n); }
  // Registration is atomic with the count (release() claims linked nodes).
  bool ready() noexcept { return false; }
  void unlink(WaitNode& n) noexcept { SelectAccess::unregister_waiter(*s_, n); }

 private:
  Semaphore* s_;
};

template <class Op>
concept SelectOp = requires {
  typename Op::result_type;
};

// After a claim for operation `op`: the event case reports without re-checking; the others
// retry their operation (someone may have taken the item or permit first).
template <class Op>
bool fire_claimed(Op& op, typename Op::result_type& out) {
  if constexpr (requires { op.fire_claimed(out); }) {
    return op.fire_claimed(out);
  } else {
    return op.try_fire(out);
  }
}

// A per-thread xorshift generator for the fair choice of where to start trying. Under the
// deterministic schedule explorer, its seeded generator instead (deadline.hpp's seam).
inline std::uint32_t select_random() noexcept {
#if defined(WEFT_DETERMINISTIC_SCHEDULER)
  return weft_dsched_random();
#else
  thread_local std::uint32_t state =
      static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&state) >> 4) | 1u;
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
#endif
}

template <class... Ops>
using SelectResult = std::variant<typename Ops::result_type...>;

template <class... Ops>
class Selector {
  static constexpr std::size_t N = sizeof...(Ops);
  using Result = SelectResult<Ops...>;

 public:
  explicit Selector(Ops&... ops) noexcept : ops_(ops...) {}

  // g++ 12 at -O2/-O3 (-Wall) reports `return out` below as reading an uninitialized int when
  // Out holds a disengaged std::optional of a trivial type: the copy of the optional's unused
  // payload that it sees is GCC's known false positive with std::optional (GCC bug 80635).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  // Out is Result (select without a deadline or stop: it always performs an operation) or
  // std::optional<Result>. Every return returns `out`, so the compilers elide it (NRVO) and
  // the operation builds its result right in the caller's object: an item got moves once,
  // from the queue into the result (tested with an item whose second move would throw).
  template <class Out>
  Out run(bool is_biased, Deadline deadline, const std::stop_token* stop) {
    Out out{};
    if (stop != nullptr && stop->stop_requested()) return out;
    for (;;) {
      // Fair: a fresh random order each round (a random start alone would favour an
      // operation that follows one that is not ready); biased: argument order.
      std::size_t order[N];
      for (std::size_t k = 0; k < N; ++k) order[k] = k;
      if (!is_biased) {
        for (std::size_t k = N - 1; k > 0; --k) {
          const std::size_t j = select_random() % (k + 1);
          const std::size_t t = order[k];
          order[k] = order[j];
          order[j] = t;
        }
      }
      for (std::size_t k = 0; k < N; ++k) {
        if (fire<false>(order[k], out)) return out;
      }
      if (deadline.expired()) return out;

      Parker& parker = Parker::current();
      parker.prepare();
      WaitNode nodes[N];
      std::size_t linked = 0;
      bool ready_now = false;
      for (; linked < N; ++linked) {
        nodes[linked].parker = &parker;
        nodes[linked].token = kFirstSelectToken + static_cast<std::uint32_t>(linked);
        if (!link(linked, nodes[linked])) {
          ready_now = true;
          break;
        }
      }
      for (std::size_t i = 0; !ready_now && i < N; ++i) ready_now = ready(i);
      if (ready_now) {
        unlink_all(nodes, linked);
        // A claim that raced the re-check carries a wake-up meant for us: honour it first,
        // so that it is not spent without its item or permit being taken.
        const std::uint32_t claimed = parker.settle();
        if (claimed >= kFirstSelectToken && fire<true>(claimed - kFirstSelectToken, out)) {
          return out;
        }
        continue;
      }
      // Wake-up sources: any source's notifier claiming one of the nodes (a push, a pop,
      // set(), release(), shutdown), the deadline, a stop request.
      const std::uint32_t outcome = parker.park(deadline, stop);
      unlink_all(nodes, N);
      if (outcome >= kFirstSelectToken) {
        // The source that claimed us announced a change: perform its operation first.
        if (fire<true>(outcome - kFirstSelectToken, out)) return out;
        continue;
      }
      if (outcome == kCancelled) return out;
      // Timed out: the loop makes one last round of attempts.
    }
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

 private:
  template <bool Claimed, std::size_t I = 0, class Out>
  bool fire(std::size_t i, Out& out) {
    if constexpr (I == N) {
      return false;
    } else {
      if (i != I) return fire<Claimed, I + 1>(i, out);
      auto& op = std::get<I>(ops_);
      if constexpr (requires(Emitter<I, Out> e) { op.try_fire_into(e); }) {
        // Built in place (a get: the item moves once, from the queue into the result).
        Emitter<I, Out> emit{out};
        return fire_or_pass_on<Claimed>(op, [&] { return op.try_fire_into(emit); });
      } else {
        using R = std::variant_alternative_t<I, Result>;
        R value{};
        const bool fired = fire_or_pass_on<Claimed>(
            op, [&] { return Claimed ? fire_claimed(op, value) : op.try_fire(value); });
        if (!fired) return false;
        Emitter<I, Out>{out}(std::move(value));
        return true;
      }
    }
  }

  // Emplaces alternative I of the result.
  template <std::size_t I, class Out>
  struct Emitter {
    Out& out;
    template <class... Args>
    void operator()(Args&&... args) {
      if constexpr (std::is_same_v<Out, Result>) {
        out.template emplace<I>(std::forward<Args>(args)...);
      } else {
        out.emplace(std::in_place_index<I>, std::forward<Args>(args)...);
      }
    }
  };

  // A claimed operation that throws (an item's move, a comparator) passes its wake-up on,
  // as QueueCore's own waiters do.
  template <bool Claimed, class Op, class F>
  static bool fire_or_pass_on(Op& op, F&& f) {
    if constexpr (Claimed && requires { op.pass_on(); }) {
      try {
        return f();
      } catch (...) {
        op.pass_on();
        throw;
      }
    } else {
      return f();
    }
  }

  template <std::size_t I = 0>
  bool link(std::size_t i, WaitNode& n) noexcept {
    if constexpr (I == N) {
      return true;
    } else {
      return i == I ? std::get<I>(ops_).link(n) : link<I + 1>(i, n);
    }
  }

  template <std::size_t I = 0>
  bool ready(std::size_t i) noexcept {
    if constexpr (I == N) {
      return false;
    } else {
      return i == I ? std::get<I>(ops_).ready() : ready<I + 1>(i);
    }
  }

  template <std::size_t I = 0>
  void unlink_all(WaitNode* nodes, std::size_t count) noexcept {
    if constexpr (I < N) {
      if (I < count) {
        std::get<I>(ops_).unlink(nodes[I]);
        unlink_all<I + 1>(nodes, count);
      }
    }
  }

  std::tuple<Ops&...> ops_;
};

template <class... Ops>
std::optional<SelectResult<Ops...>> run_select(bool is_biased, Deadline deadline,
                                               const std::stop_token* stop, Ops&... ops) {
  static_assert(sizeof...(Ops) > 0, "weft::select needs at least one operation");
  return Selector<Ops...>(ops...).template run<std::optional<SelectResult<Ops...>>>(is_biased,
                                                                                    deadline, stop);
}
// The blocking select without a stop_token: always performs an operation.
template <class... Ops>
SelectResult<Ops...> run_select_blocking(bool is_biased, Ops&... ops) {
  static_assert(sizeof...(Ops) > 0, "weft::select needs at least one operation");
  return Selector<Ops...>(ops...).template run<SelectResult<Ops...>>(is_biased, Deadline::never(),
                                                                     nullptr);
}

template <class Rep, class Period>
Deadline select_deadline(std::chrono::duration<Rep, Period> timeout) {
  if (is_negative(timeout)) {
    throw std::invalid_argument("weft::select_for: timeout must be a non-negative duration");
  }
  return Deadline::after(timeout);
}

}  // namespace detail

// ---- operations --------------------------------------------------------------------------
template <class Q>
detail::GetOp<Q> get(Q& q) noexcept {
  return detail::GetOp<Q>(q);
}
template <class Q>
detail::PutOp<Q> put(Q& q, typename Q::value_type& item) noexcept {
  return detail::PutOp<Q>(q, item);
}
inline detail::EventOp wait(Event& e) noexcept {
  return detail::EventOp(e);
}
inline detail::AcquireOp acquire(Semaphore& s) noexcept {
  return detail::AcquireOp(s);
}

// ---- select ------------------------------------------------------------------------------
template <detail::SelectOp... Ops>
detail::SelectResult<Ops...> select(Ops... ops) {
  return detail::run_select_blocking(false, ops...);
}
template <detail::SelectOp... Ops>
detail::SelectResult<Ops...> select(biased_t, Ops... ops) {
  return detail::run_select_blocking(true, ops...);
}
template <detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select(std::stop_token stop, Ops... ops) {
  return detail::run_select(false, detail::Deadline::never(), &stop, ops...);
}
template <detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select(biased_t, std::stop_token stop, Ops... ops) {
  return detail::run_select(true, detail::Deadline::never(), &stop, ops...);
}

template <detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> try_select(Ops... ops) {
  return detail::run_select(false, detail::Deadline::poll(), nullptr, ops...);
}
template <detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> try_select(biased_t, Ops... ops) {
  return detail::run_select(true, detail::Deadline::poll(), nullptr, ops...);
}

template <class Rep, class Period, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_for(std::chrono::duration<Rep, Period> timeout,
                                                       Ops... ops) {
  return detail::run_select(false, detail::select_deadline(timeout), nullptr, ops...);
}
template <class Rep, class Period, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_for(biased_t,
                                                       std::chrono::duration<Rep, Period> timeout,
                                                       Ops... ops) {
  return detail::run_select(true, detail::select_deadline(timeout), nullptr, ops...);
}
template <class Rep, class Period, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_for(std::chrono::duration<Rep, Period> timeout,
                                                       std::stop_token stop, Ops... ops) {
  return detail::run_select(false, detail::select_deadline(timeout), &stop, ops...);
}

template <class Rep, class Period, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_for(biased_t,
                                                       std::chrono::duration<Rep, Period> timeout,
                                                       std::stop_token stop, Ops... ops) {
  return detail::run_select(true, detail::select_deadline(timeout), &stop, ops...);
}
template <class Clock, class Duration, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_until(
    biased_t, std::chrono::time_point<Clock, Duration> deadline, Ops... ops) {
  return detail::run_select(true, detail::Deadline::at(deadline), nullptr, ops...);
}
template <class Clock, class Duration, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_until(
    biased_t, std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop, Ops... ops) {
  return detail::run_select(true, detail::Deadline::at(deadline), &stop, ops...);
}
template <class Clock, class Duration, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_until(
    std::chrono::time_point<Clock, Duration> deadline, Ops... ops) {
  return detail::run_select(false, detail::Deadline::at(deadline), nullptr, ops...);
}
template <class Clock, class Duration, detail::SelectOp... Ops>
std::optional<detail::SelectResult<Ops...>> select_until(
    std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop, Ops... ops) {
  return detail::run_select(false, detail::Deadline::at(deadline), &stop, ops...);
}

}  // namespace weft
