// SPDX-License-Identifier: MIT
// Conformance tests for weft::select (include/weft/select.hpp: its header comment is the
// contract): every form (select, select(stop_token), try_select, select_for, select_until on
// steady and system clocks, each also biased), every operation (get, put, wait, acquire) and
// mixes of item types; exactly one operation performed; a put's item untouched unless chosen;
// shutdown reported (get: nullopt, put: false); fairness; a blocked select woken by each kind
// of source; timeouts and stop requests that change nothing.
// Many-thread runs are in tests/stress/select_stress_test.cpp.
#include "weft/select.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <iostream>
#include <latch>
#include <memory>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/event.hpp"
#include "weft/queue.hpp"
#include "weft/semaphore.hpp"

// weft::get(SimpleQueue) does not compile yet (see the test SelectSimpleQueue.GetFromSimpleQueue
// below); set to 1 to build that test once select can reach a SimpleQueue.

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::elapsed_since;
using weft_test::returned_promptly;
using weft_test::Threads;
using weft_test::took_about;

constexpr auto kTimeout = 50ms;  // a timeout under test: short, checked with took_about

// Returns once every thread of `threads` is parked in the kernel; fails as soon as one of
// them has returned instead (a call that should have blocked).
::testing::AssertionResult blocked(const Threads& threads) {
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (threads.finished(i)) {
      return ::testing::AssertionFailure() << "thread " << i << " returned instead of blocking";
    }
  }
  return weft_test::wait_blocked(threads.tids());
}

// An int whose move constructor may throw (so weft::Queue keeps it in its locked deque), and
// which can be told to fail its next move, as a caller's item that cannot be moved.
struct MoveFailed : std::runtime_error {
  MoveFailed() : std::runtime_error("a move failed on purpose") {}
};
// NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): the destructor is trivial
class Fragile {
 public:
  explicit Fragile(int v) : value_(v) {}
  Fragile(const Fragile&) = default;
  // NOLINTNEXTLINE(bugprone-exception-escape): its move throws on purpose
  Fragile(Fragile&& other) noexcept(false) : value_(other.take()) {}
  Fragile& operator=(const Fragile&) = default;
  // NOLINTNEXTLINE(bugprone-exception-escape): its move throws on purpose
  Fragile& operator=(Fragile&& other) noexcept(false) {
    value_ = other.take();
    return *this;
  }
  int value() const { return value_; }
  void fail_next_move() { fail_ = true; }

 private:
  int take() {
    if (fail_) {
      fail_ = false;
      throw MoveFailed();
    }
    const int v = value_;
    value_ = -1;
    return v;
  }
  int value_;
  bool fail_ = false;
};
static_assert(!std::is_nothrow_move_constructible_v<Fragile>);

// ---- the result type: a std::variant indexed like the arguments --------------------------

using IntQ = weft::Queue<int>;
using StrQ = weft::Queue<std::string>;
using PtrQ = weft::Queue<std::unique_ptr<int>>;

static_assert(
    std::is_same_v<decltype(weft::select(
                       weft::get(std::declval<IntQ&>()), weft::get(std::declval<StrQ&>()),
                       weft::put(std::declval<PtrQ&>(), std::declval<std::unique_ptr<int>&>()),
                       weft::wait(std::declval<weft::Event&>()),
                       weft::acquire(std::declval<weft::Semaphore&>()))),
                   std::variant<std::optional<int>, std::optional<std::string>, bool,
                                std::monostate, std::monostate>>);
static_assert(std::is_same_v<decltype(weft::try_select(weft::get(std::declval<IntQ&>()))),
                             std::optional<std::variant<std::optional<int>>>>);
static_assert(std::is_same_v<decltype(weft::select(std::declval<std::stop_token>(),
                                                   weft::get(std::declval<IntQ&>()))),
                             std::optional<std::variant<std::optional<int>>>>);
static_assert(std::is_same_v<decltype(weft::select_for(1s, weft::get(std::declval<IntQ&>()))),
                             std::optional<std::variant<std::optional<int>>>>);

// The forms the header promises "each also accepts weft::biased as its first argument".
// Checked by overload resolution (a missing overload makes the concept false, not the build
// fail), so that a missing form is one failing test.
template <class Q>
concept BiasedSelectForWithStop = requires(Q& q, std::stop_token st) {
  weft::select_for(weft::biased, 1s, st, weft::get(q));
};
template <class Q>
concept BiasedSelectUntil = requires(Q& q, Clock::time_point tp) {
  weft::select_until(weft::biased, tp, weft::get(q));
};
template <class Q>
concept BiasedSelectUntilWithStop = requires(Q& q, Clock::time_point tp, std::stop_token st) {
  weft::select_until(weft::biased, tp, st, weft::get(q));
};

// A thread that runs one select and keeps its outcome. Its result is read after join().
template <class R>
struct Returned {
  std::optional<R> value;
  Clock::time_point returned_at{};
};

// =========================================================================================
// Forms
// =========================================================================================

TEST(SelectForms, SelectTakesFromTheReadyQueue) {
  IntQ a, b;
  b.put(7);
  auto r = weft::select(weft::get(a), weft::get(b));
  ASSERT_EQ(r.index(), 1u);
  ASSERT_TRUE(std::get<1>(r).has_value());
  EXPECT_EQ(*std::get<1>(r), 7);
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(b.empty());
}

TEST(SelectForms, SelectWithStopTokenReturnsTheResult) {
  IntQ a, b;
  a.put(3);
  std::stop_source src;
  auto r = weft::select(src.get_token(), weft::get(a), weft::get(b));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->index(), 0u);
  EXPECT_EQ(*std::get<0>(*r), 3);
}

TEST(SelectForms, SelectWithDefaultStopTokenBlocksLikeSelect) {
  // A std::stop_token with no state can never be stopped: the select waits for a source.
  IntQ q;
  Returned<std::optional<std::variant<std::optional<int>>>> out;
  Threads t(1, [&](std::size_t) { out.value = weft::select(std::stop_token{}, weft::get(q)); });
  ASSERT_TRUE(blocked(t));
  q.put(11);
  t.join();
  ASSERT_TRUE(out.value.has_value() && out.value->has_value());
  EXPECT_EQ(*std::get<0>(**out.value), 11);
}

TEST(SelectForms, TrySelectNeverBlocks) {
  IntQ a, b;
  weft::Event e;
  weft::Semaphore s(0);
  const auto start = Clock::now();
  auto none = weft::try_select(weft::get(a), weft::get(b), weft::wait(e), weft::acquire(s));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_FALSE(none.has_value());

  s.release();
  auto r = weft::try_select(weft::get(a), weft::get(b), weft::wait(e), weft::acquire(s));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->index(), 3u);
  EXPECT_EQ(s.value(), 0u);
}

TEST(SelectForms, SelectForReturnsReadyOperationAtOnce) {
  IntQ a, b;
  a.put(1);
  const auto start = Clock::now();
  auto r = weft::select_for(1h, weft::get(a), weft::get(b));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->index(), 0u);
}

TEST(SelectForms, SelectForTimesOut) {
  IntQ a, b;
  const auto start = Clock::now();
  auto r = weft::select_for(kTimeout, weft::get(a), weft::get(b));
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
  EXPECT_FALSE(r.has_value());
}

