// SPDX-License-Identifier: MIT
// Conformance tests for the awaitable Condition and Barrier waits, async_put of a const item
// and AsyncResume::drop() (weft/async.hpp; its header comment is the contract): wait
// morphing (a notify's wake-up comes with the release that frees the lock, and through the
// scheduler); timeouts, stop requests and their races with notify, thousands of rounds, a
// cancelled waiter's claimed notify passing on; frames destroyed while suspended, also with
// their notify deferred; Python's Barrier semantics for coroutine parties mixed with threads;
// a dropped resumption giving up what it was handed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "async_helpers.hpp"
#include "sync_helpers.hpp"
#include "weft/async.hpp"
#include "weft/barrier.hpp"
#include "weft/condition.hpp"
#include "weft/errors.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/semaphore.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Detached;
using weft_test::eventually;
using weft_test::FailingTimerScheduler;
using weft_test::ManualScheduler;
using weft_test::Owned;
using weft_test::PoolScheduler;
using weft_test::UntimedScheduler;

#if defined(WEFT_SANITIZED)
constexpr int kRounds = 300;
constexpr int kItems = 3000;
#else
constexpr int kRounds = 3000;
constexpr int kItems = 30000;
#endif

// A coroutine that takes `l`, waits once on `c` (over l), sets `out` to 1 if notified (0 if
// not) and releases `l`. Task: Detached, or Owned for the tests that destroy it.
template <class Task, class S>
Task condition_waiter(weft::Lock& l, weft::Condition& c, S& s, int& out) {
  co_await weft::async_acquire(l, s);
  out = co_await weft::async_wait(c, l, s) ? 1 : 0;
  EXPECT_TRUE(l.locked());
  l.release();
}

// A coroutine party of `b`: sets `index` to its index.
template <class Task, class S>
Task barrier_party(weft::Barrier& b, S& s, int& index) {
  index = static_cast<int>(co_await weft::async_wait(b, s));
}

// ---- async_put of a const item -------------------------------------------------------------

TEST(AsyncPutCopy, EveryKindQueuesACopy) {
  ManualScheduler s;
  weft::Queue<std::string> fifo(1);
  weft::LifoQueue<std::string> lifo;
  weft::PriorityQueue<std::string> prio;
  weft::SimpleQueue<std::string> simple;
  const std::string item = "item";
  bool done = false;
  auto co = [&]() -> Detached {
    co_await weft::async_put(fifo, s, item);
    co_await weft::async_put(lifo, s, item);
    co_await weft::async_put(prio, s, item, 1h);
    co_await weft::async_put(simple, s, item);
    done = true;
  };
  co();
  EXPECT_TRUE(done);
  EXPECT_EQ(item, "item");
  EXPECT_EQ(fifo.get(), "item");
  EXPECT_EQ(lifo.get(), "item");
  EXPECT_EQ(prio.get(), "item");
  EXPECT_EQ(simple.get(), "item");
}

// The copy is made by the call: what the caller does to its item while the put waits does
// not reach the queue.
TEST(AsyncPutCopy, AWaitingPutKeepsItsOwnCopy) {
  ManualScheduler s;
  weft::Queue<std::string> q(1);
  q.put("first");
  std::string item = "second";
  bool done = false;
  auto co = [&]() -> Detached {
    co_await weft::async_put(q, s, std::as_const(item));
    done = true;
  };
  co();
  EXPECT_FALSE(done);
  item = "changed";
  EXPECT_EQ(q.get(), "first");
  s.run_pending();
  EXPECT_TRUE(done);
  EXPECT_EQ(q.get(), "second");
}

TEST(AsyncPutCopy, TimeoutAndStopQueueNothing) {
  PoolScheduler s(1);
  weft::Queue<int> q(1);
  q.put(0);
  const int item = 5;
  std::stop_source stop;
  stop.request_stop();
  std::atomic<int> full{0};
  std::atomic<int> cancelled{0};
  weft::Event done;
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_put(q, s, item, 10ms);
    } catch (const weft::Full&) {
      ++full;
    }
    try {
      co_await weft::async_put(q, s, item, stop.get_token());
    } catch (const weft::Cancelled&) {
      ++cancelled;
    }
    done.set();
  };
  co();
  ASSERT_TRUE(done.wait(30s));
  EXPECT_EQ(full.load(), 1);
  EXPECT_EQ(cancelled.load(), 1);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(), 0);
}

