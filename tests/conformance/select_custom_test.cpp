// SPDX-License-Identifier: MIT
// select over operations that are not weft's queues, events and semaphores: a source written
// here, outside include/, against weft::SelectOperation and weft::WaitSource (the contract in
// include/weft/select.hpp and include/weft/wait_source.hpp), selected together with a
// Queue; and the operations that the one wait loop made selectable: acquire(Lock),
// acquire(RLock), join(queue).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/wait_source.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Threads;

// ---- a user's source: a counter of tickets that producers add and consumers take ---------
//
// The state is one atomic (sequentially consistent, as WaitSource's handshake asks); every
// add notifies one waiter, as each ticket lets one taker proceed.
class TicketBox {
 public:
  void add(int n = 1) {
    tickets_.fetch_add(n);
    for (int i = 0; i < n; ++i) takers_.notify_one();
  }
  bool try_take() {
    int t = tickets_.load();
    while (t > 0) {
      if (tickets_.compare_exchange_weak(t, t - 1)) return true;
    }
    return false;
  }
  int count() const { return tickets_.load(); }
  weft::WaitSource& takers() { return takers_; }
  bool ready() const { return tickets_.load() > 0; }

 private:
  std::atomic<int> tickets_{0};
  weft::WaitSource takers_;
};

// The operation: take one ticket; yields the box's id.
class TakeTicket {
 public:
  using result_type = int;
  TakeTicket(TicketBox& box, int id) : box_(&box), id_(id) {}

  bool try_fire(int& out) {
    if (!box_->try_take()) return false;
    out = id_;
    return true;
  }
  weft::WaitLink link(weft::WaitNode& node, weft::WaitPosition pos) {
    return box_->takers().link(node, pos, [this] { return box_->ready(); });
  }
  void unlink(weft::WaitNode& node) noexcept { box_->takers().unlink(node); }
  // A woken taker whose attempt threw would hand its wake-up on (ours cannot throw; kept to
  // show the optional piece).
  void pass_on() noexcept { box_->takers().notify_one(); }

 private:
  TicketBox* box_;
  int id_;
};

static_assert(weft::SelectOperation<TakeTicket>);
static_assert(weft::SelectOperation<decltype(weft::get(std::declval<weft::Queue<int>&>()))>);
static_assert(weft::SelectOperation<decltype(weft::acquire(std::declval<weft::Lock&>()))>);
static_assert(weft::SelectOperation<decltype(weft::acquire(std::declval<weft::RLock&>()))>);
static_assert(weft::SelectOperation<decltype(weft::join(std::declval<weft::Queue<int>&>()))>);
struct NotAnOperation {
  using result_type = int;
  bool try_fire(int&) { return false; }
};
static_assert(!weft::SelectOperation<NotAnOperation>);

::testing::AssertionResult blocked(const Threads& threads) {
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (threads.finished(i)) {
      return ::testing::AssertionFailure() << "thread " << i << " returned instead of blocking";
    }
  }
  return weft_test::wait_blocked(threads.tids());
}