TEST(SelectForms, SelectForAcceptsFloatingPointAndZeroTimeouts) {
  IntQ q;
  auto start = Clock::now();
  EXPECT_FALSE(weft::select_for(0.05s, weft::get(q)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_FALSE(weft::select_for(0s, weft::get(q)).has_value());
  EXPECT_FALSE(weft::select_for(0.0s, weft::get(q)).has_value());
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  q.put(4);
  auto r = weft::select_for(0s, weft::get(q));  // zero timeout: a poll, which succeeds
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*std::get<0>(*r), 4);
}

TEST(SelectForms, SelectForWithStopToken) {
  IntQ q;
  std::stop_source src;
  auto start = Clock::now();
  EXPECT_FALSE(weft::select_for(kTimeout, src.get_token(), weft::get(q)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
  q.put(2);
  auto r = weft::select_for(kTimeout, src.get_token(), weft::get(q));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*std::get<0>(*r), 2);
}

TEST(SelectForms, HugeTimeoutsMeanForever) {
  // duration::max() of any representation must neither overflow into "already expired" nor
  // return at once: each select blocks until the item arrives.
  IntQ q;
  std::vector<int> got;
  Threads t(1, [&](std::size_t) {
    auto r1 = weft::select_for(std::chrono::nanoseconds::max(), weft::get(q));
    got.push_back(r1 ? *std::get<0>(*r1) : -1);
    auto r2 = weft::select_for(std::chrono::hours::max(), weft::get(q));
    got.push_back(r2 ? *std::get<0>(*r2) : -1);
    auto r3 = weft::select_for(std::chrono::duration<double>::max(), weft::get(q));
    got.push_back(r3 ? *std::get<0>(*r3) : -1);
    auto r4 = weft::select_until(Clock::time_point::max(), weft::get(q));
    got.push_back(r4 ? *std::get<0>(*r4) : -1);
    auto r5 = weft::select_until(std::chrono::system_clock::time_point::max(), weft::get(q));
    got.push_back(r5 ? *std::get<0>(*r5) : -1);
  });
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(blocked(t)) << "select " << i << " did not block";
    q.put(i);
    // The next select only starts once the item was taken; wait for that before checking.
    ASSERT_TRUE(weft_test::eventually([&] { return q.empty(); }));
  }
  t.join();
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(SelectForms, SelectUntilSteadyClock) {
  IntQ q;
  auto start = Clock::now();
  EXPECT_FALSE(weft::select_until(start + kTimeout, weft::get(q)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));

  start = Clock::now();
  EXPECT_FALSE(weft::select_until(start - 1s, weft::get(q)).has_value());  // past: a poll
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  q.put(9);
  auto r = weft::select_until(Clock::now() - 1s, weft::get(q));  // a poll that succeeds
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*std::get<0>(*r), 9);
}

TEST(SelectForms, SelectUntilSystemClock) {
  IntQ q;
  using Sys = std::chrono::system_clock;
  auto start = Clock::now();
  EXPECT_FALSE(weft::select_until(Sys::now() + kTimeout, weft::get(q)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));

  start = Clock::now();
  EXPECT_FALSE(weft::select_until(Sys::now() - 1h, weft::get(q)).has_value());
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  q.put(5);
  auto r = weft::select_until(Sys::now() + 1h, weft::get(q));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*std::get<0>(*r), 5);
}

