// SPDX-License-Identifier: MIT
// oneTBB's tbb::concurrent_bounded_queue (blocking push when full, blocking pop when empty;
// unbounded unless set_capacity is called).
#include <tbb/concurrent_queue.h>

#include "queue_workloads.hpp"
#if WEFT_BENCH_SCALE
#include "scale_workloads.hpp"
#endif

namespace {

template <class T>
struct TbbOf {
  using Queue = tbb::concurrent_bounded_queue<T>;
  static std::unique_ptr<Queue> make(std::size_t cap) {
    auto q = std::make_unique<Queue>();
    if (cap != 0) q->set_capacity(static_cast<std::ptrdiff_t>(cap));
    return q;
  }
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(T v) { q_.push(std::move(v)); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    T pop() {
      T v;
      q_.pop(v);
      return v;
    }
    Queue& q_;
  };
};
using Tbb = TbbOf<std::uint64_t>;

#if WEFT_BENCH_SCALE
// The second compile of this file (bench/CMakeLists.txt): only the scale sweeps, kept out of
// the suite's object so that their instantiations leave its inlining as it was.
const bool registered = [] {
  bench::register_scaling<TbbOf>("tbb", true);
  return true;
}();
#else
const bool registered = [] {
  bench::register_queue<Tbb>(
      "tbb", {.spsc = true, .mpmc = true, .unbounded = true, .pingpong = true, .fanin1 = true});
  return true;
}();
#endif

}  // namespace
