// SPDX-License-Identifier: MIT
// Conformance tests for weft::RLock, ported from CPython's lock_tests.BaseLockTests and
// RLockTests, plus the C++ contract: owner-only release, TimedLockable, lifetime.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <mutex>
#include <semaphore>
#include <stdexcept>
#include <type_traits>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/lock.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::wait_blocked;

static_assert(!std::is_copy_constructible_v<weft::RLock>);
static_assert(!std::is_copy_assignable_v<weft::RLock>);

static_assert(weft_test::TimedLockable<weft::RLock>);

// Whether some other thread can take `lock` right now (it then releases it again).
bool free_for_others(weft::RLock& lock) {
  bool got = false;
  Threads other(1, [&](std::size_t) {
    got = lock.acquire(false);
    if (got) lock.release();
  });
  other.join();
  return got;
}

TEST(RLock, AcquireRelease) {
  weft::RLock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_FALSE(free_for_others(lock));
  lock.release();
  EXPECT_TRUE(free_for_others(lock));
}

TEST(RLock, DestroyWhileHeld) {
  auto* lock = new weft::RLock;
  EXPECT_TRUE(lock->acquire());
  EXPECT_TRUE(lock->acquire());
  delete lock;
}

// CPython RLockTests.test_reacquire and test_recursion_count: the owner may acquire
// again, and must release once per acquire.
TEST(RLock, Reentrant) {
  weft::RLock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_TRUE(lock.acquire(0s));
  EXPECT_TRUE(lock.try_lock());
  EXPECT_TRUE(lock.try_lock_for(0s));
  EXPECT_TRUE(lock.try_lock_until(Clock::now() - 1s));
  // Seven acquisitions: six releases leave it held, the seventh frees it.
  for (int i = 0; i < 6; ++i) {
    lock.release();
    EXPECT_FALSE(free_for_others(lock)) << "after " << (i + 1) << " releases of 7";
  }
  lock.release();
  EXPECT_TRUE(free_for_others(lock));
  EXPECT_THROW(lock.release(), std::logic_error);
}

TEST(RLock, DeepRecursion) {
  weft::RLock lock;
  constexpr int kDepth = 10000;
  for (int i = 0; i < kDepth; ++i) ASSERT_TRUE(lock.acquire());
  for (int i = 0; i < kDepth; ++i) ASSERT_NO_THROW(lock.release());
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_TRUE(free_for_others(lock));
}

// CPython test_release_unacquired.
TEST(RLock, ReleaseUnheldThrowsLogicError) {
  weft::RLock lock;
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_THROW(lock.unlock(), std::logic_error);
  lock.acquire();
  lock.acquire();
  lock.release();
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error);
  // Nothing changed: the lock is free and works.
  EXPECT_TRUE(free_for_others(lock));
  EXPECT_TRUE(lock.acquire(false));
  lock.release();
}

// CPython RLockTests.test_different_thread: only the owner may release.
TEST(RLock, ReleaseByNonOwnerThrowsLogicError) {
  weft::RLock lock;
  std::latch acquired(1), may_release(1);
  Threads owner(1, [&](std::size_t) {
    lock.acquire();
    acquired.count_down();
    may_release.wait();
    EXPECT_NO_THROW(lock.release());
  });
  acquired.wait();
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_THROW(lock.unlock(), std::logic_error);
  // The failed release left the owner's hold intact.
  EXPECT_FALSE(lock.acquire(false));
  may_release.count_down();
  owner.join();
  EXPECT_TRUE(lock.acquire(false));
  lock.release();
}

TEST(RLock, ReleaseByNonOwnerDoesNotDisturbDepth) {
  weft::RLock lock;
  std::latch acquired(1), may_release(1);
  Threads owner(1, [&](std::size_t) {
    lock.acquire();
    lock.acquire();
    acquired.count_down();
    may_release.wait();
    EXPECT_NO_THROW(lock.release());
    EXPECT_NO_THROW(lock.release());
    EXPECT_THROW(lock.release(), std::logic_error);
  });
  acquired.wait();
  for (int i = 0; i < 3; ++i) EXPECT_THROW(lock.release(), std::logic_error);
  may_release.count_down();
}

TEST(RLock, NonBlockingAcquireContended) {
  weft::RLock lock;
  lock.acquire();
  std::atomic<int> got{0};
  {
    Threads others(3, [&](std::size_t) {
      if (lock.acquire(false)) got.fetch_add(1);
      if (lock.try_lock()) got.fetch_add(1);
    });
  }
  EXPECT_EQ(got.load(), 0);
  lock.release();
}

