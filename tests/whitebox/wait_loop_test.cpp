// SPDX-License-Identifier: MIT
// The hooks of the one wait loop (include/weft/detail/wait_loop.hpp) that diagnostics and
// coroutines build on, checked from outside: the "now waiting / stopped waiting" hooks name
// every primitive's source and select's sources, with the deadline and the outcome; a Waiter
// with its own wake step (not a futex) is claimed and woken by the unchanged claim protocol,
// after the source's lock is released; a claim that lands while before_park throws is passed
// on; the Decision encoding; the invariant checks.
#include "weft/detail/wait_loop.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/condition.hpp"
#include "weft/detail/wait_source.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

namespace {

using namespace std::chrono_literals;
using weft::detail::Decision;
using weft::detail::RoundEnd;
using weft::detail::SourceKind;
using weft::detail::WaitHooks;
using weft::detail::WaitTarget;
using weft_test::Threads;

// What the hooks saw, per call, from any thread.
struct Seen {
  std::vector<WaitTarget> targets;
  bool has_deadline = false;
  bool cancellable = false;
  bool woke = false;
  RoundEnd end = RoundEnd::ready;
  std::uint32_t index = 0;
};
std::mutex g_seen_mutex;
std::vector<Seen> g_seen;

bool on_wait(const WaitTarget* t, std::size_t n, weft::detail::Deadline d,
             bool cancellable) noexcept {
  std::lock_guard g(g_seen_mutex);
  Seen s;
  s.targets.assign(t, t + n);
  s.has_deadline = !d.is_never();
  s.cancellable = cancellable;
  g_seen.push_back(s);
  return true;
}
void on_wake(const WaitTarget* t, std::size_t n, RoundEnd end, std::uint32_t index) noexcept {
  std::lock_guard g(g_seen_mutex);
  ASSERT_FALSE(g_seen.empty());
  Seen& s = g_seen.back();
  EXPECT_EQ(s.targets.size(), n);
  for (std::size_t i = 0; i < n && i < s.targets.size(); ++i) {
    EXPECT_EQ(s.targets[i].object, t[i].object);
  }
  s.woke = true;
  s.end = end;
  s.index = index;
}
constexpr WaitHooks kHooks{on_wait, on_wake};

class WaitHooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::lock_guard g(g_seen_mutex);
    g_seen.clear();
    weft::detail::set_wait_hooks(&kHooks);
  }
  void TearDown() override { weft::detail::set_wait_hooks(nullptr); }
  static std::vector<Seen> seen() {
    std::lock_guard g(g_seen_mutex);
    return g_seen;
  }
  // Runs `wait` in a thread, wakes it with `wake` once it is parked, and returns what the
  // hooks recorded.
  template <class Wait, class Wake>
  static std::vector<Seen> observe(Wait wait, Wake wake) {
    Threads t(1, [&](std::size_t) { wait(); });
    EXPECT_TRUE(weft_test::wait_blocked(t.tids()));
    wake();
    t.join();
    return seen();
  }
};

void expect_one_wait(const std::vector<Seen>& s, SourceKind kind, const void* object,
                     RoundEnd end = RoundEnd::claimed) {
  ASSERT_GE(s.size(), 1u);
  ASSERT_EQ(s[0].targets.size(), 1u);
  EXPECT_EQ(s[0].targets[0].kind, kind);
  EXPECT_EQ(s[0].targets[0].object, object);
  EXPECT_TRUE(s[0].woke);
  EXPECT_EQ(s[0].end, end);
}

TEST_F(WaitHooksTest, EventWait) {
  weft::Event e;
  auto s = observe([&] { EXPECT_TRUE(e.wait()); }, [&] { e.set(); });
  expect_one_wait(s, SourceKind::event, &e);
  EXPECT_FALSE(s[0].has_deadline);
  EXPECT_FALSE(s[0].cancellable);
}

TEST_F(WaitHooksTest, LockAcquireNamesTheLock) {
  weft::Lock l;
  l.acquire();
  auto s = observe(
      [&] {
        EXPECT_TRUE(l.acquire(1h));
        l.release();
      },
      [&] { l.release(); });
  ASSERT_GE(s.size(), 1u);
  EXPECT_TRUE(s[0].has_deadline);
  expect_one_wait(s, SourceKind::lock, &l);
}

