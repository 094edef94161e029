// SPDX-License-Identifier: MIT
// weft::asio (include/weft/asio.hpp): weft's primitives as Asio asynchronous operations.
//
// What is checked: every queue kind under mixed thread and coroutine producers and
// consumers (each item exactly once); `get || timer` races with awaitable_operators and
// timeouts racing puts (nothing lost); cancellation through a slot racing put, release and
// set (a cancelled operation takes nothing, and a claim it had passes on); timeouts;
// io_context destruction with pending operations (nothing taken, handlers destroyed, not
// invoked; suspended coroutine frames destroyed); handlers never run inside the call that
// woke them nor inside the initiating call, and never nest; completion tokens (callbacks,
// use_awaitable, deferred, as_tuple, bind_executor to a strand); select; the lifetime rule.
// The tests synchronize with events, latches and barriers, never sleeps; io_contexts that
// a test polls by hand make the interleavings deterministic where that matters.
#include "weft/asio.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstddef>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

#if defined(WEFT_SANITIZED)
constexpr int kScale = 4;  // sanitizers: a quarter of the rounds
#else
constexpr int kScale = 1;
#endif

// An io_context run by `n` threads until finish(): which returns once every operation has
// completed (each weft operation is outstanding work until then).
class IoThreads {
 public:
  explicit IoThreads(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { ctx.run(); });
  }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  ~IoThreads() {
    if (!threads_.empty()) {
      ctx.stop();
      join();
    }
  }
  void finish() {
    work_.reset();
    join();
  }
  asio::io_context ctx;

 private:
  void join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  asio::executor_work_guard<asio::io_context::executor_type> work_{ctx.get_executor()};
  std::vector<std::thread> threads_;
};

// A callback's outcome, for the tests that poll an io_context by hand.
struct Outcome {
  bool done = false;
  std::error_code ec;
  int value = 0;
};
// A callback has no associated executor of its own (Asio's default would be the
// system_executor): these bind it to the test's io_context.
auto record(asio::io_context& ctx, Outcome& o) {
  return asio::bind_executor(ctx, [&o](std::error_code ec) {
    o.done = true;
    o.ec = ec;
  });
}
// Creates ctx's weft service (Asio creates a service on first use; the order of creation
// is the reverse of the order of shutdown) with a wait that completes at once, and leaves
// ctx ready to run again.
void create_weft_service(asio::io_context& ctx) {
  weft::Event set;
  set.set();
  Outcome first;
  weft::asio::async_wait(set, record(ctx, first));
  ctx.poll();
  EXPECT_TRUE(first.done);
  ctx.restart();
}
template <class T>
auto record_value(asio::io_context& ctx, Outcome& o) {
  return asio::bind_executor(ctx, [&o](std::error_code ec, T v) {
    o.done = true;
    o.ec = ec;
    o.value = static_cast<int>(v);
  });
}

// ---- mixed thread and coroutine traffic, every queue kind ----------------------------------

template <class Kind>
class AsioQueueKinds : public ::testing::Test {};
TYPED_TEST_SUITE(AsioQueueKinds, weft_test::AllQueueKinds, weft_test::KindNames);

// Two thread producers and two coroutine producers, two thread consumers and two coroutine
// consumers, on an io_context of two threads: every item is got exactly once.
TYPED_TEST(AsioQueueKinds, MixedThreadsAndCoroutinesCountEveryItemOnce) {
  using Item = typename TypeParam::Item;
  constexpr int kPerProducer = 2000 / kScale;
  constexpr int kProducers = 4;
  constexpr int kTotal = kPerProducer * kProducers;
  auto q = weft_test::new_queue<TypeParam>(8);
  std::vector<std::atomic<int>> seen(kTotal);
  std::atomic<int> consumed{0};
  weft::Event all_consumed;
  const auto count = [&](int v) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, kTotal);
    seen[static_cast<std::size_t>(v)].fetch_add(1);
    if (consumed.fetch_add(1) + 1 == kTotal) all_consumed.set();
  };
  std::latch coroutines_done(4);  // two producers, two consumers
  IoThreads io(2);
  for (int p = 0; p < 2; ++p) {
    asio::co_spawn(
        io.ctx,
        [&, p]() -> asio::awaitable<void> {
          for (int i = 0; i < kPerProducer; ++i) {
            co_await weft::asio::async_put(*q, Item(p * kPerProducer + i), use_awaitable);
          }
          coroutines_done.count_down();
        },
        asio::detached);
    asio::co_spawn(
        io.ctx,
        [&]() -> asio::awaitable<void> {
          for (;;) {
            const int v = static_cast<int>(co_await weft::asio::async_get(*q, use_awaitable));
            if (v < 0) break;
            count(v);
          }
          coroutines_done.count_down();
        },
        asio::detached);
  }
  std::vector<std::thread> threads;
  for (int p = 2; p < 4; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) q->put(Item(p * kPerProducer + i));
    });
    threads.emplace_back([&] {
      for (;;) {
        const int v = static_cast<int>(q->get());
        if (v < 0) break;
        count(v);
      }
    });
  }
  all_consumed.wait();
  for (int i = 0; i < 4; ++i) q->put(Item(-1));  // one stop item per consumer
  coroutines_done.wait();
  for (std::thread& t : threads) t.join();
  io.finish();
  for (int v = 0; v < kTotal; ++v) ASSERT_EQ(seen[static_cast<std::size_t>(v)].load(), 1) << v;
  EXPECT_EQ(q->qsize(), 0U);
}

// ---- races with a timer: awaitable_operators' || and timeouts --------------------------------

// `get || timer` thousands of times against a thread producer: a get that lost to the timer
// took nothing, so every item arrives exactly once (asio's channel loses them, asio #1041).
TEST(AsioRace, GetOrTimerLosesNothing) {
  constexpr int kItems = 3000 / kScale;
  weft::Queue<int> q(4);
  std::vector<int> seen(kItems, 0);
  int timer_wins = 0;
  IoThreads io(1);  // || emits the loser's cancellation on the coroutine's thread
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) q.put(i);
  });
  weft::Event done;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        std::minstd_rand rng(7);
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (int received = 0; received < kItems;) {
          timer.expires_after(std::chrono::microseconds(rng() % 60));
          auto r =
              co_await (weft::asio::async_get(q, use_awaitable) || timer.async_wait(use_awaitable));
          if (r.index() == 0) {
            ++seen[static_cast<std::size_t>(std::get<0>(r))];
            ++received;
          } else {
            ++timer_wins;
          }
        }
        done.set();
      },
      asio::detached);
  producer.join();
  done.wait();
  io.finish();
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
  EXPECT_EQ(q.qsize(), 0U);
  RecordProperty("timer_wins", timer_wins);
}

// The same with permits: acquired + still free == released.
TEST(AsioRace, AcquireOrTimerLosesNoPermit) {
  constexpr int kPermits = 3000 / kScale;
  weft::Semaphore sem(0);
  std::atomic<int> acquired{0};
  IoThreads io(1);
  weft::Event done;
  weft::Event released_all;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        std::minstd_rand rng(11);
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!released_all.is_set() || acquired.load() < kPermits) {
          timer.expires_after(std::chrono::microseconds(rng() % 60));
          auto r = co_await (weft::asio::async_acquire(sem, use_awaitable) ||
                             timer.async_wait(use_awaitable));
          if (r.index() == 0) acquired.fetch_add(1);
        }
        done.set();
      },
      asio::detached);
  for (int i = 0; i < kPermits; ++i) sem.release();
  released_all.set();
  done.wait();
  io.finish();
  EXPECT_EQ(acquired.load(), kPermits);
  EXPECT_FALSE(sem.acquire(false));  // no permit created or lost
}

// Timeouts racing a producer: an operation that timed out took nothing.
TEST(AsioRace, TimeoutsRacingPutsLoseNothing) {
  constexpr int kItems = 3000 / kScale;
  weft::Queue<int> q(4);
  std::vector<int> seen(kItems, 0);
  IoThreads io(2);
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) q.put(i);
  });
  weft::Event done;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        std::minstd_rand rng(3);
        for (int received = 0; received < kItems;) {
          auto [ec, v] =
              co_await weft::asio::async_get(q, std::chrono::microseconds(rng() % 80),
                                             asio::experimental::as_tuple(use_awaitable));
          if (!ec) {
            ++seen[static_cast<std::size_t>(v)];
            ++received;
          } else if (ec != weft::asio::errc::timed_out) {
            ADD_FAILURE() << ec.message();
            break;
          }
        }
        done.set();
      },
      asio::detached);
  producer.join();
  done.wait();
  io.finish();
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
}

// ---- cancellation ---------------------------------------------------------------------------

// A getter cancelled after a put claimed it, before its step ran: it takes nothing and the
// claim passes on to the next getter (the io_context is polled by hand, so the interleaving
// is exactly this one).
TEST(AsioCancel, ClaimedThenCancelledGetPassesTheItemOn) {
  asio::io_context ctx;
  weft::Queue<int> q;
  asio::cancellation_signal sig;
  Outcome a, c;
  weft::asio::async_get(q, asio::bind_cancellation_slot(sig.slot(), record_value<int>(ctx, a)));
  weft::asio::async_get(q, record_value<int>(ctx, c));
  ctx.poll();  // both registered, a first
  ASSERT_FALSE(a.done);
  ASSERT_FALSE(c.done);
  q.put(42);  // claims a and posts its step
  sig.emit(asio::cancellation_type::terminal);
  ctx.poll();
  ASSERT_TRUE(a.done);
  ASSERT_TRUE(c.done);
  EXPECT_EQ(a.ec, asio::error::operation_aborted);
  EXPECT_FALSE(c.ec);
  EXPECT_EQ(c.value, 42);
  EXPECT_EQ(q.qsize(), 0U);
}

