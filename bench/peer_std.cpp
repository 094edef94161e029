// SPDX-License-Identifier: MIT
// What a tutorial writes: a std::deque under a std::mutex with two std::condition_variables
// (bounded) or one (unbounded); an Event as bool + mutex + condition_variable. Also C++20's
// std::atomic<bool>::wait/notify as an Event (the futex-backed "atomic wait"), std::mutex
// and std::condition_variable themselves.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "queue_workloads.hpp"
#if WEFT_BENCH_SCALE
#include "scale_workloads.hpp"
#endif
#include "sync_workloads.hpp"

namespace {

template <class T>
class TutorialQueue {
 public:
  explicit TutorialQueue(std::size_t cap) : cap_(cap) {}
  void put(T v) {
    std::unique_lock<std::mutex> lk(m_);
    not_full_.wait(lk, [&] { return cap_ == 0 || items_.size() < cap_; });
    items_.push_back(std::move(v));
    not_empty_.notify_one();
  }
  T get() {
    std::unique_lock<std::mutex> lk(m_);
    not_empty_.wait(lk, [&] { return !items_.empty(); });
    T v = std::move(items_.front());
    items_.pop_front();
    if (cap_ != 0) not_full_.notify_one();
    return v;
  }

 private:
  const std::size_t cap_;
  std::mutex m_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> items_;
};

template <class T>
struct StdQueueOf {
  using Queue = TutorialQueue<T>;
  static std::unique_ptr<Queue> make(std::size_t cap) { return std::make_unique<Queue>(cap); }
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(T v) { q_.put(std::move(v)); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    T pop() { return q_.get(); }
    Queue& q_;
  };
};
using StdQueue = StdQueueOf<std::uint64_t>;

struct TutorialEvent {
  std::mutex m;
  std::condition_variable cv;
  bool flag = false;
  void set() {
    std::lock_guard<std::mutex> g(m);
    flag = true;
    cv.notify_all();
  }
  void clear() {
    std::lock_guard<std::mutex> g(m);
    flag = false;
  }
  bool is_set() {
    std::lock_guard<std::mutex> g(m);
    return flag;
  }
  void wait() {
    std::unique_lock<std::mutex> lk(m);
    cv.wait(lk, [&] { return flag; });
  }
};

struct AtomicWaitEvent {
  std::atomic<bool> flag{false};
  void set() {
    flag.store(true, std::memory_order_release);
    flag.notify_all();
  }
  void clear() { flag.store(false, std::memory_order_relaxed); }
  bool is_set() const { return flag.load(std::memory_order_acquire); }
  void wait() const {
    while (!flag.load(std::memory_order_acquire)) flag.wait(false, std::memory_order_acquire);
  }
};

struct StdCondition {
  std::mutex m;
  std::condition_variable cv;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
  void wait() {
    std::unique_lock<std::mutex> lk(m, std::adopt_lock);
    cv.wait(lk);
    lk.release();
  }
  void notify() { cv.notify_one(); }
};

struct StdMutex {
  std::mutex m;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

#if WEFT_BENCH_SCALE
// The second compile of this file (bench/CMakeLists.txt): only the scale sweeps, kept out of
// the suite's object so that their instantiations leave its inlining as it was.
const bool registered = [] {
  bench::register_scaling<StdQueueOf>("std", true);
  return true;
}();
#else
const bool registered = [] {
  bench::register_queue<StdQueue>(
      "std", {.spsc = true, .mpmc = true, .unbounded = true, .pingpong = true, .fanin1 = true});
  bench::register_event<TutorialEvent>("std");
  bench::register_event<AtomicWaitEvent>("atomic_wait");
  bench::register_condition<StdCondition>("std");
  bench::register_lock<StdMutex>("std");
  return true;
}();
#endif

}  // namespace