TEST_F(WaitHooksTest, RLockAcquireInSelectNamesTheRLock) {
  weft::RLock r;
  r.acquire();
  auto s = observe(
      [&] {
        EXPECT_EQ(weft::select(weft::acquire(r)).index(), 0u);
        r.release();
      },
      [&] { r.release(); });
  expect_one_wait(s, SourceKind::rlock, &r);
}

TEST_F(WaitHooksTest, SemaphoreAcquire) {
  weft::Semaphore sem(0);
  std::stop_source stop;
  auto s = observe([&] { EXPECT_TRUE(sem.acquire(stop.get_token())); }, [&] { sem.release(); });
  expect_one_wait(s, SourceKind::semaphore, &sem);
  EXPECT_TRUE(s[0].cancellable);
}

TEST_F(WaitHooksTest, ConditionWait) {
  weft::Condition cv;
  auto s = observe(
      [&] {
        std::unique_lock g(cv);
        EXPECT_TRUE(cv.wait());
      },
      [&] {
        std::unique_lock g(cv);
        cv.notify();
      });
  // The notified waiter may also wait for the user lock (an RLock) afterwards.
  expect_one_wait(s, SourceKind::condition, &cv);
}

TEST_F(WaitHooksTest, QueueGetPutAndJoinNameTheirQueue) {
  weft::Queue<int> q(1);
  auto s = observe([&] { EXPECT_EQ(q.get(), 1); }, [&] { q.put(1); });
  ASSERT_GE(s.size(), 1u);
  EXPECT_EQ(s[0].targets[0].kind, SourceKind::queue_get);
  const void* core = s[0].targets[0].object;
  EXPECT_NE(core, nullptr);

  SetUp();
  q.put(2);
  s = observe([&] { q.put(3); }, [&] { EXPECT_EQ(q.get(), 2); });
  ASSERT_GE(s.size(), 1u);
  EXPECT_EQ(s[0].targets[0].kind, SourceKind::queue_put);
  EXPECT_EQ(s[0].targets[0].object, core);

  SetUp();
  s = observe([&] { q.join(); },
              [&] {
                for (int i = 0; i < 3; ++i) q.task_done();
                EXPECT_EQ(q.get(), 3);
              });
  ASSERT_GE(s.size(), 1u);
  EXPECT_EQ(s[0].targets[0].kind, SourceKind::queue_join);
  EXPECT_EQ(s[0].targets[0].object, core);
}

TEST_F(WaitHooksTest, SelectReportsEverySourceAndWhichOneWoke) {
  weft::Queue<int> q;
  weft::Event e;
  weft::Semaphore sem(0);
  auto s = observe(
      [&] {
        auto r = weft::select_for(1h, weft::get(q), weft::wait(e), weft::acquire(sem));
        ASSERT_TRUE(r);
        EXPECT_EQ(r->index(), 1u);
      },
      [&] { e.set(); });
  ASSERT_GE(s.size(), 1u);
  ASSERT_EQ(s[0].targets.size(), 3u);
  EXPECT_EQ(s[0].targets[0].kind, SourceKind::queue_get);
  EXPECT_EQ(s[0].targets[1].kind, SourceKind::event);
  EXPECT_EQ(s[0].targets[1].object, &e);
  EXPECT_EQ(s[0].targets[2].kind, SourceKind::semaphore);
  EXPECT_EQ(s[0].targets[2].object, &sem);
  EXPECT_TRUE(s[0].has_deadline);
  EXPECT_EQ(s[0].end, RoundEnd::claimed);
  EXPECT_EQ(s[0].index, 1u);
}

TEST_F(WaitHooksTest, TimeoutAndCancellationAreReported) {
  weft::Event e;
  EXPECT_FALSE(e.wait(20ms));
  auto s = seen();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].end, RoundEnd::deadline);

  SetUp();
  std::stop_source stop;
  auto c = observe([&] { EXPECT_FALSE(e.wait(stop.get_token())); }, [&] { stop.request_stop(); });
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].end, RoundEnd::cancelled);
}