TEST(SelectCustomSource, ReadySourceIsTakenAndTheQueueIsUntouched) {
  TicketBox box;
  weft::Queue<int> q;
  box.add();
  auto r = weft::select(TakeTicket(box, 7), weft::get(q));
  ASSERT_EQ(r.index(), 0u);
  EXPECT_EQ(std::get<0>(r), 7);
  EXPECT_EQ(box.count(), 0);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(SelectCustomSource, NotReadyMeansNothingHappens) {
  TicketBox box;
  weft::Queue<int> q;
  EXPECT_FALSE(weft::try_select(TakeTicket(box, 1), weft::get(q)));
  EXPECT_FALSE(weft::select_for(20ms, TakeTicket(box, 1), weft::get(q)));
  EXPECT_EQ(box.count(), 0);
}

// An operation with the optional ready_hint(): select does not try an operation whose hint
// says "not ready", tries it when the hint says "maybe", and a blocked select still wakes
// for it (the hint plays no part in the registration).
class HintedTicket : public TakeTicket {
 public:
  HintedTicket(TicketBox& box, int id, int& attempts)
      : TakeTicket(box, id), attempts_(&attempts), box_(&box) {}
  bool ready_hint() noexcept { return box_->ready(); }
  bool try_fire(int& out) {
    ++*attempts_;
    return TakeTicket::try_fire(out);
  }

 private:
  int* attempts_;
  TicketBox* box_;
};
static_assert(weft::SelectOperation<HintedTicket>);

TEST(SelectCustomSource, AnOperationItsHintCallsNotReadyIsNotTried) {
  TicketBox box;
  weft::Queue<int> q;
  int attempts = 0;
  EXPECT_FALSE(weft::try_select(HintedTicket(box, 1, attempts), weft::get(q)));
  EXPECT_EQ(attempts, 0);
  box.add();
  auto r = weft::try_select(HintedTicket(box, 1, attempts), weft::get(q));
  ASSERT_TRUE(r && r->index() == 0u);
  EXPECT_EQ(attempts, 1);
  int woken_attempts = 0;  // read after join()
  Threads t(1, [&](std::size_t) {
    auto w =
        weft::select_for(weft_test::kPatience, HintedTicket(box, 2, woken_attempts), weft::get(q));
    EXPECT_TRUE(w && w->index() == 0u && std::get<0>(*w) == 2);
  });
  ASSERT_TRUE(blocked(t));
  box.add();
  t.join();
  EXPECT_GE(woken_attempts, 1);
  EXPECT_EQ(box.count(), 0);
}

TEST(SelectCustomSource, BlockedSelectWakesForTheUserSource) {
  TicketBox box;
  weft::Queue<int> q;
  std::atomic<int> got{-1};
  Threads t(1, [&](std::size_t) {
    auto r = weft::select(TakeTicket(box, 3), weft::get(q));
    got = r.index() == 0 ? std::get<0>(r) : 100;
  });
  ASSERT_TRUE(blocked(t));
  box.add();
  t.join();
  EXPECT_EQ(got.load(), 3);
  EXPECT_EQ(box.count(), 0);
}

TEST(SelectCustomSource, BlockedSelectWakesForTheQueue) {
  TicketBox box;
  weft::Queue<int> q;
  std::atomic<int> got{-1};
  Threads t(1, [&](std::size_t) {
    auto r = weft::select(TakeTicket(box, 3), weft::get(q));
    got = r.index() == 1 ? **std::get_if<1>(&r) : 100;
  });
  ASSERT_TRUE(blocked(t));
  q.put(42);
  t.join();
  EXPECT_EQ(got.load(), 42);
}

// Every ticket and every item is taken exactly once by selecting consumers, while producers
// add both kinds; a lost wake-up would leave a consumer asleep with tickets left (the
// watchdog reports that).
TEST(SelectCustomSource, ManyProducersAndSelectingConsumersTakeEverythingOnce) {
  const int per_producer = static_cast<int>(weft_test::scaled(5000, 500));
  constexpr int kProducers = 2;
  constexpr int kConsumers = 3;
  TicketBox box;
  weft::Queue<int> q(8);
  weft::Event done;
  std::atomic<int> tickets{0};
  std::vector<std::vector<int>> items(kConsumers);
  {
    Threads consumers(kConsumers, [&](std::size_t c) {
      for (;;) {
        auto r = weft::select(TakeTicket(box, 0), weft::get(q), weft::wait(done));
        if (r.index() == 0) {
          ++tickets;
        } else if (r.index() == 1) {
          items[c].push_back(**std::get_if<1>(&r));
        } else if (box.count() == 0 && q.qsize() == 0) {
          return;  // done, and nothing left (producers have finished)
        } else {
          std::this_thread::yield();  // done is set but work remains: take it
        }
      }
    });
    {
      Threads producers(kProducers, [&](std::size_t p) {
        for (int i = 0; i < per_producer; ++i) {
          box.add();
          q.put(static_cast<int>(p) * per_producer + i);
        }
      });
    }
    done.set();
  }
  EXPECT_EQ(tickets.load(), kProducers * per_producer);
  std::multiset<int> all;
  for (const auto& v : items) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kProducers * per_producer));
  int expect = 0;
  for (int v : all) EXPECT_EQ(v, expect++);
}