TEST(SelectForms, SelectUntilWithStopToken) {
  IntQ q;
  std::stop_source src;
  auto start = Clock::now();
  EXPECT_FALSE(
      weft::select_until(Clock::now() + kTimeout, src.get_token(), weft::get(q)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
  start = Clock::now();
  EXPECT_FALSE(
      weft::select_until(std::chrono::system_clock::now() + kTimeout, src.get_token(), weft::get(q))
          .has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
}

TEST(SelectForms, BiasedFormsPickTheFirstReadyArgument) {
  IntQ a, b, c;
  b.put(1);
  c.put(2);
  std::stop_source src;
  auto r1 = weft::select(weft::biased, weft::get(a), weft::get(b), weft::get(c));
  EXPECT_EQ(r1.index(), 1u);
  b.put(1);
  auto r2 = weft::select(weft::biased, src.get_token(), weft::get(a), weft::get(b), weft::get(c));
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->index(), 1u);
  b.put(1);
  auto r3 = weft::try_select(weft::biased, weft::get(a), weft::get(b), weft::get(c));
  ASSERT_TRUE(r3.has_value());
  EXPECT_EQ(r3->index(), 1u);
  b.put(1);
  auto r4 = weft::select_for(weft::biased, 1s, weft::get(a), weft::get(b), weft::get(c));
  ASSERT_TRUE(r4.has_value());
  EXPECT_EQ(r4->index(), 1u);
  EXPECT_EQ(b.qsize(), 0u);
  EXPECT_EQ(c.qsize(), 1u) << "a biased select must never pick c while b is ready";

  EXPECT_FALSE(weft::try_select(weft::biased, weft::get(a), weft::get(b)).has_value());
  const auto start = Clock::now();
  EXPECT_FALSE(weft::select_for(weft::biased, kTimeout, weft::get(a), weft::get(b)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
}

// The header: "Forms: ... select_for(timeout, stop, ops...) and select_until(deadline[, stop],
// ops...). Each also accepts weft::biased as its first argument."
template <class Q>
void check_biased_forms_that_may_be_missing() {
  if constexpr (BiasedSelectForWithStop<Q> && BiasedSelectUntil<Q> &&
                BiasedSelectUntilWithStop<Q>) {
    Q a, b;
    a.put(1);
    b.put(2);
    std::stop_source src;
    auto r1 = weft::select_for(weft::biased, 1s, src.get_token(), weft::get(a), weft::get(b));
    ASSERT_TRUE(r1.has_value());
    EXPECT_EQ(r1->index(), 0u);
    a.put(1);
    auto r2 = weft::select_until(weft::biased, Clock::now() + 1s, weft::get(a), weft::get(b));
    ASSERT_TRUE(r2.has_value());
    EXPECT_EQ(r2->index(), 0u);
    a.put(1);
    auto r3 = weft::select_until(weft::biased, std::chrono::system_clock::now() + 1s,
                                 src.get_token(), weft::get(a), weft::get(b));
    ASSERT_TRUE(r3.has_value());
    EXPECT_EQ(r3->index(), 0u);
    EXPECT_EQ(b.qsize(), 1u);
  }
}

TEST(SelectForms, BiasedAcceptedByEveryForm) {
  EXPECT_TRUE(BiasedSelectForWithStop<IntQ>)
      << "missing: select_for(weft::biased, timeout, stop_token, ops...)";
  EXPECT_TRUE(BiasedSelectUntil<IntQ>) << "missing: select_until(weft::biased, deadline, ops...)";
  EXPECT_TRUE(BiasedSelectUntilWithStop<IntQ>)
      << "missing: select_until(weft::biased, deadline, stop_token, ops...)";
  check_biased_forms_that_may_be_missing<IntQ>();
}

TEST(SelectForms, NegativeTimeoutThrowsInvalidArgumentAndChangesNothing) {
  IntQ a;
  a.put(1);  // ready: the check must come first, whether or not the select would block
  weft::Event e;
  e.set();
  weft::Semaphore s(1);
  std::stop_source src;
  EXPECT_THROW(weft::select_for(-1ms, weft::get(a)), std::invalid_argument);
  EXPECT_THROW(weft::select_for(-0.5s, weft::get(a), weft::wait(e)), std::invalid_argument);
  EXPECT_THROW(weft::select_for(std::chrono::nanoseconds::min(), weft::acquire(s)),
               std::invalid_argument);
  EXPECT_THROW(weft::select_for(weft::biased, -1ns, weft::get(a)), std::invalid_argument);
  EXPECT_THROW(weft::select_for(-1h, src.get_token(), weft::get(a)), std::invalid_argument);
  EXPECT_EQ(a.qsize(), 1u);
  EXPECT_EQ(s.value(), 1u);
  EXPECT_TRUE(e.is_set());
}

// =========================================================================================
// Operations and item types
// =========================================================================================

TEST(SelectOps, GetFromEveryQueueKind) {
  weft::Queue<int> fifo(4);  // bounded: the lock-free ring
  weft::Queue<int> locked;   // unbounded: the locked deque
  weft::LifoQueue<int> lifo;
  weft::PriorityQueue<int> prio;
  lifo.put(1);
  lifo.put(2);
  prio.put(9);
  prio.put(3);
  fifo.put(5);
  locked.put(6);
  std::vector<int> got;
  for (int i = 0; i < 6; ++i) {
    auto r = weft::select(weft::get(fifo), weft::get(locked), weft::get(lifo), weft::get(prio));
    switch (r.index()) {
      case 0:
        got.push_back(10 + *std::get<0>(r));
        break;
      case 1:
        got.push_back(20 + *std::get<1>(r));
        break;
      case 2:
        got.push_back(30 + *std::get<2>(r));
        break;
      case 3:
        got.push_back(40 + *std::get<3>(r));
        break;
    }
  }
  // Each queue hands out its items in its own order.
  std::vector<int> lifo_order, prio_order;
  for (int v : got) {
    if (v / 10 == 3) lifo_order.push_back(v % 10);
    if (v / 10 == 4) prio_order.push_back(v % 10);
  }
  EXPECT_EQ(lifo_order, (std::vector<int>{2, 1}));
  EXPECT_EQ(prio_order, (std::vector<int>{3, 9}));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{15, 26, 31, 32, 43, 49}));
  EXPECT_FALSE(
      weft::try_select(weft::get(fifo), weft::get(locked), weft::get(lifo), weft::get(prio))
          .has_value());
}

// weft::get / weft::put on a SimpleQueue: "get from any of several queues", and docs/api.md
// (select: q may be any of the four queue classes).
TEST(SelectSimpleQueue, GetFromSimpleQueue) {
  weft::SimpleQueue<int> sq;
  IntQ q;
  sq.put(8);
  auto r = weft::select(weft::get(q), weft::get(sq));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(*std::get<1>(r), 8);
  Threads t(1, [&](std::size_t) {
    auto r2 = weft::select_for(weft_test::kPatience, weft::get(sq), weft::get(q));
    EXPECT_TRUE(r2 && r2->index() == 0u && *std::get<0>(*r2) == 4);
  });
  ASSERT_TRUE(blocked(t));
  sq.put(4);
}

// weft::Queue<T> with a T whose move constructor may throw uses the locked deque even when
// bounded (queue.hpp, FifoStorage).
TEST(SelectOps, GetAndPutOnQueueOfThrowingMoveItems) {
  weft::Queue<Fragile> locked(4);
  weft::Queue<Fragile> explosive(2);
  locked.put(Fragile(6));
  auto r = weft::select(weft::get(explosive), weft::get(locked));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(std::get<1>(r)->value(), 6);
  Fragile item(5);
  item.fail_next_move();
  EXPECT_THROW(weft::select(weft::put(explosive, item)), MoveFailed);
  EXPECT_EQ(item.value(), 5);
  EXPECT_TRUE(explosive.empty());
  EXPECT_TRUE(std::get<0>(weft::select(weft::put(explosive, item))));
  EXPECT_EQ(explosive.get().value(), 5);
}

TEST(SelectOps, MixedItemTypesAndMoveOnlyItems) {
  IntQ ints;
  StrQ strs;
  weft::Queue<std::unique_ptr<int>> ptrs(2);
  strs.put(std::string(100, 'x'));  // long enough to live on the heap
  ptrs.put(std::make_unique<int>(42));

  auto r = weft::select(weft::biased, weft::get(ints), weft::get(strs), weft::get(ptrs));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(*std::get<1>(r), std::string(100, 'x'));
  r = weft::select(weft::get(ints), weft::get(strs), weft::get(ptrs));
  ASSERT_EQ(r.index(), 2u);
  ASSERT_TRUE(std::get<2>(r).has_value());
  ASSERT_NE(*std::get<2>(r), nullptr);
  EXPECT_EQ(**std::get<2>(r), 42);
}

TEST(SelectOps, PutChosenMovesTheItem) {
  PtrQ q(1);
  auto item = std::make_unique<int>(5);
  auto r = weft::select(weft::put(q, item));
  ASSERT_EQ(r.index(), 0u);
  EXPECT_TRUE(std::get<0>(r));
  EXPECT_EQ(item, nullptr) << "the item of the put performed is moved from";
  auto got = q.get();
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, 5);
}

TEST(SelectOps, PutNotChosenLeavesTheItemUntouched) {
  PtrQ full(1);
  full.put(std::make_unique<int>(0));
  IntQ in;
  in.put(3);
  auto item = std::make_unique<int>(7);
  int* const raw = item.get();
  auto r = weft::select(weft::put(full, item), weft::get(in));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(item.get(), raw) << "a put that was not performed must not touch its item";
  EXPECT_EQ(*item, 7);
  EXPECT_EQ(full.qsize(), 1u);

  // Both ready, many times: whichever is chosen, exactly one happens, and the item is moved
  // only when its put was the one.
  PtrQ room(0);
  for (int i = 0; i < 200; ++i) {
    in.put(i);
    auto p = std::make_unique<int>(i);
    auto rr = weft::select(weft::put(room, p), weft::get(in));
    if (rr.index() == 0) {
      EXPECT_TRUE(std::get<0>(rr));
      EXPECT_EQ(p, nullptr);
      EXPECT_EQ(in.qsize(), 1u);
      in.get();
      ASSERT_EQ(*room.get(), i);
    } else {
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(*p, i);
      EXPECT_EQ(*std::get<1>(rr), i);
      EXPECT_TRUE(room.empty());
    }
    EXPECT_TRUE(in.empty());
  }
}

TEST(SelectOps, PutTimedOutLeavesTheItemUntouched) {
  PtrQ full(1);
  full.put(std::make_unique<int>(0));
  auto item = std::make_unique<int>(7);
  int* const raw = item.get();
  const auto start = Clock::now();
  EXPECT_FALSE(weft::select_for(kTimeout, weft::put(full, item)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
  EXPECT_EQ(item.get(), raw);
  EXPECT_FALSE(weft::try_select(weft::put(full, item)).has_value());
  EXPECT_EQ(item.get(), raw);
  EXPECT_EQ(full.qsize(), 1u);
}

TEST(SelectOps, PutWhoseMoveThrowsChangesNothing) {
  weft::LifoQueue<Fragile> q(2);
  Fragile item(5);
  item.fail_next_move();
  EXPECT_THROW(weft::select(weft::put(q, item)), MoveFailed);
  EXPECT_EQ(item.value(), 5);
  EXPECT_TRUE(q.empty());
  auto r = weft::select(weft::put(q, item));  // the queue is not damaged
  EXPECT_TRUE(std::get<0>(r));
  EXPECT_EQ(q.get().value(), 5);
}

TEST(SelectOps, WaitDoesNotConsumeTheEvent) {
  weft::Event e;
  e.set();
  for (int i = 0; i < 3; ++i) {
    auto r = weft::select(weft::wait(e));
    EXPECT_EQ(r.index(), 0u);
    EXPECT_TRUE(e.is_set());
  }
}

TEST(SelectOps, AcquireTakesExactlyOnePermit) {
  weft::Semaphore s(3);
  weft::BoundedSemaphore b(1);
  auto r = weft::select(weft::acquire(s));
  EXPECT_EQ(r.index(), 0u);
  EXPECT_EQ(s.value(), 2u);
  auto r2 = weft::select(weft::acquire(b));  // a BoundedSemaphore is a Semaphore
  EXPECT_EQ(r2.index(), 0u);
  EXPECT_EQ(b.value(), 0u);
  b.release();
  EXPECT_THROW(b.release(), std::logic_error) << "the select took exactly one permit";
}

// =========================================================================================
// Exactly one
// =========================================================================================

TEST(SelectExactlyOne, TwoNonEmptyQueuesLoseExactlyOneItem) {
  IntQ a, b;
  for (int i = 0; i < 100; ++i) {
    a.put(i);
    b.put(1000 + i);
    auto r = weft::select(weft::get(a), weft::get(b));
    EXPECT_EQ(a.qsize() + b.qsize(), 1u);
    if (r.index() == 0) {
      EXPECT_EQ(*std::get<0>(r), i);
      EXPECT_EQ(b.get(), 1000 + i);
    } else {
      EXPECT_EQ(*std::get<1>(r), 1000 + i);
      EXPECT_EQ(a.get(), i);
    }
  }
}

TEST(SelectExactlyOne, EveryKindReadyAtOnce) {
  // Five operations ready at once, 300 times: each time exactly one takes effect.
  IntQ in(0);
  StrQ strs;
  weft::Queue<int> out(1);
  weft::Event e;
  weft::Semaphore s(0);
  e.set();
  std::vector<int> chosen(5, 0);
  for (int i = 0; i < 300; ++i) {
    in.put(i);
    strs.put(std::to_string(i));
    s.release();
    int item = i;
    auto r = weft::select(weft::get(in), weft::get(strs), weft::put(out, item), weft::wait(e),
                          weft::acquire(s));
    ++chosen[r.index()];
    const int took_in = in.empty() ? 1 : 0;
    const int took_str = strs.empty() ? 1 : 0;
    const int put_out = out.qsize() == 1 ? 1 : 0;
    const int took_permit = s.value() == 0 ? 1 : 0;
    ASSERT_EQ(took_in + took_str + put_out + took_permit, r.index() == 3 ? 0 : 1)
        << "iteration " << i << ": chose " << r.index();
    EXPECT_TRUE(e.is_set());
    switch (r.index()) {
      case 0:
        EXPECT_EQ(*std::get<0>(r), i);
        break;
      case 1:
        EXPECT_EQ(*std::get<1>(r), std::to_string(i));
        break;
      case 2:
        EXPECT_TRUE(std::get<2>(r));
        EXPECT_EQ(out.get(), i);
        break;
      default:
        break;
    }
    // Back to the start: drain what was not chosen.
    (void)in.try_get();
    (void)strs.try_get();
    (void)s.acquire(false);
  }
  for (std::size_t k = 0; k < chosen.size(); ++k) {
    EXPECT_GT(chosen[k], 0) << "operation " << k << " was never chosen in 300 selects";
  }
}

TEST(SelectExactlyOne, SameQueueTwice) {
  IntQ q;
  q.put(1);
  auto r = weft::select(weft::get(q), weft::get(q));
  EXPECT_TRUE(q.empty());
  const int got = r.index() == 0 ? *std::get<0>(r) : *std::get<1>(r);
  EXPECT_EQ(got, 1);
  EXPECT_FALSE(weft::select_for(kTimeout, weft::get(q), weft::get(q)).has_value());

  // Both indices are chosen over many selects, and each takes one item.
  int seen[2] = {0, 0};
  for (int i = 0; i < 200; ++i) {
    q.put(i);
    q.put(i);
    auto rr = weft::select(weft::get(q), weft::get(q));
    ++seen[rr.index()];
    EXPECT_EQ(q.qsize(), 1u);
    q.get();
  }
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);

  // Blocked on the same queue twice: one put wakes it, the select takes that one item.
  Returned<std::variant<std::optional<int>, std::optional<int>>> out;
  Threads t(1, [&](std::size_t) { out.value = weft::select(weft::get(q), weft::get(q)); });
  ASSERT_TRUE(blocked(t));
  q.put(77);
  t.join();
  ASSERT_TRUE(out.value.has_value());
  const auto& v = *out.value;
  EXPECT_EQ(v.index() == 0 ? *std::get<0>(v) : *std::get<1>(v), 77);
  EXPECT_TRUE(q.empty());
  // The second node of the select must be gone: a later put wakes a plain getter.
  Threads g(1, [&](std::size_t) { EXPECT_EQ(q.get(), 78); });
  ASSERT_TRUE(blocked(g));
  q.put(78);
}

TEST(SelectExactlyOne, SameQueueTwiceForPut) {
  PtrQ q(1);
  auto a = std::make_unique<int>(1);
  auto b = std::make_unique<int>(2);
  auto r = weft::select(weft::put(q, a), weft::put(q, b));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_NE(a == nullptr, b == nullptr) << "exactly one of the two items was put";
  EXPECT_EQ(r.index() == 0, a == nullptr);
  EXPECT_FALSE(weft::try_select(weft::put(q, a), weft::put(q, b)).has_value());
}

TEST(SelectExactlyOne, SameSemaphoreAndEventTwice) {
  weft::Semaphore s(1);
  auto r = weft::select(weft::acquire(s), weft::acquire(s));
  EXPECT_EQ(s.value(), 0u) << "exactly one permit taken";
  EXPECT_FALSE(weft::try_select(weft::acquire(s), weft::acquire(s)).has_value());
  (void)r;
  weft::Event e;
  Returned<std::variant<std::monostate, std::monostate>> out;
  {
    Threads t(1, [&](std::size_t) { out.value = weft::select(weft::wait(e), weft::wait(e)); });
    ASSERT_TRUE(blocked(t));
    e.set();
  }
  EXPECT_TRUE(out.value.has_value());
  // Blocked on one semaphore twice: one release wakes it, and it takes that one permit.
  Returned<std::variant<std::monostate, std::monostate>> got;
  {
    Threads t(1,
              [&](std::size_t) { got.value = weft::select(weft::acquire(s), weft::acquire(s)); });
    ASSERT_TRUE(blocked(t));
    s.release();
  }
  EXPECT_TRUE(got.value.has_value());
  EXPECT_EQ(s.value(), 0u);
}

TEST(SelectExactlyOne, PutAndGetOnTheSameQueue) {
  weft::Queue<int> q(2);
  q.put(1);  // both a get and a put can proceed
  for (int i = 0; i < 100; ++i) {
    int item = 100 + i;
    auto r = weft::select(weft::get(q), weft::put(q, item));
    EXPECT_EQ(q.qsize(), r.index() == 0 ? 0u : 2u);
    // Restore one item.
    if (r.index() == 0) {
      q.put(1);
    } else {
      q.get();
    }
    ASSERT_EQ(q.qsize(), 1u);
  }
}

// =========================================================================================
// Shutdown
// =========================================================================================

TEST(SelectShutdown, GetFromShutDownAndDrainedQueueIsReportedAsNullopt) {
  IntQ q, other;
  q.put(1);
  q.shutdown();
  auto r = weft::select(weft::get(q), weft::get(other));
  ASSERT_EQ(r.index(), 0u);
  ASSERT_TRUE(std::get<0>(r).has_value()) << "what was queued comes out first";
  EXPECT_EQ(*std::get<0>(r), 1);
  r = weft::select(weft::get(q), weft::get(other));
  ASSERT_EQ(r.index(), 0u) << "a shut-down, drained queue is ready (reported), not hidden";
  EXPECT_FALSE(std::get<0>(r).has_value());
  auto t = weft::try_select(weft::get(other), weft::get(q));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->index(), 1u);
  EXPECT_FALSE(std::get<1>(*t).has_value());
}

TEST(SelectShutdown, ImmediateShutdownReportsNulloptAtOnce) {
  IntQ q;
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.shutdown(true).size(), 2u);
  auto r = weft::select(weft::get(q));
  EXPECT_FALSE(std::get<0>(r).has_value());
}