// ---- Condition -------------------------------------------------------------------------------

// Wait morphing: the notify claims the coroutine, its wake-up waits for the release that
// frees the lock, and that release only schedules it.
TEST(AsyncCondition, NotifyWakesThroughTheReleaseAndTheScheduler) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int result = -1;
  bool held = false;
  auto co = [&]() -> Detached {
    EXPECT_TRUE(co_await weft::async_acquire(l, s));
    result = co_await weft::async_wait(c, l, s) ? 1 : 0;
    held = l.locked();
    l.release();
  };
  co();
  EXPECT_FALSE(l.locked()) << "the wait did not release the lock";
  l.acquire();
  c.notify();
  EXPECT_EQ(s.pending(), 0u) << "woken while the notifier holds the lock";
  l.release();
  EXPECT_EQ(result, -1) << "resumed inside release()";
  EXPECT_EQ(s.pending(), 1u);
  s.run_pending();
  EXPECT_EQ(result, 1);
  EXPECT_TRUE(held) << "resumed without the lock";
  EXPECT_FALSE(l.locked());
}

// Woken into a lock that a running thread took first: the coroutine registers on the lock
// and is scheduled by that thread's release.
TEST(AsyncCondition, RetakesTheLockBehindARunningHolder) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int result = -1;
  auto co = [&]() -> Detached {
    co_await weft::async_acquire(l, s);
    result = co_await weft::async_wait(c, l, s) ? 1 : 0;
    EXPECT_TRUE(l.locked());
    l.release();
  };
  co();
  l.acquire();
  c.notify();
  l.release();
  EXPECT_EQ(s.pending(), 1u);
  l.acquire();  // a running thread wins the lock
  s.run_pending();
  EXPECT_EQ(result, -1);
  EXPECT_EQ(s.pending(), 0u);
  l.release();
  EXPECT_EQ(s.pending(), 1u);
  s.run_pending();
  EXPECT_EQ(result, 1);
  EXPECT_FALSE(l.locked());
}

// notify(n) wakes the n longest waiters, coroutines and threads alike.
TEST(AsyncCondition, NotifyWakesOldestFirstAcrossThreadsAndCoroutines) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  std::atomic<int> woken{0};
  std::atomic<int> waiting{0};
  std::vector<int> order;  // under l
  auto co = [&](int id) -> Detached {
    co_await weft::async_acquire(l, s);
    ++waiting;
    co_await weft::async_wait(c, l, s);
    order.push_back(id);
    ++woken;
    l.release();
  };
  co(0);
  std::thread t([&] {
    std::unique_lock<weft::Lock> g(l);
    ++waiting;
    c.wait();
    order.push_back(1);
    ++woken;
  });
  ASSERT_TRUE(eventually([&] {
    if (!l.try_lock()) return false;
    const bool both = waiting.load() == 2;
    l.release();
    return both;
  }));
  co(2);
  l.acquire();
  c.notify(2);
  l.release();
  ASSERT_TRUE(eventually([&] {
    s.run_pending();
    return woken.load() == 2;
  }));
  t.join();
  EXPECT_EQ(s.pending(), 0u);
  {
    std::unique_lock<weft::Lock> g(l);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, (std::vector<int>{0, 1}));
    c.notify();
  }
  s.run_pending();
  EXPECT_EQ(woken.load(), 3);
}

TEST(AsyncCondition, TimeoutsAndStopRequestsReturnFalseHoldingTheLock) {
  PoolScheduler s(1);
  weft::Lock l;
  weft::Condition c(l);
  std::stop_source stopped;
  stopped.request_stop();
  std::vector<int> results;
  bool always_held = true;
  weft::Event done;
  auto co = [&]() -> Detached {
    co_await weft::async_acquire(l, s);
    results.push_back(co_await weft::async_wait(c, l, s, 10ms) ? 1 : 0);
    always_held = always_held && l.locked();
    results.push_back(co_await weft::async_wait(c, l, s, 0ms) ? 1 : 0);
    always_held = always_held && l.locked();
    results.push_back(co_await weft::async_wait(c, l, s, -1s) ? 1 : 0);
    always_held = always_held && l.locked();
    results.push_back(co_await weft::async_wait(c, l, s, stopped.get_token()) ? 1 : 0);
    always_held = always_held && l.locked();
    const auto deadline = std::chrono::steady_clock::now() + 10ms;
    const auto never = [] { return false; };
    results.push_back(co_await weft::async_wait_for(c, l, s, never, deadline) ? 1 : 0);
    always_held = always_held && l.locked();
    l.release();
    done.set();
  };
  co();
  ASSERT_TRUE(done.wait(30s));
  EXPECT_EQ(results, (std::vector<int>{0, 0, 0, 0, 0}));
  EXPECT_TRUE(always_held);
  EXPECT_FALSE(l.locked());
}

