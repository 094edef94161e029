// SPDX-License-Identifier: MIT
// weft/asio.hpp: weft's queues, events, semaphores, locks and select as Asio asynchronous
// operations (standalone Asio, <asio.hpp>; CMake target weft::asio). Each initiating function
// takes a completion token last, so use_awaitable, deferred, plain callbacks, as_tuple and
// per-operation cancellation all work; threads keep using the blocking calls on the same
// objects.
//
//     weft::Queue<Job> jobs(100);                                // fed by threads
//     asio::awaitable<void> consume() {
//       for (;;) {
//         Job job = co_await weft::asio::async_get(jobs, asio::use_awaitable);
//         run(job);
//         jobs.task_done();
//       }
//     }
//     // A racing timer loses nothing: a get that lost the race took no item.
//     auto r = co_await (weft::asio::async_get(jobs, use_awaitable) || timer.async_wait(use_awaitable));
//
// Operations and their completion signatures (each also takes, before the token, a timeout,
// a std::chrono::duration, or a deadline, a std::chrono::time_point, and a std::stop_token,
// either or both, in either order):
//   async_get(q, token)                  void(std::error_code, T)      any queue kind; T default-constructible
//   async_put(q, item, token)            void(std::error_code)         the operation owns `item`
//   async_join(q, token)                 void(std::error_code)
//   async_wait(event, token)             void(std::error_code)
//   async_acquire(semaphore|lock, token) void(std::error_code)         RLock: not awaitable (a thread owns it)
//   async_wait(barrier, token)           void(std::error_code, std::size_t)  the index; a timeout is a duration
//   async_select(ops..., token)          void(std::error_code, std::variant<...>)  select.hpp's operations
//   async_select_for(timeout, ops..., token), async_select_until(deadline, ops..., token)
//   (a select's stop_token comes before its operations: async_select(stop, ops..., token))
// A Condition has no weft::asio form; the generic layer (weft/async.hpp) awaits one on a
// scheduler of your own.
// Errors: asio::error::operation_aborted (cancelled: the handler's cancellation slot, or a
// stop requested on the operation's std::stop_token, before or after the initiating call;
// a Barrier already broken reports errc::broken_barrier instead, as Barrier::wait does),
// weft::asio::errc::timed_out, errc::shut_down (the queue is shut down: a get once it is
// drained), errc::operation_threw (an item's move, a comparator or a barrier action threw:
// nothing was taken, the exception itself is not carried), errc::broken_barrier. On an
// error, a value argument is value-initialized.
//
// How an operation runs: the initiating function creates the operation (one allocation,
// recycled per thread: its state, which holds the handler, the generic awaiter of
// weft/async.hpp and, with a timeout, an asio::steady_timer) and looks at the primitive
// without taking anything. If something may be ready (a queue's look without its lock, or
// the registration finding the source ready), or a timeout is to be armed, it posts the
// first attempt to the handler's associated executor (default: asio::system_executor;
// bind_executor picks another), registering nowhere. Otherwise the operation registers on
// the primitive like a parked thread, and is listed in the context's weft service (below);
// the thread or coroutine that makes it ready claims it and posts its next step there. A
// posted step owns the operation (it is listed nowhere). The step that completes the
// operation invokes the handler right there, on the executor, after freeing the operation's
// state. Steps are posted as continuations (execution::relationship.continuation): an
// io_context runs one posted from its own thread on that thread, after the current handler,
// without waking another. So:
//  - never inline: a handler never runs inside put(), set(), release() or the initiating
//    function, only in a function the executor runs;
//  - the operation counts as outstanding work on that executor until it completes
//    (io_context::run() does not return while a weft operation waits): a posted or running
//    step is the context's work; the operations that wait on an io_context share one count
//    of its work, held by the context's weft service, and one that waits on another
//    executor holds a work-tracking copy of it;
//  - terminal, partial and total cancellation all mean the same: the operation takes nothing
//    (no item taken, no put made, no permit or lock held) and a wake-up it had been given
//    passes on to the next waiter; it completes with operation_aborted. A timeout likewise;
//  - shutdown: when the execution context of the executor is destroyed (io_context's
//    destructor), every pending weft operation is aborted: it takes nothing, passes on any
//    wake-up, unregisters, and its handler is destroyed without being invoked (Asio's rule
//    for a context that goes away). The service's shutdown stops every listed (waiting)
//    operation and drops the step its decider schedules; a step the context (or a strand)
//    still has queued is dropped when the executor destroys it unrun (weft's
//    AsyncResume::drop(): a first attempt has nothing to give up). The primitives themselves
//    may outlive the context or not, as for threads.
//  - the lifetime rule: a handler may destroy the primitive it waited on.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/steady_timer.hpp>
#include <asio/system_executor.hpp>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/async.hpp"

namespace weft {
namespace asio {

enum class errc {
  shut_down = 1,    // the queue is shut down (a get: and drained)
  timed_out = 2,    // the timeout passed first: nothing was taken
  operation_threw,  // an item's move or a comparator threw: nothing was taken
  broken_barrier,   // the Barrier is broken (or broke: a timeout, abort(), reset())
};

inline const std::error_category& category() noexcept {
  struct Category final : std::error_category {
    const char* name() const noexcept override { return "weft"; }
    std::string message(int v) const override {
      switch (static_cast<errc>(v)) {
        case errc::shut_down:
          return "the queue is shut down";
        case errc::timed_out:
          return "timed out";
        case errc::operation_threw:
          return "an item's move, a comparator or a barrier action threw";
        case errc::broken_barrier:
          return "the barrier is broken";
      }
      return "unknown weft error";
    }
    std::error_condition default_error_condition(int v) const noexcept override {
      if (static_cast<errc>(v) == errc::timed_out) return std::errc::timed_out;
      return {v, *this};
    }
  };
  static const Category c;
  return c;
}
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace asio
}  // namespace weft

template <>
struct std::is_error_code_enum<weft::asio::errc> : std::true_type {};

namespace weft {
namespace asio {
namespace detail {

// Thrown by an operation's attempt once it is cancelled: the awaiter's step then passes on a
// wake-up it was given (weft/async.hpp) and ends without taking anything.
struct Aborted {};

class Service;

// An io_context's executor that counts as its outstanding work while it exists.
using TrackedIo =
    std::decay_t<decltype(::asio::prefer(std::declval<::asio::io_context&>().get_executor(),
                                         ::asio::execution::outstanding_work_t::tracked))>;

// A link in one of the service's lists: circular, around a sentinel, so that an operation
// leaves whichever list holds it in constant time without knowing which.
struct ListNode {
  ListNode() noexcept = default;
  ListNode(const ListNode&) = delete;
  ListNode& operator=(const ListNode&) = delete;
  ~ListNode() = default;
  bool empty() const noexcept { return lnext_ == this; }  // a sentinel's list
  void push(ListNode& n) noexcept {                       // a sentinel's: n goes last
    n.lprev_ = lprev_;
    n.lnext_ = this;
    lprev_->lnext_ = &n;
    lprev_ = &n;
  }
  void leave() noexcept {
    lprev_->lnext_ = lnext_;
    lnext_->lprev_ = lprev_;
    lprev_ = lnext_ = this;
  }
  ListNode* lprev_ = this;
  ListNode* lnext_ = this;
};

// The part of one operation's state that the service and the weft scheduler face need.
// Fields marked (svc) are guarded by the service's lock.
class OpBase : public ListNode {
 public:
  OpBase(const OpBase&) = delete;
  OpBase& operator=(const OpBase&) = delete;

