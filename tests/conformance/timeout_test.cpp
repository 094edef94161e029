// SPDX-License-Identifier: MIT
// The time contract (docs/api.md: Time), checked on every timed call of the core primitives:
//  - a timeout <= 0 polls (also the most negative value of any duration type);
//  - floating-point durations and unusual periods work;
//  - duration::max() of any rep and period, and other huge values, mean "wait forever":
//    the call blocks until another thread releases it and does not return at once;
//  - wait_until takes time points of any clock (system_clock included), and their
//    extremes neither overflow nor return early.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <limits>
#include <ratio>
#include <semaphore>
#include <string>
#include <thread>
#include <type_traits>

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
using std::chrono::duration;
using std::chrono::steady_clock;
using std::chrono::system_clock;
using std::chrono::time_point;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::returned_promptly;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::wait_blocked;

// One blocking call per primitive. Constructed on the test's main thread, which is where
// a Lock/RLock is held; timed()/until() run on another thread and block until release().
// after_success() runs on the waiting thread when the call succeeded.

struct EventWait {
  static constexpr bool has_until = true;
  weft::Event event;
  template <class D>
  bool timed(D d) {
    return event.wait(d);
  }
  template <class TP>
  bool until(TP tp) {
    return event.wait_until(tp);
  }
  void release() { event.set(); }
  void after_success() {}
};

struct LockAcquire {
  static constexpr bool has_until = true;
  weft::Lock lock;
  LockAcquire() { lock.acquire(); }
  template <class D>
  bool timed(D d) {
    return lock.acquire(d);
  }
  template <class TP>
  bool until(TP tp) {
    return lock.try_lock_until(tp);
  }
  void release() { lock.release(); }
  void after_success() { lock.release(); }
};

struct LockTryLockFor {
  static constexpr bool has_until = false;
  weft::Lock lock;
  LockTryLockFor() { lock.acquire(); }
  template <class D>
  bool timed(D d) {
    return lock.try_lock_for(d);
  }
  template <class TP>
  bool until(TP) {
    return false;
  }
  void release() { lock.release(); }
  void after_success() { lock.release(); }
};

struct RLockAcquire {
  static constexpr bool has_until = true;
  weft::RLock lock;
  RLockAcquire() { lock.acquire(); }
  template <class D>
  bool timed(D d) {
    return lock.acquire(d);
  }
  template <class TP>
  bool until(TP tp) {
    return lock.try_lock_until(tp);
  }
  void release() { lock.release(); }
  void after_success() { lock.release(); }
};

struct ConditionWait {
  static constexpr bool has_until = true;
  weft::Condition cond;
  template <class D>
  bool timed(D d) {
    cond.acquire();
    const bool r = cond.wait(d);
    cond.release();
    return r;
  }
  template <class TP>
  bool until(TP tp) {
    cond.acquire();
    const bool r = cond.wait_until(tp);
    cond.release();
    return r;
  }
  void release() {
    cond.acquire();
    cond.notify_all();
    cond.release();
  }
  void after_success() {}
};

struct ConditionWaitFor {
  static constexpr bool has_until = false;
  weft::Lock lock;
  weft::Condition cond{lock};
  bool ready = false;  // guarded by lock
  template <class D>
  bool timed(D d) {
    cond.acquire();
    const bool r = cond.wait_for([this] { return ready; }, d);
    cond.release();
    return r;
  }
  template <class TP>
  bool until(TP) {
    return false;
  }
  void release() {
    cond.acquire();
    ready = true;
    cond.notify_all();
    cond.release();
  }
  void after_success() {}
};

struct SemaphoreAcquire {
  static constexpr bool has_until = false;
  weft::Semaphore sem{0};
  template <class D>
  bool timed(D d) {
    return sem.acquire(d);
  }
  template <class TP>
  bool until(TP) {
    return false;
  }
  void release() { sem.release(); }
  void after_success() {}
};

struct BarrierWait {
  static constexpr bool has_until = false;
  weft::Barrier barrier{2};
  template <class D>
  bool timed(D d) {
    try {
      barrier.wait(d);
      return true;
    } catch (const weft::BrokenBarrierError&) {
      return false;
    }
  }
  template <class TP>
  bool until(TP) {
    return false;
  }
  void release() {
    try {
      barrier.wait();
    } catch (const weft::BrokenBarrierError&) {
    }
  }
  void after_success() {}
};

template <class Op>
class TimeoutTest : public ::testing::Test {
 protected:
  // Runs call(op) on another thread. A call that should return but blocks is reported
  // and then rescued with op.release(), so one failure does not hang the whole binary.
  template <class Call>
  void run_rescued(Op& op, Call call) {
    std::binary_semaphore done(0);
    std::thread t([&] {
      call();
      done.release();
    });
    if (!done.try_acquire_for(10s)) {
      ADD_FAILURE() << "the call blocked (expected it to return by itself)";
      op.release();
      done.acquire();
    }
    t.join();
  }