// A blocked acquirer waits until the owner has released every level.
TEST(RLock, AcquireContendedWaitsForFullRelease) {
  weft::RLock lock;
  lock.acquire();
  lock.acquire();
  std::atomic<bool> got{false};
  Threads other(1, [&](std::size_t) {
    lock.acquire();
    got.store(true);
    lock.acquire();  // reentrant in the new owner too
    lock.release();
    lock.release();
  });
  ASSERT_TRUE(wait_blocked(other.tid(0)));
  lock.release();
  // Still held once: the other thread must still be parked.
  ASSERT_TRUE(wait_blocked(other.tid(0)));
  EXPECT_FALSE(got.load());
  lock.release();
  other.join();
  EXPECT_TRUE(got.load());
  EXPECT_TRUE(free_for_others(lock));
}

TEST(RLock, TimedAcquireByNonOwner) {
  weft::RLock lock;
  lock.acquire();
  {
    Threads other(1, [&](std::size_t) {
      auto start = Clock::now();
      EXPECT_FALSE(lock.acquire(0s));
      EXPECT_FALSE(lock.acquire(-1s));
      EXPECT_FALSE(lock.try_lock_until(Clock::now() - 1s));
      EXPECT_TRUE(returned_promptly(elapsed_since(start)));
      start = Clock::now();
      EXPECT_FALSE(lock.acquire(50ms));
      EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
      start = Clock::now();
      EXPECT_FALSE(lock.try_lock_for(50ms));
      EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
      start = Clock::now();
      EXPECT_FALSE(lock.try_lock_until(std::chrono::system_clock::now() + 50ms));
      EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
      // A failed acquire must not have made this thread an owner.
      EXPECT_THROW(lock.release(), std::logic_error);
    });
  }
  lock.release();
  EXPECT_TRUE(free_for_others(lock));
}

TEST(RLock, TimedAcquireSucceedsWhenReleasedInTime) {
  weft::RLock lock;
  lock.acquire();
  std::atomic<int> result{-1};
  Threads waiter(1, [&](std::size_t) {
    result.store(lock.acquire(60s) ? 1 : 0);
    if (result.load() == 1) lock.release();
  });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  EXPECT_EQ(result.load(), -1);
  lock.release();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
}

TEST(RLock, WorksWithScopedLockAndUniqueLock) {
  weft::RLock a, b;
  {
    std::scoped_lock outer(a, b);
    std::scoped_lock inner(a);  // reentrant
    std::unique_lock<weft::RLock> again(b, std::try_to_lock);
    EXPECT_TRUE(again.owns_lock());
    EXPECT_FALSE(free_for_others(a));
  }
  EXPECT_TRUE(free_for_others(a));
  EXPECT_TRUE(free_for_others(b));
  {
    std::unique_lock<weft::RLock> guard(a, std::defer_lock);
    EXPECT_TRUE(guard.try_lock_for(10ms));
    EXPECT_FALSE(free_for_others(a));
  }
  EXPECT_TRUE(free_for_others(a));
  try {
    std::scoped_lock guard(a);
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(free_for_others(a));
}

TEST(RLock, MutualExclusion) {
  weft::RLock lock;
  constexpr std::size_t kThreads = 4;
  const std::size_t per_thread = scaled(20000, 2000);
  long long counter = 0;
  int inside = 0;
  {
    Threads workers(kThreads, [&](std::size_t) {
      for (std::size_t i = 0; i < per_thread; ++i) {
        lock.acquire();
        lock.acquire();
        EXPECT_EQ(++inside, 1);
        ++counter;
        --inside;
        lock.release();
        lock.release();
      }
    });
  }
  EXPECT_EQ(counter, static_cast<long long>(kThreads * per_thread));
}

// docs/api.md, Lifetime: a thread woken by release() may destroy the RLock at once.
TEST(RLockLifetime, WokenAcquirerMayDestroyRLockAtOnce) {
  const std::size_t rounds = scaled(2000, 200);
  std::atomic<weft::RLock*> current{nullptr};
  std::binary_semaphore go{0}, done{0};
  Threads waiter(1, [&](std::size_t) {
    for (std::size_t r = 0; r < rounds; ++r) {
      go.acquire();
      weft::RLock* lock = current.load();
      EXPECT_TRUE(lock->acquire());
      lock->release();
      delete lock;
      done.release();
    }
  });
  for (std::size_t r = 0; r < rounds; ++r) {
    auto* lock = new weft::RLock;
    lock->acquire();
    lock->acquire();
    current.store(lock);
    go.release();
    if (r % 4 == 0) {
      ASSERT_TRUE(wait_blocked(waiter.tid(0)));
    }
    lock->release();
    lock->release();
    done.acquire();
  }
}

}  // namespace
