// SPDX-License-Identifier: MIT
// Conformance tests for weft/async.hpp (its header comment is the contract): every awaitable
// operation with and without a timeout and a stop_token; never resumed inside the notifier's
// call; timeouts and stop requests that take nothing; a claimed wake-up that a cancelled
// coroutine cannot use passes on; destroying a suspended coroutine unregisters it; the
// lifetime rule; thread and coroutine producers and consumers mixed on every queue kind,
// each item counted exactly once; cancellation and timeouts racing notifiers, thousands of
// rounds, nothing lost.
#include "weft/async.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "async_helpers.hpp"
#include "queue_kinds.hpp"
#include "weft/errors.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Detached;
using weft_test::FailingTimerScheduler;
using weft_test::ManualScheduler;
using weft_test::Owned;
using weft_test::PoolScheduler;

#if defined(WEFT_SANITIZED)
constexpr int kRounds = 300;
constexpr int kItems = 4000;
#else
constexpr int kRounds = 3000;
constexpr int kItems = 40000;
#endif

static_assert(weft::Scheduler<ManualScheduler>);
static_assert(weft::TimedScheduler<ManualScheduler>);
static_assert(weft::TimedScheduler<PoolScheduler>);

// schedule() runs in a notifier's noexcept wake step: one that may throw is not a Scheduler.
struct ThrowingScheduleScheduler {
  void schedule(weft::AsyncResume f);
};
static_assert(!weft::Scheduler<ThrowingScheduleScheduler>);

// ---- never inline, and the basic forms -------------------------------------------------

