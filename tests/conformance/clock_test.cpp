// SPDX-License-Identifier: MIT
// Clock behaviour (docs/api.md: Time). Waits are measured on the monotonic clock:
//
//  - A time_point of another clock is converted once, at the call: a clock whose now() the
//    test controls (JumpyClock) jumps an hour forward and two hours back while a wait_until
//    on it is blocked, and the wait still takes the 100 ms it was given; its now() is read
//    exactly once per call. Every until-form: Event, Lock, RLock, Condition (bare and with
//    a predicate), Semaphore, select_until.
//  - duration::max() / time_point::max() never overflow on the timed forms of the queues and
//    of select (timeout_test.cpp covers Event, Lock, RLock, Condition, Semaphore, Barrier):
//    each blocks, as "forever", until an item, a slot, a finished task or an event releases it.
//
// (timeout_test.cpp also checks system_clock deadlines and negative/huge timeouts per
// primitive; bad_input_test.cpp the rejected ones.)
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "figures.hpp"
#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Threads;

// A clock the test moves by hand (a wall clock being set). now() = the steady clock plus an
// offset; calls are counted.
struct JumpyClock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<JumpyClock>;
  [[maybe_unused]] static constexpr bool is_steady = false;
  static std::atomic<std::int64_t> offset_ns;
  static std::atomic<long> calls;
  static time_point now() noexcept {
    calls.fetch_add(1);
    return time_point(
        std::chrono::duration_cast<duration>(std::chrono::steady_clock::now().time_since_epoch()) +
        duration(offset_ns.load()));
  }
};
std::atomic<std::int64_t> JumpyClock::offset_ns{0};
std::atomic<long> JumpyClock::calls{0};

struct UntilForm {
  const char* name;
  // Blocks until the deadline (nothing will release it); returns whether it was released.
  std::function<bool(JumpyClock::time_point)> wait;
};

TEST(Clock, DeadlinesOfAnotherClockAreConvertedOnceAtTheCall) {
  weft::Event event;
  weft::Lock held;
  held.acquire();
  weft::RLock rheld;
  rheld.acquire();  // owned by this thread; the waiter is another
  weft::Lock cl;
  weft::Condition cond(cl);
  weft::Semaphore sem(0);
  weft::Queue<int> q(1);
  const std::vector<UntilForm> forms = {
      {"Event::wait_until", [&](auto tp) { return event.wait_until(tp); }},
      {"Lock::acquire_until", [&](auto tp) { return held.acquire_until(tp); }},
      {"Lock::try_lock_until", [&](auto tp) { return held.try_lock_until(tp); }},
      {"RLock::acquire_until", [&](auto tp) { return rheld.acquire_until(tp); }},
      {"Condition::wait_until",
       [&](auto tp) {
         std::unique_lock<weft::Lock> g(cl);
         return cond.wait_until(tp);
       }},
      {"Condition::wait_until(pred)",
       [&](auto tp) {
         std::unique_lock<weft::Lock> g(cl);
         return cond.wait_until([] { return false; }, tp);
       }},
      {"Semaphore::acquire_until", [&](auto tp) { return sem.acquire_until(tp); }},
      {"select_until(get, wait)",
       [&](auto tp) {
         return weft::select_until(tp, weft::get(q), weft::wait(event)).has_value();
       }},
  };
  long checked = 0;
  for (const UntilForm& form : forms) {
    SCOPED_TRACE(form.name);
    JumpyClock::offset_ns = 0;
    std::atomic<long> calls_in_wait{-1};
    std::atomic<bool> result{true};
    std::atomic<std::int64_t> took_ns{0};
    Threads waiter(1, [&](std::size_t) {
      const JumpyClock::time_point deadline = JumpyClock::now() + 100ms;
      const long before = JumpyClock::calls.load();
      const auto start = weft_test::Clock::now();
      result = form.wait(deadline);
      took_ns = (weft_test::Clock::now() - start).count();
      calls_in_wait = JumpyClock::calls.load() - before;
    });
    // Once it sleeps: the wall clock jumps forward (a converted-late deadline would expire
    // now) and back (one recomputed later would extend the wait by an hour).
    ASSERT_TRUE(weft_test::blocked(waiter));
    JumpyClock::offset_ns = std::chrono::nanoseconds(1h).count();
    JumpyClock::offset_ns = -std::chrono::nanoseconds(1h).count();
    waiter.join();
    EXPECT_FALSE(result.load()) << "nothing released it: it must time out";
    EXPECT_TRUE(weft_test::took_about(std::chrono::nanoseconds(took_ns.load()), 100ms));
    EXPECT_EQ(calls_in_wait.load(), 1) << "the deadline must be converted once, at the call";
    ++checked;
  }
  held.release();
  rheld.release();
  weft_test::report_figure("clock_forms_checked", checked);
}