// An operation that can proceed at once posts its first attempt without registering; a
// cancellation (slot or stop_token) made while that attempt is queued wins: the attempt
// takes nothing, and the handler runs on the executor with operation_aborted.
TEST(AsioCancel, CancelledWhileTheFirstAttemptIsQueuedTakesNothing) {
  asio::io_context ctx;
  weft::Queue<int> q;
  q.put(1);
  weft::Semaphore sem(1);
  weft::Lock lock;
  asio::cancellation_signal sig_get, sig_put, sig_lock;
  std::stop_source stop;
  weft::Queue<int> roomy(2);
  Outcome get, put, acq, lk;
  weft::asio::async_get(q,
                        asio::bind_cancellation_slot(sig_get.slot(), record_value<int>(ctx, get)));
  weft::asio::async_put(roomy, 5, asio::bind_cancellation_slot(sig_put.slot(), record(ctx, put)));
  weft::asio::async_acquire(sem, stop.get_token(), record(ctx, acq));
  weft::asio::async_acquire(lock, asio::bind_cancellation_slot(sig_lock.slot(), record(ctx, lk)));
  EXPECT_FALSE(get.done || put.done || acq.done || lk.done);  // never inline
  sig_get.emit(asio::cancellation_type::terminal);
  sig_put.emit(asio::cancellation_type::partial);
  stop.request_stop();
  sig_lock.emit(asio::cancellation_type::total);
  EXPECT_FALSE(get.done || put.done || acq.done || lk.done);
  ctx.poll();
  ASSERT_TRUE(get.done && put.done && acq.done && lk.done);
  EXPECT_EQ(get.ec, asio::error::operation_aborted);
  EXPECT_EQ(put.ec, asio::error::operation_aborted);
  EXPECT_EQ(acq.ec, asio::error::operation_aborted);
  EXPECT_EQ(lk.ec, asio::error::operation_aborted);
  EXPECT_EQ(q.qsize(), 1U);
  EXPECT_EQ(roomy.qsize(), 0U);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(lock.locked());
}

TEST(AsioCancel, ClaimedThenCancelledAcquirePassesThePermitOn) {
  asio::io_context ctx;
  weft::Semaphore sem(0);
  asio::cancellation_signal sig;
  Outcome a, c;
  weft::asio::async_acquire(sem, asio::bind_cancellation_slot(sig.slot(), record(ctx, a)));
  weft::asio::async_acquire(sem, record(ctx, c));
  ctx.poll();
  sem.release();
  sig.emit(asio::cancellation_type::partial);
  ctx.poll();
  ASSERT_TRUE(a.done && c.done);
  EXPECT_EQ(a.ec, asio::error::operation_aborted);
  EXPECT_FALSE(c.ec);
  EXPECT_FALSE(sem.acquire(false));  // c holds the one permit
}

TEST(AsioCancel, ClaimedThenCancelledLockPassesTheLockOn) {
  asio::io_context ctx;
  weft::Lock lock;
  lock.acquire();
  asio::cancellation_signal sig;
  Outcome a, c;
  weft::asio::async_acquire(lock, asio::bind_cancellation_slot(sig.slot(), record(ctx, a)));
  weft::asio::async_acquire(lock, record(ctx, c));
  ctx.poll();
  lock.release();
  sig.emit(asio::cancellation_type::total);
  ctx.poll();
  ASSERT_TRUE(a.done && c.done);
  EXPECT_EQ(a.ec, asio::error::operation_aborted);
  EXPECT_FALSE(c.ec);
  EXPECT_TRUE(lock.locked());  // held by c's completion
  lock.release();
}

TEST(AsioCancel, CancelledPutPutsNothing) {
  asio::io_context ctx;
  weft::Queue<int> q(1);
  q.put(1);
  asio::cancellation_signal sig;
  Outcome a;
  weft::asio::async_put(q, 2, asio::bind_cancellation_slot(sig.slot(), record(ctx, a)));
  ctx.poll();
  ASSERT_FALSE(a.done);
  sig.emit(asio::cancellation_type::terminal);
  ctx.poll();
  ASSERT_TRUE(a.done);
  EXPECT_EQ(a.ec, asio::error::operation_aborted);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.qsize(), 0U);
}

// Cancellation emitted on the io thread while another thread puts, releases or sets, over
// thousands of rounds: the operation either completed with what it took, or was aborted
// and took nothing.
TEST(AsioCancel, CancelRacingPutReleaseAndSet) {
  constexpr int kRounds = 2000 / kScale;
  IoThreads io(1);
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  int got = 0, aborted = 0;
  for (int round = 0; round < kRounds; ++round) {
    const int which = round % 3;
    weft::Event ev;
    std::barrier<> both(2);
    weft::Event done;
    std::error_code ec;
    int value = -1;
    asio::cancellation_signal sig;
    asio::post(io.ctx, [&] {
      auto slot = sig.slot();
      if (which == 0) {
        weft::asio::async_get(q,
                              asio::bind_cancellation_slot(
                                  slot, asio::bind_executor(io.ctx, [&](std::error_code e, int v) {
                                    ec = e;
                                    value = v;
                                    done.set();
                                  })));
      } else {
        auto h =
            asio::bind_cancellation_slot(slot, asio::bind_executor(io.ctx, [&](std::error_code e) {
                                           ec = e;
                                           done.set();
                                         }));
        if (which == 1) {
          weft::asio::async_acquire(sem, std::move(h));
        } else {
          weft::asio::async_wait(ev, std::move(h));
        }
      }
      both.arrive_and_wait();
      sig.emit(asio::cancellation_type::terminal);
    });
    both.arrive_and_wait();
    if (which == 0) {
      q.put(round);
    } else if (which == 1) {
      sem.release();
    } else {
      ev.set();
    }
    done.wait();
    if (!ec) {
      ++got;
      if (which == 0) {
        EXPECT_EQ(value, round);
      }
      if (which == 1) {
        EXPECT_FALSE(sem.acquire(false));
      }
    } else {
      ASSERT_EQ(ec, asio::error::operation_aborted);
      ++aborted;
      if (which == 0) {
        EXPECT_EQ(q.get_nowait(), round);  // still queued
      }
      if (which == 1) {
        EXPECT_TRUE(sem.acquire(false));  // still free
      }
    }
    ASSERT_EQ(q.qsize(), 0U);
  }
  io.finish();
  EXPECT_EQ(got + aborted, kRounds);
}

// ---- std::stop_token --------------------------------------------------------------------------

// Every queue kind: a waiting get, and a waiting put on the bounded kinds (its timeout and
// stop_token in the other order), stopped from this thread: request_stop() runs no handler;
// the executor completes each with operation_aborted, and nothing was taken or put. A get
// whose token was stopped before the initiating call takes nothing even with an item ready.
TYPED_TEST(AsioQueueKinds, StopTokenAbortsGetAndPutTakingNothing) {
  using Item = typename TypeParam::Item;
  asio::io_context ctx;
  auto q = weft_test::new_queue<TypeParam>(1);
  std::stop_source stop_get;
  Outcome waiting;
  weft::asio::async_get(*q, stop_get.get_token(), record_value<Item>(ctx, waiting));
  ctx.poll();
  ASSERT_FALSE(waiting.done);
  stop_get.request_stop();
  EXPECT_FALSE(waiting.done);  // never inside request_stop()
  ctx.poll();
  ASSERT_TRUE(waiting.done);
  EXPECT_EQ(waiting.ec, asio::error::operation_aborted);

  q->put(Item(7));
  Outcome early;
  weft::asio::async_get(*q, 1h, stop_get.get_token(), record_value<Item>(ctx, early));
  EXPECT_FALSE(early.done);  // never inside the initiating call
  ctx.restart();             // the last poll ran out of work
  ctx.poll();
  ASSERT_TRUE(early.done);
  EXPECT_EQ(early.ec, asio::error::operation_aborted);
  EXPECT_EQ(q->qsize(), 1U);

  if constexpr (TypeParam::kTasks) {  // bounded, and full
    std::stop_source stop_put;
    Outcome put;
    weft::asio::async_put(*q, Item(8), stop_put.get_token(), 1h, record(ctx, put));
    ctx.restart();
    ctx.poll();
    ASSERT_FALSE(put.done);
    stop_put.request_stop();
    EXPECT_FALSE(put.done);
    ctx.poll();
    ASSERT_TRUE(put.done);
    EXPECT_EQ(put.ec, asio::error::operation_aborted);
    EXPECT_EQ(q->unfinished_tasks(), 1U);  // only the 7: the stopped put counted nothing
  }
  EXPECT_EQ(static_cast<int>(q->get_nowait()), 7);
  EXPECT_EQ(q->qsize(), 0U);
}

// The other forms, waiting and then stopped: each completes on the executor with
// operation_aborted and holds nothing (no permit, no lock, no barrier arrival).
TEST(AsioStop, EveryOtherFormAbortsHoldingNothing) {
  asio::io_context ctx;
  weft::Queue<int> q;
  q.put(1);  // an unfinished task: a join waits
  weft::Event ev;
  weft::Semaphore sem(0);
  weft::Lock lock;
  lock.acquire();
  weft::Barrier b(2);
  std::stop_source stop;
  Outcome join, wait, acquire, locked, party, select;
  weft::asio::async_join(q, stop.get_token(), record(ctx, join));
  weft::asio::async_wait(ev, stop.get_token(), record(ctx, wait));
  weft::asio::async_acquire(sem, stop.get_token(), record(ctx, acquire));
  weft::asio::async_acquire(lock, 1h, stop.get_token(), record(ctx, locked));
  weft::asio::async_wait(b, stop.get_token(), 1h, record_value<std::size_t>(ctx, party));
  weft::asio::async_select(stop.get_token(), weft::get(q), weft::acquire(sem),
                           asio::bind_executor(ctx, [&](std::error_code ec, auto) {
                             select.done = true;
                             select.ec = ec;
                           }));
  ctx.poll();
  EXPECT_EQ(b.n_waiting(), 1U);
  for (const Outcome* o : {&join, &wait, &acquire, &locked, &party}) ASSERT_FALSE(o->done);
  ASSERT_TRUE(select.done);  // q had an item
  EXPECT_FALSE(select.ec);
  stop.request_stop();
  for (const Outcome* o : {&join, &wait, &acquire, &locked, &party}) EXPECT_FALSE(o->done);
  ctx.poll();
  for (const Outcome* o : {&join, &wait, &acquire, &locked, &party}) {
    ASSERT_TRUE(o->done);
    EXPECT_EQ(o->ec, asio::error::operation_aborted);
  }
  EXPECT_EQ(b.n_waiting(), 0U);
  EXPECT_FALSE(b.broken());
  sem.release();
  EXPECT_TRUE(sem.acquire(false));  // nobody took the permit
  lock.release();
  EXPECT_FALSE(lock.locked());  // the stopped acquire holds nothing
}