TEST(AsyncNeverInline, PutWakesGetterOnlyThroughTheScheduler) {
  ManualScheduler s;
  weft::Queue<int> q;
  std::optional<int> got;
  auto co1 = [&]() -> Detached { got = co_await weft::async_get(q, s); };
  co1();
  EXPECT_FALSE(got);
  q.put(7);  // claims the coroutine and schedules it; the put returns first
  EXPECT_FALSE(got) << "resumed inside put()";
  EXPECT_EQ(s.pending(), 1u);
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_EQ(got, 7);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(AsyncNeverInline, ReadyOperationsDoNotSuspend) {
  ManualScheduler s;
  weft::Queue<int> q;
  q.put(1);
  weft::Event e;
  e.set();
  weft::Semaphore sem(1);
  weft::Lock l;
  bool done = false;
  auto co2 = [&]() -> Detached {
    EXPECT_EQ(co_await weft::async_get(q, s), 1);
    co_await weft::async_put(q, s, 2);
    EXPECT_TRUE(co_await weft::async_wait(e, s));
    EXPECT_TRUE(co_await weft::async_acquire(sem, s));
    EXPECT_TRUE(co_await weft::async_acquire(l, s));
    done = true;
  };
  co2();
  EXPECT_TRUE(done);
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_TRUE(l.locked());
  EXPECT_EQ(sem.value(), 0u);
}

TEST(AsyncNeverInline, EveryNotifierSchedules) {
  ManualScheduler s;
  weft::Event e;
  weft::Semaphore sem(0);
  weft::Lock l;
  l.acquire();
  weft::Queue<int> bounded(1);
  bounded.put(0);
  weft::Queue<int> tasks;
  tasks.put(1);
  int resumed = 0;
  auto co3 = [&]() -> Detached {
    EXPECT_TRUE(co_await weft::async_wait(e, s));
    ++resumed;
  };
  co3();
  auto co4 = [&]() -> Detached {
    EXPECT_TRUE(co_await weft::async_acquire(sem, s));
    ++resumed;
  };
  co4();
  auto co5 = [&]() -> Detached {
    EXPECT_TRUE(co_await weft::async_acquire(l, s));
    ++resumed;
  };
  co5();
  auto co6 = [&]() -> Detached {
    co_await weft::async_put(bounded, s, 5);
    ++resumed;
  };
  co6();
  auto co7 = [&]() -> Detached {
    EXPECT_TRUE(co_await weft::async_join(tasks, s));
    ++resumed;
  };
  co7();
  EXPECT_EQ(resumed, 0);
  e.set();
  sem.release();
  l.release();
  EXPECT_EQ(bounded.get(), 0);
  (void)tasks.get();
  tasks.task_done();
  EXPECT_EQ(resumed, 0) << "a notifier resumed a coroutine inline";
  EXPECT_EQ(s.pending(), 5u);
  s.run_pending();
  EXPECT_EQ(resumed, 5);
  EXPECT_EQ(bounded.get(), 5);
  EXPECT_TRUE(l.locked());
  EXPECT_EQ(sem.value(), 0u);
}

TEST(AsyncQueue, EveryKindGetsAndPuts) {
  ManualScheduler s;
  weft::Queue<int> fifo(2);
  weft::LifoQueue<int> lifo(2);
  weft::PriorityQueue<int> prio(2);
  weft::SimpleQueue<int> simple;
  std::vector<int> got;
  auto co8 = [&]() -> Detached {
    for (int i : {3, 1, 2}) co_await weft::async_put(fifo, s, int(i));
  };
  co8();
  auto co9 = [&]() -> Detached {
    for (int i : {3, 1}) co_await weft::async_put(lifo, s, int(i));
    for (int i : {3, 1}) co_await weft::async_put(prio, s, int(i));
    for (int i : {3, 1}) co_await weft::async_put(simple, s, int(i));
  };
  co9();
  EXPECT_EQ(fifo.qsize(), 2u);  // the third put waits
  auto co10 = [&]() -> Detached {
    for (int k = 0; k < 3; ++k) got.push_back(co_await weft::async_get(fifo, s));
    for (int k = 0; k < 2; ++k) got.push_back(co_await weft::async_get(lifo, s));
    for (int k = 0; k < 2; ++k) got.push_back(co_await weft::async_get(prio, s));
    for (int k = 0; k < 2; ++k) got.push_back(co_await weft::async_get(simple, s));
  };
  co10();
  while (s.run_pending() != 0) {
  }
  EXPECT_EQ(got, (std::vector<int>{3, 1, 2, 1, 3, 1, 3, 3, 1}));
}

TEST(AsyncQueue, ShutdownWakesGettersAndPutters) {
  ManualScheduler s;
  weft::Queue<int> empty;
  weft::Queue<std::string> full(1);
  full.put("1");
  std::string item = "2";
  int shut = 0;
  auto co11 = [&]() -> Detached {
    try {
      (void)co_await weft::async_get(empty, s);
    } catch (const weft::ShutDown&) {
      ++shut;
    }
  };
  co11();
  auto co12 = [&]() -> Detached {
    try {
      co_await weft::async_put(full, s, std::move(item));
    } catch (const weft::ShutDown&) {
      ++shut;
    }
  };
  co12();
  empty.shutdown();
  full.shutdown();
  EXPECT_EQ(shut, 0);
  s.run_pending();
  EXPECT_EQ(shut, 2);
  EXPECT_EQ(full.qsize(), 1u);
  EXPECT_EQ(item, "2");  // NOLINT(bugprone-use-after-move): moved from only on success
}

// ---- timeouts and stop requests take nothing ---------------------------------------------

TEST(AsyncTimeout, EveryOperationTimesOut) {
  PoolScheduler s(1);
  weft::Queue<int> q(1);
  weft::Queue<std::string> full(1);
  full.put("x");
  weft::Event e;
  weft::Semaphore sem(0);
  weft::Lock l;
  l.acquire();
  q.put(0);
  weft::Event finished;
  std::string failures;
  auto co13 = [&]() -> Detached {
    const auto start = std::chrono::steady_clock::now();
    std::string item = "nine";
    try {
      co_await weft::async_put(full, s, std::move(item), 20ms);
      failures += "put;";
    } catch (const weft::Full&) {
    }
    // NOLINTNEXTLINE(bugprone-use-after-move): moved from only on success
    if (item != "nine") failures += "moved;";
    if (co_await weft::async_wait(e, s, 5ms)) failures += "event;";
    if (co_await weft::async_acquire(sem, s, 5ms)) failures += "sem;";
    if (co_await weft::async_acquire(l, s, 5ms)) failures += "lock;";
    if (co_await weft::async_join(q, s, 5ms)) failures += "join;";
    if (std::chrono::steady_clock::now() - start < 40ms) failures += "early;";
    (void)q.get();
    try {
      (void)co_await weft::async_get(q, s, 5ms);
      failures += "get;";
    } catch (const weft::Empty&) {
    }
    auto r = co_await weft::async_select_for(s, 5ms, weft::get(q), weft::wait(e));
    if (r) failures += "select;";
    // A deadline on another clock.
    if (co_await weft::async_wait(e, s, std::chrono::system_clock::now() + 5ms)) failures += "at;";
    finished.set();
  };
  co13();
  ASSERT_TRUE(finished.wait(30s));
  EXPECT_EQ(failures, "");
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(sem.value(), 0u);
}

TEST(AsyncTimeout, NegativeQueueTimeoutThrows) {
  ManualScheduler s;
  weft::Queue<int> q;
  EXPECT_THROW((void)weft::async_get(q, s, -1ms), std::invalid_argument);
}

TEST(AsyncCancel, StopRequestTakesNothing) {
  ManualScheduler s;
  weft::Queue<int> q;
  std::stop_source stop;
  bool cancelled = false;
  auto co14 = [&]() -> Detached {
    try {
      (void)co_await weft::async_get(q, s, stop.get_token());
    } catch (const weft::Cancelled&) {
      cancelled = true;
    }
  };
  co14();
  stop.request_stop();  // decides the wait; the continuation is scheduled, not run
  EXPECT_FALSE(cancelled);
  s.run_pending();
  EXPECT_TRUE(cancelled);
  q.put(1);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(s.pending(), 0u);
}

TEST(AsyncCancel, StoppedBeforeTheCallTakesNothing) {
  ManualScheduler s;
  weft::Queue<int> q;
  q.put(1);
  std::stop_source stop;
  stop.request_stop();
  bool cancelled = false;
  auto co15 = [&]() -> Detached {
    try {
      (void)co_await weft::async_get(q, s, stop.get_token());
    } catch (const weft::Cancelled&) {
      cancelled = true;
    }
  };
  co15();
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(q.qsize(), 1u);
}

// A stop that loses to a claim: the coroutine uses the claim. A stop that wins: the next
// waiter gets what the notifier announced.
TEST(AsyncCancel, ClaimedWakeUpPassesOnWhenTheWaiterIsGone) {
  ManualScheduler s;
  weft::Semaphore sem(0);
  std::stop_source stop_a;
  int a = -1;
  int b = -1;
  auto co16 = [&]() -> Detached {
    a = co_await weft::async_acquire(sem, s, stop_a.get_token()) ? 1 : 0;
  };
  co16();
  auto co17 = [&]() -> Detached { b = co_await weft::async_acquire(sem, s) ? 1 : 0; };
  co17();
  stop_a.request_stop();  // a leaves: the release below goes to b
  sem.release();
  s.run_pending();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(sem.value(), 0u);
}

// ---- exceptions: nothing taken, wake-ups passed on ----------------------------------------

// The retry after a claim throws (the item's move): the item stays queued, the coroutine
// gets the exception, and the wake-up goes to the next waiter.
TEST(AsyncException, ThrowingRetryPassesTheWakeUpOn) {
  ManualScheduler s;
  weft::Queue<weft_test::Explosive> q;
  bool a_threw = false;
  int b_got = 0;
  auto a = [&]() -> Detached {
    try {
      (void)co_await weft::async_get(q, s);
    } catch (const std::runtime_error&) {
      a_threw = true;
    }
  };
  auto b = [&]() -> Detached { b_got = (co_await weft::async_get(q, s)).value(); };
  a();
  b();
  q.put(weft_test::Explosive(1));              // claims a
  weft_test::Explosive::fail_nth_transfer(1);  // a's move out of the queue throws
  s.run_pending();
  weft_test::Explosive::disarm();
  EXPECT_TRUE(a_threw);
  EXPECT_EQ(b_got, 1) << "the wake-up of the failed retry was not passed on";
  EXPECT_EQ(q.qsize(), 0u);
}

// A scheduler whose timers cannot be armed: the operation fails with that exception and has
// withdrawn from the queue.
TEST(AsyncException, ArmTimerThrowsTakesNothing) {
  ManualScheduler m;
  FailingTimerScheduler s{&m};
  weft::Queue<int> q;
  bool threw = false;
  auto c = [&]() -> Detached {
    try {
      (void)co_await weft::async_get(q, s, 1h);
    } catch (const std::runtime_error&) {
      threw = true;
    }
  };
  c();
  EXPECT_TRUE(threw);
  q.put(1);
  EXPECT_EQ(m.pending(), 0u);
  EXPECT_EQ(q.qsize(), 1u);
}

// ---- select ----------------------------------------------------------------------------

TEST(AsyncSelect, PerformsExactlyOneOperation) {
  ManualScheduler s;
  weft::Queue<int> q1;
  weft::Queue<std::string> q2;
  weft::Event e;
  std::optional<std::size_t> index;
  std::string text;
  auto co18 = [&]() -> Detached {
    auto r = co_await weft::async_select(s, weft::get(q1), weft::get(q2), weft::wait(e));
    index = r.index();
    if (r.index() == 1) text = *std::get<1>(r);
  };
  co18();
  q2.put("two");
  q1.put(1);
  EXPECT_FALSE(index);
  s.run_pending();
  ASSERT_TRUE(index);
  EXPECT_EQ(*index, 1u);
  EXPECT_EQ(text, "two");
  EXPECT_EQ(q1.qsize(), 1u) << "a second operation was performed";
}

TEST(AsyncSelect, PutAndStop) {
  ManualScheduler s;
  weft::Queue<int> full(1);
  full.put(0);
  int item = 5;
  std::stop_source stop;
  int outcome = -1;
  auto co19 = [&]() -> Detached {
    auto r = co_await weft::async_select(s, stop.get_token(), weft::put(full, item));
    outcome = r ? 1 : 0;
  };
  co19();
  stop.request_stop();
  s.run_pending();
  EXPECT_EQ(outcome, 0);
  EXPECT_EQ(item, 5);
  EXPECT_EQ(full.qsize(), 1u);
  auto co20 = [&]() -> Detached {
    auto r = co_await weft::async_select(s, weft::put(full, item));
    outcome = std::get<0>(r) ? 2 : 3;
  };
  co20();
  EXPECT_EQ(full.get(), 0);
  s.run_pending();
  EXPECT_EQ(outcome, 2);
  EXPECT_EQ(full.get(), 5);
}

// Threads and coroutines select on the same queues; every item is taken exactly once.
TEST(AsyncSelect, MixedWithThreadsNothingLostOrDuplicated) {
  PoolScheduler s(2);
  weft::Queue<int> a(8);
  weft::Queue<int> b(8);
  constexpr int kEach = kItems / 4;
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(2 * kEach));
  std::atomic<int> taken{0};
  weft::Event all_taken;
  auto note = [&](int v) {
    seen[static_cast<std::size_t>(v)].fetch_add(1);
    if (taken.fetch_add(1) + 1 == 2 * kEach) all_taken.set();
  };
  std::stop_source stop;
  weft::Semaphore exited(0);
  auto co21 = [&]() -> Detached {
    for (;;) {
      auto r = co_await weft::async_select(s, stop.get_token(), weft::get(a), weft::get(b));
      if (!r) break;
      note(r->index() == 0 ? *std::get<0>(*r) : *std::get<1>(*r));
    }
    exited.release();
  };
  for (int c = 0; c < 2; ++c) {
    co21();
  }
  std::jthread thread_consumer([&](std::stop_token st) {
    for (;;) {
      auto r = weft::select(st, weft::get(a), weft::get(b));
      if (!r) break;
      note(r->index() == 0 ? *std::get<0>(*r) : *std::get<1>(*r));
    }
  });
  std::jthread pa([&] {
    for (int i = 0; i < kEach; ++i) a.put(i);
  });
  std::jthread pb([&] {
    for (int i = kEach; i < 2 * kEach; ++i) b.put(i);
  });
  ASSERT_TRUE(all_taken.wait(60s));
  stop.request_stop();
  thread_consumer.request_stop();
  for (int c = 0; c < 2; ++c) ASSERT_TRUE(exited.acquire(30s));
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i;
}

