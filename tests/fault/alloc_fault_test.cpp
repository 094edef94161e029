// SPDX-License-Identifier: MIT
// Fault injection: allocation failure (tests/testing/alloc_faults.hpp replaces the global
// operator new of this binary). For each operation that may allocate, the sweep fails its
// 1st, 2nd, ... allocation until the operation makes fewer allocations than the sweep asks
// for (and then succeeds), and after every injected failure checks the strong guarantee:
// std::bad_alloc reaches the caller, the queue is unchanged (qsize, contents in get order,
// unfinished_tasks), the item is still with the caller, no waiter is left registered (a
// later wake goes to a live waiter), nothing deadlocks, other waiters are still woken.
//
// Operations swept: put into every allocating queue storage (deque-backed Queue, LifoQueue,
// SimpleQueue, PriorityQueue's heap) in every put form, at every fill level where the storage
// grows; shutdown(true); select with a put; a woken putter or select whose retry fails to
// allocate (the wake-up must pass to the next waiter); and a thread's first blocking wait
// (which allocates its Parker) on every blocking primitive.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_faults.hpp"  // first: this binary's operator new
#include "figures.hpp"
#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::AllocFaults;
using weft_test::blocked;
using weft_test::in_get_order;
using weft_test::Outcome;
using weft_test::outcome_of;
using weft_test::Threads;

constexpr long kSweepLimit = 64;

#define SKIP_WITHOUT_ALLOC_FAULTS()                    \
  if (!weft_test::kAllocFaultsAvailable)               \
  GTEST_SKIP() << "no operator new replacement under " \
                  "ThreadSanitizer (alloc_faults.hpp)"  // far above any operation's allocations

std::atomic<long> g_trials{0};

// An item that owns heap memory (no small-string optimisation), so "the item is still with
// the caller" is a real check: a moved-from std::string is empty.
std::string item_name(int i) {
  return "weft-fault-injection-item-" + std::to_string(100000 + i);
}

// Runs trial(n) for n = 1, 2, ... while it reports an injected failure (true); returns the
// number of failures injected. trial(n) must make the n-th allocation of its operation fail.
template <class Trial>
long sweep(Trial&& trial) {
  for (long n = 1; n <= kSweepLimit; ++n) {
    g_trials.fetch_add(1, std::memory_order_relaxed);
    if (!trial(n)) return n - 1;
    if (::testing::Test::HasFailure()) return n;
  }
  ADD_FAILURE() << "the operation was still allocating after " << kSweepLimit << " allocations";
  return kSweepLimit;
}

template <class Q>
std::vector<std::string> drain(Q& q) {
  std::vector<std::string> out;
  while (auto item = q.try_get()) out.push_back(std::move(*item));
  return out;
}

template <class Kind>
using StrQueue = weft_test::QueueFor<Kind, std::string>;

// Every put form, taking the item by rvalue (or const& for the copying forms).
enum class PutForm {
  put,
  put_timed,
  put_stop,
  put_timed_stop,
  put_nowait,
  try_put,
  try_put_timed,
  try_put_stop,
  put_copy,
  try_put_copy
};
constexpr PutForm kPutForms[] = {
    PutForm::put,        PutForm::put_timed,   PutForm::put_stop,      PutForm::put_timed_stop,
    PutForm::put_nowait, PutForm::try_put,     PutForm::try_put_timed, PutForm::try_put_stop,
    PutForm::put_copy,   PutForm::try_put_copy};

template <class Q>
void put_in_form(Q& q, std::string& item, PutForm form, std::stop_token st) {
  switch (form) {
    case PutForm::put:
      q.put(std::move(item));
      return;
    case PutForm::put_timed:
      q.put(std::move(item), 1h);
      return;
    case PutForm::put_stop:
      q.put(std::move(item), st);
      return;
    case PutForm::put_timed_stop:
      q.put(std::move(item), 1h, st);
      return;
    case PutForm::put_nowait:
      q.put_nowait(std::move(item));
      return;
    case PutForm::try_put:
      EXPECT_TRUE(q.try_put(std::move(item)));
      return;
    case PutForm::try_put_timed:
      EXPECT_TRUE(q.try_put(std::move(item), 1h));
      return;
    case PutForm::try_put_stop:
      EXPECT_TRUE(q.try_put(std::move(item), st));
      return;
    case PutForm::put_copy:
      q.put(static_cast<const std::string&>(item));
      return;
    case PutForm::try_put_copy:
      EXPECT_TRUE(q.try_put(static_cast<const std::string&>(item)));
      return;
  }
}