TEST(SelectShutdown, PutToShutDownQueueIsFalseAndKeepsTheItem) {
  PtrQ q(4);
  q.shutdown();
  auto item = std::make_unique<int>(3);
  int* const raw = item.get();
  auto r = weft::select(weft::put(q, item));
  ASSERT_EQ(r.index(), 0u);
  EXPECT_FALSE(std::get<0>(r));
  EXPECT_EQ(item.get(), raw) << "a put refused by shutdown leaves the item with the caller";
  EXPECT_TRUE(q.empty());
}

TEST(SelectShutdown, ShutdownWakesABlockedGet) {
  IntQ q, other;
  Returned<std::variant<std::optional<int>, std::optional<int>>> out;
  Threads t(1, [&](std::size_t) { out.value = weft::select(weft::get(other), weft::get(q)); });
  ASSERT_TRUE(blocked(t));
  q.shutdown();
  t.join();
  ASSERT_TRUE(out.value.has_value());
  ASSERT_EQ(out.value->index(), 1u);
  EXPECT_FALSE(std::get<1>(*out.value).has_value());
}

TEST(SelectShutdown, ShutdownWakesABlockedPut) {
  PtrQ q(1);
  q.put(std::make_unique<int>(0));
  IntQ other;
  auto item = std::make_unique<int>(3);
  int* const raw = item.get();
  Returned<std::variant<bool, std::optional<int>>> out;
  Threads t(1,
            [&](std::size_t) { out.value = weft::select(weft::put(q, item), weft::get(other)); });
  ASSERT_TRUE(blocked(t));
  q.shutdown();
  t.join();
  ASSERT_TRUE(out.value.has_value());
  ASSERT_EQ(out.value->index(), 0u);
  EXPECT_FALSE(std::get<0>(*out.value));
  EXPECT_EQ(item.get(), raw);
  EXPECT_EQ(q.qsize(), 1u);
}