// ---- destroying a suspended coroutine ---------------------------------------------------

TEST(AsyncDestroy, SuspendedFrameUnregisters) {
  ManualScheduler s;
  weft::Queue<int> q;
  weft::Semaphore sem(0);
  weft::Event e;
  std::stop_source stop;
  {
    auto co22 = [&]() -> Owned { (void)co_await weft::async_get(q, s); };
    Owned g = co22();
    auto co23 = [&]() -> Owned { (void)co_await weft::async_acquire(sem, s, stop.get_token()); };
    Owned a = co23();
    auto co24 = [&]() -> Owned { (void)co_await weft::async_wait(e, s, 1h); };
    Owned w = co24();
    auto co25 = [&]() -> Owned {
      (void)co_await weft::async_select(s, weft::get(q), weft::acquire(sem));
    };
    Owned sel = co25();
    EXPECT_EQ(s.armed_timers(), 1u);
  }  // destroyed while suspended
  EXPECT_EQ(s.armed_timers(), 0u) << "a destroyed frame left its timer armed";
  stop.request_stop();  // the callback was removed with the frame
  q.put(1);
  sem.release();
  e.set();
  EXPECT_EQ(s.pending(), 0u) << "a notifier woke a destroyed coroutine";
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(sem.value(), 1u);
  // The sources still work for the next waiter.
  int got = 0;
  auto co26 = [&]() -> Detached { got = co_await weft::async_get(q, s); };
  co26();
  EXPECT_EQ(got, 1);
}

