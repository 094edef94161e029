// SPDX-License-Identifier: MIT
// Lost-wake-up hunts: every blocking path of weft, raced against what ends it by another
// route, many times over. A lost wake-up leaves an untimed waiter asleep with its reason to
// wake already there; each hunt then checks that every such waiter returns (within
// kPatience, and the watchdog of sync_helpers.hpp aborts a hang).
//
//   Condition   notify(1) racing waiters whose timeouts expire (a claimed waiter that timed
//               out must not swallow the notification)
//   Event       set(); clear(); racing waiters (CPython 13502: every thread waiting when
//               set() ran returns true, even though clear() follows at once)
//   Lock        release() racing acquirers that time out or are cancelled
//   Semaphore   release(n) racing acquirers that time out or are cancelled
//   Queue       shutdown() racing blocked and arriving put, get, join and select
//   Barrier     abort() racing wait(), then reset() and a full cycle
//
// Counts shrink under sanitizers; WEFT_TORTURE_SCALE=<k> runs k times more rounds.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "figures.hpp"
#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Threads;

// Never reached (a timed select that must not time out). A variable: not a constant.
std::chrono::hours g_forever{24};

// select(get(q)): the item, or nullopt when q is shut down and drained.
template <class Q>
std::optional<typename Q::value_type> select_get(Q& q) {
  return std::get<0>(weft::select(weft::get(q)));
}

// A few hundred nanoseconds of work inside a critical section: long enough for the other
// threads to pile up behind it, and park.
void hold_briefly(std::mt19937& rng) {
  const unsigned spins = rng() % 256;
  for (unsigned i = 0; i < spins; ++i) weft::detail::cpu_relax();
}

long rounds(std::size_t full, std::size_t sanitized) {
  return weft_test::scaled_count(static_cast<long>(weft_test::scaled(full, sanitized)));
}

std::chrono::microseconds small_timeout(std::mt19937& rng) {
  return std::chrono::microseconds(rng() % 100);
}

