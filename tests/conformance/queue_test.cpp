// SPDX-License-Identifier: MIT
// Conformance tests for weft's queues (docs/api.md: Queues), run over every queue kind: Queue
// (twice: over its lock-free ring and over its locked deque), LifoQueue, PriorityQueue and,
// where the method exists, SimpleQueue.
//
// Ported from CPython 3.13's Lib/test/test_queue.py (BaseQueueTestMixin, the shutdown
// tests, BaseSimpleQueueTest) and extended with the C++ contract: timeouts of any
// representation, negative timeouts on every form, try_put/try_get, join(duration),
// shutdown(true) returning the removed items, consume(), lifetime and memory ordering.
// Item-type matters (move-only, counting, throwing) are in queue_items_test.cpp,
// stop_token forms in queue_cancel_test.cpp, many-thread runs in stress/queue_stress_test.cpp.
//
// CPython's tests let a thread sleep 0.1 s "so that the blocking call has a chance to
// block"; here a thread is known to be blocked (weft_test::blocked) before anyone acts.
#include "weft/queue.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <latch>
#include <limits>
#include <optional>
#include <pthread.h>
#include <random>
#include <ranges>
#include <sched.h>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "sync_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::blocked;
using weft_test::Clock;
using weft_test::drain_ints;
using weft_test::elapsed_since;
using weft_test::in_get_order;
using weft_test::make_queue;
using weft_test::new_queue;
using weft_test::Order;
using weft_test::Outcome;
using weft_test::outcome_of;
using weft_test::returned_promptly;
using weft_test::scaled;
using weft_test::Threads;
using weft_test::took_about;
using weft_test::woken_promptly;

constexpr std::ptrdiff_t kQueueSize = 5;  // CPython's QUEUE_SIZE

template <class Kind>
class AnyQueue : public ::testing::Test {};
TYPED_TEST_SUITE(AnyQueue, weft_test::AllQueueKinds, weft_test::KindNames);

// The kinds with maxsize, task_done/join, shutdown and consume.
template <class Kind>
class TaskQueue : public ::testing::Test {};
TYPED_TEST_SUITE(TaskQueue, weft_test::TaskQueueKinds, weft_test::KindNames);

// A reference queue of the kind: what the next get must return.
template <class Kind>
class Model {
 public:
  // NOLINTNEXTLINE(modernize-use-emplace): an aggregate; clang 14 has no parenthesized aggregate init
  void put(int v) { items_.push_back({v, seq_++}); }
  int get() {
    auto it = items_.begin();
    if constexpr (Kind::kOrder == Order::lifo) {
      it = std::prev(items_.end());
    } else if constexpr (Kind::kOrder == Order::priority) {
      it = std::min_element(items_.begin(), items_.end());  // by value, then put order
    }
    const int v = it->first;
    items_.erase(it);
    return v;
  }
  std::size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<int, std::uint64_t>> items_;
  std::uint64_t seq_ = 0;
};

template <class Q>
void put_all(Q& q, const std::vector<int>& values) {
  for (int v : values) q.put(v);
}

// ---------------------------------------------------------------------------------------
// Basics: order, size, the non-blocking forms

TYPED_TEST(AnyQueue, StartsEmpty) {
  auto q = make_queue<TypeParam>();
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
  if constexpr (TypeParam::kTasks) {
    EXPECT_FALSE(q.full());
    EXPECT_FALSE(q.is_shutdown());
    EXPECT_EQ(q.unfinished_tasks(), 0u);
  }
}

// CPython basic_queue_test's first part: 111, 333, 222 come out in the kind's order.
TYPED_TEST(AnyQueue, GetOrderFollowsKind) {
  auto q = make_queue<TypeParam>();
  put_all(q, {111, 333, 222});
  std::vector<int> got;
  for (int i = 0; i < 3; ++i) got.push_back(static_cast<int>(q.get()));
  EXPECT_EQ(got, in_get_order<TypeParam>(std::vector<int>{111, 333, 222}));

  // Duplicates: every copy comes back, in the kind's order.
  const std::vector<int> values = {5, 3, 5, 1, 3, 9, 0, 5, 1, 1, 7, 3};
  put_all(q, values);
  EXPECT_EQ(q.qsize(), values.size());
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(values));
  EXPECT_TRUE(q.empty());
}

// Puts and gets interleaved at random against a reference model of the kind; unbounded,
// and bounded (a small maxsize: Queue's ring wraps around many times, and a put_nowait on a
// full queue must throw Full without disturbing the order).
template <class Kind>
void check_against_model(std::ptrdiff_t maxsize) {
  auto q = make_queue<Kind>(maxsize);
  Model<Kind> model;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> value(0, 20);
  for (int step = 0; step < 3000; ++step) {
    const bool full = maxsize > 0 && model.size() == static_cast<std::size_t>(maxsize);
    if (model.size() == 0 || (!full && rng() % 3 != 0)) {
      const int v = value(rng);
      q.put_nowait(v);
      model.put(v);
    } else if (full && rng() % 4 == 0) {
      ASSERT_THROW(q.put_nowait(value(rng)), weft::Full) << "step " << step;
    } else {
      ASSERT_EQ(static_cast<int>(q.get_nowait()), model.get()) << "step " << step;
    }
    ASSERT_EQ(q.qsize(), model.size()) << "step " << step;
  }
  while (model.size() != 0) ASSERT_EQ(static_cast<int>(q.get()), model.get());
  EXPECT_TRUE(q.empty());
}

TYPED_TEST(AnyQueue, InterleavedPutsAndGetsMatchModel) {
  check_against_model<TypeParam>(0);
  if constexpr (TypeParam::kTasks) check_against_model<TypeParam>(7);
}

// CPython BaseSimpleQueueTest.test_basic, over every kind and every get form.
TYPED_TEST(AnyQueue, QsizeAndEveryGetForm) {
  auto q = make_queue<TypeParam>();
  q.put(1);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.qsize(), 1u);
  q.put(2);
  q.put_nowait(3);
  EXPECT_TRUE(q.try_put(4));
  const int five = 5;
  q.put(five);  // const T& overload
  EXPECT_EQ(q.qsize(), 5u);

  // Each item taken with a different form; the kind decides which item each one gets.
  const std::vector<int> expected = in_get_order<TypeParam>(std::vector<int>{1, 2, 3, 4, 5});
  std::vector<int> got;
  got.push_back(static_cast<int>(q.get()));
  EXPECT_EQ(q.qsize(), 4u);
  got.push_back(static_cast<int>(q.get_nowait()));
  EXPECT_EQ(q.qsize(), 3u);
  got.push_back(static_cast<int>(q.get(100ms)));
  got.push_back(static_cast<int>(*q.try_get()));
  got.push_back(static_cast<int>(*q.try_get(100ms)));
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
}

TYPED_TEST(AnyQueue, NonBlockingGetsOnEmptyQueueFailAtOnce) {
  auto q = make_queue<TypeParam>();
  const auto start = Clock::now();
  EXPECT_THROW((void)q.get_nowait(), weft::Empty);
  EXPECT_THROW((void)q.get(0s), weft::Empty);
  EXPECT_THROW((void)q.get(0.0s), weft::Empty);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_FALSE(q.try_get(0s).has_value());
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_TRUE(q.empty());
  q.put(7);  // the failed gets left nothing behind (no phantom item, no stale waiter)
  EXPECT_EQ(static_cast<int>(q.get_nowait()), 7);
  EXPECT_TRUE(q.empty());
}

