// SPDX-License-Identifier: MIT
// weft/async.hpp: co_await weft's queues, events, semaphores, locks, conditions and barriers
// (and select over them) from C++20 coroutines on a scheduler of your own, mixed freely with
// threads.
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
// A scheduler that will never run a resumption it was given (it shuts down with a queue of
// them) calls `f.drop()` instead of `f()`: the operation ends without completing and gives
// up what it was handed (a claimed item, permit, lock or Condition notify passes on to the
// next waiter; a Barrier arrival is withdrawn, or leaves a cycle that tripped), and the
// coroutine is never resumed; its frame may then be destroyed. Forgetting the AsyncResume
// instead would strand that claimed wake-up (an item nobody gets while getters sleep).
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
//    awaiter's destructor aborts the wait, unlinks it, and passes on a wake-up it was given
//    (a Condition notify even while its wake step is deferred to a release of the lock that
//    the destroying thread holds: it is taken back, Lock::undefer); a Barrier arrival is
//    withdrawn (or leaves a tripped cycle). Once the wake step has handed its AsyncResume to
//    the scheduler, the coroutine must be resumed by it (or the AsyncResume dropped), not
//    destroyed: weft detects that and aborts the program with a message.
//  - The lifetime rule of the primitives holds: a coroutine resumed by a notifier may destroy
//    the primitive at once (the notifier's wake step touches only the awaiter).
//  - Lock may be held across suspensions (it has no owner). RLock is not awaitable: it is
//    owned by a thread, and a coroutine may resume on another thread. For the same reason a
//    Condition is awaitable only over a Lock, which the call names (a compile-time error
//    for an RLock): async_wait(cv, lock, sched).
//  - Condition keeps wait morphing: notify() claims the coroutine and defers its wake step to
//    the release that frees the lock, and that step only schedules it; the coroutine then
//    takes the lock (registering on it, in front after losing it to a running thread).
//
// Results mirror the blocking calls: async_get yields the item and throws Empty (timeout),
// ShutDown or Cancelled; async_put throws Full, ShutDown or Cancelled (an rvalue item moved
// from only on success; a const item is copied by the call); async_wait(Event),
// async_acquire(Semaphore/Lock) and async_join yield false on timeout or stop;
// async_wait(Condition, Lock) yields whether it was notified and async_wait_for(Condition,
// Lock, pred) pred()'s last value, the lock held again in every case; async_wait(Barrier)
// yields the index and throws BrokenBarrierError or Cancelled (Barrier::wait()'s rules: a
// timeout breaks the barrier, a stop before the trip withdraws); async_select yields
// select's variant, async_select with a stop_token and async_select_for/until a
// std::optional of it (nullopt: timed out or stopped).
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/barrier.hpp"
#include "weft/condition.hpp"
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
inline void async_drop(AsyncWaitBase& op) noexcept;
inline void async_timer_fired(AsyncWaitBase& op) noexcept;
}  // namespace detail

// What an awaiting operation gives Scheduler::schedule(): calling it runs the operation's
// next step on the calling thread, and resumes the coroutine there once the operation is
// complete.
class AsyncResume {
 public:
  void operator()() const noexcept { detail::async_step(*op_); }

  // Instead of calling it: the scheduler will never run this resumption (it is shutting down
  // and discards what it queued). The operation ends without completing and gives up what it
  // was handed (a claimed item, permit, lock or notify passes on to the next waiter; a
  // Barrier arrival is withdrawn, or leaves a cycle that tripped); the coroutine stays
  // suspended and is never resumed, and its owner may destroy its frame afterwards (or leak
  // it). Call at most one of drop() and operator(), once.
  void drop() const noexcept { detail::async_drop(*op_); }

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

class AsyncStop;

// How an operation is stopped: a std::stop_token (the generic API; default-constructed: it
// cannot be), or an AsyncStop its integration owns (weft::asio: no allocation per operation).
struct AsyncStopRef {
  AsyncStopRef(std::stop_token t) noexcept : token(std::move(t)) {}  // NOLINT(*-explicit-*)
  AsyncStopRef(AsyncStop* s) noexcept : inplace(s) {}                // NOLINT(*-explicit-*)
  std::stop_token token;
  AsyncStop* inplace = nullptr;
};

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
  // `drop`: AsyncResume::drop(); null if the operation has no way to give up a scheduled
  // resumption (dropping one then ends the program with a message).
  AsyncWaitBase(Hook schedule, Hook step, Deadline deadline, AsyncStopRef stop,
                Hook drop = nullptr) noexcept
      : Waiter(&wake_step),
        deadline_(deadline),
        schedule_(schedule),
        step_(step),
        drop_(drop),
        stop_(std::move(stop.token)),
        inplace_stop_(stop.inplace),
        timer_(this) {
    set_round_deadline(deadline);
  }
  ~AsyncWaitBase() = default;

