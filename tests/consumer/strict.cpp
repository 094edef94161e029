// SPDX-License-Identifier: MIT
// tests/consumer/strict.cpp: a consumer built under users' strictest flags (-Wall -Wextra
// -Wpedantic -Wshadow -Wconversion -Werror, at -O0/-O2/-O3, C++20 and C++23, by g++ and
// clang++; cmake/WeftStrictCompile.cmake): it instantiates every public
// template the way weft's own tests use it (every queue kind with a copyable, a move-only and
// a string item; every select form and operation; every timed, stop_token and deadline
// overload), so that a warning in any header's template body fails the build. It also runs:
// each call below is checked, so the program fails if the library does not behave.
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <weft/version.hpp>
#include <weft/weft.hpp>

namespace {

using namespace std::chrono_literals;

int failures = 0;

// Never stopped; only its tokens are used. At namespace scope because g++ 12 at -O2 warns
// -Wmaybe-uninitialized inside libstdc++'s own std::stop_source() (it hands *this to an
// out-of-line constructor before initializing it) when that constructor is inlined into a
// large function: a libstdc++ false positive, not weft's.
std::stop_source src;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("strict consumer: FAILED: %s\n", what);
    ++failures;
  }
}

template <class Q>
void exercise_queue(Q& q, typename Q::value_type a, typename Q::value_type b) {
  const auto far = std::chrono::steady_clock::now() + 1h;
  (void)far;
  q.put(std::move(a));
  expect(q.try_put(std::move(b)), "try_put");
  expect(q.qsize() == 2, "qsize after two puts");
  auto first = q.get();
  auto second = q.try_get(10ms);
  expect(second.has_value(), "try_get(timeout)");
  expect(!q.try_get().has_value(), "try_get on empty");
  expect(!q.try_get(1ms, src.get_token()).has_value(), "try_get(timeout, stop) on empty");
  q.put(std::move(first), 1s);
  q.put(std::move(*second), 1s, src.get_token());
  (void)q.get(1s);
  (void)q.get(src.get_token());
  expect(q.empty(), "empty");
  try {
    (void)q.get_nowait();
    expect(false, "get_nowait on empty throws");
  } catch (const weft::Empty&) {
  }
}

template <class Q>
void exercise_task_queue(Q& q, typename Q::value_type a, typename Q::value_type b) {
  exercise_queue(q, std::move(a), std::move(b));
  for (int i = 0; i < 4; ++i) q.task_done();
  q.join();
  expect(q.join(1ms), "join(timeout)");
  expect(q.unfinished_tasks() == 0, "unfinished_tasks");
  std::vector<typename Q::value_type> left = q.shutdown(true);
  expect(left.empty() && q.is_shutdown(), "shutdown");
  for (auto&& item : q.consume()) {
    (void)item;
    expect(false, "consume() of a drained, shut-down queue yields nothing");
  }
}

void exercise_select() {
  weft::Queue<int> ints(4);
  weft::Queue<std::unique_ptr<int>> ptrs;  // unbounded: the locked deque
  weft::LifoQueue<std::string> strings(2);
  weft::PriorityQueue<int, std::greater<>> prio;
  weft::SimpleQueue<std::string> simple;
  weft::Event ev;
  weft::Semaphore sem(0);
  int item = 7;

  auto r = weft::select(weft::put(ints, item), weft::get(ptrs), weft::wait(ev), weft::acquire(sem));
  expect(r.index() == 0 && std::get<0>(r), "select(put) performs the only ready operation");

  auto g = weft::select(weft::biased, weft::get(ints), weft::get(strings));
  expect(g.index() == 0 && std::get<0>(g) == 7, "select(biased, get)");

  expect(!weft::try_select(weft::get(ints), weft::get(prio), weft::get(simple)).has_value(),
         "try_select with nothing ready");
  expect(!weft::try_select(weft::biased, weft::get(ints)).has_value(), "try_select(biased)");
  expect(!weft::select_for(1ms, weft::get(ints), weft::wait(ev)).has_value(), "select_for");
  expect(!weft::select_for(weft::biased, 1ms, weft::get(ints)).has_value(), "select_for(biased)");
  expect(!weft::select_for(1ms, src.get_token(), weft::acquire(sem)).has_value(),
         "select_for(timeout, stop)");
  expect(!weft::select_for(weft::biased, 1ms, src.get_token(), weft::get(ints)).has_value(),
         "select_for(biased, timeout, stop)");
  const auto soon = std::chrono::steady_clock::now() + 1ms;
  expect(!weft::select_until(soon, weft::get(ints)).has_value(), "select_until");
  expect(!weft::select_until(weft::biased, soon, weft::get(ints)).has_value(),
         "select_until(biased)");
  expect(!weft::select_until(std::chrono::system_clock::now(), src.get_token(), weft::get(ints))
              .has_value(),
         "select_until(system_clock, stop)");
  expect(!weft::select_until(weft::biased, soon, src.get_token(), weft::get(ints)).has_value(),
         "select_until(biased, deadline, stop)");

  ptrs.put(std::make_unique<int>(3));
  auto p = weft::select(src.get_token(), weft::get(ptrs), weft::get(ints));
  expect(p && p->index() == 0 && std::get<0>(*p) && **std::get<0>(*p) == 3,
         "select(stop, get) of a move-only item");
  // One get from each queue kind holding int: g++ -O3 used to warn -Wmaybe-uninitialized in
  // select.hpp for this one (tests/conformance/select_test.cpp, GetFromEveryQueueKind).
  weft::Queue<int> locked;
  weft::LifoQueue<int> lifo;
  weft::PriorityQueue<int> smallest;
  locked.put(1);
  lifo.put(2);
  smallest.put(3);
  int sum = 0;
  for (int i = 0; i < 3; ++i) {
    auto one =
        weft::select(weft::get(ints), weft::get(locked), weft::get(lifo), weft::get(smallest));
    switch (one.index()) {
      case 0:
        sum += *std::get<0>(one);
        break;
      case 1:
        sum += *std::get<1>(one);
        break;
      case 2:
        sum += *std::get<2>(one);
        break;
      case 3:
        sum += *std::get<3>(one);
        break;
    }
  }
  expect(sum == 6, "select over every queue kind");

  ev.set();
  auto q = weft::select(weft::biased, src.get_token(), weft::get(ints), weft::wait(ev));
  expect(q && q->index() == 1, "select(biased, stop, wait) of a set Event");
}