// Tokens are handed out under the lock, one notify(1) each, to two consumers that wait
// for them without a timeout. Two decoys wait with tiny timeouts (and a stop token) at the
// same time and never take a token; a decoy that is woken passes the notification on, as
// correct Condition code must. A notify(1) that claims a decoy whose timeout expired at that
// moment must go to another waiter instead: a notification spent on a waiter that is leaving
// leaves the consumers asleep beside a token, which nobody else takes.
TEST(LostWakeUp, ConditionNotifyRacingTimeouts) {
  const long tokens = rounds(30000, 3000);
  weft::Lock lock;
  weft::Condition cond(lock);
  long available = 0;
  bool done = false;
  std::atomic<long> taken{0}, decoy_timeouts{0}, decoy_passed{0};
  std::stop_source stop;
  Threads waiters(4, [&](std::size_t w) {
    std::mt19937 rng(static_cast<unsigned>(w));
    std::unique_lock<weft::Lock> g(lock);
    const auto ready = [&] { return available > 0 || done; };
    if (w < 2) {  // consumers, untimed
      for (;;) {
        EXPECT_TRUE(w == 0 ? cond.wait_for(ready) : cond.wait_for(ready, stop.get_token()));
        if (available > 0) {
          --available;
          taken.fetch_add(1, std::memory_order_relaxed);
        } else if (done) {
          return;
        }
      }
    }
    while (!done) {  // decoys
      const bool woken =
          w == 2 ? cond.wait(small_timeout(rng)) : cond.wait(small_timeout(rng), stop.get_token());
      if (woken) {
        decoy_passed.fetch_add(1, std::memory_order_relaxed);
        cond.notify();
      } else {
        decoy_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  for (long i = 0; i < tokens; ++i) {
    {
      std::unique_lock<weft::Lock> g(lock);
      ++available;
      cond.notify();
    }
    // One token at a time, so that each notify finds the consumers parked (or parking) and
    // the decoys' timeouts expiring around it. A lost notification stops this loop: the
    // watchdog reports it.
    while (taken.load(std::memory_order_relaxed) <= i) std::this_thread::yield();
  }
  EXPECT_TRUE(weft_test::eventually([&] { return taken.load() == tokens; }))
      << "tokens left with the consumers asleep: a lost notification (" << taken.load() << " of "
      << tokens << ")";
  {
    std::unique_lock<weft::Lock> g(lock);
    done = true;
    cond.notify_all();
  }
  waiters.join();
  EXPECT_GT(decoy_timeouts.load(), 0);
  weft_test::report_figure("lost_wakeup_rounds",
                           tokens + decoy_timeouts.load() + decoy_passed.load());
}

// Waiters block (untimed, timed 1 h, cancellable, select); once all are asleep the main
// thread does set(); clear(); and every one of them must return true.
TEST(LostWakeUp, EventSetRacingClear) {
  const long n = rounds(300, 40);
  weft::Event e;
  long woken = 0;
  for (long round = 0; round < n; ++round) {
    std::stop_source stop;
    std::vector<std::atomic<int>> result(4);
    for (auto& r : result) r = -1;
    Threads waiters(4, [&](std::size_t w) {
      bool ok = false;
      switch ((w + static_cast<std::size_t>(round)) % 4) {
        case 0:
          ok = e.wait();
          break;
        case 1:
          ok = e.wait(1h);
          break;
        case 2:
          ok = e.wait(stop.get_token());
          break;
        default:
          ok = weft::select(weft::wait(e)).index() == 0;
          break;
      }
      result[w] = ok ? 1 : 0;
    });
    ASSERT_TRUE(weft_test::wait_blocked(waiters.tids()));
    e.set();
    e.clear();
    waiters.join();
    for (auto& r : result) {
      EXPECT_EQ(r.load(), 1) << "a thread waiting when set() ran did not return true (round "
                             << round << ")";
      woken += r.load() == 1;
    }
    if (::testing::Test::HasFailure()) return;
  }
  weft_test::report_figure("lost_wakeup_rounds", woken);
}

// Acquirers of a Lock with tiny timeouts, untimed and cancellable, each holding it briefly:
// mutual exclusion holds, and the untimed ones always get through (a release that claimed a
// waiter which timed out, and freed the lock under a fresh waiter, would strand it: the bug
// tests/dsched found in Lock::release_slow).
TEST(LostWakeUp, LockReleaseRacingTimeouts) {
  const long acquisitions = rounds(100000, 5000);
  weft::Lock lock;
  std::atomic<int> inside{0};
  std::atomic<long> held{0}, timeouts{0};
  std::stop_source stop;
  std::latch go(4);
  Threads threads(4, [&](std::size_t w) {
    std::mt19937 rng(static_cast<unsigned>(w));
    go.arrive_and_wait();
    for (long i = 0; i < acquisitions / 4; ++i) {
      bool ok;
      switch ((w + static_cast<std::size_t>(i)) % 4) {
        case 0:
          ok = lock.acquire();
          break;
        case 1:
          ok = lock.acquire(small_timeout(rng));
          break;
        case 2:
          ok = lock.acquire(stop.get_token());
          break;
        default:
          ok = lock.acquire(small_timeout(rng), stop.get_token());
          break;
      }
      if (!ok) {
        timeouts.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      EXPECT_EQ(inside.fetch_add(1), 0) << "two holders";
      held.fetch_add(1, std::memory_order_relaxed);
      hold_briefly(rng);
      inside.fetch_sub(1);
      lock.release();
    }
  });
  EXPECT_TRUE(weft_test::eventually([&] { return threads.finished_count() == 4; }))
      << "an acquirer stranded on a free lock";
  if (threads.finished_count() != 4) stop.request_stop();
  threads.join();
  EXPECT_FALSE(lock.locked());
  weft_test::report_figure("lost_wakeup_rounds", held.load() + timeouts.load());
}

// Semaphore(2): acquirers with tiny timeouts, untimed and cancellable; release(1) and
// release(2) by the holders. At most two inside; nobody stranded; the count ends at 2.
TEST(LostWakeUp, SemaphoreReleaseRacingTimeouts) {
  const long acquisitions = rounds(100000, 5000);
  weft::Semaphore sem(2);
  std::atomic<int> inside{0};
  std::atomic<long> held{0}, timeouts{0};
  std::stop_source stop;
  weft::Lock pair;  // a thread holding two permits releases them with release(2)
  std::latch go(5);
  Threads threads(5, [&](std::size_t w) {
    std::mt19937 rng(static_cast<unsigned>(w));
    go.arrive_and_wait();
    for (long i = 0; i < acquisitions / 5; ++i) {
      bool ok;
      switch ((w + static_cast<std::size_t>(i)) % 4) {
        case 0:
          ok = sem.acquire();
          break;
        case 1:
          ok = sem.acquire(small_timeout(rng));
          break;
        case 2:
          ok = sem.acquire(stop.get_token());
          break;
        default:
          ok = sem.acquire(small_timeout(rng), stop.get_token());
          break;
      }
      if (!ok) {
        timeouts.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      EXPECT_LE(inside.fetch_add(1), 1) << "three holders of a Semaphore(2)";
      held.fetch_add(1, std::memory_order_relaxed);
      hold_briefly(rng);
      if (i % 8 == 0 && pair.acquire(false)) {
        // Take a second permit if one is free, then give both back at once.
        const bool second = sem.acquire(false);
        if (second) {
          EXPECT_LE(inside.fetch_add(1), 1);
          inside.fetch_sub(1);
        }
        inside.fetch_sub(1);
        sem.release(second ? 2 : 1);
        pair.release();
        continue;
      }
      inside.fetch_sub(1);
      sem.release();
    }
  });
  EXPECT_TRUE(weft_test::eventually([&] { return threads.finished_count() == 5; }))
      << "an acquirer stranded beside a free permit";
  if (threads.finished_count() != 5) stop.request_stop();
  threads.join();
  EXPECT_EQ(sem.value(), 2u);
  weft_test::report_figure("lost_wakeup_rounds", held.load() + timeouts.load());
}

// shutdown() racing threads that are arriving at or blocked in put, get, join and select:
// every one of them returns, no item is lost (each put item is got or removed or still held
// by its putter), and join() returns once the tasks are done.
template <class Kind>
class ShutdownRace : public ::testing::Test {};
using TaskKinds = ::testing::Types<weft_test::FifoKind, weft_test::FifoLockedKind,
                                   weft_test::LifoKind, weft_test::PriorityKind>;
TYPED_TEST_SUITE(ShutdownRace, TaskKinds, weft_test::KindNames);

TYPED_TEST(ShutdownRace, EveryBlockedCallWakes) {
  using Item = typename TypeParam::Item;
  const long n = rounds(400, 40);
  long calls = 0;
  for (long round = 0; round < n; ++round) {
    const bool immediate = round % 2 == 1;
    const std::ptrdiff_t maxsize = 2;
    auto q = weft_test::new_queue<TypeParam>(maxsize);
    const bool start_full = round % 4 < 2;
    if (start_full) {
      q->put(Item(1000));
      q->put(Item(1001));
    }
    std::latch go(7);
    std::atomic<long> got_sum{0}, put_sum{0}, kept_sum{0};
    std::atomic<int> got_count{0};
    std::stop_source stop;
    Threads threads(6, [&](std::size_t w) {
      go.arrive_and_wait();
      const int id = 10 * static_cast<int>(w + 1);  // putters: 10 and 20
      try {
        switch (w) {
          case 0:
          case 1: {  // putters: untimed, and select
            Item item(id);
            bool ok = false;
            try {
              if (w == 0) {
                q->put(std::move(item));
                ok = true;
              } else {
                auto r = weft::select_for(g_forever, stop.get_token(), weft::put(*q, item));
                ASSERT_TRUE(r.has_value());
                ok = std::get<0>(*r);
              }
            } catch (const weft::ShutDown&) {
            }
            if (ok) {
              put_sum += id;
            } else {
              // NOLINTNEXTLINE(bugprone-use-after-move): a failed put leaves the item; checked
              EXPECT_EQ(static_cast<int>(item), id) << "a failed put took the item";
              kept_sum += id;
            }
            break;
          }
          case 2:
          case 3: {  // getters: untimed, and select; they call task_done for what they got
            for (;;) {
              std::optional<Item> item;
              if (w == 2) {
                item.emplace(q->get());
              } else {
                auto got = select_get(*q);
                if (!got) break;  // shut down and drained
                item.emplace(std::move(*got));
              }
              got_sum += static_cast<int>(*item);
              ++got_count;
              q->task_done();
            }
            break;
          }
          case 4:  // joiner, untimed
            q->join();
            break;
          default:  // joiner, cancellable (never cancelled: must return by itself)
            q->join(stop.get_token());
            break;
        }
      } catch (const weft::ShutDown&) {
      }
    });
    go.arrive_and_wait();
    std::vector<Item> removed = q->shutdown(immediate);
    long removed_sum = 0;
    for (const Item& item : removed) removed_sum += static_cast<int>(item);
    EXPECT_TRUE(weft_test::eventually([&] { return threads.finished_count() == 6; }, 30s))
        << "a call stayed blocked after shutdown (round " << round << ")";
    if (threads.finished_count() != 6) {
      // Release whatever is stuck so that the test can report instead of hanging.
      stop.request_stop();
      while (q->try_get()) q->task_done();
    }
    threads.join();
    const long initial = start_full ? 1000 + 1001 : 0;
    EXPECT_EQ(got_sum.load() + removed_sum, initial + put_sum.load())
        << "round " << round << ": items put were lost or duplicated";
    EXPECT_EQ(put_sum.load() + kept_sum.load(), 30) << "each putter either put or kept its item";
    EXPECT_EQ(q->unfinished_tasks(), 0u);
    EXPECT_EQ(q->qsize(), 0u);
    calls += 6;
    if (::testing::Test::HasFailure()) return;
  }
  weft_test::report_figure("lost_wakeup_rounds", calls);
}

// abort() racing threads arriving at a Barrier (untimed, timed 1 h, cancellable): each
// returns, with an index if its cycle completed before the abort, else BrokenBarrierError;
// after reset() a full cycle completes.
TEST(LostWakeUp, BarrierAbortRacingWait) {
  const long n = rounds(600, 60);
  long waits = 0;
  weft::Barrier barrier(4);
  for (long round = 0; round < n; ++round) {
    std::latch go(4);
    std::stop_source stop;
    std::atomic<int> passed{0}, broken{0};
    Threads threads(3, [&](std::size_t w) {
      go.arrive_and_wait();
      try {
        switch (w) {
          case 0:
            (void)barrier.wait();
            break;
          case 1:
            (void)barrier.wait(1h);
            break;
          default:
            (void)barrier.wait(stop.get_token());
            break;
        }
        ++passed;
      } catch (const weft::BrokenBarrierError&) {
        ++broken;
      }
    });
    go.arrive_and_wait();
    barrier.abort();
    EXPECT_TRUE(weft_test::eventually([&] { return threads.finished_count() == 3; }, 30s))
        << "a wait stayed blocked after abort() (round " << round << ")";
    if (threads.finished_count() != 3) stop.request_stop();
    threads.join();
    // Three parties of four never complete a cycle on their own.
    EXPECT_EQ(passed.load(), 0);
    EXPECT_EQ(broken.load(), 3);
    barrier.reset();
    EXPECT_FALSE(barrier.broken());
    // A full cycle works after the reset.
    Threads cycle(3, [&](std::size_t) { (void)barrier.wait(); });
    (void)barrier.wait();
    cycle.join();
    waits += 7;
    if (::testing::Test::HasFailure()) return;
  }
  weft_test::report_figure("lost_wakeup_rounds", waits);
}

}  // namespace
