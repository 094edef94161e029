// SPDX-License-Identifier: MIT
// Cancellation by std::stop_token across weft's primitives (docs/api.md: Cancellation), beyond
// the per-primitive cases of cancel_core_test.cpp and queue_cancel_test.cpp:
//  - one stop request waking a waiter in every kind of blocking call at once, each changing
//    nothing, and the measured wake latency;
//  - pools of std::jthread workers looping on try_get(st) and consume(st): stopped while
//    blocked or while busy, with every item accounted for (processed once, or still queued)
//    and the task count intact;
//  - Condition::wait_for(pred, st) reacquiring a shared Lock / RLock before it returns, and
//    returning the predicate's last value;
//  - Barrier: cancellations over several cycles (indices stay distinct among those who
//    remain, the action runs once per completed cycle), a stop racing the last arrival;
//  - Semaphore / Lock: cancelled waiters among many release nothing and absorb nothing; a
//    stop racing a release is all-or-nothing;
//  - a stop requested after a call returned touches nothing (ASAN).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/select.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::eventually;
using weft_test::kPatience;
using weft_test::returned_promptly;
using weft_test::Threads;
using weft_test::wait_blocked;

// Waits until every thread of `threads` is parked (and none has returned instead).
::testing::AssertionResult all_parked(const Threads& threads) {
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (threads.finished(i)) {
      return ::testing::AssertionFailure() << "thread " << i << " returned instead of blocking";
    }
  }
  return wait_blocked(threads.tids());
}

// Burns a little CPU time, a different amount each round, so that the two sides of a race
// meet in different orders (this orders nothing: either outcome is checked).
void spin(int round) {
  const auto until = Clock::now() + std::chrono::microseconds((round % 8) * 5);
  while (Clock::now() < until) {
  }
}

// Runs source.request_stop() and serve() at once, from two threads.
template <class Serve>
void race_stop_with(std::stop_source& source, int round, Serve serve) {
  std::latch go(2);
  Threads race(2, [&](std::size_t k) {
    go.arrive_and_wait();
    if (k == 0) {
      source.request_stop();
    } else {
      spin(round);
      serve();
    }
  });
}

// The kernel tid of a std::jthread worker, published by the worker itself.
struct TidSlot {
  std::atomic<pid_t> tid{0};
  void publish() { tid.store(weft_test::current_tid()); }
  pid_t get() const {
    EXPECT_TRUE(eventually([&] { return tid.load() != 0; }));
    return tid.load();
  }
};

// =========================================================================================
// One stop request, every kind of blocking call
// =========================================================================================