TYPED_TEST(AnyQueue, TimedGetOnEmptyQueueTimesOut) {
  auto q = make_queue<TypeParam>();
  auto start = Clock::now();
  EXPECT_THROW((void)q.get(50ms), weft::Empty);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_THROW((void)q.get(0.05s), weft::Empty);  // floating-point seconds
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_FALSE(q.try_get(50ms).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_FALSE(q.try_get(std::chrono::duration<float, std::milli>(50.0f)).has_value());
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  EXPECT_TRUE(q.empty());
}

// docs/api.md: a negative timeout throws std::invalid_argument on every form that takes one,
// even when the call would not have to block, and changes nothing.
TYPED_TEST(AnyQueue, NegativeTimeoutIsRejectedByEveryFormAndChangesNothing) {
  auto q = make_queue<TypeParam>();
  put_all(q, {4, 2, 6});  // gets would succeed at once; the queue is unbounded: so would puts
  std::stop_source never_stopped;
  const auto st = never_stopped.get_token();
  using item_t = typename TypeParam::Item;
  const item_t lvalue(9);

  EXPECT_THROW((void)q.get(-1ms), std::invalid_argument);
  EXPECT_THROW((void)q.get(-1ns), std::invalid_argument);
  EXPECT_THROW((void)q.get(-0.5s), std::invalid_argument);
  EXPECT_THROW((void)q.get(std::chrono::hours::min()), std::invalid_argument);
  EXPECT_THROW((void)q.get(-1ms, st), std::invalid_argument);
  EXPECT_THROW((void)q.try_get(-1ms), std::invalid_argument);
  EXPECT_THROW((void)q.try_get(-0.001s), std::invalid_argument);
  EXPECT_THROW((void)q.try_get(-1ms, st), std::invalid_argument);
  EXPECT_THROW(q.put(9, -1ms), std::invalid_argument);
  EXPECT_THROW(q.put(9, -0.5s), std::invalid_argument);
  EXPECT_THROW(q.put(lvalue, -1ms), std::invalid_argument);
  EXPECT_THROW(q.put(9, -1ms, st), std::invalid_argument);
  EXPECT_THROW((void)q.try_put(9, -1ms), std::invalid_argument);
  EXPECT_THROW((void)q.try_put(9, -1ms, st), std::invalid_argument);

  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{4, 2, 6}));

  // And on an empty queue, where a get would have to wait.
  EXPECT_THROW((void)q.get(-1ms), std::invalid_argument);
  EXPECT_THROW((void)q.try_get(-1ms), std::invalid_argument);
  EXPECT_TRUE(q.empty());
}

// Not in docs/api.md, but in detail/deadline.hpp's contract: a NaN timeout is rejected rather
// than read as "forever" or "now".
TYPED_TEST(AnyQueue, NanTimeoutIsRejected) {
  auto q = make_queue<TypeParam>();
  q.put(1);
  const std::chrono::duration<double> nan(std::numeric_limits<double>::quiet_NaN());
  EXPECT_THROW((void)q.get(nan), std::invalid_argument);
  EXPECT_THROW((void)q.try_put(2, nan), std::invalid_argument);
  EXPECT_EQ(drain_ints(q), std::vector<int>{1});
}

// CPython do_blocking_test(q.get, ..., q.put, ...): every blocking get form waits for a put.
TYPED_TEST(AnyQueue, BlockedGetIsReleasedByPut) {
  auto q = make_queue<TypeParam>();
  for (int form = 0; form < 4; ++form) {
    std::atomic<int> got{-1};
    Threads getter(1, [&](std::size_t) {
      switch (form) {
        case 0:
          got = static_cast<int>(q.get());
          break;
        case 1:
          got = static_cast<int>(q.get(60s));
          break;
        case 2:
          got = static_cast<int>(q.try_get(60s).value_or(-2));
          break;
        case 3:
          got = static_cast<int>(q.get(std::chrono::duration<double>(60.0)));
          break;
      }
    });
    ASSERT_TRUE(blocked(getter)) << "form " << form;
    EXPECT_EQ(got.load(), -1);
    q.put(100 + form);
    getter.join();
    EXPECT_EQ(got.load(), 100 + form) << "form " << form;
    EXPECT_TRUE(q.empty());
  }
}

// docs/api.md: duration::max() of any representation means "wait forever": not an overflow into
// the past (an immediate Empty) and not a failure.
TYPED_TEST(AnyQueue, MaxDurationGetWaitsUntilServed) {
  auto q = make_queue<TypeParam>();
  using std::chrono::duration;
  for (int form = 0; form < 8; ++form) {
    std::atomic<int> got{-1};
    Threads getter(1, [&](std::size_t) {
      switch (form) {
        case 0:
          got = static_cast<int>(q.get(std::chrono::nanoseconds::max()));
          break;
        case 1:
          got = static_cast<int>(q.get(std::chrono::seconds::max()));
          break;
        case 2:
          got = static_cast<int>(q.get(std::chrono::hours::max()));
          break;
        case 3:
          got = static_cast<int>(q.get(duration<double>::max()));
          break;
        case 4:
          got = static_cast<int>(q.get(duration<float, std::milli>::max()));
          break;
        case 5:
          got = static_cast<int>(q.get(duration<long double, std::nano>::max()));
          break;
        case 6:
          got = static_cast<int>(
              q.try_get(duration<std::int32_t, std::ratio<86400>>::max()).value_or(-2));
          break;
        case 7:
          got = static_cast<int>(q.get(duration<double>(std::numeric_limits<double>::infinity())));
          break;
      }
    });
    ASSERT_TRUE(blocked(getter)) << "form " << form << " did not wait";
    q.put(form);
    getter.join();
    EXPECT_EQ(got.load(), form) << "form " << form;
  }
}

// A put wakes one getter per item: the others stay blocked, nobody gets an item twice.
TYPED_TEST(AnyQueue, EachPutReleasesOneBlockedGetter) {
  auto q = make_queue<TypeParam>();
  constexpr std::size_t kGetters = 3;
  std::vector<std::atomic<int>> got(kGetters);
  for (auto& g : got) g = -1;
  Threads getters(kGetters, [&](std::size_t i) { got[i] = static_cast<int>(q.get()); });
  ASSERT_TRUE(blocked(getters));
  for (std::size_t n = 1; n <= kGetters; ++n) {
    q.put(static_cast<int>(10 * n));
    ASSERT_TRUE(weft_test::eventually([&] { return getters.finished_count() == n; }));
    std::vector<std::size_t> waiting;
    for (std::size_t i = 0; i < kGetters; ++i) {
      if (!getters.finished(i)) waiting.push_back(i);
    }
    ASSERT_EQ(waiting.size(), kGetters - n);
    if (!waiting.empty()) {
      ASSERT_TRUE(blocked(getters, waiting)) << "a second getter returned after put " << n;
    }
  }
  getters.join();
  std::vector<int> values;
  for (auto& g : got) values.push_back(g.load());
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, (std::vector<int>{10, 20, 30}));
  EXPECT_TRUE(q.empty());
}

// CPython BaseSimpleQueueTest.test_order: one producer and one consumer running together.
// A FIFO keeps the order whatever the interleaving; the other kinds lose and duplicate
// nothing.
TYPED_TEST(AnyQueue, OneProducerOneConsumer) {
  auto q = make_queue<TypeParam>();
  constexpr int kItems = 1000;
  std::vector<int> got;
  got.reserve(kItems);
  {
    Threads consumer(1, [&](std::size_t) {
      for (int i = 0; i < kItems; ++i) got.push_back(static_cast<int>(q.get()));
    });
    for (int i = 0; i < kItems; ++i) q.put(i);
  }
  std::vector<int> inputs(kItems);
  for (int i = 0; i < kItems; ++i) inputs[i] = i;
  if constexpr (TypeParam::kOrder != Order::fifo) std::sort(got.begin(), got.end());
  EXPECT_EQ(got, inputs);
  EXPECT_TRUE(q.empty());
}

// docs/api.md memory ordering: everything the putter wrote before put(x) is visible to the
// thread that gets x. The payload is plain (non-atomic) data: ThreadSanitizer reports a
// race if the queue does not order it.
TYPED_TEST(AnyQueue, PutHappensBeforeGet) {
  struct Payload {
    int id = -1;
    std::uint64_t square = 0;
    std::vector<int> digits;
  };
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  const int per_producer = static_cast<int>(scaled(2000, 300));
  const int total = kProducers * per_producer;
  std::vector<Payload> payload(static_cast<std::size_t>(total));
  auto q = make_queue<TypeParam>();
  std::atomic<int> reserved{0};
  std::atomic<int> bad{0};
  {
    Threads threads(kProducers + kConsumers, [&](std::size_t t) {
      if (t < kProducers) {
        for (int k = 0; k < per_producer; ++k) {
          const int id = static_cast<int>(t) * per_producer + k;
          Payload& p = payload[static_cast<std::size_t>(id)];
          p.id = id;
          p.square = static_cast<std::uint64_t>(id) * static_cast<std::uint64_t>(id);
          p.digits.assign(static_cast<std::size_t>(id % 7 + 1), id);
          q.put(id);
        }
      } else {
        while (reserved.fetch_add(1) < total) {  // one get per item: nobody blocks at the end
          const int id = static_cast<int>(q.get());
          const Payload& p = payload[static_cast<std::size_t>(id)];
          const bool ok =
              p.id == id &&
              p.square == static_cast<std::uint64_t>(id) * static_cast<std::uint64_t>(id) &&
              p.digits.size() == static_cast<std::size_t>(id % 7 + 1) && p.digits.back() == id;
          if (!ok) bad.fetch_add(1);
        }
      }
    });
  }
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(q.empty());
}