// =========================================================================================
// Fairness
// =========================================================================================

constexpr int kFairRounds = 10'000;

::testing::AssertionResult share_between(int count, int total, double lo, double hi) {
  const double share = static_cast<double>(count) / total;
  if (share >= lo && share <= hi) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "chosen " << count << " times out of " << total << " (" << share * 100
         << "%), expected between " << lo * 100 << "% and " << hi * 100 << "%";
}

TEST(SelectFairness, TwoAlwaysReadyQueuesShareEvenly) {
  IntQ a, b;
  for (int i = 0; i < kFairRounds; ++i) {
    a.put(i);
    b.put(i);
  }
  int count[2] = {0, 0};
  for (int i = 0; i < kFairRounds; ++i) ++count[weft::select(weft::get(a), weft::get(b)).index()];
  EXPECT_TRUE(share_between(count[0], kFairRounds, 0.4, 0.6));
  EXPECT_TRUE(share_between(count[1], kFairRounds, 0.4, 0.6));
}

// More than two operations, all ready: the first pick is uniform among all N.
TEST(SelectFairness, FourAlwaysReadyQueuesShareEvenly) {
  IntQ q[4];
  for (int i = 0; i < kFairRounds; ++i) {
    for (IntQ& each : q) each.put(i);
  }
  int count[4] = {0, 0, 0, 0};
  for (int i = 0; i < kFairRounds; ++i) {
    ++count[weft::select(weft::get(q[0]), weft::get(q[1]), weft::get(q[2]), weft::get(q[3]))
                .index()];
  }
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(share_between(count[k], kFairRounds, 0.2, 0.3)) << "operation " << k;
  }
}

TEST(SelectFairness, EventAndSemaphoreShareEvenly) {
  weft::Event e;
  e.set();
  weft::Semaphore s(kFairRounds);
  int count[2] = {0, 0};
  for (int i = 0; i < kFairRounds; ++i)
    ++count[weft::select(weft::wait(e), weft::acquire(s)).index()];
  EXPECT_TRUE(share_between(count[0], kFairRounds, 0.4, 0.6));
  EXPECT_TRUE(share_between(count[1], kFairRounds, 0.4, 0.6));
  EXPECT_EQ(s.value(), static_cast<std::size_t>(kFairRounds - count[1]));
}

// The header: "among operations ready at once, the one performed is chosen uniformly at
// random". Here two of three operations are ready; each must get about half.
TEST(SelectFairness, UniformAmongReadyOperationsWhenOthersAreNotReady) {
  IntQ never, a, b;
  for (int i = 0; i < kFairRounds; ++i) {
    a.put(i);
    b.put(i);
  }
  int count[3] = {0, 0, 0};
  for (int i = 0; i < kFairRounds; ++i) {
    ++count[weft::select(weft::get(never), weft::get(a), weft::get(b)).index()];
  }
  EXPECT_EQ(count[0], 0);
  EXPECT_TRUE(share_between(count[1], kFairRounds, 0.4, 0.6)) << "operation 1 (a)";
  EXPECT_TRUE(share_between(count[2], kFairRounds, 0.4, 0.6)) << "operation 2 (b)";
}

TEST(SelectFairness, FairAcrossThreads) {
  // Each thread has its own generator: each one, on its own, must be fair too.
  constexpr int kRounds = 2000;
  IntQ a, b;
  for (int i = 0; i < 2 * kRounds; ++i) {
    a.put(i);
    b.put(i);
  }
  int count[2][2] = {{0, 0}, {0, 0}};
  {
    Threads t(2, [&](std::size_t k) {
      for (int i = 0; i < kRounds; ++i)
        ++count[k][weft::select(weft::get(a), weft::get(b)).index()];
    });
  }
  for (int k = 0; k < 2; ++k) {
    EXPECT_TRUE(share_between(count[k][0], kRounds, 0.4, 0.6)) << "thread " << k;
  }
}

// Threads started one after another, each making one select: glibc hands a new thread the
// stack, and so the thread_local generator's address, of one that exited. Each first pick
// must still be a fresh draw, not the joined thread's again.
TEST(SelectFairness, FairAcrossThreadsStartedOneAfterAnother) {
  constexpr int kThreads = 400;
  IntQ a, b;
  for (int i = 0; i < kThreads; ++i) {
    a.put(i);
    b.put(i);
  }
  int count[2] = {0, 0};
  for (int i = 0; i < kThreads; ++i) {
    std::thread t([&] { ++count[weft::select(weft::get(a), weft::get(b)).index()]; });
    t.join();
  }
  EXPECT_TRUE(share_between(count[0], kThreads, 0.3, 0.7)) << count[0] << " of " << kThreads;
}

TEST(SelectFairness, BiasedAlwaysPicksTheFirstReady) {
  IntQ a, b;
  for (int i = 0; i < 1000; ++i) {
    a.put(i);
    b.put(i);
  }
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(weft::select(weft::biased, weft::get(a), weft::get(b)).index(), 0u) << "round " << i;
  }
  EXPECT_EQ(b.qsize(), 1000u);
  EXPECT_TRUE(a.empty());
  // Once the first is empty, the second.
  EXPECT_EQ(weft::select(weft::biased, weft::get(a), weft::get(b)).index(), 1u);
}

// Biased over three with the first not ready: the attempts after the first go in argument
// order, so the second is performed every time while it has items.
TEST(SelectFairness, BiasedSkipsANotReadyFirstToTheSecond) {
  IntQ never, a, b;
  for (int i = 0; i < 1000; ++i) {
    a.put(i);
    b.put(i);
  }
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(weft::select(weft::biased, weft::get(never), weft::get(a), weft::get(b)).index(), 1u)
        << "round " << i;
  }
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.qsize(), 1000u);
  EXPECT_TRUE(never.empty());
}

// =========================================================================================
// A blocked select, woken by each kind of source
// =========================================================================================

// get(q), wait(e), acquire(s), put(full, item): the select blocks on all four.
struct FourSources {
  IntQ q;
  weft::Event e;
  weft::Semaphore s{0};
  PtrQ full{1};
  std::unique_ptr<int> item = std::make_unique<int>(99);
  int* item_raw = item.get();
  FourSources() { full.put(std::make_unique<int>(0)); }

  using Result = std::variant<std::optional<int>, std::monostate, std::monostate, bool>;
  Result select() {
    return weft::select(weft::get(q), weft::wait(e), weft::acquire(s), weft::put(full, item));
  }
};

template <class Wake>
FourSources::Result blocked_select_woken_by(FourSources& f, Wake wake) {
  Returned<FourSources::Result> out;
  {
    Threads t(1, [&](std::size_t) { out.value = f.select(); });
    EXPECT_TRUE(blocked(t));
    wake();
  }
  return *out.value;
}