  // The deadline of the rounds that follow (an operation whose deadline starts later, or
  // changes between its waits: Barrier, Condition).
  void set_round_deadline(Deadline deadline) noexcept {
    deadline_ = deadline;
    timer_.deadline_ = SteadyClock::time_point(
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::nanoseconds(deadline.ns())));
  }

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
  // The owner arrives after arming a round: false when the coroutine is now suspended (the
  // decider schedules it; suspended_ says so until then), true when the round was decided
  // first and the owner carries on.
  bool arrive_or_suspend() noexcept {
    suspended_ = true;
    if (!owner_arrives()) return false;
    suspended_ = false;
    return true;
  }

  // The owner decided the round itself (or a decider came while it was arming) and must not
  // carry on in its own call: it hands its continuation to the scheduler, as a decider would.
  // The coroutine counts as suspended until the scheduler runs it.
  void schedule_self() noexcept {
    suspended_ = true;
    // acq_rel, as owner_arrives(); a decider that arrived first sees kOwner only now and
    // schedules nothing, so the owner does.
    if ((gate_.fetch_or(kOwner, std::memory_order_acq_rel) & kDecider) != 0) {
      schedule_(*this);
    } else {
      decider_arrives();  // the owner is the decider: the gate is now complete
    }
  }

  // The owner leaves a round that someone else decided, without being resumed: the decider
  // is told to schedule nothing, and its arrival is waited out.
  void owner_leaves() noexcept {
    owner_leaves([]() noexcept { return false; });
  }
  // The same, when the decider's wake step may be deferred (a notify's, to the release of a
  // Lock the leaving thread may hold itself): take_back() withdraws the wake step if it is
  // still deferred (true: it was, and no decider will come).
  template <class TakeBack>
  void owner_leaves(TakeBack&& take_back) noexcept {
    // acq_rel: acquire, so a decider that arrived first is done with the awaiter before it
    // is freed; release is not needed (a later decider reads only the kDying bit).
    const std::uint32_t prev = gate_.fetch_or(kDying, std::memory_order_acq_rel);
    if ((prev & (kOwner | kDecider)) == (kOwner | kDecider)) {
      invariant_failed("!(owner && decider)",
                       "weft: a coroutine was destroyed after its resumption had been handed to "
                       "the scheduler; resume it, or drop() the AsyncResume, instead",
                       __FILE__, __LINE__);
    }
    // Wake-up source: the decider's arrival (a claimer's wake step right after it released
    // the source's lock, or a stop callback or timer that won the abort), or take_back()
    // finding the wake step still deferred: spin, then yield.
    for (int i = 0; (gate_.load(std::memory_order_acquire) & kDecider) == 0; ++i) {
      if (take_back()) return;
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
    if (inplace_stop_ != nullptr) {
      attach_inplace_stop();
    } else if (stop_.stop_possible()) {
      on_stop_.emplace(stop_, OnStop{this});
    }
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
    if (inplace_stop_ != nullptr) detach_inplace_stop();
    on_stop_.reset();  // waits for a callback running on another thread
  }

  // The same with the timer of scheduler `sched`.
  template <class S>
  void arm_cancellation_on(S& sched) {
    if constexpr (TimedScheduler<S>) {
      arm_cancellation([&sched](AsyncTimer& t) { sched.arm_timer(t); });
    } else {
      arm_cancellation([](AsyncTimer&) noexcept {
        WEFT_INVARIANT(false, "a deadline needs a TimedScheduler (async.hpp checks the options)");
      });
    }
  }
  template <class S>
  void disarm_cancellation_on(S& sched) noexcept {
    if constexpr (TimedScheduler<S>) {
      disarm_cancellation([&sched](AsyncTimer& t) noexcept { sched.disarm_timer(t); });
    } else {
      disarm_cancellation([](AsyncTimer&) noexcept {});
    }
  }

  inline bool stop_requested() const noexcept;
  static AsyncResume resume_of(AsyncWaitBase& a) noexcept { return AsyncResume(&a); }

  Deadline deadline_;
  bool suspended_ = false;  // the owner arrived and did not carry on: a decider resumes it

 private:
  friend void async_step(AsyncWaitBase& op) noexcept;
  friend void async_drop(AsyncWaitBase& op) noexcept;
  friend void async_timer_fired(AsyncWaitBase& op) noexcept;
  friend class AsyncStop;

  inline void attach_inplace_stop() noexcept;
  inline void detach_inplace_stop() noexcept;

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
  Hook drop_;      // instead of step_, when the scheduler will never run it (may be null)
  std::stop_token stop_;
  AsyncStop* inplace_stop_;  // instead of stop_, when set
  std::optional<std::stop_callback<OnStop>> on_stop_;
  AsyncTimer timer_;
  bool timer_armed_ = false;
  Atomic<std::uint32_t> gate_{0};
};