// docs/api.md lifetime: a getter woken by put() may destroy the queue at once; the put must not
// touch the queue after the wake. The getter is parked before the put (the case docs/api.md
// names); AddressSanitizer reports any access to the freed queue.
TYPED_TEST(AnyQueue, WokenGetterMayDestroyQueueAtOnce) {
  const std::size_t rounds = scaled(100, 30);
  for (std::size_t round = 0; round < rounds; ++round) {
    auto* q = new_queue<TypeParam>().release();
    std::atomic<int> got{-1};
    Threads getter(1, [&](std::size_t) {
      const int v = static_cast<int>(q->get());
      delete q;
      got = v;
    });
    ASSERT_TRUE(blocked(getter));
    switch (round % 3) {
      case 0:
        q->put(7);
        break;
      case 1:
        q->put_nowait(7);
        break;
      case 2:
        ASSERT_TRUE(q->try_put(7));
        break;
    }
    getter.join();
    EXPECT_EQ(got.load(), 7);
  }
}

// Pins the calling thread to `cpu`.
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ASSERT_EQ(::pthread_setaffinity_np(::pthread_self(), sizeof set, &set), 0);
}

// Lowers the calling thread to SCHED_IDLE: on a shared CPU, any other thread that wakes up
// preempts it at once. (Allowed without privileges; if refused, the interleaving below is
// only likely instead of certain.)
void make_idle_priority() {
  sched_param param{};
  (void)::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &param);
}

// The first CPU this thread may run on.
int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return 0;
}

// Long enough that a scheduler tick (<= 4 ms) falls inside the move.
constexpr long kSlowMoveUs = 5000;

// The same contract when the getter is not parked but arrives while the put runs: it
// blocks on the queue's internal lock, which the put holds while it moves the item in, and
// is woken by the put's unlock; it then has its item before the put returns, and may
// destroy the queue at once. Made deterministic: both threads share one CPU, the putter
// runs at idle priority and the item's move outlasts a scheduler tick, so the polling
// getter preempts the putter inside its critical section, blocks on the lock, and preempts
// it again the moment the unlock wakes it. AddressSanitizer reports a put that touches the
// queue after that.
TYPED_TEST(AnyQueue, GetterWokenInsidePutMayDestroyQueueAtOnce) {
  const int cpu = first_allowed_cpu();
  weft_test::SlowMove::slow_move_time_us() = kSlowMoveUs;
  using Item = typename TypeParam::template ItemOf<weft_test::SlowMove>;
  const std::size_t rounds = scaled(10, 20);  // only a sanitizer sees the failure
  for (std::size_t round = 0; round < rounds; ++round) {
    auto* q = new_queue<TypeParam, Item>().release();
    std::latch go(2);
    std::atomic<int> got{-1};
    Threads threads(2, [&](std::size_t i) {
      pin_to(cpu);
      if (i == 1) make_idle_priority();
      go.arrive_and_wait();
      if (i == 0) {
        std::optional<Item> item;
        while (!(item = q->try_get())) std::this_thread::yield();
        delete q;
        got = weft_test::value_of(*item);
      } else {
        q->put(Item(weft_test::SlowMove(7)));
      }
    });
    threads.join();
    ASSERT_EQ(got.load(), 7) << "round " << round;
  }
  weft_test::SlowMove::slow_move_time_us() = 0;
}

// ---------------------------------------------------------------------------------------
// Bounded queues

TYPED_TEST(TaskQueue, MaxsizeIsReported) {
  auto q = make_queue<TypeParam>(kQueueSize);
  EXPECT_EQ(q.maxsize(), kQueueSize);
  auto unbounded = make_queue<TypeParam>();
  EXPECT_EQ(unbounded.maxsize(), 0);
}

// maxsize <= 0: unbounded (Python: "If maxsize is less than or equal to zero, the queue
// size is infinite").
TYPED_TEST(TaskQueue, MaxsizeZeroOrNegativeIsUnbounded) {
  for (const std::ptrdiff_t maxsize : {std::ptrdiff_t{0}, std::ptrdiff_t{-1}, std::ptrdiff_t{-100},
                                       std::numeric_limits<std::ptrdiff_t>::min()}) {
    auto q = make_queue<TypeParam>(maxsize);
    EXPECT_EQ(q.maxsize(), maxsize) << "Python keeps the value given";
    for (int i = 0; i < 1000; ++i) {
      ASSERT_NO_THROW(q.put_nowait(i)) << "maxsize " << maxsize << ", item " << i;
      ASSERT_FALSE(q.full());
    }
    EXPECT_EQ(q.qsize(), 1000u);
  }
}

// A nominal bound costs nothing up front (Python users write Queue(maxsize=10**9)): a queue
// bounded at 2^40 or at PTRDIFF_MAX items is built at once, without allocating for its
// bound, and behaves as bounded (maxsize reported, never full at these sizes).
TYPED_TEST(TaskQueue, HugeMaxsizeAllocatesNothingUpFront) {
  for (const std::ptrdiff_t maxsize :
       {std::ptrdiff_t{1} << 40, std::numeric_limits<std::ptrdiff_t>::max()}) {
    auto q = make_queue<TypeParam>(maxsize);
    EXPECT_EQ(q.maxsize(), maxsize);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(q.try_put(i));
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.qsize(), 1000u);
    EXPECT_EQ(static_cast<int>(q.get()), in_get_order<TypeParam>(std::vector<int>{0, 999}).front());
  }
}

// CPython basic_queue_test, run twice on the same bounded queue.
TYPED_TEST(TaskQueue, BasicBoundedQueueTest) {
  auto q = make_queue<TypeParam>(kQueueSize);
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass);
    ASSERT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    put_all(q, {111, 333, 222});
    std::vector<int> order;
    for (int i = 0; i < 3; ++i) order.push_back(static_cast<int>(q.get()));
    EXPECT_EQ(order, in_get_order<TypeParam>(std::vector<int>{111, 333, 222}));

    for (int i = 0; i < kQueueSize - 1; ++i) {
      q.put(i);
      EXPECT_FALSE(q.empty());
      EXPECT_FALSE(q.full());
    }
    const int last = 2 * kQueueSize;
    const int full = static_cast<int>(6 * kQueueSize);
    q.put(last);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.qsize(), static_cast<std::size_t>(kQueueSize));
    EXPECT_THROW(q.put_nowait(full), weft::Full);
    auto start = Clock::now();
    EXPECT_THROW(q.put(full, 10ms), weft::Full);
    EXPECT_TRUE(took_about(elapsed_since(start), 10ms));

    // A blocking put, then a timed one, each released by a get.
    for (int timed = 0; timed < 2; ++timed) {
      Threads putter(1, [&](std::size_t) {
        if (timed) {
          q.put(full, 10s);
        } else {
          q.put(full);
        }
      });
      ASSERT_TRUE(blocked(putter));
      (void)q.get();
      putter.join();
      EXPECT_TRUE(q.full());
    }

    for (int i = 0; i < kQueueSize; ++i) (void)q.get();
    EXPECT_TRUE(q.empty());
    EXPECT_THROW((void)q.get_nowait(), weft::Empty);
    start = Clock::now();
    EXPECT_THROW((void)q.get(10ms), weft::Empty);
    EXPECT_TRUE(took_about(elapsed_since(start), 10ms));

    for (int timed = 0; timed < 2; ++timed) {
      std::atomic<int> got{-1};
      Threads getter(1, [&](std::size_t) { got = static_cast<int>(timed ? q.get(10s) : q.get()); });
      ASSERT_TRUE(blocked(getter));
      q.put(77);
      getter.join();
      EXPECT_EQ(got.load(), 77);
    }
    // CPython test_queue_join/task_done run elsewhere; settle the books for the next pass.
    while (q.unfinished_tasks() > 0) q.task_done();
  }
}

// CPython test_nowait, plus try_put and zero timeouts: a full queue refuses at once and
// keeps what it has.
TYPED_TEST(TaskQueue, NonBlockingPutsOnFullQueueFailAtOnceAndChangeNothing) {
  auto q = make_queue<TypeParam>(3);
  put_all(q, {3, 1, 2});
  ASSERT_TRUE(q.full());
  const auto start = Clock::now();
  EXPECT_THROW(q.put_nowait(0), weft::Full);
  const typename TypeParam::Item lvalue(0);
  EXPECT_THROW(q.put_nowait(lvalue), weft::Full);
  EXPECT_THROW(q.put(0, 0s), weft::Full);
  EXPECT_THROW(q.put(lvalue, 0s), weft::Full);
  EXPECT_FALSE(q.try_put(0));
  EXPECT_FALSE(q.try_put(lvalue));
  EXPECT_FALSE(q.try_put(0, 0s));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.unfinished_tasks(), 3u) << "a failed put counted a task";
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{3, 1, 2}));
}

