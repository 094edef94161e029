// SPDX-License-Identifier: MIT
// moodycamel: BlockingConcurrentQueue (MPMC, unbounded: it allocates blocks as needed and
// has no blocking put; used with producer and consumer tokens, as its author recommends)
// and BlockingReaderWriterCircularBuffer (SPSC only, bounded, blocking on both sides).
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <readerwriterqueue/readerwritercircularbuffer.h>

#include "queue_workloads.hpp"
#if WEFT_BENCH_SCALE
#include "scale_workloads.hpp"
#endif

namespace {

template <class T>
struct McConcurrentOf {
  using Queue = moodycamel::BlockingConcurrentQueue<T>;
  static std::unique_ptr<Queue> make(std::size_t cap) {
    return std::make_unique<Queue>(cap != 0 ? cap : 1024);
  }
  struct Producer {
    explicit Producer(Queue& q) : q_(q), tok_(q) {}
    void push(T v) {
      if (!q_.enqueue(tok_, std::move(v))) bench::fail("moodycamel enqueue: allocation failed");
    }
    void push_many(const T* items, std::size_t n) {
      if (!q_.enqueue_bulk(tok_, items, n))
        bench::fail("moodycamel enqueue_bulk: allocation failed");
    }
    Queue& q_;
    moodycamel::ProducerToken tok_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q), tok_(q) {}
    T pop() {
      T v;
      q_.wait_dequeue(tok_, v);
      return v;
    }
    // wait_dequeue_bulk: try_dequeue_bulk, then the semaphore wait while empty.
    std::size_t pop_many(T* out, std::size_t max) { return q_.wait_dequeue_bulk(tok_, out, max); }
    Queue& q_;
    moodycamel::ConsumerToken tok_;
  };
};
using McConcurrent = McConcurrentOf<std::uint64_t>;

struct McCircular {
  using Queue = moodycamel::BlockingReaderWriterCircularBuffer<std::uint64_t>;
  static std::unique_ptr<Queue> make(std::size_t cap) { return std::make_unique<Queue>(cap); }
  struct Producer {
    explicit Producer(Queue& q) : q_(q) {}
    void push(std::uint64_t v) { q_.wait_enqueue(v); }
    Queue& q_;
  };
  struct Consumer {
    explicit Consumer(Queue& q) : q_(q) {}
    std::uint64_t pop() {
      std::uint64_t v;
      q_.wait_dequeue(v);
      return v;
    }
    Queue& q_;
  };
};

#if WEFT_BENCH_SCALE
// The second compile of this file (bench/CMakeLists.txt): only the scale sweeps, kept out of
// the suite's object so that their instantiations leave its inlining as it was.
const bool registered = [] {
  bench::register_scaling<McConcurrentOf>("mc_bcq", false);
  return true;
}();
#else
const bool registered = [] {
  bench::register_queue<McConcurrent>("mc_bcq", {.spsc = true,
                                                 .mpmc = true,
                                                 .unbounded = true,
                                                 .pingpong = true,
                                                 .fanin1 = true,
                                                 .batch = true,
                                                 .batch_unbounded = true});
  bench::register_queue<McCircular>("mc_rwcb", {.spsc = true, .pingpong = true});
  return true;
}();
#endif

}  // namespace