TEST(AsyncCondition, StopWakesTheWaiterAndUnregistersIt) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  std::stop_source stop;
  int result = -1;
  auto co = [&]() -> Detached {
    co_await weft::async_acquire(l, s);
    result = co_await weft::async_wait(c, l, s, stop.get_token()) ? 1 : 0;
    EXPECT_TRUE(l.locked());
    l.release();
  };
  co();
  stop.request_stop();
  EXPECT_EQ(result, -1);
  EXPECT_EQ(s.pending(), 1u);
  s.run_pending();
  EXPECT_EQ(result, 0);
  l.acquire();
  c.notify();
  l.release();
  EXPECT_EQ(s.pending(), 0u) << "a notify reached a waiter that had left";
}

TEST(AsyncCondition, WaitForChecksThePredicateUnderTheLock) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int value = 0;  // under l
  int result = -1;
  int calls = 0;
  auto co = [&]() -> Detached {
    co_await weft::async_acquire(l, s);
    const bool r = co_await weft::async_wait_for(c, l, s, [&] {
      ++calls;
      EXPECT_TRUE(l.locked());
      return value == 2;
    });
    result = r ? 1 : 0;
    l.release();
  };
  co();
  for (int v = 1; v <= 2; ++v) {
    EXPECT_EQ(result, -1);
    l.acquire();
    value = v;
    c.notify();
    l.release();
    s.run_pending();
  }
  EXPECT_EQ(result, 1);
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(l.locked());
}

TEST(AsyncCondition, MisuseThrowsAndChangesNothing) {
  ManualScheduler s;
  weft::Lock l;
  weft::Lock other;
  weft::Condition c(l);
  int errors = 0;
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_wait(c, l, s);  // not held
    } catch (const std::logic_error&) {
      ++errors;
    }
    co_await weft::async_acquire(other, s);
    try {
      co_await weft::async_wait(c, other, s);  // not the Condition's lock
    } catch (const std::logic_error&) {
      ++errors;
    }
  };
  co();
  EXPECT_EQ(errors, 2);
  EXPECT_TRUE(other.locked());
  EXPECT_FALSE(l.locked());
  EXPECT_EQ(s.pending(), 0u);
}

// A bounded buffer of 4 under one Lock with two Conditions over it, thread and coroutine
// producers and consumers, both sides waiting: every item is taken exactly once.
TEST(AsyncCondition, MixedProducersAndConsumersTakeEveryItemOnce) {
  PoolScheduler s(2);
  weft::Lock l;
  weft::Condition not_empty(l);
  weft::Condition not_full(l);
  constexpr std::size_t kCapacity = 4;
  std::deque<int> items;             // under l
  std::vector<int> seen(kItems, 0);  // under l
  bool closed = false;               // under l
  weft::Semaphore finished(0);
  const auto can_take = [&] { return !items.empty() || closed; };
  const auto can_put = [&] { return items.size() < kCapacity; };
  const auto take = [&] {  // with l held
    const int x = items.front();
    items.pop_front();
    ++seen[static_cast<std::size_t>(x)];
    not_full.notify();
  };
  const auto put = [&](int x) {  // with l held
    items.push_back(x);
    not_empty.notify();
  };
  auto co_consumer = [&]() -> Detached {
    for (;;) {
      co_await weft::async_acquire(l, s);
      co_await weft::async_wait_for(not_empty, l, s, can_take);
      if (items.empty()) {
        l.release();
        break;
      }
      take();
      l.release();
    }
    finished.release();
  };
  auto co_producer = [&](int from, int to) -> Detached {
    for (int x = from; x < to; ++x) {
      co_await weft::async_acquire(l, s);
      co_await weft::async_wait_for(not_full, l, s, can_put);
      put(x);
      l.release();
    }
    finished.release();
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    co_consumer();
    threads.emplace_back([&] {
      for (;;) {
        std::unique_lock<weft::Lock> g(l);
        not_empty.wait_for(can_take);
        if (items.empty()) break;
        take();
      }
      finished.release();
    });
  }
  threads.emplace_back([&] {
    for (int x = kItems / 2; x < kItems; ++x) {
      std::unique_lock<weft::Lock> g(l);
      not_full.wait_for(can_put);
      put(x);
    }
    finished.release();
  });
  co_producer(0, kItems / 2);
  ASSERT_TRUE(finished.acquire(60s));
  ASSERT_TRUE(finished.acquire(60s));
  {
    std::unique_lock<weft::Lock> g(l);
    closed = true;
    not_empty.notify_all();
  }
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(finished.acquire(60s)) << "a consumer was stranded";
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), kItems);
}

