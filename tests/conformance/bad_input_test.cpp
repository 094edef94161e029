// SPDX-License-Identifier: MIT
// Bad input, systematically (docs/api.md: Errors, Time): every row is one bad call, which must
// throw the documented exception type with a message, and change nothing (checked after
// each row). Rows are counted; the count is printed as a figure (docs/reliability.md).
//
//   - timeouts: negative (of several reps and periods, min() and lowest() included) on every
//     timed queue and select form, whether or not the call would have to block; NaN on every
//     timed form of every primitive;
//   - sizes: Semaphore/BoundedSemaphore values that do not fit (a negative value converted
//     to std::size_t), Barrier of 0 parties, release(0), release past the bound;
//   - task_done() once too often (fresh, after task_done, after shutdown(true));
//   - releasing what is not held: Lock, RLock (unheld, by a non-owner, once too often),
//     Condition wait/notify without the lock;
//   - use after shutdown: every put form, every get form on a drained queue, select.
//
// errors_test.cpp checks each error's type once; this file sweeps the forms.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "figures.hpp"
#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::duration;

long g_rows = 0;

// One bad call: must throw E (with a message), nothing else, and not return.
template <class E, class F>
void bad(const std::string& what, F&& call) {
  ++g_rows;
  try {
    std::forward<F>(call)();
    ADD_FAILURE() << what << ": returned instead of throwing";
  } catch (const E& e) {
    EXPECT_STRNE(e.what(), "") << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw the wrong exception: " << e.what();
  }
}

class Figures : public ::testing::Environment {
 public:
  void TearDown() override { std::printf("weft-figure: bad_inputs_tried=%ld\n", g_rows); }
};
const auto* const kFigures = ::testing::AddGlobalTestEnvironment(new Figures);

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Negative timeouts of several representations, each applied through `f`.
template <class F>
void for_each_negative(F&& f) {
  f("-1ns", std::chrono::nanoseconds(-1));
  f("-1ms", std::chrono::milliseconds(-1));
  f("-0.5s (double)", duration<double>(-0.5));
  f("-1e-9s (float)", duration<float>(-1e-9f));
  f("nanoseconds::min()", std::chrono::nanoseconds::min());
  f("hours::min()", std::chrono::hours::min());
  f("duration<double>::lowest()", duration<double>(std::numeric_limits<double>::lowest()));
  f("-infinity s", duration<double>(-std::numeric_limits<double>::infinity()));
}

// ---- queues: negative and NaN timeouts on every timed form --------------------------------

template <class Kind>
class BadQueueInput : public ::testing::Test {};
TYPED_TEST_SUITE(BadQueueInput, weft_test::AllQueueKinds, weft_test::KindNames);