TEST(CancelEverywhere, OneStopRequestWakesEveryKindOfWaiterAndChangesNothing) {
  weft::Event event;
  weft::Lock lock;
  weft::RLock rlock;
  weft::Semaphore sem(0);
  weft::Lock cond_lock;
  weft::Condition cond(cond_lock);
  bool cond_state = false;  // guarded by cond_lock
  weft::Barrier barrier(3);
  weft::Queue<int> empty_q;
  weft::Queue<std::unique_ptr<int>> full_q(1);
  weft::Queue<int> join_q;
  weft::Queue<int> consume_q;

  lock.acquire();
  rlock.acquire();
  rlock.acquire();  // main owns it at depth 2
  full_q.put(std::make_unique<int>(0));
  join_q.put(1);  // one unfinished task: join() blocks

  std::stop_source source;
  const std::stop_token st = source.get_token();

  enum Call {
    kEventWait,
    kEventWaitTimed,
    kLockAcquire,
    kRLockAcquire,
    kSemAcquire,
    kSemAcquireTimed,
    kCondWait,
    kCondWaitFor,
    kBarrierWait,
    kQueueGet,
    kQueueTryGet,
    kQueuePut,
    kQueueJoin,
    kConsume,
    kSelect,
    kCallCount
  };
  const char* const names[kCallCount] = {
      "Event::wait(st)",     "Event::wait(1h, st)",        "Lock::acquire(st)",
      "RLock::acquire(st)",  "Semaphore::acquire(st)",     "Semaphore::acquire(1h, st)",
      "Condition::wait(st)", "Condition::wait_for(p, st)", "Barrier::wait(st)",
      "Queue::get(st)",      "Queue::try_get(st)",         "Queue::put(item, st)",
      "Queue::join(st)",     "for (x : consume(st))",      "weft::select(st, ...)"};

  // What each call reported: "cancelled" is the right answer for all of them.
  std::vector<std::string> outcome(kCallCount, "pending");
  std::vector<Clock::time_point> returned_at(kCallCount);
  auto item = std::make_unique<int>(7);
  int* const item_raw = item.get();
  auto select_item = std::make_unique<int>(8);

  {
    Threads t(kCallCount, [&](std::size_t k) {
      std::string& out = outcome[k];
      auto say = [&](bool returned_true) { out = returned_true ? "returned true" : "cancelled"; };
      try {
        switch (k) {
          case kEventWait:
            say(event.wait(st));
            break;
          case kEventWaitTimed:
            say(event.wait(1h, st));
            break;
          case kLockAcquire:
            say(lock.acquire(st));
            break;
          case kRLockAcquire:
            say(rlock.acquire(st));
            break;
          case kSemAcquire:
            say(sem.acquire(st));
            break;
          case kSemAcquireTimed:
            say(sem.acquire(1h, st));
            break;
          case kCondWait: {
            std::unique_lock<weft::Condition> g(cond);
            say(cond.wait(st));
            if (!cond_lock.locked()) out = "returned without the lock";
            break;
          }
          case kCondWaitFor: {
            std::unique_lock<weft::Condition> g(cond);
            say(cond.wait_for([&] { return cond_state; }, st));
            if (!cond_lock.locked()) out = "returned without the lock";
            break;
          }
          case kBarrierWait:
            barrier.wait(st);
            out = "passed the barrier";
            break;
          case kQueueGet:
            empty_q.get(st);
            out = "got an item";
            break;
          case kQueueTryGet:
            say(empty_q.try_get(st).has_value());
            break;
          case kQueuePut:
            full_q.put(std::move(item), st);
            out = "put the item";
            break;
          case kQueueJoin:
            join_q.join(st);
            out = "joined";
            break;
          case kConsume: {
            int n = 0;
            for (int x : consume_q.consume(st)) n += x + 1;
            say(n != 0);
            break;
          }
          case kSelect: {
            auto r = weft::select(st, weft::get(empty_q), weft::wait(event), weft::acquire(sem),
                                  weft::put(full_q, select_item));
            say(r.has_value());
            break;
          }
          default:
            break;
        }
      } catch (const weft::Cancelled&) {
        out = "cancelled";
      } catch (const std::exception& e) {
        out = std::string("threw ") + e.what();
      }
      returned_at[k] = Clock::now();
    });
    ASSERT_TRUE(all_parked(t));
    const auto requested = Clock::now();
    source.request_stop();
    t.join();
    Clock::duration worst{};
    std::size_t worst_k = 0;
    for (std::size_t k = 0; k < kCallCount; ++k) {
      EXPECT_EQ(outcome[k], "cancelled") << names[k];
      const auto latency = returned_at[k] - requested;
      if (latency > worst) {
        worst = latency;
        worst_k = k;
      }
    }
    std::cout << "[ latency  ] one request_stop woke " << static_cast<int>(kCallCount)
              << " waiters; the last returned after "
              << std::chrono::duration_cast<std::chrono::microseconds>(worst).count() << " us ("
              << names[worst_k] << ")\n";
    EXPECT_LT(worst, 1s);
  }

  // Nothing changed.
  EXPECT_FALSE(event.is_set());
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error) << "a cancelled acquire took or released the lock";
  rlock.release();
  rlock.release();
  EXPECT_THROW(rlock.release(), std::logic_error) << "the owner's depth changed";
  EXPECT_EQ(sem.value(), 0u);
  EXPECT_FALSE(cond_lock.locked());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
  EXPECT_TRUE(empty_q.empty());
  EXPECT_EQ(full_q.qsize(), 1u);
  EXPECT_EQ(item.get(), item_raw) << "a cancelled put keeps the caller's item";
  EXPECT_NE(select_item, nullptr);
  EXPECT_EQ(join_q.unfinished_tasks(), 1u);
  EXPECT_FALSE(consume_q.is_shutdown());

  // And everything still works, with no notification spent on a departed waiter.
  Threads again(6, [&](std::size_t k) {
    switch (k) {
      case 0:
        EXPECT_TRUE(event.wait());
        break;
      case 1:
        EXPECT_TRUE(sem.acquire());
        break;
      case 2: {
        std::unique_lock<weft::Condition> g(cond);
        EXPECT_TRUE(cond.wait_for([&] { return cond_state; }));
        break;
      }
      case 3:
        EXPECT_EQ(empty_q.get(), 5);
        break;
      case 4:
        join_q.join();
        break;
      case 5:
        barrier.wait();  // with main and one more below
        break;
      default:
        break;
    }
  });
  event.set();
  sem.release();
  {
    std::unique_lock<weft::Condition> g(cond);
    cond_state = true;
    cond.notify_all();
  }
  empty_q.put(5);
  EXPECT_EQ(join_q.get(), 1);
  join_q.task_done();
  Threads third(1, [&](std::size_t) { barrier.wait(); });
  barrier.wait();
}