// A stop source that lives in its owner (no allocation, unlike std::stop_source), with room
// for one callback at a time: the abort of the round its operation is waiting in. weft::asio
// keeps one per operation, requested by the cancellation slot or the context's shutdown
// (both on the operation's executor), or by a std::stop_token's stop_callback, on whatever
// thread calls request_stop(), at any time: that requester is why request() and detach()
// below agree through one atomic word.
class AsyncStop {
 public:
  bool requested() const noexcept {
    // acquire: a caller that sees the request sees what the requester did before it.
    return (s_.load(std::memory_order_acquire) & kRequested) != 0;
  }
  // Requests the stop (once; later calls do nothing) and aborts the round of the attached
  // awaiter, if any, here.
  void request() noexcept {
    // relaxed: the first guess of the CAS below, which orders what it must.
    std::uint32_t s = s_.load(std::memory_order_relaxed);
    std::uint32_t next = 0;
    do {
      if ((s & kRequested) != 0) return;
      next = s | kRequested | ((s & kAttached) != 0 ? kRunning : 0);
      // acq_rel: acquire pairs with attach()'s release (target_ is set); release publishes
      // what the requester did before to requested().
    } while (
        !s_.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed));
    if ((s & kAttached) == 0) return;
    target_->abort_round(Decision::cancelled());
    // release: detach() waiting for this sees the abort's effects before the awaiter goes.
    s_.fetch_and(~kRunning, std::memory_order_release);
  }

 private:
  friend class AsyncWaitBase;
  static constexpr std::uint32_t kRequested = 1;
  static constexpr std::uint32_t kAttached = 2;
  static constexpr std::uint32_t kRunning = 4;

  // From now on a request aborts w's round; if one came first, the round is aborted here.
  void attach(AsyncWaitBase* w) noexcept {
    target_ = w;
    // acq_rel: release publishes target_ to request(); acquire sees a request made before.
    if ((s_.fetch_or(kAttached, std::memory_order_acq_rel) & kRequested) != 0) {
      s_.fetch_and(~kAttached, std::memory_order_relaxed);  // no request() will read it now
      w->abort_round(Decision::cancelled());
    }
  }
  // When this returns, no request() runs the attached abort or will.
  void detach() noexcept {
    // acquire: a request() that saw kAttached set kRunning in the same RMW, seen here.
    const std::uint32_t prev = s_.fetch_and(~kAttached, std::memory_order_acquire);
    if ((prev & kAttached) == 0) return;
    // Wake-up source: the request() running the abort on another thread clearing kRunning.
    // It never waits for this thread: at most it takes a lock briefly to schedule the
    // operation (weft::asio's service lock, held for a few pointer writes and never while
    // waiting here, or the executor's queue lock). Spin, then yield.
    for (int i = 0; (s_.load(std::memory_order_acquire) & kRunning) != 0; ++i) {
      if (i < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  Atomic<std::uint32_t> s_{0};
  AsyncWaitBase* target_ = nullptr;
};

inline bool AsyncWaitBase::stop_requested() const noexcept {
  return inplace_stop_ != nullptr ? inplace_stop_->requested() : stop_.stop_requested();
}
inline void AsyncWaitBase::attach_inplace_stop() noexcept {
  inplace_stop_->attach(this);
}
inline void AsyncWaitBase::detach_inplace_stop() noexcept {
  inplace_stop_->detach();
}

// How an awaiting operation ended, when it performed nothing.
enum class AsyncEnd : std::uint8_t { done, timed_out, cancelled };

// One awaiting operation over select's operations `Ops` (one for async_get and the like).
// Lives in the coroutine frame (the co_await's temporary); never moves.
template <class S, class... Ops>
class AsyncOp : public AsyncWaitBase {
  static constexpr std::size_t N = sizeof...(Ops);

 public:
  using Result = std::optional<SelectResult<Ops...>>;

  AsyncOp(S& sched, bool biased, Deadline deadline, AsyncStopRef stop, Ops... ops)
      : AsyncWaitBase(&schedule_on, &step, deadline, std::move(stop), &drop),
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
    if (taken(selector_.try_all(biased_, out_))) return true;
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
  // Instead of await_ready()/await_suspend(), for an integration whose initiating call may
  // neither complete the operation nor take anything (weft::asio: the handler must not run
  // inside it, and a context destroyed before the completion runs must find nothing
  // taken). Nothing is attempted here. Returns true when nothing was registered: the caller
  // then hands resume_of(*this) to its scheduler itself, and that first step makes the first
  // attempt (no round, no gate: nobody else can decide anything). So it is when a source may
  // be ready (its ready_hint(), a look without a lock, or its registration finding it ready),
  // when a timeout is to be armed (which may throw) or a stop was already requested.
  // Otherwise the operation registers and waits for a decider as after a failed attempt
  // (false): a waiting operation costs no extra scheduling. The coroutine is suspended
  // either way.
  [[nodiscard]] bool initiate(std::coroutine_handle<> h) noexcept {
    handle_ = h;
    if (!deadline_.is_never() || stop_requested() || hinted_ready()) {
      initial_ = true;
      return true;
    }
    arm_round();
    std::size_t linked = 0;
    Link last = Link::linked;
    bool all = false;
    try {
      all = apply_ops(
          [&](auto&... ops) { return link_all(nodes_, book_.position(), linked, last, ops...); });
    } catch (...) {  // the first step links again, and reports what it throws
    }
    if (!all) {
      // Nothing was ever linked (a source ready at once): nothing can have been claimed. A
      // node linked and withdrawn again (Link::withdrawn) may have been claimed meanwhile.
      if (linked == 0 && last == Link::ready) {
        initial_ = true;
        return true;
      }
      // Decide before unlinking, as run() does.
      const bool withdrawn = abort(Decision::timed_out());
      unlink_unclaimed(linked);
      if (withdrawn) {  // nobody claimed us: the first step makes the attempt
        initial_ = true;
        return true;
      }
      // A claim raced the registrations: its decider schedules us, unless it came first.
      will_suspend();
      if (arrive_or_suspend()) schedule_self();
      return false;
    }
    arm_cancellation_on(*sched_);  // no timer: the stop callback only, which does not throw
    // Suspended: wake-up sources are a notifier claiming one of the nodes and the stop
    // callback; whichever decides the round arrives at the gate and schedules us.
    will_suspend();
    if (arrive_or_suspend()) schedule_self();  // decided while we were arming
    return false;
  }
  S& scheduler() noexcept { return *sched_; }

 private:
  // Some source with a ready_hint() says it may be ready (one without a hint says nothing:
  // its registration looks under the source's lock).
  bool hinted_ready() noexcept {
    return apply_ops([](auto&... ops) {
      const auto one = [](auto& op) noexcept {
        if constexpr (requires { op.ready_hint(); }) {
          return op.ready_hint();
        } else {
          return false;
        }
      };
      return (one(ops) || ...);
    });
  }
  // The scheduler's optional hook (weft::asio): the owner is registered and about to arrive
  // at the gate, after which a decider may call schedule() from any thread.
  void will_suspend() noexcept {
    if constexpr (requires(S & s) { s.will_suspend(); }) sched_->will_suspend();
  }

 public:
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
      if (try_first && taken(selector_.try_all(biased_, out_))) return true;
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
        will_suspend();
        if (!arrive_or_suspend()) return false;  // it will schedule us
        if (decided()) return true;
        continue;
      }
      try {
        arm_cancellation_on(*sched_);
      } catch (...) {
        withdraw();
        throw;
      }
      // Suspended: wake-up sources are a notifier claiming one of the nodes, the stop
      // callback, the timer; whichever decides the round arrives at the gate.
      will_suspend();
      if (!arrive_or_suspend()) return false;
      if (decided()) return true;  // decided while we were arming: carry on inline
    }
  }

  // The round was decided and both parties arrived: true when the operation is complete.
  bool decided() {
    disarm_cancellation_on(*sched_);
    const Decision d = decision();
    if (d.claimed()) {
      apply_ops([&](auto&... ops) {
        unlink_except(nodes_, N, d.index(), ops...);
        book_.claimed(d.index(), ops...);
      });
      // The source that claimed us announced a change: its operation first.
      return taken(selector_.fire_after_claim(d.index(), out_));
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
      // initiate()'s first step: no round was armed, the attempt comes first.
      complete =
          std::exchange(self.initial_, false) ? self.run(true) : self.decided() || self.run(true);
    } catch (...) {
      self.book_.pass_on();
      self.error_ = std::current_exception();
    }
    if (complete) self.handle_.resume();  // the last access: the coroutine may destroy us
  }

  // AsyncResume::drop(): the round was decided and will never be continued. A claim passes
  // on (the claimed node was unlinked by its claimer); the rest is unlinked.
  static void drop(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncOp&>(base);
    self.suspended_ = false;  // the frame's destruction, if it comes, has nothing to undo
    if (std::exchange(self.initial_, false)) return;  // initiate()'s: nothing registered
    self.disarm_cancellation_on(*self.sched_);
    self.pass_on_claim();
    self.unlink_unclaimed(N);
  }

  static void schedule_on(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncOp&>(base);
    self.sched_->schedule(resume_of(base));
  }

  // Registered everywhere, not yet arrived, and must leave (arming the timer threw).
  void withdraw() noexcept {
    if (!abort(Decision::cancelled())) {
      owner_leaves();
      pass_on_claim();
    }
    disarm_cancellation_on(*sched_);
    unlink_unclaimed(N);
  }

  // The frame is destroyed while the coroutine is suspended here.
  void abandon() noexcept {
    if (!abort(Decision::cancelled())) {
      owner_leaves();  // someone decided the round first: wait until it is done with us
      pass_on_claim();
    }
    disarm_cancellation_on(*sched_);
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

  // After an attempt: `fired` when an operation was performed. A Lock it took is the
  // coroutine's, held across resumptions on any thread, not the thread's that ran the
  // attempt: TSAN must not see that thread hold it (Lock::tsan_disown).
  bool taken(bool fired) noexcept {
    if (fired && out_) {
      std::size_t i = 0;
      const std::size_t k = out_->index();
      apply_ops([&](auto&... ops) { ((i++ == k ? disown_one(ops) : void()), ...); });
    }
    return fired;
  }
  template <class Op>
  static void disown_one(Op& op) noexcept {
    if constexpr (requires { op.disown(); }) op.disown();
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
  bool initial_ = false;  // initiate() left the first step to its caller; it has not run
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
inline void async_drop(AsyncWaitBase& op) noexcept {
  if (op.drop_ == nullptr) [[unlikely]] {
    invariant_failed("drop_ != nullptr", "weft: this operation cannot drop its resumption",
                     __FILE__, __LINE__);
  }
  op.drop_(op);
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

namespace detail {
// async_put's copy of a const item: a base, so that it is built before the operation that
// refers to it, and lives in the awaiter (the coroutine frame) until the co_await completes.
template <class T>
struct AsyncItemCopy {
  // NOLINTNEXTLINE(modernize-pass-by-value): one copy, made here; by value adds a move
  explicit AsyncItemCopy(const T& item) : copy(item) {}
  T copy;
};
template <class S, class Q>
class AsyncPutCopy : private AsyncItemCopy<typename Q::value_type>,
                     public Awaitable<S, PutFinish, PutOp<Q>> {
 public:
  AsyncPutCopy(S& sched, Q& q, const typename Q::value_type& item, AsyncOptions o)
      : AsyncItemCopy<typename Q::value_type>(item),
        Awaitable<S, PutFinish, PutOp<Q>>(sched, false, o.deadline, std::move(o.stop),
                                          PutOp<Q>(q, this->copy)) {}
};
}  // namespace detail

// The same with a copy of `item`, made by this call and kept in the awaiter (the queue
// receives it by move on success, as with Queue::put(const T&)); `item` is not referenced
// afterwards.
template <class Q, class S, class... Opts>
requires std::copy_constructible<typename Q::value_type>
auto async_put(Q& q, S& sched, const typename Q::value_type& item, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  return detail::AsyncPutCopy<S, Q>(sched, q, item,
                                    detail::async_options(true, std::forward<Opts>(opts)...));
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

// ---- condition and barrier -----------------------------------------------------------------

namespace detail {

// What AsyncLockedWait needs of Lock, Condition and Barrier.
struct AsyncAccess {
  using BarrierArrival = Barrier::AsyncArrival;
  using BarrierTimeout = Barrier::Timeout;

  // For a coroutine: held by no thread (Lock::tsan_disown).
  static bool try_acquire(Lock& l) noexcept {
    if (!SelectAccess::try_acquire(l)) return false;
    SelectAccess::disown(l);
    return true;
  }
  static Link link_lock(Lock& l, WaitNode& node, Position pos) {
    return LockAcquireOp(l).link(node, pos);
  }
  static void unlink_lock(Lock& l, WaitNode& node) noexcept { LockAcquireOp(l).unlink(node); }
  // A Condition's waiters are FIFO and always wait: linked at the back, never "ready".
  static void link_condition(Condition& c, WaitNode& node) {
    c.waiters_.link(node, Position::back, [] { return false; });
  }
  static void unlink_condition(Condition& c, WaitNode& node) noexcept { c.waiters_.unlink(node); }
  static bool undefer(Lock& l, const WaitNode& node) noexcept { return l.undefer(node); }
  // A notify that its waiter will not use: claims the next waiter, whose wake-up is deferred
  // to the release that frees `l` (at once if `l` is free), as notify() does.
  static void pass_on_notify(Condition& c, Lock& l) noexcept {
    WakeBatch claimed;
    c.waiters_.claim(claimed, 1);
    l.defer_wakes(claimed);
  }
  static bool is_lock_of(const Condition& c, const Lock& l) noexcept {
    return !c.lock_.recursive && c.lock_.lock == static_cast<const void*>(&l);
  }

  static Lock& lock_of(Barrier& b) noexcept { return b.lock_; }
  static Condition& changed_of(Barrier& b) noexcept { return b.changed_; }
  static const std::optional<BarrierTimeout>& default_timeout(const Barrier& b) noexcept {
    return b.default_timeout_;
  }
  static bool step(Barrier& b, BarrierArrival& a, bool stopped, Deadline& wait_deadline) {
    return b.async_step(a, stopped, wait_deadline);
  }
  static void abandon(Barrier& b, BarrierArrival& a) noexcept { b.async_abandon(a); }
};

// How the last Condition wait of an AsyncLockedWait ended, for its body's next step.
enum class AsyncWaitEnd : std::uint8_t { none, notified, timed_out, cancelled };

// A coroutine's wait over a weft::Lock and a Condition built over it: the body's steps run
// with the lock held, and between them the coroutine waits on the Condition exactly as
// Condition::wait() does (registered before the lock is released; notified, timed out or
// stopped; the lock taken again, unconditionally), but suspended instead of parked.
//
// A Body has
//     bool step(AsyncWaitEnd last, bool stopped, Deadline& wait_deadline)
//         with the lock held: true when the operation is over (or it throws), false to
//         wait on the Condition until wait_deadline; `last` says how the previous wait ended
//     result()                   what the co_await yields
//     void abandon() noexcept    the coroutine is gone before the operation was over
//     kReleaseAtEnd              the lock is released when the operation ends (Barrier's
//                                own lock) rather than left held (the user's, Condition)
//     kPassOnNotify              a notify claimed for a coroutine that is gone passes on
//
// The stages: acquire (take the lock, or register on it: no timer, no stop), locked (run the
// body), waiting (registered on the Condition, the lock released). Wait morphing holds: a
// notify claims the waiter and defers its wake step to the release that frees the lock, and
// the wake step only schedules the coroutine, which then takes the lock (registering on it
// in front if a running thread took it first). Lives in the coroutine frame; never moves.
template <class S, class Body>
class AsyncLockedWait : public AsyncWaitBase {
 public:
  // `holding`: the caller holds `lock` (Condition); otherwise the first step takes it.
  AsyncLockedWait(S& sched, Lock& lock, Condition& cond, AsyncStopRef stop, bool holding, Body body)
      : AsyncWaitBase(&schedule_on, &step, Deadline::never(), std::move(stop), &drop),
        sched_(&sched),
        lock_(&lock),
        cond_(&cond),
        body_(std::move(body)),
        stage_(holding ? Stage::locked : Stage::acquire),
        holding_(holding) {
    node_.waiter = this;
    node_.index = 0;
  }
  AsyncLockedWait(const AsyncLockedWait&) = delete;
  AsyncLockedWait& operator=(const AsyncLockedWait&) = delete;
  // Destroyed while suspended (the coroutine frame is destroyed): unregisters.
  ~AsyncLockedWait() {
    if (suspended_) [[unlikely]]
      abandon();
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle_ = h;
    return !run();
  }
  decltype(auto) await_resume() {
    if (error_) std::rethrow_exception(error_);
    return body_.result();
  }

 protected:
  // Instead of await_suspend(), for an integration whose initiating call must neither run
  // the operation nor take anything (weft::asio): nothing happens here but the record that
  // the first step has not run. Returns true, as AsyncOp::initiate() does when it registered
  // nothing: the caller hands resume_of(*this) to its scheduler, and that step begins.
  [[nodiscard]] bool initiate(std::coroutine_handle<> h) noexcept {
    handle_ = h;
    initial_ = true;
    return true;
  }
  S& scheduler() noexcept { return *sched_; }
  // For await_resume() of such an integration: what the operation threw, and the body.
  const std::exception_ptr& error() const noexcept { return error_; }
  Body& body() noexcept { return body_; }

 private:
  enum class Stage : std::uint8_t { acquire, acquiring, locked, waiting };

  // The owner's side: true when the operation is over (error_ set if it failed), false when
  // the coroutine is suspended (a decider will schedule it).
  bool run() noexcept {
    try {
      for (;;) {
        if (stage_ != Stage::locked) {
          if (!acquire()) return false;
          continue;
        }
        const AsyncWaitEnd last = std::exchange(last_, AsyncWaitEnd::none);
        notify_held_ = false;  // the body hears of the notify: it is used
        Deadline wait_deadline = Deadline::never();
        if (body_.step(last, stop_requested(), wait_deadline)) break;
        if (!wait(wait_deadline)) return false;
      }
    } catch (...) {
      error_ = std::current_exception();
    }
    if (Body::kReleaseAtEnd && holding_) release_quietly();
    // Arming the timer threw between two steps: the body undoes what it did (a Barrier
    // arrival is withdrawn). A body that threw itself has nothing left to undo.
    if (error_) body_.abandon();
    return true;
  }

  // True with the lock; false when suspended.
  bool acquire() {
    for (;;) {
      if (AsyncAccess::try_acquire(*lock_)) {
        holding_ = true;
        lock_pos_ = Position::back;
        stage_ = Stage::locked;
        return true;
      }
      arm_round();
      if (AsyncAccess::link_lock(*lock_, node_, lock_pos_) != Link::linked) continue;  // free
      stage_ = Stage::acquiring;
      // Suspended. Wake-up source: a release claiming node_ (nothing else: the lock is taken
      // again unconditionally, as a thread's Condition wait does).
      will_suspend();
      if (!arrive_or_suspend()) return false;
      lock_decided();
    }
  }
  void lock_decided() noexcept {
    WEFT_INVARIANT(decision().claimed(), "only a release decides a round on the lock");
    lock_pos_ = Position::front;  // if a running thread takes the lock first, keep the place
    stage_ = Stage::acquire;
  }

  // One wait on the Condition: true when it is over (then the lock is taken again, or is
  // still held), false when suspended.
  bool wait(Deadline wait_deadline) {
    if (stop_requested()) {  // nothing changes, as Condition::wait(stop) already stopped
      last_ = AsyncWaitEnd::cancelled;
      return true;
    }
    if (wait_deadline.expired()) {  // as Condition::wait(0): released and taken again
      last_ = AsyncWaitEnd::timed_out;
      stage_ = Stage::acquire;
      holding_ = false;
      lock_->release();
      return true;
    }
    set_round_deadline(wait_deadline);
    arm_round();
    // Registered before the lock is released: a notify made after the release finds us.
    AsyncAccess::link_condition(*cond_, node_);
    stage_ = Stage::waiting;
    try {
      arm_cancellation_on(*sched_);
      holding_ = false;
      lock_->release();  // throws only if another thread released the Lock under us
    } catch (...) {
      withdraw();
      throw;
    }
    // Suspended. Wake-up sources: a notify claiming node_ (its wake step deferred to the
    // release that frees the lock), the stop callback, the timer.
    will_suspend();
    if (!arrive_or_suspend()) return false;
    wait_decided();
    return true;
  }
  void wait_decided() noexcept {
    disarm_cancellation_on(*sched_);
    const Decision d = decision();
    if (d.claimed()) {
      last_ = AsyncWaitEnd::notified;
      notify_held_ = true;
    } else {
      AsyncAccess::unlink_condition(*cond_, node_);
      last_ = d.outcome() == Outcome::cancelled ? AsyncWaitEnd::cancelled : AsyncWaitEnd::timed_out;
    }
    lock_pos_ = Position::back;
    stage_ = Stage::acquire;
  }

  // Registered on the Condition, not arrived, and must leave (arming the timer or releasing
  // the lock threw).
  void withdraw() noexcept {
    if (!abort(Decision::cancelled())) {
      leave_wait();
      if (decision().claimed() && Body::kPassOnNotify) AsyncAccess::pass_on_notify(*cond_, *lock_);
    }
    disarm_cancellation_on(*sched_);
    if (!decision().claimed()) AsyncAccess::unlink_condition(*cond_, node_);
    stage_ = Stage::locked;
  }

  // Someone decided the wait on the Condition first: waits until it is done with us. A
  // notify's wake step may still be deferred to the release of the lock (which this thread
  // may hold): then it is taken back instead.
  void leave_wait() noexcept {
    owner_leaves([this]() noexcept { return AsyncAccess::undefer(*lock_, node_); });
  }

  // The frame is destroyed while the coroutine is suspended here.
  void abandon() noexcept {
    suspended_ = false;
    if (stage_ == Stage::waiting) {
      if (!abort(Decision::cancelled())) {
        leave_wait();
        if (decision().claimed()) notify_held_ = true;
      }
      disarm_cancellation_on(*sched_);
      if (!decision().claimed()) AsyncAccess::unlink_condition(*cond_, node_);
    } else if (abort(Decision::cancelled())) {
      AsyncAccess::unlink_lock(*lock_, node_);
    } else {
      owner_leaves();  // a release claimed us: its wake step comes right after its CAS
      give_back_lock();
    }
    gone();
  }

  // What a coroutine that is gone gives up: a notify it was handed, its place in the body.
  void gone() noexcept {
    if (notify_held_ && Body::kPassOnNotify) AsyncAccess::pass_on_notify(*cond_, *lock_);
    notify_held_ = false;
    body_.abandon();
  }
  // A lock claimed for a coroutine that is gone: taken and given back, so that the release
  // claims the next waiter (if a running thread took it first, its release does).
  void give_back_lock() noexcept {
    if (AsyncAccess::try_acquire(*lock_)) release_quietly();
  }
  void release_quietly() noexcept {
    holding_ = false;
    try {
      lock_->release();
    } catch (...) {  // held by this operation
    }
  }

  // The owner's side of the round a decider scheduled; true if it was a round on the lock.
  bool scheduled_round() noexcept {
    suspended_ = false;
    if (stage_ == Stage::waiting) {
      wait_decided();
      return false;
    }
    lock_decided();
    return true;
  }
  // The scheduler runs this (AsyncResume).
  static void step(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncLockedWait&>(base);
    if (std::exchange(self.initial_, false)) {
      self.suspended_ = false;  // initiate()'s step: no round to finish
    } else {
      self.scheduled_round();
    }
    if (self.run()) self.handle_.resume();  // the last access: the coroutine may destroy us
  }
  // AsyncResume::drop().
  static void drop(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncLockedWait&>(base);
    if (std::exchange(self.initial_, false)) {
      self.suspended_ = false;  // initiate()'s step, dropped: nothing was done yet
    } else if (self.scheduled_round()) {
      self.give_back_lock();
    }
    self.gone();
  }
  static void schedule_on(AsyncWaitBase& base) noexcept {
    auto& self = static_cast<AsyncLockedWait&>(base);
    self.sched_->schedule(resume_of(base));
  }
  // As AsyncOp::will_suspend().
  void will_suspend() noexcept {
    if constexpr (requires(S & s) { s.will_suspend(); }) sched_->will_suspend();
  }
  S* sched_;
  Lock* lock_;
  Condition* cond_;
  Body body_;
  WaitNode node_;  // on the lock (acquire) or on the Condition (waiting), one at a time
  std::exception_ptr error_;
  std::coroutine_handle<> handle_;
  Stage stage_;
  Position lock_pos_ = Position::back;
  AsyncWaitEnd last_ = AsyncWaitEnd::none;
  bool holding_;              // this operation holds the lock
  bool notify_held_ = false;  // notified, and the body has not heard of it yet
  bool initial_ = false;      // initiate() scheduled the first step, which has not run
};

inline void check_condition_lock(const Condition& c, const Lock& l) {
  if (!AsyncAccess::is_lock_of(c, l)) {
    throw std::logic_error(
        "weft::async_wait: the Lock is not the one the Condition was built over");
  }
  if (!l.locked()) throw std::logic_error("weft::async_wait: the Condition's lock is not held");
}

// What the Condition bodies share: the user's Condition and Lock, checked at the first step.
struct AsyncConditionBody {
  static constexpr bool kReleaseAtEnd = false;
  static constexpr bool kPassOnNotify = true;
  void check_once() {
    if (checked) return;
    check_condition_lock(*c, *l);
    checked = true;
  }
  void abandon() noexcept {}

  const Condition* c = nullptr;
  const Lock* l = nullptr;
  Deadline deadline = Deadline::never();
  bool checked = false;
};

// Condition::wait(): one wait; true if notified.
struct AsyncConditionWait : AsyncConditionBody {
  bool step(AsyncWaitEnd last, bool, Deadline& wait_deadline) {
    if (!checked) {
      check_once();
      wait_deadline = deadline;
      return false;
    }
    notified = last == AsyncWaitEnd::notified;
    return true;
  }
  bool result() const noexcept { return notified; }

  bool notified = false;
};

// Condition::wait_for(pred): waits until pred() holds; pred()'s last value.
template <class Pred>
struct AsyncConditionWaitFor : AsyncConditionBody {
  bool step(AsyncWaitEnd, bool stopped, Deadline& wait_deadline) {
    check_once();
    value = static_cast<bool>(pred());
    if (value || deadline.expired() || stopped) return true;
    wait_deadline = deadline;
    return false;
  }
  bool result() const noexcept { return value; }

  Pred pred;
  bool value = false;
};

// Barrier::wait(): the barrier's own lock and Condition.
struct AsyncBarrierWait {
  static constexpr bool kReleaseAtEnd = true;
  static constexpr bool kPassOnNotify = false;  // the barrier notifies every waiter
  bool step(AsyncWaitEnd, bool stopped, Deadline& wait_deadline) {
    return AsyncAccess::step(*b, a, stopped, wait_deadline);
  }
  std::size_t result() const noexcept { return a.me.index; }
  void abandon() noexcept { AsyncAccess::abandon(*b, a); }

  Barrier* b = nullptr;
  AsyncAccess::BarrierArrival a;
};

template <class>
inline constexpr bool kDependentFalse = false;

}  // namespace detail

// Condition::wait() for a coroutine holding `lock`, the weft::Lock the Condition was built
// over: registers, releases the lock, waits for a notify (or the timeout, deadline or stop
// request among `opts`), takes the lock again and yields true if notified. The lock is held
// again whatever the outcome; a stop requested before the call changes nothing, a timeout
// <= 0 releases and retakes the lock. Throws std::logic_error (nothing changed) if `lock` is
// not the Condition's or is not locked.
template <class S, class... Opts>
auto async_wait(Condition& c, Lock& lock, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(false, std::forward<Opts>(opts)...);
  return detail::AsyncLockedWait<S, detail::AsyncConditionWait>(
      sched, lock, c, std::move(o.stop), true, detail::AsyncConditionWait{{&c, &lock, o.deadline}});
}

// Condition::wait_for(pred) / wait_until(pred, ...): waits until pred() (called with the lock
// held, on the scheduler's thread) is true; yields pred()'s last value (false only on
// timeout or stop).
template <class S, class Pred, class... Opts>
requires std::predicate<Pred&>
auto async_wait_for(Condition& c, Lock& lock, S& sched, Pred pred, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  detail::AsyncOptions o = detail::async_options(false, std::forward<Opts>(opts)...);
  return detail::AsyncLockedWait<S, detail::AsyncConditionWaitFor<Pred>>(
      sched, lock, c, std::move(o.stop), true,
      detail::AsyncConditionWaitFor<Pred>{{&c, &lock, o.deadline}, std::move(pred)});
}

// A Condition over an RLock (the default Condition's own lock is one) is not awaitable: the
// RLock belongs to the thread that took it, and a coroutine may resume on another.
template <class S, class... Opts>
void async_wait(Condition&, RLock&, S&, Opts&&...) {
  static_assert(detail::kDependentFalse<S>,
                "weft: a Condition over an RLock is not awaitable (an RLock belongs to a thread; "
                "a coroutine may resume on another). Build the Condition over a weft::Lock");
}
template <class S, class Pred, class... Opts>
void async_wait_for(Condition&, RLock&, S&, Pred, Opts&&...) {
  static_assert(detail::kDependentFalse<S>,
                "weft: a Condition over an RLock is not awaitable (an RLock belongs to a thread; "
                "a coroutine may resume on another). Build the Condition over a weft::Lock");
}
template <class S, class... Opts>
requires(!std::same_as<S, Lock> && !std::same_as<S, RLock>) void async_wait(Condition&, S&,
                                                                            Opts&&...) {
  static_assert(detail::kDependentFalse<S>,
                "weft: async_wait(condition, lock, scheduler, ...) takes the weft::Lock the "
                "Condition was built over (a Condition over an RLock, the default, is not "
                "awaitable)");
}

// Barrier::wait() for a coroutine: its index in the cycle. `opts`: a timeout (from arrival
// on; without one, the barrier's default timeout) and a std::stop_token. Throws
// BrokenBarrierError and Cancelled as wait() does (a timeout breaks the barrier; a stop
// request before the barrier trips withdraws the arrival); the action runs in the coroutine
// that arrives last, on its scheduler's thread. Thread and coroutine parties mix freely.
// With a scheduler that has no timer, a barrier with a default timeout throws
// std::logic_error here.
template <class S, class... Opts>
auto async_wait(Barrier& b, S& sched, Opts&&... opts) {
  detail::check_scheduler<S, Opts...>();
  static_assert(!(detail::IsTimePoint<std::remove_cvref_t<Opts>>::value || ...),
                "weft: a Barrier wait takes a timeout (from arrival on), not a deadline");
  detail::AsyncBarrierWait body{&b, {}};
  body.a.timeout = detail::AsyncAccess::default_timeout(b);
  std::stop_token stop;
  const auto one = [&](auto&& opt) {
    using T = std::remove_cvref_t<decltype(opt)>;
    if constexpr (detail::IsDuration<T>::value) {
      body.a.timeout = detail::AsyncAccess::BarrierTimeout(opt);
    } else {
      static_assert(std::same_as<T, std::stop_token>,
                    "weft: after the scheduler, a Barrier wait takes a timeout "
                    "(std::chrono::duration) or a std::stop_token");
      stop = opt;
    }
  };
  (one(std::forward<Opts>(opts)), ...);
  static_cast<void>(one);
  if constexpr (!TimedScheduler<S>) {
    if (body.a.timeout) {
      throw std::logic_error(
          "weft::async_wait: the Barrier's default timeout needs a weft::TimedScheduler");
    }
  }
  return detail::AsyncLockedWait<S, detail::AsyncBarrierWait>(
      sched, detail::AsyncAccess::lock_of(b), detail::AsyncAccess::changed_of(b), std::move(stop),
      false, body);
}

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
