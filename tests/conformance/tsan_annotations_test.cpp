// SPDX-License-Identifier: MIT
// Under ThreadSanitizer, weft's RLock and Lock are annotated as mutexes (__tsan_mutex_*, see
// weft/detail/diag_hooks.hpp and Lock's tsan_* members): TSAN's own lock-order checker then
// reports an inversion of two of them, and a Lock released by another thread is no misuse.
// The death tests are skipped in builds without TSAN; the others run everywhere.
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "weft/condition.hpp"
#include "weft/lock.hpp"

namespace {

#ifdef WEFT_TSAN_MUTEX
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

// Takes a then b, then b then a: a potential deadlock TSAN reports (in the child; TSAN
// then makes it exit with its exit code, 66).
void invert_order() {
  weft::RLock a{"a"};
  weft::RLock b{"b"};
  a.acquire();
  b.acquire();
  b.release();
  a.release();
  b.acquire();
  a.acquire();
  a.release();
  b.release();
  ::_exit(0);
}

TEST(TsanAnnotationsDeathTest, RLockOrderInversionIsReportedByTsan) {
  if (!kTsan) GTEST_SKIP() << "not a ThreadSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(invert_order(), ::testing::ExitedWithCode(66), "lock-order-inversion");
}

// The same with two Locks.
void invert_lock_order() {
  weft::Lock a{"a"};
  weft::Lock b{"b"};
  a.acquire();
  b.acquire();
  b.release();
  a.release();
  b.acquire();
  a.acquire();
  a.release();
  b.release();
  ::_exit(0);
}

TEST(TsanAnnotationsDeathTest, LockOrderInversionIsReportedByTsan) {
  if (!kTsan) GTEST_SKIP() << "not a ThreadSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(invert_lock_order(), ::testing::ExitedWithCode(66), "lock-order-inversion");
}

// Two threads incrementing a plain int: first unguarded, which TSAN must report (the
// control), then each increment under a weft Lock, which it must not (the next test).
void count_with(weft::Lock* guard) {
  int counter = 0;  // guarded by *guard when there is one; never atomic
  auto work = [&] {
    for (int i = 0; i < 1000; ++i) {
      if (guard != nullptr) guard->acquire();
      ++counter;
      if (guard != nullptr) guard->release();
    }
  };
  std::thread t(work);
  work();
  t.join();
  ::_exit(guard == nullptr || counter == 2000 ? 0 : 1);
}

TEST(TsanAnnotationsDeathTest, AnUnguardedCounterIsARace) {
  if (!kTsan) GTEST_SKIP() << "not a ThreadSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(count_with(nullptr), ::testing::ExitedWithCode(66), "data race");
}

TEST(TsanAnnotationsDeathTest, ACounterGuardedByALockIsNoRace) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  weft::Lock guard{"guard"};
  EXPECT_EXIT(count_with(&guard), ::testing::ExitedWithCode(0), "");
}

// A Lock released by a thread that did not acquire it (Python's semantics), many times
// over: TSAN reports no misuse (bad unlock, double lock: any report makes TSAN exit with
// 66), and once its acquirer takes and gives it back itself the lock is in TSAN's
// lock-order view again.
void hand_off(bool then_invert) {
  weft::Lock a{"handed-off"};
  for (int i = 0; i < 100; ++i) {
    a.acquire();
    std::thread([&] { a.release(); }).join();
  }
  a.acquire();
  a.release();  // by its acquirer: TSAN's view of `a` is consistent again
  if (then_invert) {
    weft::Lock b{"b"};
    a.acquire();
    b.acquire();
    b.release();
    a.release();
    b.acquire();
    a.acquire();
    a.release();
    b.release();
  }
  ::_exit(a.locked() ? 1 : 0);
}

TEST(TsanAnnotationsDeathTest, ReleaseByAnotherThreadIsNoMisuse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(hand_off(false), ::testing::ExitedWithCode(0), "");
}

TEST(TsanAnnotationsDeathTest, AHandedOffLockIsOrderCheckedAgainAfterwards) {
  if (!kTsan) GTEST_SKIP() << "not a ThreadSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(hand_off(true), ::testing::ExitedWithCode(66), "lock-order-inversion");
}

// A try-lock cannot deadlock: taking a with b held through try_lock() adds no order.
TEST(TsanAnnotations, TryLockInTheOtherOrderIsQuiet) {
  weft::Lock a{"a"};
  weft::Lock b{"b"};
  a.acquire();
  b.acquire();
  b.release();
  a.release();
  b.acquire();
  EXPECT_TRUE(a.try_lock());
  EXPECT_TRUE(a.acquire(false) == false);  // held: a non-blocking acquire fails
  a.release();
  b.release();
  EXPECT_FALSE(a.locked());
}

// The same order twice, recursion and a Condition wait (which gives up every level and
// takes them back): nothing to report.
TEST(TsanAnnotations, ConsistentOrderRecursionAndConditionWaitAreQuiet) {
  weft::RLock a{"a"};
  weft::RLock b{"b"};
  for (int i = 0; i < 2; ++i) {
    a.acquire();
    a.acquire();
    b.acquire();
    b.release();
    a.release();
    a.release();
  }
  weft::Condition c{a};
  a.acquire();
  a.acquire();
  EXPECT_FALSE(c.wait(std::chrono::milliseconds(1)));  // releases both levels, retakes them
  EXPECT_TRUE(a.is_owned());
  a.release();
  a.release();
  EXPECT_FALSE(a.is_owned());
}

}  // namespace
