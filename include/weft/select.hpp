// SPDX-License-Identifier: MIT
// weft/select.hpp: wait on several queues, events, semaphores, locks (or sources of your
// own) at once, and perform exactly one operation (Go's select, crossbeam's Select, for weft's primitives).
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
//   weft::get_many(q, n)  std::vector<T>: 1..n items (q.get_many(n)'s), or none if q is shut
//                         down and drained
//   weft::put(q, item)    bool: true if the item was put (moved from), false if q is shut down
//                         (the item is untouched unless this operation was the one performed)
//   weft::wait(event)     std::monostate: the event is set (nothing is consumed)
//   weft::acquire(sem)    std::monostate: a permit was taken
//   weft::acquire(lock)   std::monostate: the Lock or RLock was taken (by the calling thread)
//   weft::join(q)         std::monostate: every task of q is done (nothing is consumed)
//   your own              any type that models weft::SelectOperation (below)
// There is no put_many operation: select performs one operation whole or not at all, and a
// batch that does not fit in a bounded queue could only be split (part of an operation
// performed) or wait for room for all of it (which a queue smaller than the batch never
// has). Select on weft::put for one item, then put_many_nowait the rest.
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
//  - Ready first: a select whose operation can proceed performs it without registering
//    anywhere; a queue whose lock-free look says empty and open (full and open, for a put)
//    is not even tried.
//  - No polling: a blocked select sleeps, registered on every source, until one of them
//    changes; a source nobody selects on pays nothing for select's existence.
//  - Negative timeouts throw std::invalid_argument (as for the queues).
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/wait_loop.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/semaphore.hpp"
#include "weft/wait_source.hpp"