// A stop racing a notify: either the stop wins (false, and the notify goes to the next
// waiter) or the notify does (true); never both lost, never both woken.
TEST(AsyncConditionRace, StopRacingNotifyLosesNothing) {
  PoolScheduler s(2);
  for (int round = 0; round < kRounds; ++round) {
    weft::Lock l;
    weft::Condition c(l);
    std::stop_source stop;
    int waiting = 0;  // under l
    std::atomic<int> a{-1};
    std::atomic<int> b{-1};
    weft::Semaphore finished(0);
    auto co_a = [&]() -> Detached {
      co_await weft::async_acquire(l, s);
      ++waiting;
      a = co_await weft::async_wait(c, l, s, stop.get_token()) ? 1 : 0;
      l.release();
      finished.release();
    };
    co_a();
    // b: a thread in even rounds, a coroutine in odd ones.
    std::thread tb;
    auto co_b = [&]() -> Detached {
      co_await weft::async_acquire(l, s);
      ++waiting;
      b = co_await weft::async_wait(c, l, s) ? 1 : 0;
      l.release();
      finished.release();
    };
    if (round % 2 == 0) {
      tb = std::thread([&] {
        std::unique_lock<weft::Lock> g(l);
        ++waiting;
        b = c.wait() ? 1 : 0;
        g.unlock();
        finished.release();
      });
    } else {
      co_b();
    }
    ASSERT_TRUE(eventually([&] {
      std::unique_lock<weft::Lock> g(l);
      return waiting == 2;
    }));
    std::thread notifier([&] {
      std::unique_lock<weft::Lock> g(l);
      c.notify();
    });
    stop.request_stop();
    notifier.join();
    ASSERT_TRUE(finished.acquire(30s)) << "the notify was lost, round " << round;
    ASSERT_TRUE(eventually([&] { return a.load() != -1; })) << "round " << round;
    if (a.load() == 1) {  // a used the notify: b is still waiting
      std::unique_lock<weft::Lock> g(l);
      c.notify();
    }
    ASSERT_TRUE(finished.acquire(30s)) << "round " << round;
    if (tb.joinable()) tb.join();
    ASSERT_EQ(b.load(), 1);
    ASSERT_TRUE(a.load() == 0 || a.load() == 1);
    ASSERT_FALSE(l.locked());
  }
}

// Arming the timer throws after the registration: the wait is withdrawn, the lock stays
// held, and a Barrier arrival is withdrawn too.
TEST(AsyncConditionTimer, ArmTimerThrowingTakesNothing) {
  ManualScheduler m;
  FailingTimerScheduler s{&m};
  weft::Lock l;
  weft::Condition c(l);
  weft::Barrier b(2);
  int errors = 0;
  auto co = [&]() -> Detached {
    co_await weft::async_acquire(l, s);
    try {
      co_await weft::async_wait(c, l, s, 1h);
    } catch (const std::runtime_error&) {
      ++errors;
    }
    EXPECT_TRUE(l.locked());
    l.release();
    try {
      co_await weft::async_wait(b, s, 1h);
    } catch (const std::runtime_error&) {
      ++errors;
    }
  };
  co();
  EXPECT_EQ(errors, 2);
  EXPECT_FALSE(l.locked());
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
  l.acquire();
  c.notify();
  l.release();
  EXPECT_EQ(m.pending(), 0u) << "a withdrawn wait was notified";
}

// ---- frames destroyed while suspended ------------------------------------------------------