// A stop requested before the initiating call, every source ready: each operation completes
// on the executor with operation_aborted and takes nothing.
TEST(AsioStop, StoppedBeforeInitiationTakesNothing) {
  asio::io_context ctx;
  weft::Queue<int> q(1);
  weft::Event ev;
  ev.set();
  weft::Semaphore sem(1);
  weft::Lock lock;
  weft::Barrier b(1);
  std::stop_source stop;
  stop.request_stop();
  Outcome put, join, wait, acquire, locked, party, select;
  weft::asio::async_put(q, 1, stop.get_token(), record(ctx, put));
  weft::asio::async_join(q, stop.get_token(), record(ctx, join));
  weft::asio::async_wait(ev, stop.get_token(), record(ctx, wait));
  weft::asio::async_acquire(sem, stop.get_token(), record(ctx, acquire));
  weft::asio::async_acquire(lock, stop.get_token(), record(ctx, locked));
  weft::asio::async_wait(b, stop.get_token(), record_value<std::size_t>(ctx, party));
  weft::asio::async_select_for(1h, stop.get_token(), weft::acquire(sem), weft::wait(ev),
                               asio::bind_executor(ctx, [&](std::error_code ec, auto) {
                                 select.done = true;
                                 select.ec = ec;
                               }));
  const std::vector<const Outcome*> all{&put, &join, &wait, &acquire, &locked, &party, &select};
  for (const Outcome* o : all) EXPECT_FALSE(o->done);
  ctx.poll();
  for (const Outcome* o : all) {
    ASSERT_TRUE(o->done);
    EXPECT_EQ(o->ec, asio::error::operation_aborted);
  }
  EXPECT_EQ(q.qsize(), 0U);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(b.broken());
}

// A get, an acquire and a Lock acquire claimed by a put or release and then stopped before
// their steps ran: the claim passes on to the next waiter.
TEST(AsioStop, ClaimedThenStoppedPassesTheWakeUpOn) {
  asio::io_context ctx;
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  weft::Lock lock;
  lock.acquire();
  std::stop_source stop;
  Outcome get1, get2, acq1, acq2, lock1, lock2;
  weft::asio::async_get(q, stop.get_token(), record_value<int>(ctx, get1));
  weft::asio::async_get(q, record_value<int>(ctx, get2));
  weft::asio::async_acquire(sem, stop.get_token(), record(ctx, acq1));
  weft::asio::async_acquire(sem, record(ctx, acq2));
  weft::asio::async_acquire(lock, stop.get_token(), record(ctx, lock1));
  weft::asio::async_acquire(lock, record(ctx, lock2));
  ctx.poll();  // all registered, the stoppable ones first
  q.put(42);
  sem.release();
  lock.release();  // each claims its first waiter
  stop.request_stop();
  ctx.poll();
  for (const Outcome* o : {&get1, &acq1, &lock1}) {
    ASSERT_TRUE(o->done);
    EXPECT_EQ(o->ec, asio::error::operation_aborted);
  }
  for (const Outcome* o : {&get2, &acq2, &lock2}) {
    ASSERT_TRUE(o->done);
    EXPECT_FALSE(o->ec);
  }
  EXPECT_EQ(get2.value, 42);
  EXPECT_EQ(q.qsize(), 0U);
  EXPECT_FALSE(sem.acquire(false));  // acq2 holds the one permit
  EXPECT_TRUE(lock.locked());        // held by lock2's completion
  lock.release();
}

// A stop requested from a thread of its own, over thousands of rounds, in three kinds of
// round. A third are stopped first: the stopper requests the stop while this thread's
// initiating call runs on the io thread (racing the callback's registration), always
// before the source is made ready; each of these must abort. A third are never stopped;
// each must complete. The rest race the stop against a put, release or get made by this
// thread; either outcome passes, each round checked. Across rounds a ledger must balance:
// every item put was delivered to a handler or found still queued, every permit released
// was taken by a completed acquire or found still free.
TEST(AsioStop, StopRacingPutReleaseAndGetBalancesTheLedger) {
  constexpr int kRounds = 3000 / kScale;
  enum Kind { kStopFirst, kNeverStopped, kRace };
  const auto kind_of = [](int round) { return static_cast<Kind>(round % 3); };
  IoThreads io(1);
  weft::Queue<int> q;
  weft::Queue<int> full(1);
  weft::Semaphore sem(0);
  weft::Lock lock;
  std::vector<std::stop_source> stops(kRounds);
  weft::Barrier sync(2);  // this thread and the stopper, twice a round
  std::atomic<bool> quit{false};
  std::thread stopper([&] {
    for (int round = 0;; ++round) {
      sync.wait();  // (A) the round begins, or the test ends
      if (quit.load()) return;
      // A varying head start for the other side (up to some microseconds).
      const int spins = (round * 7919) % 2048;
      std::stop_source& stop = stops[static_cast<std::size_t>(round)];
      if (kind_of(round) == kStopFirst) {
        for (int spin = spins; spin > 0; --spin) weft::detail::cpu_relax();
        stop.request_stop();  // racing the initiating call
      }
      sync.wait();  // (B) initiated; the source is not ready yet
      if (kind_of(round) == kRace) {
        for (int spin = spins; spin > 0; --spin) weft::detail::cpu_relax();
        stop.request_stop();  // racing the put / release / get
      }
    }
  });
  int completed = 0, aborted = 0, stop_first = 0, never_stopped = 0;
  int items_put = 0, items_delivered = 0, items_left = 0;
  int permits_released = 0, permits_taken = 0, permits_left = 0;
  int async_puts_completed = 0, async_puts_found = 0;
  for (int round = 0; round < kRounds; ++round) {
    const int which = round % 4;
    const Kind kind = kind_of(round);
    const std::stop_token token = stops[static_cast<std::size_t>(round)].get_token();
    weft::Event initiated;
    weft::Event done;
    std::error_code ec;
    int value = -1;
    if (which == 2) full.put(-1);
    if (which == 3) lock.acquire();
    sync.wait();  // (A)
    asio::post(io.ctx, [&] {
      auto h = asio::bind_executor(io.ctx, [&](std::error_code e) {
        ec = e;
        done.set();
      });
      switch (which) {
        case 0:
          weft::asio::async_get(q, token,
                                asio::bind_executor(io.ctx, [&](std::error_code e, int v) {
                                  ec = e;
                                  value = v;
                                  done.set();
                                }));
          break;
        case 1:
          weft::asio::async_acquire(sem, token, std::move(h));
          break;
        case 2:
          weft::asio::async_put(full, round, token, std::move(h));
          break;
        default:
          weft::asio::async_acquire(lock, token, std::move(h));
          break;
      }
      initiated.set();
    });
    initiated.wait();  // Wake-up source: the posted initiation, on the io thread
    sync.wait();       // (B): a stop-first round's stop has been requested
    switch (which) {
      case 0:
        q.put(round);
        ++items_put;
        break;
      case 1:
        sem.release();
        ++permits_released;
        break;
      case 2:
        EXPECT_EQ(full.get(), -1);
        break;
      default:
        lock.release();
        break;
    }
    done.wait();  // Wake-up source: the handler, on the io thread
    if (kind == kStopFirst) {
      ++stop_first;
      EXPECT_EQ(ec, asio::error::operation_aborted) << "round " << round;
    } else if (kind == kNeverStopped) {
      ++never_stopped;
      EXPECT_FALSE(ec) << "round " << round;
    } else if (ec) {
      EXPECT_EQ(ec, asio::error::operation_aborted) << "round " << round;
    }
    if (!ec) {
      ++completed;
      if (which == 0) {
        EXPECT_EQ(value, round);
        if (value == round) ++items_delivered;
      }
      if (which == 1) ++permits_taken;  // the operation holds it
      if (which == 2) ++async_puts_completed;
      if (which == 3) {
        EXPECT_TRUE(lock.locked());  // the operation holds it
        lock.release();
      }
    } else {
      ++aborted;
      EXPECT_FALSE(lock.locked());  // an aborted acquire holds nothing
    }
    // What the round left behind, whatever its outcome.
    for (; q.qsize() > 0; ++items_left) EXPECT_EQ(q.get_nowait(), round);
    while (sem.acquire(false)) ++permits_left;
    for (; full.qsize() > 0; ++async_puts_found) EXPECT_EQ(full.get_nowait(), round);
    if (::testing::Test::HasFailure()) break;  // the stopper leaves at (A)
  }
  quit.store(true);
  sync.wait();  // (A): the stopper sees quit and returns
  stopper.join();
  io.finish();
  EXPECT_EQ(items_put, items_delivered + items_left);
  EXPECT_EQ(permits_released, permits_taken + permits_left);
  EXPECT_EQ(async_puts_completed, async_puts_found);
  EXPECT_GE(aborted, stop_first);
  EXPECT_GE(completed, never_stopped);
  RecordProperty("completed", completed);  // how the races went (--gtest_output=xml)
  RecordProperty("aborted", aborted);
}