// A frame destroyed while a claim is decided but not yet woken cannot be staged from outside;
// what can: a claim that reached the coroutine is used, even if the frame is destroyed right
// after the resumption (the resumed coroutine finishes, and destroys the queue).
TEST(AsyncLifetime, ResumedCoroutineMayDestroyThePrimitive) {
  PoolScheduler s(2);
  for (int round = 0; round < kRounds / 3; ++round) {
    auto q = std::make_unique<weft::Queue<int>>();
    weft::Event done;
    auto co27 = [&]() -> Detached {
      (void)co_await weft::async_get(*q, s);
      q.reset();  // the put that woke us may still be returning
      done.set();
    };
    co27();
    std::thread([&] { q->put(1); }).join();
    ASSERT_TRUE(done.wait(30s));
  }
}

// ---- races: cancellation and timeouts against notifiers, nothing lost --------------------

TEST(AsyncRace, StopRacingPutLosesNothing) {
  PoolScheduler s(1);
  for (int round = 0; round < kRounds; ++round) {
    weft::Queue<int> q;
    std::stop_source stop;
    std::atomic<int> outcome{-1};  // 1: got the item, 0: cancelled
    weft::Event done;
    auto co28 = [&]() -> Detached {
      try {
        outcome = co_await weft::async_get(q, s, stop.get_token()) == 7 ? 1 : 2;
      } catch (const weft::Cancelled&) {
        outcome = 0;
      }
      done.set();
    };
    co28();
    std::jthread putter([&] { q.put(7); });
    stop.request_stop();
    putter.join();
    ASSERT_TRUE(done.wait(30s));
    ASSERT_NE(outcome.load(), 2);
    ASSERT_EQ(outcome.load() + static_cast<int>(q.qsize()), 1) << "round " << round;
  }
}

