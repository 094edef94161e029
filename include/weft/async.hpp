// SPDX-License-Identifier: MIT
// weft/async.hpp: co_await weft's queues, events, semaphores and locks (and select over
// them) from C++20 coroutines on a scheduler of your own, mixed freely with threads.
//
//     weft::Queue<Job> jobs(100);                  // fed by threads, drained by coroutines
//     Task consume(Pool& pool) {
//       for (;;) {
//         Job job = co_await weft::async_get(jobs, pool);   // suspends; never blocks Pool
//         run(job);
//         jobs.task_done();
//       }
//     }
//     auto r = co_await weft::async_select_for(pool, 250ms, weft::get(jobs), weft::wait(quit));
//
// A suspended coroutine is a waiter like a parked thread (detail/parker.hpp): it registers on
// the primitive's wait sources, a notifier claims it by the same CAS as a thread, and its wake
// step hands the coroutine's continuation to the scheduler instead of making a futex call.
// The rounds of waiting are the thread loop's (detail/wait_loop.hpp), with the operations of
// select (select.hpp): try, register, suspend, and after a claim retry that operation first.
//
// Every operation takes, after the scheduler, any of: a timeout (std::chrono::duration), a
// deadline (std::chrono::time_point of any clock), a std::stop_token, in any order.
//
// The scheduler (concept weft::Scheduler): `s.schedule(f)` queues f (a weft::AsyncResume: one
// pointer, trivially copyable, `f()` noexcept) to be called later on a thread of the
// scheduler's choosing. schedule() must not call f itself and must not throw: it runs in a
// notifier's noexcept wake step, so an exception ends the program. A timeout needs a timer,
// which the scheduler provides (concept weft::TimedScheduler): `s.arm_timer(t)` calls
// `t.fire()` once, at or after `t.deadline()` (steady clock), from any thread, possibly
// inside arm_timer() if already due (arm_timer may throw: the operation then fails with that
// exception and takes nothing); `s.disarm_timer(t)` (noexcept) returns once t.fire() is not
// running and will not run. The timer (weft::AsyncTimer) lives in the awaiter.
//
// Guarantees (docs/api.md, "Coroutines"):
//  - Never inline: a notifier (put, get, set, release, task_done, shutdown) only claims the
//    coroutine and calls schedule(); the coroutine runs when the scheduler calls the
//    AsyncResume, never inside the notifier's call. An operation that can proceed at once
//    completes without suspending.
//  - No allocation per await: the waiter, its wait nodes and its timer live in the awaiter,
//    in the coroutine frame (the scheduler's queue and timers are the scheduler's business).
//  - A timed-out or cancelled operation takes nothing (an item stays queued, a permit stays
//    free, a put leaves the item with the caller). A timeout or stop that races a notifier's
//    claim either wins (the operation fails, the notifier moves on to the next waiter) or
//    loses (the operation retries with the claim); a claimed wake-up that the coroutine
//    cannot use passes on to the next waiter.
//  - Destroying a coroutine that is suspended in one of these operations unregisters it: the
//    awaiter's destructor aborts the wait, unlinks it, and passes on a wake-up it was given.
//    Once the wake step has handed its AsyncResume to the scheduler, the coroutine must be
//    resumed by it, not destroyed: weft detects that and aborts the program with a message.
//  - The lifetime rule of the primitives holds: a coroutine resumed by a notifier may destroy
//    the primitive at once (the notifier's wake step touches only the awaiter).
//  - Lock may be held across suspensions (it has no owner). RLock is not awaitable: it is
//    owned by a thread, and a coroutine may resume on another thread.
//
// Results mirror the blocking calls: async_get yields the item and throws Empty (timeout),
// ShutDown or Cancelled; async_put throws Full, ShutDown or Cancelled (the item moved from
// only on success); async_wait(Event), async_acquire(Semaphore/Lock) and async_join yield
// false on timeout or stop; async_select yields select's variant, async_select with a
// stop_token and async_select_for/until a std::optional of it (nullopt: timed out or stopped).
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stop_token>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/detail/atomic.hpp"
#include "weft/detail/check.hpp"
#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/wait_loop.hpp"
#include "weft/errors.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