// A thread that requests the stop of each round's token, a varying number of spins after
// both sides met at the round's barrier (sync()), for `rounds` rounds; joined by the
// destructor. Both sides run every round, failures included, so that neither waits alone;
// a test that leaves early by an exception breaks the barrier (the destructor's abort()),
// and the thread returns.
class RoundStopper {
 public:
  explicit RoundStopper(int rounds) : stops_(static_cast<std::size_t>(rounds)) {
    thread_ = std::thread([this, rounds] {
      try {
        for (int round = 0; round < rounds; ++round) {
          // Wake-up source: the test's sync() of the same round, or the destructor's abort().
          sync_.wait();
          for (int spin = (round * 7919) % 4096; spin > 0; --spin) weft::detail::cpu_relax();
          stops_[static_cast<std::size_t>(round)].request_stop();
        }
      } catch (const weft::BrokenBarrierError&) {  // the test left early
      }
    });
  }
  RoundStopper(const RoundStopper&) = delete;
  RoundStopper& operator=(const RoundStopper&) = delete;
  ~RoundStopper() {
    sync_.abort();  // after the last round: nobody waits; before it: the thread returns
    thread_.join();
  }
  std::stop_token token(int round) const {
    return stops_[static_cast<std::size_t>(round)].get_token();
  }
  // Wake-up source: the stopper thread's arrival for this round.
  void sync() { sync_.wait(); }

 private:
  std::vector<std::stop_source> stops_;
  weft::Barrier sync_{2};
  std::thread thread_;
};

// A stop requested from another thread while the io_context is destroyed with two
// operations waiting under it: the stop either aborted them first (the handlers never run:
// the context is gone before they could) or found them already destroyed; no handler is
// invoked and nothing is taken. ASan and TSan watch the callback's removal.
TEST(AsioStop, StopRacingContextDestructionTakesNothing) {
  constexpr int kRounds = 400 / kScale;
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  RoundStopper stopper(kRounds);
  int invoked = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::stop_token token = stopper.token(round);
    {
      asio::io_context ctx;
      weft::asio::async_get(q, token,
                            asio::bind_executor(ctx, [&](std::error_code, int) { ++invoked; }));
      weft::asio::async_acquire(sem, 1h, token,
                                asio::bind_executor(ctx, [&](std::error_code) { ++invoked; }));
      ctx.poll();
      stopper.sync();
      // ~io_context here, racing the request
    }
    EXPECT_EQ(invoked, 0) << "round " << round;
    q.put(round);
    sem.release();
    EXPECT_EQ(q.get_nowait(), round);  // nobody took them
    EXPECT_TRUE(sem.acquire(false));
  }
}

// The same race while the operations' first attempts are still queued (their sources were
// ready, so nothing registered): the context's destruction drops the queued steps, the stop
// finds the operations aborted or already freed, nothing is taken and no handler runs.
TEST(AsioStop, StopRacingTheDestructionOfQueuedFirstAttemptsTakesNothing) {
  constexpr int kRounds = 400 / kScale;
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  RoundStopper stopper(kRounds);
  int invoked = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::stop_token token = stopper.token(round);
    q.put(round);
    sem.release();
    {
      asio::io_context ctx;
      weft::asio::async_get(q, token,
                            asio::bind_executor(ctx, [&](std::error_code, int) { ++invoked; }));
      weft::asio::async_acquire(sem, token,
                                asio::bind_executor(ctx, [&](std::error_code) { ++invoked; }));
      stopper.sync();
      // ~io_context here, with both first attempts queued, racing the request
    }
    EXPECT_EQ(invoked, 0) << "round " << round;
    EXPECT_EQ(q.get_nowait(), round);  // nobody took them
    EXPECT_TRUE(sem.acquire(false));
  }
}

// A select waiting on an empty queue and a zero semaphore, then stopped: it completes on
// the executor with operation_aborted, and neither source lost anything.
TEST(AsioStop, SelectStoppedWhileWaitingTakesNothing) {
  asio::io_context ctx;
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  std::stop_source stop;
  Outcome select;
  weft::asio::async_select(stop.get_token(), weft::get(q), weft::acquire(sem),
                           asio::bind_executor(ctx, [&](std::error_code ec, auto) {
                             select.done = true;
                             select.ec = ec;
                           }));
  ctx.poll();
  ASSERT_FALSE(select.done);  // waiting on both
  stop.request_stop();
  EXPECT_FALSE(select.done);  // never inline
  ctx.poll();
  ASSERT_TRUE(select.done);
  EXPECT_EQ(select.ec, asio::error::operation_aborted);
  q.put(7);
  sem.release();
  EXPECT_EQ(q.get_nowait(), 7);  // nobody took them
  EXPECT_TRUE(sem.acquire(false));
}

// A cancellation slot, a stop_token and a timeout on one operation, the slot and the stop
// both used, in either order: one completion, operation_aborted, nothing taken, and the
// timer does not keep the context busy.
TEST(AsioStop, SlotStopAndTimeoutTogetherCompleteOnce) {
  asio::io_context ctx;
  weft::Queue<int> q;
  asio::cancellation_signal sig1, sig2;
  std::stop_source stop1, stop2;
  int calls1 = 0, calls2 = 0;
  std::error_code ec1, ec2;
  weft::asio::async_get(q, 1h, stop1.get_token(),
                        asio::bind_cancellation_slot(
                            sig1.slot(), asio::bind_executor(ctx, [&](std::error_code e, int) {
                              ++calls1;
                              ec1 = e;
                            })));
  weft::asio::async_get(q, 1h, stop2.get_token(),
                        asio::bind_cancellation_slot(
                            sig2.slot(), asio::bind_executor(ctx, [&](std::error_code e, int) {
                              ++calls2;
                              ec2 = e;
                            })));
  ctx.poll();
  ASSERT_EQ(calls1 + calls2, 0);
  sig1.emit(asio::cancellation_type::terminal);  // slot first, then the stop
  stop1.request_stop();
  stop2.request_stop();  // stop first, then the slot
  sig2.emit(asio::cancellation_type::terminal);
  ctx.run();  // returns: nothing is left waiting, the timers included
  EXPECT_EQ(calls1, 1);
  EXPECT_EQ(calls2, 1);
  EXPECT_EQ(ec1, asio::error::operation_aborted);
  EXPECT_EQ(ec2, asio::error::operation_aborted);
  q.put(3);
  EXPECT_EQ(q.get_nowait(), 3);
}

// The shape of docs/async.md's example: a timeout and a stop_token before
// as_tuple(use_awaitable), in a coroutine; and the same with deferred. The first get finds
// an item; the second waits and is stopped from outside.
TEST(AsioStop, StopTokenWithUseAwaitableAndDeferred) {
  asio::io_context ctx;
  weft::Queue<int> jobs;
  jobs.put(5);
  std::stop_source stop;
  std::error_code ec1, ec2, ec3;
  int job1 = -1, job3 = -1;
  bool finished = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto [e1, j1] = co_await weft::asio::async_get(jobs, 1h, stop.get_token(),
                                                       asio::experimental::as_tuple(use_awaitable));
        ec1 = e1;
        job1 = j1;
        auto op = weft::asio::async_get(jobs, stop.get_token(), asio::experimental::deferred);
        auto [e2, j2] = co_await std::move(op)(asio::experimental::as_tuple(use_awaitable));
        ec2 = e2;
        static_cast<void>(j2);
        // A stopped token: aborted before it waits, even with an item queued.
        jobs.put(6);
        auto [e3, j3] = co_await weft::asio::async_get(jobs, 1h, stop.get_token(),
                                                       asio::experimental::as_tuple(use_awaitable));
        ec3 = e3;
        job3 = j3;
        finished = true;
      },
      asio::detached);
  ctx.poll();
  EXPECT_FALSE(ec1);
  EXPECT_EQ(job1, 5);
  ASSERT_FALSE(finished);  // the deferred get waits on an empty queue
  stop.request_stop();
  ctx.run();
  ASSERT_TRUE(finished);
  EXPECT_EQ(ec2, asio::error::operation_aborted);
  EXPECT_EQ(ec3, asio::error::operation_aborted);
  EXPECT_EQ(jobs.get_nowait(), 6);  // nothing taken
  static_cast<void>(job3);
}

// A Barrier waited on from the io thread, stopped from a thread of its own: the wait
// completes with operation_aborted, the party is withdrawn and the Barrier is not broken.
TEST(AsioStop, BarrierStoppedFromAnotherThread) {
  IoThreads io(1);
  weft::Barrier b(2);
  std::stop_source stop;
  weft::Event done;
  std::error_code ec;
  asio::post(io.ctx, [&] {
    weft::asio::async_wait(b, stop.get_token(),
                           asio::bind_executor(io.ctx, [&](std::error_code e, std::size_t) {
                             ec = e;
                             done.set();
                           }));
  });
  // Wake-up source: none; the io thread registers the party within a few microseconds.
  while (b.n_waiting() != 1) std::this_thread::yield();
  std::thread stopper([&] { stop.request_stop(); });
  stopper.join();
  done.wait();  // Wake-up source: the handler, on the io thread
  io.finish();
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(b.n_waiting(), 0U);
  EXPECT_FALSE(b.broken());
}