// The notify claimed the coroutine and its wake-up waits for the release of the lock that
// the destroying thread holds: the destruction takes the wake-up back (it does not wait for
// that release) and the notify passes on to the next waiter.
TEST(AsyncConditionDestroy, DeferredNotifyPassesOnFromADestroyedFrame) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int b = -1;
  int a_result = -1;
  auto a = condition_waiter<Owned>(l, c, s, a_result);
  condition_waiter<Detached>(l, c, s, b);
  l.acquire();
  c.notify();  // claims a
  a.destroy();
  EXPECT_EQ(s.pending(), 0u);
  l.release();
  EXPECT_EQ(s.pending(), 1u);
  s.run_pending();
  EXPECT_EQ(b, 1);
  EXPECT_EQ(a_result, -1);
  EXPECT_FALSE(l.locked());
}

TEST(AsyncConditionDestroy, UnclaimedFrameUnregisters) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  std::stop_source stop;
  int b = -1;
  {
    auto co_a = [&]() -> Owned {
      co_await weft::async_acquire(l, s);
      co_await weft::async_wait(c, l, s, 1h, stop.get_token());
      l.release();
    };
    Owned a = co_a();
    EXPECT_EQ(s.armed_timers(), 1u);
  }
  EXPECT_EQ(s.armed_timers(), 0u);
  stop.request_stop();  // its callback went with the frame
  condition_waiter<Detached>(l, c, s, b);
  l.acquire();
  c.notify();
  l.release();
  s.run_pending();
  EXPECT_EQ(b, 1);
}

// Notified and woken, then waiting for the lock a thread took first: the destroyed frame
// leaves the lock's list and its notify passes on.
TEST(AsyncConditionDestroy, FrameDestroyedWhileRetakingTheLock) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int b = -1;
  int a_result = -1;
  auto a = condition_waiter<Owned>(l, c, s, a_result);
  condition_waiter<Detached>(l, c, s, b);
  l.acquire();
  c.notify();
  l.release();
  l.acquire();
  EXPECT_EQ(s.run_pending(), 1u);  // a registers on the lock
  a.destroy();                     // the notify goes to b, woken by the release below
  EXPECT_EQ(s.pending(), 0u);
  l.release();
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(a_result, -1);
  EXPECT_FALSE(l.locked());
}

// ---- Barrier -------------------------------------------------------------------------------

TEST(AsyncBarrier, ThreadsAndCoroutinesShareEveryCycle) {
  PoolScheduler s(2);
  const int cycles = kRounds / 10;
  std::atomic<int> actions{0};
  weft::Barrier b(4, [&] { ++actions; });
  std::vector<std::atomic<unsigned>> seen(static_cast<std::size_t>(cycles));
  weft::Semaphore finished(0);
  const auto record = [&](int cycle, std::size_t index) {
    seen[static_cast<std::size_t>(cycle)].fetch_or(1u << index);
  };
  auto co = [&]() -> Detached {
    for (int i = 0; i < cycles; ++i) record(i, co_await weft::async_wait(b, s));
    finished.release();
  };
  co();
  co();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < cycles; ++i) record(i, b.wait());
      finished.release();
    });
  }
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(finished.acquire(60s));
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(actions.load(), cycles);
  for (int i = 0; i < cycles; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)].load(), 0xFu);
  EXPECT_FALSE(b.broken());
}

TEST(AsyncBarrier, TheTripResumesCoroutinesThroughTheScheduler) {
  ManualScheduler s;
  weft::Barrier b(2);
  int index = -1;
  auto co = [&]() -> Detached { index = static_cast<int>(co_await weft::async_wait(b, s)); };
  co();
  EXPECT_EQ(b.n_waiting(), 1u);
  EXPECT_EQ(b.wait(), 1u);  // the last arrival; returns first
  EXPECT_EQ(index, -1);
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_EQ(index, 0);
  EXPECT_EQ(b.n_waiting(), 0u);
}

TEST(AsyncBarrier, ACoroutineTimeoutBreaksTheBarrierForEveryone) {
  PoolScheduler s(1);
  weft::Barrier b(3);
  std::atomic<int> broken{0};
  weft::Semaphore finished(0);
  std::thread t([&] {
    try {
      b.wait();
    } catch (const weft::BrokenBarrierError&) {
      ++broken;
    }
    finished.release();
  });
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_wait(b, s, 10ms);
    } catch (const weft::BrokenBarrierError&) {
      ++broken;
    }
    finished.release();
  };
  co();
  ASSERT_TRUE(finished.acquire(30s));
  ASSERT_TRUE(finished.acquire(30s));
  t.join();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(b.broken());
}