TEST_F(WaitHooksTest, NoHooksNoCalls) {
  weft::detail::set_wait_hooks(nullptr);
  weft::Event e;
  EXPECT_FALSE(e.wait(5ms));
  EXPECT_TRUE(seen().empty());
}

// A verdict that refuses the park (a deadlock) races a claim: the hook claims the waiter
// itself, then refuses. The wait must end as the claim, and "stopped waiting" must be
// reported for it (diagnostics take the waker's identity there; left over, it would be
// credited to the thread's next wait).
weft::detail::FlagSource* g_refusing_source = nullptr;
bool refuse_after_claiming(const WaitTarget* t, std::size_t n, weft::detail::Deadline d,
                           bool cancellable) noexcept {
  on_wait(t, n, d, cancellable);
  weft::detail::WakeBatch woken;
  EXPECT_EQ(g_refusing_source->claim(woken, 1), 1u);
  return false;
}
constexpr WaitHooks kRefusingHooks{refuse_after_claiming, on_wake};

struct SourceOp {
  weft::detail::FlagSource* source;
  weft::detail::Link link(weft::detail::WaitNode& node, weft::detail::Position pos) const {
    return source->link(node, pos, [] { return false; });
  }
  void unlink(weft::detail::WaitNode& node) const noexcept { source->unlink(node); }
};

TEST_F(WaitHooksTest, ARefusedParkThatWasClaimedEndsAsTheClaimAndIsReported) {
  weft::detail::FlagSource source;
  g_refusing_source = &source;
  weft::detail::set_wait_hooks(&kRefusingHooks);
  SourceOp op{&source};
  weft::detail::WaitLoop loop(weft::detail::Deadline::never(), nullptr);
  const weft::detail::Round r = loop.wait(op);  // throws weft::Deadlock if the claim is lost
  EXPECT_TRUE(r.claimed());
  const std::vector<Seen> s = seen();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].woke) << "on_wake was not called for the claim";
  EXPECT_EQ(s[0].end, RoundEnd::claimed);
  EXPECT_FALSE(source.maybe_waiting());
}

// ---- a waiter whose wake step is not a futex wake ------------------------------------------

struct CallbackWaiter : weft::detail::Waiter {
  CallbackWaiter() : Waiter(&CallbackWaiter::woken) {}
  static void woken(Waiter& w) noexcept {
    auto& self = static_cast<CallbackWaiter&>(w);
    // The claim protocol calls the wake step after the waker's last access to the source:
    // its lock is free by now.
    self.lock_was_free = self.source->lock().try_lock();
    if (self.lock_was_free) self.source->lock().unlock();
    self.calls.fetch_add(1);
    self.notify();  // the waker is done with us
  }
  weft::detail::FlagSource* source = nullptr;
  bool lock_was_free = false;
  std::atomic<int> calls{0};
};

TEST(CustomWaiter, ClaimedAndWokenThroughItsOwnWakeStep) {
  weft::detail::FlagSource source;
  CallbackWaiter w;
  w.source = &source;
  w.prepare();
  weft::detail::WaitNode node;
  node.waiter = &w;
  node.index = 4;
  ASSERT_EQ(source.link(node, weft::detail::Position::back, [] { return false; }),
            weft::detail::Link::linked);
  EXPECT_TRUE(source.maybe_waiting());
  {
    weft::detail::WakeBatch woken;
    EXPECT_EQ(source.claim(woken, 1), 1u);
    EXPECT_EQ(w.calls.load(), 0);  // claimed, not yet woken: the batch wakes on destruction
  }
  EXPECT_EQ(w.calls.load(), 1);
  EXPECT_TRUE(w.lock_was_free);
  EXPECT_TRUE(w.notified());
  EXPECT_TRUE(w.decision().claimed());
  EXPECT_EQ(w.decision().index(), 4u);
  EXPECT_FALSE(node.linked);
  EXPECT_FALSE(source.maybe_waiting());
}