TYPED_TEST(TaskQueue, TimedPutOnFullQueueTimesOut) {
  auto q = make_queue<TypeParam>(2);
  put_all(q, {1, 2});
  auto start = Clock::now();
  EXPECT_THROW(q.put(3, 50ms), weft::Full);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_THROW(q.put(3, 0.05s), weft::Full);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_FALSE(q.try_put(3, 50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  start = Clock::now();
  EXPECT_FALSE(q.try_put(3, std::chrono::duration<float, std::milli>(50.0f)));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));

  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{1, 2}));
}

// Negative timeouts on a full queue (where a put would block) and on join.
TYPED_TEST(TaskQueue, NegativeTimeoutIsRejectedOnFullQueueAndByJoin) {
  auto q = make_queue<TypeParam>(2);
  put_all(q, {1, 2});
  std::stop_source never_stopped;
  const auto st = never_stopped.get_token();
  EXPECT_THROW(q.put(3, -1ms), std::invalid_argument);
  EXPECT_THROW(q.put(3, -1ms, st), std::invalid_argument);
  EXPECT_THROW((void)q.try_put(3, -1ms), std::invalid_argument);
  EXPECT_THROW((void)q.try_put(3, -1.0s, st), std::invalid_argument);
  EXPECT_THROW((void)q.join(-1ms), std::invalid_argument);
  EXPECT_THROW((void)q.join(-1ms, st), std::invalid_argument);
  EXPECT_THROW((void)q.join(-0.25s), std::invalid_argument);
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{1, 2}));
  q.task_done();
  q.task_done();
  EXPECT_THROW((void)q.join(-1ms), std::invalid_argument) << "join with nothing to wait for";
}

// Every blocking put form waits for a get, then lands its item.
TYPED_TEST(TaskQueue, BlockedPutIsReleasedByGet) {
  auto q = make_queue<TypeParam>(1);
  q.put(0);
  for (int form = 0; form < 5; ++form) {
    const typename TypeParam::Item lvalue(100 + form);
    std::atomic<bool> ok{false};
    Threads putter(1, [&](std::size_t) {
      switch (form) {
        case 0:
          q.put(100 + form);
          ok = true;
          break;
        case 1:
          q.put(lvalue);
          ok = true;
          break;
        case 2:
          q.put(100 + form, 60s);
          ok = true;
          break;
        case 3:
          ok = q.try_put(100 + form, 60s);
          break;
        case 4:
          q.put(100 + form, std::chrono::duration<double>::max());
          ok = true;
          break;
      }
    });
    ASSERT_TRUE(blocked(putter)) << "form " << form;
    EXPECT_EQ(q.qsize(), 1u);
    const int previous = static_cast<int>(q.get());
    EXPECT_EQ(previous, form == 0 ? 0 : 100 + form - 1);
    putter.join();
    EXPECT_TRUE(ok.load()) << "form " << form;
    EXPECT_EQ(q.qsize(), 1u);
  }
  EXPECT_EQ(drain_ints(q), std::vector<int>{104});
}

// A get wakes one putter per free slot; every item arrives exactly once.
TYPED_TEST(TaskQueue, EachGetReleasesOneBlockedPutter) {
  auto q = make_queue<TypeParam>(1);
  q.put(0);
  constexpr std::size_t kPutters = 3;
  Threads putters(kPutters, [&](std::size_t i) { q.put(static_cast<int>(i + 1)); });
  ASSERT_TRUE(blocked(putters));
  std::vector<int> got;
  for (std::size_t n = 1; n <= kPutters; ++n) {
    got.push_back(static_cast<int>(q.get()));
    ASSERT_TRUE(weft_test::eventually([&] { return putters.finished_count() == n; }));
    std::vector<std::size_t> waiting;
    for (std::size_t i = 0; i < kPutters; ++i) {
      if (!putters.finished(i)) waiting.push_back(i);
    }
    if (!waiting.empty()) {
      ASSERT_TRUE(blocked(putters, waiting));
    }
    EXPECT_EQ(q.qsize(), 1u);
  }
  putters.join();
  got.push_back(static_cast<int>(q.get_nowait()));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

// maxsize 1 holds at most one item, so every kind hands the items on in put order.
TYPED_TEST(TaskQueue, MaxsizeOneHandsItemsOnInOrder) {
  auto q = make_queue<TypeParam>(1);
  const int items = static_cast<int>(scaled(2000, 300));
  std::vector<int> got;
  {
    Threads consumer(1, [&](std::size_t) {
      for (int i = 0; i < items; ++i) {
        got.push_back(static_cast<int>(q.get()));
        EXPECT_LE(q.qsize(), 1u);
      }
    });
    for (int i = 0; i < items; ++i) {
      q.put(i);
      EXPECT_LE(q.qsize(), 1u);
    }
  }
  ASSERT_EQ(got.size(), static_cast<std::size_t>(items));
  for (int i = 0; i < items; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], i);
}

// docs/api.md lifetime, the other direction: a putter woken by get() may destroy the queue.
TYPED_TEST(TaskQueue, WokenPutterMayDestroyQueueAtOnce) {
  const std::size_t rounds = scaled(100, 30);
  for (std::size_t round = 0; round < rounds; ++round) {
    auto* q = new_queue<TypeParam>(1).release();
    q->put(1);
    std::atomic<bool> done{false};
    Threads putter(1, [&](std::size_t) {
      q->put(2);
      delete q;  // the get below must be done with the queue by now
      done = true;
    });
    ASSERT_TRUE(blocked(putter));
    switch (round % 3) {
      case 0:
        EXPECT_EQ(static_cast<int>(q->get()), 1);
        break;
      case 1:
        EXPECT_EQ(static_cast<int>(q->get_nowait()), 1);
        break;
      case 2:
        EXPECT_EQ(static_cast<int>(q->try_get().value_or(-1)), 1);
        break;
    }
    putter.join();
    EXPECT_TRUE(done.load());
  }
}

// The same for a putter polling a full queue: it blocks on the internal lock the get
// holds while it moves the item out, is woken by the get's unlock, puts its item and
// destroys the queue, all before the get returns (the getter runs at idle priority here).
TYPED_TEST(TaskQueue, PutterWokenInsideGetMayDestroyQueueAtOnce) {
  const int cpu = first_allowed_cpu();
  using Item = typename TypeParam::template ItemOf<weft_test::SlowMove>;
  const std::size_t rounds = scaled(10, 20);  // only a sanitizer sees the failure
  for (std::size_t round = 0; round < rounds; ++round) {
    auto* q = new_queue<TypeParam, Item>(1).release();
    q->put(Item(weft_test::SlowMove(1)));
    weft_test::SlowMove::slow_move_time_us() = kSlowMoveUs;
    std::latch go(2);
    std::atomic<int> got{-1};
    Threads threads(2, [&](std::size_t i) {
      pin_to(cpu);
      if (i == 1) make_idle_priority();
      go.arrive_and_wait();
      if (i == 0) {
        while (!q->try_put(Item(weft_test::SlowMove(2)))) std::this_thread::yield();
        delete q;
      } else {
        got = weft_test::value_of(q->get());
      }
    });
    threads.join();
    weft_test::SlowMove::slow_move_time_us() = 0;
    ASSERT_EQ(got.load(), 1) << "round " << round;
  }
}

// ---------------------------------------------------------------------------------------
// task_done / join

// CPython test_queue_task_done.
TYPED_TEST(TaskQueue, TaskDoneTooManyTimesThrowsAndChangesNothing) {
  auto q = make_queue<TypeParam>();
  EXPECT_THROW(q.task_done(), std::logic_error);
  EXPECT_EQ(q.unfinished_tasks(), 0u);

  put_all(q, {1, 2});
  (void)q.get();
  (void)q.get();
  q.task_done();
  q.task_done();
  EXPECT_THROW(q.task_done(), std::logic_error);
  EXPECT_THROW(q.task_done(), std::logic_error);
  EXPECT_EQ(q.unfinished_tasks(), 0u);

  // Had a failed task_done() counted, it would finish this next task in advance.
  q.put(3);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_FALSE(q.join(0s));
  (void)q.get();
  EXPECT_FALSE(q.join(0s)) << "a get is not a task_done";
  q.task_done();
  EXPECT_TRUE(q.join(0s));
  EXPECT_THROW(q.task_done(), std::logic_error);
}

TYPED_TEST(TaskQueue, UnfinishedTasksCountsPutsNotYetDone) {
  auto q = make_queue<TypeParam>(kQueueSize);
  for (int i = 0; i < 4; ++i) q.put(i);
  EXPECT_EQ(q.unfinished_tasks(), 4u);
  (void)q.get();
  (void)q.get();
  EXPECT_EQ(q.unfinished_tasks(), 4u);
  q.task_done();
  EXPECT_EQ(q.unfinished_tasks(), 3u);
  // task_done() may run ahead of get(): it counts puts, not gets (as in Python).
  q.task_done();
  q.task_done();
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(q.qsize(), 2u);
}