TEST(AsyncBarrier, TheDefaultTimeoutAppliesAndNeedsATimer) {
  PoolScheduler s(1);
  weft::Barrier b(2, {}, 10ms);
  std::atomic<int> broken{0};
  weft::Event done;
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_wait(b, s);
    } catch (const weft::BrokenBarrierError&) {
      ++broken;
    }
    done.set();
  };
  co();
  ASSERT_TRUE(done.wait(30s));
  EXPECT_EQ(broken.load(), 1);
  ManualScheduler m;
  UntimedScheduler untimed{&m};
  EXPECT_THROW((void)weft::async_wait(b, untimed), std::logic_error);
}

TEST(AsyncBarrier, AStopRequestWithdrawsTheArrival) {
  ManualScheduler s;
  weft::Barrier b(2);
  std::stop_source stop;
  int cancelled = 0;
  auto co_a = [&]() -> Detached {
    try {
      co_await weft::async_wait(b, s, stop.get_token());
    } catch (const weft::Cancelled&) {
      ++cancelled;
    }
  };
  co_a();
  EXPECT_EQ(b.n_waiting(), 1u);
  stop.request_stop();
  s.run_pending();
  EXPECT_EQ(cancelled, 1);
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
  int index = -1;
  barrier_party<Detached>(b, s, index);
  EXPECT_EQ(b.wait(), 1u);
  s.run_pending();
  EXPECT_EQ(index, 0);
}

// The action runs with the barrier's lock held, and may destroy the frame of a coroutine
// waiting on that same barrier: its arrival leaves the tripped cycle without waiting for the
// lock (which the destroying thread holds), and the barrier opens for the next cycle.
TEST(AsyncBarrier, AnActionMayDestroyAFrameWaitingOnTheBarrier) {
  ManualScheduler s;
  std::optional<Owned> victim;
  int actions = 0;
  weft::Barrier b(2, [&] {
    ++actions;
    victim.reset();  // suspended in async_wait(b): destroyed here
  });
  bool resumed = false;
  auto co = [&]() -> Owned {
    co_await weft::async_wait(b, s);
    resumed = true;
  };
  victim.emplace(co());
  EXPECT_EQ(b.n_waiting(), 1u);
  std::atomic<bool> returned{false};
  std::thread t([&] {
    EXPECT_EQ(b.wait(), 1u);  // the last arrival: runs the action
    returned = true;
  });
  ASSERT_TRUE(eventually([&] { return returned.load(); }));  // it used to spin for ever
  t.join();
  EXPECT_EQ(actions, 1);
  EXPECT_FALSE(victim.has_value());
  EXPECT_FALSE(resumed);
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
  int index = -1;
  barrier_party<Detached>(b, s, index);  // the next cycle: a coroutine and this thread
  EXPECT_EQ(b.wait(), 1u);
  s.run_pending();
  EXPECT_EQ(index, 0);
  EXPECT_EQ(actions, 2);
}

TEST(AsyncBarrier, AbortAndResetReachSuspendedCoroutines) {
  ManualScheduler s;
  weft::Barrier b(3);
  int broken = 0;
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_wait(b, s);
    } catch (const weft::BrokenBarrierError&) {
      ++broken;
    }
  };
  co();
  b.abort();
  s.run_pending();
  EXPECT_EQ(broken, 1);
  co();  // a broken barrier fails at once
  EXPECT_EQ(broken, 2);
  b.reset();
  co();
  b.reset();  // breaks the cycle for its waiter
  s.run_pending();
  EXPECT_EQ(broken, 3);
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
}

// The action runs in the last arrival: a coroutine gets the action's exception, the others
// BrokenBarrierError.
TEST(AsyncBarrier, AThrowingActionReachesTheLastCoroutine) {
  ManualScheduler s;
  weft::Barrier b(2, [] { throw std::runtime_error("action"); });
  std::atomic<int> broken{0};
  std::thread t([&] {
    try {
      b.wait();
    } catch (const weft::BrokenBarrierError&) {
      ++broken;
    }
  });
  ASSERT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  int action_error = 0;
  auto co = [&]() -> Detached {
    try {
      co_await weft::async_wait(b, s);
    } catch (const std::runtime_error&) {
      ++action_error;
    }
  };
  co();
  // The thread may still hold the barrier's lock: then the coroutine is scheduled by its
  // release.
  ASSERT_TRUE(eventually([&] {
    s.run_pending();
    return action_error == 1;
  }));
  t.join();
  EXPECT_EQ(broken.load(), 1);
  EXPECT_TRUE(b.broken());
}