TYPED_TEST(BadQueueInput, NegativeAndNaNTimeoutsThrowInvalidArgumentOnEveryTimedForm) {
  using Item = typename TypeParam::Item;
  std::stop_source stop;
  // Each state: an empty queue (gets would block) and one with an item and room, or full
  // (puts would block) for the bounded kinds.
  for (int state = 0; state < 3; ++state) {
    if (state == 2 && !TypeParam::kTasks) continue;
    auto q = weft_test::new_queue<TypeParam>(TypeParam::kTasks ? 2 : 0);
    if (state >= 1) q->put(Item(7));
    if (state == 2) q->put(Item(8));
    const std::size_t size = q->qsize();
    auto check = [&](auto timeout, const std::string& name) {
      const std::string s = name + ", state " + std::to_string(state);
      Item item(42);
      const Item citem(43);
      bad<std::invalid_argument>("put(T&&, " + s, [&] { q->put(std::move(item), timeout); });
      bad<std::invalid_argument>("put(const T&, " + s, [&] { q->put(citem, timeout); });
      bad<std::invalid_argument>("put(T&&, stop, " + s,
                                 [&] { q->put(std::move(item), timeout, stop.get_token()); });
      bad<std::invalid_argument>("put(const T&, stop, " + s,
                                 [&] { q->put(citem, timeout, stop.get_token()); });
      bad<std::invalid_argument>("try_put(T&&, " + s,
                                 [&] { (void)q->try_put(std::move(item), timeout); });
      bad<std::invalid_argument>("try_put(const T&, " + s,
                                 [&] { (void)q->try_put(citem, timeout); });
      bad<std::invalid_argument>("try_put(T&&, stop, " + s, [&] {
        (void)q->try_put(std::move(item), timeout, stop.get_token());
      });
      bad<std::invalid_argument>("try_put(const T&, stop, " + s,
                                 [&] { (void)q->try_put(citem, timeout, stop.get_token()); });
      bad<std::invalid_argument>("get(" + s, [&] { (void)q->get(timeout); });
      bad<std::invalid_argument>("get(stop, " + s,
                                 [&] { (void)q->get(timeout, stop.get_token()); });
      bad<std::invalid_argument>("try_get(" + s, [&] { (void)q->try_get(timeout); });
      bad<std::invalid_argument>("try_get(stop, " + s,
                                 [&] { (void)q->try_get(timeout, stop.get_token()); });
      if constexpr (TypeParam::kTasks) {
        bad<std::invalid_argument>("join(" + s, [&] { (void)q->join(timeout); });
        bad<std::invalid_argument>("join(stop, " + s,
                                   [&] { (void)q->join(timeout, stop.get_token()); });
      }
      bad<std::invalid_argument>("select_for(get, " + s,
                                 [&] { (void)weft::select_for(timeout, weft::get(*q)); });
      bad<std::invalid_argument>("select_for(biased, put, " + s, [&] {
        (void)weft::select_for(weft::biased, timeout, weft::put(*q, item));
      });
      bad<std::invalid_argument>("select_for(stop, get, " + s, [&] {
        (void)weft::select_for(timeout, stop.get_token(), weft::get(*q));
      });
      bad<std::invalid_argument>("select_for(biased, stop, put, " + s, [&] {
        (void)weft::select_for(weft::biased, timeout, stop.get_token(), weft::put(*q, item));
      });
      // Nothing changed: the items stay with the caller, the queue as it was.
      EXPECT_EQ(static_cast<int>(item), 42) << s;
      EXPECT_EQ(static_cast<int>(citem), 43) << s;
      EXPECT_EQ(q->qsize(), size) << s;
      if constexpr (TypeParam::kTasks) {
        EXPECT_EQ(q->unfinished_tasks(), size) << s;
      }
    };
    for_each_negative([&](const char* name, auto timeout) { check(timeout, name); });
    check(duration<double>(kNaN), "NaN");
    // Still the same items, in order.
    std::vector<int> expected;
    if (state >= 1) expected.push_back(7);
    if (state == 2) expected.push_back(8);
    EXPECT_EQ(weft_test::drain_ints(*q), weft_test::in_get_order<TypeParam>(expected));
  }
}