// CPython queue_join_test / test_queue_join: two workers sum 0..99; join() returns only
// once every item was task_done(); twice on the same queue, and join twice in a row.
TYPED_TEST(TaskQueue, JoinWaitsUntilEveryTaskIsDone) {
  auto q = make_queue<TypeParam>();
  for (int pass = 0; pass < 2; ++pass) {
    std::atomic<int> cum{0};
    Threads workers(2, [&](std::size_t) {
      for (;;) {
        const int x = static_cast<int>(q.get());
        if (x < 0) {
          q.task_done();
          return;
        }
        cum.fetch_add(x);
        q.task_done();
      }
    });
    for (int i = 0; i < 100; ++i) q.put(i);
    q.join();
    EXPECT_EQ(cum.load(), 4950) << "join() returned before every task was done";
    q.put(-1);
    q.put(-1);
    q.join();
    workers.join();
    EXPECT_EQ(q.unfinished_tasks(), 0u);
  }
  EXPECT_THROW(q.task_done(), std::logic_error);
}

TYPED_TEST(TaskQueue, JoinWithNothingUnfinishedReturnsAtOnce) {
  auto q = make_queue<TypeParam>();
  const auto start = Clock::now();
  q.join();
  EXPECT_TRUE(q.join(0s));
  EXPECT_TRUE(q.join(1h));
  EXPECT_TRUE(q.join(std::chrono::nanoseconds::max()));
  q.put(1);
  (void)q.get();
  q.task_done();
  q.join();
  EXPECT_TRUE(q.join(1h));
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
}

TYPED_TEST(TaskQueue, TimedJoinTimesOut) {
  auto q = make_queue<TypeParam>();
  q.put(1);
  auto start = Clock::now();
  EXPECT_FALSE(q.join(50ms));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  start = Clock::now();
  EXPECT_FALSE(q.join(0.05s));
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(q.qsize(), 1u);
}

// Blocked joiners of every form are released by the last task_done(), not before.
TYPED_TEST(TaskQueue, BlockedJoinIsReleasedByLastTaskDone) {
  auto q = make_queue<TypeParam>();
  put_all(q, {1, 2});
  (void)q.get();
  (void)q.get();
  std::vector<std::atomic<int>> result(4);
  for (auto& r : result) r = -1;
  Threads joiners(4, [&](std::size_t i) {
    switch (i) {
      case 0:
        q.join();
        result[i] = 1;
        break;
      case 1:
        result[i] = q.join(60s) ? 1 : 0;
        break;
      case 2:
        result[i] = q.join(std::chrono::hours::max()) ? 1 : 0;
        break;
      case 3:
        result[i] = q.join(std::chrono::duration<double>::max()) ? 1 : 0;
        break;
    }
  });
  ASSERT_TRUE(blocked(joiners));
  q.task_done();
  ASSERT_TRUE(blocked(joiners)) << "join returned with a task unfinished";
  q.task_done();
  joiners.join();
  for (auto& r : result) EXPECT_EQ(r.load(), 1);
}

// ---------------------------------------------------------------------------------------
// shutdown (CPython 3.13's test_shutdown_*)

// test_shutdown_empty, over every put and get form: each fails at once, however long its
// timeout.
TYPED_TEST(TaskQueue, ShutdownEmptyQueueRefusesEveryPutAndGet) {
  auto q = make_queue<TypeParam>(kQueueSize);
  EXPECT_TRUE(q.shutdown().empty());
  EXPECT_TRUE(q.is_shutdown());
  const typename TypeParam::Item lvalue(1);
  const auto start = Clock::now();
  EXPECT_THROW(q.put(1), weft::ShutDown);
  EXPECT_THROW(q.put(lvalue), weft::ShutDown);
  EXPECT_THROW(q.put(1, 1h), weft::ShutDown);
  EXPECT_THROW(q.put(1, 0s), weft::ShutDown);
  EXPECT_THROW(q.put_nowait(1), weft::ShutDown);
  EXPECT_FALSE(q.try_put(1));
  EXPECT_FALSE(q.try_put(1, 1h));
  EXPECT_THROW((void)q.get(), weft::ShutDown);
  EXPECT_THROW((void)q.get(1h), weft::ShutDown);
  EXPECT_THROW((void)q.get(0s), weft::ShutDown);
  EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_FALSE(q.try_get(1h).has_value());
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  q.join();
}

// ShutDown comes before Full: a put on a full queue that was shut down throws ShutDown.
TYPED_TEST(TaskQueue, ShutdownFullQueueRefusesPutsWithShutDown) {
  auto q = make_queue<TypeParam>(2);
  put_all(q, {1, 2});
  (void)q.shutdown();
  EXPECT_THROW(q.put_nowait(3), weft::ShutDown);
  EXPECT_THROW(q.put(3, 50ms), weft::ShutDown);
  EXPECT_THROW(q.put(3), weft::ShutDown);
  EXPECT_FALSE(q.try_put(3));
  EXPECT_EQ(q.qsize(), 2u);
}

// test_shutdown_nonempty: gets drain what is left (in the kind's order, through every get
// form), then throw ShutDown.
TYPED_TEST(TaskQueue, ShutdownNonEmptyQueueDrainsThenThrows) {
  auto q = make_queue<TypeParam>();
  const std::vector<int> values = {4, 8, 1, 6, 2};
  put_all(q, values);
  EXPECT_TRUE(q.shutdown().empty()) << "shutdown(false) removes nothing";
  EXPECT_EQ(q.qsize(), values.size());
  std::vector<int> got;
  got.push_back(static_cast<int>(q.get()));
  got.push_back(static_cast<int>(q.get_nowait()));
  got.push_back(static_cast<int>(q.get(1h)));
  got.push_back(static_cast<int>(*q.try_get()));
  got.push_back(static_cast<int>(*q.try_get(1h)));
  EXPECT_EQ(got, in_get_order<TypeParam>(values));
  const auto start = Clock::now();
  EXPECT_THROW((void)q.get(), weft::ShutDown);
  EXPECT_THROW((void)q.get(1h), weft::ShutDown);
  EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
  EXPECT_FALSE(q.try_get(1h).has_value());
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  for (std::size_t i = 0; i < values.size(); ++i) q.task_done();
  EXPECT_TRUE(q.join(0s));
}

// test_shutdown_immediate, plus docs/api.md: shutdown(true) returns what it removed, in get
// order, and counts each one done.
TYPED_TEST(TaskQueue, ShutdownImmediateReturnsRemovedItemsInGetOrder) {
  auto q = make_queue<TypeParam>(8);
  const std::vector<int> values = {5, 3, 7, 3, 1, 9};
  put_all(q, values);
  const auto removed = q.shutdown(true);
  EXPECT_EQ(weft_test::to_ints(removed), in_get_order<TypeParam>(values));
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  const auto start = Clock::now();
  EXPECT_THROW((void)q.get(), weft::ShutDown);
  EXPECT_THROW((void)q.get(1h), weft::ShutDown);
  EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
  EXPECT_FALSE(q.try_get().has_value());
  q.join();
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  EXPECT_THROW(q.task_done(), std::logic_error);
}

// shutdown(true) counts done only the items it removed: an item already got but not yet
// task_done() still holds join().
TYPED_TEST(TaskQueue, ShutdownImmediateCountsOnlyRemovedItemsDone) {
  auto q = make_queue<TypeParam>();
  put_all(q, {1, 2, 3});
  const int in_hand = static_cast<int>(q.get());
  EXPECT_EQ(in_hand, in_get_order<TypeParam>(std::vector<int>{1, 2, 3}).front());
  EXPECT_EQ(q.shutdown(true).size(), 2u);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_FALSE(q.join(0s));
  q.task_done();
  EXPECT_TRUE(q.join(0s));
  EXPECT_THROW(q.task_done(), std::logic_error);
}