// The stop_callback of every call is gone when the call returns: a stop requested after the
// primitives are destroyed touches none of them (ASAN/TSAN would see it).
TEST(CancelEverywhere, StopAfterTheCallsReturnedTouchesNothing) {
  std::stop_source source;
  const std::stop_token st = source.get_token();
  {
    weft::Lock lock;
    weft::RLock rlock;
    weft::Semaphore sem(0);
    weft::Condition cond;
    weft::Barrier barrier(2);
    weft::Queue<int> q(1);
    lock.acquire();  // before the threads start: their acquires must block
    rlock.acquire();
    Threads t(6, [&](std::size_t k) {
      switch (k) {
        case 0:
          EXPECT_TRUE(lock.acquire(st));
          lock.release();
          break;
        case 1:
          EXPECT_TRUE(rlock.acquire(st));
          rlock.release();
          break;
        case 2:
          EXPECT_TRUE(sem.acquire(1h, st));
          break;
        case 3: {
          std::unique_lock<weft::Condition> g(cond);
          EXPECT_TRUE(cond.wait(st));
          break;
        }
        case 4:
          EXPECT_LT(barrier.wait(st), 2u);
          break;
        case 5:
          EXPECT_EQ(q.get(st), 3);
          break;
        default:
          break;
      }
    });
    EXPECT_TRUE(wait_blocked(t.tids()));
    lock.release();
    rlock.release();
    sem.release();
    {
      std::unique_lock<weft::Condition> g(cond);
      cond.notify();
    }
    barrier.wait();
    q.put(3);
  }  // the threads are joined, then the primitives destroyed
  source.request_stop();
  SUCCEED();
}

// =========================================================================================
// std::jthread worker pools over try_get(st) and consume(st)
// =========================================================================================