// ---- NaN timeouts on every timed form of the other primitives -----------------------------
// (Negative timeouts poll there, as in Python: timeout_test.cpp.)
TEST(BadInput, NaNTimeoutsThrowInvalidArgumentOnEveryTimedForm) {
  const duration<double> nan(kNaN);
  std::stop_source stop;
  weft::Event e;
  bad<std::invalid_argument>("Event::wait(NaN)", [&] { (void)e.wait(nan); });
  bad<std::invalid_argument>("Event::wait(NaN, stop)",
                             [&] { (void)e.wait(nan, stop.get_token()); });
  EXPECT_FALSE(e.is_set());

  weft::Lock lock;
  lock.acquire();  // held: an acquire would have to wait
  bad<std::invalid_argument>("Lock::acquire(NaN)", [&] { (void)lock.acquire(nan); });
  bad<std::invalid_argument>("Lock::acquire(NaN, stop)",
                             [&] { (void)lock.acquire(nan, stop.get_token()); });
  bad<std::invalid_argument>("Lock::try_lock_for(NaN)", [&] { (void)lock.try_lock_for(nan); });
  EXPECT_TRUE(lock.locked());

  weft::RLock rlock;
  std::thread([&] { rlock.acquire(); }).join();  // owned by a thread that is gone: held for good
  bad<std::invalid_argument>("RLock::acquire(NaN)", [&] { (void)rlock.acquire(nan); });
  bad<std::invalid_argument>("RLock::acquire(NaN, stop)",
                             [&] { (void)rlock.acquire(nan, stop.get_token()); });
  bad<std::invalid_argument>("RLock::try_lock_for(NaN)", [&] { (void)rlock.try_lock_for(nan); });
  EXPECT_FALSE(rlock.is_owned());

  weft::Lock cl;
  weft::Condition cond(cl);
  cl.acquire();
  bad<std::invalid_argument>("Condition::wait(NaN)", [&] { (void)cond.wait(nan); });
  bad<std::invalid_argument>("Condition::wait(NaN, stop)",
                             [&] { (void)cond.wait(nan, stop.get_token()); });
  bad<std::invalid_argument>("Condition::wait_for(pred, NaN)",
                             [&] { (void)cond.wait_for([] { return false; }, nan); });
  bad<std::invalid_argument>("Condition::wait_for(pred, NaN, stop)", [&] {
    (void)cond.wait_for([] { return false; }, nan, stop.get_token());
  });
  EXPECT_TRUE(cl.locked()) << "a rejected wait must keep the lock";
  cl.release();

  weft::Semaphore sem(0);
  bad<std::invalid_argument>("Semaphore::acquire(NaN)", [&] { (void)sem.acquire(nan); });
  bad<std::invalid_argument>("Semaphore::acquire(NaN, stop)",
                             [&] { (void)sem.acquire(nan, stop.get_token()); });
  EXPECT_EQ(sem.value(), 0u);

  weft::Barrier barrier(2);
  bad<std::invalid_argument>("Barrier::wait(NaN)", [&] { (void)barrier.wait(nan); });
  bad<std::invalid_argument>("Barrier::wait(NaN, stop)",
                             [&] { (void)barrier.wait(nan, stop.get_token()); });
  EXPECT_EQ(barrier.n_waiting(), 0u);
  EXPECT_FALSE(barrier.broken());

  bad<std::invalid_argument>("select_for(NaN, wait(e))",
                             [&] { (void)weft::select_for(nan, weft::wait(e)); });
  bad<std::invalid_argument>("select_for(NaN, acquire(sem))",
                             [&] { (void)weft::select_for(nan, weft::acquire(sem)); });
  EXPECT_EQ(sem.value(), 0u);
}

// ---- sizes ----------------------------------------------------------------------------------
TEST(BadInput, SizesThatDoNotFit) {
  const auto minus_one = static_cast<std::size_t>(-1);  // Semaphore(-1) in C++
  bad<std::invalid_argument>("Semaphore(-1)", [&] { weft::Semaphore s(minus_one); });
  bad<std::invalid_argument>("Semaphore(SIZE_MAX / 2 + 1)",
                             [&] { weft::Semaphore s(minus_one / 2 + 1); });
  bad<std::invalid_argument>("BoundedSemaphore(-1)", [&] { weft::BoundedSemaphore s(minus_one); });
  bad<std::logic_error>("Barrier(0)", [&] { weft::Barrier b(0); });
  bad<std::logic_error>("Barrier(0, action)", [&] { weft::Barrier b(0, [] {}); });
  bad<std::logic_error>("Barrier(0, action, 1s)", [&] {
    weft::Barrier b(
        0, [] {}, 1s);
  });

  weft::Semaphore sem(1);
  bad<std::invalid_argument>("Semaphore::release(0)", [&] { sem.release(0); });
  EXPECT_EQ(sem.value(), 1u);
  bad<std::overflow_error>("Semaphore::release(SIZE_MAX)", [&] { sem.release(minus_one); });
  EXPECT_EQ(sem.value(), 1u);

  weft::BoundedSemaphore bounded(2);
  bad<std::logic_error>("BoundedSemaphore(2)::release() when full", [&] { bounded.release(); });
  ASSERT_TRUE(bounded.acquire(false));
  bad<std::logic_error>("BoundedSemaphore(2)::release(2) with one out",
                        [&] { bounded.release(2); });
  bad<std::logic_error>("BoundedSemaphore::release(SIZE_MAX)", [&] { bounded.release(minus_one); });
  bad<std::invalid_argument>("BoundedSemaphore::release(0)", [&] { bounded.release(0); });
  EXPECT_EQ(bounded.value(), 1u);
  bounded.release();
  EXPECT_EQ(bounded.value(), 2u);

  // Not errors, as in Python: maxsize <= 0 means unbounded, and maxsize() reports it.
  for (const std::ptrdiff_t maxsize :
       {std::ptrdiff_t{0}, std::ptrdiff_t{-1}, std::numeric_limits<std::ptrdiff_t>::min()}) {
    weft::Queue<int> q(maxsize);
    EXPECT_EQ(q.maxsize(), maxsize);
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(q.try_put(i));
    EXPECT_FALSE(q.full());
  }
  // Zero permits and one party are valid.
  weft::Semaphore zero(0);
  EXPECT_FALSE(zero.acquire(false));
  weft::Barrier one(1);
  EXPECT_EQ(one.wait(), 0u);
}