// test_shutdown_allowed_transitions, and shutdown twice: later calls are harmless; a later
// shutdown(true) still removes what an earlier shutdown(false) left.
TYPED_TEST(TaskQueue, ShutdownTransitions) {
  auto q = make_queue<TypeParam>();
  EXPECT_FALSE(q.is_shutdown());
  put_all(q, {2, 1});
  EXPECT_TRUE(q.shutdown().empty());
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_TRUE(q.shutdown(false).empty());
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_EQ(q.qsize(), 2u);
  const auto removed = q.shutdown(true);
  EXPECT_EQ(weft_test::to_ints(removed), in_get_order<TypeParam>(std::vector<int>{2, 1}));
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_TRUE(q.shutdown(true).empty());
  EXPECT_TRUE(q.shutdown(false).empty());
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

// test_shutdown_all_methods_in_one_thread and its immediate variant.
TYPED_TEST(TaskQueue, ShutdownAllMethodsInOneThread) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>(2);
    q.put(1);
    q.put_nowait(2);
    (void)q.shutdown(immediate);
    EXPECT_THROW(q.put(3), weft::ShutDown);
    EXPECT_THROW(q.put_nowait(4), weft::ShutDown);
    if (immediate) {
      EXPECT_THROW((void)q.get(), weft::ShutDown);
      EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
      EXPECT_THROW(q.task_done(), std::logic_error);
      q.join();
    } else {
      std::vector<int> got;
      got.push_back(static_cast<int>(q.get()));
      q.task_done();
      got.push_back(static_cast<int>(q.get()));
      q.task_done();
      EXPECT_EQ(got, in_get_order<TypeParam>(std::vector<int>{1, 2}));
      q.join();
      EXPECT_THROW((void)q.get(), weft::ShutDown);
      EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
      const auto start = Clock::now();
      EXPECT_THROW((void)q.get(1s), weft::ShutDown);
      EXPECT_TRUE(returned_promptly(elapsed_since(start)));
    }
  }
}

// test_shutdown_pending_get, with every blocking get form and both shutdown modes: threads
// parked in get on an empty queue all wake with ShutDown (nullopt for try_get).
TYPED_TEST(TaskQueue, ShutdownWakesEveryBlockedGetter) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>(kQueueSize);
    constexpr std::size_t kGetters = 5;
    std::vector<std::atomic<Outcome>> outcome(kGetters);
    for (auto& o : outcome) o = Outcome::pending;
    Threads getters(kGetters, [&](std::size_t i) {
      outcome[i] = outcome_of([&] {
        switch (i) {
          case 0:
            (void)q.get();
            break;
          case 1:
            (void)q.get(1h);
            break;
          case 2:
            (void)q.get(std::chrono::nanoseconds::max());
            break;
          case 3:
            if (q.try_get(1h)) throw std::runtime_error("try_get returned an item");
            throw weft::ShutDown();  // nullopt: the expected outcome
          case 4:
            for (auto&& item : q.consume()) {
              (void)item;
              throw std::runtime_error("consume yielded an item");
            }
            throw weft::ShutDown();  // the loop ended: the expected outcome
        }
      });
    });
    ASSERT_TRUE(blocked(getters));
    const auto start = Clock::now();
    EXPECT_TRUE(q.shutdown(immediate).empty());
    getters.join();
    EXPECT_TRUE(woken_promptly(elapsed_since(start)));
    for (std::size_t i = 0; i < kGetters; ++i)
      EXPECT_EQ(outcome[i].load(), Outcome::shut_down) << "getter " << i;
  }
}

// _shutdown_get: a full queue of 2 is shut down; three getters get both items and one
// ShutDown (shutdown(false)), or two getters both get ShutDown (shutdown(true)).
TYPED_TEST(TaskQueue, ShutdownThenGetters) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>(2);
    put_all(q, {1, 2});
    const std::size_t n = immediate ? 2 : 3;
    std::vector<std::atomic<Outcome>> outcome(n);
    std::latch go(1);
    {
      Threads getters(n, [&](std::size_t i) {
        go.wait();
        outcome[i] = outcome_of([&] { (void)q.get(); });
      });
      (void)q.shutdown(immediate);
      go.count_down();
    }
    std::size_t ok = 0, shut = 0;
    for (auto& o : outcome) {
      ok += o.load() == Outcome::ok;
      shut += o.load() == Outcome::shut_down;
    }
    EXPECT_EQ(ok, immediate ? 0u : 2u);
    EXPECT_EQ(shut, immediate ? 2u : 1u);
  }
}

// _shutdown_put: putters blocked on a full queue all wake with ShutDown (false for
// try_put), whichever shutdown; after shutdown(false) the queue keeps its items.
TYPED_TEST(TaskQueue, ShutdownWakesEveryBlockedPutter) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>(2);
    put_all(q, {1, 2});
    constexpr std::size_t kPutters = 4;
    std::vector<std::atomic<Outcome>> outcome(kPutters);
    for (auto& o : outcome) o = Outcome::pending;
    Threads putters(kPutters, [&](std::size_t i) {
      outcome[i] = outcome_of([&] {
        const int v = 10 + static_cast<int>(i);
        switch (i) {
          case 0:
            q.put(v);
            break;
          case 1:
            q.put(v, 1h);
            break;
          case 2:
            q.put(v, std::chrono::duration<double>::max());
            break;
          case 3:
            if (!q.try_put(10 + static_cast<int>(i), 1h))
              throw weft::ShutDown();  // false: the expected outcome
            break;
        }
      });
    });
    ASSERT_TRUE(blocked(putters));
    const auto removed = q.shutdown(immediate);
    putters.join();
    for (std::size_t i = 0; i < kPutters; ++i)
      EXPECT_EQ(outcome[i].load(), Outcome::shut_down) << "putter " << i;
    if (immediate) {
      EXPECT_EQ(removed.size(), 2u);
      EXPECT_TRUE(q.empty());
      EXPECT_EQ(q.unfinished_tasks(), 0u);
    } else {
      EXPECT_EQ(q.unfinished_tasks(), 2u) << "a refused put counted a task";
      EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{1, 2}));
    }
  }
}

// _shutdown_join: joiners waiting on an unfinished item. shutdown(true) removes it and so
// releases them; shutdown(false) does not (as in Python), the item's task_done() does.
TYPED_TEST(TaskQueue, ShutdownAndBlockedJoiners) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>();
    q.put(1);
    std::vector<std::atomic<int>> joined(2);
    for (auto& j : joined) j = -1;
    Threads joiners(2, [&](std::size_t i) {
      if (i == 0) {
        q.join();
        joined[i] = 1;
      } else {
        joined[i] = q.join(1h) ? 1 : 0;
      }
    });
    ASSERT_TRUE(blocked(joiners));
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    (void)q.shutdown(immediate);
    if (!immediate) {
      ASSERT_TRUE(blocked(joiners)) << "shutdown(false) released join with a task unfinished";
      EXPECT_EQ(static_cast<int>(q.get()), 1);
      q.task_done();
    }
    joiners.join();
    for (auto& j : joined) EXPECT_EQ(j.load(), 1);
    EXPECT_EQ(q.unfinished_tasks(), 0u);
  }
}

// _shutdown_put_join: a put after shutdown fails and adds no task; the joiner waits for the
// one real item, which shutdown(true) removes or a get + task_done() finishes.
TYPED_TEST(TaskQueue, ShutdownPutJoin) {
  for (const bool immediate : {false, true}) {
    SCOPED_TRACE(immediate ? "immediate" : "not immediate");
    auto q = make_queue<TypeParam>(2);
    q.put(1);
    std::atomic<Outcome> put_outcome{Outcome::pending};
    std::atomic<int> joined{-1};
    std::latch go(1);
    Threads threads(2, [&](std::size_t i) {
      if (i == 0) {
        go.wait();
        put_outcome = outcome_of([&] { q.put(2); });
      } else {
        q.join();
        joined = 1;
      }
    });
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    (void)q.shutdown(immediate);
    go.count_down();
    if (immediate) {
      EXPECT_THROW((void)q.get_nowait(), weft::ShutDown);
    } else {
      EXPECT_EQ(static_cast<int>(q.get()), 1);
      q.task_done();
    }
    threads.join();
    EXPECT_EQ(put_outcome.load(), Outcome::shut_down);
    EXPECT_EQ(joined.load(), 1);
  }
}

// test_shutdown_get_task_done_join: getters that task_done() and joiners, with a
// shutdown(false) racing them: everyone finishes normally.
TYPED_TEST(TaskQueue, ShutdownGetTaskDoneJoin) {
  auto q = make_queue<TypeParam>(2);
  put_all(q, {1, 2});
  EXPECT_EQ(q.unfinished_tasks(), q.qsize());
  std::vector<std::atomic<Outcome>> outcome(4);
  std::latch go(1);
  {
    Threads threads(4, [&](std::size_t i) {
      outcome[i] = outcome_of([&] {
        if (i < 2) {
          go.wait();
          (void)q.get();
          q.task_done();
        } else {
          q.join();
        }
      });
    });
    go.count_down();
    (void)q.shutdown(false);
  }
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(outcome[i].load(), Outcome::ok) << "thread " << i;
  EXPECT_TRUE(q.empty());
}