TEST(CustomWaiter, AnAbortBeatsALaterClaim) {
  weft::detail::FlagSource source;
  CallbackWaiter w;
  w.source = &source;
  w.prepare();
  weft::detail::WaitNode node;
  node.waiter = &w;
  ASSERT_EQ(source.link(node, weft::detail::Position::back, [] { return false; }),
            weft::detail::Link::linked);
  EXPECT_TRUE(w.abort(Decision::timed_out()));  // e.g. a coroutine's timer fired
  {
    weft::detail::WakeBatch woken;
    EXPECT_EQ(source.claim(woken, 1), 0u);  // the decided waiter is dropped, not claimed
  }
  EXPECT_EQ(w.calls.load(), 0);
  EXPECT_EQ(w.decision(), Decision::timed_out());
  EXPECT_FALSE(source.maybe_waiting());
}

// ---- before_park that throws ------------------------------------------------------------

// An operation on a FlagSource whose before_park runs `step` and may then throw (as
// Condition's does when the user's lock was released under the waiter).
struct StepOp {
  weft::detail::FlagSource* source = nullptr;
  std::function<void()> step;
  bool throws = false;
  int passed_on = 0;

  weft::detail::Link link(weft::detail::WaitNode& node, weft::detail::Position pos) const {
    return source->link(node, pos, [] { return false; });
  }
  void unlink(weft::detail::WaitNode& node) const noexcept { source->unlink(node); }
  void pass_on() noexcept {
    ++passed_on;
    weft::detail::WakeBatch woken;
    source->claim(woken, 1);
  }
  void before_park() const {
    if (step) step();
    if (throws) throw std::runtime_error("before_park");
  }
};

// A's before_park claims A (the oldest waiter) and throws: the wait is not happening, so the
// wake-up goes to U, registered behind A. Dropping it would leave U asleep to its deadline.
TEST(BeforePark, AClaimThatCameInBeforeItThrewPassesOn) {
  weft::detail::FlagSource source;
  std::latch a_linked(1);
  std::latch u_linked(1);
  std::atomic<bool> u_claimed{false};
  std::thread u([&] {
    a_linked.wait();
    StepOp op{&source, [&] { u_linked.count_down(); }};
    weft::detail::WaitLoop loop(weft::detail::Deadline::after(20s), nullptr);
    u_claimed = loop.wait(op).claimed();
  });
  StepOp a{&source,
           [&] {
             a_linked.count_down();
             u_linked.wait();  // U is registered behind A
             weft::detail::WakeBatch woken;
             EXPECT_EQ(source.claim(woken, 1), 1u);  // takes A, the oldest
           },
           true};
  weft::detail::WaitLoop loop(weft::detail::Deadline::never(), nullptr);
  EXPECT_THROW(loop.wait(a), std::runtime_error);
  u.join();
  EXPECT_EQ(a.passed_on, 1);
  EXPECT_TRUE(u_claimed.load()) << "the wake-up A was given never reached U";
  EXPECT_FALSE(source.maybe_waiting());
}

// Without a claim, a throwing before_park passes nothing on and leaves nothing linked.
TEST(BeforePark, WithoutAClaimNothingPassesOn) {
  weft::detail::FlagSource source;
  StepOp a{&source, {}, true};
  weft::detail::WaitLoop loop(weft::detail::Deadline::never(), nullptr);
  EXPECT_THROW(loop.wait(a), std::runtime_error);
  EXPECT_EQ(a.passed_on, 0);
  EXPECT_FALSE(source.maybe_waiting());
}

TEST(Decision, Encoding) {
  EXPECT_TRUE(Decision::claim(0).claimed());
  EXPECT_EQ(Decision::claim(5).index(), 5u);
  EXPECT_EQ(Decision::timed_out().outcome(), weft::detail::Outcome::timed_out);
  EXPECT_EQ(Decision::cancelled().outcome(), weft::detail::Outcome::cancelled);
  EXPECT_FALSE(Decision::timed_out().claimed());
  EXPECT_NE(Decision::claim(0), Decision::timed_out());
}

#if WEFT_INVARIANTS_ON
TEST(InvariantsDeathTest, RemovingAnUnlinkedNodeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  weft::detail::WaitList list;
  weft::detail::WaitNode node;
  EXPECT_DEATH(list.remove(node), "only a linked node is removed");
}
#endif

}  // namespace
