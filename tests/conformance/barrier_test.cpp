// SPDX-License-Identifier: MIT
// Conformance tests for weft::Barrier, ported from CPython's lock_tests.BarrierTests and
// extended: distinct indices over many cycles, the action's own exception, default and
// explicit timeouts.
#include "weft/barrier.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <latch>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/errors.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::eventually;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;

static_assert(!std::is_copy_constructible_v<weft::Barrier>);
static_assert(!std::is_copy_assignable_v<weft::Barrier>);

constexpr std::size_t kParties = 5;

struct ActionError : std::exception {
  const char* what() const noexcept override { return "action failed"; }
};

// CPython test_constructor.
TEST(Barrier, ZeroPartiesThrowsLogicError) {
  EXPECT_THROW(weft::Barrier(0), std::logic_error);
  EXPECT_THROW(weft::Barrier(0, [] {}), std::logic_error);
  EXPECT_THROW(weft::Barrier(0, {}, 1s), std::logic_error);
}

TEST(Barrier, FreshBarrierState) {
  weft::Barrier barrier(kParties);
  EXPECT_EQ(barrier.parties(), kParties);
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

// CPython test_single_thread.
TEST(Barrier, SinglePartyNeverBlocks) {
  int actions = 0;
  weft::Barrier barrier(1, [&] { ++actions; });
  EXPECT_EQ(barrier.wait(), 0u);
  EXPECT_EQ(barrier.wait(), 0u);
  EXPECT_EQ(barrier.wait(0s), 0u) << "the last arrival does not wait, even with a 0 timeout";
  EXPECT_EQ(actions, 3);
  EXPECT_FALSE(barrier.broken());
}

// CPython test_barrier / test_barrier_10: the threads pass in lockstep.
void run_lockstep(std::size_t passes) {
  weft::Barrier barrier(kParties);
  std::atomic<std::size_t> before{0}, after{0};
  {
    Threads threads(kParties, [&](std::size_t) {
      for (std::size_t i = 0; i < passes; ++i) {
        before.fetch_add(1);
        EXPECT_EQ(after.load(), i * kParties);
        barrier.wait();
        after.fetch_add(1);
        EXPECT_EQ(before.load(), (i + 1) * kParties);
        barrier.wait();
      }
      EXPECT_EQ(barrier.n_waiting(), 0u);
      EXPECT_FALSE(barrier.broken());
    });
  }
  EXPECT_EQ(before.load(), passes * kParties);
  EXPECT_EQ(after.load(), passes * kParties);
}

TEST(Barrier, LockstepOnePass) {
  run_lockstep(1);
}
TEST(Barrier, LockstepTenPasses) {
  run_lockstep(10);
}

// CPython test_wait_return, strengthened: the indices of a cycle are exactly 0..parties-1.
TEST(Barrier, WaitReturnsDistinctIndicesEveryCycle) {
  constexpr std::size_t kCycles = 50;
  weft::Barrier barrier(kParties);
  std::vector<std::atomic<int>> seen(kCycles * kParties);
  {
    Threads threads(kParties, [&](std::size_t) {
      for (std::size_t c = 0; c < kCycles; ++c) {
        const std::size_t index = barrier.wait();
        ASSERT_LT(index, kParties);
        seen[c * kParties + index].fetch_add(1);
      }
    });
  }
  for (std::size_t c = 0; c < kCycles; ++c) {
    for (std::size_t i = 0; i < kParties; ++i) {
      EXPECT_EQ(seen[c * kParties + i].load(), 1) << "cycle " << c << " index " << i;
    }
  }
}

// CPython test_action, strengthened: once per cycle, before anyone is released, by one of
// the parties: the last to arrive, which gets index parties-1 (as in Python).
TEST(Barrier, ActionRunsOncePerCycleBeforeRelease) {
  constexpr std::size_t kCycles = 20;
  std::atomic<std::size_t> actions{0};
  std::atomic<std::thread::id> runner{};
  int written_by_parties = 0;  // written before wait() under a mutex, read in the action
  std::mutex written_mutex;
  weft::Barrier barrier(kParties, [&] {
    actions.fetch_add(1);
    runner.store(std::this_thread::get_id());
    std::scoped_lock guard(written_mutex);
    EXPECT_EQ(written_by_parties % static_cast<int>(kParties), 0);
  });
  {
    Threads threads(kParties, [&](std::size_t) {
      for (std::size_t c = 0; c < kCycles; ++c) {
        {
          std::scoped_lock guard(written_mutex);
          ++written_by_parties;
        }
        const std::size_t index = barrier.wait();
        EXPECT_EQ(actions.load(), 2 * c + 1) << "released before the action ran, or it ran twice";
        if (index == kParties - 1) {
          EXPECT_EQ(runner.load(), std::this_thread::get_id())
              << "the action is run by the last arrival";
        }
        barrier.wait();  // keep cycles apart so that `actions` is stable above
      }
    });
  }
  EXPECT_EQ(actions.load(), 2 * kCycles);
}

// The action's effects are visible to every released party (TSAN checks the ordering).
TEST(Barrier, ActionHappensBeforeRelease) {
  int value = 0;  // plain: ordered by the barrier
  weft::Barrier barrier(3, [&] { value = 42; });
  Threads threads(3, [&](std::size_t) {
    barrier.wait();
    EXPECT_EQ(value, 42);
  });
}

// CPython test_abort.
TEST(Barrier, AbortBreaksTheBarrier) {
  weft::Barrier barrier(kParties);
  std::atomic<int> passed{0}, broken{0};
  {
    Threads threads(kParties, [&](std::size_t) {
      try {
        const std::size_t i = barrier.wait();
        if (i == kParties / 2) {
          barrier.abort();
          return;
        }
        barrier.wait();
        passed.fetch_add(1);
      } catch (const weft::BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  EXPECT_EQ(passed.load(), 0);
  EXPECT_EQ(broken.load(), static_cast<int>(kParties) - 1);
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError) << "a broken barrier stays broken";
  EXPECT_THROW(barrier.wait(10s), weft::BrokenBarrierError);
}

// CPython test_reset.
TEST(Barrier, ResetReleasesWaitersWithBrokenBarrierError) {
  weft::Barrier barrier(kParties);
  std::atomic<int> passed{0}, broken{0}, second{0};
  {
    Threads threads(kParties, [&](std::size_t) {
      const std::size_t i = barrier.wait();
      if (i == kParties / 2) {
        EXPECT_TRUE(eventually([&] { return barrier.n_waiting() >= kParties - 1; }));
        barrier.reset();
      } else {
        try {
          barrier.wait();
          passed.fetch_add(1);
        } catch (const weft::BrokenBarrierError&) {
          broken.fetch_add(1);
        }
      }
      // The barrier is usable again.
      barrier.wait();
      second.fetch_add(1);
    });
  }
  EXPECT_EQ(passed.load(), 0);
  EXPECT_EQ(broken.load(), static_cast<int>(kParties) - 1);
  EXPECT_EQ(second.load(), static_cast<int>(kParties));
  EXPECT_FALSE(barrier.broken());
}

// CPython test_abort_and_reset.
TEST(Barrier, ResetAfterAbortMakesItUsable) {
  weft::Barrier barrier(kParties);
  weft::Barrier sync(kParties);
  std::atomic<int> passed{0}, broken{0}, third{0};
  {
    Threads threads(kParties, [&](std::size_t) {
      try {
        const std::size_t i = barrier.wait();
        if (i == kParties / 2) throw std::runtime_error("abort");
        barrier.wait();
        passed.fetch_add(1);
      } catch (const weft::BrokenBarrierError&) {
        broken.fetch_add(1);
      } catch (const std::runtime_error&) {
        barrier.abort();
      }
      // Everyone has left `barrier` before the reset, and nobody enters it before.
      if (sync.wait() == kParties / 2) barrier.reset();
      sync.wait();
      barrier.wait();
      third.fetch_add(1);
    });
  }
  EXPECT_EQ(passed.load(), 0);
  EXPECT_EQ(broken.load(), static_cast<int>(kParties) - 1);
  EXPECT_EQ(third.load(), static_cast<int>(kParties));
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, AbortWakesEveryWaiter) {
  weft::Barrier barrier(3);
  std::atomic<int> broken{0};
  Threads threads(2, [&](std::size_t) {
    try {
      barrier.wait();
    } catch (const weft::BrokenBarrierError&) {
      broken.fetch_add(1);
    }
  });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 2; }));
  barrier.abort();
  threads.join();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, AbortAndResetOfIdleBarrier) {
  weft::Barrier barrier(2);
  barrier.reset();  // nothing to break
  EXPECT_FALSE(barrier.broken());
  barrier.abort();
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError);
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  std::atomic<std::size_t> index_sum{0};
  {
    Threads threads(2, [&](std::size_t) { index_sum.fetch_add(barrier.wait()); });
  }
  EXPECT_EQ(index_sum.load(), 1u);
}