// ---- task_done() once too often --------------------------------------------------------------
template <class Kind>
class BadTaskInput : public ::testing::Test {};
TYPED_TEST_SUITE(BadTaskInput, weft_test::TaskQueueKinds, weft_test::KindNames);

TYPED_TEST(BadTaskInput, TaskDoneTooOftenIsALogicErrorAndChangesNothing) {
  using Item = typename TypeParam::Item;
  auto q = weft_test::new_queue<TypeParam>(4);
  bad<std::logic_error>("task_done() on a fresh queue", [&] { q->task_done(); });
  EXPECT_EQ(q->unfinished_tasks(), 0u);

  q->put(Item(1));
  q->put(Item(2));
  (void)q->get();
  q->task_done();
  q->task_done();  // for the item still queued: allowed (Python counts puts, not gets)
  bad<std::logic_error>("task_done() after every put was done", [&] { q->task_done(); });
  EXPECT_EQ(q->unfinished_tasks(), 0u);
  EXPECT_EQ(q->qsize(), 1u);
  EXPECT_TRUE(q->join(0s));

  q->put(Item(3));
  EXPECT_EQ(q->shutdown(true).size(), 2u);  // counts both removed items as done
  bad<std::logic_error>("task_done() after shutdown(true) finished every task",
                        [&] { q->task_done(); });
  EXPECT_EQ(q->unfinished_tasks(), 0u);
}

// ---- releasing what is not held ---------------------------------------------------------------
TEST(BadInput, ReleasingWhatIsNotHeld) {
  weft::Lock lock;
  bad<std::logic_error>("Lock::release() unlocked", [&] { lock.release(); });
  bad<std::logic_error>("Lock::unlock() unlocked", [&] { lock.unlock(); });
  EXPECT_FALSE(lock.locked());
  lock.acquire();
  lock.release();
  bad<std::logic_error>("Lock::release() once too often", [&] { lock.release(); });
  EXPECT_TRUE(lock.acquire(false)) << "the lock still works";
  lock.release();

  weft::RLock rlock;
  bad<std::logic_error>("RLock::release() unheld", [&] { rlock.release(); });
  rlock.acquire();
  rlock.acquire();
  std::thread([&] {
    bad<std::logic_error>("RLock::release() by a non-owner", [&] { rlock.release(); });
    bad<std::logic_error>("RLock::unlock() by a non-owner", [&] { rlock.unlock(); });
    EXPECT_FALSE(rlock.acquire(false)) << "still owned by the other thread";
  }).join();
  EXPECT_TRUE(rlock.is_owned());
  rlock.release();
  rlock.release();
  bad<std::logic_error>("RLock::release() once too often", [&] { rlock.release(); });
  std::thread([&] {
    EXPECT_TRUE(rlock.acquire(false)) << "fully released";
    rlock.release();
  }).join();

  for (const bool reentrant : {false, true}) {
    weft::Lock l;
    weft::RLock rl;
    auto cond =
        reentrant ? std::make_unique<weft::Condition>(rl) : std::make_unique<weft::Condition>(l);
    const std::string kind = reentrant ? "Condition(RLock)" : "Condition(Lock)";
    bad<std::logic_error>(kind + "::wait() without the lock", [&] { (void)cond->wait(); });
    bad<std::logic_error>(kind + "::wait(1s) without the lock", [&] { (void)cond->wait(1s); });
    bad<std::logic_error>(kind + "::wait_for(pred) without the lock",
                          [&] { (void)cond->wait_for([] { return false; }); });
    bad<std::logic_error>(kind + "::notify() without the lock", [&] { cond->notify(); });
    bad<std::logic_error>(kind + "::notify_all() without the lock", [&] { cond->notify_all(); });
    bad<std::logic_error>(kind + "::release() without the lock", [&] { cond->release(); });
    if (reentrant) {
      // Held, but by another thread.
      std::thread([&] { rl.acquire(); }).join();
      bad<std::logic_error>(kind + "::wait() with the lock held by another thread",
                            [&] { (void)cond->wait(); });
      bad<std::logic_error>(kind + "::notify() with the lock held by another thread",
                            [&] { cond->notify(); });
    }
  }
}