TEST(AsyncBarrier, ADestroyedFrameWithdrawsItsArrival) {
  ManualScheduler s;
  weft::Barrier b(2);
  {
    auto co = [&]() -> Owned { co_await weft::async_wait(b, s); };
    Owned a = co();
    EXPECT_EQ(b.n_waiting(), 1u);
  }
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
  int index = -1;
  barrier_party<Detached>(b, s, index);
  EXPECT_EQ(b.wait(), 1u);
  s.run_pending();
  EXPECT_EQ(index, 0);
}

// A stop racing the last arrival: the coroutine either withdrew (Cancelled; the thread then
// needs another party) or passed with its index; the barrier never breaks.
TEST(AsyncBarrierRace, StopRacingTheTripLosesNothing) {
  PoolScheduler s(2);
  for (int round = 0; round < kRounds / 3; ++round) {
    weft::Barrier b(2);
    std::stop_source stop;
    std::atomic<int> a{-2};  // index, or -1 when cancelled
    weft::Event a_done;
    auto co = [&]() -> Detached {
      try {
        a = static_cast<int>(co_await weft::async_wait(b, s, stop.get_token()));
      } catch (const weft::Cancelled&) {
        a = -1;
      }
      a_done.set();
    };
    co();
    std::atomic<int> t_index{-1};
    std::thread t([&] { t_index = static_cast<int>(b.wait()); });
    stop.request_stop();
    ASSERT_TRUE(a_done.wait(30s)) << "round " << round;
    if (a.load() == -1) {
      const int mine = static_cast<int>(b.wait());  // completes the thread's cycle
      t.join();
      ASSERT_EQ(mine + t_index.load(), 1) << "indices not distinct, round " << round;
    } else {
      t.join();
      ASSERT_EQ(a.load() + t_index.load(), 1) << "indices not distinct, round " << round;
    }
    ASSERT_FALSE(b.broken());
  }
}

// ---- AsyncResume::drop() -------------------------------------------------------------------

TEST(AsyncDrop, ADroppedGetPassesTheItemOn) {
  ManualScheduler s;
  weft::Queue<int> q;
  int b = -1;
  auto co_a = [&]() -> Owned { (void)co_await weft::async_get(q, s); };
  Owned a = co_a();
  auto co_b = [&]() -> Detached { b = co_await weft::async_get(q, s); };
  co_b();
  q.put(1);
  EXPECT_EQ(s.drop_pending(), 1u);  // a's resumption: the claim passes on to b
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_EQ(b, 1);
  EXPECT_FALSE(a.done());
  a.destroy();  // nothing left to undo
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(AsyncDrop, ADroppedLockGrantPassesTheLockOn) {
  ManualScheduler s;
  weft::Lock l;
  l.acquire();
  auto co_a = [&]() -> Owned { co_await weft::async_acquire(l, s); };
  Owned a = co_a();
  bool b = false;
  auto co_b = [&]() -> Detached { b = co_await weft::async_acquire(l, s); };
  co_b();
  l.release();
  EXPECT_EQ(s.drop_pending(), 1u);
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_TRUE(b);
  EXPECT_TRUE(l.locked());
}

TEST(AsyncDrop, ADroppedNotifyPassesOn) {
  ManualScheduler s;
  weft::Lock l;
  weft::Condition c(l);
  int a_result = -1;
  auto a = condition_waiter<Owned>(l, c, s, a_result);
  int b = -1;
  condition_waiter<Detached>(l, c, s, b);
  l.acquire();
  c.notify();
  l.release();
  EXPECT_EQ(s.drop_pending(), 1u);
  EXPECT_EQ(s.run_pending(), 1u);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(a_result, -1);
  EXPECT_FALSE(l.locked());
  a.destroy();
}

TEST(AsyncDrop, ADroppedBarrierWaitLeavesTheCycle) {
  ManualScheduler s;
  weft::Barrier b(2);
  auto co_a = [&]() -> Owned { co_await weft::async_wait(b, s); };
  Owned a = co_a();
  b.reset();  // breaks a's cycle; a is scheduled
  EXPECT_EQ(s.drop_pending(), 1u);
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
  int index = -1;
  barrier_party<Detached>(b, s, index);
  EXPECT_EQ(b.wait(), 1u);
  s.run_pending();
  EXPECT_EQ(index, 0);
}

}  // namespace
