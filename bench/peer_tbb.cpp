// SPDX-License-Identifier: MIT
// oneTBB's tbb::concurrent_bounded_queue (blocking push when full, blocking pop when empty;
// unbounded unless set_capacity is called).
#include <tbb/concurrent_queue.h>

#include "queue_workloads.hpp"

namespace {

struct Tbb {
  using Queue = tbb::concurrent_bounded_queue<std::uint64_t>;
  static std::unique_ptr<Queue> make(std::size_t cap) {
    auto q = std::make_unique<Queue>();
    if (cap != 0) q->set_capacity(static_cast<std::ptrdiff_t>(cap));
    return q;
  }
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(std::uint64_t v) { q_.push(v); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    std::uint64_t pop() {
      std::uint64_t v;
      q_.pop(v);
      return v;
    }
    Queue& q_;
  };
};

const bool registered = [] {
  bench::register_queue<Tbb>(
      "tbb", {.spsc = true, .mpmc = true, .unbounded = true, .pingpong = true, .fanin1 = true});
  return true;
}();

}  // namespace
