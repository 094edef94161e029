// SPDX-License-Identifier: MIT
// Conformance tests for weft::Semaphore and weft::BoundedSemaphore, ported from CPython's
// lock_tests.BaseSemaphoreTests, SemaphoreTests and BoundedSemaphoreTests.
#include "weft/semaphore.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::eventually;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::wait_blocked;

static_assert(!std::is_copy_constructible_v<weft::Semaphore>);
static_assert(!std::is_copy_assignable_v<weft::Semaphore>);
static_assert(!std::is_copy_constructible_v<weft::BoundedSemaphore>);
static_assert(!std::is_convertible_v<std::size_t, weft::Semaphore>, "explicit constructor");
static_assert(!std::is_convertible_v<std::size_t, weft::BoundedSemaphore>, "explicit constructor");

// How many permits are available: takes them all without blocking, then gives them back.
template <class Sem>
std::size_t drain_count(Sem& sem) {
  std::size_t n = 0;
  while (sem.acquire(false)) ++n;
  if (n > 0) sem.release(n);
  return n;
}

template <class Sem>
class SemaphoreTest : public ::testing::Test {};

using SemaphoreKinds = ::testing::Types<weft::Semaphore, weft::BoundedSemaphore>;
class SemaphoreNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, weft::Semaphore> ? "Semaphore" : "BoundedSemaphore";
  }
};
TYPED_TEST_SUITE(SemaphoreTest, SemaphoreKinds, SemaphoreNames);

// CPython test_acquire.
TYPED_TEST(SemaphoreTest, AcquireRelease) {
  TypeParam one(1);
  EXPECT_TRUE(one.acquire());
  one.release();
  TypeParam two(2);
  EXPECT_TRUE(two.acquire());
  EXPECT_TRUE(two.acquire());
  two.release();
  two.release();
  EXPECT_EQ(drain_count(two), 2u);
}

// CPython test_acquire_destroy.
TYPED_TEST(SemaphoreTest, DestroyWhileAcquired) {
  auto* sem = new TypeParam;
  EXPECT_TRUE(sem->acquire());
  delete sem;
}

// CPython test_default_value: the default is 1.
TYPED_TEST(SemaphoreTest, DefaultValueIsOne) {
  TypeParam sem;
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  std::atomic<bool> got{false};
  Threads other(1, [&](std::size_t) {
    sem.acquire();
    got.store(true);
    sem.release();
  });
  ASSERT_TRUE(wait_blocked(other.tid(0)));
  EXPECT_FALSE(got.load());
  sem.release();
  other.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(drain_count(sem), 1u);
}

TYPED_TEST(SemaphoreTest, ZeroValueBlocksUntilRelease) {
  TypeParam sem(0);
  EXPECT_FALSE(sem.acquire(false));
  if constexpr (std::is_same_v<TypeParam, weft::BoundedSemaphore>) {
    EXPECT_THROW(sem.release(), std::logic_error) << "a BoundedSemaphore(0) never releases";
  } else {
    std::atomic<bool> got{false};
    Threads other(1, [&](std::size_t) {
      EXPECT_TRUE(sem.acquire());
      got.store(true);
    });
    ASSERT_TRUE(wait_blocked(other.tid(0)));
    EXPECT_FALSE(got.load());
    sem.release();
    other.join();
    EXPECT_TRUE(got.load());
    EXPECT_FALSE(sem.acquire(false));
  }
}

// CPython test_try_acquire.
TYPED_TEST(SemaphoreTest, NonBlockingAcquire) {
  TypeParam sem(2);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  sem.release();
  EXPECT_TRUE(sem.acquire(false));
  sem.release(2);
}

// CPython test_try_acquire_contended.
TYPED_TEST(SemaphoreTest, NonBlockingAcquireContended) {
  TypeParam sem(4);
  sem.acquire();
  std::atomic<int> yes{0}, no{0};
  {
    Threads others(5, [&](std::size_t) {
      for (int i = 0; i < 2; ++i) (sem.acquire(false) ? yes : no).fetch_add(1);
    });
  }
  EXPECT_EQ(yes.load(), 3);
  EXPECT_EQ(no.load(), 7);
}

// CPython test_acquire_timeout.
TYPED_TEST(SemaphoreTest, TimedAcquire) {
  TypeParam sem(2);
  EXPECT_TRUE(sem.acquire(5ms));
  EXPECT_TRUE(sem.acquire(5ms));
  auto start = Clock::now();
  EXPECT_FALSE(sem.acquire(5ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 5ms));
  sem.release();
  EXPECT_TRUE(sem.acquire(5ms));

  start = Clock::now();
  EXPECT_FALSE(sem.acquire(0s));
  EXPECT_FALSE(sem.acquire(-1s));
  EXPECT_FALSE(sem.acquire(0ns));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  start = Clock::now();
  EXPECT_FALSE(sem.acquire(100ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 100ms));
  sem.release(2);
  EXPECT_EQ(drain_count(sem), 2u) << "timed-out acquires took nothing";
}