// ---- max durations and time points on the queue and select forms ---------------------------

// Each form is called on a fresh thread and must block (as "forever", not return at once with
// a timeout from an overflow), then return normally once `release` runs.
struct ForeverForm {
  std::string name;
  std::function<void()> call;     // must block, then succeed
  std::function<void()> release;  // what lets it succeed
};

template <class D>
void add_queue_forms(std::vector<ForeverForm>& forms, const std::string& dname, D d,
                     weft::Queue<int>& empty, weft::Queue<int>& full, weft::Event& never_set) {
  std::stop_source stop;  // never requested
  auto put_one = [&empty] { empty.put(1); };
  auto take_one = [&full] { EXPECT_EQ(full.get(), 0); };
  forms.push_back({"get(" + dname + ")", [&empty, d] { EXPECT_EQ(empty.get(d), 1); }, put_one});
  forms.push_back({"get(" + dname + ", stop)",
                   [&empty, d, stop] { EXPECT_EQ(empty.get(d, stop.get_token()), 1); }, put_one});
  forms.push_back(
      {"try_get(" + dname + ")", [&empty, d] { EXPECT_EQ(empty.try_get(d), 1); }, put_one});
  forms.push_back({"put(" + dname + ")", [&full, d] { full.put(0, d); }, take_one});
  forms.push_back({"try_put(" + dname + ", stop)",
                   [&full, d, stop] { EXPECT_TRUE(full.try_put(0, d, stop.get_token())); },
                   take_one});
  // A queue of its own with one unfinished task (a shared one re-armed by release() would
  // race the woken join, which rightly waits again).
  auto busy = std::make_shared<weft::Queue<int>>(1);
  busy->put(0);
  forms.push_back({"join(" + dname + ")", [busy, d] { EXPECT_TRUE(busy->join(d)); },
                   [busy] {
                     (void)busy->get();
                     busy->task_done();
                   }});
  forms.push_back({"join(" + dname + ", stop)",
                   [busy, d, stop] {
                     busy->put(1);
                     EXPECT_TRUE(busy->join(d, stop.get_token()));
                   },
                   [busy] {
                     (void)busy->get();
                     busy->task_done();
                   }});
  forms.push_back({"select_for(" + dname + ", get, wait)",
                   [&empty, &never_set, d] {
                     auto r = weft::select_for(d, weft::get(empty), weft::wait(never_set));
                     ASSERT_TRUE(r.has_value());
                     EXPECT_EQ(r->index(), 0u);
                   },
                   put_one});
}

TEST(Clock, MaxDurationsAndTimePointsWaitForeverOnQueueAndSelectForms) {
  weft::Queue<int> empty(4);
  weft::Queue<int> full(1);
  full.put(0);
  weft::Event never_set;
  std::vector<ForeverForm> forms;
  add_queue_forms(forms, "nanoseconds::max()", std::chrono::nanoseconds::max(), empty, full,
                  never_set);
  add_queue_forms(forms, "hours::max()", std::chrono::hours::max(), empty, full, never_set);
  add_queue_forms(forms, "duration<double>::max()", std::chrono::duration<double>::max(), empty,
                  full, never_set);
  add_queue_forms(forms, "infinity s",
                  std::chrono::duration<double>(std::numeric_limits<double>::infinity()), empty,
                  full, never_set);
  add_queue_forms(forms, "duration<int8_t, ratio<86400>>::max()",
                  std::chrono::duration<std::int8_t, std::ratio<86400>>::max(), empty, full,
                  never_set);
  auto until_form = [&](const std::string& name, auto tp) {
    forms.push_back({"select_until(" + name + ")",
                     [&empty, &never_set, tp] {
                       auto r = weft::select_until(tp, weft::get(empty), weft::wait(never_set));
                       ASSERT_TRUE(r.has_value());
                       EXPECT_EQ(r->index(), 0u);
                     },
                     [&empty] { empty.put(1); }});
  };
  until_form("steady_clock::time_point::max()", std::chrono::steady_clock::time_point::max());
  until_form("system_clock::time_point::max()", std::chrono::system_clock::time_point::max());
  until_form("time_point<system_clock, hours>::max()",
             std::chrono::time_point<std::chrono::system_clock, std::chrono::hours>::max());
  until_form(
      "time_point<system_clock, duration<double>>::max()",
      std::chrono::time_point<std::chrono::system_clock, std::chrono::duration<double>>::max());

  for (const ForeverForm& form : forms) {
    SCOPED_TRACE(form.name);
    Threads waiter(1, [&](std::size_t) { form.call(); });
    ASSERT_TRUE(weft_test::blocked(waiter)) << "returned at once: the timeout overflowed";
    form.release();
    waiter.join();
  }
  weft_test::report_figure("clock_forms_checked", static_cast<long long>(forms.size()));
}

}  // namespace
