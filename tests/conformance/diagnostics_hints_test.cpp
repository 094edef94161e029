// SPDX-License-Identifier: MIT
// Conformance tests for the non-fatal findings of weft/diagnostics.hpp (docs/diagnostics.md):
// lock-order inversions reported before any deadlock, contention figures, and the "likely"
// verdict for waits without an owner, with the near-misses that must not get one.
//
// Deterministic: a step that must follow another thread's wait waits until diagnostics
// record that thread as waiting and checked (its own record, published before it parks);
// lock-order scenarios run their threads one after the other (join). No sleeps.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "diagnostics_helpers.hpp"
#include "weft/condition.hpp"
#include "weft/diagnostics.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/wait_source.hpp"

namespace diag = weft::diagnostics;
using diag::SourceKind;

namespace {

template <class T>
class Collected {
 public:
  void add(const T& r) {
    std::lock_guard g(m_);
    seen_.push_back(r);
  }
  std::size_t size() {
    std::lock_guard g(m_);
    return seen_.size();
  }
  T at(std::size_t i) {
    std::lock_guard g(m_);
    return seen_.at(i);
  }

 private:
  std::mutex m_;
  std::vector<T> seen_;
};

class Hints : public ::testing::Test {
 protected:
  void enable(diag::OnDeadlock policy, bool lock_order) {
    diag::Options o;
    o.on_deadlock = policy;
    o.on_report = [this](const diag::DeadlockReport& r) { reports.add(r); };
    o.lock_order = lock_order;
    o.on_lock_order = [this](const diag::LockOrderReport& r) { inversions.add(r); };
    diag::enable(std::move(o));
  }
  // raise: a likely verdict must not throw even then.
  void SetUp() override {
    enable(diag::OnDeadlock::raise, true);
    diag::reset_contention();
    diag::reset_lock_order();
  }
  void TearDown() override { diag::disable(); }
  Collected<diag::DeadlockReport> reports;
  Collected<diag::LockOrderReport> inversions;
};

using weft::testing::await_checked;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// "diagnostics_hints_test.cpp:<line>", as reports print a site.
std::string site(unsigned line) {
  return "diagnostics_hints_test.cpp:" + std::to_string(line);
}

std::uint64_t my_tid() {
  return static_cast<std::uint64_t>(::syscall(SYS_gettid));
}

// ---- lock order ---------------------------------------------------------------------------

// Takes `outer`, then `inner`, and releases both: the order outer -> inner.
template <class A, class B>
void nested(A& outer, B& inner) {
  outer.acquire();
  inner.acquire();
  inner.release();
  outer.release();
}

TEST_F(Hints, InversionAcrossTwoThreadsIsReportedBeforeAnyDeadlock) {
  weft::Lock a{"a"};
  weft::Lock b{"b"};
  unsigned t1_a = 0;
  unsigned t1_b = 0;
  std::uint64_t t1_tid = 0;
  std::thread t1([&] {
    t1_tid = my_tid();
    t1_a = __LINE__ + 1;
    a.acquire();
    t1_b = __LINE__ + 1;
    b.acquire();
    b.release();
    a.release();
  });
  t1.join();  // t1 is gone before main takes the opposite order: nobody ever blocks
  EXPECT_EQ(inversions.size(), 0U);
  const unsigned main_b = __LINE__ + 1;
  b.acquire();
  const unsigned main_a = __LINE__ + 1;
  a.acquire();
  a.release();
  b.release();
  ASSERT_EQ(inversions.size(), 1U);
  const auto r = inversions.at(0);
  ASSERT_EQ(r.cycle.size(), 2U);
  EXPECT_EQ(r.cycle[0].first, "Lock \"b\"");
  EXPECT_EQ(r.cycle[0].second, "Lock \"a\"");
  EXPECT_EQ(r.cycle[0].first_site, site(main_b));
  EXPECT_EQ(r.cycle[0].second_site, site(main_a));
  EXPECT_EQ(r.cycle[0].thread, my_tid());
  EXPECT_EQ(r.cycle[1].first, "Lock \"a\"");
  EXPECT_EQ(r.cycle[1].second, "Lock \"b\"");
  EXPECT_EQ(r.cycle[1].first_site, site(t1_a));
  EXPECT_EQ(r.cycle[1].second_site, site(t1_b));
  EXPECT_EQ(r.cycle[1].thread, t1_tid);
  EXPECT_TRUE(contains(r.text, "lock order inversion")) << r.text;
  EXPECT_TRUE(contains(r.text, site(t1_b))) << r.text;
  EXPECT_EQ(reports.size(), 0U);  // no deadlock happened

  // Reported once: the same orders again add nothing.
  const std::uint64_t before = diag::lock_order_reports();
  nested(b, a);
  EXPECT_EQ(diag::lock_order_reports(), before);
  EXPECT_EQ(inversions.size(), 1U);
}

TEST_F(Hints, ThreeLockCycleIsReportedWithEveryEdge) {
  weft::Lock a{"a3"}, b{"b3"}, c{"c3"};
  std::thread([&] { nested(a, b); }).join();
  std::thread([&] { nested(b, c); }).join();
  EXPECT_EQ(inversions.size(), 0U);
  c.acquire();
  a.acquire();  // c -> a closes a -> b -> c
  a.release();
  c.release();
  ASSERT_EQ(inversions.size(), 1U);
  const auto r = inversions.at(0);
  ASSERT_EQ(r.cycle.size(), 3U);
  EXPECT_EQ(r.cycle[0].first, "Lock \"c3\"");
  EXPECT_EQ(r.cycle[1].first, "Lock \"a3\"");
  EXPECT_EQ(r.cycle[1].second, "Lock \"b3\"");
  EXPECT_EQ(r.cycle[2].first, "Lock \"b3\"");
  EXPECT_EQ(r.cycle[2].second, "Lock \"c3\"");
}

TEST_F(Hints, RLockReentryIsNotAnOrder) {
  weft::RLock r{"outer"};
  weft::Lock x{"inner"};
  r.acquire();
  x.acquire();
  r.acquire();  // re-entry while holding x: not "x before r"
  r.release();
  x.release();
  r.release();
  EXPECT_EQ(inversions.size(), 0U);
  // But a real acquisition in the opposite order is.
  nested(x, r);
  ASSERT_EQ(inversions.size(), 1U);
  EXPECT_EQ(inversions.at(0).cycle[0].first, "Lock \"inner\"");
  EXPECT_EQ(inversions.at(0).cycle[0].second, "RLock \"outer\"");
}

TEST_F(Hints, SkippedLockIsLeftOut) {
  weft::Lock a{"p"}, b{"q"}, c{"s"};
  diag::skip_lock_order(b);
  nested(a, b);
  nested(b, a);
  EXPECT_EQ(inversions.size(), 0U);
  // The checker is on: an unskipped pair is still reported.
  nested(a, c);
  nested(c, a);
  EXPECT_EQ(inversions.size(), 1U);
}

TEST_F(Hints, ClassesAreKeyedByName) {
  // Two locks called "account" are one class: account -> ledger by one lock, ledger ->
  // account by the other is an inversion (two transfers in opposite directions).
  weft::Lock alice{"account"}, bob{"account"}, ledger{"ledger"};
  nested(alice, ledger);
  alice.acquire();
  bob.acquire();  // one class nested in itself: not an order
  bob.release();
  alice.release();
  EXPECT_EQ(inversions.size(), 0U);
  nested(ledger, bob);
  ASSERT_EQ(inversions.size(), 1U);
  EXPECT_EQ(inversions.at(0).cycle[0].second, "Lock \"account\"");
}

TEST_F(Hints, UnnamedLocksAreKeyedByConstructionSite) {
  // One construction site for both locks (make_unique would put it in <memory>).
  // NOLINTNEXTLINE(cppcoreguidelines-owning-memory,modernize-make-unique)
  auto make = [] { return std::unique_ptr<weft::Lock>(new weft::Lock()); };
  const unsigned other_line = __LINE__ + 1;
  weft::Lock other;
  auto l1 = make();
  auto l2 = make();
  nested(*l1, other);
  other.acquire();
  l2->acquire();  // another lock, the same class as l1
  l2->release();
  other.release();
  ASSERT_EQ(inversions.size(), 1U);
  EXPECT_EQ(inversions.at(0).cycle[0].first, "Lock (" + site(other_line) + ")");
}

TEST_F(Hints, NothingWithoutLockOrder) {
  enable(diag::OnDeadlock::raise, false);
  weft::Lock a{"off-a"}, b{"off-b"};
  nested(a, b);
  nested(b, a);
  EXPECT_EQ(inversions.size(), 0U);
}

// ---- contention ---------------------------------------------------------------------------

std::optional<diag::Contention> figures_of(const void* p) {
  for (auto& c : diag::contention())
    if (c.primitive.address == p) return c;
  return std::nullopt;
}

TEST_F(Hints, LockWaitsAreChargedToTheReleaser) {
  weft::Lock hot{"hot"};
  diag::set_thread_name("holder");
  hot.acquire();
  std::thread waiter([&] {
    diag::set_thread_name("waiter");
    hot.acquire();
    hot.release();
  });
  await_checked("waiter", &hot);
  hot.release();  // claims the waiter: its wait is charged to this thread
  waiter.join();
  const auto f = figures_of(&hot);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->primitive.name, "hot");
  EXPECT_GE(f->waits, 1U);
  EXPECT_GT(f->waited.count(), 0);
  EXPECT_GE(f->waited, f->longest);
  ASSERT_GE(f->charged.size(), 1U);
  EXPECT_EQ(f->charged[0].thread, my_tid());
  EXPECT_EQ(f->charged[0].name, "holder");
  EXPECT_GE(f->charged[0].waits, 1U);