namespace weft {

// Selects the earliest ready operation instead of a random one.
struct biased_t {
  explicit biased_t() = default;
};
inline constexpr biased_t biased{};

namespace detail {

// The one place select reaches into the primitives' internals.
struct SelectAccess {
  template <class Q>
  static auto& core(Q& q) noexcept {
    return q.core_;
  }
  static bool try_acquire(Semaphore& s) noexcept { return s.try_acquire(); }
  static bool try_acquire(Lock& l) noexcept { return l.noted(l.try_acquire()); }
  // After a coroutine took `l`: TSAN is told that the thread which ran the attempt does not
  // hold it (Lock::tsan_disown).
  static void disown(Lock& l) noexcept { l.tsan_disown(); }
  static bool try_acquire(RLock& l) noexcept {
    return l.reenter() || l.adopt(l.lock_.try_acquire());
  }
  static Lock& inner(RLock& l) noexcept { return l.lock_; }
};

// weft's own operations. Each adds to the wait loop's operation (link, unlink, pass_on,
// target: wait_loop.hpp) what select needs: result_type and one non-blocking attempt.
template <class Q>
class GetOp
    : public QueueGetOp<std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>> {
  using Core = std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>;

 public:
  using result_type = std::optional<typename Q::value_type>;
  explicit GetOp(Q& q) noexcept
      : QueueGetOp<Core>(SelectAccess::core(q)), core_(&SelectAccess::core(q)) {}

  bool ready_hint() noexcept { return core_->pop_hint(); }
  // Builds the result with emit(args...) straight from the queued item (one move: if it
  // throws, the item stays queued).
  template <class Emit>
  bool try_fire_into(Emit& emit) {
    Sink<Emit> sink{emit};
    return core_->try_pop(sink);
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
  Core* core_;
};

// get_many(q, n): fires when at least one item is queued (taking up to n) or q is shut down
// and drained (an empty vector).
template <class Q>
class GetManyOp
    : public QueueGetOp<std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>> {
  using Core = std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>;

 public:
  using result_type = std::vector<typename Q::value_type>;
  GetManyOp(Q& q, std::size_t n) noexcept
      : QueueGetOp<Core>(SelectAccess::core(q)), core_(&SelectAccess::core(q)), n_(n) {}

  bool ready_hint() noexcept { return core_->pop_hint(); }
  bool try_fire(result_type& out) {
    VectorOut<typename Q::value_type> sink(out);
    return core_->try_pop_many(sink, n_).status != Status::timed_out;  // timed_out: empty
  }

 private:
  Core* core_;
  std::size_t n_;
};

template <class Q>
class PutOp
    : public QueuePutOp<std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>> {
  using Core = std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>;

 public:
  using result_type = bool;
  PutOp(Q& q, typename Q::value_type& item) noexcept
      : QueuePutOp<Core>(SelectAccess::core(q)), core_(&SelectAccess::core(q)), item_(&item) {}

  bool ready_hint() noexcept { return core_->push_hint(); }
  bool try_fire(result_type& out) {
    const PushResult r = core_->try_push(*item_);
    out = (r == PushResult::ok);
    return r != PushResult::full;  // ok, or shut down (reported as false)
  }

 private:
  Core* core_;
  typename Q::value_type* item_;
};

template <class Q>
class JoinOp : public QueueJoinOp<
                   std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>> {
  using Core = std::remove_reference_t<decltype(SelectAccess::core(std::declval<Q&>()))>;

 public:
  using result_type = std::monostate;
  explicit JoinOp(Q& q) noexcept
      : QueueJoinOp<Core>(SelectAccess::core(q)), core_(&SelectAccess::core(q)) {}
  bool try_fire(result_type&) noexcept { return core_->all_tasks_done_synced(); }

 private:
  Core* core_;
};

class EventOp : public EventWaitOp {
 public:
  using result_type = std::monostate;
  explicit EventOp(Event& e) noexcept : EventWaitOp(e) {}

  bool try_fire(result_type&) noexcept { return e_->is_set(); }
  // Claimed by set(): the event fired while we waited, even if clear() ran since (as for
  // Event::wait, CPython issue 13502).
  bool fire_claimed(result_type&) noexcept { return true; }
};

class AcquireOp : public SemaphoreAcquireOp {
 public:
  using result_type = std::monostate;
  explicit AcquireOp(Semaphore& s) noexcept : SemaphoreAcquireOp(s) {}
  bool try_fire(result_type&) noexcept { return SelectAccess::try_acquire(*s_); }
};

class LockOp : public LockAcquireOp {
 public:
  using result_type = std::monostate;
  explicit LockOp(Lock& l) noexcept : LockAcquireOp(l) {}
  bool try_fire(result_type&) noexcept { return SelectAccess::try_acquire(*l_); }
  // A coroutine's operation took the lock (async.hpp): no thread holds it.
  void disown() noexcept { SelectAccess::disown(*l_); }
};

class RLockOp : public LockAcquireOp {
 public:
  using result_type = std::monostate;
  explicit RLockOp(RLock& l) noexcept
      : LockAcquireOp(SelectAccess::inner(l), SourceKind::rlock, &l), r_(&l) {}
  bool try_fire(result_type&) noexcept { return SelectAccess::try_acquire(*r_); }

 private:
  RLock* r_;
};

// An emitter that accepts anything: only for checking the concept below.
struct AnyEmitter {
  template <class... Args>
  void operator()(Args&&...) {}
};

}  // namespace detail

// ---- the operation concept ---------------------------------------------------------------
// Anything that models SelectOperation can be passed to select, so that a source of your
// own can be selected on together with weft's (tests/conformance/select_custom_test.cpp has
// a complete example). An operation is a small copyable handle to its source with
//
//   typename result_type             what the operation yields when performed (its
//                                    alternative of select's std::variant)
//   bool try_fire(result_type& out)  one non-blocking attempt: true when performed (out
//                                    set), false when the source is not ready; it may
//                                    throw, and must then change nothing
//   WaitLink link(WaitNode& node, WaitPosition pos)
//                                    registers `node` on the source unless the source is
//                                    ready now (then it returns WaitLink::ready if it linked
//                                    nothing, WaitLink::withdrawn if it linked the node and
//                                    unlinked it again); the re-check must follow the
//                                    announcement, which weft::WaitSource::link does for you
//   void unlink(WaitNode& node) noexcept
//                                    removes `node` if no notifier took it
//
// and optionally
//
//   bool fire_claimed(result_type& out)  the attempt after a notifier woke this operation
//                                    (default: try_fire); Event's reports "set" without
//                                    re-reading the flag
//   void pass_on() noexcept          gives a wake-up to another waiter of the source, for
//                                    when the attempt after a wake-up threw
//   bool ready_hint() noexcept       a cheap look (no lock) before select's first attempt:
//                                    false only if try_fire would surely fail now, and
//                                    never false for a change the caller has synchronized
//                                    with (select then skips the attempt; a select that
//                                    registers re-checks through link() as always)
//
// The source's notifier, after making the source ready, claims a registered node and wakes
// its waiter (weft::WaitSource::notify_one / notify_all). A woken select tries the woken
// operation first, then the others; it performs exactly one.
template <class Op>
concept SelectOperation = requires(Op& op, WaitNode& node, typename Op::result_type& out,
                                   detail::AnyEmitter& emit) {
  { op.link(node, WaitPosition::back) } -> std::same_as<WaitLink>;
  { op.unlink(node) }
  noexcept;
  requires(
      requires {
        { op.try_fire(out) } -> std::convertible_to<bool>;
      } ||
      requires {
        { op.try_fire_into(emit) } -> std::convertible_to<bool>;
      });
};

namespace detail {

template <class Op>
concept SelectOp = SelectOperation<Op>;

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
  // Zero-initialized (no guard on each call); seeded on first use from its address and a
  // count of the threads seeded so far: glibc gives a new thread the stack (and so the TLS
  // address) of one that exited, and the address alone would repeat a joined thread's picks.
  // relaxed: only the counter's values need to differ, not their order.
  thread_local std::uint32_t state = 0;
  if (state == 0) [[unlikely]] {
    static std::atomic<std::uint32_t> threads{0};
    const std::uint32_t n = threads.fetch_add(1, std::memory_order_relaxed);
    state = (static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&state) >> 4) ^
             (n * 0x9E3779B9u)) |
            1u;
  }
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
  //
  // Ready first: one attempt at the operations whose sources may be ready, before anything
  // is registered (inline, no wait loop); only a select that finds none ready goes on to
  // wait(), out of line. An exception from this attempt needs no bookkeeping: no wake-up
  // has been claimed yet. Flattened: the attempt (the hints, the chosen operation's pop or
  // push) is compiled into run() itself rather than called.
  template <class Out>
  [[gnu::flatten]] Out run(bool is_biased, Deadline deadline, const std::stop_token* stop) {
    Out out{};
    if (stop != nullptr && stop->stop_requested()) return out;
    if (try_all(is_biased, out)) return out;
    wait(is_biased, deadline, stop, out);
    return out;
  }

