// SPDX-License-Identifier: MIT
// Conformance tests for what weft's queues do with their items (docs/api.md: Queues, "Nothing is
// lost"; queue.hpp's guarantees): move-only items, object lifetimes (no leak, no double
// destruction, nothing kept after a get), items whose copy or move throws, PriorityQueue's
// comparator (stable order of equal items, custom Compare, Compare as the only comparison,
// a Compare that throws).
//
// CPython's FailingQueueTest makes _put/_get raise and checks that the queue "isn't
// damaged"; here the item's own copy/move or the comparator raises, which is where a C++
// queue meets foreign exceptions.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/event.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::blocked;
using weft_test::Boom;
using weft_test::ComparatorBoom;
using weft_test::CompareControl;
using weft_test::Explosive;
using weft_test::in_get_order;
using weft_test::make_queue;
using weft_test::Order;
using weft_test::Outcome;
using weft_test::outcome_of;
using weft_test::QueueFor;
using weft_test::Threads;
using weft_test::ThrowingLess;
using weft_test::Tracked;
using weft_test::tracked_counters;
using weft_test::TrackedMoveMayThrow;

// weft::Queue appears once: its storage follows the item type (the ring for a bounded queue
// of nothrow-movable items, else the locked deque), and the tests below use both kinds of
// item.
template <class Kind>
class Items : public ::testing::Test {};
using ItemKinds = ::testing::Types<weft_test::FifoKind, weft_test::LifoKind,
                                   weft_test::PriorityKind, weft_test::SimpleKind>;
TYPED_TEST_SUITE(Items, ItemKinds, weft_test::KindNames);

template <class Kind>
class TaskItems : public ::testing::Test {};
using TaskItemKinds =
    ::testing::Types<weft_test::FifoKind, weft_test::LifoKind, weft_test::PriorityKind>;
TYPED_TEST_SUITE(TaskItems, TaskItemKinds, weft_test::KindNames);

using IntPtr = std::unique_ptr<int>;

// The raw pointers of `items` in the order a queue of Kind returns them (a PriorityQueue of
// unique_ptr orders by address, as std::less<unique_ptr> does).
template <class Kind>
std::vector<int*> pointers_in_get_order(const std::vector<IntPtr>& items) {
  std::vector<int*> raw;
  for (const auto& p : items) raw.push_back(p.get());
  if constexpr (Kind::kOrder == Order::priority) {
    std::stable_sort(raw.begin(), raw.end(), std::less<int*>());
    return raw;
  } else {
    return in_get_order<Kind>(raw);
  }
}

// ---------------------------------------------------------------------------------------
// Move-only items

static_assert(!std::is_copy_constructible_v<IntPtr>);

TYPED_TEST(Items, MoveOnlyItemsGoThroughEveryForm) {
  auto q = make_queue<TypeParam, IntPtr>();
  std::vector<IntPtr> originals;
  for (int i = 0; i < 6; ++i) originals.push_back(std::make_unique<int>(i));
  const std::vector<int*> expected = pointers_in_get_order<TypeParam>(originals);
  std::stop_source never_stopped;

  q.put(std::move(originals[0]));
  q.put_nowait(std::move(originals[1]));
  EXPECT_TRUE(q.try_put(std::move(originals[2])));
  q.put(std::move(originals[3]), 1s);
  EXPECT_TRUE(q.try_put(std::move(originals[4]), 1s));
  q.put(std::move(originals[5]), never_stopped.get_token());
  for (const auto& p : originals) EXPECT_EQ(p, nullptr) << "a successful put moves the item in";
  EXPECT_EQ(q.qsize(), 6u);

  std::vector<IntPtr> got;
  got.push_back(q.get());
  got.push_back(q.get_nowait());
  got.push_back(q.get(1s));
  got.push_back(*q.try_get());
  got.push_back(*q.try_get(1s));
  got.push_back(q.get(never_stopped.get_token()));
  std::vector<int*> got_raw;
  for (const auto& p : got) got_raw.push_back(p.get());
  EXPECT_EQ(got_raw, expected);
  for (const auto& p : got) ASSERT_NE(p, nullptr);
  EXPECT_TRUE(q.empty());
}

// docs/api.md: every put form moves from its item only when the put succeeds.
// NOLINTBEGIN(bugprone-use-after-move): failed puts must leave the item; the test reads it
TYPED_TEST(TaskItems, FailedPutLeavesMoveOnlyItemWithCaller) {
  auto q = make_queue<TypeParam, IntPtr>(1);
  q.put(std::make_unique<int>(0));
  auto item = std::make_unique<int>(42);
  int* const raw = item.get();

  EXPECT_THROW(q.put_nowait(std::move(item)), weft::Full);
  EXPECT_EQ(item.get(), raw);
  EXPECT_THROW(q.put(std::move(item), 10ms), weft::Full);
  EXPECT_EQ(item.get(), raw);
  EXPECT_FALSE(q.try_put(std::move(item)));
  EXPECT_EQ(item.get(), raw);
  EXPECT_FALSE(q.try_put(std::move(item), 10ms));
  EXPECT_EQ(item.get(), raw);
  EXPECT_EQ(q.qsize(), 1u);

  (void)q.shutdown();
  (void)q.get();  // room now, but shut down: ShutDown, not Full, and still nothing taken
  EXPECT_THROW(q.put(std::move(item)), weft::ShutDown);
  EXPECT_EQ(item.get(), raw);
  EXPECT_THROW(q.put_nowait(std::move(item)), weft::ShutDown);
  EXPECT_EQ(item.get(), raw);
  EXPECT_THROW(q.put(std::move(item), 10ms), weft::ShutDown);
  EXPECT_EQ(item.get(), raw);
  EXPECT_FALSE(q.try_put(std::move(item)));
  EXPECT_EQ(item.get(), raw);
  EXPECT_FALSE(q.try_put(std::move(item), 10ms));
  EXPECT_EQ(item.get(), raw);
  EXPECT_EQ(*item, 42);
  EXPECT_TRUE(q.empty());
}
// NOLINTEND(bugprone-use-after-move)

// A putter blocked on a full queue keeps its item when shutdown() wakes it.
TYPED_TEST(TaskItems, PutterWokenByShutdownKeepsItsItem) {
  auto q = make_queue<TypeParam, IntPtr>(1);
  q.put(std::make_unique<int>(0));
  std::atomic<Outcome> outcome{Outcome::pending};
  std::atomic<bool> kept{false};
  Threads putter(1, [&](std::size_t) {
    auto item = std::make_unique<int>(7);
    int* const raw = item.get();
    outcome = outcome_of([&] { q.put(std::move(item)); });
    kept = item.get() == raw && *item == 7;
  });
  ASSERT_TRUE(blocked(putter));
  (void)q.shutdown(true);
  putter.join();
  EXPECT_EQ(outcome.load(), Outcome::shut_down);
  EXPECT_TRUE(kept.load());
}