// ---- use after shutdown -------------------------------------------------------------------
template <class Kind>
class UseAfterShutdown : public ::testing::Test {};
TYPED_TEST_SUITE(UseAfterShutdown, weft_test::TaskQueueKinds, weft_test::KindNames);

// NOLINTBEGIN(bugprone-use-after-move): failed puts must leave the item; the test reads it
TYPED_TEST(UseAfterShutdown, EveryPutFailsAndEveryGetReportsShutDownOnceDrained) {
  using Item = typename TypeParam::Item;
  std::stop_source stop;
  for (const bool immediate : {false, true}) {
    auto q = weft_test::new_queue<TypeParam>(4);
    q->put(Item(5));
    (void)q->shutdown(immediate);
    (void)q->shutdown(immediate);  // a second shutdown is harmless
    const std::size_t left = immediate ? 0 : 1;
    Item item(9);
    const Item citem(10);
    bad<weft::ShutDown>("put after shutdown", [&] { q->put(std::move(item)); });
    bad<weft::ShutDown>("put(const&) after shutdown", [&] { q->put(citem); });
    bad<weft::ShutDown>("put(1s) after shutdown", [&] { q->put(std::move(item), 1s); });
    bad<weft::ShutDown>("put(stop) after shutdown",
                        [&] { q->put(std::move(item), stop.get_token()); });
    bad<weft::ShutDown>("put(1s, stop) after shutdown",
                        [&] { q->put(std::move(item), 1s, stop.get_token()); });
    bad<weft::ShutDown>("put_nowait after shutdown", [&] { q->put_nowait(std::move(item)); });
    ++g_rows;
    EXPECT_FALSE(q->try_put(std::move(item)));
    ++g_rows;
    EXPECT_FALSE(q->try_put(std::move(item), 1s));
    ++g_rows;
    EXPECT_FALSE(std::get<0>(weft::try_select(weft::put(*q, item)).value()))
        << "select's put reports a shut-down queue as false";
    EXPECT_EQ(static_cast<int>(item), 9) << "a put after shutdown took the item";
    EXPECT_EQ(q->qsize(), left);
    if (!immediate) {
      EXPECT_EQ(static_cast<int>(q->get()), 5);
    }
    bad<weft::ShutDown>("get on a drained shut-down queue", [&] { (void)q->get(); });
    bad<weft::ShutDown>("get(1s) on a drained shut-down queue", [&] { (void)q->get(1s); });
    bad<weft::ShutDown>("get(stop) on a drained shut-down queue",
                        [&] { (void)q->get(stop.get_token()); });
    bad<weft::ShutDown>("get_nowait on a drained shut-down queue", [&] { (void)q->get_nowait(); });
    ++g_rows;
    EXPECT_FALSE(q->try_get().has_value());
    ++g_rows;
    EXPECT_FALSE(std::get<0>(weft::try_select(weft::get(*q)).value()).has_value())
        << "select's get reports a drained shut-down queue as nullopt";
    EXPECT_TRUE(q->is_shutdown());
  }
}
// NOLINTEND(bugprone-use-after-move)

TEST(BadInput, UseOfAnAbortedBarrier) {
  weft::Barrier barrier(2);
  barrier.abort();
  bad<weft::BrokenBarrierError>("Barrier::wait() after abort()", [&] { (void)barrier.wait(); });
  bad<weft::BrokenBarrierError>("Barrier::wait(1s) after abort()", [&] { (void)barrier.wait(1s); });
  std::stop_source stop;
  bad<weft::BrokenBarrierError>("Barrier::wait(stop) after abort()",
                                [&] { (void)barrier.wait(stop.get_token()); });
  EXPECT_TRUE(barrier.broken());
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
}

}  // namespace
