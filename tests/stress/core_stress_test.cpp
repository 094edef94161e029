// SPDX-License-Identifier: MIT
// Stress tests for the core primitives: many rounds of hand-offs that would hang on a
// lost wake-up, and counters that would be wrong without mutual exclusion. Counts shrink
// under sanitizers (WEFT_SANITIZED). A hang fails through the per-test watchdog of
// sync_helpers.hpp (kWatchdogLimit) instead of blocking CI.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <latch>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/barrier.hpp"
#include "weft/condition.hpp"
#include "weft/errors.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/semaphore.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::scaled;
using weft_test::Threads;

// Two threads hand the turn back and forth through two Events with set()/clear().
// A lost wake-up anywhere hangs the pair.
TEST(CoreStress, EventPingPong) {
  const std::size_t rounds = scaled(100000, 5000);
  weft::Event ping, pong;
  std::size_t worker_rounds = 0;
  {
    Threads worker(1, [&](std::size_t) {
      for (std::size_t r = 0; r < rounds; ++r) {
        ASSERT_TRUE(ping.wait());
        ping.clear();
        ++worker_rounds;  // plain: ordered by the events
        pong.set();
      }
    });
    for (std::size_t r = 0; r < rounds; ++r) {
      ping.set();
      ASSERT_TRUE(pong.wait());
      pong.clear();
      ASSERT_EQ(worker_rounds, r + 1);
    }
  }
  EXPECT_EQ(worker_rounds, rounds);
}

// The same with timed waits, whose slow path differs (deadline, timer wake-ups).
TEST(CoreStress, EventPingPongTimed) {
  const std::size_t rounds = scaled(50000, 3000);
  weft::Event ping, pong;
  std::atomic<std::size_t> worker_rounds{0};
  {
    Threads worker(1, [&](std::size_t) {
      for (std::size_t r = 0; r < rounds; ++r) {
        ASSERT_TRUE(ping.wait(60s));
        ping.clear();
        worker_rounds.fetch_add(1);
        pong.set();
      }
    });
    for (std::size_t r = 0; r < rounds; ++r) {
      ping.set();
      ASSERT_TRUE(pong.wait(60s));
      pong.clear();
    }
  }
  EXPECT_EQ(worker_rounds.load(), rounds);
}

// Many waiters, one setter, set/clear in a loop: every round's waiters are released.
TEST(CoreStress, EventBroadcastRounds) {
  constexpr std::size_t kWaiters = 4;
  const std::size_t rounds = scaled(5000, 300);
  weft::Event go;
  weft::Barrier arrived(kWaiters + 1);
  std::atomic<std::size_t> woken{0};
  {
    Threads waiters(kWaiters, [&](std::size_t) {
      for (std::size_t r = 0; r < rounds; ++r) {
        arrived.wait();  // every waiter has finished the previous round
        ASSERT_TRUE(go.wait());
        woken.fetch_add(1);
        arrived.wait();  // nobody waits on `go` while it is cleared
      }
    });
    for (std::size_t r = 0; r < rounds; ++r) {
      arrived.wait();
      go.set();
      arrived.wait();
      go.clear();
    }
  }
  EXPECT_EQ(woken.load(), kWaiters * rounds);
}

template <class L>
void mutual_exclusion(L& lock, std::size_t per_thread, bool nested) {
  constexpr std::size_t kThreads = 4;
  long long counter = 0;  // not atomic: only the lock protects it (TSAN checks)
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::latch start(kThreads);
  {
    Threads workers(kThreads, [&](std::size_t t) {
      start.arrive_and_wait();  // all contend from the first iteration
      for (std::size_t i = 0; i < per_thread; ++i) {
        // Vary the way in: blocking, timed, and try-spin.
        const std::size_t way = (i + t) % 3;
        if (way == 0) {
          lock.acquire();
        } else if (way == 1) {
          while (!lock.acquire(50ms)) {
          }
        } else {
          while (!lock.acquire(false)) {
          }
        }
        if (nested) lock.acquire();
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        ++counter;
        inside.fetch_sub(1);
        if (nested) lock.release();
        lock.release();
      }
    });
  }
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, static_cast<long long>(kThreads * per_thread));
}

TEST(CoreStress, LockMutualExclusion) {
  weft::Lock lock;
  mutual_exclusion(lock, scaled(200000, 10000), false);
  EXPECT_FALSE(lock.locked());
}

TEST(CoreStress, RLockMutualExclusion) {
  weft::RLock lock;
  mutual_exclusion(lock, scaled(200000, 10000), true);
  EXPECT_THROW(lock.release(), std::logic_error);
}