// The io_context is destroyed with operations waiting under a stop_token: they are
// aborted without being invoked, and a stop requested afterwards touches nothing of theirs
// (ASan checks that the callback went with them).
TEST(AsioStop, ShutdownDetachesTheStopCallback) {
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  std::stop_source stop;
  bool invoked = false;
  {
    asio::io_context ctx;
    weft::asio::async_get(q, stop.get_token(),
                          asio::bind_executor(ctx, [&](std::error_code, int) { invoked = true; }));
    weft::asio::async_acquire(sem, 1h, stop.get_token(),
                              asio::bind_executor(ctx, [&](std::error_code) { invoked = true; }));
    ctx.poll();
  }
  stop.request_stop();
  EXPECT_FALSE(invoked);
  q.put(1);
  sem.release();
  EXPECT_EQ(q.get_nowait(), 1);  // nobody took them
  EXPECT_TRUE(sem.acquire(false));
}

// ---- timeouts -------------------------------------------------------------------------------

TEST(AsioTimeout, EveryOperationTimesOutTakingNothing) {
  asio::io_context ctx;
  weft::Queue<int> empty;
  weft::Queue<int> full(1);
  full.put(1);
  weft::Semaphore sem(0);
  weft::Event ev;
  weft::Lock lock;
  lock.acquire();
  weft::Queue<int> busy;
  busy.put(5);  // a task never done: join times out
  Outcome get, put, acq, wait, lck, join, sel;
  weft::asio::async_get(empty, 2ms, record_value<int>(ctx, get));
  weft::asio::async_put(full, 2, 2ms, record(ctx, put));
  weft::asio::async_acquire(sem, 1ms, record(ctx, acq));
  weft::asio::async_wait(ev, 1ms, record(ctx, wait));
  weft::asio::async_acquire(lock, std::chrono::steady_clock::now() + 1ms, record(ctx, lck));
  weft::asio::async_join(busy, 1ms, record(ctx, join));
  weft::asio::async_select_for(1ms, weft::get(empty), weft::wait(ev),
                               asio::bind_executor(ctx, [&](std::error_code ec, auto) {
                                 sel.done = true;
                                 sel.ec = ec;
                               }));
  ctx.run();
  for (Outcome* o : {&get, &put, &acq, &wait, &lck, &join, &sel}) {
    ASSERT_TRUE(o->done);
    EXPECT_EQ(o->ec, weft::asio::errc::timed_out);
    EXPECT_EQ(o->ec, std::errc::timed_out);  // the portable condition
  }
  EXPECT_EQ(empty.qsize(), 0U);
  EXPECT_EQ(full.qsize(), 1U);
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_TRUE(lock.locked());
  lock.release();
  // A negative timeout is bad input for a queue, as for its blocking calls.
  EXPECT_THROW(weft::asio::async_get(empty, -1ms, record_value<int>(ctx, get)),
               std::invalid_argument);
}

TEST(AsioTimeout, CompletesBeforeTheDeadline) {
  IoThreads io(1);
  weft::Queue<int> q;
  weft::Event done;
  std::error_code ec;
  int v = 0;
  asio::post(io.ctx, [&] {
    weft::asio::async_get(q, 1h, asio::bind_executor(io.ctx, [&](std::error_code e, int x) {
                            ec = e;
                            v = x;
                            done.set();
                          }));
  });
  q.put(9);
  done.wait();
  io.finish();  // the armed timer was cancelled, or run() would wait an hour
  EXPECT_FALSE(ec);
  EXPECT_EQ(v, 9);
}

// ---- shutdown -------------------------------------------------------------------------------

struct FrameGuard {
  explicit FrameGuard(std::atomic<int>* d) : destroyed(d) {}
  FrameGuard(const FrameGuard&) = delete;
  FrameGuard& operator=(const FrameGuard&) = delete;
  ~FrameGuard() { destroyed->fetch_add(1); }
  std::atomic<int>* destroyed;
};

// Destroying an io_context with pending operations, some registered, some claimed with
// their step queued: nothing is taken, no handler runs, suspended coroutine frames are
// destroyed, and the claims pass on to waiters elsewhere (ASan: nothing leaks or is used
// after it is freed).
TEST(AsioShutdown, DestroyingTheContextAbortsPendingOperations) {
  weft::Queue<int> q_wait;   // a getter waits
  weft::Queue<int> q_claim;  // a getter is claimed, its step queued
  weft::Queue<int> full(1);
  full.put(1);
  weft::Semaphore sem(0);
  weft::Event ev;
  weft::Lock lock;
  lock.acquire();
  std::atomic<int> invoked{0};
  std::atomic<int> frames_destroyed{0};
  const auto counter = [&invoked](auto&&...) { invoked.fetch_add(1); };

  asio::io_context other;  // waiters that must receive the passed-on claims
  Outcome other_get, other_acq, other_lock;
  {
    asio::io_context ctx;
    const auto count = [&] { return asio::bind_executor(ctx, counter); };
    weft::asio::async_get(q_wait, count());
    weft::asio::async_get(q_claim, count());
    weft::asio::async_acquire(sem, count());
    weft::asio::async_acquire(lock, count());
    weft::asio::async_wait(ev, 1h, count());
    weft::asio::async_put(full, 2, count());
    weft::asio::async_join(full, count());
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          FrameGuard guard(&frames_destroyed);
          co_await weft::asio::async_get(q_wait, use_awaitable);
          invoked.fetch_add(1);
        },
        asio::detached);
    ctx.poll();  // every operation registered
    weft::asio::async_get(q_claim, record_value<int>(other, other_get));
    weft::asio::async_acquire(sem, record(other, other_acq));
    weft::asio::async_acquire(lock, record(other, other_lock));
    other.poll();    // registered behind the first ones
    q_claim.put(7);  // claims ctx's getter; its step is queued on ctx
    sem.release();   // likewise
    lock.release();  // likewise
    EXPECT_EQ(invoked.load(), 0);
  }  // ~io_context
  EXPECT_EQ(invoked.load(), 0);
  EXPECT_EQ(frames_destroyed.load(), 1);
  EXPECT_EQ(full.qsize(), 1U);
  other.poll();  // the claims passed on to other's waiters
  ASSERT_TRUE(other_get.done && other_acq.done && other_lock.done);
  EXPECT_FALSE(other_get.ec);
  EXPECT_EQ(other_get.value, 7);
  EXPECT_FALSE(other_acq.ec);
  EXPECT_FALSE(other_lock.ec);
  EXPECT_TRUE(lock.locked());
  lock.release();
  // The primitives work on after the context went away.
  q_wait.put(3);
  EXPECT_EQ(q_wait.get(), 3);
  ev.set();
}

// Operations whose first step is still queued when the context goes (ready ones, and ones
// with a timeout): nothing taken, no handler invoked, the coroutine frame destroyed.
TEST(AsioShutdown, QueuedFirstStepsTakeNothing) {
  weft::Queue<int> q;
  q.put(1);
  weft::Semaphore sem(1);
  std::atomic<int> invoked{0};
  std::atomic<int> frames_destroyed{0};
  {
    asio::io_context ctx;
    const auto count = [&] {
      return asio::bind_executor(ctx, [&](auto&&...) { invoked.fetch_add(1); });
    };
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          FrameGuard guard(&frames_destroyed);
          co_await weft::asio::async_get(q, use_awaitable);
          invoked.fetch_add(1);
        },
        asio::detached);
    ctx.poll_one();  // the coroutine starts; its get posts its first attempt
    weft::asio::async_get(q, 1h, count());
    weft::asio::async_acquire(sem, count());
  }
  EXPECT_EQ(invoked.load(), 0);
  EXPECT_EQ(frames_destroyed.load(), 1);
  EXPECT_EQ(q.qsize(), 1U);
  EXPECT_TRUE(sem.acquire(false));
}

// Steps queued on a strand when the context goes: a first attempt (its source was ready)
// and a claimed getter's step. When weft's service was created first, the strand's service
// shuts down before it and destroys the steps, which hand their operations back to weft's
// shutdown; otherwise the context's scheduler destroys them after weft's shutdown. Either
// way nothing is taken, no handler runs, and the claim passes on.
TEST(AsioShutdown, StepsQueuedOnAStrandAreDroppedInEitherOrder) {
  for (const bool weft_first : {true, false}) {
    SCOPED_TRACE(weft_first ? "weft's service first" : "the strand's service first");
    weft::Queue<int> ready;
    ready.put(1);
    weft::Queue<int> q_claim;
    std::atomic<int> invoked{0};
    const auto counter = [&invoked](auto&&...) { invoked.fetch_add(1); };
    asio::io_context other;
    Outcome other_get;
    {
      asio::io_context ctx;
      std::optional<asio::strand<asio::io_context::executor_type>> strand;
      if (!weft_first) strand.emplace(asio::make_strand(ctx));
      create_weft_service(ctx);
      if (weft_first) strand.emplace(asio::make_strand(ctx));
      weft::asio::async_get(q_claim, asio::bind_executor(*strand, counter));
      ctx.poll();                                                           // registered
      weft::asio::async_get(ready, asio::bind_executor(*strand, counter));  // queued
      weft::asio::async_get(q_claim, record_value<int>(other, other_get));
      other.poll();    // registered behind the strand's getter
      q_claim.put(7);  // claims the strand's getter: its step is queued on the strand
      EXPECT_EQ(invoked.load(), 0);
    }  // ~io_context
    EXPECT_EQ(invoked.load(), 0);
    EXPECT_EQ(ready.qsize(), 1U);
    other.poll();
    ASSERT_TRUE(other_get.done);
    EXPECT_FALSE(other_get.ec);
    EXPECT_EQ(other_get.value, 7);
  }
}

// A callback whose destructor, unless it was moved from, calls `then` (an operation started
// while the handler is destroyed). Invoking it counts in `invoked`.
template <class Then>
class StartsOnDestruction {
 public:
  StartsOnDestruction(Then then, std::atomic<int>* invoked)
      : then_(std::move(then)), invoked_(invoked) {}
  StartsOnDestruction(StartsOnDestruction&& o) noexcept
      : then_(std::move(o.then_)), armed_(std::exchange(o.armed_, false)), invoked_(o.invoked_) {}
  StartsOnDestruction(const StartsOnDestruction&) = delete;
  StartsOnDestruction& operator=(const StartsOnDestruction&) = delete;
  StartsOnDestruction& operator=(StartsOnDestruction&&) = delete;
  ~StartsOnDestruction() {
    if (armed_) then_();
  }
  void operator()(std::error_code /*ec*/, int /*v*/) { invoked_->fetch_add(1); }