TYPED_TEST(SemaphoreTest, TimedAcquireSucceedsWhenReleasedInTime) {
  TypeParam sem(1);
  sem.acquire();
  std::atomic<int> result{-1};
  Threads waiter(1, [&](std::size_t) { result.store(sem.acquire(60s) ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  EXPECT_EQ(result.load(), -1);
  sem.release();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
  EXPECT_FALSE(sem.acquire(false));
}

// CPython test_acquire_contended and test_multirelease, with the phases made
// deterministic: each phase waits until the expected acquisitions are counted and every
// thread is parked again, so a release of n permits is seen to let exactly n through.
// `release(sem, n)` gives n permits back, one call each or all in one call.
template <class Sem, class Release>
void contended_phases(Release release) {
  constexpr std::size_t kValue = 7;
  constexpr std::size_t kThreads = 10;
  Sem sem(kValue);
  sem.acquire();
  std::atomic<std::size_t> acquired{0};
  std::latch may_exit(1);
  Threads workers(kThreads, [&](std::size_t) {
    for (int i = 0; i < 2; ++i) {
      EXPECT_TRUE(sem.acquire());
      acquired.fetch_add(1);
    }
    may_exit.wait();  // parked, so that wait_blocked() can see the whole bunch settle
  });
  auto settle = [&](std::size_t expected) {
    EXPECT_TRUE(eventually([&] { return acquired.load() >= expected; }));
    EXPECT_TRUE(wait_blocked(workers.tids()));
    EXPECT_EQ(acquired.load(), expected);
  };
  settle(kValue - 1);  // phase 0: the free permits are taken, then everyone blocks
  release(sem, kValue);
  settle(2 * kValue - 1);  // phase 1
  release(sem, kValue - 1);
  settle(3 * kValue - 2);  // phase 2
  EXPECT_FALSE(sem.acquire(false)) << "the semaphore is still exhausted";
  release(sem, 1);
  settle(2 * kThreads);
  may_exit.count_down();
}

TYPED_TEST(SemaphoreTest, AcquireContendedPhases) {
  contended_phases<TypeParam>([](TypeParam& sem, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) sem.release();
  });
}

TYPED_TEST(SemaphoreTest, MultiReleasePhases) {
  contended_phases<TypeParam>([](TypeParam& sem, std::size_t n) { sem.release(n); });
}

// release(n) with fewer than n waiters leaves the surplus as permits.
TYPED_TEST(SemaphoreTest, MultiReleaseSurplusStaysAvailable) {
  TypeParam sem(5);
  for (int i = 0; i < 5; ++i) sem.acquire();
  std::atomic<int> got{0};
  Threads waiters(2, [&](std::size_t) {
    sem.acquire();
    got.fetch_add(1);
  });
  ASSERT_TRUE(wait_blocked(waiters.tids()));
  sem.release(5);
  waiters.join();
  EXPECT_EQ(got.load(), 2);
  EXPECT_EQ(drain_count(sem), 3u);
}

// release(0) is a programming error (Python: ValueError), and changes nothing.
TYPED_TEST(SemaphoreTest, ReleaseZeroThrowsInvalidArgument) {
  TypeParam sem(2);
  sem.acquire();
  EXPECT_THROW(sem.release(0), std::invalid_argument);
  try {
    sem.release(0);
    ADD_FAILURE() << "release(0) did not throw";
  } catch (const std::logic_error&) {
    // std::invalid_argument is a std::logic_error: a programming error.
  }
  EXPECT_EQ(drain_count(sem), 1u);
}

TYPED_TEST(SemaphoreTest, ReleaseFromAnotherThreadWakesAcquirer) {
  TypeParam sem(1);
  sem.acquire();
  std::atomic<bool> got{false};
  Threads waiter(1, [&](std::size_t) {
    sem.acquire();
    got.store(true);
  });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  {
    Threads releaser(1, [&](std::size_t) { sem.release(); });
  }
  waiter.join();
  EXPECT_TRUE(got.load());
}

TYPED_TEST(SemaphoreTest, ReleaseIsVisibleToAcquirer) {
  // Memory ordering (TSAN checks): writes before release() are seen after acquire().
  TypeParam sem(1);
  sem.acquire();
  int payload = 0;
  Threads waiter(1, [&](std::size_t) {
    sem.acquire();
    EXPECT_EQ(payload, 7);
  });
  payload = 7;
  sem.release();
}

// A counting resource: never more than `value` holders at once.
TYPED_TEST(SemaphoreTest, LimitsConcurrency) {
  constexpr std::size_t kLimit = 3;
  TypeParam sem(kLimit);
  std::atomic<int> inside{0}, most{0};
  const std::size_t rounds = scaled(2000, 300);
  {
    Threads workers(6, [&](std::size_t) {
      for (std::size_t r = 0; r < rounds; ++r) {
        sem.acquire();
        const int now = inside.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        EXPECT_LE(now, static_cast<int>(kLimit));
        inside.fetch_sub(1);
        sem.release();
      }
    });
  }
  EXPECT_LE(most.load(), static_cast<int>(kLimit));
  EXPECT_EQ(drain_count(sem), kLimit);
}

// ---------------------------------------------------------------------------------
// Semaphore only: releases beyond the initial value are allowed.

// CPython SemaphoreTests.test_release_unacquired.
TEST(Semaphore, ReleaseBeyondInitialValue) {
  weft::Semaphore sem(1);
  sem.release();
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  sem.release(10);
  EXPECT_EQ(drain_count(sem), 10u);
}

// ---------------------------------------------------------------------------------
// BoundedSemaphore only: a release past the initial value throws and changes nothing.

// CPython BoundedSemaphoreTests.test_release_unacquired.
TEST(BoundedSemaphore, OverReleaseThrowsLogicError) {
  weft::BoundedSemaphore sem;
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(drain_count(sem), 1u) << "the refused release changed the value";
  sem.acquire();
  sem.release();
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(drain_count(sem), 1u);
}

TEST(BoundedSemaphore, OverReleaseByManyIsRefusedWhole) {
  weft::BoundedSemaphore sem(3);
  sem.acquire();
  EXPECT_THROW(sem.release(2), std::logic_error);  // 2 + 2 > 3: nothing released
  EXPECT_EQ(drain_count(sem), 2u);
  sem.acquire();
  sem.acquire();
  sem.acquire(false);
  EXPECT_THROW(sem.release(4), std::logic_error);
  EXPECT_FALSE(sem.acquire(false)) << "a refused release(4) released some permits";
  EXPECT_NO_THROW(sem.release(3));
  EXPECT_EQ(drain_count(sem), 3u);
  EXPECT_THROW(sem.release(0), std::invalid_argument);
}

// The bound holds also through a Semaphore& (release is not hidden by a derived overload).
TEST(BoundedSemaphore, BoundHoldsThroughBaseReference) {
  weft::BoundedSemaphore bounded(2);
  weft::Semaphore& sem = bounded;
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(drain_count(bounded), 2u);
}

// Over-release refused while waiters are blocked: those waiters are not woken by it.
TEST(BoundedSemaphore, RefusedReleaseWakesNobody) {
  weft::BoundedSemaphore sem(1);
  sem.acquire();
  std::atomic<int> got{0};
  Threads waiter(1, [&](std::size_t) {
    sem.acquire();
    got.fetch_add(1);
  });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  EXPECT_THROW(sem.release(2), std::logic_error);
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  EXPECT_EQ(got.load(), 0);
  sem.release();
  waiter.join();
  EXPECT_EQ(got.load(), 1);
}

// ---------------------------------------------------------------------------------
// Lifetime: a thread woken by release() may destroy the semaphore at once.

TYPED_TEST(SemaphoreTest, WokenAcquirerMayDestroySemaphoreAtOnce) {
  const std::size_t rounds = scaled(2000, 200);
  std::atomic<TypeParam*> current{nullptr};
  std::binary_semaphore go{0}, done{0};
  Threads waiter(1, [&](std::size_t) {
    for (std::size_t r = 0; r < rounds; ++r) {
      go.acquire();
      TypeParam* sem = current.load();
      EXPECT_TRUE(sem->acquire());
      delete sem;
      done.release();
    }
  });
  for (std::size_t r = 0; r < rounds; ++r) {
    auto* sem = new TypeParam(1);
    sem->acquire();
    current.store(sem);
    go.release();
    if (r % 4 == 0) {
      ASSERT_TRUE(wait_blocked(waiter.tid(0)));
    }
    sem->release();
    done.acquire();
  }
}

// release(n) waking several: the last one out destroys the semaphore.
TYPED_TEST(SemaphoreTest, LastWokenAcquirerMayDestroySemaphore) {
  const std::size_t rounds = scaled(300, 40);
  for (std::size_t r = 0; r < rounds; ++r) {
    auto* sem = new TypeParam(3);
    for (int i = 0; i < 3; ++i) sem->acquire();
    std::atomic<int> remaining{3};
    Threads waiters(3, [&](std::size_t) {
      EXPECT_TRUE(sem->acquire());
      if (remaining.fetch_sub(1) == 1) delete sem;
    });
    if (r % 4 == 0) {
      ASSERT_TRUE(wait_blocked(waiters.tids()));
    }
    sem->release(3);
  }
}

}  // namespace