TEST(AsyncRace, TimeoutRacingPutLosesNothing) {
  PoolScheduler s(1);
  for (int round = 0; round < kRounds; ++round) {
    weft::Queue<int> q;
    std::atomic<int> outcome{-1};
    weft::Event done;
    auto co29 = [&]() -> Detached {
      try {
        outcome =
            co_await weft::async_get(q, s, std::chrono::microseconds(round % 50)) == 7 ? 1 : 2;
      } catch (const weft::Empty&) {
        outcome = 0;
      }
      done.set();
    };
    co29();
    std::jthread putter([&] { q.put(7); });
    putter.join();
    ASSERT_TRUE(done.wait(30s));
    ASSERT_EQ(outcome.load() + static_cast<int>(q.qsize()), 1) << "round " << round;
  }
}

// A release that races a stop of waiter A: either A takes the permit, or B does; the permit
// is never left unused while B waits.
TEST(AsyncRace, StopRacingReleasePassesTheWakeUpOn) {
  PoolScheduler s(2);
  for (int round = 0; round < kRounds; ++round) {
    weft::Semaphore sem(0);
    std::stop_source stop;
    std::atomic<int> a{-1};
    std::atomic<int> b{-1};
    weft::Semaphore finished(0);
    auto co30 = [&]() -> Detached {
      a = co_await weft::async_acquire(sem, s, stop.get_token()) ? 1 : 0;
      finished.release();
    };
    co30();
    auto co31 = [&]() -> Detached {
      b = co_await weft::async_acquire(sem, s) ? 1 : 0;
      finished.release();
    };
    co31();
    std::jthread releaser([&] { sem.release(); });
    stop.request_stop();
    releaser.join();
    ASSERT_TRUE(finished.acquire(30s)) << "the permit was lost, round " << round;
    if (a.load() == 1) {
      sem.release();  // let b finish
    } else {
      ASSERT_EQ(a.load() == -1 ? 0 : a.load(), 0);
    }
    ASSERT_TRUE(finished.acquire(30s)) << "round " << round;
    ASSERT_EQ(b.load(), 1);
    ASSERT_EQ(sem.value(), 0u);
  }
}