// Four workers, two looping on try_get(st), two on consume(st). Phase 1: N items, all
// processed. Then two workers (one of each loop) are stopped while blocked on the empty
// queue; they end promptly and the queue stays open. Phase 2: N more items, processed by the
// two that remain. Every item exactly once; the task count ends at zero.
TEST(CancelJthreadPool, StoppingSomeBlockedWorkersLeavesTheOthersWorking) {
  constexpr int kItems = 200;
  weft::Queue<int> q(8);
  std::vector<std::atomic<int>> seen(std::size_t{2} * kItems);
  std::vector<std::atomic<int>> per_worker(4);
  TidSlot tids[4];
  std::atomic<int> ended[4] = {0, 0, 0, 0};

  auto try_get_loop = [&](std::stop_token st, int w) {
    tids[w].publish();
    while (auto item = q.try_get(st)) {
      seen[*item].fetch_add(1);
      per_worker[w].fetch_add(1);
      q.task_done();
    }
    ended[w].store(1);
  };
  auto consume_loop = [&](std::stop_token st, int w) {
    tids[w].publish();
    for (int item : q.consume(st)) {
      seen[item].fetch_add(1);
      per_worker[w].fetch_add(1);
      q.task_done();
    }
    ended[w].store(1);
  };
  std::vector<std::jthread> workers;
  workers.emplace_back(try_get_loop, 0);
  workers.emplace_back(consume_loop, 1);
  workers.emplace_back(try_get_loop, 2);
  workers.emplace_back(consume_loop, 3);

  for (int i = 0; i < kItems; ++i) q.put(i);
  ASSERT_TRUE(q.join(kPatience));
  ASSERT_TRUE(wait_blocked({tids[0].get(), tids[1].get(), tids[2].get(), tids[3].get()}))
      << "idle workers wait for work";

  const auto start = Clock::now();
  workers[0].request_stop();
  workers[1].request_stop();
  workers[0].join();
  workers[1].join();
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(ended[0].load() + ended[1].load(), 2);
  EXPECT_EQ(ended[2].load() + ended[3].load(), 0) << "only the stopped workers end";
  EXPECT_FALSE(q.is_shutdown());

  const int before2 = per_worker[2].load(), before3 = per_worker[3].load();
  for (int i = kItems; i < 2 * kItems; ++i) q.put(i);
  ASSERT_TRUE(q.join(kPatience)) << "the remaining workers must process phase 2";
  EXPECT_EQ(per_worker[2].load() - before2 + per_worker[3].load() - before3, kItems);
  for (int i = 0; i < 2 * kItems; ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  // The remaining two are stopped by ~jthread (request_stop, then join).
  workers.clear();
  EXPECT_EQ(ended[2].load() + ended[3].load(), 2);
}

// Workers stopped while busy, with items still queued: each loop ends at its next call
// (which may, or may not, take one more ready item: docs/api.md leaves that choice); every item is
// either processed once or still in the queue, and unfinished_tasks counts exactly the items
// not task_done().
TEST(CancelJthreadPool, StopWhileBusyLeavesEveryItemAccountedFor) {
  constexpr int kItems = 50;
  constexpr int kWorkers = 3;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    weft::Queue<int> q;
    for (int i = 0; i < kItems; ++i) q.put(i);
    std::latch all_busy(kWorkers);
    std::latch stop_sent(1);
    std::vector<std::atomic<int>> seen(kItems);
    std::atomic<int> processed{0};
    {
      std::vector<std::jthread> workers;
      for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, w](std::stop_token st) {
          bool first = true;
          auto handle = [&](int item) {
            seen[item].fetch_add(1);
            processed.fetch_add(1);
            q.task_done();
            if (first) {  // hold the first item until every worker has one and stop is sent
              first = false;
              all_busy.count_down();
              stop_sent.wait();
            }
          };
          if (w % 2 == 0) {
            while (auto item = q.try_get(st)) handle(*item);
          } else {
            for (int item : q.consume(st)) handle(item);
          }
        });
      }
      all_busy.wait();
      for (auto& w : workers) w.request_stop();
      stop_sent.count_down();
    }
    EXPECT_GE(processed.load(), kWorkers);
    EXPECT_EQ(static_cast<std::size_t>(processed.load()) + q.qsize(), std::size_t{kItems});
    EXPECT_EQ(q.unfinished_tasks(), q.qsize());
    std::vector<int> left;
    while (auto item = q.try_get()) left.push_back(*item);
    for (int item : left) seen[item].fetch_add(1);
    for (int i = 0; i < kItems; ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
  }
}

// A timed try_get with a token in a loop: the stop, not the timeout, ends the wait.
TEST(CancelJthreadPool, TimedTryGetLoopStopsWithoutWaitingOutTheTimeout) {
  weft::Queue<int> q;
  TidSlot tid;
  std::atomic<int> got{0};
  std::atomic<int> timeouts{0};
  std::jthread worker([&](std::stop_token st) {
    tid.publish();
    while (!st.stop_requested()) {
      if (auto item = q.try_get(1h, st)) {
        got += *item;
      } else if (!st.stop_requested()) {
        ++timeouts;
      }
    }
  });
  q.put(4);
  ASSERT_TRUE(eventually([&] { return got.load() == 4; }));
  ASSERT_TRUE(wait_blocked(tid.get()));
  const auto start = Clock::now();
  worker.request_stop();
  worker.join();
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(timeouts.load(), 0);
}