  const std::string text = diag::format(diag::snapshot());
  EXPECT_TRUE(contains(text, "contention")) << text;
  EXPECT_TRUE(contains(text, "Lock \"hot\"")) << text;
  EXPECT_TRUE(contains(text, "\"holder\"")) << text;

  const std::string printed = weft::testing::printed();
  EXPECT_TRUE(contains(printed, "weft: contention")) << printed;
  EXPECT_TRUE(contains(printed, "tid " + std::to_string(my_tid()))) << printed;

  diag::reset_contention();
  EXPECT_FALSE(figures_of(&hot));
}

TEST_F(Hints, TimedOutWaitIsCountedUncharged) {
  weft::Event never{"never-set"};
  EXPECT_FALSE(never.wait(std::chrono::milliseconds(1)));
  const auto f = figures_of(&never);
  ASSERT_TRUE(f);
  EXPECT_GE(f->waits, 1U);
  EXPECT_EQ(f->uncharged_waits, f->waits);  // a timeout ends it, not a thread
  EXPECT_TRUE(f->charged.empty());
  EXPECT_GT(f->waited.count(), 0);
}

TEST_F(Hints, EventWaitIsChargedToTheSetter) {
  weft::Event e{"ping"};
  diag::set_thread_name("setter");
  std::thread waiter([&] {
    diag::set_thread_name("event-waiter");
    e.wait();
  });
  await_checked("event-waiter", &e);
  e.set();
  waiter.join();
  const auto f = figures_of(&e);
  ASSERT_TRUE(f);
  EXPECT_GE(f->waits, 1U);
  ASSERT_EQ(f->charged.size(), 1U);
  EXPECT_EQ(f->charged[0].name, "setter");
  EXPECT_EQ(f->charged[0].waits, f->waits);
}