TEST(SelectWake, ByPut) {
  FourSources f;
  auto r = blocked_select_woken_by(f, [&] { f.q.put(5); });
  ASSERT_EQ(r.index(), 0u);
  EXPECT_EQ(*std::get<0>(r), 5);
  EXPECT_EQ(f.s.value(), 0u);
  EXPECT_EQ(f.item.get(), f.item_raw);
  EXPECT_TRUE(f.q.empty());
}

TEST(SelectWake, BySet) {
  FourSources f;
  auto r = blocked_select_woken_by(f, [&] { f.e.set(); });
  EXPECT_EQ(r.index(), 1u);
  EXPECT_EQ(f.item.get(), f.item_raw);
}

TEST(SelectWake, ByRelease) {
  FourSources f;
  auto r = blocked_select_woken_by(f, [&] { f.s.release(); });
  EXPECT_EQ(r.index(), 2u);
  EXPECT_EQ(f.s.value(), 0u) << "the select took the released permit";
  EXPECT_EQ(f.item.get(), f.item_raw);
}

TEST(SelectWake, ByGetMakingRoom) {
  FourSources f;
  auto r = blocked_select_woken_by(f, [&] { EXPECT_EQ(*f.full.get(), 0); });
  ASSERT_EQ(r.index(), 3u);
  EXPECT_TRUE(std::get<3>(r));
  EXPECT_EQ(f.item, nullptr);
  EXPECT_EQ(*f.full.get(), 99);
}

TEST(SelectWake, ByShutdown) {
  FourSources f;
  auto r = blocked_select_woken_by(f, [&] { f.q.shutdown(); });
  ASSERT_EQ(r.index(), 0u);
  EXPECT_FALSE(std::get<0>(r).has_value());
}

TEST(SelectWake, TimedSelectWokenBeforeItsTimeout) {
  IntQ a, b;
  Returned<std::optional<std::variant<std::optional<int>, std::optional<int>>>> out;
  Threads t(1, [&](std::size_t) {
    out.value = weft::select_for(weft_test::kPatience, weft::get(a), weft::get(b));
  });
  ASSERT_TRUE(blocked(t));
  b.put(3);
  t.join();
  ASSERT_TRUE(out.value.has_value() && out.value->has_value());
  EXPECT_EQ((*out.value)->index(), 1u);
}

TEST(SelectWake, TwoSelectsOnOneQueueEachGetOneItem) {
  IntQ q, unused;
  std::atomic<int> sum{0};
  Threads t(2, [&](std::size_t) {
    auto r = weft::select(weft::get(q), weft::get(unused));
    sum += *std::get<0>(r);
  });
  ASSERT_TRUE(blocked(t));
  q.put(1);
  q.put(2);
  t.join();
  EXPECT_EQ(sum.load(), 3);
  EXPECT_TRUE(q.empty());
}

TEST(SelectWake, SetWakesEverySelectOnTheEvent) {
  weft::Event e;
  IntQ q;
  std::atomic<int> woken{0};
  Threads t(3, [&](std::size_t) {
    auto r = weft::select(weft::get(q), weft::wait(e));
    if (r.index() == 1) ++woken;
  });
  ASSERT_TRUE(blocked(t));
  e.set();
  t.join();
  EXPECT_EQ(woken.load(), 3);
}

// release(n) with n + 1 selects waiting on the semaphore: exactly n take a permit; the last
// one, holding nothing, is then woken through its queue.
TEST(SelectWake, ReleaseOfNPermitsWakesNSelects) {
  for (int n = 1; n <= 2; ++n) {
    SCOPED_TRACE(n);
    weft::Semaphore s(0);
    IntQ q;
    std::atomic<int> acquired{0};
    {
      Threads t(static_cast<std::size_t>(n) + 1, [&](std::size_t) {
        auto r = weft::select(weft::get(q), weft::acquire(s));
        if (r.index() == 1) ++acquired;
      });
      ASSERT_TRUE(blocked(t));
      s.release(static_cast<std::size_t>(n));
      ASSERT_TRUE(weft_test::eventually([&] { return acquired.load() == n; }));
      EXPECT_EQ(s.value(), 0u);
      q.put(1);
    }
    EXPECT_EQ(acquired.load(), n);
    EXPECT_TRUE(q.empty());
  }
}

// Runs src.request_stop() and serve() at once, from two threads.
template <class Serve>
void stop_racing(std::stop_source& src, Serve serve) {
  std::latch go(2);
  Threads race(2, [&](std::size_t k) {
    go.arrive_and_wait();
    if (k == 0) {
      src.request_stop();
    } else {
      serve();
    }
  });
}

// A stop request and a put race for a blocked select: it either took the item (engaged) or
// was stopped (nullopt) and the item is still queued. Never both, never neither.
TEST(SelectWake, StopRacingPutIsAllOrNothing) {
  constexpr int kRounds = 60;
  int took = 0;
  for (int round = 0; round < kRounds; ++round) {
    IntQ q, other;
    std::stop_source src;
    Returned<bool> out;  // value: engaged
    Threads t(1, [&](std::size_t) {
      out.value = weft::select(src.get_token(), weft::get(other), weft::get(q)).has_value();
    });
    ASSERT_TRUE(blocked(t));
    stop_racing(src, [&] { q.put(round); });
    t.join();
    ASSERT_TRUE(out.value.has_value());
    EXPECT_EQ(q.qsize(), *out.value ? 0u : 1u) << "round " << round;
    took += *out.value ? 1 : 0;
  }
  std::cout << "[ race     ] put won " << took << ", stop won " << kRounds - took << " of "
            << kRounds << " rounds\n";
}

// The same race for a blocked put: the item is either in the queue (moved from, true) or
// still with the caller (nullopt), never both.
TEST(SelectWake, StopRacingRoomForAPutIsAllOrNothing) {
  constexpr int kRounds = 60;
  for (int round = 0; round < kRounds; ++round) {
    PtrQ q(1);
    q.put(std::make_unique<int>(-1));
    auto item = std::make_unique<int>(round);
    std::stop_source src;
    Returned<bool> out;
    Threads t(1, [&](std::size_t) {
      out.value = weft::select(src.get_token(), weft::put(q, item)).has_value();
    });
    ASSERT_TRUE(blocked(t));
    stop_racing(src, [&] { EXPECT_EQ(*q.get(), -1); });
    t.join();
    ASSERT_TRUE(out.value.has_value());
    if (*out.value) {
      EXPECT_EQ(item, nullptr);
      ASSERT_EQ(q.qsize(), 1u);
      EXPECT_EQ(*q.get(), round);
    } else {
      ASSERT_NE(item, nullptr);
      EXPECT_EQ(*item, round);
      EXPECT_TRUE(q.empty());
    }
  }
}

// docs/api.md, Lifetime: a thread woken by put(), set() or release() may destroy the primitive at
// once. A select woken by each deletes every source right away (ASAN checks the wakers).
TEST(SelectWake, WokenSelectMayDestroyItsSourcesAtOnce) {
  for (int round = 0; round < 60; ++round) {
    auto q = std::make_unique<IntQ>(1);
    auto e = std::make_unique<weft::Event>();
    auto s = std::make_unique<weft::Semaphore>(0);
    IntQ* const qp = q.get();
    weft::Event* const ep = e.get();
    weft::Semaphore* const sp = s.get();
    Threads t(1, [&](std::size_t) {
      auto r = weft::select(weft::get(*qp), weft::wait(*ep), weft::acquire(*sp));
      EXPECT_EQ(static_cast<int>(r.index()), round % 3);
      q.reset();
      e.reset();
      s.reset();
    });
    ASSERT_TRUE(blocked(t));
    switch (round % 3) {
      case 0:
        qp->put(1);
        break;
      case 1:
        ep->set();
        break;
      default:
        sp->release();
        break;
    }
    t.join();
  }
}