TYPED_TEST(TaskItems, ShutdownImmediateReturnsMoveOnlyItemsInGetOrder) {
  auto q = make_queue<TypeParam, IntPtr>();
  std::vector<IntPtr> originals;
  for (int i = 0; i < 5; ++i) originals.push_back(std::make_unique<int>(i));
  const std::vector<int*> expected = pointers_in_get_order<TypeParam>(originals);
  for (auto& p : originals) q.put(std::move(p));
  const std::vector<IntPtr> removed = q.shutdown(true);
  std::vector<int*> removed_raw;
  for (const auto& p : removed) removed_raw.push_back(p.get());
  EXPECT_EQ(removed_raw, expected);
  EXPECT_TRUE(q.join(0s));
}

TYPED_TEST(TaskItems, ConsumeMoveOnlyItems) {
  auto q = make_queue<TypeParam, IntPtr>(8);
  std::vector<IntPtr> originals;
  for (int i = 0; i < 5; ++i) originals.push_back(std::make_unique<int>(10 * i));
  const std::vector<int*> expected = pointers_in_get_order<TypeParam>(originals);
  for (auto& p : originals) q.put(std::move(p));
  (void)q.shutdown();
  std::vector<int*> got;
  int sum = 0;
  for (IntPtr p : q.consume()) {  // by value: the range hands each item over by move
    ASSERT_NE(p, nullptr);
    got.push_back(p.get());
    sum += *p;
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(sum, 100);
}

// ---------------------------------------------------------------------------------------
// Lifetimes: every item constructed is destroyed exactly once, whatever path it took.

// Puts and gets through every form, leaves some items inside, destroys the queue.
template <class Kind, class T>
void put_get_then_destroy(std::ptrdiff_t maxsize) {
  const long live_before = tracked_counters().live.load();
  const long errors_before = tracked_counters().errors.load();
  {
    auto q = make_queue<Kind, T>(maxsize);
    T lvalue(100);
    q.put(T(1));
    q.put(lvalue);  // a copy goes in, the original stays
    q.put_nowait(T(2));
    EXPECT_TRUE(q.try_put(T(3)));
    q.put(T(4), 1s);
    EXPECT_TRUE(q.try_put(T(5), 1s));
    EXPECT_EQ(lvalue.id(), 100);
    EXPECT_EQ(tracked_counters().live.load() - live_before, 7) << "6 queued + the lvalue";
    {
      T a = q.get();
      T b = q.get_nowait();
      std::optional<T> c = q.try_get();
      EXPECT_TRUE(c.has_value());
      EXPECT_NE(a.id(), -1);
      EXPECT_NE(b.id(), -1);
    }
    // Python test_references: a queue keeps nothing of an item it handed out.
    EXPECT_EQ(tracked_counters().live.load() - live_before, static_cast<long>(q.qsize()) + 1);
    EXPECT_EQ(q.qsize(), 3u);
  }  // destroyed with 3 items inside
  EXPECT_EQ(tracked_counters().live.load(), live_before) << "leak or double destruction";
  EXPECT_EQ(tracked_counters().errors.load(), errors_before);
}

TYPED_TEST(Items, EveryItemIsDestroyedExactlyOnce) {
  put_get_then_destroy<TypeParam, Tracked>(0);
  put_get_then_destroy<TypeParam, Tracked>(16);  // weft::Queue: the ring
  put_get_then_destroy<TypeParam, TrackedMoveMayThrow>(0);
  put_get_then_destroy<TypeParam, TrackedMoveMayThrow>(16);
}

// A bounded queue cycled through many laps (the ring wraps around) and destroyed part full.
template <class Kind, class T>
void wrap_around_then_destroy() {
  const long live_before = tracked_counters().live.load();
  const long errors_before = tracked_counters().errors.load();
  {
    auto q = make_queue<Kind, T>(4);
    int next = 0;
    std::vector<int> ids;
    for (int round = 0; round < 37; ++round) {
      for (int k = 0; k < 3; ++k) q.put(T(next++));
      for (int k = 0; k < 3; ++k) ids.push_back(q.get().id());
      ASSERT_EQ(tracked_counters().live.load() - live_before, 0) << "round " << round;
    }
    std::sort(ids.begin(), ids.end());
    for (int i = 0; i < next; ++i) ASSERT_EQ(ids[static_cast<std::size_t>(i)], i);
    for (int k = 0; k < 3; ++k) q.put(T(next++));
  }
  EXPECT_EQ(tracked_counters().live.load(), live_before);
  EXPECT_EQ(tracked_counters().errors.load(), errors_before);
}

TYPED_TEST(TaskItems, WrappedBoundedQueueDestroysWhatItHolds) {
  wrap_around_then_destroy<TypeParam, Tracked>();
  wrap_around_then_destroy<TypeParam, TrackedMoveMayThrow>();
}

template <class Kind, class T>
void shutdown_then_destroy(bool immediate) {
  const long live_before = tracked_counters().live.load();
  const long errors_before = tracked_counters().errors.load();
  {
    auto q = make_queue<Kind, T>(8);
    for (int i = 0; i < 6; ++i) q.put(T(i));
    (void)q.get();
    {
      std::vector<T> removed = q.shutdown(immediate);
      EXPECT_EQ(removed.size(), immediate ? 5u : 0u);
      EXPECT_EQ(tracked_counters().live.load() - live_before, 5);
    }
    EXPECT_EQ(tracked_counters().live.load() - live_before, immediate ? 0 : 5);
    // Failed puts construct nothing that outlives them, and destroy nothing of the caller's.
    T refused(99);
    // NOLINTBEGIN(bugprone-use-after-move): failed puts must leave the item; the test reads it
    EXPECT_THROW(q.put(std::move(refused)), weft::ShutDown);
    EXPECT_THROW(q.put(refused), weft::ShutDown);
    EXPECT_FALSE(q.try_put(std::move(refused)));
    EXPECT_EQ(refused.id(), 99);
    // NOLINTEND(bugprone-use-after-move)
    if (!immediate) {
      T one = q.get();
      EXPECT_NE(one.id(), -1);
    }
  }
  EXPECT_EQ(tracked_counters().live.load(), live_before);
  EXPECT_EQ(tracked_counters().errors.load(), errors_before);
}

TYPED_TEST(TaskItems, ShutdownNeitherLeaksNorDoubleDestroys) {
  for (const bool immediate : {false, true}) {
    shutdown_then_destroy<TypeParam, Tracked>(immediate);
    shutdown_then_destroy<TypeParam, TrackedMoveMayThrow>(immediate);
  }
}

// ---------------------------------------------------------------------------------------
// Items whose copy or move throws (CPython FailingQueueTest): a failed put or get changes
// nothing, and the item stays with the caller.

template <class Q>
std::vector<int> explosive_contents(Q& q) {
  std::vector<int> out;
  while (auto item = q.try_get()) out.push_back(item->value());
  return out;
}

template <class Q>
void put_values(Q& q, const std::vector<int>& values) {
  for (int v : values) q.put(Explosive(v));
}

// Arms Explosive so that the next put succeeds and the first move out of the queue after
// it throws: the put's own moves are counted on a probe queue of the same kind.
template <class Kind>
void fail_first_move_out_after_next_put() {
  auto probe = make_queue<Kind, Explosive>();
  const long before = Explosive::transfers();
  probe.put(Explosive(0));
  const long put_moves = Explosive::transfers() - before;
  Explosive::fail_nth_transfer(static_cast<int>(put_moves) + 1);
}

TYPED_TEST(Items, PutWhoseCopyThrowsChangesNothing) {
  auto q = make_queue<TypeParam, Explosive>();
  put_values(q, {3, 1, 2});
  const Explosive item(9);
  std::stop_source never_stopped;
  const std::stop_token stop = never_stopped.get_token();
  for (int form = 0; form < 9; ++form) {
    SCOPED_TRACE(form);
    item.fail_next_copy();
    switch (form) {
      case 0:
        EXPECT_THROW(q.put(item), Boom);
        break;
      case 1:
        EXPECT_THROW(q.put(item, 1s), Boom);
        break;
      case 2:
        EXPECT_THROW(q.put_nowait(item), Boom);
        break;
      case 3:
        EXPECT_THROW((void)q.try_put(item), Boom);
        break;
      case 4:
        EXPECT_THROW((void)q.try_put(item, 1s), Boom);
        break;
      case 5:
        EXPECT_THROW(q.put(item, stop), Boom);
        break;
      case 6:
        EXPECT_THROW((void)q.try_put(item, stop), Boom);
        break;
      case 7:
        EXPECT_THROW(q.put(item, 1s, stop), Boom);
        break;
      case 8:
        EXPECT_THROW((void)q.try_put(item, 1s, stop), Boom);
        break;
    }
    EXPECT_EQ(item.value(), 9);
    EXPECT_EQ(q.qsize(), 3u);
    if constexpr (TypeParam::kTasks) {
      EXPECT_EQ(q.unfinished_tasks(), 3u);
    }
  }
  EXPECT_EQ(explosive_contents(q), in_get_order<TypeParam>(std::vector<int>{3, 1, 2}));
}

// Every const T& form puts a copy and leaves the caller's item as it was, whether the put
// succeeds or fails (full, or a stop already requested).
TYPED_TEST(TaskItems, CopyFormsPutACopyAndKeepTheOriginal) {
  auto q = make_queue<TypeParam, std::string>(9);
  const std::string item = "a string long enough to live on the heap, not in the SSO buffer";
  std::stop_source never_stopped;
  const std::stop_token stop = never_stopped.get_token();
  q.put(item);
  q.put(item, 1s);
  q.put_nowait(item);
  EXPECT_TRUE(q.try_put(item));
  EXPECT_TRUE(q.try_put(item, 1s));
  q.put(item, stop);
  EXPECT_TRUE(q.try_put(item, stop));
  q.put(item, 1s, stop);
  EXPECT_TRUE(q.try_put(item, 1s, stop));
  EXPECT_EQ(q.qsize(), 9u);
  EXPECT_TRUE(q.full());
  // Full: the failing forms.
  EXPECT_FALSE(q.try_put(item));
  EXPECT_FALSE(q.try_put(item, 1ms));
  EXPECT_FALSE(q.try_put(item, 1ms, stop));
  EXPECT_THROW(q.put(item, 1ms), weft::Full);
  EXPECT_THROW(q.put(item, 1ms, stop), weft::Full);
  EXPECT_THROW(q.put_nowait(item), weft::Full);
  // Stopped before it could proceed.
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_FALSE(q.try_put(item, stopped.get_token()));
  EXPECT_THROW(q.put(item, stopped.get_token()), weft::Cancelled);
  EXPECT_EQ(item.size(), 63u);
  EXPECT_EQ(q.qsize(), 9u);
  EXPECT_EQ(q.unfinished_tasks(), 9u);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(q.get(), item);
}

// shutdown(true) of items whose move may throw copies them out, and removes them only once
// every copy has arrived: a copy that throws leaves every item queued (and the tasks
// unfinished), the queue shut down, and the blocked putter released with its item. A second
// shutdown(true) then returns them all.
TYPED_TEST(TaskItems, ShutdownImmediateIsAllOrNothing) {
  const std::vector<int> values = {3, 1, 4, 1, 5};
  for (int n = 1; n <= static_cast<int>(values.size()); ++n) {
    SCOPED_TRACE(n);
    auto q = make_queue<TypeParam, Explosive>(static_cast<std::ptrdiff_t>(values.size()));
    put_values(q, values);
    std::atomic<Outcome> outcome{Outcome::pending};
    std::atomic<int> kept{-2};
    Threads putter(1, [&](std::size_t) {
      Explosive item(9);
      outcome = outcome_of([&] { q.put(std::move(item)); });
      kept = item.value();
    });
    ASSERT_TRUE(blocked(putter));
    Explosive::fail_nth_transfer(n);
    EXPECT_THROW((void)q.shutdown(true), Boom);
    Explosive::disarm();
    putter.join();
    EXPECT_EQ(outcome.load(), Outcome::shut_down) << "the putter was not released";
    EXPECT_EQ(kept.load(), 9);
    EXPECT_TRUE(q.is_shutdown());
    EXPECT_EQ(q.qsize(), values.size());
    EXPECT_EQ(q.unfinished_tasks(), values.size());
    std::vector<int> removed;
    for (const Explosive& e : q.shutdown(true)) removed.push_back(e.value());
    EXPECT_EQ(removed, in_get_order<TypeParam>(values));
    EXPECT_EQ(q.qsize(), 0u);
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_TRUE(q.join(0s));
  }
}

// NOLINTBEGIN(bugprone-use-after-move): failed puts must leave the item; the test reads it
TYPED_TEST(Items, PutWhoseMoveThrowsChangesNothing) {
  auto q = make_queue<TypeParam, Explosive>();
  put_values(q, {3, 1, 2});
  Explosive item(9);
  std::stop_source never_stopped;
  for (int form = 0; form < 6; ++form) {
    SCOPED_TRACE(form);
    item.fail_next_move();
    switch (form) {
      case 0:
        EXPECT_THROW(q.put(std::move(item)), Boom);
        break;
      case 1:
        EXPECT_THROW(q.put(std::move(item), 1s), Boom);
        break;
      case 2:
        EXPECT_THROW(q.put_nowait(std::move(item)), Boom);
        break;
      case 3:
        EXPECT_THROW((void)q.try_put(std::move(item)), Boom);
        break;
      case 4:
        EXPECT_THROW((void)q.try_put(std::move(item), 1s), Boom);
        break;
      case 5:
        EXPECT_THROW(q.put(std::move(item), never_stopped.get_token()), Boom);
        break;
    }
    EXPECT_EQ(item.value(), 9) << "the item left the caller";
    EXPECT_EQ(q.qsize(), 3u);
    if constexpr (TypeParam::kTasks) {
      EXPECT_EQ(q.unfinished_tasks(), 3u);
    }
  }
  // Still a working queue, and the item can still be put.
  q.put(std::move(item));
  EXPECT_EQ(explosive_contents(q), in_get_order<TypeParam>(std::vector<int>{3, 1, 2, 9}));
}
// NOLINTEND(bugprone-use-after-move)

// Puts {3, 1, 4, 1, 5} into `q`, then gets them all with get_one(form) (which returns the
// value got), form = 0 .. forms-1 in turn, each retried with the n-th move from now failing,
// n = 1, 2, ..., until it succeeds. A failed attempt must leave the queue as it was; a
// successful one returns the next item in get order.
template <class Kind, class Q, class GetOne>
void sweep_failing_moves(Q& q, int forms, GetOne get_one) {
  const std::vector<int> values = {3, 1, 4, 1, 5};
  put_values(q, values);
  std::vector<int> expected = in_get_order<Kind>(values);
  for (int form = 0; form < forms; ++form) {
    SCOPED_TRACE(form);
    ASSERT_FALSE(expected.empty());
    bool settled = false;
    for (int n = 1; n <= 4 && !settled; ++n) {
      const std::size_t size_before = q.qsize();
      int value = -2;
      Explosive::fail_nth_transfer(n);
      const Outcome o = outcome_of([&] { value = get_one(form); });
      Explosive::disarm();
      if (o == Outcome::ok) {
        EXPECT_EQ(value, expected.front());
        EXPECT_EQ(q.qsize(), size_before - 1);
        expected.erase(expected.begin());
        settled = true;
      } else {
        ASSERT_EQ(o, Outcome::boom);
        ASSERT_EQ(q.qsize(), size_before) << "a get that threw on move " << n << " took the item";
      }
    }
    EXPECT_TRUE(settled);
  }
  EXPECT_TRUE(q.empty());
}

// A get whose move out of the queue throws leaves the item in the queue, whichever of the
// moves on the way to the caller throws (CPython: fail_next_get, "Queue should not be
// empty"). Each get form is retried with the n-th move from now failing, n = 1, 2, ...
// until it succeeds; a failed attempt must leave the queue as it was.
// Regression: get() used to pop into an optional and then move out, so a throwing second
// move lost the item; it now builds its result in place from the storage.
TYPED_TEST(Items, GetWhoseMoveThrowsLosesNothing) {
  auto q = make_queue<TypeParam, Explosive>();
  // Results are initialized from the call (no move of the test's own in between).
  sweep_failing_moves<TypeParam>(q, 5, [&](int form) {
    switch (form) {
      case 0: {
        const Explosive e = q.get();
        return e.value();
      }
      case 1: {
        const Explosive e = q.get_nowait();
        return e.value();
      }
      case 2: {
        const Explosive e = q.get(1s);
        return e.value();
      }
      case 3: {
        const std::optional<Explosive> e = q.try_get();
        return e ? e->value() : -3;
      }
      default: {
        const std::optional<Explosive> e = q.try_get(1s);
        return e ? e->value() : -3;
      }
    }
  });
}

// CPython failing_queue_test's "failing blocking put": a putter blocked on a full queue is
// woken by a get, then its item's move throws. The put fails with that exception, the
// caller keeps the item, the queue is not damaged.
TYPED_TEST(TaskItems, WokenPutWhoseMoveThrowsChangesNothing) {
  for (const bool timed : {false, true}) {
    SCOPED_TRACE(timed ? "put(item, 60s)" : "put(item)");
    auto q = make_queue<TypeParam, Explosive>(3);
    put_values(q, {3, 1, 2});
    std::atomic<Outcome> outcome{Outcome::pending};
    std::atomic<int> kept{-2};
    Threads putter(1, [&](std::size_t) {
      Explosive item(9);
      item.fail_next_move();
      outcome = outcome_of([&] {
        if (timed) {
          q.put(std::move(item), 60s);
        } else {
          q.put(std::move(item));
        }
      });
      kept = item.value();
    });
    ASSERT_TRUE(blocked(putter));
    const int first = q.get().value();
    putter.join();
    EXPECT_EQ(outcome.load(), Outcome::boom);
    EXPECT_EQ(kept.load(), 9);
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ(q.unfinished_tasks(), 3u) << "the failed put counted a task";
    q.put(Explosive(9));
    std::vector<int> all = explosive_contents(q);
    all.insert(all.begin(), first);
    EXPECT_EQ(all.size(), 4u);
    if constexpr (TypeParam::kOrder == Order::fifo) {
      EXPECT_EQ(all, (std::vector<int>{3, 1, 2, 9}));
    }
  }
}

// A putter that was woken and then failed must not take the wake-up with it: the slot it
// was woken for is still free, and another blocked putter must get it (queue_core.hpp:
// "a wake-up is never dropped"). A lost wake-up leaves the second putter blocked beside a
// free slot.
// Regression: a woken waiter whose retry threw used to keep the wake-up.
TYPED_TEST(TaskItems, PutterWokenThenFailingPassesTheWakeUpOn) {
  auto q = make_queue<TypeParam, Explosive>(2);
  put_values(q, {1, 2});
  std::vector<std::atomic<Outcome>> outcome(2);
  for (auto& o : outcome) o = Outcome::pending;
  std::latch second_may_start(1);
  Threads putters(2, [&](std::size_t i) {
    if (i == 1) second_may_start.wait();
    Explosive item(10 + static_cast<int>(i));
    if (i == 0) item.fail_next_move();
    outcome[i] = outcome_of([&] { q.put(std::move(item)); });
  });
  ASSERT_TRUE(blocked(putters, {0}));  // putter 0 waits longest: the get wakes it first
  second_may_start.count_down();
  ASSERT_TRUE(blocked(putters, {1}));
  (void)q.get();
  const bool second_done = weft_test::eventually([&] { return putters.finished(1); }, 10s);
  EXPECT_TRUE(second_done) << "the second putter stayed blocked with a free slot (lost wake-up)";
  if (!second_done) (void)q.shutdown();  // release it, so that the test can end
  putters.join();
  EXPECT_EQ(outcome[0].load(), Outcome::boom);
  if (second_done) {
    EXPECT_EQ(outcome[1].load(), Outcome::ok);
    EXPECT_EQ(q.qsize(), 2u);
  }
}

// The same for getters: a getter woken by a put whose move out of the queue then throws
// leaves the item in the queue, and another blocked getter must be woken for it.
TYPED_TEST(Items, GetterWokenThenFailingPassesTheWakeUpOn) {
  // The first getter is a plain get(), then a select over the queue (a select woken for the
  // item passes the wake-up on as well).
  for (const bool first_selects : {false, true}) {
    SCOPED_TRACE(first_selects ? "select(get(q))" : "get()");
    auto q = make_queue<TypeParam, Explosive>();
    std::vector<std::atomic<Outcome>> outcome(2);
    for (auto& o : outcome) o = Outcome::pending;
    std::atomic<int> got{-1};
    std::latch second_may_start(1);
    Threads getters(2, [&](std::size_t i) {
      if (i == 0) {
        outcome[0] = outcome_of([&] {
          if (first_selects) {
            (void)weft::select(weft::get(q));
          } else {
            (void)q.get();
          }
        });
      } else {
        second_may_start.wait();
        outcome[1] = outcome_of([&] { got = q.get().value(); });
      }
    });
    ASSERT_TRUE(blocked(getters, {0}));
    second_may_start.count_down();
    ASSERT_TRUE(blocked(getters, {1}));
    // The first move out of the queue throws, in the first getter.
    fail_first_move_out_after_next_put<TypeParam>();
    const Outcome put_outcome = outcome_of([&] { q.put(Explosive(5)); });
    EXPECT_EQ(put_outcome, Outcome::ok);
    const bool first_done = weft_test::eventually([&] { return getters.finished(0); }, 10s);
    EXPECT_TRUE(first_done);
    const bool second_done = weft_test::eventually([&] { return getters.finished(1); }, 10s);
    Explosive::disarm();
    EXPECT_TRUE(second_done) << "the second getter stayed blocked beside an item (lost wake-up)";
    if (put_outcome != Outcome::ok || !first_done || !second_done) {
      // Release whoever is still blocked, so that the test can end.
      q.put(Explosive(6));
      q.put(Explosive(7));
    }
    getters.join();
    EXPECT_EQ(outcome[0].load(), Outcome::boom);
    if (second_done) {
      EXPECT_EQ(outcome[1].load(), Outcome::ok);
      EXPECT_EQ(got.load(), 5);
    }
  }
}

// select's get builds its result straight from the queued item, through every form of
// select, so a move that throws (the first, or any later one) leaves the item queued.
TYPED_TEST(Items, SelectGetWhoseMoveThrowsLosesNothing) {
  auto q = make_queue<TypeParam, Explosive>();
  std::stop_source never_stopped;
  sweep_failing_moves<TypeParam>(q, 5, [&](int form) {
    switch (form) {
      case 0: {
        const auto r = weft::select(weft::get(q));
        return std::get<0>(r)->value();
      }
      case 1: {
        const auto r = weft::try_select(weft::get(q));
        return std::get<0>(*r)->value();
      }
      case 2: {
        const auto r = weft::select_for(1s, weft::get(q));
        return std::get<0>(*r)->value();
      }
      case 3: {
        const auto r = weft::select(never_stopped.get_token(), weft::get(q));
        return std::get<0>(*r)->value();
      }
      default: {
        const auto r = weft::select(weft::biased, weft::get(q));
        return std::get<0>(r)->value();
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// PriorityQueue: Compare

struct Job {
  int priority;
  int serial;
};
struct ByPriority {
  bool operator()(const Job& a, const Job& b) const { return a.priority < b.priority; }
};

// docs/api.md: items that compare equal come out in the order they were put.
TEST(PriorityQueueCompare, EqualItemsComeOutInPutOrder) {
  for (const std::ptrdiff_t maxsize : {std::ptrdiff_t{0}, std::ptrdiff_t{600}}) {
    weft::PriorityQueue<Job, ByPriority> q(maxsize);
    std::mt19937 rng(42);
    std::vector<Job> jobs;
    for (int i = 0; i < 500; ++i) jobs.push_back({static_cast<int>(rng() % 5), i});
    for (const Job& j : jobs) q.put(j);
    std::stable_sort(jobs.begin(), jobs.end(), ByPriority());
    for (const Job& expected : jobs) {
      const Job got = q.get();
      ASSERT_EQ(got.priority, expected.priority);
      ASSERT_EQ(got.serial, expected.serial) << "equal items out of put order";
    }
  }
}

// The same with gets interleaved: among equal items the earliest put still comes first.
TEST(PriorityQueueCompare, EqualItemsKeepPutOrderAcrossInterleavedGets) {
  weft::PriorityQueue<Job, ByPriority> q;
  std::vector<Job> model;  // put order
  std::mt19937 rng(7);
  int serial = 0;
  for (int step = 0; step < 3000; ++step) {
    if (model.empty() || rng() % 5 < 3) {
      const Job j{static_cast<int>(rng() % 3), serial++};
      q.put(j);
      model.push_back(j);
    } else {
      auto best = std::min_element(model.begin(), model.end(), ByPriority());  // first minimum
      const Job got = q.get();
      ASSERT_EQ(got.serial, best->serial) << "step " << step;
      model.erase(best);
    }
  }
}

TEST(PriorityQueueCompare, GreaterGivesLargestFirst) {
  weft::PriorityQueue<int, std::greater<>> q;
  for (int v : {3, 9, 1, 9, 4}) q.put(v);
  std::vector<int> got;
  while (auto v = q.try_get()) got.push_back(*v);
  EXPECT_EQ(got, (std::vector<int>{9, 9, 4, 3, 1}));
  const auto removed = [&] {
    for (int v : {2, 8, 5}) q.put(v);
    return q.shutdown(true);
  }();
  EXPECT_EQ(removed, (std::vector<int>{8, 5, 2}));
}

// queue.hpp: Compare is the only comparison made. An item with every comparison operator
// deleted compiles, and is ordered (stably) by Compare alone.
struct Opaque {
  int key;
  int serial;
  friend bool operator<(const Opaque&, const Opaque&) = delete;
  friend bool operator>(const Opaque&, const Opaque&) = delete;
  friend bool operator<=(const Opaque&, const Opaque&) = delete;
  friend bool operator>=(const Opaque&, const Opaque&) = delete;
  friend bool operator==(const Opaque&, const Opaque&) = delete;
  friend bool operator!=(const Opaque&, const Opaque&) = delete;
};
struct OpaqueByKey {
  std::shared_ptr<long> calls = std::make_shared<long>(0);
  bool operator()(const Opaque& a, const Opaque& b) const {
    ++*calls;
    return a.key < b.key;
  }
};

TEST(PriorityQueueCompare, CompareIsTheOnlyComparison) {
  OpaqueByKey compare;
  weft::PriorityQueue<Opaque, OpaqueByKey> q(0, compare);
  const std::vector<int> keys = {5, 2, 8, 2, 5, 1};
  for (int i = 0; i < static_cast<int>(keys.size()); ++i)
    q.put(Opaque{keys[static_cast<std::size_t>(i)], i});
  EXPECT_GT(*compare.calls, 0) << "Compare was not used";
  std::vector<std::pair<int, int>> got;
  while (auto o = q.try_get()) got.emplace_back(o->key, o->serial);
  const std::vector<std::pair<int, int>> expected = {{1, 5}, {2, 1}, {2, 3},
                                                     {5, 0}, {5, 4}, {8, 2}};
  EXPECT_EQ(got, expected);
}

// A comparator that throws: put and get fail with its exception, and the queue is
// unchanged. Each put and each get is retried with the n-th comparison failing, n = 1, 2,
// ... until it succeeds, so every point where a comparison can throw is hit; the final
// order proves the heap survived all of them.
TEST(PriorityQueueCompare, ThrowingCompareChangesNothing) {
  CompareControl control;
  weft::PriorityQueue<int, ThrowingLess> q(0, ThrowingLess{&control});
  std::mt19937 rng(99);
  std::vector<int> values;
  for (int i = 0; i < 40; ++i) values.push_back(static_cast<int>(rng() % 25));
  std::stop_source never_stopped;

  int failures = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const int v = values[i];
    for (long n = 1;; ++n) {
      control.fail_nth_call(n);
      const Outcome o = outcome_of([&] {
        switch (i % 6) {
          case 0:
            q.put(v);
            break;
          case 1:
            q.put_nowait(v);
            break;
          case 2:
            if (!q.try_put(v)) throw weft::Full();
            break;
          case 3:
            q.put(v, 1s);
            break;
          case 4:
            if (!q.try_put(v, 1s)) throw weft::Full();
            break;
          case 5:
            q.put(int{v}, never_stopped.get_token());
            break;
        }
      });
      control.disarm();
      if (o == Outcome::ok) {
        ASSERT_EQ(q.qsize(), i + 1);
        break;
      }
      ++failures;
      ASSERT_EQ(o, Outcome::boom);
      ASSERT_EQ(q.qsize(), i) << "a put whose comparison " << n << " threw changed the size";
      ASSERT_EQ(q.unfinished_tasks(), i);
    }
  }
  EXPECT_THROW(
      [&] {
        control.fail_nth_call(1);
        q.put(100);
      }(),
      ComparatorBoom);
  control.disarm();

  std::vector<int> expected = values;
  std::stable_sort(expected.begin(), expected.end());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    for (long n = 1;; ++n) {
      control.fail_nth_call(n);
      std::optional<int> got;
      const Outcome o = outcome_of([&] {
        switch (i % 5) {
          case 0:
            got = q.get();
            break;
          case 1:
            got = q.get_nowait();
            break;
          case 2:
            got = q.get(1s);
            break;
          case 3:
            got = q.try_get();
            break;
          case 4:
            got = q.try_get(1s);
            break;
        }
      });
      control.disarm();
      if (o == Outcome::ok) {
        ASSERT_TRUE(got.has_value());
        ASSERT_EQ(*got, expected[i]) << "get " << i << ": the heap was damaged";
        break;
      }
      ++failures;
      ASSERT_EQ(o, Outcome::boom);
      ASSERT_EQ(q.qsize(), expected.size() - i)
          << "a get whose comparison " << n << " threw took an item";
    }
  }
  EXPECT_GT(failures, 40) << "the comparator hardly ever threw: the test tested little";
  EXPECT_TRUE(q.empty());
}

// A putter woken on a full queue whose comparison then throws: the put fails with the
// comparator's exception, the queue keeps the room and its items.
TEST(PriorityQueueCompare, WokenPutWhoseCompareThrowsChangesNothing) {
  CompareControl control;
  weft::PriorityQueue<int, ThrowingLess> q(3, ThrowingLess{&control});
  for (int v : {5, 3, 8}) q.put(v);
  control.poison_value(1);  // only comparisons involving the putter's 1 throw
  std::atomic<Outcome> outcome{Outcome::pending};
  Threads putter(1, [&](std::size_t) { outcome = outcome_of([&] { q.put(1); }); });
  ASSERT_TRUE(blocked(putter));
  EXPECT_EQ(q.get(), 3);
  putter.join();
  control.disarm();
  EXPECT_EQ(outcome.load(), Outcome::boom);
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.unfinished_tasks(), 3u);
  q.put(4);
  std::vector<int> rest;
  while (auto v = q.try_get()) rest.push_back(*v);
  EXPECT_EQ(rest, (std::vector<int>{4, 5, 8}));
}

// shutdown(true) sorts the PriorityQueue's items out in get order; a comparator that throws
// during that sort leaves every item queued. Swept over every comparison it makes.
TEST(PriorityQueueCompare, ShutdownImmediateWhoseCompareThrowsRemovesNothing) {
  CompareControl control;
  std::mt19937 rng(5);
  std::vector<int> values;
  for (int i = 0; i < 12; ++i) values.push_back(static_cast<int>(rng() % 10));
  std::vector<int> expected = values;
  std::stable_sort(expected.begin(), expected.end());
  int failures = 0;
  for (long n = 1;; ++n) {
    weft::PriorityQueue<int, ThrowingLess> q(0, ThrowingLess{&control});
    for (int v : values) q.put(v);
    control.fail_nth_call(n);
    std::vector<int> removed;
    const Outcome o = outcome_of([&] { removed = q.shutdown(true); });
    control.disarm();
    EXPECT_TRUE(q.is_shutdown());
    if (o == Outcome::ok) {
      EXPECT_EQ(removed, expected);
      EXPECT_EQ(q.unfinished_tasks(), 0u);
      break;
    }
    ++failures;
    ASSERT_EQ(o, Outcome::boom);
    ASSERT_EQ(q.qsize(), values.size()) << "comparison " << n << " threw and items left";
    ASSERT_EQ(q.unfinished_tasks(), values.size());
    std::vector<int> left;
    while (auto v = q.try_get()) left.push_back(*v);
    ASSERT_EQ(left, expected) << "comparison " << n << " threw and damaged the heap";
  }
  EXPECT_GT(failures, 12) << "the sort hardly compared: the test tested little";
}

// ---- batches: put_many / get_many with move-only, counting and throwing items -------------

// A move-only batch goes in through move iterators: the items taken are moved from, the
// rest are untouched (a bounded queue takes what fits).
// NOLINTBEGIN(bugprone-use-after-move): the items not taken must be intact; the test reads them
TYPED_TEST(TaskItems, MoveOnlyBatchMovesOnlyWhatItTakes) {
  auto q = make_queue<TypeParam, IntPtr>(4);
  std::vector<IntPtr> items;
  for (int i = 0; i < 6; ++i) items.push_back(std::make_unique<int>(i));
  std::vector<int*> raw;
  for (const auto& p : items) raw.push_back(p.get());
  EXPECT_EQ(q.put_many_nowait(std::make_move_iterator(items.begin()),
                              std::make_move_iterator(items.end())),
            4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(items[i], nullptr) << i;
  for (std::size_t i = 4; i < 6; ++i) EXPECT_EQ(items[i].get(), raw[i]) << "not moved-from";
  std::vector<int*> expected(raw.begin(), raw.begin() + 4);
  if constexpr (TypeParam::kOrder == Order::lifo) {
    std::reverse(expected.begin(), expected.end());
  } else if constexpr (TypeParam::kOrder == Order::priority) {
    std::sort(expected.begin(), expected.end(), std::less<int*>());
  }
  std::vector<IntPtr> got = q.get_many(10);
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(got[i].get(), expected[i]) << i;
  EXPECT_EQ(q.put_many(std::make_move_iterator(items.begin() + 4),
                       std::make_move_iterator(items.end()), 1s),
            2u);
  std::vector<IntPtr> rest;
  EXPECT_EQ(q.get_many(rest, 5), 2u);
}
// NOLINTEND(bugprone-use-after-move)

// Batches neither leak nor destroy twice, over the ring (bounded Queue) and the locked
// storages, with copies and with moves.
TYPED_TEST(TaskItems, BatchedItemsAreDestroyedExactlyOnce) {
  auto& c = tracked_counters();
  const long live_before = c.live.load();
  const long errors_before = c.errors.load();
  {
    auto q = make_queue<TypeParam, Tracked>(8);
    std::vector<Tracked> items;
    for (int i = 0; i < 12; ++i) items.emplace_back(i);
    EXPECT_EQ(q.put_many_nowait(items), 8u) << "copies";
    std::vector<Tracked> got;
    EXPECT_EQ(q.get_many(got, 5), 5u);
    EXPECT_EQ(q.put_many(std::make_move_iterator(items.begin()),
                         std::make_move_iterator(items.begin() + 5)),
              5u);
    EXPECT_EQ(q.qsize(), 8u);
    std::vector<Tracked> more = q.get_many(3);
    EXPECT_EQ(more.size(), 3u);
    // 5 left queued: destroyed with the queue.
  }
  EXPECT_EQ(c.live.load(), live_before);
  EXPECT_EQ(c.errors.load(), errors_before);
}

// An item whose copy throws in the middle of a batch: the items before it are in the queue
// and counted, the batch returns their count, the rest stay with the caller; a batch whose
// first item throws raises the exception and changes nothing.
TYPED_TEST(Items, PutManyWhoseCopyThrowsKeepsWhatWentIn) {
  auto q = make_queue<TypeParam, Explosive>();
  std::vector<Explosive> items;
  for (int i = 1; i <= 5; ++i) items.emplace_back(i);
  items[2].fail_next_copy();
  EXPECT_EQ(q.put_many(items), 2u);
  EXPECT_EQ(q.qsize(), 2u);
  items[2].fail_next_copy();
  EXPECT_THROW((void)q.put_many(items.begin() + 2, items.end(), 1s), Boom);
  EXPECT_EQ(q.qsize(), 2u);
  if constexpr (TypeParam::kTasks) {
    EXPECT_EQ(q.unfinished_tasks(), 2u);
  }
  EXPECT_EQ(q.put_many(items.begin() + 2, items.end()), 3u);
  for (std::size_t i = 0; i < items.size(); ++i) EXPECT_EQ(items[i].value(), int(i) + 1);
  EXPECT_EQ(explosive_contents(q), in_get_order<TypeParam>(std::vector<int>{1, 2, 3, 4, 5}));
}

// An item whose move out throws in the middle of a get_many: the batch returns the items
// got before it; that item stays queued, and the next get_many raises the exception only if
// it is the first item.
TYPED_TEST(Items, GetManyWhoseMoveThrowsLosesNothing) {
  auto q = make_queue<TypeParam, Explosive>();
  put_values(q, {4, 2, 5, 1, 3});
  const std::vector<int> order = in_get_order<TypeParam>(std::vector<int>{4, 2, 5, 1, 3});
  Explosive::fail_nth_transfer(3);  // the third move out of the queue
  std::vector<Explosive> got;
  EXPECT_EQ(q.get_many(got, 5), 2u);
  EXPECT_EQ(q.qsize(), 3u);
  Explosive::fail_nth_transfer(1);
  EXPECT_THROW((void)q.get_many(got, 5, 1s), Boom);
  EXPECT_EQ(q.qsize(), 3u);
  Explosive::disarm();
  EXPECT_EQ(q.get_many(got, 5), 3u);
  std::vector<int> values;
  for (const auto& e : got) values.push_back(e.value());
  EXPECT_EQ(values, order);
}

// select's get_many operation: up to n items from the ready queue; an empty vector once the
// queue is shut down and drained.
TYPED_TEST(TaskItems, SelectGetMany) {
  auto a = make_queue<TypeParam, int>(8);
  weft::Event never;
  EXPECT_EQ(a.put_many(std::vector<int>{3, 1, 2}), 3u);
  auto r = weft::select(weft::get_many(a, 2), weft::wait(never));
  ASSERT_EQ(r.index(), 0u);
  EXPECT_EQ(std::get<0>(r).size(), 2u);
  auto r2 = weft::try_select(weft::get_many(a, 5), weft::wait(never));
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(std::get<0>(*r2).size(), 1u);
  EXPECT_FALSE(weft::try_select(weft::get_many(a, 5), weft::wait(never)).has_value());
  int got = 0;
  Threads getter(1, [&](std::size_t) {
    auto r3 = weft::select(weft::get_many(a, 5), weft::wait(never));
    got = static_cast<int>(std::get<0>(r3).size());
  });
  ASSERT_TRUE(blocked(getter));
  a.put(7);
  getter.join();
  EXPECT_EQ(got, 1);
  (void)a.shutdown();
  auto r4 = weft::select(weft::get_many(a, 5), weft::wait(never));
  EXPECT_TRUE(std::get<0>(r4).empty()) << "shut down and drained";
  EXPECT_THROW((void)weft::get_many(a, 0), std::invalid_argument);
}

// The ring's batch path for items that must be built first (a conversion that may throw):
// built one at a time, each before its slot is claimed.
struct IntSource {
  int value;
  bool boom = false;
  operator int() const {  // NOLINT(google-explicit-constructor): the conversion under test
    if (boom) throw Boom();
    return value;
  }
};

TEST(QueueBatches, RingPutManyWhoseConversionThrowsKeepsWhatWentIn) {
  weft::Queue<int> q(8);
  std::vector<IntSource> src = {{1}, {2}, {3, true}, {4}};
  EXPECT_EQ(q.put_many(src), 2u);
  EXPECT_THROW((void)q.put_many(src.begin() + 2, src.end()), Boom);
  src[2].boom = false;
  EXPECT_EQ(q.put_many(src.begin() + 2, src.end()), 2u);
  EXPECT_EQ(q.get_many(8), (std::vector<int>{1, 2, 3, 4}));
}

// An input iterator over ints that runs `on_advance(index)` in each ++, before it moves on:
// an iterator that throws there, or a slow range.
struct ScriptedIt {
  using value_type = int;
  using difference_type = std::ptrdiff_t;
  const int* p = nullptr;
  int index = 0;
  std::function<void(int)>* on_advance = nullptr;
  int operator*() const { return *p; }
  ScriptedIt& operator++() {
    if (on_advance != nullptr) (*on_advance)(index);
    ++p;
    ++index;
    return *this;
  }
  void operator++(int) { ++*this; }
  bool operator==(const ScriptedIt& o) const { return p == o.p; }
};
static_assert(std::input_iterator<ScriptedIt>);

// Building an item throws in the middle of a range that is not contiguous (an iterator that
// makes each item, as a view calling make_unique would): the items before it stay queued and
// are counted, the call returns their count; the batch never reaches a state where it
// cannot throw.
struct MakingIt {
  using value_type = IntPtr;
  using difference_type = std::ptrdiff_t;
  const int* p = nullptr;
  IntPtr operator*() const {
    if (*p == 2) throw Boom();
    return std::make_unique<int>(*p);
  }
  MakingIt& operator++() {
    ++p;
    return *this;
  }
  void operator++(int) { ++p; }
  bool operator==(const MakingIt& o) const { return p == o.p; }
};
static_assert(std::input_iterator<MakingIt>);

TYPED_TEST(TaskItems, BatchFromAnIteratorThatThrowsKeepsWhatWentIn) {
  const std::vector<int> ids = {0, 1, 2, 3};
  const MakingIt end{ids.data() + ids.size()};
  for (const std::ptrdiff_t maxsize : {0, 8}) {
    auto q = make_queue<TypeParam, IntPtr>(maxsize);
    EXPECT_EQ(q.put_many(MakingIt{ids.data()}, end), 2u) << maxsize;
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ(q.unfinished_tasks(), 2u);
    EXPECT_THROW((void)q.put_many(MakingIt{ids.data() + 2}, end), Boom);
    EXPECT_EQ(q.qsize(), 2u);
  }
}

// The iterator's ++ throws once an item is stored: that item is in the queue and counted,
// as a task and in the returned count (a call that stored one does not throw).
TYPED_TEST(TaskItems, BatchWhoseIteratorThrowsOnAdvanceCountsTheStoredItem) {
  const std::vector<int> values = {10, 11, 12};
  for (const std::ptrdiff_t maxsize : {0, 8}) {
    for (int fail_at = 0; fail_at < 2; ++fail_at) {
      auto q = make_queue<TypeParam, int>(maxsize);
      std::function<void(int)> boom = [fail_at](int index) {
        if (index == fail_at) throw Boom();
      };
      const ScriptedIt first{values.data(), 0, &boom};
      const ScriptedIt last{values.data() + values.size(), 3, nullptr};
      const auto stored = static_cast<std::size_t>(fail_at) + 1;
      EXPECT_EQ(q.put_many(first, last), stored) << maxsize << " " << fail_at;
      EXPECT_EQ(q.qsize(), stored);
      EXPECT_EQ(q.unfinished_tasks(), stored);
      for (std::size_t i = 0; i < stored; ++i) q.task_done();
      EXPECT_THROW(q.task_done(), std::logic_error);
    }
  }
}

// A range read one item at a time wakes the getter of each item before it reads the next:
// the caller's range may be slow, or wait for that getter.
TEST(QueueBatches, EachGetterIsWokenBeforeTheRangeIsReadOn) {
  for (const std::ptrdiff_t maxsize : {0, 8}) {
    weft::Queue<int> q(maxsize);
    weft::Event got_first;
    std::atomic<int> first{-1};
    Threads getter(1, [&](std::size_t) {
      first = q.get();
      got_first.set();
    });
    ASSERT_TRUE(weft_test::wait_blocked(getter.tids()));
    bool woken_in_time = false;
    std::function<void(int)> after = [&](int index) {
      if (index == 0) woken_in_time = got_first.wait(30s);  // the getter has item 0 by now
    };
    const std::vector<int> values = {7, 8};
    EXPECT_EQ(q.put_many(ScriptedIt{values.data(), 0, &after},
                         ScriptedIt{values.data() + values.size(), 2, nullptr}),
              2u);
    getter.join();
    EXPECT_TRUE(woken_in_time) << "maxsize " << maxsize << ": item 0's getter slept on";
    EXPECT_EQ(first.load(), 7);
    EXPECT_EQ(q.get(), 8);
  }
}

// A comparator that throws in the middle of a batch: put_many keeps the items before it and
// returns their count; get_many returns the items got before it; the heap stays intact.
TEST(PriorityQueueCompare, BatchWhoseCompareThrowsKeepsWhatWentThrough) {
  CompareControl control;
  weft::PriorityQueue<int, ThrowingLess> q(0, ThrowingLess{&control});
  std::vector<int> values;
  std::mt19937 rng(7);
  for (int i = 0; i < 30; ++i) values.push_back(static_cast<int>(rng() % 20));
  std::size_t in = 0;
  int partial = 0;
  for (long n = 1; in < values.size(); n += 3) {
    control.fail_nth_call(n);
    try {
      const std::size_t k =
          q.put_many(values.begin() + static_cast<std::ptrdiff_t>(in), values.end());
      if (in + k < values.size()) ++partial;
      in += k;
    } catch (const ComparatorBoom&) {
    }
    control.disarm();
    ASSERT_EQ(q.qsize(), in);
  }
  EXPECT_GT(partial, 0) << "no batch was cut short: the test tested little";
  std::vector<int> got;
  for (long n = 2; !q.empty(); n += 5) {
    control.fail_nth_call(n);
    try {
      for (int v : q.get_many(7)) got.push_back(v);
    } catch (const ComparatorBoom&) {
    }
    control.disarm();
    ASSERT_EQ(got.size() + q.qsize(), values.size());
  }
  std::vector<int> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(got, sorted);
}

}  // namespace