// ---- likely verdicts ----------------------------------------------------------------------

// The shape: a producer wakes the consumer once on `items` (so it is known as a producer),
// then the producer blocks (per `block`) and the consumer waits on `items` again (per
// `consume`). `before_go` runs in main once the producer is blocked; `unblock` lets the
// producer go, and it then sets `items` once more.
struct Shape {
  weft::Event items{"items"};
  weft::Event go{"go"};
  weft::Event never{"never"};
  std::function<void(Shape&)> block = [](Shape& s) { s.never.wait(); };
  std::function<void(Shape&)> consume = [](Shape& s) { s.items.wait(); };
  std::function<void(Shape&)> before_go = [](Shape&) {};
  std::function<void(Shape&)> unblock = [](Shape& s) { s.never.set(); };
  const void* producer_waits_on = &never;

  void run() {
    std::thread consumer([&] {
      diag::set_thread_name("consumer");
      items.wait();
      items.clear();
      go.wait();
      consume(*this);
    });
    std::thread producer([&] {
      diag::set_thread_name("producer");
      await_checked("consumer", &items);
      items.set();  // claims the consumer: a producer of items
      block(*this);
      items.set();
    });
    await_checked("consumer", &go);  // the consumer's first wait has ended and counted
    await_checked("producer", producer_waits_on);
    before_go(*this);
    go.set();
    await_checked("consumer", &items);  // the detector has run for its second wait
    checked();
    unblock(*this);
    producer.join();
    consumer.join();
  }
  std::function<void()> checked;
};