// A producer/consumer pair of jthreads, both stopped by their destructors while the consumer
// is blocked on an empty queue and the producer on a full one: both end, and the items
// consumed plus the items left equal the items put.
TEST(CancelJthreadPool, ProducerAndConsumerBothStopWhileBlocked) {
  weft::Queue<int> q(2);
  std::atomic<int> produced{0}, consumed{0};
  TidSlot producer_tid, consumer_tid;
  std::latch consumer_gate(1);
  {
    std::jthread producer([&](std::stop_token st) {
      producer_tid.publish();
      for (int i = 0;; ++i) {
        try {
          q.put(int{i}, st);
        } catch (const weft::Cancelled&) {
          return;
        }
        ++produced;
      }
    });
    std::jthread consumer([&](std::stop_token st) {
      consumer_tid.publish();
      consumer_gate.wait();
      // Drains the queue, then blocks on it until stopped.
      while (q.try_get(st)) ++consumed;
    });
    // The producer fills the queue and blocks.
    ASSERT_TRUE(eventually([&] { return q.full(); }));
    ASSERT_TRUE(wait_blocked(producer_tid.get()));
    producer.request_stop();
    producer.join();
    consumer_gate.count_down();
    ASSERT_TRUE(eventually([&] { return q.empty(); }));
    ASSERT_TRUE(wait_blocked(consumer_tid.get()));
  }  // ~jthread: the consumer, blocked on the empty queue, is stopped
  EXPECT_EQ(produced.load(), consumed.load());
  EXPECT_TRUE(q.empty());
}

// =========================================================================================
// Condition::wait_for(pred, st)
// =========================================================================================

// A cancelled wait_for must hold the lock again when it returns: while another thread holds
// the lock, the cancelled waiter stays blocked (reacquiring), and when it returns it sees
// what the holder wrote and owns the lock.
template <class LockT>
void cancelled_wait_for_reacquires(bool timed) {
  LockT lock;
  weft::Condition cond(lock);
  int data = 0;  // guarded by lock
  std::stop_source source;
  std::atomic<int> result{-1};
  std::atomic<int> seen{-1};
  std::latch waiting(1);
  Threads waiter(1, [&](std::size_t) {
    lock.acquire();
    if constexpr (std::is_same_v<LockT, weft::RLock>) lock.acquire();  // depth 2
    waiting.count_down();
    const bool r = timed ? cond.wait_for([&] { return data == 100; }, 1h, source.get_token())
                         : cond.wait_for([&] { return data == 100; }, source.get_token());
    result.store(r ? 1 : 0);
    seen.store(data);
    if constexpr (std::is_same_v<LockT, weft::RLock>) {
      EXPECT_NO_THROW(lock.release());
      EXPECT_NO_THROW(lock.release());
      EXPECT_THROW(lock.release(), std::logic_error) << "depth not restored to 2";
    } else {
      EXPECT_TRUE(lock.locked());
      EXPECT_NO_THROW(lock.release());
    }
  });
  waiting.wait();
  lock.acquire();  // the waiter released it: it is inside wait_for
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  source.request_stop();
  // The waiter is awake but must now wait for the lock, which this thread holds.
  ASSERT_TRUE(all_parked(waiter)) << "the cancelled waiter returned without the lock";
  EXPECT_EQ(result.load(), -1);
  data = 42;
  lock.release();
  waiter.join();
  EXPECT_EQ(result.load(), 0) << "the predicate is still false: a stopped wait_for returns false";
  EXPECT_EQ(seen.load(), 42);
  if constexpr (std::is_same_v<LockT, weft::Lock>) {
    EXPECT_FALSE(lock.locked());
  }
}

TEST(CancelCondition, WaitForReacquiresASharedLockBeforeReturning) {
  cancelled_wait_for_reacquires<weft::Lock>(false);
  cancelled_wait_for_reacquires<weft::Lock>(true);
}

TEST(CancelCondition, WaitForReacquiresASharedRLockAtItsDepthBeforeReturning) {
  cancelled_wait_for_reacquires<weft::RLock>(false);
  cancelled_wait_for_reacquires<weft::RLock>(true);
}

