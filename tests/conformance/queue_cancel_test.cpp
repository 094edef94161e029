// SPDX-License-Identifier: MIT
// Conformance tests for the std::stop_token forms of weft's queues (docs/api.md: Cancellation):
// a stop request wakes a blocked get/put/join promptly; the call then returns false /
// std::nullopt, or throws weft::Cancelled, and changes nothing (no item taken, the caller's
// item kept, no task counted, no wake-up swallowed). Also: a stop already requested on
// entry, timed forms with a token, and the std::jthread worker loop the token forms exist
// for.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <memory>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/queue.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::blocked;
using weft_test::Clock;
using weft_test::drain_ints;
using weft_test::elapsed_since;
using weft_test::make_queue;
using weft_test::Outcome;
using weft_test::outcome_of;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::woken_promptly;

using IntPtr = std::unique_ptr<int>;

template <class Kind>
class CancelAny : public ::testing::Test {};
TYPED_TEST_SUITE(CancelAny, weft_test::AllQueueKinds, weft_test::KindNames);

template <class Kind>
class CancelTask : public ::testing::Test {};
TYPED_TEST_SUITE(CancelTask, weft_test::TaskQueueKinds, weft_test::KindNames);

// The blocking get forms that take a token. Returns the outcome (nullopt from a try form
// reads as Cancelled) and stores the item got, if any, in `got`.
enum class GetForm { get, get_timed, try_get, try_get_timed };
constexpr GetForm kGetForms[] = {GetForm::get, GetForm::get_timed, GetForm::try_get,
                                 GetForm::try_get_timed};

template <class Q>
Outcome get_with(Q& q, GetForm form, std::stop_token st, std::atomic<int>& got) {
  return outcome_of([&] {
    switch (form) {
      case GetForm::get:
        got = static_cast<int>(q.get(st));
        break;
      case GetForm::get_timed:
        got = static_cast<int>(q.get(1h, st));
        break;
      case GetForm::try_get:
        if (auto v = q.try_get(st)) {
          got = static_cast<int>(*v);
        } else {
          throw weft::Cancelled();
        }
        break;
      case GetForm::try_get_timed:
        if (auto v = q.try_get(1h, st)) {
          got = static_cast<int>(*v);
        } else {
          throw weft::Cancelled();
        }
        break;
    }
  });
}

// The put forms that take a token; `false` from a try form reads as Cancelled.
enum class PutForm { put, put_timed, try_put, try_put_timed };
constexpr PutForm kPutForms[] = {PutForm::put, PutForm::put_timed, PutForm::try_put,
                                 PutForm::try_put_timed};

template <class Q, class T>
Outcome put_with(Q& q, PutForm form, std::stop_token st, T& item) {
  return outcome_of([&] {
    switch (form) {
      case PutForm::put:
        q.put(std::move(item), st);
        break;
      case PutForm::put_timed:
        q.put(std::move(item), 1h, st);
        break;
      case PutForm::try_put:
        if (!q.try_put(std::move(item), st)) throw weft::Cancelled();
        break;
      case PutForm::try_put_timed:
        if (!q.try_put(std::move(item), 1h, st)) throw weft::Cancelled();
        break;
    }
  });
}

// ---------------------------------------------------------------------------------------
// A stop already requested on entry

TYPED_TEST(CancelAny, StopRequestedBeforeGetOnEmptyQueue) {
  auto q = make_queue<TypeParam>();
  std::stop_source source;
  source.request_stop();
  const auto start = Clock::now();
  for (const GetForm form : kGetForms) {
    std::atomic<int> got{-1};
    EXPECT_EQ(get_with(q, form, source.get_token(), got), Outcome::cancelled);
    EXPECT_EQ(got.load(), -1);
  }
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_TRUE(q.empty());
  q.put(3);
  EXPECT_EQ(static_cast<int>(q.get_nowait()), 3);
}