TEST_F(Hints, EveryProducerBlockedIsLikelyNeverFatal) {
  Shape s;
  s.checked = [&] {
    ASSERT_EQ(reports.size(), 1U);  // and the consumer did not throw (policy raise)
    const auto r = reports.at(0);
    EXPECT_FALSE(r.certain);
    EXPECT_TRUE(contains(r.text, "deadlock (likely)")) << r.text;
    EXPECT_TRUE(contains(r.text, "Event \"items\"")) << r.text;
    ASSERT_EQ(r.threads.size(), 2U);
    EXPECT_EQ(r.threads[0].name, "consumer");
    EXPECT_EQ(r.threads[1].name, "producer");
    EXPECT_EQ(r.threads[1].waits_on.at(0).name, "never");
  };
  s.run();
  EXPECT_EQ(reports.size(), 1U);
}

TEST_F(Hints, EveryProducerGoneIsLikely) {
  weft::Event items{"items"};
  weft::Event go{"go"};
  std::thread consumer([&] {
    diag::set_thread_name("consumer");
    items.wait();
    items.clear();
    go.wait();     // until its only producer has exited
    items.wait();  // likely: nobody who ever set it is left
  });
  std::thread producer([&] {
    await_checked("consumer", &items);
    items.set();
  });
  producer.join();
  await_checked("consumer", &go);
  go.set();
  await_checked("consumer", &items);
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_FALSE(reports.at(0).certain);
  EXPECT_EQ(reports.at(0).threads.size(), 1U);  // the consumer alone: no producer is blocked
  items.set();
  consumer.join();
}

TEST_F(Hints, NearMissProducerWithADeadline) {
  Shape s;
  s.block = [](Shape& sh) { sh.never.wait(std::chrono::hours(1)); };
  s.checked = [&] { EXPECT_EQ(reports.size(), 0U); };
  s.run();
}

TEST_F(Hints, NearMissProducerWithAStopToken) {
  Shape s;
  std::stop_source stop;
  s.block = [&](Shape& sh) { sh.never.wait(stop.get_token()); };
  s.unblock = [&](Shape&) { stop.request_stop(); };
  s.checked = [&] { EXPECT_EQ(reports.size(), 0U); };
  s.run();
}

TEST_F(Hints, NearMissConsumerWithADeadline) {
  Shape s;
  s.consume = [](Shape& sh) { EXPECT_TRUE(sh.items.wait(std::chrono::hours(1))); };
  s.checked = [&] { EXPECT_EQ(reports.size(), 0U); };
  s.run();
}

TEST_F(Hints, NearMissSelectWithOneLiveSource) {
  Shape s;
  weft::Event live{"live"};  // nobody ever woke anyone on it: it may be set any time
  s.consume = [&](Shape& sh) { weft::select(weft::wait(sh.items), weft::wait(live)); };
  s.checked = [&] { EXPECT_EQ(reports.size(), 0U); };
  s.run();
}

TEST_F(Hints, NearMissProducerAboutToBeWoken) {
  // The producer waits on a Condition; main notifies it while holding the lock, so it is
  // claimed (its wake-up decided) but stays parked until main releases the lock.
  Shape s;
  weft::Lock lock{"cv-lock"};
  weft::Condition cv{lock, "cv"};
  bool ready = false;
  s.producer_waits_on = &cv;
  s.block = [&](Shape&) {
    lock.acquire();
    while (!ready) cv.wait();
    lock.release();
  };
  s.before_go = [&](Shape&) {
    lock.acquire();
    ready = true;
    cv.notify();
  };
  s.unblock = [&](Shape&) { lock.release(); };
  s.checked = [&] { EXPECT_EQ(reports.size(), 0U); };
  s.run();
}