// The same for Event: a set() racing a stop either reaches the waiter (true) or not (false,
// then the event is set for whoever comes next); and for Lock.
TEST(AsyncRace, StopRacingSetAndLockRelease) {
  PoolScheduler s(2);
  for (int round = 0; round < kRounds; ++round) {
    weft::Event e;
    weft::Lock l;
    l.acquire();
    std::stop_source stop;
    std::atomic<int> waited{-1};
    std::atomic<int> locked_a{-1};
    std::atomic<int> locked_b{-1};
    weft::Semaphore finished(0);
    auto co32 = [&]() -> Detached {
      waited = co_await weft::async_wait(e, s, stop.get_token()) ? 1 : 0;
      finished.release();
    };
    co32();
    auto co33 = [&]() -> Detached {
      locked_a = co_await weft::async_acquire(l, s, stop.get_token()) ? 1 : 0;
      finished.release();
    };
    co33();
    auto co34 = [&]() -> Detached {
      locked_b = co_await weft::async_acquire(l, s) ? 1 : 0;
      finished.release();
    };
    co34();
    std::jthread notifier([&] {
      e.set();
      l.release();
    });
    stop.request_stop();
    notifier.join();
    ASSERT_TRUE(finished.acquire(30s));
    ASSERT_TRUE(finished.acquire(30s)) << "the lock's release was lost, round " << round;
    // One of a and b holds the lock; if a does, release it for b.
    if (locked_a.load() == 1) l.release();
    ASSERT_TRUE(finished.acquire(30s)) << "round " << round;
    ASSERT_EQ(locked_b.load(), 1);
    ASSERT_TRUE(waited.load() == 1 || (waited.load() == 0 && e.is_set()));
    ASSERT_TRUE(l.locked());
  }
}

// ---- threads and coroutines on every queue kind ----------------------------------------

