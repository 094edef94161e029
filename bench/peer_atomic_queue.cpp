// SPDX-License-Identifier: MIT
// atomic_queue (Maxim Egorushkin): a bounded lock-free ring whose blocking push/pop SPIN
// (busy-wait with a pause instruction) instead of sleeping. On a machine with fewer cores
// than threads, a spinning thread burns the time slice that the thread it waits for needs.
// SPSC uses its SPSC specialisation; 0 is its empty marker (items start at 1).
#include <atomic_queue/atomic_queue.h>

#include "queue_workloads.hpp"

namespace {

template <unsigned Size, bool Spsc>
struct AtomicQ {
  using Queue =
      atomic_queue::AtomicQueue<std::uint64_t, Size, std::uint64_t{0}, true, true, false, Spsc>;
  static std::unique_ptr<Queue> make(std::size_t cap) {
    if (cap != Size) bench::fail("atomic_queue adapter built for another capacity");
    return std::make_unique<Queue>();
  }
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(std::uint64_t v) { q_.push(v); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    std::uint64_t pop() { return q_.pop(); }
    Queue& q_;
  };
};

const bool registered = [] {
  bench::register_queue<AtomicQ<1024, true>>("atomicq", {.spsc = true});
  bench::register_queue<AtomicQ<1024, false>>("atomicq", {.mpmc = true, .fanin1 = true});
  bench::register_queue<AtomicQ<16, true>>("atomicq", {.pingpong = true});
  return true;
}();

}  // namespace