// A bounded buffer: two Conditions on one Lock (as Python's queue), notify(1) only.
// Every item is consumed exactly once; a lost notification hangs.
TEST(CoreStress, ConditionProducerConsumer) {
  constexpr std::size_t kProducers = 2, kConsumers = 2, kCapacity = 8;
  const std::size_t per_producer = scaled(50000, 3000);
  const std::size_t total = kProducers * per_producer;
  weft::Lock lock;
  weft::Condition not_empty(lock), not_full(lock);
  std::deque<std::uint64_t> buffer;  // guarded by lock
  std::size_t taken = 0;             // guarded by lock
  std::vector<std::atomic<int>> seen(total);
  std::atomic<std::uint64_t> sum{0};
  constexpr std::uint64_t kStop = ~std::uint64_t{0};
  {
    Threads consumers(kConsumers, [&](std::size_t) {
      for (;;) {
        std::uint64_t item;
        {
          std::unique_lock<weft::Lock> guard(lock);
          not_empty.wait_for([&] { return !buffer.empty(); });
          item = buffer.front();
          buffer.pop_front();
          not_full.notify(1);
          if (item == kStop) return;
          ++taken;
        }
        seen[item].fetch_add(1);
        sum.fetch_add(item);
      }
    });
    {
      Threads producers(kProducers, [&](std::size_t p) {
        for (std::size_t i = 0; i < per_producer; ++i) {
          std::unique_lock<weft::Lock> guard(lock);
          while (buffer.size() >= kCapacity) not_full.wait();
          buffer.push_back(p * per_producer + i);
          not_empty.notify(1);
        }
      });
    }
    for (std::size_t c = 0; c < kConsumers; ++c) {
      std::unique_lock<weft::Lock> guard(lock);
      while (buffer.size() >= kCapacity) not_full.wait();
      buffer.push_back(kStop);
      not_empty.notify(1);
    }
  }
  EXPECT_EQ(taken, total);
  EXPECT_EQ(sum.load(), static_cast<std::uint64_t>(total) * (total - 1) / 2);
  for (std::size_t i = 0; i < total; ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
}

// A counting resource: never more than `kLimit` holders, and all permits back at the end.
// With 2 cores, a limit of 1 is what makes threads actually block; 3 exercises counting.
template <class Sem>
void counting_resource(int kLimit) {
  constexpr std::size_t kThreads = 6;
  const std::size_t per_thread = scaled(50000, 3000);
  Sem sem(kLimit);
  std::atomic<int> inside{0}, most{0}, over{0};
  std::latch start(kThreads);
  {
    Threads workers(kThreads, [&](std::size_t t) {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < per_thread; ++i) {
        if ((i + t) % 2 == 0) {
          sem.acquire();
        } else {
          while (!sem.acquire(50ms)) {
          }
        }
        const int now = inside.fetch_add(1) + 1;
        if (now > kLimit) over.fetch_add(1);
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
        sem.release();
      }
    });
  }
  EXPECT_EQ(over.load(), 0);
  EXPECT_LE(most.load(), kLimit);
  int left = 0;
  while (sem.acquire(false)) ++left;
  EXPECT_EQ(left, kLimit);
}

TEST(CoreStress, SemaphoreCountingResource) {
  counting_resource<weft::Semaphore>(1);
  counting_resource<weft::Semaphore>(3);
}
TEST(CoreStress, BoundedSemaphoreCountingResource) {
  counting_resource<weft::BoundedSemaphore>(1);
  counting_resource<weft::BoundedSemaphore>(3);
}

// release(n) batches: a producer hands out permits in batches to 4 consumers.
TEST(CoreStress, SemaphoreBatchedRelease) {
  constexpr std::size_t kConsumers = 4;
  const std::size_t per_consumer = scaled(25000, 2000);
  weft::Semaphore items(0);
  std::atomic<std::size_t> consumed{0};
  {
    Threads consumers(kConsumers, [&](std::size_t) {
      for (std::size_t i = 0; i < per_consumer; ++i) {
        ASSERT_TRUE(items.acquire());
        consumed.fetch_add(1);
      }
    });
    std::size_t released = 0;
    const std::size_t total = kConsumers * per_consumer;
    for (std::size_t batch = 1; released < total; batch = batch % 7 + 1) {
      const std::size_t n = std::min(batch, total - released);
      items.release(n);
      released += n;
    }
  }
  EXPECT_EQ(consumed.load(), kConsumers * per_consumer);
  EXPECT_FALSE(items.acquire(false));
}

TEST(CoreStress, BarrierManyCycles) {
  constexpr std::size_t kThreads = 4;
  const std::size_t cycles = scaled(20000, 1000);
  std::atomic<std::size_t> actions{0};
  weft::Barrier barrier(kThreads, [&] { actions.fetch_add(1); });
  std::vector<std::atomic<std::uint32_t>> index_masks(cycles);
  {
    Threads workers(kThreads, [&](std::size_t) {
      for (std::size_t c = 0; c < cycles; ++c) {
        const std::size_t index = barrier.wait();
        ASSERT_LT(index, kThreads);
        index_masks[c].fetch_or(std::uint32_t{1} << index);
        ASSERT_EQ(actions.load(), c + 1) << "released before the action of cycle " << c;
      }
    });
  }
  EXPECT_EQ(actions.load(), cycles);
  for (std::size_t c = 0; c < cycles; ++c) {
    ASSERT_EQ(index_masks[c].load(), (std::uint32_t{1} << kThreads) - 1) << "cycle " << c;
  }
  EXPECT_FALSE(barrier.broken());
}

}  // namespace