// Pins threads to CPUs for the duration of a test, where the machine has two or more: the
// calling thread to one, any thread that calls pin_other() to another. Restores the calling
// thread's affinity on destruction.
class CpuSplit {
 public:
  CpuSplit() {
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    for (int cpu = 0; cpu < CPU_SETSIZE && other_ < 0; ++cpu) {
      if (!CPU_ISSET(cpu, &saved_)) continue;
      if (mine_ < 0) {
        mine_ = cpu;
      } else {
        other_ = cpu;
      }
    }
    if (other_ >= 0) pin(mine_);
  }
  ~CpuSplit() {
    if (other_ >= 0) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
  }
  CpuSplit(const CpuSplit&) = delete;
  CpuSplit& operator=(const CpuSplit&) = delete;
  void pin_other() const {
    if (other_ >= 0) pin(other_);
  }

 private:
  static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  cpu_set_t saved_{};
  int mine_ = -1;
  int other_ = -1;
};

// Event's contract (event.hpp, CPython issue 13502): "A thread that is waiting when set() is
// called returns true, even if clear() runs before it is scheduled". A select waiting on
// wait(e) is such a thread: set() claims its node, so the select must report the event even
// though the flag is clear again by the time it runs. Several selects wait, all on one CPU
// and the setter on another, so that most of them run only after clear(); then one item per
// select is put, which a select that missed the event takes instead (so nothing hangs).
TEST(SelectWake, EventSetThenClearedStillReportsTheEventToEveryWaitingSelect) {
  constexpr std::size_t kSelects = 8;
  constexpr int kRounds = 20;
  const CpuSplit cpus;
  for (int round = 0; round < kRounds; ++round) {
    weft::Event e;
    IntQ q;
    std::atomic<std::size_t> reported{0};
    {
      Threads t(kSelects, [&](std::size_t) {
        cpus.pin_other();
        if (weft::select(weft::get(q), weft::wait(e)).index() == 1) ++reported;
      });
      ASSERT_TRUE(blocked(t));
      e.set();
      e.clear();
      for (std::size_t i = 0; i < kSelects; ++i) q.put(static_cast<int>(i));
    }
    ASSERT_EQ(reported.load(), kSelects)
        << "round " << round << ": " << kSelects - reported.load() << " of " << kSelects
        << " selects were waiting on the event when set() was called, yet missed it";
    EXPECT_EQ(q.qsize(), kSelects);
  }
}

// =========================================================================================
// Timeouts and stop requests change nothing
// =========================================================================================