// With an item there, a call with a stop already requested may either take it or be
// cancelled (docs/api.md leaves the choice), but a cancelled call takes nothing.
TYPED_TEST(CancelAny, StopRequestedBeforeGetOnNonEmptyQueueIsAllOrNothing) {
  auto q = make_queue<TypeParam>();
  std::stop_source source;
  source.request_stop();
  for (const GetForm form : kGetForms) {
    q.put(8);
    std::atomic<int> got{-1};
    const Outcome o = get_with(q, form, source.get_token(), got);
    if (o == Outcome::ok) {
      EXPECT_EQ(got.load(), 8);
      EXPECT_TRUE(q.empty());
    } else {
      EXPECT_EQ(o, Outcome::cancelled);
      EXPECT_EQ(got.load(), -1);
      EXPECT_EQ(drain_ints(q), std::vector<int>{8}) << "a cancelled get took the item";
    }
  }
}

TYPED_TEST(CancelTask, StopRequestedBeforePutOnFullQueue) {
  auto q = make_queue<TypeParam, IntPtr>(1);
  q.put(std::make_unique<int>(0));
  std::stop_source source;
  source.request_stop();
  auto item = std::make_unique<int>(5);
  int* const raw = item.get();
  const auto start = Clock::now();
  for (const PutForm form : kPutForms) {
    EXPECT_EQ(put_with(q, form, source.get_token(), item), Outcome::cancelled);
    EXPECT_EQ(item.get(), raw) << "a cancelled put took the caller's item";
  }
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
}

// Where the put could proceed (room, or SimpleQueue), a stop already requested either lets
// it through or cancels it with nothing changed.
TYPED_TEST(CancelAny, StopRequestedBeforePutWithRoomIsAllOrNothing) {
  auto q = make_queue<TypeParam, IntPtr>();
  std::stop_source source;
  source.request_stop();
  for (const PutForm form : kPutForms) {
    auto item = std::make_unique<int>(5);
    int* const raw = item.get();
    const std::size_t before = q.qsize();
    const Outcome o = put_with(q, form, source.get_token(), item);
    if (o == Outcome::ok) {
      EXPECT_EQ(item, nullptr);
      EXPECT_EQ(q.qsize(), before + 1);
    } else {
      EXPECT_EQ(o, Outcome::cancelled);
      EXPECT_EQ(item.get(), raw);
      EXPECT_EQ(q.qsize(), before);
    }
  }
}

TYPED_TEST(CancelTask, StopRequestedBeforeJoin) {
  auto q = make_queue<TypeParam>();
  q.put(1);
  std::stop_source source;
  source.request_stop();
  const auto start = Clock::now();
  EXPECT_THROW(q.join(source.get_token()), weft::Cancelled);
  EXPECT_FALSE(q.join(1h, source.get_token()));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(q.unfinished_tasks(), 1u);
}

// ---------------------------------------------------------------------------------------
// A stop request wakes a blocked call

TYPED_TEST(CancelAny, StopWakesBlockedGet) {
  auto q = make_queue<TypeParam>();
  for (const GetForm form : kGetForms) {
    std::stop_source source;
    std::atomic<int> got{-1};
    std::atomic<Outcome> outcome{Outcome::pending};
    Threads getter(1, [&](std::size_t) { outcome = get_with(q, form, source.get_token(), got); });
    ASSERT_TRUE(blocked(getter));
    const auto start = Clock::now();
    source.request_stop();
    getter.join();
    EXPECT_TRUE(woken_promptly(elapsed_since(start)));
    EXPECT_EQ(outcome.load(), Outcome::cancelled);
    EXPECT_EQ(got.load(), -1);
    EXPECT_TRUE(q.empty());
  }
  // Nothing stale is left behind: the next getter is woken by the next put, and gets it.
  std::atomic<int> got{-1};
  Threads getter(1, [&](std::size_t) { got = static_cast<int>(q.get()); });
  ASSERT_TRUE(blocked(getter));
  q.put(11);
  getter.join();
  EXPECT_EQ(got.load(), 11);
}