// ---------------------------------------------------------------------------------------
// consume()

template <class Q>
using ConsumeRangeOf = decltype(std::declval<Q&>().consume());

static_assert(std::ranges::input_range<ConsumeRangeOf<weft::Queue<int>>>);
static_assert(std::ranges::input_range<ConsumeRangeOf<weft::LifoQueue<int>>>);
static_assert(std::ranges::input_range<ConsumeRangeOf<weft::PriorityQueue<int>>>);
static_assert(std::ranges::input_range<ConsumeRangeOf<weft::Queue<weft_test::MoveMayThrowInt>>>);
static_assert(std::same_as<std::ranges::range_value_t<ConsumeRangeOf<weft::Queue<int>>>, int>);

// Items put before shutdown() come out of consume() in get order; then the loop ends.
TYPED_TEST(TaskQueue, ConsumeYieldsItemsThenEndsAfterShutdown) {
  auto q = make_queue<TypeParam>();
  const std::vector<int> values = {3, 9, 1, 4, 1, 5};
  put_all(q, values);
  (void)q.shutdown();
  std::vector<int> got;
  for (auto item : q.consume()) {
    got.push_back(static_cast<int>(item));
    q.task_done();
  }
  EXPECT_EQ(got, in_get_order<TypeParam>(values));
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.join(0s));
  // A second consume() of the drained queue ends at once.
  int more = 0;
  for (auto item : q.consume()) {
    (void)item;
    ++more;
  }
  EXPECT_EQ(more, 0);
}

TYPED_TEST(TaskQueue, ConsumeAfterShutdownImmediateYieldsNothing) {
  auto q = make_queue<TypeParam>();
  put_all(q, {1, 2, 3});
  EXPECT_EQ(q.shutdown(true).size(), 3u);
  int n = 0;
  for (auto item : q.consume()) {
    (void)item;
    ++n;
  }
  EXPECT_EQ(n, 0);
}

// The example of queue.hpp: a worker consumes, the producer joins, then shuts down; the
// worker blocks while the queue is empty and open, and its loop ends on shutdown.
TYPED_TEST(TaskQueue, ConsumeWorkerBlocksUntilShutdown) {
  auto q = make_queue<TypeParam>(4);
  std::vector<int> got;
  Threads worker(1, [&](std::size_t) {
    for (auto item : q.consume()) {
      got.push_back(static_cast<int>(item));
      q.task_done();
    }
  });
  for (int i = 0; i < 50; ++i) q.put(i);
  q.join();
  ASSERT_TRUE(blocked(worker)) << "consume() ended before shutdown";
  (void)q.shutdown();
  worker.join();
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
}

// std::ranges algorithms work on the range (it is a real input_range, not just range-for).
TYPED_TEST(TaskQueue, ConsumeWorksWithRangesAlgorithms) {
  auto q = make_queue<TypeParam>();
  put_all(q, {1, 2, 3, 4});
  (void)q.shutdown();
  auto range = q.consume();
  int sum = 0;
  std::ranges::for_each(range, [&](auto&& item) { sum += static_cast<int>(item); });
  EXPECT_EQ(sum, 10);
}

}  // namespace

// ---- batches: put_many and get_many (docs/api.md: Batches) ---------------------------------

namespace batches {

std::vector<int> iota_ints(int from, int count) {
  std::vector<int> v(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) v[static_cast<std::size_t>(i)] = from + i;
  return v;
}

// Every put_many and get_many form moves the items in the kind's order, and counts them.
// (Bounded with room to spare, so that Queue<int> runs over its ring.)
TYPED_TEST(AnyQueue, BatchFormsKeepOrderAndCount) {
  using Item = typename TypeParam::Item;
  auto q = make_queue<TypeParam>(64);
  const std::vector<int> values = {5, 3, 8, 1, 9, 2, 7};
  EXPECT_EQ(q.put_many(values), values.size());
  EXPECT_EQ(q.qsize(), values.size());
  std::vector<int> got = weft_test::to_ints(q.get_many(3));
  std::vector<Item> out;
  EXPECT_EQ(q.get_many(out, 2), 2u);
  Item arr[4] = {Item(0), Item(0), Item(0), Item(0)};
  EXPECT_EQ(q.get_many(arr, 4), 2u) << "get_many returns what is there, up to n";
  for (int v : weft_test::to_ints(out)) got.push_back(v);
  for (int i = 0; i < 2; ++i) got.push_back(static_cast<int>(arr[i]));
  EXPECT_EQ(got, in_get_order<TypeParam>(values));
  EXPECT_TRUE(q.empty());

  // The iterator forms, every timeout and stop_token form, and the nowait forms.
  std::stop_source ss;
  EXPECT_EQ(q.put_many(values.begin(), values.begin() + 2), 2u);
  EXPECT_EQ(q.put_many(values.begin() + 2, values.begin() + 3, 1h), 1u);
  EXPECT_EQ(q.put_many(values.begin() + 3, values.begin() + 4, ss.get_token()), 1u);
  EXPECT_EQ(q.put_many(values.begin() + 4, values.begin() + 5, 1h, ss.get_token()), 1u);
  EXPECT_EQ(q.put_many_nowait(values.begin() + 5, values.end()), 2u);
  got.clear();
  std::vector<Item> all;
  EXPECT_EQ(q.get_many(all, 1, 1h), 1u);
  EXPECT_EQ(q.get_many(all, 1, ss.get_token()), 1u);
  EXPECT_EQ(q.get_many(all, 1, 1h, ss.get_token()), 1u);
  EXPECT_EQ(q.get_many_nowait(all, 1), 1u);
  for (auto& v : q.get_many(1, 1h)) all.push_back(std::move(v));
  for (auto& v : q.get_many(1, ss.get_token())) all.push_back(std::move(v));
  for (auto& v : q.get_many_nowait(1)) all.push_back(std::move(v));
  EXPECT_EQ(weft_test::to_ints(all), in_get_order<TypeParam>(values));
  // The range forms with a timeout, a stop_token, both; an output iterator with each.
  EXPECT_EQ(q.put_many(values, 1h), values.size());
  EXPECT_EQ(q.put_many(values, ss.get_token()), values.size());
  EXPECT_EQ(q.put_many(values, 1h, ss.get_token()), values.size());
  EXPECT_EQ(q.put_many_nowait(values), values.size());
  std::vector<Item> big(4 * values.size(), Item(0));
  std::size_t n = q.get_many(big.begin(), 7, 1h);
  n += q.get_many(big.begin() + static_cast<std::ptrdiff_t>(n), 7, ss.get_token());
  n += q.get_many(big.begin() + static_cast<std::ptrdiff_t>(n), 7, 1h, ss.get_token());
  n += q.get_many_nowait(big.begin() + static_cast<std::ptrdiff_t>(n), 7);
  EXPECT_EQ(n, big.size());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.put_many(std::vector<int>{}), 0u) << "an empty batch puts nothing";
}

// get_many waits for the first item only, and takes what is there then (up to n).
TYPED_TEST(AnyQueue, GetManyWaitsForTheFirstItemOnly) {
  auto q = make_queue<TypeParam>(64);
  std::vector<int> got;
  Threads getter(1, [&](std::size_t) { got = weft_test::to_ints(q.get_many(10)); });
  ASSERT_TRUE(blocked(getter));
  q.put(7);
  getter.join();
  EXPECT_EQ(got, std::vector<int>{7});
}

TYPED_TEST(AnyQueue, BatchFailuresOnAnEmptyQueue) {
  auto q = make_queue<TypeParam>();
  const auto start = Clock::now();
  EXPECT_THROW((void)q.get_many_nowait(3), weft::Empty);
  std::vector<typename TypeParam::Item> out;
  EXPECT_THROW((void)q.get_many_nowait(out, 3), weft::Empty);
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));
  const auto timed = Clock::now();
  EXPECT_THROW((void)q.get_many(3, 50ms), weft::Empty);
  EXPECT_TRUE(took_about(elapsed_since(timed), 50ms));
  EXPECT_THROW((void)q.get_many(0), std::invalid_argument);
  EXPECT_THROW((void)q.get_many(out, 0), std::invalid_argument);
  EXPECT_THROW((void)q.get_many(3, -1ms), std::invalid_argument);
  const std::vector<int> values = {1, 2};
  EXPECT_THROW((void)q.put_many(values, -1ms), std::invalid_argument);
  EXPECT_TRUE(q.empty()) << "a rejected put_many puts nothing";
  EXPECT_TRUE(out.empty());
}