 private:
  Then then_;
  bool armed_ = true;
  std::atomic<int>* invoked_;
};

// A handler destroyed by the context's destruction starts new operations from its
// destructor, bound to that same context: a get on an empty queue (it would register) and
// one on a ready queue (it would post its first attempt). Destroyed once by weft's
// shutdown (the first operation waits) and once by the context's scheduler (its first
// step is queued, so the handler goes after weft's shutdown has finished). The new
// operations are destroyed at once: no handler runs, nothing is taken, nothing stays
// registered on the queue, and each handler (with its shared token) is freed.
TEST(AsioShutdown, OperationsStartedFromAHandlersDestructorAreDestroyedUnrun) {
  for (const bool first_waits : {true, false}) {
    SCOPED_TRACE(first_waits ? "destroyed by weft's shutdown" : "destroyed by the scheduler");
    weft::Queue<int> first_q;
    if (!first_waits) first_q.put(1);
    weft::Queue<int> empty_q;
    weft::Queue<int> ready_q;
    ready_q.put(2);
    std::atomic<int> invoked{0};
    std::atomic<int> started{0};
    auto life = std::make_shared<int>(0);
    const std::weak_ptr<int> watch = life;
    {
      asio::io_context ctx;
      const auto start_more = [&ctx, &empty_q, &ready_q, &invoked, &started, life] {
        started.fetch_add(1);
        const auto count = [&invoked, life](std::error_code, int) { invoked.fetch_add(1); };
        weft::asio::async_get(empty_q, asio::bind_executor(ctx, count));
        weft::asio::async_get(ready_q, asio::bind_executor(ctx, count));
      };
      weft::asio::async_get(first_q,
                            asio::bind_executor(ctx, StartsOnDestruction(start_more, &invoked)));
      life.reset();  // the handlers hold the only references now
    }                // ~io_context
    EXPECT_EQ(started.load(), 1);
    EXPECT_EQ(invoked.load(), 0);
    EXPECT_TRUE(watch.expired()) << "a handler was not freed";
    EXPECT_EQ(ready_q.qsize(), 1U);
    EXPECT_EQ(first_q.qsize(), first_waits ? 0U : 1U);
    empty_q.put(3);  // no getter registered: the item stays
    EXPECT_EQ(empty_q.get_nowait(), 3);
  }
}

// A getter with a timeout is claimed while its timer is armed, and the context goes with
// its step queued: the step is dropped, the timer disarmed, the claim passes on to a getter
// elsewhere, no handler runs and the handler is freed. The getter runs on a strand made
// after weft's service, whose service therefore shuts down first and hands the step back
// to weft's shutdown; the timer service is made before weft's (it shuts down after it: the
// timer is disarmed while its service still runs) or by the getter's first step (it shuts
// down first: the timer is disarmed after).
TEST(AsioShutdown, AClaimedStepWithAnArmedTimerIsDroppedAndPassesTheClaimOn) {
  for (const bool timers_first : {true, false}) {
    SCOPED_TRACE(timers_first ? "the timer service first" : "the timer service last");
    weft::Queue<int> q;
    std::atomic<int> invoked{0};
    auto life = std::make_shared<int>(0);
    const std::weak_ptr<int> watch = life;
    asio::io_context other;
    Outcome other_get;
    {
      asio::io_context ctx;
      std::optional<asio::steady_timer> early;
      if (timers_first) early.emplace(ctx);  // creates the timer service before weft's
      create_weft_service(ctx);
      const auto strand = asio::make_strand(ctx);  // its service after weft's
      weft::asio::async_get(q, 1h,
                            asio::bind_executor(strand, [&invoked, life](std::error_code, int) {
                              invoked.fetch_add(1);
                            }));
      life.reset();
      ctx.poll();  // the first attempt registers and arms the timer
      ASSERT_EQ(invoked.load(), 0);
      weft::asio::async_get(q, record_value<int>(other, other_get));
      other.poll();  // registered behind ctx's getter
      q.put(7);      // claims ctx's getter, timer armed: its step is queued on the strand
      EXPECT_EQ(invoked.load(), 0);
    }  // ~io_context
    EXPECT_EQ(invoked.load(), 0);
    EXPECT_TRUE(watch.expired()) << "the operation's handler was not freed";
    other.poll();  // the claim passed on
    ASSERT_TRUE(other_get.done);
    EXPECT_FALSE(other_get.ec);
    EXPECT_EQ(other_get.value, 7);
    EXPECT_EQ(q.qsize(), 0U);
  }
}

// ---- never inline ---------------------------------------------------------------------------

// A handler runs neither inside the initiating call (even when the operation can complete
// at once) nor inside the call that woke it: only when the executor runs it.
TEST(AsioInline, HandlersRunOnlyFromTheExecutor) {
  asio::io_context ctx;
  auto work = asio::make_work_guard(ctx);  // poll() must not stop ctx when it runs dry
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  weft::Event ev;
  weft::Lock lock;
  Outcome ready, get, acq, wait, lck, join;
  q.put(1);
  weft::asio::async_get(q, record_value<int>(ctx, ready));
  EXPECT_FALSE(ready.done);  // ready at once, still not inline
  ctx.poll();
  ASSERT_TRUE(ready.done);
  EXPECT_EQ(ready.value, 1);
  q.task_done();

  lock.acquire();
  weft::Queue<int> jq;
  jq.put(0);  // an unfinished task
  jq.get();
  weft::asio::async_get(q, record_value<int>(ctx, get));
  weft::asio::async_acquire(sem, record(ctx, acq));
  weft::asio::async_wait(ev, record(ctx, wait));
  weft::asio::async_acquire(lock, record(ctx, lck));
  weft::asio::async_join(jq, record(ctx, join));
  ctx.poll();
  for (Outcome* o : {&get, &acq, &wait, &lck, &join}) ASSERT_FALSE(o->done);
  q.put(2);
  sem.release();
  ev.set();
  lock.release();
  jq.task_done();
  for (Outcome* o : {&get, &acq, &wait, &lck, &join}) EXPECT_FALSE(o->done);
  ctx.poll();
  for (Outcome* o : {&get, &acq, &wait, &lck, &join}) {
    EXPECT_TRUE(o->done);
    EXPECT_FALSE(o->ec);
  }
  EXPECT_EQ(get.value, 2);
}

// A chain: handler i sets event i+1, whose waiter is handler i+1. Were waiters resumed
// inside set(), the handlers would nest a thousand deep; they never nest.
TEST(AsioInline, AChainOfWakeUpsDoesNotNest) {
  constexpr int kChain = 1000;
  asio::io_context ctx;
  std::vector<weft::Event> events(kChain + 1);
  int depth = 0, max_depth = 0, ran = 0;
  for (int i = 0; i < kChain; ++i) {
    weft::asio::async_wait(events[static_cast<std::size_t>(i)],
                           asio::bind_executor(ctx, [&, i](std::error_code ec) {
                             EXPECT_FALSE(ec);
                             ++depth;
                             max_depth = std::max(max_depth, depth);
                             ++ran;
                             events[static_cast<std::size_t>(i) + 1].set();
                             --depth;
                           }));
  }
  ctx.poll();
  events[0].set();
  ctx.run();
  EXPECT_EQ(ran, kChain);
  EXPECT_EQ(max_depth, 1);
  EXPECT_TRUE(events[kChain].is_set());
}

// ---- completion tokens ----------------------------------------------------------------------

TEST(AsioTokens, DeferredAsTupleAndStrand) {
  IoThreads io(2);
  weft::Queue<int> q;
  auto strand = asio::make_strand(io.ctx);
  weft::Event done;
  bool in_strand = false;
  int v = 0;
  // deferred: nothing starts until the deferred operation is invoked with a token.
  auto op = weft::asio::async_get(q, asio::experimental::deferred);
  q.put(5);
  EXPECT_EQ(q.qsize(), 1U);
  std::move(op)(asio::bind_executor(strand, [&](std::error_code ec, int x) {
    EXPECT_FALSE(ec);
    in_strand = strand.running_in_this_thread();
    v = x;
    done.set();
  }));
  done.wait();
  EXPECT_TRUE(in_strand);
  EXPECT_EQ(v, 5);

  weft::Event done2;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        weft::Queue<int> closed;
        closed.shutdown();
        auto [ec, x] =
            co_await weft::asio::async_get(closed, asio::experimental::as_tuple(use_awaitable));
        EXPECT_EQ(ec, weft::asio::errc::shut_down);
        EXPECT_EQ(x, 0);
        auto [ec2] =
            co_await weft::asio::async_put(closed, 1, asio::experimental::as_tuple(use_awaitable));
        EXPECT_EQ(ec2, weft::asio::errc::shut_down);
        bool threw = false;
        try {
          co_await weft::asio::async_get(closed, use_awaitable);
        } catch (const std::system_error& e) {
          threw = e.code() == weft::asio::errc::shut_down;
        }
        EXPECT_TRUE(threw);
        done2.set();
      },
      asio::detached);
  done2.wait();
  io.finish();
}

// ---- select ---------------------------------------------------------------------------------