TYPED_TEST(CancelTask, StopWakesBlockedPut) {
  auto q = make_queue<TypeParam, IntPtr>(1);
  q.put(std::make_unique<int>(0));
  for (const PutForm form : kPutForms) {
    std::stop_source source;
    std::atomic<Outcome> outcome{Outcome::pending};
    std::atomic<bool> kept{false};
    Threads putter(1, [&](std::size_t) {
      auto item = std::make_unique<int>(5);
      int* const raw = item.get();
      outcome = put_with(q, form, source.get_token(), item);
      kept = item.get() == raw;
    });
    ASSERT_TRUE(blocked(putter));
    const auto start = Clock::now();
    source.request_stop();
    putter.join();
    EXPECT_TRUE(woken_promptly(elapsed_since(start)));
    EXPECT_EQ(outcome.load(), Outcome::cancelled);
    EXPECT_TRUE(kept.load()) << "a cancelled put took the caller's item";
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.unfinished_tasks(), 1u);
  }
  // The next blocked putter is released by the next get.
  Threads putter(1, [&](std::size_t) { q.put(std::make_unique<int>(2)); });
  ASSERT_TRUE(blocked(putter));
  EXPECT_EQ(*q.get(), 0);
  putter.join();
  EXPECT_EQ(*q.get_nowait(), 2);
}

TYPED_TEST(CancelTask, StopWakesBlockedJoin) {
  auto q = make_queue<TypeParam>();
  q.put(1);
  std::stop_source source;
  std::vector<std::atomic<Outcome>> outcome(2);
  for (auto& o : outcome) o = Outcome::pending;
  Threads joiners(2, [&](std::size_t i) {
    outcome[i] = outcome_of([&] {
      if (i == 0) {
        q.join(source.get_token());
      } else if (!q.join(1h, source.get_token())) {
        throw weft::Cancelled();
      }
    });
  });
  ASSERT_TRUE(blocked(joiners));
  const auto start = Clock::now();
  source.request_stop();
  joiners.join();
  EXPECT_TRUE(woken_promptly(elapsed_since(start)));
  for (auto& o : outcome) EXPECT_EQ(o.load(), Outcome::cancelled);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(q.qsize(), 1u);
  // A later joiner still waits for the task and is released by it.
  std::atomic<bool> joined{false};
  Threads joiner(1, [&](std::size_t) {
    q.join();
    joined = true;
  });
  ASSERT_TRUE(blocked(joiner));
  (void)q.get();
  q.task_done();
  joiner.join();
  EXPECT_TRUE(joined.load());
}

// A stop request wakes only the calls that hold its token.
TYPED_TEST(CancelAny, StopWakesOnlyItsOwnWaiter) {
  auto q = make_queue<TypeParam>();
  std::stop_source source;
  std::vector<std::atomic<Outcome>> outcome(3);
  for (auto& o : outcome) o = Outcome::pending;
  std::vector<std::atomic<int>> got(3);
  for (auto& g : got) g = -1;
  std::stop_source other;
  Threads getters(3, [&](std::size_t i) {
    switch (i) {
      case 0:
        outcome[i] = get_with(q, GetForm::get, source.get_token(), got[i]);
        break;
      case 1:
        outcome[i] = get_with(q, GetForm::get, other.get_token(), got[i]);
        break;
      case 2:
        outcome[i] = outcome_of([&] { got[i] = static_cast<int>(q.get()); });
        break;
    }
  });
  ASSERT_TRUE(blocked(getters));
  source.request_stop();
  ASSERT_TRUE(weft_test::eventually([&] { return getters.finished(0); }));
  ASSERT_TRUE(blocked(getters, {1, 2})) << "a stop request woke a call without its token";
  q.put(1);
  q.put(2);
  getters.join();
  EXPECT_EQ(outcome[0].load(), Outcome::cancelled);
  EXPECT_EQ(outcome[1].load(), Outcome::ok);
  EXPECT_EQ(outcome[2].load(), Outcome::ok);
  EXPECT_EQ(got[1].load() + got[2].load(), 3);
}