TEST(SelectNoEffect, TimedOutSelectChangesNothingAndLeavesNoRegistration) {
  IntQ q;
  PtrQ full(1);
  full.put(std::make_unique<int>(0));
  weft::Event e;
  weft::Semaphore s(0);
  auto item = std::make_unique<int>(7);
  int* const raw = item.get();
  const auto start = Clock::now();
  auto r = weft::select_for(kTimeout, weft::get(q), weft::put(full, item), weft::wait(e),
                            weft::acquire(s));
  EXPECT_TRUE(took_about(elapsed_since(start), kTimeout));
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(item.get(), raw);
  EXPECT_EQ(full.qsize(), 1u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(s.value(), 0u);

  // The select's nodes lived on its stack: every source must have forgotten them. Each
  // notification below goes to a real waiter (and under ASAN touches no dead node).
  Threads t(3, [&](std::size_t k) {
    if (k == 0) {
      EXPECT_EQ(q.get(), 1);
    }
    if (k == 1) {
      EXPECT_TRUE(e.wait());
    }
    if (k == 2) {
      EXPECT_TRUE(s.acquire());
    }
  });
  ASSERT_TRUE(blocked(t));
  q.put(1);
  e.set();
  s.release();
  t.join();
  EXPECT_EQ(*full.get(), 0);  // a pop notifies not_full: nobody there any more
  EXPECT_EQ(s.value(), 0u);
}

TEST(SelectNoEffect, StopRequestedBeforeTheCallChangesNothing) {
  IntQ q;
  q.put(1);
  weft::Event e;
  e.set();
  weft::Semaphore s(1);
  PtrQ room(1);
  auto item = std::make_unique<int>(2);
  std::stop_source src;
  src.request_stop();
  EXPECT_FALSE(weft::select(src.get_token(), weft::get(q), weft::wait(e), weft::acquire(s),
                            weft::put(room, item))
                   .has_value());
  EXPECT_FALSE(weft::select_for(1h, src.get_token(), weft::get(q)).has_value());
  EXPECT_FALSE(
      weft::select_until(Clock::now() + 1h, src.get_token(), weft::acquire(s)).has_value());
  EXPECT_FALSE(weft::select(weft::biased, src.get_token(), weft::put(room, item)).has_value());
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(s.value(), 1u);
  EXPECT_NE(item, nullptr);
  EXPECT_TRUE(room.empty());
}

// Measures the time from request_stop() to the blocked select's return.
std::vector<Clock::duration> cancel_latencies(int trials) {
  std::vector<Clock::duration> out;
  for (int i = 0; i < trials; ++i) {
    IntQ q;
    weft::Event e;
    weft::Semaphore s(0);
    PtrQ full(1);
    full.put(std::make_unique<int>(0));
    auto item = std::make_unique<int>(1);
    std::stop_source src;
    Returned<bool> out_value;  // value: did the select return nullopt
    Clock::time_point requested{};
    {
      Threads t(1, [&](std::size_t) {
        auto r = weft::select(src.get_token(), weft::get(q), weft::wait(e), weft::acquire(s),
                              weft::put(full, item));
        out_value.returned_at = Clock::now();
        out_value.value = !r.has_value();
      });
      EXPECT_TRUE(blocked(t));
      requested = Clock::now();
      src.request_stop();
    }
    EXPECT_TRUE(out_value.value.value_or(false)) << "a stopped select returns nullopt";
    EXPECT_NE(item, nullptr);
    EXPECT_EQ(full.qsize(), 1u);
    EXPECT_EQ(s.value(), 0u);
    out.push_back(out_value.returned_at - requested);
  }
  return out;
}

TEST(SelectNoEffect, StopRequestWakesABlockedSelectPromptly) {
  constexpr int kTrials = 20;
  auto lat = cancel_latencies(kTrials);
  std::sort(lat.begin(), lat.end());
  using us = std::chrono::microseconds;
  const auto median = std::chrono::duration_cast<us>(lat[lat.size() / 2]).count();
  const auto worst = std::chrono::duration_cast<us>(lat.back()).count();
  std::cout << "[ latency  ] select cancel wake (request_stop -> return), " << kTrials
            << " trials: min " << std::chrono::duration_cast<us>(lat.front()).count()
            << " us, median " << median << " us, max " << worst << " us\n";
  RecordProperty("cancel_wake_median_us", static_cast<int>(median));
  RecordProperty("cancel_wake_max_us", static_cast<int>(worst));
  EXPECT_LT(lat.back(), 1s) << "a stop request must wake a blocked select promptly";
}

TEST(SelectNoEffect, CancelledSelectLeavesNoRegistration) {
  IntQ q;
  weft::Semaphore s(0);
  std::stop_source src;
  {
    Threads t(1, [&](std::size_t) {
      EXPECT_FALSE(weft::select(src.get_token(), weft::get(q), weft::acquire(s)).has_value());
    });
    ASSERT_TRUE(blocked(t));
    src.request_stop();
  }
  // The put and the release each go to a real waiter, not to the departed select.
  Threads t(2, [&](std::size_t k) {
    if (k == 0) {
      EXPECT_EQ(q.get(), 3);
    }
    if (k == 1) {
      EXPECT_TRUE(s.acquire());
    }
  });
  ASSERT_TRUE(blocked(t));
  q.put(3);
  s.release();
}

TEST(SelectNoEffect, StopDuringTimedSelect) {
  IntQ q;
  std::stop_source src;
  Returned<bool> out;
  {
    Threads t(1, [&](std::size_t) {
      out.value = weft::select_for(1h, src.get_token(), weft::get(q)).has_value();
    });
    ASSERT_TRUE(blocked(t));
    src.request_stop();
  }
  EXPECT_EQ(out.value, std::optional<bool>(false));
  q.put(1);
  EXPECT_EQ(q.get(), 1);
}

TEST(SelectNoEffect, JthreadStopsASelectLoop) {
  IntQ jobs;
  weft::Event pause;
  std::atomic<int> handled{0};
  std::atomic<bool> loop_ended{false};
  {
    std::jthread worker([&](std::stop_token st) {
      while (auto r = weft::select(st, weft::get(jobs), weft::wait(pause))) {
        if (r->index() == 0) handled += *std::get<0>(*r);
      }
      loop_ended = true;
    });
    jobs.put(1);
    jobs.put(2);
    ASSERT_TRUE(weft_test::eventually([&] { return handled.load() == 3; }));
  }  // ~jthread: request_stop() then join(): the select must return nullopt
  EXPECT_TRUE(loop_ended.load());
  EXPECT_TRUE(jobs.empty());
}

// =========================================================================================
// Ready first: the attempt before registering skips the sources whose lock-free hint says
// "empty and open" (a get) or "full and open" (a put). It must never skip a ready one.
// =========================================================================================

// One item in one queue of each kind, the others empty: a try_select over all of them finds
// it, whichever kind holds it (each kind's hint: the ring's positions, the locked storages'
// size snapshot).
TEST(SelectReadyFirst, TheOneReadyQueueIsFoundWhateverItsKind) {
  for (int holder = 0; holder < 6; ++holder) {
    weft::Queue<int> ring(4);
    weft::Queue<int> deque;           // unbounded: the locked deque
    weft::Queue<Fragile> fragile(4);  // bounded, but locked: Fragile's move may throw
    weft::LifoQueue<int> lifo;
    weft::PriorityQueue<int> prio;
    weft::SimpleQueue<int> simple;
    switch (holder) {
      case 0:
        ring.put(1);
        break;
      case 1:
        deque.put(1);
        break;
      case 2:
        fragile.put(Fragile(1));
        break;
      case 3:
        lifo.put(1);
        break;
      case 4:
        prio.put(1);
        break;
      case 5:
        simple.put(1);
        break;
    }
    auto r = weft::try_select(weft::get(ring), weft::get(deque), weft::get(fragile),
                              weft::get(lifo), weft::get(prio), weft::get(simple));
    ASSERT_TRUE(r.has_value()) << "holder " << holder;
    ASSERT_EQ(r->index(), static_cast<std::size_t>(holder));
    std::visit(
        [&](auto& item) {
          ASSERT_TRUE(item.has_value()) << "holder " << holder;
          if constexpr (std::is_same_v<std::decay_t<decltype(*item)>, Fragile>) {
            EXPECT_EQ(item->value(), 1);
          } else {
            EXPECT_EQ(*item, 1);
          }
        },
        *r);
    EXPECT_FALSE(weft::try_select(weft::get(ring), weft::get(deque), weft::get(fragile),
                                  weft::get(lifo), weft::get(prio), weft::get(simple))
                     .has_value());
  }
}

// A shut-down, drained queue is ready (its get fires with nullopt), although it is empty:
// its hint must not skip it, for the ring and for a locked storage.
TEST(SelectReadyFirst, AShutDownEmptyQueueIsReady) {
  weft::Queue<int> ring(4), open_ring(4);
  weft::LifoQueue<int> lifo, open_lifo;
  ring.shutdown();
  lifo.shutdown();
  auto r = weft::try_select(weft::get(open_ring), weft::get(ring));
  ASSERT_TRUE(r && r->index() == 1u);
  EXPECT_FALSE(std::get<1>(*r).has_value());
  auto l = weft::try_select(weft::get(open_lifo), weft::get(lifo));
  ASSERT_TRUE(l && l->index() == 1u);
  EXPECT_FALSE(std::get<1>(*l).has_value());
}

// A put is skipped only while its queue is full and open: room made, or a shutdown (the put
// fires false and keeps the item), makes it ready again.
TEST(SelectReadyFirst, APutIsSkippedOnlyWhileItsQueueIsFullAndOpen) {
  weft::Queue<int> ring(1), never(1);
  weft::LifoQueue<int> lifo(1);
  ring.put(0);
  lifo.put(0);
  int a = 1, b = 2;
  EXPECT_FALSE(
      weft::try_select(weft::get(never), weft::put(ring, a), weft::put(lifo, b)).has_value());
  EXPECT_EQ(ring.get(), 0);
  auto r = weft::try_select(weft::get(never), weft::put(ring, a), weft::put(lifo, b));
  ASSERT_TRUE(r && r->index() == 1u && std::get<1>(*r));
  lifo.shutdown();
  auto s = weft::try_select(weft::get(never), weft::put(ring, a), weft::put(lifo, b));
  ASSERT_TRUE(s && s->index() == 2u);
  EXPECT_FALSE(std::get<2>(*s));
  EXPECT_EQ(b, 2);  // not moved from
}

// An item whose put happened before the try_select (through an Event) is found: the hint is
// a snapshot, but never older than what the caller has synchronized with.
TEST(SelectReadyFirst, AnItemPutBeforeTheCallIsAlwaysFound) {
  constexpr int kRounds = static_cast<int>(weft_test::scaled(2000, 300));
  weft::Queue<int> ring(2), never(2);
  weft::LifoQueue<int> lifo(2);
  weft::Event put_done, taken;
  int missed = 0;  // read after join()
  Threads t(1, [&](std::size_t) {
    for (int i = 0; i < kRounds; ++i) {
      put_done.wait();
      put_done.clear();
      auto r = weft::try_select(weft::get(never), weft::get(ring), weft::get(lifo));
      if (!r || r->index() == 0) ++missed;
      taken.set();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    if (i % 2 == 0) {
      ring.put(i);  // the ring's hint
    } else {
      lifo.put(i);  // the locked storage's
    }
    put_done.set();
    taken.wait();
    taken.clear();
  }
  t.join();
  EXPECT_EQ(missed, 0);
}

// Selecting consumers compete with plain getters on the same queues, with producers into
// small queues (so everyone waits, registers and is woken): every item is got exactly once.
TEST(SelectReadyFirst, SelectsAndPlainGettersCompeteAndEveryItemIsGotOnce) {
  constexpr int kPerProducer = static_cast<int>(weft_test::scaled(20000, 4000));
  weft::Queue<int> a(4), b(4);
  std::vector<std::vector<int>> got(4);
  {
    Threads consumers(4, [&](std::size_t k) {
      if (k < 2) {  // selects, one unbiased, one biased
        bool a_open = true, b_open = true;
        while (a_open && b_open) {
          auto r = k == 0 ? weft::select(weft::get(a), weft::get(b))
                          : weft::select(weft::biased, weft::get(b), weft::get(a));
          auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          const bool from_a = (r.index() == 0) == (k == 0);
          if (v) {
            got[k].push_back(*v);
          } else {
            (from_a ? a_open : b_open) = false;
          }
        }
        weft::Queue<int>& rest = a_open ? a : b;
        try {
          for (;;) got[k].push_back(rest.get());
        } catch (const weft::ShutDown&) {
        }
      } else {  // plain getters, one per queue
        weft::Queue<int>& q = k == 2 ? a : b;
        try {
          for (;;) got[k].push_back(q.get());
        } catch (const weft::ShutDown&) {
        }
      }
    });
    {
      Threads producers(2, [&](std::size_t p) {
        weft::Queue<int>& q = p == 0 ? a : b;
        for (int i = 0; i < kPerProducer; ++i) q.put(static_cast<int>(p) * kPerProducer + i);
      });
    }
    a.shutdown();
    b.shutdown();
  }
  std::vector<int> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(2 * kPerProducer));
  for (int i = 0; i < 2 * kPerProducer; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i);
}

}  // namespace
