// SPDX-License-Identifier: MIT
// Conformance tests for weft::Lock, ported from CPython's lock_tests.BaseLockTests and
// LockTests, plus the C++ contract: TimedLockable, std::logic_error, lifetime.
#include "weft/lock.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <semaphore>
#include <stdexcept>
#include <type_traits>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::wait_blocked;

static_assert(!std::is_copy_constructible_v<weft::Lock>);
static_assert(!std::is_copy_assignable_v<weft::Lock>);
static_assert(noexcept(std::declval<const weft::Lock&>().locked()));

static_assert(weft_test::TimedLockable<weft::Lock>);

TEST(Lock, StartsUnlocked) {
  weft::Lock lock;
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, AcquireRelease) {
  weft::Lock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire(true));
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

// CPython test_acquire_destroy: destroying a held Lock is fine.
TEST(Lock, DestroyWhileHeld) {
  auto* lock = new weft::Lock;
  EXPECT_TRUE(lock->acquire());
  delete lock;
}

TEST(Lock, NonBlockingAcquire) {
  weft::Lock lock;
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_FALSE(lock.acquire(false)) << "a Lock is not reentrant";
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, NonBlockingAcquireContended) {
  weft::Lock lock;
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

// CPython test_acquire_contended: blocked acquirers all get through once released.
TEST(Lock, AcquireContended) {
  weft::Lock lock;
  lock.acquire();
  constexpr std::size_t kThreads = 5;
  std::atomic<int> passed{0};
  Threads others(kThreads, [&](std::size_t) {
    lock.acquire();
    passed.fetch_add(1);
    lock.release();
  });
  ASSERT_TRUE(wait_blocked(others.tids()));
  EXPECT_EQ(passed.load(), 0);
  EXPECT_EQ(others.finished_count(), 0u);
  lock.release();
  others.join();
  EXPECT_EQ(passed.load(), static_cast<int>(kThreads));
  EXPECT_FALSE(lock.locked());
}

// CPython test_reacquire: a second acquire blocks until some thread releases.
TEST(Lock, ReacquireBlocksUntilReleased) {
  weft::Lock lock;
  lock.acquire();
  std::atomic<bool> got{false};
  Threads other(1, [&](std::size_t) {
    lock.acquire();
    got.store(true);
    lock.release();
  });
  ASSERT_TRUE(wait_blocked(other.tid(0)));
  EXPECT_FALSE(got.load());
  lock.release();
  other.join();
  EXPECT_TRUE(got.load());
}

// CPython test_different_thread: a Lock is not owned; another thread may release it.
TEST(Lock, ReleaseFromAnotherThread) {
  weft::Lock lock;
  {
    Threads other(1, [&](std::size_t) { EXPECT_TRUE(lock.acquire()); });
  }
  EXPECT_TRUE(lock.locked());
  EXPECT_NO_THROW(lock.release());
  EXPECT_FALSE(lock.locked());

  lock.acquire();
  {
    Threads other(1, [&](std::size_t) { EXPECT_NO_THROW(lock.release()); });
  }
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire(false));
  lock.release();
}

// Release by another thread wakes a blocked acquirer (the Lock as a binary semaphore).
TEST(Lock, ReleaseFromAnotherThreadWakesAcquirer) {
  weft::Lock lock;
  lock.acquire();
  std::atomic<bool> got{false};
  Threads waiter(1, [&](std::size_t) {
    EXPECT_TRUE(lock.acquire());
    got.store(true);
  });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  {
    Threads releaser(1, [&](std::size_t) { lock.release(); });
  }
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_TRUE(lock.locked());
  lock.release();
}

TEST(Lock, ReleaseUnlockedThrowsLogicError) {
  weft::Lock lock;
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.unlock(), std::logic_error);
  lock.acquire();
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error);
  // The failed release changed nothing.
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_FALSE(lock.acquire(false));
  lock.release();
}