// A stop request ends a get_many that got nothing with Cancelled, at once or while blocked.
TYPED_TEST(AnyQueue, GetManyIsCancelledByAStopRequest) {
  auto q = make_queue<TypeParam>();
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_THROW((void)q.get_many(4, stopped.get_token()), weft::Cancelled);
  q.put(1);
  EXPECT_THROW((void)q.get_many(4, stopped.get_token()), weft::Cancelled)
      << "a stop requested first wins, as for get";
  EXPECT_EQ(q.qsize(), 1u);
  (void)q.get();
  std::stop_source ss;
  Outcome outcome = Outcome::pending;
  Threads getter(1, [&](std::size_t) {
    outcome = outcome_of([&] { (void)q.get_many(4, 1h, ss.get_token()); });
  });
  ASSERT_TRUE(blocked(getter));
  ss.request_stop();
  getter.join();
  EXPECT_EQ(outcome, Outcome::cancelled);
}

// A batch of k items wakes k blocked getters (each get takes one; none is left asleep).
TYPED_TEST(AnyQueue, BatchOfKWakesKGetters) {
  auto q = make_queue<TypeParam>(64);
  constexpr std::size_t kGetters = 4;
  std::vector<std::atomic<int>> got(kGetters);
  Threads getters(kGetters, [&](std::size_t i) { got[i] = static_cast<int>(q.get()); });
  ASSERT_TRUE(blocked(getters));
  EXPECT_EQ(q.put_many(iota_ints(1, static_cast<int>(kGetters))), kGetters);
  getters.join();
  std::vector<int> values;
  for (auto& g : got) values.push_back(g.load());
  std::sort(values.begin(), values.end());
  EXPECT_EQ(values, iota_ints(1, static_cast<int>(kGetters)));
  EXPECT_TRUE(q.empty());
}

// put_many_nowait puts what fits; a timed put_many puts what fits by its deadline; both
// raise Full only when nothing fitted, and the rest stays with the caller.
TYPED_TEST(TaskQueue, BoundedPutManyPutsWhatFits) {
  auto q = make_queue<TypeParam>(kQueueSize);
  const std::vector<int> values = iota_ints(1, 8);
  EXPECT_EQ(q.put_many_nowait(values), 5u);
  EXPECT_TRUE(q.full());
  EXPECT_THROW((void)q.put_many_nowait(values), weft::Full);
  const auto start = Clock::now();
  EXPECT_THROW((void)q.put_many(values, 50ms), weft::Full);
  EXPECT_TRUE(took_about(elapsed_since(start), 50ms));
  EXPECT_EQ(q.get_many(2).size(), 2u);
  EXPECT_EQ(q.put_many(values.begin() + 5, values.end(), 50ms), 2u)
      << "a timed batch returns the count that fitted by its deadline";
  EXPECT_EQ(q.qsize(), 5u);
  EXPECT_EQ(q.unfinished_tasks(), 7u) << "each item a batch put is one task";
}

// A blocking put_many larger than maxsize goes through as getters make room.
TYPED_TEST(TaskQueue, BlockingPutManyWaitsForRoomAsOftenAsNeeded) {
  auto q = make_queue<TypeParam>(2);
  const std::vector<int> values = iota_ints(1, 40);
  std::size_t put = 0;
  Threads putter(1, [&](std::size_t) { put = q.put_many(values); });
  std::vector<int> got;
  while (got.size() < values.size()) {
    for (auto& v : q.get_many(3)) got.push_back(static_cast<int>(v));
  }
  putter.join();
  EXPECT_EQ(put, values.size());
  std::vector<int> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, values);
  if constexpr (TypeParam::kOrder == Order::fifo) {
    EXPECT_EQ(got, values);
  }
}

// A get_many frees k slots and wakes k blocked putters.
TYPED_TEST(TaskQueue, GetManyOfKWakesKPutters) {
  auto q = make_queue<TypeParam>(3);
  EXPECT_EQ(q.put_many(iota_ints(1, 3)), 3u);
  constexpr std::size_t kPutters = 3;
  Threads putters(kPutters, [&](std::size_t i) { q.put(static_cast<int>(10 + i)); });
  ASSERT_TRUE(blocked(putters));
  EXPECT_EQ(q.get_many(3).size(), 3u);
  putters.join();
  std::vector<int> rest = drain_ints(q);
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<int>{10, 11, 12}));
}

// A stop request ends a blocked put_many: Cancelled if it put nothing, else its count.
TYPED_TEST(TaskQueue, PutManyIsCancelledByAStopRequest) {
  auto q = make_queue<TypeParam>(2);
  q.put(0);
  const std::vector<int> values = {1, 2, 3};
  std::stop_source ss;
  std::size_t put = 0;
  Threads putter(1, [&](std::size_t) { put = q.put_many(values, ss.get_token()); });
  ASSERT_TRUE(blocked(putter));
  ss.request_stop();
  putter.join();
  EXPECT_EQ(put, 1u) << "the first item fitted; the stop ended the wait for the others";
  std::stop_source ss2;
  Outcome outcome = Outcome::pending;
  Threads blocked_putter(1, [&](std::size_t) {
    outcome = outcome_of([&] { (void)q.put_many(values, 1h, ss2.get_token()); });
  });
  ASSERT_TRUE(blocked(blocked_putter));
  ss2.request_stop();
  blocked_putter.join();
  EXPECT_EQ(outcome, Outcome::cancelled);
  EXPECT_EQ(drain_ints(q), in_get_order<TypeParam>(std::vector<int>{0, 1}));
}

// Shutdown: put_many raises ShutDown (an empty batch too); a blocked put_many returns its
// count, or ShutDown if it put nothing; get_many hands out what is left, then raises
// ShutDown, at once after shutdown(true).
TYPED_TEST(TaskQueue, BatchesAndShutdown) {
  auto q = make_queue<TypeParam>(3);
  std::size_t put = 0;
  Threads putter(1, [&](std::size_t) { put = q.put_many(iota_ints(1, 5)); });
  ASSERT_TRUE(blocked(putter));
  Outcome second = Outcome::pending;
  Threads second_putter(
      1, [&](std::size_t) { second = outcome_of([&] { (void)q.put_many(iota_ints(10, 2)); }); });
  ASSERT_TRUE(blocked(second_putter));
  (void)q.shutdown();
  putter.join();
  second_putter.join();
  EXPECT_EQ(put, 3u);
  EXPECT_EQ(second, Outcome::shut_down);
  EXPECT_THROW((void)q.put_many(iota_ints(1, 2)), weft::ShutDown);
  EXPECT_THROW((void)q.put_many(std::vector<int>{}), weft::ShutDown);
  EXPECT_THROW((void)q.put_many_nowait(iota_ints(1, 2)), weft::ShutDown);
  std::vector<int> left = weft_test::to_ints(q.get_many(2));
  EXPECT_EQ(left.size(), 2u);
  for (int v : weft_test::to_ints(q.get_many(5, 1h))) left.push_back(v);
  EXPECT_EQ(left, in_get_order<TypeParam>(std::vector<int>{1, 2, 3}));
  const auto start = Clock::now();
  EXPECT_THROW((void)q.get_many(5), weft::ShutDown);
  EXPECT_THROW((void)q.get_many_nowait(5), weft::ShutDown);
  EXPECT_TRUE(returned_promptly(elapsed_since(start)));

  auto q2 = make_queue<TypeParam>(8);
  EXPECT_EQ(q2.put_many(iota_ints(1, 4)), 4u);
  EXPECT_EQ(q2.shutdown(true).size(), 4u);
  EXPECT_THROW((void)q2.get_many(5), weft::ShutDown);
  EXPECT_TRUE(q2.join(0s));

  auto q3 = make_queue<TypeParam>();
  Outcome getter_outcome = Outcome::pending;
  Threads getter(1,
                 [&](std::size_t) { getter_outcome = outcome_of([&] { (void)q3.get_many(5); }); });
  ASSERT_TRUE(blocked(getter));
  (void)q3.shutdown();
  getter.join();
  EXPECT_EQ(getter_outcome, Outcome::shut_down);
}

// Each item of a batch is one task: put_many(n) needs n task_done() calls to release join.
TYPED_TEST(TaskQueue, EachItemOfABatchIsOneTask) {
  auto q = make_queue<TypeParam>(8);
  EXPECT_EQ(q.put_many(iota_ints(1, 6)), 6u);
  EXPECT_EQ(q.unfinished_tasks(), 6u);
  EXPECT_EQ(q.get_many(6).size(), 6u);
  EXPECT_EQ(q.unfinished_tasks(), 6u) << "getting is not finishing";
  for (int i = 0; i < 5; ++i) q.task_done();
  EXPECT_FALSE(q.join(0s));
  q.task_done();
  EXPECT_TRUE(q.join(0s));
  EXPECT_THROW(q.task_done(), std::logic_error);
}

}  // namespace batches
