// SPDX-License-Identifier: MIT
// weft itself: Queue (ring when bounded, segment list when unbounded), SimpleQueue, Event,
// Condition over a Lock, Lock, RLock.
#include <weft/weft.hpp>

#include "queue_workloads.hpp"
#if WEFT_BENCH_SCALE
#include "scale_workloads.hpp"
#endif
#include "sync_workloads.hpp"

namespace {

template <class Q>
struct WeftQueueAdapter {
  using Queue = Q;
  using T = typename Q::value_type;
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(T v) { q_.put(std::move(v)); }  // put(T&&)
    void push_many(const std::uint64_t* items, std::size_t n) { q_.put_many(items, items + n); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    T pop() { return q_.get(); }
    std::size_t pop_many(std::uint64_t* out, std::size_t max) { return q_.get_many(out, max); }
    Queue& q_;
  };
};

template <class T>
struct WeftQueueOf : WeftQueueAdapter<weft::Queue<T>> {
  using Queue = weft::Queue<T>;
  static std::unique_ptr<Queue> make(std::size_t cap) {
    return std::make_unique<Queue>(static_cast<std::ptrdiff_t>(cap));
  }
};
using WeftQueue = WeftQueueOf<std::uint64_t>;

// weft::Queue with capacity 0: unbounded (for the memory rows).
template <class T>
struct WeftUnboundedOf : WeftQueueOf<T> {
  static std::unique_ptr<weft::Queue<T>> make(std::size_t) {
    return std::make_unique<weft::Queue<T>>();
  }
};

template <class T>
struct WeftSimpleQueueOf : WeftQueueAdapter<weft::SimpleQueue<T>> {
  using Queue = weft::SimpleQueue<T>;
  static std::unique_ptr<Queue> make(std::size_t) { return std::make_unique<Queue>(); }
};
using WeftSimpleQueue = WeftSimpleQueueOf<std::uint64_t>;

struct WeftEvent {
  weft::Event e;
  void set() { e.set(); }
  void clear() { e.clear(); }
  bool is_set() const { return e.is_set(); }
  void wait() { e.wait(); }
};

struct WeftCondition {
  weft::Lock l;
  weft::Condition c{l};
  void lock() { l.acquire(); }
  void unlock() { l.release(); }
  void wait() { c.wait(); }
  void notify() { c.notify(); }
};

// Python's default: a Condition that owns an RLock.
struct WeftConditionRLock {
  weft::Condition c;
  void lock() { c.acquire(); }
  void unlock() { c.release(); }
  void wait() { c.wait(); }
  void notify() { c.notify(); }
};

struct WeftLock {
  weft::Lock l;
  void lock() { l.acquire(); }
  void unlock() { l.release(); }
};

struct WeftRLock {
  weft::RLock l;
  void lock() { l.acquire(); }
  void unlock() { l.release(); }
};

#if WEFT_BENCH_SCALE
// The second compile of this file (bench/CMakeLists.txt): only the scale sweeps, kept out of
// the suite's object so that their instantiations leave its inlining as it was.
const bool registered = [] {
  bench::register_scaling<WeftQueueOf>("weft", true);
  bench::register_scaling<WeftUnboundedOf>("weft_unbounded", false);
  bench::register_scaling<WeftSimpleQueueOf>("weft_simple", false, false);
  return true;
}();
#else
const bool registered = [] {
  bench::register_queue<WeftQueue>("weft", {.spsc = true,
                                            .mpmc = true,
                                            .unbounded = true,
                                            .pingpong = true,
                                            .fanin1 = true,
                                            .batch = true,
                                            .batch_unbounded = true});
  bench::register_queue<WeftSimpleQueue>("weft_simple", {.unbounded = true});
  bench::register_event<WeftEvent>("weft");
  bench::register_condition<WeftCondition>("weft");
  bench::register_condition<WeftConditionRLock>("weft_rlock");
  bench::register_lock<WeftLock>("weft");
  bench::register_lock<WeftRLock>("weft_rlock");
  return true;
}();
#endif

}  // namespace