// ---- acquire(Lock), acquire(RLock), join(queue) ------------------------------------------

TEST(SelectLock, FreeLockIsTakenByTheSelectingThread) {
  weft::Lock lock;
  weft::Queue<int> q;
  auto r = weft::select(weft::get(q), weft::acquire(lock));
  EXPECT_EQ(r.index(), 1u);
  EXPECT_TRUE(lock.locked());
  lock.release();
}

TEST(SelectLock, HeldLockIsNotTakenAndTheOtherOperationRuns) {
  weft::Lock lock;
  weft::Queue<int> q;
  lock.acquire();
  q.put(5);
  auto r = weft::select(weft::acquire(lock), weft::get(q));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(**std::get_if<1>(&r), 5);
  EXPECT_FALSE(weft::select_for(10ms, weft::acquire(lock)));
  lock.release();
}

TEST(SelectLock, BlockedSelectTakesTheLockWhenReleased) {
  weft::Lock lock;
  weft::Queue<int> q;
  lock.acquire();
  std::atomic<bool> took{false};
  Threads t(1, [&](std::size_t) {
    auto r = weft::select(weft::get(q), weft::acquire(lock));
    took = r.index() == 1 && lock.locked();
    lock.release();  // a Lock may be released by any thread; this one took it
  });
  ASSERT_TRUE(blocked(t));
  lock.release();
  t.join();
  EXPECT_TRUE(took.load());
  EXPECT_FALSE(lock.locked());
}

TEST(SelectLock, RLockIsReentrantForItsOwnerAndExclusiveForOthers) {
  weft::RLock rlock;
  rlock.acquire();
  auto r = weft::select(weft::acquire(rlock));  // the owner re-enters at once
  EXPECT_EQ(r.index(), 0u);
  rlock.release();
  EXPECT_TRUE(rlock.is_owned());  // still held once
  std::atomic<bool> took{false};
  Threads t(1, [&](std::size_t) {
    auto got = weft::select(weft::acquire(rlock));
    took = got.index() == 0 && rlock.is_owned();
    rlock.release();
  });
  ASSERT_TRUE(blocked(t));
  rlock.release();
  t.join();
  EXPECT_TRUE(took.load());
  EXPECT_FALSE(rlock.is_owned());
  EXPECT_TRUE(rlock.acquire(false));  // free again
  rlock.release();
}

TEST(SelectJoin, JoinIsReadyWhenEveryTaskIsDone) {
  weft::Queue<int> q;
  EXPECT_EQ(weft::select(weft::join(q)).index(), 0u);  // no tasks at all
  q.put(1);
  weft::Event never;
  EXPECT_FALSE(weft::select_for(10ms, weft::join(q), weft::wait(never)));
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_TRUE(weft::try_select(weft::join(q)));
}

TEST(SelectJoin, BlockedSelectWakesOnTheLastTaskDone) {
  weft::Queue<int> q;
  weft::Event never;
  q.put(1);
  q.put(2);
  std::atomic<std::size_t> index{99};
  Threads t(1,
            [&](std::size_t) { index = weft::select(weft::wait(never), weft::join(q)).index(); });
  ASSERT_TRUE(blocked(t));
  (void)q.get();
  q.task_done();  // one task left: the select keeps waiting
  ASSERT_TRUE(blocked(t));
  (void)q.get();
  q.task_done();
  t.join();
  EXPECT_EQ(index.load(), 1u);
}

}  // namespace