// wait_for returns the predicate's last value: when the state became true (without a notify)
// by the time the stop wakes the waiter, the answer is true.
TEST(CancelCondition, StoppedWaitForReturnsThePredicatesLastValue) {
  weft::Condition cond;
  bool ready = false;  // guarded by cond's lock
  std::stop_source source;
  std::atomic<int> result{-1};
  std::latch waiting(1);
  Threads waiter(1, [&](std::size_t) {
    std::unique_lock<weft::Condition> g(cond);
    waiting.count_down();
    result.store(cond.wait_for([&] { return ready; }, source.get_token()) ? 1 : 0);
  });
  waiting.wait();
  {
    std::unique_lock<weft::Condition> g(cond);  // the waiter is inside wait_for
    ready = true;                               // no notify
  }
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  source.request_stop();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
}

// notify(1) and a stop request race for the first of two waiters: if the first was
// cancelled, the notification must reach the second; a notification is never lost.
TEST(CancelCondition, StopRacingNotifyNeverLosesTheNotification) {
  constexpr int kRounds = 30;
  int a_notified = 0, a_cancelled = 0;
  for (int round = 0; round < kRounds; ++round) {
    weft::Lock lock;
    weft::Condition cond(lock);
    std::stop_source source;
    std::atomic<int> a_result{-1}, b_result{-1};
    std::latch in_line(1);
    Threads a(1, [&](std::size_t) {
      std::unique_lock<weft::Lock> g(lock);
      in_line.count_down();
      a_result.store(cond.wait(source.get_token()) ? 1 : 0);
    });
    in_line.wait();
    lock.acquire();  // a is waiting, first in line
    lock.release();
    std::latch b_in_line(1);
    Threads b(1, [&](std::size_t) {
      std::unique_lock<weft::Lock> g(lock);
      b_in_line.count_down();
      b_result.store(cond.wait() ? 1 : 0);
    });
    b_in_line.wait();
    lock.acquire();  // b is waiting, second
    lock.release();
    ASSERT_TRUE(wait_blocked({a.tid(0), b.tid(0)}));
    race_stop_with(source, round, [&] {
      std::unique_lock<weft::Lock> g(lock);
      cond.notify(1);
    });
    a.join();
    ASSERT_NE(a_result.load(), -1);
    if (a_result.load() == 1) {
      ++a_notified;
      // The notification went to a: b still waits. Release it.
      ASSERT_TRUE(all_parked(b));
      std::unique_lock<weft::Lock> g(lock);
      cond.notify(1);
    } else {
      ++a_cancelled;
      // a was cancelled: the notification (before or after the stop) belongs to b.
      EXPECT_TRUE(eventually([&] { return b_result.load() != -1; }, 30s))
          << "round " << round << ": the notify was lost to the cancelled waiter";
      if (b_result.load() == -1) {
        std::unique_lock<weft::Lock> g(lock);
        cond.notify_all();
      }
    }
    b.join();
    EXPECT_EQ(b_result.load(), 1);
  }
  std::cout << "[ race     ] notify won " << a_notified << ", stop won " << a_cancelled << " of "
            << kRounds << " rounds\n";
}

// =========================================================================================
// Barrier
// =========================================================================================

// Five cycles on one barrier of 4. In each: a plain waiter arrives, then two waiters with a
// token, which are cancelled (three arrivals cannot trip a barrier of four); then three more
// plain waiters complete the cycle with the first. The four indices are 0..3, each once; the
// action runs once per completed cycle and never for a cancelled arrival.
TEST(CancelBarrier, CancellationsOverSeveralCyclesKeepIndicesDistinct) {
  std::atomic<int> actions{0};
  weft::Barrier barrier(4, [&] { actions.fetch_add(1); });
  for (int cycle = 0; cycle < 5; ++cycle) {
    SCOPED_TRACE(cycle);
    std::stop_source source;
    std::atomic<int> cancelled{0};
    std::vector<std::size_t> indices;
    std::mutex indices_mutex;
    auto plain = [&](std::size_t) {
      const std::size_t i = barrier.wait();
      std::lock_guard<std::mutex> g(indices_mutex);
      indices.push_back(i);
    };
    Threads first(1, plain);
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
    {
      Threads doomed(2, [&](std::size_t) {
        try {
          barrier.wait(source.get_token());
        } catch (const weft::Cancelled&) {
          cancelled.fetch_add(1);
        }
      });
      ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 3; }));
      ASSERT_TRUE(all_parked(doomed));
      source.request_stop();
    }
    EXPECT_EQ(cancelled.load(), 2);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(actions.load(), cycle) << "a cancellation ran the action";
    { Threads rest(3, plain); }
    first.join();
    std::sort(indices.begin(), indices.end());
    EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2, 3}));
    EXPECT_EQ(actions.load(), cycle + 1);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(barrier.n_waiting(), 0u);
  }
}

