// SPDX-License-Identifier: MIT
// Under ThreadSanitizer, weft's RLock and Lock are annotated as mutexes (__tsan_mutex_*, see
// weft/detail/diag_hooks.hpp and Lock's tsan_* members): TSAN's own lock-order checker then
// reports an inversion of two of them, and a Lock released by another thread is no misuse.
// Semaphore is not a mutex to TSAN (weft/semaphore.hpp, "ThreadSanitizer"): a permit carries
// happens-before only, which TSAN sees through its atomics. The death tests that expect a
// report are skipped in builds without TSAN; the others run everywhere. A Lock a coroutine
// takes is the coroutine's: no thread is seen holding it.
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "async_helpers.hpp"
#include "weft/async.hpp"
#include "weft/condition.hpp"
#include "weft/lock.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

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

// ---- Semaphore: happens-before, no mutex -----------------------------------------------

// Permits with the Semaphore's protocol but relaxed orderings: no happens-before (the
// control of the next tests).
class RelaxedPermits {
 public:
  explicit RelaxedPermits(int n) : n_(n) {}
  void release() { n_.fetch_add(1, std::memory_order_relaxed); }  // relaxed: the control
  void acquire() {
    int v = n_.load(std::memory_order_relaxed);
    for (;;) {
      if (v == 0) {
        std::this_thread::yield();
        v = n_.load(std::memory_order_relaxed);
      } else if (n_.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
        return;
      }
    }
  }

 private:
  std::atomic<int> n_;
};

// A producer fills plain ints one by one, releasing a permit for each; a consumer takes a
// permit before it reads the next int. Through a weft Semaphore each write happens-before
// its read: no race. Through RelaxedPermits TSAN must report one: it judges a hand-off by
// its memory orders, so the quiet Semaphore run shows that its release/acquire pairing
// carries the permit's happens-before with no annotation. The producer runs ahead, so most
// permits are taken without parking (a hand-off that parks is also ordered by the Parker):
// weakening the Semaphore's acquire or its release to relaxed makes the test fail.
template <class Permits>
void hand_over() {
  constexpr std::size_t kItems = 4000;
  std::vector<int> items(kItems, 0);  // plain ints, each written once, then read once
  Permits filled(0);
  std::thread producer([&] {
    for (std::size_t i = 0; i < kItems; ++i) {
      items[i] = static_cast<int>(i) + 1;
      filled.release();
    }
  });
  long sum = 0;
  for (std::size_t i = 0; i < kItems; ++i) {
    filled.acquire();
    sum += items[i];
  }
  producer.join();
  ::_exit(sum == static_cast<long>(kItems * (kItems + 1) / 2) ? 0 : 1);
}

TEST(TsanAnnotationsDeathTest, AHandOffWithoutHappensBeforeIsARace) {
  if (!kTsan) GTEST_SKIP() << "not a ThreadSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(hand_over<RelaxedPermits>(), ::testing::ExitedWithCode(66), "data race");
}

TEST(TsanAnnotationsDeathTest, APermitCarriesHappensBefore) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(hand_over<weft::Semaphore>(), ::testing::ExitedWithCode(0), "");
}

// A BoundedSemaphore(1) used as a signal: a thread waits for it with a Lock held, another
// thread gives the permit back. Nothing can deadlock, and TSAN reports nothing. Were the
// semaphore a mutex to TSAN (annotated as Lock is), the waiting thread would "hold" it from
// its first acquire on (it never releases it itself), and its next acquire of the Lock would
// be reported as a lock-order inversion.
void signal_under_lock() {
  weft::Lock lock{"lock"};
  weft::BoundedSemaphore signal(1, "signal");
  for (int round = 0; round < 3; ++round) {
    lock.acquire();
    signal.acquire();  // the initial permit, then the other thread's
    lock.release();
    std::thread([&] { signal.release(); }).join();
  }
  ::_exit(signal.value() == 1 ? 0 : 1);
}

TEST(TsanAnnotationsDeathTest, ASemaphoreSignalledUnderALockIsNoInversion) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(signal_under_lock(), ::testing::ExitedWithCode(0), "");
}

// Locks taken by coroutines on a scheduler thread, then destroyed by another thread while
// the coroutine holds them, many times over: TSAN's per-thread lock set (64 locks, then
// TSAN aborts) must not keep them in the scheduler thread's. Each way a coroutine takes a
// Lock: async_acquire, async_select, and the re-acquisition after a Condition wait. Every
// acquisition runs on the pool's one thread: the lock is busy when the coroutine starts,
// and the thread's release hands it over (async_acquire, async_select) or the notify's
// wake step schedules the re-acquisition.
void coroutines_hold_destroyed_locks() {
  using namespace std::chrono_literals;
  weft_test::PoolScheduler sched(1);
  for (int round = 0; round < 150; ++round) {
    weft::Semaphore holding(0);
    weft::Semaphore at_wait(0);
    auto l1 = std::make_unique<weft::Lock>();
    auto l2 = std::make_unique<weft::Lock>();
    auto l3 = std::make_unique<weft::Lock>();
    weft::Condition cond(*l3);
    bool notified = false;  // guarded by *l3
    l1->acquire();
    l2->acquire();
    auto co = [&]() -> weft_test::Detached {
      const bool a = co_await weft::async_acquire(*l1, sched);
      (void)co_await weft::async_select(sched, weft::acquire(*l2));  // no timeout: it takes l2
      const bool c = co_await weft::async_acquire(*l3, sched);
      at_wait.release();
      const bool w = co_await weft::async_wait_for(cond, *l3, sched, [&] { return notified; });
      if (!a || !c || !w) std::terminate();
      holding.release();
    };
    co();
    l1->release();  // handed to the coroutine: its next step runs on the pool's thread
    l2->release();
    if (!at_wait.acquire(30s)) ::_exit(2);
    if (!l3->acquire(30s)) ::_exit(3);  // free once the coroutine waits on cond
    notified = true;
    cond.notify();
    l3->release();  // the coroutine's re-acquisition runs on the pool's thread
    if (!holding.acquire(30s)) ::_exit(4);
    if (!l1->locked() || !l2->locked() || !l3->locked()) ::_exit(5);
    l1.reset();  // destroyed held, by this thread
    l2.reset();
    l3.reset();
  }
  ::_exit(0);
}

TEST(TsanAnnotationsDeathTest, CoroutineHeldLocksDestroyedElsewhereAreQuiet) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(coroutines_hold_destroyed_locks(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