TEST(Barrier, NWaitingCountsArrivals) {
  weft::Barrier barrier(3);
  Threads a(1, [&](std::size_t) { barrier.wait(); });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
  Threads b(1, [&](std::size_t) { barrier.wait(); });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 2; }));
  EXPECT_EQ(barrier.wait(), 2u) << "the last arrival's index is parties-1";
  a.join();
  b.join();
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

// CPython test_timeout, without the sleeping thread: a party that never arrives.
TEST(Barrier, TimeoutBreaksTheBarrierForEveryone) {
  weft::Barrier barrier(3);
  std::atomic<int> broken{0};
  const auto start = Clock::now();
  {
    Threads threads(2, [&](std::size_t i) {
      try {
        // One waits 100 ms, the other much longer: the first timeout breaks both.
        barrier.wait(i == 0 ? std::chrono::milliseconds(100) : std::chrono::milliseconds(60000));
      } catch (const weft::BrokenBarrierError&) {
        broken.fetch_add(1);
      }
    });
  }
  EXPECT_TRUE(took_about(elapsed_since(start), 100ms));
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError) << "the late party finds it broken";
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, NonPositiveTimeoutBreaksUnlessLast) {
  weft::Barrier barrier(2);
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(0s), weft::BrokenBarrierError);
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_TRUE(barrier.broken());
  barrier.reset();
  EXPECT_THROW(barrier.wait(-1s), weft::BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, TimedWaitSucceedsWhenAllArrive) {
  weft::Barrier barrier(3);
  std::atomic<std::size_t> index_sum{0};
  {
    Threads threads(3, [&](std::size_t) { index_sum.fetch_add(barrier.wait(60s)); });
  }
  EXPECT_EQ(index_sum.load(), 0u + 1u + 2u);
  EXPECT_FALSE(barrier.broken());
}