  // What depends on the handler's executor type, supplied by the Promise.
  struct Hooks {
    void (*post_step)(OpBase&) noexcept;  // posts Run(op), which owns the operation
    void (*arm_timer)(OpBase&, AsyncTimer&);
    void (*disarm_timer)(OpBase&, AsyncTimer&) noexcept;
    void (*destroy)(OpBase&) noexcept;  // frees the operation, handler uncalled (not listed)
    void (*work)(OpBase&, bool hold) noexcept;  // counts it as outstanding work, or stops
    // The executor says the calling thread runs it (running_in_this_thread(): inside its
    // io_context's run(), inside its strand, on a thread of its thread_pool). Asio forbids
    // destroying a context while a thread is inside it, so its destruction, and with it the
    // service's shutdown, cannot be under way. This relies on the executor's answer being
    // about the context that query(execution::context) names (true of Asio's executors),
    // and on a thread_pool not being destroyed while a thread it did not start (attach())
    // still runs it.
    bool (*runs_here)(const OpBase&) noexcept;
  };

 protected:
  OpBase(Service* svc, const Hooks* hooks) noexcept : hooks_(hooks), svc_(svc) {}
  ~OpBase() = default;  // the frame destroys its Promise, never an OpBase

 public:
  void post_step() noexcept { hooks_->post_step(*this); }
  bool runs_here() const noexcept { return hooks_->runs_here(*this); }
  void arm_timer(AsyncTimer& t) { hooks_->arm_timer(*this, t); }
  void disarm_timer(AsyncTimer& t) noexcept { hooks_->disarm_timer(*this, t); }
  void destroy() noexcept { hooks_->destroy(*this); }
  // Run's call, on the executor: the step next_. A waiter stops counting as work here, in
  // a step the context counts until it returns (the count cannot drop to 0). The service
  // is used after the step: an executor runs a step only while its context, and so the
  // context's services, exist (Asio's executors do; a custom one must too).
  void run_step() noexcept {
    if (queued_) [[unlikely]]
      unlist_queued();  // a Barrier wait's (keep_listed_)
    if (holds_work_) {
      holds_work_ = false;
      hooks_->work(*this, false);
    }
    carried_work_.reset();
    Service* svc = svc_;
    const AsyncResume f = *next_;  // set before the post that queued this step
    next_.reset();
    f();               // may complete the operation: op is not touched after this
    after_step(*svc);  // the service lives while its context runs this step
  }
  inline void unlist_queued() noexcept;                  // after Service
  static inline void after_step(Service& svc) noexcept;  // after Service
  // The step next_ will never run: it gives up what it was handed, and the operation is
  // freed, its handler destroyed without being invoked.
  void drop_step() noexcept {
    const AsyncResume f = *next_;
    next_.reset();
    f.drop();
    destroy();
  }

  const Hooks* hooks_;

  Service* svc_;
  // The io_context whose executor the steps are posted to, or null (another executor): set
  // by the constructor.
  ::asio::io_context* io_ = nullptr;
  // (svc) Listed (on one of the service's lists, through the ListNode base): registered and
  // waiting for a decider (or carrying on after being decided while arming). Read without
  // the lock by the owner: its other writers are a decider after the gate (schedule(),
  // ordered before the owner by the gate and then the post) and the shutdown (no step runs
  // then).
  bool listed_ = false;
  bool on_waiting_ = false;  // (svc) on the service's waiting_ list
  // A Barrier wait: stays listed while its step is queued (queued_), and the shutdown drops
  // that step itself. Its lock round has no stop: only a release decides it, and a claim
  // handed to a queued step must pass on before the shutdown waits for that round, not when
  // the context's scheduler destroys the step after the shutdown. Set when the awaiter is
  // built.
  bool keep_listed_ = false;
  // (svc) keep_listed_, and schedule() posted its step, which has not run. Read without the
  // lock by the Run built by that post, on the posting thread, and by the step (the post
  // publishes it; no shutdown runs beside a step).
  bool queued_ = false;
  // Counts as the context's outstanding work (a waiter: from its listing to its next step),
  // on a context that is not an io_context (on an io_context the service counts the work
  // of its waiters: Service::list()). The owner's, like listed_ (its decider, and the
  // shutdown, never touch it).
  bool holds_work_ = false;
  // The service's work count, handed to this operation by a schedule() from a thread that
  // does not run the context, which unlisted the last waiting operation: between that
  // schedule()'s unlock and its post, only this keeps the context's work above 0 (a step
  // ending meanwhile finds no operation waiting and gives the service's count back). The
  // step releases it; so does the frame's destruction when the step is dropped.
  std::optional<TrackedIo> carried_work_;
  // The step to run (written by the owner or the decider before the post, or before the
  // service's lock is released, which publishes it).
  std::optional<AsyncResume> next_;
  weft::detail::AsyncStop stop_;  // cancellation slot, stop_token and shutdown
  std::coroutine_handle<> self_;  // the operation's driver coroutine
};

// What an operation without a std::stop_token passes where one would go: nothing to
// carry through async_initiate (use_awaitable stores its arguments), nothing to test.
struct NoStop {};

// What the executor runs: the operation's next step. It owns the operation while queued:
// destroyed without being called (the executor shut down and destroys what it had queued),
// it hands the operation to the service, which drops the step (Service::abandoned).
class Run {
 public:
  explicit Run(OpBase* op) noexcept : op_(op), listed_(op->queued_) {}
  Run(Run&& o) noexcept : op_(std::exchange(o.op_, nullptr)), listed_(o.listed_) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  Run& operator=(Run&&) = delete;
  ~Run() {
    if (op_ != nullptr && !listed_) [[unlikely]]
      abandoned(op_);  // destroyed unrun
  }
  void operator()() noexcept { std::exchange(op_, nullptr)->run_step(); }