  // One attempt at the operations that may proceed now, uniformly at random among them
  // (or the earliest, when biased); true when one was performed (its result is in `out`).
  // An operation whose source says it is surely not ready (ready_hint(): a queue that is
  // empty and open, for a get) is not attempted: its attempt would fail, and costs more than
  // the hint's loads. What a "not ready" hint guarantees: every change the caller
  // synchronized with before the call is in it (so try_select never misses an item put
  // before it); for a lock-free queue (the ring, the segment list) the queue was empty
  // (full, for a put) and open at one instant during the hint's loads (ring.hpp's
  // empty_and_open); for a locked queue its two relaxed loads saw a size of 0 (the
  // capacity) and not closed, each a value no older than the caller's last synchronized
  // change, but not one snapshot of both. A later change is found by the next attempt or,
  // for a select that goes on to wait, by the re-check after registering (the handshake of
  // wait_source.hpp). Also the coroutine awaiter's attempt (async.hpp).
  //
  // The order is drawn lazily, one operation at a time, uniformly among those not yet
  // looked at: a uniformly random permutation, so the first ready operation in it is
  // uniform among the ready ones, and a select whose first pick is ready looks at no other
  // source (in a fan-in whose queues are all busy, the others' positions stay in their
  // producers' caches). The first pick, among all N, is a multiplication alone, with no walk
  // over the bits (whose trip count, random, the branch predictor cannot learn).
  template <class Out>
  bool try_all(bool is_biased, Out& out) {
    const std::size_t first = is_biased ? 0 : first_pick();
    return fire<false>(first, out) || try_from(first, is_biased, out);
  }
  // The attempt of operation i after a notifier claimed it.
  template <class Out>
  bool fire_after_claim(std::size_t i, Out& out) {
    return fire<true>(i, out);
  }
  std::tuple<Ops&...>& ops() noexcept {
    return ops_;
  }

 private:
  // The order after its first pick `first` (which was attempted and did not proceed).
  template <class Out>
  bool try_from(std::size_t first, bool is_biased, Out& out) {
    Mask left = kAll & ~(Mask{1} << first);
    for (std::uint32_t n = N - 1; n != 0; --n) {  // n: the bits set in left
      const std::size_t i = is_biased ? lowest(left) : pick(left, n);
      if (fire<false>(i, out)) return true;
      left &= ~(Mask{1} << i);
    }
    return false;
  }