// A stop request races the arrival that would trip a barrier of 2. Either the waiter passes
// with the arrival (indices 0 and 1), or it is cancelled as if it had never arrived, and the
// arrival waits for another party. Never broken, never one party passing alone.
TEST(CancelBarrier, StopRacingTheLastArrivalIsAllOrNothing) {
  constexpr int kRounds = 40;
  std::atomic<int> actions{0};
  weft::Barrier barrier(2, [&] { actions.fetch_add(1); });
  int passed = 0, cancelled = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    std::stop_source source;
    std::atomic<int> a_index{-1};
    std::atomic<bool> a_cancelled{false};
    std::atomic<int> b_index{-1};
    Threads a(1, [&](std::size_t) {
      try {
        a_index.store(static_cast<int>(barrier.wait(source.get_token())));
      } catch (const weft::Cancelled&) {
        a_cancelled.store(true);
      }
    });
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
    std::latch go(2);
    Threads b(1, [&](std::size_t) {
      go.arrive_and_wait();
      spin(round);
      b_index.store(static_cast<int>(barrier.wait()));
    });
    go.arrive_and_wait();
    source.request_stop();
    a.join();
    if (a_cancelled.load()) {
      ++cancelled;
      // b arrived at a barrier a had left: it waits for another party.
      ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
      EXPECT_EQ(b_index.load(), -1);
      std::size_t c_index = barrier.wait();
      b.join();
      EXPECT_EQ(c_index + static_cast<std::size_t>(b_index.load()), 1u);
    } else {
      ++passed;
      b.join();
      EXPECT_EQ(a_index.load() + b_index.load(), 1) << "indices 0 and 1";
    }
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_EQ(actions.load(), round + 1);
  }
  std::cout << "[ race     ] barrier: passed " << passed << ", cancelled " << cancelled << " of "
            << kRounds << " rounds\n";
}

// A barrier built with a default timeout: a stop during wait(st) is a cancellation (Cancelled,
// the barrier intact), not a timeout that breaks it.
TEST(CancelBarrier, StopIsNotATimeoutWithADefaultTimeout) {
  weft::Barrier barrier(2, {}, 1h);
  std::stop_source source;
  std::atomic<int> outcome{-1};  // 0 cancelled, 1 broken, 2 passed
  Threads a(1, [&](std::size_t) {
    try {
      barrier.wait(source.get_token());
      outcome.store(2);
    } catch (const weft::Cancelled&) {
      outcome.store(0);
    } catch (const weft::BrokenBarrierError&) {
      outcome.store(1);
    }
  });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
  ASSERT_TRUE(all_parked(a));
  source.request_stop();
  a.join();
  EXPECT_EQ(outcome.load(), 0);
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  std::atomic<std::size_t> sum{0};
  {
    Threads pair(2, [&](std::size_t) { sum += barrier.wait(); });
  }
  EXPECT_EQ(sum.load(), 1u);
}

// =========================================================================================
// Semaphore and Lock
// =========================================================================================