  // A call that must poll: false, at once.
  template <class Call>
  void expect_polls(Call call, const std::string& what) {
    SCOPED_TRACE(what);
    Op op;
    bool result = true;
    Clock::duration took{};
    run_rescued(op, [&] {
      const auto start = Clock::now();
      result = call(op);
      took = elapsed_since(start);
    });
    EXPECT_FALSE(result);
    EXPECT_TRUE(returned_promptly(took));
  }

  // A call that must time out after about `expected`.
  template <class Call>
  void expect_times_out(Call call, Clock::duration expected, const std::string& what) {
    SCOPED_TRACE(what);
    Op op;
    bool result = true;
    Clock::duration took{};
    run_rescued(op, [&] {
      const auto start = Clock::now();
      result = call(op);
      took = elapsed_since(start);
    });
    EXPECT_FALSE(result);
    EXPECT_TRUE(took_about(took, expected));
  }

  // A call that must wait until released: it is parked and has not returned when the
  // release comes, and then returns true.
  template <class Call>
  void expect_waits_forever(Call call, const std::string& what) {
    SCOPED_TRACE(what);
    Op op;
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) {
      const bool r = call(op);
      result.store(r ? 1 : 0);
      if (r) op.after_success();
    });
    EXPECT_TRUE(wait_blocked(waiter.tid(0))) << "the call did not block";
    EXPECT_EQ(result.load(), -1) << "the call returned before it was released";
    op.release();
    waiter.join();
    EXPECT_EQ(result.load(), 1);
  }

  template <class D>
  void polls_for(D d, const std::string& what) {
    expect_polls([d](Op& op) { return op.timed(d); }, what);
  }
  template <class D>
  void times_out_for(D d, Clock::duration expected, const std::string& what) {
    expect_times_out([d](Op& op) { return op.timed(d); }, expected, what);
  }
  template <class D>
  void forever_for(D d, const std::string& what) {
    expect_waits_forever([d](Op& op) { return op.timed(d); }, what);
  }
  template <class TP>
  void polls_until(TP tp, const std::string& what) {
    expect_polls([tp](Op& op) { return op.until(tp); }, what);
  }
  template <class TP>
  void forever_until(TP tp, const std::string& what) {
    expect_waits_forever([tp](Op& op) { return op.until(tp); }, what);
  }
};

using Ops = ::testing::Types<EventWait, LockAcquire, LockTryLockFor, RLockAcquire, ConditionWait,
                             ConditionWaitFor, SemaphoreAcquire, BarrierWait>;
class OpNames {
 public:
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, EventWait>) return "EventWait";
    if (std::is_same_v<T, LockAcquire>) return "LockAcquire";
    if (std::is_same_v<T, LockTryLockFor>) return "LockTryLockFor";
    if (std::is_same_v<T, RLockAcquire>) return "RLockAcquire";
    if (std::is_same_v<T, ConditionWait>) return "ConditionWait";
    if (std::is_same_v<T, ConditionWaitFor>) return "ConditionWaitFor";
    if (std::is_same_v<T, SemaphoreAcquire>) return "SemaphoreAcquire";
    return "BarrierWait";
  }
};
TYPED_TEST_SUITE(TimeoutTest, Ops, OpNames);

constexpr double kInf = std::numeric_limits<double>::infinity();

TYPED_TEST(TimeoutTest, ZeroAndNegativeTimeoutsPoll) {
  this->polls_for(0s, "0s");
  this->polls_for(0ns, "0ns");
  this->polls_for(-1ns, "-1ns");
  this->polls_for(-1s, "-1s");
  this->polls_for(-24h, "-24h");
  this->polls_for(duration<double>(0.0), "0.0s");
  this->polls_for(duration<double>(-0.5), "-0.5s");
  this->polls_for(duration<float, std::milli>(-1.5f), "-1.5ms float");
}

TYPED_TEST(TimeoutTest, MostNegativeTimeoutsPollWithoutOverflow) {
  this->polls_for(std::chrono::nanoseconds::min(), "nanoseconds::min()");
  this->polls_for(std::chrono::milliseconds::min(), "milliseconds::min()");
  this->polls_for(std::chrono::seconds::min(), "seconds::min()");
  this->polls_for(std::chrono::hours::min(), "hours::min()");
  this->polls_for(duration<double>::min(), "duration<double>::min() (the lowest double)");
  this->polls_for(duration<float, std::ratio<3600>>::min(), "duration<float, hours>::min()");
  this->polls_for(duration<double>(-kInf), "-infinity seconds");
}

TYPED_TEST(TimeoutTest, FloatingPointTimeouts) {
  this->times_out_for(duration<double>(0.05), 50ms, "0.05s as duration<double>");
  this->times_out_for(duration<float, std::milli>(50.0f), 50ms, "50.0f ms");
  this->times_out_for(duration<long double>(0.05L), 50ms, "0.05L s");
  this->times_out_for(duration<double, std::ratio<60>>(0.05 / 60), 50ms, "minutes as double");
}