TEST(Lock, TimedAcquire) {
  weft::Lock lock;
  auto start = Clock::now();
  EXPECT_TRUE(lock.acquire(50ms)) << "a free lock is taken at once";
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  start = Clock::now();
  EXPECT_FALSE(lock.acquire(0s));
  EXPECT_FALSE(lock.acquire(-1s));
  EXPECT_FALSE(lock.acquire(0ns));
  EXPECT_FALSE(lock.try_lock_for(0s));
  EXPECT_FALSE(lock.try_lock_until(Clock::now() - 1s));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  start = Clock::now();
  EXPECT_FALSE(lock.acquire(50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(lock.try_lock_for(50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(lock.try_lock_until(Clock::now() + 50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(lock.try_lock_until(std::chrono::system_clock::now() + 50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  lock.release();
}

// CPython test_timeout, from another thread: the timed-out acquire leaves the holder's
// lock alone (test_state_after_timeout).
TEST(Lock, StateAfterTimeout) {
  weft::Lock lock;
  lock.acquire();
  {
    Threads other(1, [&](std::size_t) {
      const auto start = Clock::now();
      EXPECT_FALSE(lock.acquire(100ms));
      EXPECT_TRUE(took_about(elapsed_since(start), 100ms));
    });
  }
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire(false));
  lock.release();
}

TEST(Lock, TimedAcquireSucceedsWhenReleasedInTime) {
  weft::Lock lock;
  lock.acquire();
  std::atomic<int> result{-1};
  Threads waiter(1, [&](std::size_t) { result.store(lock.acquire(60s) ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  EXPECT_EQ(result.load(), -1);
  lock.release();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
  EXPECT_TRUE(lock.locked());
  lock.release();
}

TEST(Lock, WorksWithScopedLockAndUniqueLock) {
  weft::Lock a, b;
  {
    std::scoped_lock guard(a, b);
    EXPECT_TRUE(a.locked());
    EXPECT_TRUE(b.locked());
  }
  EXPECT_FALSE(a.locked());
  EXPECT_FALSE(b.locked());
  {
    std::unique_lock<weft::Lock> guard(a);
    EXPECT_TRUE(a.locked());
    guard.unlock();
    EXPECT_FALSE(a.locked());
    EXPECT_TRUE(guard.try_lock_for(10ms));
    EXPECT_TRUE(a.locked());
  }
  EXPECT_FALSE(a.locked());
  {
    a.acquire();
    std::unique_lock<weft::Lock> guard(a, std::try_to_lock);
    EXPECT_FALSE(guard.owns_lock());
    a.release();
  }
  {
    std::unique_lock<weft::Lock> guard(a, std::defer_lock);
    EXPECT_TRUE(guard.try_lock_until(Clock::now() + 10ms));
  }
  EXPECT_FALSE(a.locked());
  // std::lock avoids deadlock when two threads take the same pair in opposite orders.
  {
    const std::size_t rounds = scaled(2000, 200);
    Threads both(2, [&](std::size_t i) {
      for (std::size_t r = 0; r < rounds; ++r) {
        if (i == 0) {
          std::scoped_lock guard(a, b);
        } else {
          std::scoped_lock guard(b, a);
        }
      }
    });
  }
  EXPECT_FALSE(a.locked());
  EXPECT_FALSE(b.locked());
}

// The scoped_lock releases on an exception (CPython test_with).
TEST(Lock, ScopedLockReleasesOnException) {
  weft::Lock lock;
  try {
    std::scoped_lock guard(lock);
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, WorksWithConditionVariableAny) {
  weft::Lock lock;
  std::condition_variable_any cv;
  bool ready = false;
  Threads waiter(1, [&](std::size_t) {
    std::unique_lock<weft::Lock> guard(lock);
    cv.wait(guard, [&] { return ready; });
    EXPECT_TRUE(lock.locked());
  });
  {
    std::scoped_lock guard(lock);
    ready = true;
  }
  cv.notify_all();
}

TEST(Lock, MutualExclusion) {
  weft::Lock lock;
  constexpr std::size_t kThreads = 4;
  const std::size_t per_thread = scaled(20000, 2000);
  long long counter = 0;  // deliberately not atomic: the lock is what protects it
  int inside = 0;
  {
    Threads workers(kThreads, [&](std::size_t) {
      for (std::size_t i = 0; i < per_thread; ++i) {
        lock.acquire();
        EXPECT_EQ(++inside, 1);
        ++counter;
        --inside;
        lock.release();
      }
    });
  }
  EXPECT_EQ(counter, static_cast<long long>(kThreads * per_thread));
}

// docs/api.md, Lifetime: a thread woken by release() may destroy the primitive at once.
TEST(LockLifetime, WokenAcquirerMayDestroyLockAtOnce) {
  const std::size_t rounds = scaled(2000, 200);
  std::atomic<weft::Lock*> current{nullptr};
  std::binary_semaphore go{0}, done{0};
  Threads waiter(1, [&](std::size_t) {
    for (std::size_t r = 0; r < rounds; ++r) {
      go.acquire();
      weft::Lock* lock = current.load();
      EXPECT_TRUE(lock->acquire());
      delete lock;  // destroying a held Lock is allowed (test DestroyWhileHeld)
      done.release();
    }
  });
  for (std::size_t r = 0; r < rounds; ++r) {
    auto* lock = new weft::Lock;
    lock->acquire();
    current.store(lock);
    go.release();
    if (r % 4 == 0) {
      ASSERT_TRUE(wait_blocked(waiter.tid(0)));
    }
    lock->release();
    done.acquire();
  }
}

}  // namespace
