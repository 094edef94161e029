// SPDX-License-Identifier: MIT
// Cancellation of the core primitives' blocking calls by std::stop_token (docs/api.md:
// Cancellation). A stop request wakes the waiter promptly; bool-returning calls return
// false and Barrier::wait throws weft::Cancelled; a stop already requested on entry
// cancels at once; a cancelled call changes nothing (it takes no lock, permit or
// notification, and leaves a barrier as if it had never arrived).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <semaphore>
#include <stdexcept>
#include <stop_token>
#include <thread>

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
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::eventually;
using weft_test::returned_promptly;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::wait_blocked;

std::stop_token stopped_token() {
  static std::stop_source source = [] {
    std::stop_source s;
    s.request_stop();
    return s;
  }();
  return source.get_token();
}

// Requests a stop once `tid` is parked, and returns how long the waiter then took to finish.
template <class Waiter>
::testing::AssertionResult cancel_parked(Threads& waiter, std::size_t index,
                                         std::stop_source& source, Waiter&& join) {
  auto parked = wait_blocked(waiter.tid(index));
  if (!parked) return parked;
  const auto start = Clock::now();
  source.request_stop();
  join();
  return returned_promptly(elapsed_since(start)) << " (from request_stop to the waiter's return)";
}

// ---------------------------------------------------------------------------------
// Event

TEST(CancelEvent, StopRequestedOnEntryReturnsFalseAtOnce) {
  weft::Event event;
  const auto start = Clock::now();
  EXPECT_FALSE(event.wait(stopped_token()));
  EXPECT_FALSE(event.wait(1h, stopped_token()));
  EXPECT_FALSE(event.wait_until(Clock::now() + 1h, stopped_token()));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_FALSE(event.is_set());
}

TEST(CancelEvent, StopRequestedOnEntryCancelsEvenWhenSet) {
  weft::Event event;
  event.set();
  EXPECT_FALSE(event.wait(stopped_token()));
  EXPECT_FALSE(event.wait(1h, stopped_token()));
  EXPECT_FALSE(event.wait_until(Clock::now() + 1h, stopped_token()));
  EXPECT_TRUE(event.is_set()) << "a cancelled wait changes nothing";
}