// Six waiters on a semaphore, three of them with a token. The three are cancelled; then
// release(3) serves exactly the three plain ones. A BoundedSemaphore shows that the
// cancellations released nothing: one more release is refused.
TEST(CancelSemaphore, CancelledWaitersAmongManyReleaseNothingAndAbsorbNothing) {
  weft::BoundedSemaphore sem(3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sem.acquire(false));
  std::stop_source source;
  std::atomic<int> acquired{0}, cancelled{0};
  Threads doomed(3, [&](std::size_t k) {
    const bool r = k == 0 ? sem.acquire(source.get_token()) : sem.acquire(1h, source.get_token());
    (r ? acquired : cancelled).fetch_add(1);
  });
  Threads plain(3, [&](std::size_t) {
    EXPECT_TRUE(sem.acquire());
    acquired.fetch_add(1);
  });
  ASSERT_TRUE(all_parked(doomed));
  ASSERT_TRUE(all_parked(plain));
  source.request_stop();
  doomed.join();
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_EQ(acquired.load(), 0);
  EXPECT_EQ(sem.value(), 0u);
  sem.release(3);
  plain.join();
  EXPECT_EQ(acquired.load(), 3);
  EXPECT_EQ(sem.value(), 0u);
  sem.release(3);
  EXPECT_THROW(sem.release(), std::logic_error) << "a cancelled acquire released a permit";
}

// A release and a stop request race for a waiter: either it took the permit (none left) or
// it was cancelled (the permit is still there). Never both, never neither.
TEST(CancelSemaphore, StopRacingReleaseIsAllOrNothing) {
  constexpr int kRounds = 100;
  int took = 0;
  for (int round = 0; round < kRounds; ++round) {
    weft::Semaphore sem(0);
    std::stop_source source;
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) { result.store(sem.acquire(source.get_token()) ? 1 : 0); });
    ASSERT_TRUE(wait_blocked(waiter.tid(0)));
    race_stop_with(source, round, [&] { sem.release(); });
    waiter.join();
    ASSERT_NE(result.load(), -1);
    EXPECT_EQ(sem.value(), result.load() == 1 ? 0u : 1u) << "round " << round;
    took += result.load();
  }
  std::cout << "[ race     ] semaphore: release won " << took << ", stop won " << kRounds - took
            << " of " << kRounds << " rounds\n";
}

// The same race on a Lock: the waiter either holds the lock (and releases it) or does not,
// and then the lock is free.
TEST(CancelLock, StopRacingReleaseIsAllOrNothing) {
  constexpr int kRounds = 100;
  int took = 0;
  for (int round = 0; round < kRounds; ++round) {
    weft::Lock lock;
    lock.acquire();
    std::stop_source source;
    std::atomic<int> result{-1};
    std::latch checked(1);
    Threads waiter(1, [&](std::size_t) {
      const bool r = lock.acquire(source.get_token());
      result.store(r ? 1 : 0);
      checked.wait();
      if (r) lock.release();
    });
    ASSERT_TRUE(wait_blocked(waiter.tid(0)));
    race_stop_with(source, round, [&] { lock.release(); });
    ASSERT_TRUE(eventually([&] { return result.load() != -1; }));
    EXPECT_EQ(lock.locked(), result.load() == 1) << "round " << round;
    checked.count_down();
    waiter.join();
    EXPECT_FALSE(lock.locked());
    took += result.load();
  }
  std::cout << "[ race     ] lock: release won " << took << ", stop won " << kRounds - took
            << " of " << kRounds << " rounds\n";
}

// Another thread's cancelled acquire of an RLock owned at depth 3 changes neither the owner
// nor the depth.
TEST(CancelRLock, CancelledAcquireLeavesTheOwnersDepth) {
  weft::RLock lock;
  lock.acquire();
  lock.acquire();
  lock.acquire();
  std::stop_source source;
  std::atomic<int> result{-1};
  std::atomic<int> release_threw{-1};
  Threads waiter(1, [&](std::size_t) {
    result.store(lock.acquire(1h, source.get_token()) ? 1 : 0);
    try {
      lock.release();
      release_threw.store(0);
    } catch (const std::logic_error&) {
      release_threw.store(1);
    }
  });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  source.request_stop();
  waiter.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(release_threw.load(), 1) << "the cancelled thread became an owner";
  EXPECT_TRUE(lock.is_owned());
  lock.release();
  lock.release();
  EXPECT_TRUE(lock.is_owned());
  lock.release();
  EXPECT_FALSE(lock.is_owned());
  EXPECT_THROW(lock.release(), std::logic_error);
}

}  // namespace