 private:
  static void abandoned(OpBase* op) noexcept;  // after Service
  OpBase* op_;
  bool listed_;  // op stays listed while queued: the service's shutdown drops it, not this
};

// The service's lock: held for a few pointer writes (list, schedule, abandoned) or by the
// shutdown between its scans. Uncontended, one exchange takes it and a plain store releases
// it (weft's WordLock releases with an exchange, to learn whether anyone sleeps).
class ListLock {
 public:
  void lock() noexcept {
    // acquire: sees what the previous holder wrote under the lock.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      // Wake-up source: the holder's unlock() (a few pointer writes away, or the end of a
      // shutdown scan). relaxed: only a hint to try the exchange again. Spin, then yield.
      for (int i = 0; locked_.load(std::memory_order_relaxed); ++i) {
        if (i < 64) {
          weft::detail::cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  // release: publishes the holder's writes to the next lock().
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// One per execution context: the operations that wait (registered on a primitive, waiting
// for a decider), so that the context's shutdown can abort them before the context goes.
// An operation whose step is queued is not listed: its Run owns it, and the executor that
// destroys the Run without calling it (its shutdown) gives the operation back here, to be
// dropped (a Barrier wait stays listed while its step is queued: OpBase::keep_listed_). One
// that runs may still be listed (decided while arming, it carried on) until it is scheduled
// or completes: harmless, as no step runs while the context shuts down.
// Three lists, each operation on at most one: waiting_ (listed by list()), stopped_ (the
// shutdown requested their stop, and their deciders have not scheduled them yet) and
// dropping_ (steps that the shutdown drops: a Barrier wait's queued step, an operation
// decided during the shutdown, a step an executor gave back). The shutdown takes each
// operation from the front of a list, so it handles each a bounded number of times.
class Service final : public ::asio::execution_context::service {
 public:
  static inline ::asio::execution_context::id id;

  // The timer service is not created here: creating it starts the context's reactor, whose
  // turn in the context's queue costs a poll (epoll_wait) per handler run, and a context
  // without I/O would pay it for nothing. An operation's first timeout creates it. It may
  // then shut down before this service (services shut down in the reverse order of their
  // creation), and the aborted operations cancel and destroy their steady_timers after that:
  // harmless, as the reactor's shutdown took every timer off its queues, and the queues go
  // only with the services themselves, after every shutdown.
  explicit Service(::asio::execution_context& ctx) : ::asio::execution_context::service(ctx) {}
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() override { destroyed().fetch_add(1); }

  // The initiating function: true once the shutdown began (then the operation is destroyed,
  // handler included, without being invoked). relaxed: the shutdown runs on the thread that
  // destroys the context; an initiation that may see it runs on that thread too (a
  // handler's destructor), and any other would use a context being destroyed.
  bool shutting_down() const noexcept { return shutting_down_.load(std::memory_order_relaxed); }

  // The owner (weft's will_suspend hook): registered, and about to arrive at the gate, after
  // which a decider may schedule it from any thread. It counts as outstanding work from
  // here until its next step runs (or it is dropped). For an operation posted to an
  // io_context's executor (OpBase::io_) the service holds one count of the context's work
  // for all its waiters: taken when such an operation lists itself and none is held, and
  // given back by a step that finds no operation waiting (after_step()), so that
  // operations waiting in turn (a ping-pong between coroutines) hand the count on without
  // touching the context's counter. Any other waiter holds a work-tracking copy of its
  // executor.
  void list(OpBase& op) noexcept {
    if (op.io_ == nullptr && !op.holds_work_) {
      op.holds_work_ = true;
      op.hooks_->work(op, true);
    }
    if (op.listed_) return;  // decided while arming last time, and not scheduled since
    std::lock_guard<ListLock> g(m_);
    link(op);
    if (op.io_ != nullptr && !io_work_) {
      io_work_.emplace(tracked(*op.io_));  // an atomic increment
      // relaxed: written under m_; read without it only as after_step()'s hint.
      holds_io_work_.store(true, std::memory_order_relaxed);
    }
  }
  // A step ran on this context (OpBase::run_step): when no operation waits, the waiters'
  // work count goes back, so that run() returns once nothing else is left. Every
  // operation that leaves waiting_ outside the shutdown (a decider's schedule(), a
  // completion while listed) does so before a step of this context ends, which calls this.
  // A step may end between a schedule()'s unlock and its post of the operation it
  // unlisted: a decider on the context's thread is itself inside a handler the context
  // counts, and one elsewhere hands the count to the operation (OpBase::carried_work_).
  void after_step() noexcept {
    // relaxed: hints; a step that reads a stale non-zero count leaves the release to the
    // step of the operation whose schedule() emptied the list, which runs after that
    // schedule() released m_ (the executor's queue orders them) and so reads the count and
    // holds_io_work_ as that schedule() left them, or later values.
    if (waiting_n_.load(std::memory_order_relaxed) != 0 ||
        !holds_io_work_.load(std::memory_order_relaxed)) {
      return;
    }
    std::optional<TrackedIo> w;
    {
      std::lock_guard<ListLock> g(m_);
      // relaxed: under m_, which every writer of waiting_n_ holds: the exact count.
      if (waiting_n_.load(std::memory_order_relaxed) != 0) return;
      w = take_io_work();
    }
    // w's destructor: the atomic decrement, outside m_ (it may stop the context, which
    // takes the context's own lock).
  }
  // The operation completes (on the executor) while still listed.
  void unlist(OpBase& op) noexcept {
    std::lock_guard<ListLock> g(m_);
    unlink(op);
  }

  // weft's Scheduler::schedule for a listed operation (a decider's wake step, any thread):
  // unlists it and posts its step; never runs it here. During the shutdown it moves it to
  // dropping_ instead, and the shutdown drops the step. A decider on a thread that runs the
  // operation's context (a coroutine's put waking a coroutine's get) posts uncounted: the
  // shutdown runs in the context's destructor, which cannot begin while this thread is
  // inside the context's run(), so no shutdown waits for this post.
  void schedule(OpBase& op, AsyncResume f) noexcept {
    op.next_ = f;  // published by the post, or to shutdown() by the lock
    const bool counted = !op.runs_here();
    {
      std::lock_guard<ListLock> g(m_);
      if (shutting_down_.load(std::memory_order_relaxed)) {  // relaxed: written under m_
        leave_list(op);
        dropping_.push(op);
        changed_.notify_all();
        return;
      }
      if (op.keep_listed_) {
        op.queued_ = true;  // listed until its step runs (or the shutdown drops it)
        leave_list(op);
        dropping_.push(op);
      } else {
        unlink(op);
      }
      if (counted && waiting_.empty()) {
        // The post below comes after the unlock: the count goes with the operation until
        // its step runs (OpBase::carried_work_). A decider on the context's own thread
        // needs none: its own handler counts as the context's work until after the post.
        if (std::optional<TrackedIo> w = take_io_work()) op.carried_work_.emplace(std::move(*w));
      }
      // relaxed: under m_, which the shutdown takes before it reads posting_ (see there).
      if (counted) posting_.fetch_add(1, std::memory_order_relaxed);
    }
    op.post_step();
    // release: the shutdown's acquire load of 0 sees the post made. The last access: op,
    // and then the service, may be gone.
    if (counted) posting_.fetch_sub(1, std::memory_order_release);
  }

  // Run's destructor: the executor destroyed op's step without running it. Before the end
  // of this service's shutdown (an executor that shut down first: a strand whose service was
  // created after this one, maybe inside a decider's post), op goes on dropping_ and the
  // shutdown drops it; after it (the context's scheduler destroying its queue), here.
  static void abandoned(OpBase& op) noexcept {
    Service& svc = *op.svc_;
    {
      std::lock_guard<ListLock> g(svc.m_);
      if (!svc.finished_) {
        op.listed_ = true;
        svc.dropping_.push(op);
        svc.changed_.notify_all();
        return;
      }
    }
    op.drop_step();
  }

  // The service of `ctx`, looked up once per thread and context: use_service() takes the
  // context's registry lock on every call. The cache is keyed by the context's address and
  // by the count of services destroyed so far, so a context created where a destroyed one
  // was is looked up afresh.
  static Service& of(::asio::execution_context& ctx) {
    struct Cache {
      ::asio::execution_context* ctx = nullptr;
      Service* svc = nullptr;
      std::uint64_t epoch = 0;
    };
    thread_local Cache cache;
    // acquire: pairs with the destructor's increment (a caller holding a context created
    // after another was destroyed sees that destruction's count, or a later one).
    const std::uint64_t e = destroyed().load(std::memory_order_acquire);
    if (cache.ctx == &ctx && cache.epoch == e) return *cache.svc;
    auto& svc = ::asio::use_service<Service>(ctx);
    cache = {&ctx, &svc, e};
    return svc;
  }

 private:
  static TrackedIo tracked(::asio::io_context& io) noexcept {
    return ::asio::prefer(io.get_executor(), ::asio::execution::outstanding_work_t::tracked);
  }
  // Under m_: the waiters' work count, moved out of the service (empty if none is held);
  // its destructor gives it back, which the caller runs outside m_.
  std::optional<TrackedIo> take_io_work() noexcept {
    std::optional<TrackedIo> w;
    if (io_work_) {
      w.emplace(std::move(*io_work_));
      io_work_.reset();
      holds_io_work_.store(false, std::memory_order_relaxed);  // relaxed: as in list()
    }
    return w;
  }
  void link(OpBase& op) noexcept {  // under m_
    waiting_.push(op);
    op.on_waiting_ = true;
    // relaxed: written under m_; read without it only as after_step()'s hint.
    waiting_n_.store(waiting_n_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    op.listed_ = true;
  }
  void leave_list(OpBase& op) noexcept {  // under m_: off whichever list holds it
    if (op.on_waiting_) {
      op.on_waiting_ = false;
      // relaxed: as in link().
      waiting_n_.store(waiting_n_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }
    op.leave();
  }
  void unlink(OpBase& op) noexcept {  // under m_
    leave_list(op);
    op.listed_ = false;
    op.queued_ = false;
  }
  static OpBase& front(ListNode& list) noexcept { return static_cast<OpBase&>(*list.lnext_); }

  // The context is going away (its destructor), and no thread runs it any more. Every
  // listed operation is aborted here: one that waits gets a stop request (its decider
  // schedules it: dropping_), and a step on dropping_ is dropped here, which takes nothing,
  // passes on a wake-up it was handed, unregisters and frees the operation, its handler
  // destroyed without being invoked. The steps the context still has queued own their
  // operations: destroyed by the context afterwards, they drop them (Run, abandoned()).
  void shutdown() override {
    std::unique_lock<ListLock> g(m_);
    // relaxed: read under m_, or by shutting_down() (see there).
    shutting_down_.store(true, std::memory_order_relaxed);
    for (;;) {
      // A schedule() that unlisted its operation before shutting_down_ was set may still be
      // posting it: wait for that post (its Run is then queued, or given back here).
      // acquire: pairs with schedule()'s release decrement. Wake-up source: that decrement,
      // its last access (spin, yield).
      while (posting_.load(std::memory_order_acquire) != 0) {
        g.unlock();
        std::this_thread::yield();
        g.lock();
      }
      if (!dropping_.empty()) {
        OpBase& op = front(dropping_);
        unlink(op);
        g.unlock();
        op.drop_step();  // may claim another listed operation: it goes to dropping_
        g.lock();
        continue;
      }
      if (!waiting_.empty()) {
        OpBase& op = front(waiting_);
        leave_list(op);
        stopped_.push(op);
        g.unlock();
        // The stop callback aborts the round (or a claim won it): either way the decider
        // calls schedule(), which moves the operation to dropping_. Listed, it stays alive.
        op.stop_.request();
        g.lock();
        continue;
      }
      if (stopped_.empty()) break;
      // Wake-up source: schedule() by the decider of a round that a claim won before the
      // stop request (a notifier's wake step, right after it released the source's lock),
      // or of a round a stop does not decide: a Barrier wait taking the Barrier's lock
      // again, decided by that lock's release (it is held only inside Barrier's calls and
      // steps, never across a suspension; a claim handed to a queued Barrier step passes on
      // when this shutdown drops that step, as it stays listed); or abandoned() by an
      // executor's destruction of a step (a post made by a schedule() just before the
      // shutdown began).
      changed_.wait(g);
    }
    finished_ = true;
    const std::optional<TrackedIo> w = take_io_work();  // given back outside m_
    g.unlock();
  }

  static std::atomic<std::uint64_t>& destroyed() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return n;
  }

  ListLock m_;
  std::condition_variable_any changed_;  // with m_: a scan's wait in shutdown()
  ListNode waiting_;                     // (m_) registered, waiting for a decider
  ListNode stopped_;   // (m_) during the shutdown: stop requested, not yet scheduled
  ListNode dropping_;  // (m_) steps the shutdown drops (and Barrier steps queued)
  std::atomic<std::size_t> waiting_n_{0};   // written under m_: the length of waiting_
  std::optional<TrackedIo> io_work_;        // (m_) the waiters' work count, on an io_context
  std::atomic<bool> holds_io_work_{false};  // written under m_: io_work_ is engaged
  std::atomic<bool> shutting_down_{false};  // written under m_
  bool finished_ = false;                   // (m_) shutdown() returned
  std::atomic<int> posting_{0};             // schedule() calls posting an unlisted operation
};

inline void Run::abandoned(OpBase* op) noexcept {
  Service::abandoned(*op);
}
inline void OpBase::unlist_queued() noexcept {
  svc_->unlist(*this);
}
inline void OpBase::after_step(Service& svc) noexcept {
  svc.after_step();
}

// weft's TimedScheduler for one operation.
class Sched {
 public:
  explicit Sched(OpBase* op) noexcept : op_(op) {}
  void schedule(AsyncResume f) noexcept { op_->svc_->schedule(*op_, f); }
  void arm_timer(AsyncTimer& t) { op_->arm_timer(t); }
  void disarm_timer(AsyncTimer& t) noexcept { op_->disarm_timer(t); }
  // weft/async.hpp's hook: the owner is about to wait; listed from now on.
  void will_suspend() noexcept { op_->svc_->list(*op_); }
  // The first step, when initiate() registered nothing: the owner posts it, unlisted (the
  // initiating function, which no shutdown runs beside).
  void post_first(AsyncResume f) noexcept {
    op_->next_ = f;  // published by the post
    op_->post_step();
  }

 private:
  OpBase* op_;
};

// select.hpp's operation Op, whose attempts throw Aborted once the operation is cancelled
// (through its slot, a stop requested on its std::stop_token from any thread, or by the
// context's shutdown), and whose claim a Semaphore or Lock
// passes on by taking and giving back what it announced.
//
// An attempt after a cancellation request takes nothing, even when a claim came first: the
// claim only said that an item (a permit) may be there, and it passes on. So a cancellation
// emitted before the completion (as awaitable_operators' `||` does for the loser) never
// loses an item.
template <class Op>
class Abortable : public Op {
 public:
  using result_type = typename Op::result_type;
  Abortable(const OpBase* owner, const Op& op) noexcept : Op(op), owner_(owner) {}

  bool try_fire(result_type& out) requires requires(Op& o, result_type& r) { o.try_fire(r); }
  {
    check();
    return Op::try_fire(out);
  }
  bool fire_claimed(result_type& out) requires requires(Op& o, result_type& r) {
    o.fire_claimed(r);
  }
  {
    check();
    return Op::fire_claimed(out);
  }
  template <class Emit>
  bool try_fire_into(Emit& emit) requires requires(Op& o, Emit& e) {
    o.try_fire_into(e);
  }
  {
    check();
    return Op::try_fire_into(emit);
  }
  // A claim this operation will not use (it threw, or was aborted): the next waiter gets it.
  void pass_on() noexcept {
    if constexpr (requires(Op & o) { o.pass_on(); }) {
      Op::pass_on();
    } else if constexpr (std::is_base_of_v<weft::detail::SemaphoreAcquireOp, Op>) {
      if (weft::detail::SelectAccess::try_acquire(*this->s_)) this->s_->release();
    } else if constexpr (std::is_base_of_v<weft::detail::LockAcquireOp, Op>) {
      if (weft::detail::SelectAccess::try_acquire(*this->l_)) this->l_->release();
    }
    // Event, join: their notifier claimed every waiter; nobody to pass it to.
  }

 private:
  void check() const {
    if (owner_->stop_.requested()) throw Aborted{};
  }
  const OpBase* owner_;
};

// The generic awaiter (weft/async.hpp) with access to how it ended.
template <class... Ops>
class Await : public weft::detail::AsyncOp<Sched, Ops...> {
  using Base = weft::detail::AsyncOp<Sched, Ops...>;

 public:
  using Base::Base;
  // Resumed inside the initiating function: no attempt here (see AsyncOp::initiate).
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    if (Base::initiate(h)) Base::scheduler().post_first(Base::resume_of(*this));
  }
  void await_resume() const noexcept {}
  using Base::end;
  using Base::result;
  using Base::rethrow_if_failed;
};

// The outcome of an operation that performed nothing.
inline std::error_code failure(weft::detail::AsyncEnd end) noexcept {
  if (end == weft::detail::AsyncEnd::cancelled) return ::asio::error::operation_aborted;
  return errc::timed_out;
}

template <class P>
struct Driver {
  using promise_type = P;
  std::coroutine_handle<P> h;
};

// Gives the driver coroutine its promise.
template <class P>
struct ThisPromise {
  P* p = nullptr;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    p = &h.promise();
    return false;
  }
  P& await_resume() const noexcept { return *p; }
};

// One operation's state: the coroutine frame of drive() below, whose promise this is.
// Args: the completion's arguments (std::tuple<std::error_code, ...>).
template <class Handler, class Args>
class Promise final : public OpBase {
  using Executor = ::asio::associated_executor_t<Handler, ::asio::system_executor>;
  // What a step is posted to: never blocking, a continuation (see the top of this file),
  // made once per operation. It does not track work: a posted or running step is the
  // context's outstanding work already (as any submitted function is), so only an operation
  // that waits holds a work-tracking copy (work_executor(), while listed). Each copy of a
  // tracking executor counts the work again: an atomic increment on the context's counter,
  // shared by its threads, and a decrement when it goes.
  template <class Ex>
  static auto post_executor(const Ex& ex) {
    return ::asio::prefer(::asio::prefer(::asio::require(ex, ::asio::execution::blocking_t::never),
                                         ::asio::execution::relationship_t::continuation),
                          ::asio::execution::outstanding_work_t::untracked);
  }
  template <class Ex>
  static auto work_executor(const Ex& ex) {
    return ::asio::prefer(ex, ::asio::execution::outstanding_work_t::tracked);
  }
  using PostExecutor = std::decay_t<decltype(post_executor(std::declval<const Executor&>()))>;
  using WorkExecutor = std::decay_t<decltype(work_executor(std::declval<const PostExecutor&>()))>;
  // An any_io_executor (use_awaitable's, co_spawn's) usually wraps an io_context's executor:
  // then the step is posted through that executor's own type, which requires and prefers
  // by setting bits, where the type-erased one copies itself through its function table.
  static constexpr bool kErased = std::is_same_v<Executor, ::asio::any_io_executor>;
  using IoExecutor = ::asio::io_context::executor_type;
  using IoPostExecutor = std::decay_t<decltype(post_executor(std::declval<const IoExecutor&>()))>;
  using Slot = ::asio::associated_cancellation_slot_t<Handler>;

 public:
  // drive()'s parameter, copied into the frame: the handler stays where the initiating
  // function holds it until the constructor below moves it into handler_, once.
  struct Init {
    Service* svc;
    Handler* handler;
    const ::asio::io_context::executor_type* io;  // what an any_io_executor wraps, if that
  };

  template <class... Rest>
  Promise(Init& init, Rest&... /*make, finish*/)
      : OpBase(init.svc, &kHooks), handler_(std::move(*init.handler)), sched_(this) {
    if constexpr (kErased) {
      if (init.io != nullptr) {
        io_ex_.emplace(post_executor(*init.io));
        io_ = &io_ex_->context();  // the service counts its work while it waits
        return;
      }
    }
    ex_.emplace(
        post_executor(::asio::get_associated_executor(handler_, ::asio::system_executor())));
    if constexpr (requires(const PostExecutor& e) {
                    { e.context() } -> std::same_as<::asio::io_context&>;
                  }) {
      io_ = &ex_->context();  // an io_context's own executor: as above
    }
    if constexpr (kErased) {
      // A type-erased executor that wraps no io_context (a strand's, say) makes a tracked
      // copy by building a new target, which may allocate: made here, where an exception
      // can still leave the initiating function, and held for the operation's life, rather
      // than in work_of(), which must not throw.
      work_.emplace(work_executor(*ex_));
    }
  }

  // The frame comes from Asio's per-thread recycling allocator, as the memory of Asio's own
  // operations does: a thread that completes operations reuses what it freed.
  static void* operator new(std::size_t n) {
    return ::asio::recycling_allocator<unsigned char>().allocate(n);
  }
  static void operator delete(void* p, std::size_t n) noexcept {
    ::asio::recycling_allocator<unsigned char>().deallocate(static_cast<unsigned char*>(p), n);
  }

  Driver<Promise> get_return_object() noexcept {
    auto h = std::coroutine_handle<Promise>::from_promise(*this);
    self_ = h;
    return Driver<Promise>{h};
  }
  std::suspend_always initial_suspend() const noexcept { return {}; }
  struct Final {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<Promise> h) const noexcept { h.promise().complete(h); }
    void await_resume() const noexcept {}
  };
  Final final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  void unhandled_exception() const noexcept { std::terminate(); }  // drive() catches all

  // After creation, in the initiating function: the cancellation slot and the stop token,
  // then the awaiter. A stop already requested is recorded here (the callback runs at once)
  // and seen by the awaiter, which then posts its first attempt: that attempt takes nothing
  // and completes with operation_aborted. Started while the context shuts down (from a
  // handler's destructor), the operation is destroyed at once, its handler uninvoked.
  template <class Stop>
  void start(Service& svc, Stop stop) {
    if (svc.shutting_down()) {
      self_.destroy();
      return;
    }
    slot_ = ::asio::get_associated_cancellation_slot(handler_);
    if (slot_.is_connected()) slot_.template emplace<OnCancel>(this);
    if constexpr (std::is_same_v<Stop, std::stop_token>) {
      if (stop.stop_possible()) on_stop_token_.emplace(std::move(stop), OnStopToken{this});
    }
    self_.resume();  // builds the awaiter, which registers or posts its first attempt
  }

  Sched& sched() noexcept { return sched_; }
  weft::detail::AsyncStop* token() noexcept { return &stop_; }
  void set(Args args) { args_.emplace(std::move(args)); }

  void post() noexcept {
    if constexpr (kErased) {
      if (io_ex_) {
        ::asio::execution::execute(*io_ex_, Run(this));
        return;
      }
    }
    ::asio::execution::execute(*ex_, Run(this));
  }

  void arm(AsyncTimer& t) {
    if (!timer_) {
      if constexpr (kErased) {
        if (io_ex_) {
          timer_.emplace(::asio::any_io_executor(
              ::asio::prefer(*io_ex_, ::asio::execution::relationship_t::fork)));
        }
      }
      if (!timer_) {
        timer_.emplace(
            ::asio::any_io_executor(::asio::prefer(*ex_, ::asio::execution::relationship_t::fork)));
      }
    }
    timer_ctl_ = std::make_shared<TimerCtl>();
    timer_ctl_->t = &t;
    timer_->expires_at(t.deadline());
    timer_->async_wait([ctl = timer_ctl_](const std::error_code& ec) {
      if (ec) return;
      int armed = TimerCtl::kArmed;
      if (ctl->state.compare_exchange_strong(armed, TimerCtl::kFiring)) {
        ctl->t->fire();
        ctl->state.store(TimerCtl::kFired);
      }
    });
  }
  // Returns once fire() is not running and will not run.
  void disarm() noexcept {
    if (!timer_ctl_) return;
    if (timer_ctl_->state.exchange(TimerCtl::kDisarmed) == TimerCtl::kFiring) {
      // Wake-up source: the timer's handler finishing fire() (an abort and a schedule()).
      while (timer_ctl_->state.load() != TimerCtl::kFired) std::this_thread::yield();
    }
    timer_ctl_.reset();
    try {
      timer_->cancel();  // its handler, run or destroyed later, holds only the TimerCtl
    } catch (...) {      // not cancelled: the handler runs at the deadline and does nothing
    }
  }

 private:
  static void post_of(OpBase& op) noexcept { static_cast<Promise&>(op).post(); }
  static void arm_of(OpBase& op, AsyncTimer& t) { static_cast<Promise&>(op).arm(t); }
  static void disarm_of(OpBase& op, AsyncTimer&) noexcept { static_cast<Promise&>(op).disarm(); }
  // Counts the operation as outstanding work (it is about to wait), or stops counting it.
  // Not called for an operation whose io_ is set (the service counts its work).
  static void work_of(OpBase& op, bool hold) noexcept {
    auto& p = static_cast<Promise&>(op);
    if constexpr (kErased) {
      return;  // held since the constructor
    }
    if (hold) {
      p.work_.emplace(work_executor(*p.ex_));
    } else {
      p.work_.reset();
    }
  }
  static void destroy_of(OpBase& op) noexcept {
    auto& p = static_cast<Promise&>(op);
    p.detach_stop_sources();
    p.self_.destroy();  // the handler with it, not invoked
  }
  // Only an executor that can tell (an io_context's, a strand's, a thread_pool's) says yes.
  static bool runs_here_of(const OpBase& op) noexcept {
    const auto& p = static_cast<const Promise&>(op);
    if constexpr (kErased) {
      if (p.io_ex_) return p.io_ex_->running_in_this_thread();
    }
    if constexpr (requires(const PostExecutor& e) {
                    { e.running_in_this_thread() } -> std::convertible_to<bool>;
                  }) {
      return p.ex_->running_in_this_thread();
    } else {
      return false;
    }
  }
  static constexpr Hooks kHooks{&post_of,    &arm_of,  &disarm_of,
                                &destroy_of, &work_of, &runs_here_of};

  struct OnCancel {
    explicit OnCancel(Promise* p) noexcept : self(p) {}
    Promise* self;
    void operator()(::asio::cancellation_type_t type) const noexcept {
      if ((type & (::asio::cancellation_type::terminal | ::asio::cancellation_type::partial |
                   ::asio::cancellation_type::total)) != ::asio::cancellation_type::none) {
        self->stop_.request();
      }
    }
  };
  // A std::stop_token's request: the same as a slot's cancellation.
  struct OnStopToken {
    Promise* self;
    void operator()() const noexcept { self->stop_.request(); }
  };
  // Neither the slot's handler nor the stop callback runs once this returns (the callback's
  // destructor waits for a request_stop() running it on another thread: that run only
  // records the request and aborts a round, never waits for this thread; at most it takes
  // the service's list lock briefly to schedule, or the executor's queue lock to post, and
  // neither is held by anyone waiting here).
  void detach_stop_sources() noexcept {
    if (slot_.is_connected()) slot_.clear();
    on_stop_token_.reset();
  }

  struct TimerCtl {
    static constexpr int kArmed = 0, kFiring = 1, kFired = 2, kDisarmed = 3;
    std::atomic<int> state{kArmed};
    AsyncTimer* t = nullptr;
  };

  // Final suspension, on the executor: frees the state, then invokes the handler.
  void complete(std::coroutine_handle<Promise> h) noexcept {
    if (listed_) svc_->unlist(*this);  // decided while arming, and carried on
    detach_stop_sources();
    if (!args_) {
      h.destroy();  // the handler is destroyed, not invoked
      return;
    }
    Handler handler(std::move(handler_));
    Args args(std::move(*args_));
    h.destroy();  // releases the outstanding work too: we are inside a step the executor runs
    std::apply(std::move(handler), std::move(args));
  }

  Handler handler_;
  // What steps are posted to; either tracks the work.
  std::optional<PostExecutor> ex_;
  std::optional<IoPostExecutor> io_ex_;  // instead of ex_, when kErased wraps an io_context
  std::optional<WorkExecutor> work_;     // while waiting: the outstanding work
  Sched sched_;
  Slot slot_;
  std::optional<std::stop_callback<OnStopToken>> on_stop_token_;
  std::optional<Args> args_;
  std::optional<::asio::steady_timer> timer_;
  std::shared_ptr<TimerCtl> timer_ctl_;
};

// The operation's coroutine: its frame is the operation's state.
template <class P, class Make, class Finish>
Driver<P> drive(typename P::Init init, Make make, Finish finish) {
  static_cast<void>(init);
  P& p = co_await ThisPromise<P>{};
  try {
    auto aw = make(p.sched(), p.token(), &p);
    co_await aw;
    try {
      aw.rethrow_if_failed();
      p.set(finish(aw.result(), aw.end()));
    } catch (const Aborted&) {
      p.set(finish.failed(::asio::error::operation_aborted));
    } catch (...) {
      p.set(finish.failed(errc::operation_threw));
    }
  } catch (const Aborted&) {  // an attempt inside the co_await was cancelled: nothing taken
    p.set(finish.failed(::asio::error::operation_aborted));
  } catch (...) {  // an attempt inside the co_await threw: nothing was taken
    p.set(finish.failed(errc::operation_threw));
  }
}

template <class Args>
struct Initiation {
  template <class Handler, class Make, class Finish, class Stop>
  void operator()(Handler&& handler, Make make, Finish finish, Stop stop) const {
    using H = std::decay_t<Handler>;
    using P = Promise<H, Args>;
    auto ex = ::asio::get_associated_executor(handler, ::asio::system_executor());
    const ::asio::io_context::executor_type* io = nullptr;
    if constexpr (std::is_same_v<decltype(ex), ::asio::any_io_executor>) {
      io = ex.template target<::asio::io_context::executor_type>();
    }
    ::asio::execution_context& ctx =
        io != nullptr ? io->context() : ::asio::query(ex, ::asio::execution::context);
    if constexpr (requires { make.precheck(); }) make.precheck();  // throws: nothing started
    Service& svc = Service::of(ctx);
    // The Promise moves the handler from here: an lvalue handler is copied first.
    H* h = nullptr;
    std::optional<H> copy;
    if constexpr (std::is_lvalue_reference_v<Handler>) {
      h = &copy.emplace(handler);
    } else {
      h = &handler;
    }
    Driver<P> d = drive<P>(typename P::Init{&svc, h, io}, std::move(make), std::move(finish));
    d.h.promise().start(svc, std::move(stop));
  }
};

// Builds the awaiter over the operations, wrapped in Abortable.
template <class... Ops>
struct Make {
  bool biased = false;
  weft::detail::Deadline deadline = weft::detail::Deadline::never();
  std::tuple<Ops...> ops;
  auto operator()(Sched& s, weft::detail::AsyncStopRef stop, OpBase* owner) {
    return std::apply(
        [&](Ops&... o) {
          return Await<Abortable<Ops>...>(s, biased, deadline, std::move(stop),
                                          Abortable<Ops>(owner, o)...);
        },
        ops);
  }
};
// The same for a put: owns the item, which the operation moves from only when it succeeds.
template <class Q>
struct MakePut {
  Q* q = nullptr;
  weft::detail::Deadline deadline = weft::detail::Deadline::never();
  typename Q::value_type item;
  auto operator()(Sched& s, weft::detail::AsyncStopRef stop, OpBase* owner) {
    using Op = weft::detail::PutOp<Q>;
    return Await<Abortable<Op>>(s, false, deadline, std::move(stop),
                                Abortable<Op>(owner, Op(*q, item)));
  }
};

template <class T>
struct GetFinish {
  using Args = std::tuple<std::error_code, T>;
  template <class R>
  Args operator()(R& r, weft::detail::AsyncEnd end) const {
    if (!r) return {failure(end), T{}};
    auto& item = std::get<0>(*r);
    if (!item) return {errc::shut_down, T{}};
    return {std::error_code(), std::move(*item)};
  }
  Args failed(std::error_code e) const { return {e, T{}}; }
};
struct PutFinish {
  using Args = std::tuple<std::error_code>;
  template <class R>
  Args operator()(R& r, weft::detail::AsyncEnd end) const {
    if (!r) return {failure(end)};
    if (!std::get<0>(*r)) return {errc::shut_down};
    return {std::error_code()};
  }
  Args failed(std::error_code e) const { return {e}; }
};
struct DoneFinish {  // join, wait, acquire
  using Args = std::tuple<std::error_code>;
  template <class R>
  Args operator()(R& r, weft::detail::AsyncEnd end) const {
    if (!r) return {failure(end)};
    return {std::error_code()};
  }
  Args failed(std::error_code e) const { return {e}; }
};
template <class V>
struct SelectFinish {
  using Args = std::tuple<std::error_code, V>;
  template <class R>
  Args operator()(R& r, weft::detail::AsyncEnd end) const {
    if (!r) return {failure(end), V{}};
    return {std::error_code(), std::move(*r)};
  }
  Args failed(std::error_code e) const { return {e, V{}}; }
};

// ---- Barrier: the generic layer's locked wait ---------------------------------------------------

// weft/async.hpp's wait over a Lock and a Condition, started by a posted step. Its result:
// what the operation threw, and the body (which knows how the wait ended).
template <class Body>
class LockedAwait : public weft::detail::AsyncLockedWait<Sched, Body> {
  using Base = weft::detail::AsyncLockedWait<Sched, Body>;

 public:
  struct Result {
    std::exception_ptr error;
    Body* body;
  };
  using Base::Base;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    if (Base::initiate(h)) Base::scheduler().post_first(Base::resume_of(*this));
  }
  void await_resume() const noexcept {}
  void rethrow_if_failed() const noexcept {}  // the Finish maps the error itself
  Result result() noexcept { return {Base::error(), &Base::body()}; }
  weft::detail::AsyncEnd end() const noexcept { return weft::detail::AsyncEnd::done; }
};

template <class Body>
struct MakeLocked {
  weft::Lock* lock = nullptr;
  weft::Condition* cond = nullptr;
  Body body;
  void precheck() const {
    if constexpr (requires { body.precheck(); }) body.precheck();
  }
  auto operator()(Sched& s, weft::detail::AsyncStopRef stop, OpBase* owner) {
    owner->keep_listed_ = true;  // see OpBase::keep_listed_
    return LockedAwait<Body>(s, *lock, *cond, std::move(stop), false, std::move(body));
  }
};

struct BarrierFinish {
  using Args = std::tuple<std::error_code, std::size_t>;
  template <class R>
  Args operator()(const R& r, weft::detail::AsyncEnd) const {
    if (!r.error) return {std::error_code(), r.body->result()};
    try {
      std::rethrow_exception(r.error);
    } catch (const BrokenBarrierError&) {
      return {errc::broken_barrier, 0};
    } catch (const Cancelled&) {
      return {::asio::error::operation_aborted, 0};
    } catch (...) {
      return {errc::operation_threw, 0};  // the action threw (the barrier is broken)
    }
  }
  Args failed(std::error_code e) const { return {e, 0}; }
};

template <class Sig, class Args, class Token, class Mk, class Finish, class Stop>
auto initiate(Token&& token, Mk make, Finish finish, Stop stop) {
  return ::asio::async_initiate<Token, Sig>(Initiation<Args>{}, token, std::move(make),
                                            std::move(finish), std::move(stop));
}

template <class T>
concept TimeArg = weft::detail::IsDuration<std::remove_cvref_t<T>>::value ||
    weft::detail::IsTimePoint<std::remove_cvref_t<T>>::value;
template <class T>
concept StopArg = std::same_as<std::remove_cvref_t<T>, std::stop_token>;
// What an operation takes between its object (and item) and the token: a timeout or a
// deadline, a std::stop_token, or one of each in either order.
template <class T>
concept Option = TimeArg<T> || StopArg<T>;

using Options = weft::detail::AsyncOptions;  // a deadline (default: never) and a stop_token
struct NoOptions {                           // the forms called without options
  weft::detail::Deadline deadline = weft::detail::Deadline::never();
  NoStop stop;
};

// The queues reject a negative timeout (std::invalid_argument, thrown by the initiating
// function); the other primitives treat it as "poll", as their blocking calls do.
template <class... Opts>
Options options_of(bool reject_negative, const Opts&... opts) {
  static_assert((TimeArg<Opts> + ... + 0) <= 1 && (StopArg<Opts> + ... + 0) <= 1,
                "weft::asio: an operation takes at most one timeout or deadline and at most "
                "one std::stop_token");
  return weft::detail::async_options(reject_negative, opts...);
}

template <class Q, class O, class Token>
auto get(Q& q, O o, Token&& token) {
  using T = typename Q::value_type;
  static_assert(std::is_default_constructible_v<T>,
                "weft::asio::async_get completes with (error_code, T): T must be "
                "default-constructible (wrap it in std::optional or std::unique_ptr)");
  using F = GetFinish<T>;
  return initiate<void(std::error_code, T), typename F::Args>(
      std::forward<Token>(token),
      Make<weft::detail::GetOp<Q>>{false, o.deadline, {weft::detail::GetOp<Q>(q)}}, F{},
      std::move(o.stop));
}
template <class Q, class O, class Token>
auto put(Q& q, typename Q::value_type&& item, O o, Token&& token) {
  return initiate<void(std::error_code), PutFinish::Args>(
      std::forward<Token>(token), MakePut<Q>{&q, o.deadline, std::move(item)}, PutFinish{},
      std::move(o.stop));
}
template <class Op, class O, class Token>
auto done(Op op, O o, Token&& token) {
  return initiate<void(std::error_code), DoneFinish::Args>(std::forward<Token>(token),
                                                           Make<Op>{false, o.deadline, {op}},
                                                           DoneFinish{}, std::move(o.stop));
}

template <class Stop, class Token>
auto barrier_wait(Barrier& b, std::optional<weft::detail::AsyncAccess::BarrierTimeout> timeout,
                  Stop stop, Token&& token) {
  using Body = weft::detail::AsyncBarrierWait;
  Body body{&b, {}};
  body.a.timeout = timeout;
  return initiate<void(std::error_code, std::size_t), BarrierFinish::Args>(
      std::forward<Token>(token),
      MakeLocked<Body>{&weft::detail::AsyncAccess::lock_of(b),
                       &weft::detail::AsyncAccess::changed_of(b), body},
      BarrierFinish{}, std::move(stop));
}
// A Barrier's options: a timeout (from the arrival on; none: the barrier's default) and a
// std::stop_token, in either order.
template <class... Opts>
auto barrier_options(Barrier& b, const Opts&... opts) {
  static_assert(
      ((weft::detail::IsDuration<std::remove_cvref_t<Opts>>::value || StopArg<Opts>)&&...),
      "weft::asio::async_wait(barrier, ...): a timeout (std::chrono::duration, from "
      "the arrival on) and a std::stop_token; a Barrier takes no deadline");
  static_assert((StopArg<Opts> + ... + 0) <= 1 && (TimeArg<Opts> + ... + 0) <= 1,
                "weft::asio::async_wait(barrier, ...): at most one timeout and one stop_token");
  std::pair<std::optional<weft::detail::AsyncAccess::BarrierTimeout>, std::stop_token> r{
      weft::detail::AsyncAccess::default_timeout(b), std::stop_token()};
  const auto one = [&](const auto& opt) {
    if constexpr (StopArg<decltype(opt)>) {
      r.second = opt;
    } else {
      r.first = weft::detail::AsyncAccess::BarrierTimeout(opt);
    }
  };
  (one(opts), ...);
  static_cast<void>(one);
  return r;
}

template <class... Ops>
struct SelectInitiator {
  bool biased = false;
  weft::detail::Deadline deadline = weft::detail::Deadline::never();
  std::stop_token stop;
  static_assert((!std::is_same_v<Ops, weft::detail::RLockOp> && ...),
                "weft::asio::async_select: an RLock is owned by a thread, and a handler may "
                "run on any thread of the executor; use a Lock");
  template <class Token>
  auto operator()(Token&& token, Ops... ops) const {
    using V = std::variant<typename Ops::result_type...>;
    using F = SelectFinish<V>;
    return initiate<void(std::error_code, V), typename F::Args>(
        std::forward<Token>(token), Make<Ops...>{biased, deadline, {ops...}}, F{}, stop);
  }
};
// Splits (ops..., token) and calls f(token, ops...).
template <class F, class Tuple, std::size_t... I>
auto token_last(F f, Tuple&& t, std::index_sequence<I...>) {
  constexpr std::size_t N = std::tuple_size_v<std::remove_reference_t<Tuple>>;
  return f(std::get<N - 1>(std::forward<Tuple>(t)), std::get<I>(std::forward<Tuple>(t))...);
}
// (ops..., token), or (stop_token, ops..., token).
template <class First, class... Args>
auto select(bool biased, weft::detail::Deadline d, First&& first, Args&&... args) {
  if constexpr (StopArg<First>) {
    static_assert(sizeof...(Args) >= 2, "weft::asio::async_select(stop_token, ops..., token)");
    auto t = std::forward_as_tuple(std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using Tuple = decltype(t);
      using Init = SelectInitiator<std::decay_t<std::tuple_element_t<I, Tuple>>...>;
      return token_last(Init{biased, d, std::forward<First>(first)}, std::move(t),
                        std::index_sequence<I...>{});
    }
    (std::make_index_sequence<sizeof...(Args) - 1>{});
  } else {
    static_assert(sizeof...(Args) >= 1, "weft::asio::async_select(ops..., token)");
    auto t = std::forward_as_tuple(std::forward<First>(first), std::forward<Args>(args)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using Tuple = decltype(t);
      using Init = SelectInitiator<std::decay_t<std::tuple_element_t<I, Tuple>>...>;
      return token_last(Init{biased, d, {}}, std::move(t), std::index_sequence<I...>{});
    }
    (std::make_index_sequence<sizeof...(Args)>{});
  }
}

}  // namespace detail
}  // namespace asio
}  // namespace weft

namespace weft {
namespace asio {

// ---- queues ------------------------------------------------------------------------------
//
// Each form takes, between its arguments and the completion token, no option, one, or two
// (detail::Option): a timeout (std::chrono::duration) or a deadline (std::chrono::time_point),
// and a std::stop_token, in either order. A stop request cancels the operation as its
// handler's cancellation slot does: it takes nothing, a wake-up it had passes on, and it
// completes with operation_aborted (also when the stop was requested before the initiating
// call; the handler still runs only on the executor, never inside that call).

template <class Q, class Token>
requires requires {
  typename Q::value_type;
}
auto async_get(Q& q, Token&& token) {
  return detail::get(q, detail::NoOptions{}, std::forward<Token>(token));
}
template <class Q, detail::Option A, class Token>
requires requires {
  typename Q::value_type;
}
auto async_get(Q& q, const A& a, Token&& token) {
  return detail::get(q, detail::options_of(true, a), std::forward<Token>(token));
}
template <class Q, detail::Option A, detail::Option B, class Token>
requires requires {
  typename Q::value_type;
}
auto async_get(Q& q, const A& a, const B& b, Token&& token) {
  return detail::get(q, detail::options_of(true, a, b), std::forward<Token>(token));
}

template <class Q, class Token>
requires requires {
  typename Q::value_type;
}
auto async_put(Q& q, typename Q::value_type item, Token&& token) {
  return detail::put(q, std::move(item), detail::NoOptions{}, std::forward<Token>(token));
}
template <class Q, detail::Option A, class Token>
requires requires {
  typename Q::value_type;
}
auto async_put(Q& q, typename Q::value_type item, const A& a, Token&& token) {
  return detail::put(q, std::move(item), detail::options_of(true, a), std::forward<Token>(token));
}
template <class Q, detail::Option A, detail::Option B, class Token>
requires requires {
  typename Q::value_type;
}
auto async_put(Q& q, typename Q::value_type item, const A& a, const B& b, Token&& token) {
  return detail::put(q, std::move(item), detail::options_of(true, a, b),
                     std::forward<Token>(token));
}

template <class Q, class Token>
requires requires(Q& q) {
  q.join();
}
auto async_join(Q& q, Token&& token) {
  return detail::done(weft::detail::JoinOp<Q>(q), detail::NoOptions{}, std::forward<Token>(token));
}
template <class Q, detail::Option A, class Token>
requires requires(Q& q) {
  q.join();
}
auto async_join(Q& q, const A& a, Token&& token) {
  return detail::done(weft::detail::JoinOp<Q>(q), detail::options_of(true, a),
                      std::forward<Token>(token));
}
template <class Q, detail::Option A, detail::Option B, class Token>
requires requires(Q& q) {
  q.join();
}
auto async_join(Q& q, const A& a, const B& b, Token&& token) {
  return detail::done(weft::detail::JoinOp<Q>(q), detail::options_of(true, a, b),
                      std::forward<Token>(token));
}

// ---- event, semaphore, lock ------------------------------------------------------------------

template <class Token>
auto async_wait(Event& e, Token&& token) {
  return detail::done(weft::detail::EventOp(e), detail::NoOptions{}, std::forward<Token>(token));
}
template <detail::Option A, class Token>
auto async_wait(Event& e, const A& a, Token&& token) {
  return detail::done(weft::detail::EventOp(e), detail::options_of(false, a),
                      std::forward<Token>(token));
}
template <detail::Option A, detail::Option B, class Token>
auto async_wait(Event& e, const A& a, const B& b, Token&& token) {
  return detail::done(weft::detail::EventOp(e), detail::options_of(false, a, b),
                      std::forward<Token>(token));
}

template <class Token>
auto async_acquire(Semaphore& s, Token&& token) {
  return detail::done(weft::detail::AcquireOp(s), detail::NoOptions{}, std::forward<Token>(token));
}
template <detail::Option A, class Token>
auto async_acquire(Semaphore& s, const A& a, Token&& token) {
  return detail::done(weft::detail::AcquireOp(s), detail::options_of(false, a),
                      std::forward<Token>(token));
}
template <detail::Option A, detail::Option B, class Token>
auto async_acquire(Semaphore& s, const A& a, const B& b, Token&& token) {
  return detail::done(weft::detail::AcquireOp(s), detail::options_of(false, a, b),
                      std::forward<Token>(token));
}
// The lock is held by nobody in particular once the operation completes: release it from
// anywhere.
template <class Token>
auto async_acquire(Lock& l, Token&& token) {
  return detail::done(weft::detail::LockOp(l), detail::NoOptions{}, std::forward<Token>(token));
}
template <detail::Option A, class Token>
auto async_acquire(Lock& l, const A& a, Token&& token) {
  return detail::done(weft::detail::LockOp(l), detail::options_of(false, a),
                      std::forward<Token>(token));
}
template <detail::Option A, detail::Option B, class Token>
auto async_acquire(Lock& l, const A& a, const B& b, Token&& token) {
  return detail::done(weft::detail::LockOp(l), detail::options_of(false, a, b),
                      std::forward<Token>(token));
}
// RLock counts re-entries of the thread that owns it, and a handler may run on any thread of
// the executor: not awaitable. Use a Lock.
template <class... Args>
void async_acquire(RLock&, Args&&...) = delete;

// ---- barrier ------------------------------------------------------------------------------------

// Barrier::wait(): completes with the party's index in the cycle, or errc::broken_barrier
// (the barrier broke: a timeout, abort(), reset(), or an action that threw:
// errc::operation_threw for the party that ran it), or operation_aborted (cancelled, through
// the slot or the stop_token, before the barrier tripped: the arrival is withdrawn). The
// timeout counts from the arrival; without one, the barrier's default timeout. The action
// runs in the handler's chain of the party that arrives last, on its executor. Thread and
// handler parties mix freely. Options: a timeout (a duration; no deadline) and a
// std::stop_token, in either order.
template <class Token>
auto async_wait(Barrier& b, Token&& token) {
  return detail::barrier_wait(b, weft::detail::AsyncAccess::default_timeout(b), detail::NoStop{},
                              std::forward<Token>(token));
}
template <detail::Option A, class Token>
auto async_wait(Barrier& b, const A& a, Token&& token) {
  auto [timeout, stop] = detail::barrier_options(b, a);
  return detail::barrier_wait(b, timeout, std::move(stop), std::forward<Token>(token));
}
template <detail::Option A, detail::Option B, class Token>
auto async_wait(Barrier& b, const A& a, const B& b2, Token&& token) {
  auto [timeout, stop] = detail::barrier_options(b, a, b2);
  return detail::barrier_wait(b, timeout, std::move(stop), std::forward<Token>(token));
}

// ---- select ------------------------------------------------------------------------------

// async_select(ops..., token): performs exactly one of select.hpp's operations
// (weft::get, put, wait, acquire, join); completes with its index and result in a variant.
// Cancelled (through the slot, or a std::stop_token given first: async_select(stop, ops...,
// token)): operation_aborted, and nothing was performed.
template <class... Args>
auto async_select(Args&&... args) {
  return detail::select(false, weft::detail::Deadline::never(), std::forward<Args>(args)...);
}
template <class... Args>
auto async_select(biased_t, Args&&... args) {
  return detail::select(true, weft::detail::Deadline::never(), std::forward<Args>(args)...);
}
// errc::timed_out if none was ready in time. A std::stop_token may follow the timeout
// (the deadline).
template <class Rep, class Period, class... Args>
auto async_select_for(std::chrono::duration<Rep, Period> timeout, Args&&... args) {
  return detail::select(false, weft::detail::select_deadline(timeout), std::forward<Args>(args)...);
}
template <class Clock, class Duration, class... Args>
auto async_select_until(std::chrono::time_point<Clock, Duration> deadline, Args&&... args) {
  return detail::select(false, weft::detail::Deadline::at(deadline), std::forward<Args>(args)...);
}

}  // namespace asio
}  // namespace weft