namespace weft {

namespace detail {
class AsyncWaitBase;
inline void async_step(AsyncWaitBase& op) noexcept;
inline void async_timer_fired(AsyncWaitBase& op) noexcept;
}  // namespace detail

// What an awaiting operation gives Scheduler::schedule(): calling it runs the operation's
// next step on the calling thread, and resumes the coroutine there once the operation is
// complete.
class AsyncResume {
 public:
  void operator()() const noexcept { detail::async_step(*op_); }

 private:
  friend class detail::AsyncWaitBase;
  explicit AsyncResume(detail::AsyncWaitBase* op) noexcept : op_(op) {}
  detail::AsyncWaitBase* op_;
};

// The timer of an operation with a timeout, armed with TimedScheduler::arm_timer().
class AsyncTimer {
 public:
  AsyncTimer(const AsyncTimer&) = delete;
  AsyncTimer& operator=(const AsyncTimer&) = delete;
  ~AsyncTimer() = default;

  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
  // Times the operation out, unless it was decided first. Call once.
  void fire() noexcept { detail::async_timer_fired(*owner_); }

 private:
  friend class detail::AsyncWaitBase;
  explicit AsyncTimer(detail::AsyncWaitBase* owner) noexcept : owner_(owner) {}
  detail::AsyncWaitBase* owner_;
  std::chrono::steady_clock::time_point deadline_{};
};

template <class S>
concept Scheduler = requires(S& s, AsyncResume f) {
  { s.schedule(f) }
  noexcept;
};

template <class S>
concept TimedScheduler = Scheduler<S> && requires(S& s, AsyncTimer& t) {
  s.arm_timer(t);
  { s.disarm_timer(t) }
  noexcept;
};

namespace detail {

// The scheduler-independent half of an awaiting operation: the Waiter that notifiers claim,
// the hand-over between the coroutine and whoever decides a round, and the round's
// cancellation sources (stop callback, timer).
//
// Each round of waiting has two parties. The owner is the coroutine's side: it arrives once
// it has registered everywhere and armed the cancellation sources (or withdrawn its
// registrations after a claim raced them). The decider is whoever decided the round: a
// notifier's wake step after its claim, or the stop callback or timer whose abort won (the
// Waiter's CAS lets exactly one of them decide). Each arrives once at the gate; the second
// carries on: the owner continues inline (the coroutine's own call, before suspending), the
// decider hands the continuation to the scheduler. The decider's arrival is its last access
// to the awaiter. An owner that must leave while a decider may still come (the frame is
// destroyed while suspended, or arming a timer threw) arrives as "dying": the decider then
// schedules nothing, and the owner waits for its arrival before the memory can go.
class AsyncWaitBase : public Waiter {
 public:
  AsyncWaitBase(const AsyncWaitBase&) = delete;
  AsyncWaitBase& operator=(const AsyncWaitBase&) = delete;

 protected:
  using Hook = void (*)(AsyncWaitBase&) noexcept;

  // `stop`: a default-constructed token when the operation takes none.
  AsyncWaitBase(Hook schedule, Hook step, Deadline deadline, std::stop_token stop) noexcept
      : Waiter(&wake_step),
        deadline_(deadline),
        schedule_(schedule),
        step_(step),
        stop_(std::move(stop)),
        timer_(this) {
    timer_.deadline_ = SteadyClock::time_point(
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::nanoseconds(deadline.ns())));
  }
  ~AsyncWaitBase() = default;

  // A new round, before registering anywhere (the source's lock publishes it to notifiers,
  // as for Waiter::prepare()).
  void arm_round() noexcept {
    prepare();
    // relaxed: as prepare(); a decider reads it only after a claim or abort it made later.
    gate_.store(0, std::memory_order_relaxed);
  }

  // The owner arrives; true if the decider had arrived, and the owner carries on. acq_rel:
  // acquire sees the decision and what the decider did before deciding (an item's slot);
  // release hands the owner's state to a decider that schedules the continuation.
  bool owner_arrives() noexcept {
    return (gate_.fetch_or(kOwner, std::memory_order_acq_rel) & kDecider) != 0;
  }