  // The rest of run(), once no operation was ready: the one wait loop (wait_loop.hpp) over
  // the N operations, and after each round an attempt at all of them, the claimed one first.
  // If the attempt after a claim throws (an item's move, a comparator), the loop passes the
  // wake-up on. Leaves `out` as it was when the deadline passed or a stop came first.
  template <class Out>
  [[gnu::noinline]] void wait(bool is_biased, Deadline deadline, const std::stop_token* stop,
                              Out& out) {
    WaitLoop loop(deadline, stop);
    for (;;) {
      const Round r = std::apply([&loop](auto&... ops) { return loop.wait(ops...); }, ops_);
      try {
        // The source that claimed us announced a change: perform its operation first.
        if (r.claimed() && fire_after_claim(r.index(), out)) return;
        if (r.ended()) return;  // timed out or stopped: nothing happened
        if (try_all(is_biased, out)) return;
      } catch (...) {
        loop.pass_on_claim();
        throw;
      }
    }
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  // The candidates of one attempt, one bit per operation.
  using Mask = std::uint64_t;
  static_assert(N <= 64, "weft::select takes at most 64 operations");

  static constexpr Mask kAll = N == 64 ? ~Mask{0} : (Mask{1} << N) - 1;
  template <class Op>
  static bool ready_hint(Op& op) noexcept {
    if constexpr (requires { op.ready_hint(); }) {
      static_assert(noexcept(op.ready_hint()), "a select operation's ready_hint() is noexcept");
      return op.ready_hint();
    } else {
      return true;  // no hint: always attempted
    }
  }
  static std::size_t lowest(Mask m) noexcept {
    return static_cast<std::size_t>(std::countr_zero(m));
  }
  // The first pick of the order: uniform among all N (the k-th of N set bits is k).
  static std::size_t first_pick() noexcept {
    if constexpr (N == 1) {
      return 0;
    } else {
      return static_cast<std::size_t>((std::uint64_t{select_random()} * N) >> 32);
    }
  }
  // One of the n set bits of m, uniformly at random (no random number when n is 1). The
  // k-th bit for k = random * n / 2^32: a multiplication where `%` would divide (its bias,
  // under n / 2^32, is far below what any test of fairness could see); and no popcount,
  // which is a library call on a portable build.
  static std::size_t pick(Mask m, std::uint32_t n) noexcept {
    if (n == 1) return lowest(m);
    for (auto k = static_cast<std::uint32_t>((std::uint64_t{select_random()} * n) >> 32); k > 0;
         --k) {
      m &= m - 1;
    }
    return lowest(m);
  }

  // The attempt of operation i (a compare chain over the indices), after a claim (Claimed:
  // no hint, and Event's fire_claimed) or not (the hint first).
  template <bool Claimed, std::size_t I = 0, class Out>
  bool fire(std::size_t i, Out& out) {
    if constexpr (I == N) {
      return false;
    } else {
      if (i != I) return fire<Claimed, I + 1>(i, out);
      auto& op = std::get<I>(ops_);
      if constexpr (!Claimed) {
        if (!ready_hint(op)) return false;  // surely not ready: not worth the attempt
      }
      if constexpr (requires(Emitter<I, Out> e) { op.try_fire_into(e); }) {
        // Built in place (a get: the item moves once, from the queue into the result).
        Emitter<I, Out> emit{out};
        return op.try_fire_into(emit);
      } else {
        using R = std::variant_alternative_t<I, Result>;
        R value{};
        bool fired;
        if constexpr (Claimed) {
          fired = fire_claimed(op, value);
        } else {
          fired = op.try_fire(value);
        }
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
// n == 0 throws std::invalid_argument.
template <class Q>
detail::GetManyOp<Q> get_many(Q& q, std::size_t n) {
  if (n == 0) throw std::invalid_argument("weft: get_many(q, 0): n must be at least 1");
  return detail::GetManyOp<Q>(q, n);
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
// Takes the lock (the selecting thread holds it afterwards, and releases it as usual).
inline detail::LockOp acquire(Lock& l) noexcept {
  return detail::LockOp(l);
}
inline detail::RLockOp acquire(RLock& l) noexcept {
  return detail::RLockOp(l);
}
// Every task of q is done (q.join() would return).
template <class Q>
requires requires(Q& q) {
  q.join();
}
detail::JoinOp<Q> join(Q& q) noexcept {
  return detail::JoinOp<Q>(q);
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