void exercise_sync() {
  weft::Event ev;
  ev.set();
  expect(ev.wait() && ev.wait(1ms) && ev.is_set(), "Event");
  ev.clear();
  expect(!ev.wait_until(std::chrono::steady_clock::now() + 1ms), "Event::wait_until");
  expect(!ev.wait(1ms, src.get_token()), "Event::wait(timeout, stop)");

  weft::Lock lock;
  {
    std::scoped_lock guard(lock);
    expect(lock.locked(), "Lock as a Lockable");
  }
  expect(lock.acquire(1ms), "Lock::acquire(timeout)");
  expect(!lock.try_lock_for(1ms), "Lock::try_lock_for while held");
  lock.release();

  weft::RLock rlock;
  expect(rlock.acquire() && rlock.acquire(1ms, src.get_token()), "RLock reentry");
  rlock.release();
  rlock.release();

  weft::Condition cond;
  int state = 0;
  cond.acquire();
  state = 1;
  expect(cond.wait_for([&] { return state == 1; }, 1ms), "Condition::wait_for(pred, timeout)");
  expect(!cond.wait(1ms), "Condition::wait(timeout)");
  cond.notify();
  cond.notify_all();
  cond.release();
  weft::Condition on_lock(lock);
  {
    std::unique_lock guard(on_lock);
    on_lock.notify(2);
  }

  weft::BoundedSemaphore bsem(1);
  expect(bsem.acquire() && !bsem.acquire(false) && !bsem.acquire(1ms), "BoundedSemaphore");
  bsem.release();
  weft::Semaphore sem(2);
  expect(sem.acquire_until(std::chrono::steady_clock::now() + 1ms), "Semaphore::acquire_until");
  sem.release(1);
  expect(sem.value() == 2, "Semaphore::value");

  int actions = 0;
  weft::Barrier barrier(2, [&] { ++actions; });
  std::size_t other = 0;
  std::thread t([&] { other = barrier.wait(); });
  const std::size_t mine = barrier.wait(10s);
  t.join();
  expect(mine + other == 1 && actions == 1, "Barrier");
  barrier.abort();
  expect(barrier.broken(), "Barrier::abort");
  try {
    (void)barrier.wait();
    expect(false, "wait on a broken Barrier throws");
  } catch (const weft::BrokenBarrierError&) {
  }
}

}  // namespace

int main() {
  static_assert(WEFT_VERSION_MAJOR >= 0 && WEFT_VERSION_MINOR >= 0 && WEFT_VERSION_PATCH >= 0);

  weft::Queue<int> bounded(8);
  exercise_task_queue(bounded, 1, 2);
  weft::Queue<std::string> unbounded;
  exercise_task_queue(unbounded, std::string("a"), std::string("b"));
  weft::Queue<std::unique_ptr<int>> ptrs(4);
  exercise_task_queue(ptrs, std::make_unique<int>(1), std::make_unique<int>(2));
  weft::LifoQueue<std::unique_ptr<int>> lifo(4);
  exercise_task_queue(lifo, std::make_unique<int>(1), std::make_unique<int>(2));
  weft::PriorityQueue<std::string> prio(4);
  exercise_task_queue(prio, std::string("b"), std::string("a"));
  weft::SimpleQueue<std::unique_ptr<int>> simple;
  exercise_queue(simple, std::make_unique<int>(1), std::make_unique<int>(2));

  exercise_sync();
  exercise_select();
  if (failures != 0) return 1;
  std::printf("strict consumer: ok (weft %s)\n", WEFT_VERSION_STRING);
  return 0;
}
