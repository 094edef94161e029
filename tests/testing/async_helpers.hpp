// SPDX-License-Identifier: MIT
// Helpers for the tests of weft/async.hpp: two schedulers and two coroutine types.
//
//  - ManualScheduler: queues what it is given; the test runs it (run_pending). Nothing runs
//    unless the test says so, which makes "the notifier's call returned before the
//    continuation ran" observable; drop_pending() discards what is queued, as a scheduler
//    that shuts down does. Timers fire when the test calls fire_all_timers().
//  - PoolScheduler: worker threads draining a queue of continuations, with a timer list
//    served by the same workers (a condition variable with a deadline).
//  - Detached: a coroutine that starts at once and frees itself when it finishes.
//  - Owned: a coroutine that starts at once and is destroyed by its owner (destroying it
//    while it is suspended is what the frame-destruction tests do).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "weft/async.hpp"

namespace weft_test {

class ManualScheduler {
 public:
  void schedule(weft::AsyncResume f) noexcept {
    std::lock_guard<std::mutex> g(m_);
    pending_.push_back(f);
  }
  void arm_timer(weft::AsyncTimer& t) {
    std::lock_guard<std::mutex> g(m_);
    timers_.push_back(&t);
  }
  void disarm_timer(weft::AsyncTimer& t) noexcept {
    std::lock_guard<std::mutex> g(m_);
    timers_.erase(std::remove(timers_.begin(), timers_.end(), &t), timers_.end());
  }

  std::size_t pending() {
    std::lock_guard<std::mutex> g(m_);
    return pending_.size();
  }
  std::size_t armed_timers() {
    std::lock_guard<std::mutex> g(m_);
    return timers_.size();
  }
  // Runs what is queued now (and what that queues), on the calling thread; returns how many.
  std::size_t run_pending() {
    std::size_t n = 0;
    for (;;) {
      std::optional<weft::AsyncResume> f;
      {
        std::lock_guard<std::mutex> g(m_);
        if (pending_.empty()) return n;
        f.emplace(pending_.front());
        pending_.pop_front();
      }
      (*f)();
      ++n;
    }
  }
  // Drops what is queued now, as a scheduler that shuts down does (AsyncResume::drop());
  // returns how many.
  std::size_t drop_pending() {
    std::deque<weft::AsyncResume> dropped;
    {
      std::lock_guard<std::mutex> g(m_);
      dropped.swap(pending_);
    }
    for (const weft::AsyncResume& f : dropped) f.drop();
    return dropped.size();
  }
  // Fires every armed timer (single-threaded tests only: fire() runs outside the lock, and a
  // concurrent disarm would not wait for it).
  void fire_all_timers() {
    std::vector<weft::AsyncTimer*> due;
    {
      std::lock_guard<std::mutex> g(m_);
      due.swap(timers_);
    }
    for (weft::AsyncTimer* t : due) t->fire();
  }

 private:
  std::mutex m_;
  std::deque<weft::AsyncResume> pending_;
  std::vector<weft::AsyncTimer*> timers_;
};

class PoolScheduler {
 public:
  explicit PoolScheduler(int threads = 2) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  PoolScheduler(const PoolScheduler&) = delete;
  PoolScheduler& operator=(const PoolScheduler&) = delete;
  ~PoolScheduler() {
    {
      std::lock_guard<std::mutex> g(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  void schedule(weft::AsyncResume f) noexcept {
    {
      std::lock_guard<std::mutex> g(m_);
      queue_.push_back(f);
      ++scheduled_;
    }
    cv_.notify_one();
  }
  void arm_timer(weft::AsyncTimer& t) {
    {
      std::lock_guard<std::mutex> g(m_);
      timers_.insert({t.deadline(), &t});
    }
    cv_.notify_all();
  }
  void disarm_timer(weft::AsyncTimer& t) noexcept {
    std::unique_lock<std::mutex> g(m_);
    timers_.erase({t.deadline(), &t});
    fired_cv_.wait(g, [&] { return firing_.count(&t) == 0; });
  }
  std::size_t scheduled() {
    std::lock_guard<std::mutex> g(m_);
    return scheduled_;
  }

 private:
  void work() {
    std::unique_lock<std::mutex> g(m_);
    for (;;) {
      if (!timers_.empty() && timers_.begin()->first <= std::chrono::steady_clock::now()) {
        weft::AsyncTimer* t = timers_.begin()->second;
        timers_.erase(timers_.begin());
        firing_.insert(t);
        g.unlock();
        t->fire();
        g.lock();
        firing_.erase(t);
        fired_cv_.notify_all();
        continue;
      }
      if (!queue_.empty()) {
        weft::AsyncResume f = queue_.front();
        queue_.pop_front();
        g.unlock();
        f();
        g.lock();
        continue;
      }
      if (stopping_) return;
      if (timers_.empty()) {
        cv_.wait(g);
      } else {
        cv_.wait_until(g, timers_.begin()->first);
      }
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::condition_variable fired_cv_;
  std::deque<weft::AsyncResume> queue_;
  std::set<std::pair<std::chrono::steady_clock::time_point, weft::AsyncTimer*>> timers_;
  std::multiset<weft::AsyncTimer*> firing_;
  std::size_t scheduled_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// A scheduler without a timer (a weft::Scheduler, not a TimedScheduler): queues on `inner`.
struct UntimedScheduler {
  ManualScheduler* inner;
  void schedule(weft::AsyncResume f) const noexcept { inner->schedule(f); }
};
static_assert(weft::Scheduler<UntimedScheduler> && !weft::TimedScheduler<UntimedScheduler>);

// A timed scheduler whose arm_timer() throws (the operation then fails with that exception
// and takes nothing): queues on `inner`.
struct FailingTimerScheduler {
  ManualScheduler* inner;
  void schedule(weft::AsyncResume f) const noexcept { inner->schedule(f); }
  void arm_timer(weft::AsyncTimer& /*t*/) { throw std::runtime_error("no timer"); }
  void disarm_timer(weft::AsyncTimer& /*t*/) noexcept {}
};
static_assert(weft::TimedScheduler<FailingTimerScheduler>);

// Starts at once; frees its frame when it finishes. An escaping exception ends the test
// program (tests catch what they expect inside the coroutine).
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// Starts at once; its owner destroys the frame (also while it is suspended).
class Owned {
 public:
  struct promise_type {
    Owned get_return_object() noexcept {
      return Owned(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Owned& operator=(Owned&&) = delete;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { destroy(); }
  bool done() const { return h_ && h_.done(); }
  void destroy() {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  explicit Owned(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

}  // namespace weft_test