TEST(CancelEvent, UnstoppedTokenBehavesLikePlainWait) {
  weft::Event event;
  std::stop_source source;
  auto start = Clock::now();
  EXPECT_FALSE(event.wait(50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(event.wait_until(std::chrono::system_clock::now() + 50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  event.set();
  EXPECT_TRUE(event.wait(source.get_token()));
  EXPECT_TRUE(event.wait(1h, source.get_token()));
  EXPECT_TRUE(event.wait(std::stop_token{})) << "a token with no stop state never cancels";
}

TEST(CancelEvent, StopWakesEveryKindOfWait) {
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE(kind);
    weft::Event event;
    std::stop_source source;
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) {
      bool r = true;
      if (kind == 0) r = event.wait(source.get_token());
      if (kind == 1) r = event.wait(1h, source.get_token());
      if (kind == 2)
        r = event.wait_until(std::chrono::system_clock::now() + 1h, source.get_token());
      result.store(r ? 1 : 0);
    });
    EXPECT_TRUE(cancel_parked(waiter, 0, source, [&] { waiter.join(); }));
    EXPECT_EQ(result.load(), 0);
    EXPECT_FALSE(event.is_set());
  }
}

TEST(CancelEvent, SetStillWakesWaiterWithToken) {
  weft::Event event;
  std::stop_source source;
  std::atomic<int> result{-1};
  Threads waiter(1, [&](std::size_t) { result.store(event.wait(source.get_token()) ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(waiter.tid(0)));
  event.set();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
}

TEST(CancelEvent, CancellingOneWaiterLeavesTheOthersWaiting) {
  weft::Event event;
  std::stop_source source;
  std::atomic<int> cancelled{-1}, plain{-1};
  Threads a(1, [&](std::size_t) { cancelled.store(event.wait(source.get_token()) ? 1 : 0); });
  Threads b(1, [&](std::size_t) { plain.store(event.wait() ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(b.tid(0)));
  EXPECT_TRUE(cancel_parked(a, 0, source, [&] { a.join(); }));
  EXPECT_EQ(cancelled.load(), 0);
  ASSERT_TRUE(wait_blocked(b.tid(0)));
  EXPECT_EQ(plain.load(), -1);
  event.set();
  b.join();
  EXPECT_EQ(plain.load(), 1);
}

// The call's stop callback must be gone when it returns: a stop requested after the
// Event is destroyed must not touch it (ASAN checks).
TEST(CancelEvent, StopAfterTheCallDoesNotTouchThePrimitive) {
  std::stop_source source;
  {
    weft::Event event;
    EXPECT_FALSE(event.wait(10ms, source.get_token()));
    event.set();
    EXPECT_TRUE(event.wait(source.get_token()));
  }
  source.request_stop();
}

// ---------------------------------------------------------------------------------
// Lock, RLock

TEST(CancelLock, StopRequestedOnEntryTakesNothing) {
  weft::Lock lock;
  EXPECT_FALSE(lock.acquire(stopped_token()));
  EXPECT_FALSE(lock.acquire(1h, stopped_token()));
  EXPECT_FALSE(lock.locked()) << "a cancelled acquire took a free lock";
}

TEST(CancelLock, UnstoppedTokenBehavesLikePlainAcquire) {
  weft::Lock lock;
  std::stop_source source;
  EXPECT_TRUE(lock.acquire(source.get_token()));
  const auto start = Clock::now();
  EXPECT_FALSE(lock.acquire(50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  lock.release();
  EXPECT_TRUE(lock.acquire(1h, source.get_token()));
  lock.release();
}

TEST(CancelLock, StopWakesBlockedAcquire) {
  for (int timed = 0; timed < 2; ++timed) {
    SCOPED_TRACE(timed);
    weft::Lock lock;
    lock.acquire();
    std::stop_source source;
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) {
      const bool r =
          timed ? lock.acquire(1h, source.get_token()) : lock.acquire(source.get_token());
      result.store(r ? 1 : 0);
    });
    EXPECT_TRUE(cancel_parked(waiter, 0, source, [&] { waiter.join(); }));
    EXPECT_EQ(result.load(), 0);
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked()) << "the cancelled waiter was handed the lock";
  }
}

// The cancelled waiter does not absorb the wake-up of the next release.
TEST(CancelLock, CancelledWaiterDoesNotAbsorbRelease) {
  weft::Lock lock;
  lock.acquire();
  std::stop_source source;
  std::atomic<int> cancelled{-1}, plain{-1};
  Threads a(1, [&](std::size_t) { cancelled.store(lock.acquire(source.get_token()) ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(a.tid(0)));
  Threads b(1, [&](std::size_t) {
    plain.store(lock.acquire() ? 1 : 0);
    lock.release();
  });
  ASSERT_TRUE(wait_blocked(b.tid(0)));
  EXPECT_TRUE(cancel_parked(a, 0, source, [&] { a.join(); }));
  EXPECT_EQ(cancelled.load(), 0);
  lock.release();
  b.join();
  EXPECT_EQ(plain.load(), 1);
  EXPECT_FALSE(lock.locked());
}

TEST(CancelRLock, StopRequestedOnEntryChangesNothing) {
  weft::RLock lock;
  EXPECT_FALSE(lock.acquire(stopped_token()));
  EXPECT_THROW(lock.release(), std::logic_error) << "a cancelled acquire took the lock";
  lock.acquire();
  EXPECT_FALSE(lock.acquire(stopped_token())) << "cancels at once, even for the owner";
  EXPECT_FALSE(lock.acquire(1h, stopped_token()));
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error) << "a cancelled reentrant acquire added depth";
}

TEST(CancelRLock, StopWakesBlockedAcquire) {
  weft::RLock lock;
  lock.acquire();
  std::stop_source source;
  std::atomic<int> result{-1};
  std::atomic<bool> owner_after{false};
  Threads waiter(1, [&](std::size_t) {
    result.store(lock.acquire(source.get_token()) ? 1 : 0);
    try {
      lock.release();
      owner_after.store(true);
    } catch (const std::logic_error&) {
    }
  });
  EXPECT_TRUE(cancel_parked(waiter, 0, source, [&] { waiter.join(); }));
  EXPECT_EQ(result.load(), 0);
  EXPECT_FALSE(owner_after.load()) << "the cancelled thread became an owner";
  lock.release();
}

// ---------------------------------------------------------------------------------
// Condition

TEST(CancelCondition, StopRequestedOnEntryKeepsTheLockAndDepth) {
  weft::Condition cond;
  cond.acquire();
  cond.acquire();
  const auto start = Clock::now();
  EXPECT_FALSE(cond.wait(stopped_token()));
  EXPECT_FALSE(cond.wait(1h, stopped_token()));
  EXPECT_FALSE(cond.wait_until(Clock::now() + 1h, stopped_token()));
  EXPECT_FALSE(cond.wait_for([] { return false; }, stopped_token()));
  EXPECT_FALSE(cond.wait_for([] { return false; }, 1h, stopped_token()));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  cond.release();
  cond.release();
  EXPECT_THROW(cond.release(), std::logic_error) << "the depth changed";
}

TEST(CancelCondition, UnstoppedTokenBehavesLikePlainWait) {
  weft::Condition cond;
  std::stop_source source;
  std::unique_lock<weft::Condition> guard(cond);
  auto start = Clock::now();
  EXPECT_FALSE(cond.wait(50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(cond.wait_for([] { return false; }, 50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  EXPECT_TRUE(cond.wait_for([] { return true; }, source.get_token()));
}

// A cancelled wait returns false with the lock held again, at the same depth.
TEST(CancelCondition, StopWakesEveryKindOfWait) {
  for (int kind = 0; kind < 4; ++kind) {
    SCOPED_TRACE(kind);
    weft::Condition cond;
    std::stop_source source;
    std::binary_semaphore entered(0);
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) {
      cond.acquire();
      cond.acquire();
      entered.release();
      bool r = true;
      if (kind == 0) r = cond.wait(source.get_token());
      if (kind == 1) r = cond.wait(1h, source.get_token());
      if (kind == 2) r = cond.wait_until(std::chrono::system_clock::now() + 1h, source.get_token());
      if (kind == 3) r = cond.wait_for([] { return false; }, source.get_token());
      result.store(r ? 1 : 0);
      EXPECT_NO_THROW(cond.release());
      EXPECT_NO_THROW(cond.release());
      EXPECT_THROW(cond.release(), std::logic_error);
    });
    entered.acquire();
    cond.acquire();  // the waiter is inside the wait
    cond.release();
    EXPECT_TRUE(cancel_parked(waiter, 0, source, [&] { waiter.join(); }));
    EXPECT_EQ(result.load(), 0);
  }
}

// A cancelled waiter is not counted by notify(n): the notification reaches the next one.
TEST(CancelCondition, CancelledWaiterDoesNotAbsorbNotify) {
  weft::Lock lock;
  weft::Condition cond(lock);
  std::stop_source source;
  std::binary_semaphore entered(0);
  std::atomic<int> cancelled{-1}, plain{-1};
  Threads a(1, [&](std::size_t) {
    cond.acquire();
    entered.release();
    cancelled.store(cond.wait(source.get_token()) ? 1 : 0);
    cond.release();
  });
  entered.acquire();
  cond.acquire();  // a is waiting, first in line
  cond.release();
  Threads b(1, [&](std::size_t) {
    cond.acquire();
    entered.release();
    plain.store(cond.wait() ? 1 : 0);
    cond.release();
  });
  entered.acquire();
  cond.acquire();  // b is waiting, second in line
  cond.release();
  EXPECT_TRUE(cancel_parked(a, 0, source, [&] { a.join(); }));
  EXPECT_EQ(cancelled.load(), 0);
  cond.acquire();
  cond.notify(1);
  cond.release();
  EXPECT_TRUE(eventually([&] { return plain.load() != -1; }, 30s)) << "the notify was lost";
  if (plain.load() == -1) {
    cond.acquire();
    cond.notify_all();  // rescue, so that the test can end
    cond.release();
  }
  b.join();
  EXPECT_EQ(plain.load(), 1);
}

// ---------------------------------------------------------------------------------
// Semaphore

TEST(CancelSemaphore, StopRequestedOnEntryTakesNoPermit) {
  weft::Semaphore sem(1);
  EXPECT_FALSE(sem.acquire(stopped_token()));
  EXPECT_FALSE(sem.acquire(1h, stopped_token()));
  EXPECT_TRUE(sem.acquire(false)) << "a cancelled acquire took the permit";
  EXPECT_FALSE(sem.acquire(false));
}

TEST(CancelSemaphore, UnstoppedTokenBehavesLikePlainAcquire) {
  weft::Semaphore sem(1);
  std::stop_source source;
  EXPECT_TRUE(sem.acquire(source.get_token()));
  const auto start = Clock::now();
  EXPECT_FALSE(sem.acquire(50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
}

TEST(CancelSemaphore, StopWakesBlockedAcquireWhichTakesNothing) {
  for (int timed = 0; timed < 2; ++timed) {
    SCOPED_TRACE(timed);
    weft::BoundedSemaphore sem(1);
    sem.acquire();
    std::stop_source source;
    std::atomic<int> result{-1};
    Threads waiter(1, [&](std::size_t) {
      const bool r = timed ? sem.acquire(1h, source.get_token()) : sem.acquire(source.get_token());
      result.store(r ? 1 : 0);
    });
    EXPECT_TRUE(cancel_parked(waiter, 0, source, [&] { waiter.join(); }));
    EXPECT_EQ(result.load(), 0);
    sem.release();
    EXPECT_TRUE(sem.acquire(false)) << "the released permit went to the cancelled waiter";
  }
}

TEST(CancelSemaphore, CancelledWaiterDoesNotAbsorbRelease) {
  weft::Semaphore sem(0);
  std::stop_source source;
  std::atomic<int> cancelled{-1}, plain{-1};
  Threads a(1, [&](std::size_t) { cancelled.store(sem.acquire(source.get_token()) ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(a.tid(0)));
  Threads b(1, [&](std::size_t) { plain.store(sem.acquire() ? 1 : 0); });
  ASSERT_TRUE(wait_blocked(b.tid(0)));
  EXPECT_TRUE(cancel_parked(a, 0, source, [&] { a.join(); }));
  EXPECT_EQ(cancelled.load(), 0);
  sem.release();
  b.join();
  EXPECT_EQ(plain.load(), 1);
  EXPECT_FALSE(sem.acquire(false));
}

// ---------------------------------------------------------------------------------
// Barrier

TEST(CancelBarrier, StopRequestedOnEntryThrowsCancelledAndLeavesNoTrace) {
  weft::Barrier barrier(2);
  EXPECT_THROW(barrier.wait(stopped_token()), weft::Cancelled);
  EXPECT_THROW(barrier.wait(1h, stopped_token()), weft::Cancelled);
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
  std::atomic<std::size_t> index_sum{0};
  {
    Threads pair(2, [&](std::size_t) { index_sum.fetch_add(barrier.wait()); });
  }
  EXPECT_EQ(index_sum.load(), 1u);
}

TEST(CancelBarrier, StopWithdrawsAWaiterAsIfItNeverArrived) {
  for (int timed = 0; timed < 2; ++timed) {
    SCOPED_TRACE(timed);
    weft::Barrier barrier(3);
    std::stop_source source;
    std::atomic<int> cancelled{0};
    std::atomic<std::size_t> index_sum{0};
    Threads a(1, [&](std::size_t) {
      try {
        if (timed) {
          barrier.wait(1h, source.get_token());
        } else {
          barrier.wait(source.get_token());
        }
      } catch (const weft::Cancelled&) {
        cancelled.fetch_add(1);
      }
    });
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
    Threads b(1, [&](std::size_t) { index_sum.fetch_add(barrier.wait()); });
    ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 2; }));
    EXPECT_TRUE(cancel_parked(a, 0, source, [&] { a.join(); }));
    EXPECT_EQ(cancelled.load(), 1);
    EXPECT_EQ(barrier.n_waiting(), 1u);
    EXPECT_FALSE(barrier.broken());
    // Two more arrivals complete the cycle with b: indices 0, 1, 2, each once.
    {
      Threads more(2, [&](std::size_t) { index_sum.fetch_add(barrier.wait()); });
    }
    b.join();
    EXPECT_EQ(index_sum.load(), 0u + 1u + 2u);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(barrier.n_waiting(), 0u);
  }
}

TEST(CancelBarrier, UnstoppedTokenBehavesLikePlainWait) {
  weft::Barrier barrier(2);
  std::stop_source source;
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(50ms, source.get_token()), weft::BrokenBarrierError);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  barrier.reset();
  std::atomic<std::size_t> index_sum{0};
  {
    Threads pair(2, [&](std::size_t) { index_sum.fetch_add(barrier.wait(source.get_token())); });
  }
  EXPECT_EQ(index_sum.load(), 1u);
}

// std::jthread's own stop token works like any other.
TEST(CancelWithJthread, RequestStopWakesAWaiter) {
  weft::Event event;
  std::atomic<int> result{-1};
  std::atomic<pid_t> tid{0};
  std::jthread waiter([&](std::stop_token stop) {
    tid.store(weft_test::current_tid());
    result.store(event.wait(stop) ? 1 : 0);
  });
  ASSERT_TRUE(eventually([&] { return tid.load() != 0; }));
  ASSERT_TRUE(wait_blocked(tid.load()));
  waiter.request_stop();
  waiter.join();
  EXPECT_EQ(result.load(), 0);
}

}  // namespace