template <class Q>
void mixed_run(Q& q) {
  PoolScheduler s(2);
  constexpr int kProducers = 4;  // 2 threads, 2 coroutines
  constexpr int kConsumers = 4;  // 2 threads, 2 coroutines
  constexpr int per = kItems / kProducers;
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(per * kProducers));
  weft::Semaphore exited(0);
  std::atomic<int> taken{0};
  weft::Event all_taken;
  auto take = [&](int v) {
    seen[static_cast<std::size_t>(v)].fetch_add(1);
    if (taken.fetch_add(1) + 1 == per * kProducers) all_taken.set();
  };
  auto co35 = [&]() -> Detached {
    for (;;) {
      const int v = co_await weft::async_get(q, s);
      if (v < 0) break;
      take(v);
    }
    exited.release();
  };
  for (int c = 0; c < kConsumers / 2; ++c) {
    co35();
  }
  std::vector<std::jthread> threads;
  weft::Semaphore produced(0);
  for (int c = 0; c < kConsumers / 2; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        const int v = q.get();
        if (v < 0) break;
        take(v);
      }
      exited.release();
    });
  }
  // The closure outlives the coroutines (a lambda coroutine reads its captures through it);
  // the range is a parameter, copied into the frame.
  auto producer = [&](int base) -> Detached {
    for (int i = 0; i < per; ++i) co_await weft::async_put(q, s, base + i);
    produced.release();
  };
  for (int p = 0; p < kProducers; ++p) {
    const int base = p * per;
    if (p % 2 == 0) {
      producer(base);
    } else {
      threads.emplace_back([&q, &produced, base] {
        for (int i = 0; i < per; ++i) q.put(base + i);
        produced.release();
      });
    }
  }
  for (int p = 0; p < kProducers; ++p) ASSERT_TRUE(produced.acquire(60s));
  // The stop sentinels go in once every item is out (a LIFO would hand them out first).
  ASSERT_TRUE(all_taken.wait(60s));
  for (int c = 0; c < kConsumers; ++c) q.put(-1);
  for (int c = 0; c < kConsumers; ++c) ASSERT_TRUE(exited.acquire(60s));
  threads.clear();
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(AsyncMixed, BoundedQueue) {
  weft::Queue<int> q(16);
  mixed_run(q);
}
TEST(AsyncMixed, UnboundedQueue) {
  weft::Queue<int> q;
  mixed_run(q);
}
TEST(AsyncMixed, LifoQueue) {
  weft::LifoQueue<int> q(16);
  mixed_run(q);
}
TEST(AsyncMixed, PriorityQueue) {
  weft::PriorityQueue<int, std::greater<>> q(16);
  mixed_run(q);
}
TEST(AsyncMixed, SimpleQueue) {
  weft::SimpleQueue<int> q;
  mixed_run(q);
}

TEST(AsyncMixed, JoinWaitsForThreadWorkers) {
  PoolScheduler s(1);
  weft::Queue<int> q;
  for (int i = 0; i < 100; ++i) q.put(i);
  weft::Event joined;
  auto co37 = [&]() -> Detached {
    if (co_await weft::async_join(q, s)) joined.set();
  };
  co37();
  std::jthread worker([&] {
    for (int i = 0; i < 100; ++i) {
      (void)q.get();
      EXPECT_FALSE(joined.is_set());
      q.task_done();
    }
  });
  EXPECT_TRUE(joined.wait(30s));
}

// A Lock held across suspensions by coroutines and threads alike: mutual exclusion.
TEST(AsyncMixed, LockAcrossSuspensions) {
  PoolScheduler s(2);
  weft::Lock l;
  weft::Queue<int> hop;  // a reason to suspend while holding the lock
  int inside = 0;
  std::atomic<int> violations{0};
  constexpr int kEach = kItems / 40;
  weft::Semaphore exited(0);
  auto co38 = [&]() -> Detached {
    for (int i = 0; i < kEach; ++i) {
      co_await weft::async_acquire(l, s);
      if (++inside != 1) violations.fetch_add(1);
      co_await weft::async_put(hop, s, 0);
      (void)co_await weft::async_get(hop, s);
      --inside;
      l.release();
    }
    exited.release();
  };
  for (int c = 0; c < 2; ++c) {
    co38();
  }
  std::jthread t([&] {
    for (int i = 0; i < kEach; ++i) {
      l.acquire();
      if (++inside != 1) violations.fetch_add(1);
      --inside;
      l.release();
    }
    exited.release();
  });
  for (int c = 0; c < 3; ++c) ASSERT_TRUE(exited.acquire(60s));
  EXPECT_EQ(violations.load(), 0);
}

}  // namespace