// ---- puts into every allocating storage ----------------------------------------------------

template <class Kind>
class PutFaults : public ::testing::Test {};
// Unbounded weft::Queue<std::string> and SimpleQueue<std::string> are the segment list, which
// allocates a segment (segment_slots<std::string>() slots: 63) when a put reaches a segment's
// last slot and no spare is left; the bounded Queue is the ring, which allocates nothing after construction (checked
// below).
using AllocatingKinds = ::testing::Types<weft_test::FifoKind, weft_test::LifoKind,
                                         weft_test::PriorityKind, weft_test::SimpleKind>;
TYPED_TEST_SUITE(PutFaults, AllocatingKinds, weft_test::KindNames);

// Fill levels 0..kFillLevels-1 cross several deque blocks (16 strings each in libstdc++),
// its map's growth and the heap array's doublings (16, 32, 64).
constexpr int kFillLevels = 80;

TYPED_TEST(PutFaults, EveryPutFormIsAllOrNothingAtEveryAllocation) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  std::stop_source never;
  long injected = 0;
  long allocating_puts = 0;
  for (int fill = 0; fill < kFillLevels; ++fill) {
    std::vector<std::string> prefill;
    for (int i = 0; i < fill; ++i) prefill.push_back(item_name((i * 37) % kFillLevels));
    for (const PutForm form : kPutForms) {
      SCOPED_TRACE(::testing::Message() << "fill " << fill << ", form " << static_cast<int>(form));
      const long faults = sweep([&](long n) {
        auto q = weft_test::make_queue<TypeParam, std::string>();
        for (const auto& s : prefill) q.put(std::string(s));
        std::string item = item_name(999);
        bool threw = false;
        {
          AllocFaults faults(n);
          try {
            put_in_form(q, item, form, never.get_token());
          } catch (const std::bad_alloc&) {
            threw = true;
          }
        }
        if (!threw) {
          std::vector<std::string> expected = prefill;
          expected.push_back(item_name(999));
          EXPECT_EQ(drain(q), in_get_order<TypeParam>(expected));
          return false;
        }
        EXPECT_EQ(item, item_name(999)) << "the failed put took the item";
        EXPECT_EQ(q.qsize(), prefill.size());
        if constexpr (TypeParam::kTasks) {
          EXPECT_EQ(q.unfinished_tasks(), prefill.size()) << "the failed put counted a task";
        }
        // Still a working queue: the same item goes in, and everything comes out in order.
        q.put(std::move(item));
        std::vector<std::string> expected = prefill;
        expected.push_back(item_name(999));
        EXPECT_EQ(drain(q), in_get_order<TypeParam>(expected));
        return true;
      });
      injected += faults;
      if (faults > 0) ++allocating_puts;
      if (::testing::Test::HasFailure()) return;
    }
  }
  // The sweep reached the storage's allocations: a PriorityQueue allocates on every put; the
  // deques when a block fills.
  EXPECT_GT(allocating_puts, 0);
  if constexpr (TypeParam::kOrder == weft_test::Order::priority) {
    EXPECT_GE(allocating_puts, kFillLevels * 8);  // every rvalue form at every fill level
  }
  weft_test::report_figure("alloc_faults_injected", injected);
}

// The ring (a bounded Queue of a nothrow-movable T) allocates nothing once constructed: no
// put, get or shutdown(true) beyond the result vector can fail for lack of memory.
TEST(RingFaults, RingPutAndGetDoNotAllocate) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  weft::Queue<std::string> q(8);
  std::string item = item_name(1);
  {
    AllocFaults count;
    for (int round = 0; round < 20; ++round) {
      q.put(std::move(item));
      item = q.get();
    }
    EXPECT_EQ(count.count(), 0);
  }
}