// CPython test_default_timeout.
TEST(Barrier, DefaultTimeout) {
  weft::Barrier barrier(2, {}, 100ms);
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError);
  EXPECT_TRUE(took_about(elapsed_since(start), 100ms));
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, FloatingPointDefaultTimeout) {
  weft::Barrier barrier(2, {}, std::chrono::duration<double>(0.05));
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
}

TEST(Barrier, ExplicitTimeoutOverridesDefault) {
  weft::Barrier barrier(2, {}, 60s);
  const auto start = Clock::now();
  EXPECT_THROW(barrier.wait(50ms), weft::BrokenBarrierError);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
}

TEST(Barrier, DefaultTimeoutDoesNotFireWhenAllArrive) {
  weft::Barrier barrier(3, {}, 60s);
  {
    Threads threads(3, [&](std::size_t) {
      for (int c = 0; c < 5; ++c) barrier.wait();
    });
  }
  EXPECT_FALSE(barrier.broken());
}

// When the action throws, its runner gets that exception and the others BrokenBarrierError.
TEST(Barrier, ThrowingActionBreaksTheBarrier) {
  std::atomic<int> calls{0};
  weft::Barrier barrier(3, [&] {
    if (calls.fetch_add(1) == 0) throw ActionError();
  });
  std::atomic<int> action_errors{0}, broken{0}, other{0};
  {
    Threads threads(3, [&](std::size_t) {
      try {
        barrier.wait();
      } catch (const ActionError&) {
        action_errors.fetch_add(1);
      } catch (const weft::BrokenBarrierError&) {
        broken.fetch_add(1);
      } catch (...) {
        other.fetch_add(1);
      }
    });
  }
  EXPECT_EQ(action_errors.load(), 1);
  EXPECT_EQ(broken.load(), 2);
  EXPECT_EQ(other.load(), 0);
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);

  // After reset() the barrier works again (the action now succeeds).
  barrier.reset();
  std::atomic<std::size_t> index_sum{0};
  {
    Threads threads(3, [&](std::size_t) { index_sum.fetch_add(barrier.wait()); });
  }
  EXPECT_EQ(index_sum.load(), 3u);
  EXPECT_EQ(calls.load(), 2);
}

TEST(Barrier, ThrowingActionOfSinglePartyBarrier) {
  weft::Barrier barrier(1, [] { throw ActionError(); });
  EXPECT_THROW(barrier.wait(), ActionError);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(), weft::BrokenBarrierError);
}

TEST(Barrier, ReuseOverManyCycles) {
  constexpr std::size_t kThreads = 3;
  const std::size_t cycles = scaled(2000, 200);
  std::atomic<std::size_t> actions{0};
  weft::Barrier barrier(kThreads, [&] { actions.fetch_add(1); });
  std::vector<std::atomic<std::size_t>> index_sums(cycles);
  {
    Threads threads(kThreads, [&](std::size_t) {
      for (std::size_t c = 0; c < cycles; ++c) index_sums[c].fetch_add(barrier.wait());
    });
  }
  EXPECT_EQ(actions.load(), cycles);
  for (std::size_t c = 0; c < cycles; ++c) {
    ASSERT_EQ(index_sums[c].load(), 0u + 1u + 2u) << "cycle " << c;
  }
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0u);
}

TEST(Barrier, BrokenBarrierErrorIsARuntimeError) {
  weft::Barrier barrier(2);
  barrier.abort();
  try {
    barrier.wait();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(dynamic_cast<const weft::BrokenBarrierError*>(&e), nullptr);
  }
}

}  // namespace
