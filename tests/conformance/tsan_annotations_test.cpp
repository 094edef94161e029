// SPDX-License-Identifier: MIT
// Under ThreadSanitizer, weft's RLock is annotated as a mutex (__tsan_mutex_*, see
// weft/detail/diag_hooks.hpp): TSAN's own lock-order checker then reports an inversion of
// two RLocks. Skipped in builds without TSAN.
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
