// SPDX-License-Identifier: MIT
// Boost.Thread's sync_bounded_queue (bounded, a ring under a boost::mutex with two condition
// variables) and sync_queue (unbounded, a deque under a mutex). BOOST_THREAD_VERSION=4 comes
// from CMake.
#include <boost/thread/concurrent_queues/sync_bounded_queue.hpp>
#include <boost/thread/concurrent_queues/sync_queue.hpp>

#include "queue_workloads.hpp"
#if WEFT_BENCH_SCALE
#include "scale_workloads.hpp"
#endif

namespace {

template <class Q>
struct BoostAdapter {
  using Queue = Q;
  using T = typename Q::value_type;
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(T v) { q_.push(std::move(v)); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    T pop() {
      T v;
      q_.pull(v);
      return v;
    }
    Queue& q_;
  };
};

template <class T>
struct BoostBoundedOf : BoostAdapter<boost::concurrent::sync_bounded_queue<T>> {
  using Queue = boost::concurrent::sync_bounded_queue<T>;
  static std::unique_ptr<Queue> make(std::size_t cap) { return std::make_unique<Queue>(cap); }
};
using BoostBounded = BoostBoundedOf<std::uint64_t>;

struct BoostUnbounded : BoostAdapter<boost::concurrent::sync_queue<std::uint64_t>> {
  static std::unique_ptr<Queue> make(std::size_t) { return std::make_unique<Queue>(); }
};

#if WEFT_BENCH_SCALE
// The second compile of this file (bench/CMakeLists.txt): only the scale sweeps, kept out of
// the suite's object so that their instantiations leave its inlining as it was.
const bool registered = [] {
  bench::register_scaling<BoostBoundedOf>("boost", true);
  return true;
}();
#else
const bool registered = [] {
  bench::register_queue<BoostBounded>(
      "boost", {.spsc = true, .mpmc = true, .pingpong = true, .fanin1 = true});
  bench::register_queue<BoostUnbounded>("boost", {.unbounded = true});
  return true;
}();
#endif

}  // namespace