// A queue's producers (the threads whose puts woke its getters) go with the queue: a queue
// built later at the same address starts with none, so a getter waiting on it is not
// judged by what the first queue's producer does. The control (`destroy` false) waits on
// the first queue again and must get the likely verdict that stale producers would give.
void producers_after_destruction(bool destroy, Collected<diag::DeadlockReport>& reports) {
  using Q = weft::Queue<int>;
  alignas(Q) unsigned char storage[sizeof(Q)];
  Q* q = new (storage) Q(0, "first");
  const void* core = nullptr;  // what a getter's wait names: the queue's core
  weft::Event go{"go"};
  weft::Event never{"never"};
  auto await_getter = [] {
    return weft::testing::await_checked_on("consumer", SourceKind::queue_get);
  };
  std::thread consumer([&] {
    diag::set_thread_name("consumer");
    EXPECT_EQ(q->get(), 1);
    go.wait();
    EXPECT_EQ(q->get(), 2);  // the first queue's getter again, or the second queue's
  });
  std::thread producer([&] {
    diag::set_thread_name("producer");
    core = await_getter();
    q->put(1);  // claims the consumer: the producer of `core`
    never.wait();
  });
  await_checked("producer", &never);
  await_checked("consumer", &go);  // its get has ended, the producer recorded
  if (destroy) {
    q->~Q();
    q = new (storage) Q(0, "second");
  }
  go.set();
  EXPECT_EQ(await_getter(), core);  // the same address either way; the detector has run
  EXPECT_EQ(reports.size(), destroy ? 0U : 1U);
  if (!destroy && reports.size() == 1) {
    EXPECT_FALSE(reports.at(0).certain);
    EXPECT_TRUE(contains(reports.at(0).text, "Queue(get) \"first\"")) << reports.at(0).text;
  }
  q->put(2);
  never.set();
  producer.join();
  consumer.join();
  q->~Q();
}

// A select operation that does not say what it waits on (no target()) is known to
// diagnostics only by its own address, on the waiter's stack: that is no identity for a
// source, so its wake-ups record no producers. Here two boxes are waited on, one after the
// other, by operations at the same stack address; the first box's only producer is then
// blocked. A verdict about the second box from it would be about the wrong source.
struct Box {
  std::atomic<int> tickets{0};
  weft::WaitSource takers;
  void add() {
    tickets.fetch_add(1);
    takers.notify_one();
  }
};
struct TakeFrom {
  using result_type = int;
  Box* box;
  bool try_fire(int& out) const {
    int t = box->tickets.load();
    while (t > 0) {
      if (box->tickets.compare_exchange_weak(t, t - 1)) {
        out = 1;
        return true;
      }
    }
    return false;
  }
  weft::WaitLink link(weft::WaitNode& node, weft::WaitPosition pos) const {
    return box->takers.link(node, pos, [this] { return box->tickets.load() > 0; });
  }
  void unlink(weft::WaitNode& node) const noexcept { box->takers.unlink(node); }
};
[[gnu::noinline]] void take_one(Box& box) {
  (void)weft::select(TakeFrom{&box});
}

TEST_F(Hints, AnOperationWithoutATargetRecordsNoProducers) {
  Box first;
  Box second;
  weft::Event go{"go"};
  weft::Event never{"never"};
  std::thread consumer([&] {
    diag::set_thread_name("consumer");
    for (Box* box : {&first, &second}) {
      take_one(*box);  // the same frame, the same operation address, both times
      if (box == &first) go.wait();
    }
  });
  std::thread producer([&] {
    diag::set_thread_name("producer");
    weft::testing::await_checked_on("consumer", SourceKind::other);
    first.add();  // claims the consumer's wait on `first`
    never.wait();
  });
  await_checked("producer", &never);
  await_checked("consumer", &go);  // its first wait has ended, and was counted
  go.set();
  weft::testing::await_checked_on("consumer", SourceKind::other);  // waits on `second`
  EXPECT_EQ(reports.size(), 0U) << reports.at(0).text;
  second.add();
  never.set();
  producer.join();
  consumer.join();
}

TEST_F(Hints, ADestroyedQueueTakesItsProducersAlong) {
  producers_after_destruction(true, reports);
}

TEST_F(Hints, AQueueKeepsItsProducersWhileItLives) {
  producers_after_destruction(false, reports);
}

}  // namespace