// The segment list keeps its retired segments as spares (two): a put-get steady state and
// bursts that span up to three segments allocate nothing once the queue has grown to them.
TEST(SegmentListFaults, SteadyStateDoesNotAllocate) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  weft::Queue<std::string> q;
  // A burst of Slots + 2 items spans three segments when it starts at a segment's last slot.
  // Slots is odd (2^k - 1), so Slots bursts start at every offset of a segment.
  constexpr int kSlots = static_cast<int>(weft::detail::segment_slots<std::string>());
  static_assert(kSlots >= 3 && kSlots % 2 == 1);
  constexpr int kBurst = kSlots + 2;
  std::vector<std::string> items;
  for (int i = 0; i < kBurst; ++i) items.push_back(item_name(i));
  int spans_three = 0;  // bursts that started at a segment's last slot
  std::uint64_t start = 0;
  auto burst = [&] {
    if (start % kSlots == kSlots - 1) ++spans_three;
    start += kBurst;
    for (auto& item : items) q.put(std::move(item));
    for (auto& item : items) item = q.get();
  };
  // Grows the queue to the segments a burst needs from any start.
  for (int i = 0; i < kSlots; ++i) burst();
  ASSERT_EQ(spans_three, 1);
  {
    AllocFaults count;
    for (int round = 0; round < kSlots; ++round) burst();
    for (int round = 0; round < 200; ++round) {
      q.put(std::move(items[0]));
      items[0] = q.get();
    }
    EXPECT_EQ(count.count(), 0);
  }
  EXPECT_EQ(spans_three, 2);
  EXPECT_EQ(items[kBurst - 1], item_name(kBurst - 1));
}

// A put_many whose run reaches a segment's end allocates the next segment before it claims
// the run: if that fails, the runs already put stay (and are counted), the rest stay with
// the caller, and the queue goes on working.
TEST(SegmentListFaults, PutManyKeepsWhatWentInBeforeAFailedSegment) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  long injected = 0;
  for (int fill = 0; fill < 4; ++fill) {
    SCOPED_TRACE(::testing::Message() << "fill " << fill);
    injected += sweep([&](long n) {
      weft_test::SegmentQueue<std::string, 3> q;
      std::vector<std::string> expected;
      for (int i = 0; i < fill; ++i) {
        q.put(item_name(i));
        expected.push_back(item_name(i));
      }
      std::vector<std::string> batch;
      for (int i = 0; i < 8; ++i) batch.push_back(item_name(100 + i));
      std::size_t put = 0;
      bool threw = false;
      {
        AllocFaults faults(n);
        try {
          put = q.put_many(std::make_move_iterator(batch.begin()),
                           std::make_move_iterator(batch.end()));
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        if (!faults.failed()) {
          EXPECT_EQ(put, batch.size());
          return false;
        }
      }
      EXPECT_EQ(threw, put == 0) << "only a batch that put nothing throws";
      EXPECT_LT(put, batch.size());
      EXPECT_EQ(q.qsize(), expected.size() + put);
      EXPECT_EQ(q.unfinished_tasks(), expected.size() + put);
      for (std::size_t i = put; i < batch.size(); ++i) {
        EXPECT_EQ(batch[i], item_name(100 + static_cast<int>(i))) << "an item not put was taken";
      }
      for (int i = 0; i < 8; ++i) expected.push_back(item_name(100 + i));
      for (std::size_t i = put; i < batch.size(); ++i) q.put(std::move(batch[i]));
      EXPECT_EQ(drain(q), expected);
      return true;
    });
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(injected, 0);
}

// ---- shutdown(true) ----------------------------------------------------------------------

template <class Kind>
class ShutdownFaults : public ::testing::Test {};
using TaskKinds = ::testing::Types<weft_test::FifoKind, weft_test::FifoLockedKind,
                                   weft_test::LifoKind, weft_test::PriorityKind>;
TYPED_TEST_SUITE(ShutdownFaults, TaskKinds, weft_test::KindNames);

// A full bounded queue, a blocked putter and a blocked joiner; shutdown(true) fails at each
// of its allocations in turn. After a failure: the queue is shut down (that cannot be
// undone) but keeps every item and every unfinished task; the putter was still woken (with
// ShutDown, keeping its item); the joiner still waits for the tasks. A second shutdown(true)
// then removes everything and releases the joiner.
TYPED_TEST(ShutdownFaults, ShutdownImmediateIsAllOrNothingAtEveryAllocation) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  using Item = typename TypeParam::template ItemOf<std::string>;
  long injected = 0;
  for (const int fill : {1, 3, 17, 40}) {
    SCOPED_TRACE(::testing::Message() << "fill " << fill);
    std::vector<std::string> prefill;
    for (int i = 0; i < fill; ++i) prefill.push_back(item_name((i * 7) % fill));
    const long faults = sweep([&](long n) {
      auto q = weft_test::make_queue<TypeParam, Item>(fill);
      for (const auto& s : prefill) q.put(Item(s));
      std::atomic<Outcome> putter_outcome{Outcome::pending};
      std::string putter_kept;
      std::atomic<bool> joined{false};
      Threads waiters(2, [&](std::size_t i) {
        if (i == 0) {
          Item item(item_name(999));
          putter_outcome = outcome_of([&] { q.put(std::move(item)); });
          putter_kept = static_cast<std::string>(item);
        } else {
          q.join();
          joined = true;
        }
      });
      EXPECT_TRUE(blocked(waiters));
      bool threw = false;
      std::vector<Item> removed;
      {
        AllocFaults faults(n);
        try {
          removed = q.shutdown(true);
        } catch (const std::bad_alloc&) {
          threw = true;
        }
      }
      EXPECT_TRUE(q.is_shutdown());
      // The putter is woken either way, with ShutDown, and keeps its item.
      EXPECT_TRUE(weft_test::eventually([&] { return waiters.finished(0); }, 30s));
      EXPECT_EQ(putter_outcome.load(), Outcome::shut_down);
      if (threw) {
        EXPECT_EQ(q.qsize(), prefill.size());
        EXPECT_EQ(q.unfinished_tasks(), prefill.size());
        EXPECT_FALSE(joined.load()) << "a failed shutdown(true) released join()";
        removed = q.shutdown(true);  // no fault now
      }
      std::vector<std::string> got;
      for (auto& item : removed) got.push_back(static_cast<std::string>(item));
      EXPECT_EQ(got, in_get_order<TypeParam>(prefill));
      EXPECT_EQ(q.qsize(), 0u);
      EXPECT_EQ(q.unfinished_tasks(), 0u);
      waiters.join();
      EXPECT_TRUE(joined.load());
      EXPECT_EQ(putter_kept, item_name(999)) << "the putter woken by shutdown lost its item";
      return threw;
    });
    EXPECT_GE(faults, 1) << "shutdown(true) allocates its result";
    injected += faults;
    if (::testing::Test::HasFailure()) return;
  }
  weft_test::report_figure("alloc_faults_injected", injected);
}