TYPED_TEST(TimeoutTest, UnusualPeriods) {
  this->times_out_for(duration<int, std::ratio<1, 20>>(1), 50ms, "1/20 s");
  this->times_out_for(duration<short, std::centi>(5), 50ms, "5 cs (short rep)");
  this->times_out_for(duration<unsigned, std::milli>(50), 50ms, "50 ms (unsigned rep)");
  this->times_out_for(duration<long long, std::micro>(50000), 50ms, "50000 us");
}

TYPED_TEST(TimeoutTest, MaxDurationsWaitForever) {
  this->forever_for(std::chrono::nanoseconds::max(), "nanoseconds::max()");
  this->forever_for(std::chrono::microseconds::max(), "microseconds::max()");
  this->forever_for(std::chrono::milliseconds::max(), "milliseconds::max()");
  this->forever_for(std::chrono::seconds::max(), "seconds::max()");
  this->forever_for(std::chrono::minutes::max(), "minutes::max()");
  this->forever_for(std::chrono::hours::max(), "hours::max()");
  this->forever_for(duration<double>::max(), "duration<double>::max()");
  this->forever_for(duration<float>::max(), "duration<float>::max()");
  this->forever_for(duration<long double>::max(), "duration<long double>::max()");
  this->forever_for(duration<double, std::milli>::max(), "duration<double, milli>::max()");
  this->forever_for(duration<unsigned long long, std::ratio<86400>>::max(),
                    "duration<unsigned long long, days>::max()");
  this->forever_for(duration<int, std::ratio<1, 3>>::max(), "duration<int, 1/3 s>::max()");
}

// Not max(), but too large to add to now() in nanoseconds: saturates as well.
TYPED_TEST(TimeoutTest, HugeDurationsWaitForever) {
  this->forever_for(std::chrono::hours(1'000'000'000), "1e9 hours");
  this->forever_for(std::chrono::seconds::max() / 2, "seconds::max() / 2");
  this->forever_for(std::chrono::nanoseconds::max() - 1ns, "nanoseconds::max() - 1ns");
  this->forever_for(duration<double>(1e300), "1e300 s");
  this->forever_for(duration<double>(kInf), "+infinity seconds");
}

TYPED_TEST(TimeoutTest, PastDeadlinesPoll) {
  if constexpr (!TypeParam::has_until) {
    GTEST_SKIP() << "no wait_until form";
  } else {
    this->polls_until(steady_clock::now(), "steady now");
    this->polls_until(steady_clock::now() - 1s, "steady now - 1s");
    this->polls_until(system_clock::now() - 1s, "system now - 1s");
    this->polls_until(time_point<system_clock, duration<double>>(system_clock::now() - 1s),
                      "system now - 1s, double rep");
  }
}

// Regression: Deadline::at() once computed `tp - Clock::now()` in the clock's own duration,
// which overflowed here (system_clock::time_point::min() then waited forever).
TYPED_TEST(TimeoutTest, MinimumDeadlinesPollWithoutOverflow) {
  if constexpr (!TypeParam::has_until) {
    GTEST_SKIP() << "no wait_until form";
  } else {
    this->polls_until(steady_clock::time_point::min(), "steady_clock::time_point::min()");
    this->polls_until(time_point<steady_clock, std::chrono::hours>::min(),
                      "steady_clock time_point<hours>::min()");
    this->polls_until(system_clock::time_point::min(), "system_clock::time_point::min()");
    this->polls_until(time_point<system_clock, std::chrono::seconds>::min(),
                      "system_clock time_point<seconds>::min()");
    this->polls_until(time_point<system_clock, duration<double>>::min(),
                      "system_clock time_point<double>::min()");
  }
}

TYPED_TEST(TimeoutTest, SystemClockDeadlines) {
  if constexpr (!TypeParam::has_until) {
    GTEST_SKIP() << "no wait_until form";
  } else {
    this->expect_times_out([](TypeParam& op) { return op.until(system_clock::now() + 50ms); }, 50ms,
                           "system now + 50ms");
    this->expect_times_out(
        [](TypeParam& op) {
          return op.until(time_point<system_clock, duration<double>>(system_clock::now()) +
                          duration<double>(0.05));
        },
        50ms, "system now + 0.05s, double rep");
    this->expect_times_out([](TypeParam& op) { return op.until(steady_clock::now() + 50ms); }, 50ms,
                           "steady now + 50ms");
  }
}

// Regression: time_point<system_clock, seconds>::max() once overflowed when converted to
// nanoseconds, and the wait returned false at once.
TYPED_TEST(TimeoutTest, MaxDeadlinesWaitForever) {
  if constexpr (!TypeParam::has_until) {
    GTEST_SKIP() << "no wait_until form";
  } else {
    this->forever_until(steady_clock::time_point::max(), "steady_clock::time_point::max()");
    this->forever_until(time_point<steady_clock, std::chrono::hours>::max(),
                        "steady_clock time_point<hours>::max()");
    this->forever_until(system_clock::time_point::max(), "system_clock::time_point::max()");
    this->forever_until(time_point<system_clock, std::chrono::seconds>::max(),
                        "system_clock time_point<seconds>::max()");
    this->forever_until(time_point<system_clock, duration<double>>::max(),
                        "system_clock time_point<double>::max()");
  }
}

}  // namespace