  // The owner leaves a round that someone else decided, without being resumed: the decider
  // is told to schedule nothing, and its arrival is waited out.
  void owner_leaves() noexcept {
    // acq_rel: acquire, so a decider that arrived first is done with the awaiter before it
    // is freed; release is not needed (a later decider reads only the kDying bit).
    const std::uint32_t prev = gate_.fetch_or(kDying, std::memory_order_acq_rel);
    if ((prev & (kOwner | kDecider)) == (kOwner | kDecider)) {
      invariant_failed("!(owner && decider)",
                       "weft: a coroutine was destroyed after its resumption had been handed to "
                       "the scheduler; resume it instead",
                       __FILE__, __LINE__);
    }
    // Wake-up source: the decider's arrival (a claimer's wake step right after it released
    // the source's lock, or a stop callback or timer that won the abort): spin, then yield.
    for (int i = 0; (gate_.load(std::memory_order_acquire) & kDecider) == 0; ++i) {
      if (i < kLeaveSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // After registering: the round's cancellation sources. A stop request or a due timer may
  // decide the round at once.
  template <class ArmTimer>
  void arm_cancellation(ArmTimer&& arm_timer) {
    if (stop_.stop_possible()) on_stop_.emplace(stop_, OnStop{this});
    if (!deadline_.is_never()) {
      arm_timer(timer_);
      timer_armed_ = true;
    }
  }
  // Once the round is decided: when this returns, neither cancellation source runs or will
  // run on this awaiter.
  template <class DisarmTimer>
  void disarm_cancellation(DisarmTimer&& disarm_timer) noexcept {
    if (timer_armed_) {
      disarm_timer(timer_);
      timer_armed_ = false;
    }
    on_stop_.reset();  // waits for a callback running on another thread
  }

  bool stop_requested() const noexcept { return stop_.stop_requested(); }
  static AsyncResume resume_of(AsyncWaitBase& a) noexcept { return AsyncResume(&a); }

  Deadline deadline_;

 private:
  friend void async_step(AsyncWaitBase& op) noexcept;
  friend void async_timer_fired(AsyncWaitBase& op) noexcept;

  static constexpr std::uint32_t kOwner = 1;
  static constexpr std::uint32_t kDecider = 2;
  static constexpr std::uint32_t kDying = 4;
  static constexpr int kLeaveSpins = 64;

  // The wake step of a claim (Waiter::wake(), after the notifier's last access to the
  // primitive).
  static void wake_step(Waiter& w) noexcept { static_cast<AsyncWaitBase&>(w).decider_arrives(); }

  // The decider arrives: hands the continuation to the scheduler if the owner is suspended.
  void decider_arrives() noexcept {
    const std::uint32_t prev = gate_.fetch_or(kDecider, std::memory_order_acq_rel);
    // The owner is suspended until the schedule below runs it: the awaiter is still ours.
    if ((prev & (kOwner | kDying)) == kOwner) schedule_(*this);
  }

  // The stop callback and the timer: abort the round; the one that decides it arrives.
  // (abort() sets NOTIFIED itself; the coroutine never sleeps on the word.)
  void abort_round(Decision d) noexcept {
    if (abort(d)) decider_arrives();
  }

  struct OnStop {
    AsyncWaitBase* self;
    void operator()() const noexcept { self->abort_round(Decision::cancelled()); }
  };

  Hook schedule_;  // schedules resume_of(*this) on the operation's scheduler
  Hook step_;      // the owner's next step once a decider scheduled it
  std::stop_token stop_;
  std::optional<std::stop_callback<OnStop>> on_stop_;
  AsyncTimer timer_;
  bool timer_armed_ = false;
  Atomic<std::uint32_t> gate_{0};
};

// How an awaiting operation ended, when it performed nothing.
enum class AsyncEnd : std::uint8_t { done, timed_out, cancelled };

// One awaiting operation over select's operations `Ops` (one for async_get and the like).
// Lives in the coroutine frame (the co_await's temporary); never moves.
template <class S, class... Ops>
class AsyncOp : public AsyncWaitBase {
  static constexpr std::size_t N = sizeof...(Ops);

 public:
  using Result = std::optional<SelectResult<Ops...>>;

  AsyncOp(S& sched, bool biased, Deadline deadline, std::stop_token stop, Ops... ops)
      : AsyncWaitBase(&schedule_on, &step, deadline, std::move(stop)),
        sched_(&sched),
        ops_(ops...),
        selector_(std::apply([](auto&... o) { return Selector<Ops...>(o...); }, ops_)),
        biased_(biased) {
    for (std::uint32_t i = 0; i < N; ++i) {
      nodes_[i].waiter = this;
      nodes_[i].index = i;
    }
  }
  AsyncOp(const AsyncOp&) = delete;
  AsyncOp& operator=(const AsyncOp&) = delete;
  // Destroyed while suspended (the coroutine frame is destroyed): unregisters.
  ~AsyncOp() {
    if (suspended_) [[unlikely]]
      abandon();
  }

  bool await_ready() {
    if (stop_requested()) {
      end_ = AsyncEnd::cancelled;
      return true;
    }
    if (selector_.try_all(biased_, out_)) return true;
    if (deadline_.expired()) {
      end_ = AsyncEnd::timed_out;
      return true;
    }
    return false;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    try {
      return !run(false);
    } catch (...) {
      book_.pass_on();  // the retry after a claim threw: the next waiter gets the wake-up
      throw;
    }
  }

 protected:
  // For await_resume: the operation's exception, rethrown; the result (empty unless done).
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }
  Result& result() noexcept { return out_; }
  AsyncEnd end() const noexcept { return end_; }

 private:
  template <class Fn>
  decltype(auto) apply_ops(Fn&& fn) {
    return std::apply(std::forward<Fn>(fn), ops_);
  }

  // The rounds, from the owner's side: true when the operation is complete (out_ set, or
  // end_ says why not), false when the coroutine is suspended (a decider will schedule it).
  // Mirrors Selector::run over WaitLoop::wait (select.hpp, wait_loop.hpp).
  bool run(bool try_first) {
    for (;;) {
      if (try_first && selector_.try_all(biased_, out_)) return true;
      try_first = true;
      book_.spent();  // the retry after the last claim did not throw
      if (stop_requested()) {
        end_ = AsyncEnd::cancelled;
        return true;
      }
      if (deadline_.expired()) {
        end_ = AsyncEnd::timed_out;
        return true;
      }
      arm_round();
      std::size_t linked = 0;
      Link last = Link::linked;
      const bool all = apply_ops(
          [&](auto&... ops) { return link_all(nodes_, book_.position(), linked, last, ops...); });
      if (!all) {
        if (linked == 0 && last == Link::ready) continue;  // nothing linked: nothing claimed
        // Decide before unlinking: a claimed node was unlinked by its claimer, whose source
        // may be destroyed once that claimer has woken another waiter.
        const bool withdrawn = abort(Decision::timed_out());
        unlink_unclaimed(linked);
        if (withdrawn) continue;  // withdrawn before anyone claimed us
        // A claim raced the abandoned registrations: its wake step arrives at the gate.
        suspended_ = true;
        if (!owner_arrives()) return false;  // it will schedule us
        suspended_ = false;
        if (decided()) return true;
        continue;
      }
      try {
        arm_cancellation([this](AsyncTimer& t) { arm_timer(t); });
      } catch (...) {
        withdraw();
        throw;
      }
      // Suspended: wake-up sources are a notifier claiming one of the nodes, the stop
      // callback, the timer; whichever decides the round arrives at the gate.
      suspended_ = true;
      if (!owner_arrives()) return false;
      suspended_ = false;
      if (decided()) return true;  // decided while we were arming: carry on inline
    }
  }

  // The round was decided and both parties arrived: true when the operation is complete.
  bool decided() {
    disarm_cancellation([this](AsyncTimer& t) noexcept { disarm_timer(t); });
    const Decision d = decision();
    if (d.claimed()) {
      apply_ops([&](auto&... ops) {
        unlink_except(nodes_, N, d.index(), ops...);
        book_.claimed(d.index(), ops...);
      });
      // The source that claimed us announced a change: its operation first.
      return selector_.fire_after_claim(d.index(), out_);
    }
    apply_ops([&](auto&... ops) { unlink_except(nodes_, N, N, ops...); });
    if (d.outcome() == Outcome::cancelled) {
      end_ = AsyncEnd::cancelled;
      return true;
    }
    return false;  // the deadline: one more attempt, then the next round reports it
  }

  // The scheduler runs this (AsyncResume): the owner's side of a round a decider scheduled.
  static void step(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncOp&>(base);
    self.suspended_ = false;
    bool complete = true;
    try {
      complete = self.decided() || self.run(true);
    } catch (...) {
      self.book_.pass_on();
      self.error_ = std::current_exception();
    }
    if (complete) self.handle_.resume();  // the last access: the coroutine may destroy us
  }

  static void schedule_on(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncOp&>(base);
    self.sched_->schedule(resume_of(base));
  }

  void arm_timer(AsyncTimer& t) {
    if constexpr (TimedScheduler<S>) {
      sched_->arm_timer(t);
    } else {
      WEFT_INVARIANT(false, "a deadline needs a TimedScheduler (async.hpp checks the options)");
    }
  }
  void disarm_timer(AsyncTimer& t) noexcept {
    if constexpr (TimedScheduler<S>) sched_->disarm_timer(t);
  }

  // Registered everywhere, not yet arrived, and must leave (arming the timer threw).
  void withdraw() noexcept {
    if (!abort(Decision::cancelled())) {
      owner_leaves();
      pass_on_claim();
    }
    disarm_cancellation([this](AsyncTimer& t) noexcept { disarm_timer(t); });
    unlink_unclaimed(N);
  }

  // The frame is destroyed while the coroutine is suspended here.
  void abandon() noexcept {
    if (!abort(Decision::cancelled())) {
      owner_leaves();  // someone decided the round first: wait until it is done with us
      pass_on_claim();
    }
    disarm_cancellation([this](AsyncTimer& t) noexcept { disarm_timer(t); });
    unlink_unclaimed(N);
  }

  // Once the round is decided: unlinks nodes_[0..count) but a claimed one. Its claimer
  // unlinked it, and the claimed source may be gone by now (its notifier woke another
  // waiter, which destroyed it): it is never touched again.
  void unlink_unclaimed(std::size_t count) noexcept {
    const Decision d = decision();
    apply_ops(
        [&](auto&... ops) { unlink_except(nodes_, count, d.claimed() ? d.index() : N, ops...); });
  }

  // A claim this operation will not use: its wake-up goes to the next waiter. Queue
  // operations pass_on(); a Semaphore's or Lock's claim is passed on by taking what it
  // announced and giving it back (release() claims the next waiter); an Event's or a join's
  // notifier claimed every waiter, so there is no one to pass it to.
  void pass_on_claim() noexcept {
    const Decision d = decision();
    if (!d.claimed()) return;
    std::uint32_t i = 0;
    apply_ops([&](auto&... ops) { ((i++ == d.index() ? pass_on_one(ops) : void()), ...); });
  }
  template <class Op>
  static void pass_on_one(Op& op) noexcept {
    if constexpr (requires { op.pass_on(); }) {
      op.pass_on();
    } else if constexpr (requires { op.give_back(); }) {
      typename Op::result_type r{};
      try {
        if (op.try_fire(r)) op.give_back();
      } catch (...) {  // give_back() of a permit or a lock just taken does not throw
      }
    }
  }

  S* sched_;
  std::tuple<Ops...> ops_;
  Selector<Ops...> selector_;  // refers to ops_
  WaitNode nodes_[N];
  ClaimBook book_;
  Result out_{};
  std::exception_ptr error_;
  std::coroutine_handle<> handle_;
  AsyncEnd end_ = AsyncEnd::done;
  bool biased_;
  bool suspended_ = false;  // the owner arrived and did not carry on: a decider resumes it
};

// ---- options: timeout, deadline, stop_token, in any order ----------------------------------

template <class T>
struct IsDuration : std::false_type {};
template <class Rep, class Period>
struct IsDuration<std::chrono::duration<Rep, Period>> : std::true_type {};
template <class T>
struct IsTimePoint : std::false_type {};
template <class Clock, class Dur>
struct IsTimePoint<std::chrono::time_point<Clock, Dur>> : std::true_type {};

template <class T>
concept AsyncOption =
    IsDuration<std::remove_cvref_t<T>>::value || IsTimePoint<std::remove_cvref_t<T>>::value ||
    std::same_as<std::remove_cvref_t<T>, std::stop_token>;

template <class... Opts>
inline constexpr bool kHasTime = ((IsDuration<std::remove_cvref_t<Opts>>::value ||
                                   IsTimePoint<std::remove_cvref_t<Opts>>::value) ||
                                  ...);

struct AsyncOptions {
  Deadline deadline = Deadline::never();
  std::stop_token stop;  // default-constructed: none
};

// `reject_negative`: the queues' rule (a negative timeout throws std::invalid_argument); the
// other primitives poll, as their blocking calls do.
template <class... Opts>
AsyncOptions async_options(bool reject_negative, Opts&&... opts) {
  static_assert((AsyncOption<Opts> && ...),
                "weft: after the scheduler, an async operation takes a timeout "
                "(std::chrono::duration), a deadline (std::chrono::time_point) or a "
                "std::stop_token");
  AsyncOptions o;
  const auto one = [&](auto&& opt) {
    using T = std::remove_cvref_t<decltype(opt)>;
    if constexpr (IsDuration<T>::value) {
      o.deadline = reject_negative ? queue_deadline(opt) : Deadline::after(opt);
    } else if constexpr (IsTimePoint<T>::value) {
      o.deadline = Deadline::at(opt);
    } else {
      o.stop = opt;
    }
  };
  (one(std::forward<Opts>(opts)), ...);
  static_cast<void>(one);  // no options
  return o;
}

template <class S, class... Opts>
void check_scheduler() {
  static_assert(Scheduler<S>, "weft: the scheduler needs schedule(weft::AsyncResume)");
  static_assert(!kHasTime<Opts...> || TimedScheduler<S>,
                "weft: a timeout or deadline needs a weft::TimedScheduler "
                "(arm_timer(weft::AsyncTimer&), disarm_timer(weft::AsyncTimer&) noexcept)");
}

// ---- the awaitables: AsyncOp plus the mapping of its result --------------------------------

template <class S, class Finish, class... Ops>
class AsyncAwaitable : public AsyncOp<S, Ops...> {
 public:
  using AsyncOp<S, Ops...>::AsyncOp;
  decltype(auto) await_resume() {
    this->rethrow_if_failed();
    return Finish{}(this->result(), this->end());
  }
};

template <class T>
struct GetFinish {
  template <class R>
  T operator()(R& r, AsyncEnd end) const {
    if (!r) {
      if (end == AsyncEnd::cancelled) throw Cancelled();
      throw Empty();
    }
    auto& item = std::get<0>(*r);
    if (!item) throw ShutDown();
    return T(std::move(*item));
  }
};
struct PutFinish {
  template <class R>
  void operator()(R& r, AsyncEnd end) const {
    if (!r) {
      if (end == AsyncEnd::cancelled) throw Cancelled();
      throw Full();
    }
    if (!std::get<0>(*r)) throw ShutDown();
  }
};
struct BoolFinish {
  template <class R>
  bool operator()(R& r, AsyncEnd) const noexcept {
    return r.has_value();
  }
};
struct SelectFinish {  // no timeout, no stop: an operation was performed
  template <class R>
  auto operator()(R& r, AsyncEnd) const {
    return std::move(*r);
  }
};
struct SelectOptionalFinish {
  template <class R>
  R operator()(R& r, AsyncEnd) const {
    return std::move(r);
  }
};

template <class S, class Finish, class... Ops>
using Awaitable = AsyncAwaitable<S, Finish, Ops...>;

}  // namespace detail

namespace detail {
inline void async_step(AsyncWaitBase& op) noexcept {
  op.step_(op);
}
inline void async_timer_fired(AsyncWaitBase& op) noexcept {
  op.abort_round(Decision::timed_out());
}
}  // namespace detail

// ---- queues ------------------------------------------------------------------------------

// T (moved out of the queue); throws Empty on timeout, ShutDown, Cancelled.
template <class Q, class S, class... Opts>
requires requires {
  typename Q::value_type;
}
auto async_get(Q& q, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(true, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::GetFinish<typename Q::value_type>, detail::GetOp<Q>>(
      sched, false, o.deadline, std::move(o.stop), detail::GetOp<Q>(q));
}

// Moves from `item` only when the put succeeds; throws Full on timeout, ShutDown, Cancelled.
// `item` is referenced until the co_await completes (a temporary lives that long).
template <class Q, class S, class... Opts>
requires requires {
  typename Q::value_type;
}
auto async_put(Q& q, S& sched, typename Q::value_type&& item, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(true, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::PutFinish, detail::PutOp<Q>>(
      sched, false, o.deadline, std::move(o.stop), detail::PutOp<Q>(q, item));
}

// true once every task is done; false on timeout or stop.
template <class Q, class S, class... Opts>
requires requires(Q& q) {
  q.join();
}
auto async_join(Q& q, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(true, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::BoolFinish, detail::JoinOp<Q>>(
      sched, false, o.deadline, std::move(o.stop), detail::JoinOp<Q>(q));
}

// ---- event, semaphore, lock ----------------------------------------------------------------

// true when set (a set() that claimed the waiter counts even if clear() ran since); false on
// timeout or stop.
template <class S, class... Opts>
auto async_wait(Event& e, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(false, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::BoolFinish, detail::EventOp>(
      sched, false, o.deadline, std::move(o.stop), detail::EventOp(e));
}

namespace detail {
// A permit or the lock, taken and given back: how a claim the coroutine will not use passes
// on (AsyncOp::pass_on_claim).
class AsyncAcquireOp : public AcquireOp {
 public:
  using AcquireOp::AcquireOp;
  void give_back() { s_->release(); }
};
class AsyncLockOp : public LockOp {
 public:
  using LockOp::LockOp;
  void give_back() { l_->release(); }
};
}  // namespace detail

// true with a permit; false on timeout or stop.
template <class S, class... Opts>
auto async_acquire(Semaphore& s, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(false, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::BoolFinish, detail::AsyncAcquireOp>(
      sched, false, o.deadline, std::move(o.stop), detail::AsyncAcquireOp(s));
}

// true with the lock (held by nobody in particular: release it from anywhere); false on
// timeout or stop.
template <class S, class... Opts>
auto async_acquire(Lock& l, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(false, std::forward<Opts>(opts)...);
  return detail::Awaitable<S, detail::BoolFinish, detail::AsyncLockOp>(
      sched, false, o.deadline, std::move(o.stop), detail::AsyncLockOp(l));
}

// RLock belongs to a thread (it counts re-entries by the owning thread), and a coroutine may
// resume on another thread than the one that acquired it: not awaitable. Use a Lock.
template <class S, class... Opts>
void async_acquire(RLock&, S&, Opts&&...) = delete;

// ---- select --------------------------------------------------------------------------------

// Performs exactly one of `ops` (select.hpp's operations, or yours); select's variant.
template <class S, detail::SelectOp... Ops>
auto async_select(S& sched, Ops... ops) {
  detail::check_scheduler<S>();
  return detail::Awaitable<S, detail::SelectFinish, Ops...>(sched, false, detail::Deadline::never(),
                                                            std::stop_token(), ops...);
}
template <class S, detail::SelectOp... Ops>
auto async_select(S& sched, biased_t, Ops... ops) {
  detail::check_scheduler<S>();
  return detail::Awaitable<S, detail::SelectFinish, Ops...>(sched, true, detail::Deadline::never(),
                                                            std::stop_token(), ops...);
}
// std::optional of the variant: nullopt if stopped first.
template <class S, detail::SelectOp... Ops>
auto async_select(S& sched, std::stop_token stop, Ops... ops) {
  detail::check_scheduler<S>();
  return detail::Awaitable<S, detail::SelectOptionalFinish, Ops...>(
      sched, false, detail::Deadline::never(), std::move(stop), ops...);
}
// nullopt on timeout (or stop).
template <class S, class Rep, class Period, detail::SelectOp... Ops>
auto async_select_for(S& sched, std::chrono::duration<Rep, Period> timeout, Ops... ops) {
  detail::check_scheduler<S, decltype(timeout)>();
  return detail::Awaitable<S, detail::SelectOptionalFinish, Ops...>(
      sched, false, detail::select_deadline(timeout), std::stop_token(), ops...);
}
template <class S, class Rep, class Period, detail::SelectOp... Ops>
auto async_select_for(S& sched, std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
                      Ops... ops) {
  detail::check_scheduler<S, decltype(timeout)>();
  return detail::Awaitable<S, detail::SelectOptionalFinish, Ops...>(
      sched, false, detail::select_deadline(timeout), std::move(stop), ops...);
}
template <class S, class Clock, class Duration, detail::SelectOp... Ops>
auto async_select_until(S& sched, std::chrono::time_point<Clock, Duration> deadline, Ops... ops) {
  detail::check_scheduler<S, decltype(deadline)>();
  return detail::Awaitable<S, detail::SelectOptionalFinish, Ops...>(
      sched, false, detail::Deadline::at(deadline), std::stop_token(), ops...);
}
template <class S, class Clock, class Duration, detail::SelectOp... Ops>
auto async_select_until(S& sched, std::chrono::time_point<Clock, Duration> deadline,
                        std::stop_token stop, Ops... ops) {
  detail::check_scheduler<S, decltype(deadline)>();
  return detail::Awaitable<S, detail::SelectOptionalFinish, Ops...>(
      sched, false, detail::Deadline::at(deadline), std::move(stop), ops...);
}

}  // namespace weft