// ---- select --------------------------------------------------------------------------------

// select(put(pq, item), get(other)) where the put is ready: every allocation of the put may
// fail; the select then throws, and nothing happened (no item put, none got, the item kept).
TEST(SelectFaults, SelectPutIsAllOrNothingAtEveryAllocation) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  long injected = 0;
  for (const int fill : {0, 1, 15, 16, 31}) {
    for (int form = 0; form < 4; ++form) {
      SCOPED_TRACE(::testing::Message() << "fill " << fill << ", form " << form);
      injected += sweep([&](long n) {
        weft::PriorityQueue<std::string> pq;
        weft::Queue<std::string> other(4);
        for (int i = 0; i < fill; ++i) pq.put(item_name(i));
        std::string item = item_name(999);
        bool threw = false;
        std::optional<std::size_t> index;
        {
          AllocFaults faults(n);
          try {
            switch (form) {
              case 0:
                index = weft::select(weft::put(pq, item), weft::get(other)).index();
                break;
              case 1:
                index = weft::select(weft::biased, weft::put(pq, item), weft::get(other)).index();
                break;
              case 2: {
                auto r = weft::try_select(weft::put(pq, item), weft::get(other));
                if (r) index = r->index();
                break;
              }
              default: {
                auto r = weft::select_for(1h, weft::put(pq, item), weft::get(other));
                if (r) index = r->index();
                break;
              }
            }
          } catch (const std::bad_alloc&) {
            threw = true;
          }
        }
        if (!threw) {
          EXPECT_EQ(index, std::optional<std::size_t>(0));
          EXPECT_EQ(pq.qsize(), static_cast<std::size_t>(fill) + 1);
          return false;
        }
        EXPECT_EQ(item, item_name(999));
        EXPECT_EQ(pq.qsize(), static_cast<std::size_t>(fill));
        EXPECT_EQ(pq.unfinished_tasks(), static_cast<std::size_t>(fill));
        EXPECT_EQ(other.qsize(), 0u);
        return true;
      });
      if (::testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GE(injected, 20);  // a PriorityQueue put allocates every time
  weft_test::report_figure("alloc_faults_injected", injected);
}

// ---- a woken waiter whose retry cannot allocate passes its wake-up on ------------------------

// A PriorityQueue(1) is full; waiter 0 (a put, or a select with a put) and then putter 1
// block. A get frees the slot and wakes waiter 0, whose retry fails to allocate the heap
// entry: it must throw bad_alloc and keep its item, and putter 1 must be woken for the slot
// (a kept wake-up would leave it blocked beside a free slot).
TEST(WokenWaiterFaults, PutterWhoseRetryCannotAllocatePassesTheWakeUpOn) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  long injected = 0;
  for (const bool via_select : {false, true}) {
    SCOPED_TRACE(via_select ? "select(put)" : "put");
    weft::PriorityQueue<std::string> q(1);
    weft::Queue<std::string> never_ready(1);
    q.put(item_name(0));
    std::vector<std::atomic<Outcome>> outcome(2);
    for (auto& o : outcome) o = Outcome::pending;
    std::string kept;
    std::latch second_may_start(1);
    Threads putters(2, [&](std::size_t i) {
      if (i == 1) second_may_start.wait();
      // Warm the thread's Parker up first (its allocation is not the one under test).
      (void)weft::detail::Parker::current();
      std::string item = item_name(static_cast<int>(10 + i));
      if (i == 0) {
        outcome[0] = outcome_of([&] {
          AllocFaults faults(1);  // the first allocation from here: the woken retry's
          try {
            if (via_select) {
              (void)weft::select(weft::put(q, item), weft::get(never_ready));
            } else {
              q.put(std::move(item));
            }
          } catch (const std::bad_alloc&) {
            kept = item;
            throw weft_test::Boom();
          }
        });
      } else {
        outcome[1] = outcome_of([&] { q.put(std::move(item)); });
      }
    });
    ASSERT_TRUE(blocked(putters, {0}));
    second_may_start.count_down();
    ASSERT_TRUE(blocked(putters, {1}));
    EXPECT_EQ(q.get(), item_name(0));
    const bool second_done = weft_test::eventually([&] { return putters.finished(1); }, 30s);
    EXPECT_TRUE(second_done) << "putter 1 stayed blocked beside a free slot (lost wake-up)";
    if (!second_done) (void)q.shutdown();
    putters.join();
    EXPECT_EQ(outcome[0].load(), Outcome::boom) << "waiter 0 should have failed to allocate";
    EXPECT_EQ(kept, item_name(10));
    if (second_done) {
      EXPECT_EQ(outcome[1].load(), Outcome::ok);
      EXPECT_EQ(q.qsize(), 1u);
      EXPECT_EQ(q.get(), item_name(11));
    }
    ++injected;
  }
  weft_test::report_figure("alloc_faults_injected", injected);
}

// ---- a thread's first blocking wait (its Parker) ------------------------------------------

// Parkers come from a pool that threads give back at exit; a new thread allocates one only
// when the pool is empty. ParkerHolders empties it: it starts threads that take a Parker and
// keep it (they wait on a std::latch, not on weft) until one of them had to allocate. Every
// trial thread of the sweeps below also stays alive until the end, so the pool stays empty
// and each trial's first park allocates.
class ParkerHolders {
 public:
  ParkerHolders() {
    for (int i = 0; i < 4096; ++i) {
      auto allocated = std::make_shared<std::atomic<long>>(-1);
      threads_.emplace_back([this, allocated] {
        long n;
        {
          AllocFaults count;
          (void)weft::detail::Parker::current();
          n = count.count();
        }
        allocated->store(n);
        allocated->notify_one();
        end_.wait();
      });
      allocated->wait(-1);
      if (allocated->load() > 0) return;
    }
    ADD_FAILURE() << "the Parker pool never ran dry";
  }
  ParkerHolders(const ParkerHolders&) = delete;
  ParkerHolders& operator=(const ParkerHolders&) = delete;
  ~ParkerHolders() {
    end_.count_down();
    for (auto& t : threads_) t.join();
  }

  // Runs body on a new thread that then stays alive (holding its Parker) until the end.
  template <class Body>
  void keep(Body body) {
    threads_.emplace_back([this, body]() mutable {
      body();
      end_.wait();
    });
  }

 private:
  std::latch end_{1};
  std::vector<std::thread> threads_;
};

// One sweep of a blocking call made as a thread's first park. op(stop) is the call (it
// blocks unless it throws); after a failure, unchanged() checks the primitive on the main
// thread. A trial without a fault blocks, and is ended by a stop request.
long first_park_sweep(const std::function<void(std::stop_token)>& op,
                      const std::function<void()>& unchanged) {
  ParkerHolders holders;
  return sweep([&](long n) {
    struct Trial {
      std::stop_source stop;
      std::atomic<bool> done{false};
      std::atomic<bool> threw{false};
      std::atomic<pid_t> tid{0};
    };
    auto trial = std::make_shared<Trial>();  // shared: the thread may still notify after we return
    holders.keep([&op, trial, n] {
      trial->tid = weft_test::current_tid();
      try {
        AllocFaults faults(n);
        try {
          op(trial->stop.get_token());
        } catch (const std::bad_alloc&) {
          trial->threw = true;
        }
      } catch (const weft::Cancelled&) {  // the stop that ended a trial without a fault
      }
      trial->done = true;
      trial->done.notify_one();
    });
    // Done (a fault), or blocked in the call (no fault at this n): then stop it.
    for (;;) {
      if (trial->done.load()) break;
      const pid_t tid = trial->tid.load();
      if (tid != 0 && weft_test::wait_blocked(tid, 20ms) && !trial->done.load()) {
        trial->stop.request_stop();
        break;
      }
    }
    trial->done.wait(false);
    if (!trial->threw.load()) return false;
    unchanged();
    return true;
  });
}

// A waiter that was blocked on the primitive all along must still be woken by the normal
// release once the failed trials are over (a node left linked by a failed wait would take
// the wake-up, or crash).
struct FirstParkCase {
  const char* name;
  std::function<void(std::stop_token)> op;  // the call under test: blocks, or throws
  std::function<void()> unchanged;
  std::function<void()> other_waiter;  // blocks until release()
  std::function<void()> release;
};

void run_first_park_case(const FirstParkCase& c, long& injected) {
  SCOPED_TRACE(c.name);
  Threads other(1, [&](std::size_t) { c.other_waiter(); });
  ASSERT_TRUE(blocked(other));
  const long faults = first_park_sweep(c.op, c.unchanged);
  EXPECT_GE(faults, 1) << "the first park should allocate the thread's Parker";
  injected += faults;
  c.release();
  EXPECT_TRUE(weft_test::eventually([&] { return other.finished(0); }, 30s))
      << "the waiter blocked all along was not woken";
  other.join();
}

TEST(FirstParkFaults, EveryBlockingCallSurvivesItsParkerAllocationFailing) {
  SKIP_WITHOUT_ALLOC_FAULTS();
  long injected = 0;
  {
    weft::Event e;
    run_first_park_case(
        {"Event::wait", [&](std::stop_token st) { (void)e.wait(st); },
         [&] { EXPECT_FALSE(e.is_set()); }, [&] { EXPECT_TRUE(e.wait()); }, [&] { e.set(); }},
        injected);
  }
  {
    weft::Lock l;
    l.acquire();
    run_first_park_case({"Lock::acquire", [&](std::stop_token st) { (void)l.acquire(st); },
                         [&] { EXPECT_TRUE(l.locked()); },
                         [&] {
                           l.acquire();
                           l.release();
                         },
                         [&] { l.release(); }},
                        injected);
  }
  {
    weft::RLock l;
    l.acquire();
    run_first_park_case({"RLock::acquire", [&](std::stop_token st) { (void)l.acquire(st); },
                         [&] { EXPECT_TRUE(l.is_owned()); },
                         [&] {
                           l.acquire();
                           l.release();
                         },
                         [&] { l.release(); }},
                        injected);
  }
  {
    weft::Lock l;
    weft::Condition c(l);
    run_first_park_case({"Condition::wait",
                         [&](std::stop_token st) {
                           l.acquire();
                           // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a scope guard
                           struct Release {
                             weft::Lock& l;
                             ~Release() {
                               EXPECT_TRUE(l.locked()) << "wait returned without the lock";
                               l.release();
                             }
                           } release{l};
                           (void)c.wait(st);
                         },
                         [&] { EXPECT_FALSE(l.locked()); },
                         [&] {
                           std::unique_lock<weft::Lock> g(l);
                           EXPECT_TRUE(c.wait());
                         },
                         [&] {
                           std::unique_lock<weft::Lock> g(l);
                           c.notify();
                         }},
                        injected);
  }
  {
    weft::Semaphore s(0);
    run_first_park_case({"Semaphore::acquire", [&](std::stop_token st) { (void)s.acquire(st); },
                         [&] { EXPECT_EQ(s.value(), 0u); }, [&] { EXPECT_TRUE(s.acquire()); },
                         [&] { s.release(); }},
                        injected);
  }
  {
    // The other waiter is one party of three; the failed trials must not count as
    // arrivals, and must leave nothing of theirs in the barrier.
    weft::Barrier b(3);
    std::optional<std::thread> last;
    run_first_park_case({"Barrier::wait",
                         [&](std::stop_token st) {
                           try {
                             (void)b.wait(st);
                           } catch (const weft::Cancelled&) {
                           }
                         },
                         [&] {
                           EXPECT_EQ(b.n_waiting(), 1u) << "a failed wait counted as an arrival";
                           EXPECT_FALSE(b.broken());
                         },
                         [&] { (void)b.wait(); },
                         [&] {
                           // Two more parties complete the cycle.
                           last.emplace([&] { (void)b.wait(); });
                           (void)b.wait();
                           last->join();
                         }},
                        injected);
  }
  {
    weft::Queue<std::string> q(2);
    run_first_park_case({"Queue::get", [&](std::stop_token st) { (void)q.get(st); },
                         [&] { EXPECT_EQ(q.qsize(), 0u); },
                         [&] { EXPECT_EQ(q.get(), item_name(5)); }, [&] { q.put(item_name(5)); }},
                        injected);
  }
  {
    weft::LifoQueue<std::string> q(1);
    q.put(item_name(0));
    run_first_park_case({"LifoQueue::put",
                         [&](std::stop_token st) {
                           std::string item = item_name(1);
                           try {
                             q.put(std::move(item), st);
                           } catch (const std::bad_alloc&) {
                             EXPECT_EQ(item, item_name(1));
                             throw;
                           }
                         },
                         [&] {
                           EXPECT_EQ(q.qsize(), 1u);
                           EXPECT_EQ(q.unfinished_tasks(), 1u);
                         },
                         [&] { q.put(item_name(2)); }, [&] { EXPECT_EQ(q.get(), item_name(0)); }},
                        injected);
  }
  {
    weft::PriorityQueue<std::string> q;
    q.put(item_name(0));
    run_first_park_case({"PriorityQueue::join", [&](std::stop_token st) { q.join(st); },
                         [&] { EXPECT_EQ(q.unfinished_tasks(), 1u); }, [&] { q.join(); },
                         [&] {
                           EXPECT_EQ(q.get(), item_name(0));
                           q.task_done();
                         }},
                        injected);
  }
  {
    weft::Queue<std::string> q;
    weft::Event e;
    run_first_park_case(
        {"select(get, wait)",
         [&](std::stop_token st) { (void)weft::select(st, weft::get(q), weft::wait(e)); },
         [&] {
           EXPECT_EQ(q.qsize(), 0u);
           EXPECT_FALSE(e.is_set());
         },
         [&] { EXPECT_EQ(weft::select(weft::get(q), weft::wait(e)).index(), 1u); },
         [&] { e.set(); }},
        injected);
  }
  weft_test::report_figure("alloc_faults_injected", injected);
}

// Printed once per process: every trial run by the sweeps above.
class Figures : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf("weft-figure: alloc_fault_trials=%ld\n", g_trials.load());
  }
};
const auto* const kFigures = ::testing::AddGlobalTestEnvironment(new Figures);

}  // namespace