TEST(AsioSelect, PerformsExactlyOneOperation) {
  IoThreads io(1);
  weft::Queue<int> a, b;
  weft::Event stop;
  weft::Event done;
  std::vector<std::size_t> order;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
          auto r = co_await weft::asio::async_select(weft::get(a), weft::wait(stop), use_awaitable);
          order.push_back(r.index());
          if (r.index() == 0) {
            EXPECT_EQ(*std::get<0>(r), 10 + i);
          }
        }
        // Both ready: one of them is taken, the other stays.
        a.put(1);
        b.put(2);
        auto r = co_await weft::asio::async_select(weft::get(a), weft::get(b), use_awaitable);
        EXPECT_EQ(a.qsize() + b.qsize(), 1U);
        if (r.index() == 0) {
          EXPECT_EQ(*std::get<0>(r), 1);
        } else {
          EXPECT_EQ(*std::get<1>(r), 2);
        }
        done.set();
      },
      asio::detached);
  a.put(10);
  a.put(11);
  a.put(12);
  done.wait();
  io.finish();
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 0, 0}));
}

TEST(AsioSelect, CancelledSelectTakesNothing) {
  asio::io_context ctx;
  weft::Queue<int> a;
  weft::Semaphore sem(0);
  asio::cancellation_signal sig;
  Outcome o;
  weft::asio::async_select(weft::get(a), weft::acquire(sem),
                           asio::bind_cancellation_slot(
                               sig.slot(), asio::bind_executor(ctx, [&](std::error_code ec, auto) {
                                 o.done = true;
                                 o.ec = ec;
                               })));
  ctx.poll();
  sem.release();  // claims the select
  sig.emit(asio::cancellation_type::terminal);
  ctx.poll();
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.ec, asio::error::operation_aborted);
  EXPECT_TRUE(sem.acquire(false));  // the permit is still free
}

// ---- the lifetime rule, Lock across suspensions, join -----------------------------------------

// A handler may destroy the primitive it waited on: the waking call is done with it.
TEST(AsioLifetime, HandlerDestroysThePrimitive) {
  constexpr int kRounds = 500 / kScale;
  IoThreads io(2);
  for (int i = 0; i < kRounds; ++i) {
    auto ev = std::make_unique<weft::Event>();
    auto sem = std::make_unique<weft::Semaphore>(0);
    weft::Event* const e = ev.get();  // this thread uses these; the handlers free them
    weft::Semaphore* const s = sem.get();
    std::latch done(2);
    asio::post(io.ctx, [&] {
      weft::asio::async_wait(*e, asio::bind_executor(io.ctx, [&](std::error_code ec) {
        EXPECT_FALSE(ec);
        ev.reset();
        done.count_down();
      }));
      weft::asio::async_acquire(*s, asio::bind_executor(io.ctx, [&](std::error_code ec) {
        EXPECT_FALSE(ec);
        sem.reset();
        done.count_down();
      }));
    });
    e->set();  // the handler may free e the moment set() has woken it
    s->release();
    done.wait();
  }
  io.finish();
}

TEST(AsioLock, HeldAcrossSuspensionsAndReleasedFromAnywhere) {
  IoThreads io(2);
  weft::Lock lock;
  weft::Event holding;
  weft::Event release_now;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        co_await weft::asio::async_acquire(lock, use_awaitable);
        holding.set();
        co_await weft::asio::async_wait(release_now, use_awaitable);  // suspended, holding it
        lock.release();
      },
      asio::detached);
  holding.wait();
  EXPECT_FALSE(lock.acquire(false));
  release_now.set();
  EXPECT_TRUE(lock.acquire(std::chrono::seconds(60)));
  lock.release();
  io.finish();
}

TEST(AsioJoin, CompletesWhenThreadsFinishTheTasks) {
  IoThreads io(1);
  weft::Queue<int> q;
  for (int i = 0; i < 100; ++i) q.put(i);
  weft::Event joined;
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        co_await weft::asio::async_join(q, use_awaitable);
        joined.set();
      },
      asio::detached);
  std::thread worker([&] {
    for (int i = 0; i < 100; ++i) {
      EXPECT_FALSE(joined.is_set());
      q.get();
      q.task_done();
    }
  });
  worker.join();
  joined.wait();
  io.finish();
}

// ---- Barrier ----------------------------------------------------------------------------------

// Two coroutine parties and one thread party, many cycles on a two-thread io_context: each
// cycle gives the indices 0, 1, 2 once, and the action runs once per cycle.
TEST(AsioBarrier, CoroutinesAndAThreadCycleTogether) {
  constexpr int kCycles = 300 / kScale;
  std::atomic<int> actions{0};
  weft::Barrier b(3, [&] { actions.fetch_add(1); });
  std::vector<std::atomic<int>> index_sum(kCycles);
  std::latch coroutines_done(2);
  IoThreads io(2);
  for (int p = 0; p < 2; ++p) {
    asio::co_spawn(
        io.ctx,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < kCycles; ++i) {
            const std::size_t idx = co_await weft::asio::async_wait(b, use_awaitable);
            index_sum[static_cast<std::size_t>(i)].fetch_add(1 << (2 * idx));
          }
          coroutines_done.count_down();
        },
        asio::detached);
  }
  for (int i = 0; i < kCycles; ++i) {
    const std::size_t idx = b.wait();
    index_sum[static_cast<std::size_t>(i)].fetch_add(1 << (2 * idx));
  }
  coroutines_done.wait();
  io.finish();
  EXPECT_EQ(actions.load(), kCycles);
  for (int i = 0; i < kCycles; ++i) {
    EXPECT_EQ(index_sum[static_cast<std::size_t>(i)].load(), 1 + 4 + 16) << i;  // 0, 1, 2
  }
}

// The last party's trip does not run the waiting handler; nor does the initiating call of
// the last party itself.
TEST(AsioBarrier, NeverInline) {
  asio::io_context ctx;
  auto work = asio::make_work_guard(ctx);
  weft::Barrier two(2);
  Outcome first, last;
  weft::asio::async_wait(two, record_value<std::size_t>(ctx, first));
  ctx.poll();
  ASSERT_FALSE(first.done);
  EXPECT_EQ(two.n_waiting(), 1U);
  EXPECT_EQ(two.wait(), 1U);  // the thread trips the barrier
  EXPECT_FALSE(first.done);
  ctx.poll();
  ASSERT_TRUE(first.done);
  EXPECT_FALSE(first.ec);
  EXPECT_EQ(first.value, 0);

  weft::Barrier one(1);
  weft::asio::async_wait(one, record_value<std::size_t>(ctx, last));
  EXPECT_FALSE(last.done);
  ctx.poll();
  ASSERT_TRUE(last.done);
  EXPECT_FALSE(last.ec);
}

// A timeout breaks the barrier, as Barrier::wait(timeout) does; a cancellation before the
// trip withdraws the arrival and leaves the barrier whole.
TEST(AsioBarrier, TimeoutBreaksCancellationWithdraws) {
  asio::io_context ctx;
  weft::Barrier b(2);
  asio::cancellation_signal sig;
  Outcome cancelled, timed;
  weft::asio::async_wait(
      b, asio::bind_cancellation_slot(sig.slot(), record_value<std::size_t>(ctx, cancelled)));
  ctx.poll();
  EXPECT_EQ(b.n_waiting(), 1U);
  sig.emit(asio::cancellation_type::terminal);
  ctx.poll();
  ASSERT_TRUE(cancelled.done);
  EXPECT_EQ(cancelled.ec, asio::error::operation_aborted);
  EXPECT_EQ(b.n_waiting(), 0U);
  EXPECT_FALSE(b.broken());

  weft::asio::async_wait(b, 1ms, record_value<std::size_t>(ctx, timed));
  ctx.restart();
  ctx.run();
  ASSERT_TRUE(timed.done);
  EXPECT_EQ(timed.ec, weft::asio::errc::broken_barrier);
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait(), weft::BrokenBarrierError);
}

TEST(AsioBarrier, AbortCompletesWaitersWithBrokenBarrier) {
  asio::io_context ctx;
  weft::Barrier b(3);
  Outcome a, c;
  weft::asio::async_wait(b, record_value<std::size_t>(ctx, a));
  weft::asio::async_wait(b, record_value<std::size_t>(ctx, c));
  ctx.poll();
  EXPECT_EQ(b.n_waiting(), 2U);
  b.abort();
  EXPECT_FALSE(a.done || c.done);
  ctx.poll();
  ASSERT_TRUE(a.done && c.done);
  EXPECT_EQ(a.ec, weft::asio::errc::broken_barrier);
  EXPECT_EQ(c.ec, weft::asio::errc::broken_barrier);
}

// Two Barrier waits registered on the Barrier's lock (the test holds it); its release
// claims the first, whose step is then queued, and the context goes before that step runs.
// The second's lock round takes no stop: only the claim's passing on decides it, so the
// shutdown drops the queued step itself (on the context, and on a strand whose service
// shuts down after weft's), and returns. No handler runs, and the lock is free.
// Outstanding work: a get that waits keeps io_context::run() from returning, and one that
// completed leaves no work behind. poll() runs what is ready and stops the context when no
// work is left, so stopped() after it says whether the waiting get holds work.
TEST(AsioWork, AWaitingGetHoldsTheContextsWorkUntilItCompletes) {
  asio::io_context ctx;
  weft::Queue<int> q;
  int got = 0;
  weft::asio::async_get(q, asio::bind_executor(ctx, [&got](std::error_code ec, int v) {
                          EXPECT_FALSE(ec);
                          got = v;
                        }));
  ctx.poll();  // the first attempt found nothing: registered
  EXPECT_FALSE(ctx.stopped());
  q.put(7);
  ctx.run();  // returns once the get has completed: no work left
  EXPECT_EQ(got, 7);
  EXPECT_TRUE(ctx.stopped());
}