// A std::stop_token without a stop state (default-constructed) never cancels: the call
// waits as the plain form does.
TYPED_TEST(CancelAny, TokenWithoutStopStateBlocksUntilServed) {
  auto q = make_queue<TypeParam>();
  std::atomic<int> got{-1};
  std::atomic<Outcome> outcome{Outcome::pending};
  Threads getter(1,
                 [&](std::size_t) { outcome = get_with(q, GetForm::get, std::stop_token{}, got); });
  ASSERT_TRUE(blocked(getter));
  q.put(4);
  getter.join();
  EXPECT_EQ(outcome.load(), Outcome::ok);
  EXPECT_EQ(got.load(), 4);
}

// Timed forms with a token that is never stopped time out as usual.
TYPED_TEST(CancelAny, TimedGetWithTokenTimesOut) {
  auto q = make_queue<TypeParam>();
  std::stop_source source;
  auto start = Clock::now();
  EXPECT_THROW((void)q.get(50ms, source.get_token()), weft::Empty);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(q.try_get(0.05s, source.get_token()).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
}

TYPED_TEST(CancelTask, TimedPutAndJoinWithTokenTimeOut) {
  auto q = make_queue<TypeParam>(1);
  q.put(1);
  std::stop_source source;
  auto start = Clock::now();
  EXPECT_THROW(q.put(2, 50ms, source.get_token()), weft::Full);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(q.try_put(2, 50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(q.join(50ms, source.get_token()));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  EXPECT_EQ(q.qsize(), 1u);
}

// After shutdown the token forms report ShutDown as the plain ones do (not Cancelled).
TYPED_TEST(CancelTask, ShutdownWakesTokenFormsWithShutDown) {
  auto q = make_queue<TypeParam>();
  std::stop_source source;
  std::atomic<int> got{-1};
  std::vector<std::atomic<Outcome>> outcome(2);
  for (auto& o : outcome) o = Outcome::pending;
  Threads getters(2, [&](std::size_t i) {
    outcome[i] = outcome_of([&] {
      if (i == 0) {
        got = static_cast<int>(q.get(source.get_token()));
      } else if (!q.try_get(1h, source.get_token())) {
        throw weft::ShutDown();  // nullopt: expected
      }
    });
  });
  ASSERT_TRUE(blocked(getters));
  (void)q.shutdown();
  getters.join();
  for (auto& o : outcome) EXPECT_EQ(o.load(), Outcome::shut_down);
}

// ---------------------------------------------------------------------------------------
// Races between a stop request and the operation that would serve the call

// A getter with a token races a put and a stop request: it either gets the item, or is
// cancelled and the item stays in the queue. Never both, never neither.
TYPED_TEST(CancelAny, StopRacingPutIsAllOrNothing) {
  auto q = make_queue<TypeParam>();
  const std::size_t rounds = scaled(500, 100);
  std::size_t cancelled = 0;
  for (std::size_t round = 0; round < rounds; ++round) {
    std::stop_source source;
    std::atomic<int> got{-1};
    std::atomic<Outcome> outcome{Outcome::pending};
    std::latch go(3);
    {
      Threads threads(2, [&](std::size_t i) {
        go.arrive_and_wait();
        if (i == 0) {
          outcome = get_with(q, kGetForms[round % 4], source.get_token(), got);
        } else {
          source.request_stop();
        }
      });
      go.arrive_and_wait();
      q.put(static_cast<int>(round));
    }
    if (outcome.load() == Outcome::ok) {
      ASSERT_EQ(got.load(), static_cast<int>(round));
      ASSERT_TRUE(q.empty()) << "round " << round;
    } else {
      ASSERT_EQ(outcome.load(), Outcome::cancelled);
      ASSERT_EQ(drain_ints(q), std::vector<int>{static_cast<int>(round)}) << "round " << round;
      ++cancelled;
    }
  }
  // Not an assertion on the split (timing decides it), only a sanity note in the log.
  ::testing::Test::RecordProperty("cancelled_rounds", static_cast<int>(cancelled));
}

// A putter with a token on a full queue races a get and a stop request: its item is either
// in the queue or still with it.
TYPED_TEST(CancelTask, StopRacingGetIsAllOrNothing) {
  auto q = make_queue<TypeParam, IntPtr>(1);
  const std::size_t rounds = scaled(500, 100);
  for (std::size_t round = 0; round < rounds; ++round) {
    q.put(std::make_unique<int>(-1));
    std::stop_source source;
    std::atomic<Outcome> outcome{Outcome::pending};
    std::atomic<bool> kept{false};
    std::latch go(3);
    IntPtr got;
    {
      Threads threads(2, [&](std::size_t i) {
        go.arrive_and_wait();
        if (i == 0) {
          auto item = std::make_unique<int>(static_cast<int>(round));
          outcome = put_with(q, kPutForms[round % 4], source.get_token(), item);
          kept = item != nullptr;
        } else {
          source.request_stop();
        }
      });
      go.arrive_and_wait();
      got = q.get();
    }
    ASSERT_EQ(*got, -1);
    if (outcome.load() == Outcome::ok) {
      ASSERT_FALSE(kept.load());
      ASSERT_EQ(q.qsize(), 1u) << "round " << round;
      ASSERT_EQ(*q.get_nowait(), static_cast<int>(round));
    } else {
      ASSERT_EQ(outcome.load(), Outcome::cancelled);
      ASSERT_TRUE(kept.load()) << "round " << round;
      ASSERT_TRUE(q.empty()) << "round " << round;
    }
    q.task_done();
    if (outcome.load() == Outcome::ok) q.task_done();
    ASSERT_EQ(q.unfinished_tasks(), 0u) << "round " << round;
  }
}

// Two getters, the first with a token. A put and a stop request race: if the first getter
// is cancelled, the item must reach the second; a wake-up spent on the cancelled getter
// would leave the second blocked beside the item.
TYPED_TEST(CancelAny, CancelledGetterDoesNotSwallowTheWakeUp) {
  auto q = make_queue<TypeParam>();
  const std::size_t rounds = scaled(200, 40);
  for (std::size_t round = 0; round < rounds; ++round) {
    std::stop_source source;
    std::vector<std::atomic<int>> got(2);
    for (auto& g : got) g = -1;
    std::vector<std::atomic<Outcome>> outcome(2);
    for (auto& o : outcome) o = Outcome::pending;
    std::latch second_may_start(1);
    Threads getters(2, [&](std::size_t i) {
      if (i == 0) {
        outcome[i] = get_with(q, GetForm::get, source.get_token(), got[i]);
      } else {
        second_may_start.wait();
        outcome[i] = outcome_of([&] { got[i] = static_cast<int>(q.get()); });
      }
    });
    ASSERT_TRUE(blocked(getters, {0}));
    second_may_start.count_down();
    ASSERT_TRUE(blocked(getters, {1}));
    {
      std::latch go(2);
      Threads stopper(1, [&](std::size_t) {
        go.arrive_and_wait();
        source.request_stop();
      });
      go.arrive_and_wait();
      q.put(1);
    }
    ASSERT_TRUE(weft_test::eventually([&] { return getters.finished(0); }));
    if (outcome[0].load() == Outcome::ok) {
      q.put(2);  // the first getter had the item: serve the second
    }
    const bool second_done = weft_test::eventually([&] { return getters.finished(1); }, 20s);
    EXPECT_TRUE(second_done) << "round " << round
                             << ": the second getter stayed blocked beside an item";
    if (!second_done) q.put(3);
    getters.join();
    ASSERT_EQ(outcome[1].load(), Outcome::ok);
    EXPECT_TRUE(q.empty());
    if (!second_done) return;
  }
}

// ---------------------------------------------------------------------------------------
// std::jthread worker loops

// The loop the token forms exist for: `while (auto job = q.try_get(st))` ends when the
// jthread is asked to stop, even while the worker is blocked on an empty queue.
TYPED_TEST(CancelAny, JthreadWorkerLoopEndsOnRequestStop) {
  auto q = make_queue<TypeParam>();
  constexpr int kJobs = 20;
  std::latch processed(kJobs);
  std::atomic<int> sum{0};
  std::atomic<pid_t> worker_tid{0};
  std::atomic<bool> loop_ended{false};
  std::jthread worker([&](std::stop_token st) {
    worker_tid = weft_test::current_tid();
    while (auto job = q.try_get(st)) {
      sum += static_cast<int>(*job);
      processed.count_down();
    }
    loop_ended = true;
  });
  for (int i = 1; i <= kJobs; ++i) q.put(i);
  processed.wait();
  EXPECT_EQ(sum.load(), kJobs * (kJobs + 1) / 2);
  ASSERT_TRUE(weft_test::eventually([&] { return worker_tid.load() != 0; }));
  ASSERT_TRUE(weft_test::wait_blocked(worker_tid.load())) << "the worker should wait for work";
  EXPECT_FALSE(loop_ended.load());
  const auto start = Clock::now();
  worker.request_stop();
  worker.join();
  EXPECT_TRUE(woken_promptly(elapsed_since(start)));
  EXPECT_TRUE(loop_ended.load());
  EXPECT_TRUE(q.empty());
}

// The same loop over consume(st) (the kinds that have consume()).
TYPED_TEST(CancelTask, JthreadConsumeLoopEndsOnRequestStop) {
  auto q = make_queue<TypeParam>(4);
  constexpr int kJobs = 20;
  std::atomic<int> sum{0};
  std::atomic<pid_t> worker_tid{0};
  std::atomic<bool> loop_ended{false};
  std::jthread worker([&](std::stop_token st) {
    worker_tid = weft_test::current_tid();
    for (auto job : q.consume(st)) {
      sum += static_cast<int>(job);
      q.task_done();
    }
    loop_ended = true;
  });
  for (int i = 1; i <= kJobs; ++i) q.put(i);
  q.join();
  EXPECT_EQ(sum.load(), kJobs * (kJobs + 1) / 2);
  ASSERT_TRUE(weft_test::eventually([&] { return worker_tid.load() != 0; }));
  ASSERT_TRUE(weft_test::wait_blocked(worker_tid.load()));
  EXPECT_FALSE(loop_ended.load());
  worker.request_stop();
  worker.join();
  EXPECT_TRUE(loop_ended.load());
  EXPECT_FALSE(q.is_shutdown()) << "a stopped consumer does not shut the queue down";
  q.put(99);  // the queue still works
  EXPECT_EQ(static_cast<int>(q.get()), 99);
}

// A stop requested while the worker is busy (not blocked) ends the loop at its next
// try_get, even though more work is queued; the queued work stays in the queue.
TYPED_TEST(CancelAny, StopRequestedWhileBusyEndsLoopWithWorkLeft) {
  auto q = make_queue<TypeParam>();
  for (int i = 0; i < 5; ++i) q.put(i);
  std::latch first_taken(1);
  std::latch stop_requested(1);
  std::atomic<int> taken{0};
  std::jthread worker([&](std::stop_token st) {
    while (auto job = q.try_get(st)) {
      if (taken.fetch_add(1) == 0) {
        first_taken.count_down();
        stop_requested.wait();
      }
    }
  });
  first_taken.wait();
  worker.request_stop();
  stop_requested.count_down();
  worker.join();
  // The token was stopped before the second try_get: it may have taken nothing more (or,
  // if the implementation lets a ready get through, more); items are never lost either way.
  EXPECT_EQ(static_cast<std::size_t>(taken.load()) + q.qsize(), 5u);
  EXPECT_GE(taken.load(), 1);
}

}  // namespace