// The same from a coroutine on a strand through use_awaitable: a type-erased executor that
// wraps no io_context, whose work is counted for the operation's whole life. A get that
// finds its item ready, and one that waits.
TEST(AsioWork, ACoroutineOnAStrandHoldsWorkWhileItsGetWaits) {
  asio::io_context ctx;
  weft::Queue<int> q;
  q.put(1);
  std::vector<int> got;
  asio::co_spawn(
      asio::make_strand(ctx),
      [&]() -> asio::awaitable<void> {
        got.push_back(co_await weft::asio::async_get(q, asio::use_awaitable));  // ready
        got.push_back(co_await weft::asio::async_get(q, asio::use_awaitable));  // waits
      },
      asio::detached);
  ctx.poll();  // the first get completed; the second registered
  EXPECT_EQ(got, std::vector<int>{1});
  EXPECT_FALSE(ctx.stopped());
  q.put(2);
  ctx.run();
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_TRUE(ctx.stopped());
}

// Two gets wait on one io_context, sharing the service's count of its work: the first to
// complete leaves the context running for the other, and run() returns after the second.
TEST(AsioWork, TheSharedCountOutlivesTheFirstOfTwoWaiters) {
  for (const bool strand_first : {true, false}) {
    SCOPED_TRACE(strand_first ? "the strand's get completes first" : "the plain get first");
    asio::io_context ctx;
    const auto strand = asio::make_strand(ctx);
    weft::Queue<int> a;
    weft::Queue<int> b;
    Outcome plain, on_strand;
    weft::asio::async_get(a, record_value<int>(ctx, plain));
    weft::asio::async_get(b, asio::bind_executor(strand, [&on_strand](std::error_code ec, int v) {
                            on_strand.done = true;
                            on_strand.ec = ec;
                            on_strand.value = v;
                          }));
    ctx.poll();  // both registered
    (strand_first ? b : a).put(1);
    ctx.poll();
    EXPECT_TRUE(strand_first ? on_strand.done : plain.done);
    EXPECT_FALSE(strand_first ? plain.done : on_strand.done);
    EXPECT_FALSE(ctx.stopped()) << "the work count went with the first waiter";
    (strand_first ? a : b).put(2);
    ctx.run();  // returns once both completed
    EXPECT_TRUE(plain.done && on_strand.done);
    EXPECT_FALSE(plain.ec || on_strand.ec);
    EXPECT_TRUE(ctx.stopped());
  }
}

// Two coroutines (use_awaitable, whose executor wraps the io_context) play ping-pong through
// two queues, each waiting in turn while the other runs; the count is handed from waiter to
// waiter, and run() returns once both are done, with no count left behind.
TEST(AsioWork, APingPongOfCoroutinesHandsTheCountOnAndEnds) {
  constexpr int kTrips = 200;
  asio::io_context ctx;
  weft::Queue<int> ping(1);
  weft::Queue<int> pong(1);
  int last = -1;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < kTrips; ++i) {
          co_await weft::asio::async_put(
              pong, co_await weft::asio::async_get(ping, use_awaitable) + 1, use_awaitable);
        }
      },
      asio::detached);
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < kTrips; ++i) {
          co_await weft::asio::async_put(ping, 2 * i, use_awaitable);
          last = co_await weft::asio::async_get(pong, use_awaitable);
        }
      },
      asio::detached);
  ctx.run();  // returns: every operation completed, and the service holds no count
  EXPECT_EQ(last, 2 * (kTrips - 1) + 1);
  EXPECT_TRUE(ctx.stopped());
}

// Two threads run an io_context without a work guard while two other threads feed the
// gets of coroutines on it, each get waiting in turn: run() returns on both threads only
// once every item was got.
TEST(AsioWork, ForeignDecidersAndTwoRunThreadsLoseNoCompletion) {
  constexpr int kItems = 2000 / kScale;
  asio::io_context ctx;
  weft::Queue<int> q1;
  weft::Queue<int> q2;
  std::atomic<long> sum{0};
  for (weft::Queue<int>* q : {&q1, &q2}) {
    asio::co_spawn(
        ctx,
        [&sum, q]() -> asio::awaitable<void> {
          for (int i = 0; i < kItems; ++i) sum += co_await weft::asio::async_get(*q, use_awaitable);
        },
        asio::detached);
  }
  ctx.poll();  // both coroutines wait: from here the service's count keeps run() going
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) threads.emplace_back([&ctx] { ctx.run(); });
  for (weft::Queue<int>* q : {&q1, &q2}) {
    threads.emplace_back([q] {
      for (int i = 1; i <= kItems; ++i) q->put(i);
    });
  }
  for (std::thread& t : threads) t.join();  // the runners return once both loops ended
  EXPECT_EQ(sum.load(), 2L * kItems * (kItems + 1) / 2);
  EXPECT_EQ(q1.qsize() + q2.qsize(), 0U);
}

// The allocations of one thread (held) wait at a gate: each reports that it has begun
// (in_post) and waits for the test to open it (release), for at most kGateLimit, so that a
// broken test fails instead of hanging; other threads' allocations pass. Through an
// executor's allocator, this holds a post between a weft decider's unlock and the Run's
// arrival in the queue.
constexpr auto kGateLimit = std::chrono::seconds(30);
struct PostGate {
  std::atomic<std::thread::id> held{};
  weft::Event in_post;
  weft::Event release;
};
template <class T>
struct GateAlloc {
  using value_type = T;
  explicit GateAlloc(PostGate* g) noexcept : gate(g) {}
  template <class U>
  GateAlloc(const GateAlloc<U>& o) noexcept : gate(o.gate) {}  // NOLINT(*-explicit-*)
  T* allocate(std::size_t n) {
    if (gate->held.load() == std::this_thread::get_id()) {
      gate->in_post.set();
      // Wake-up source: the test's release.set(), or the limit.
      (void)gate->release.wait(kGateLimit);
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  friend bool operator==(const GateAlloc& a, const GateAlloc& b) noexcept {
    return a.gate == b.gate;
  }
  PostGate* gate;
};

// A thread that does not run the context wakes the only waiting operation, and is held
// between unlisting it and posting its step; meanwhile another weft operation's step runs
// and finds no operation waiting. The context must keep counting work (the woken
// operation carries it): it does not stop, and the woken handler runs once the post lands.
TEST(AsioWork, AStepEndingBeforeAForeignDecidersPostKeepsTheWork) {
  asio::io_context ctx;
  PostGate gate;
  const auto gated =
      asio::require(ctx.get_executor(), asio::execution::allocator(GateAlloc<void>(&gate)));
  weft::Queue<int> waits;
  weft::Queue<int> ready;
  ready.put(2);
  Outcome x, y;
  weft::asio::async_get(waits, asio::bind_executor(gated, [&x](std::error_code ec, int v) {
                          x.done = true;
                          x.ec = ec;
                          x.value = v;
                        }));                                // registers: the only waiter
  weft::asio::async_get(ready, record_value<int>(ctx, y));  // its first step is queued
  std::thread decider([&] {
    gate.held.store(std::this_thread::get_id());
    waits.put(1);  // claims x; its post waits at the gate
  });
  // Wake-up source: the decider's allocation for x's step, or the limit.
  if (gate.in_post.wait(kGateLimit)) {
    EXPECT_EQ(ctx.run_one(), 1U);  // y's step: y completes, and no operation waits
    EXPECT_TRUE(y.done);
    EXPECT_FALSE(ctx.stopped()) << "the context's work dropped to 0 while x's step was posted";
  } else {
    ADD_FAILURE() << "the decider's post of x's step did not allocate through the executor";
  }
  gate.release.set();
  decider.join();
  ctx.run();  // x's step; returns once nothing is left
  ASSERT_TRUE(x.done);
  EXPECT_FALSE(x.ec);
  EXPECT_EQ(x.value, 1);
  EXPECT_TRUE(ctx.stopped());
}

TEST(AsioBarrier, ShutdownPassesOnALockClaimQueuedInAStep) {
  for (const bool on_strand : {false, true}) {
    SCOPED_TRACE(on_strand ? "on a strand" : "on the context");
    weft::Barrier b(3);
    weft::Lock& lock = weft::detail::AsyncAccess::lock_of(b);
    std::atomic<int> invoked{0};
    {
      asio::io_context ctx;
      std::optional<asio::strand<asio::io_context::executor_type>> strand;
      if (on_strand) strand.emplace(asio::make_strand(ctx));  // its service before weft's
      const auto h = [&invoked](auto&&...) { invoked.fetch_add(1); };
      lock.acquire();
      for (int i = 0; i < 2; ++i) {
        if (on_strand) {
          weft::asio::async_wait(b, asio::bind_executor(*strand, h));
        } else {
          weft::asio::async_wait(b, asio::bind_executor(ctx, h));
        }
      }
      ctx.poll();      // both first steps ran: registered on the lock
      lock.release();  // claims the first: its step is queued
      EXPECT_EQ(invoked.load(), 0);
    }  // ~io_context: must return
    EXPECT_EQ(invoked.load(), 0);
    EXPECT_FALSE(lock.locked());
  }
}

// The context destroyed with waiting parties: their arrivals are withdrawn, no handler runs,
// and the barrier works on for the threads.
TEST(AsioBarrier, ShutdownWithdrawsWaitingParties) {
  weft::Barrier b(3);
  std::atomic<int> invoked{0};
  {
    asio::io_context ctx;
    const auto count = [&] {
      return asio::bind_executor(ctx, [&](std::error_code, std::size_t) { invoked.fetch_add(1); });
    };
    weft::asio::async_wait(b, count());
    weft::asio::async_wait(b, 1h, count());
    weft::asio::async_wait(b, count());  // queued, its first step never run
    ctx.poll_one();
    ctx.poll_one();
    EXPECT_EQ(b.n_waiting(), 2U);
  }
  EXPECT_EQ(invoked.load(), 0);
  EXPECT_EQ(b.n_waiting(), 0U);
  EXPECT_FALSE(b.broken());
  std::thread t([&] { b.wait(); });
  std::thread u([&] { b.wait(); });
  EXPECT_LT(b.wait(), 3U);
  t.join();
  u.join();
}

}  // namespace
