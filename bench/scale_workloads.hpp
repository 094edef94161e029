// SPDX-License-Identifier: MIT
// bench/scale_workloads.hpp: how a queue's cost grows (bench/scale.py drives these).
//
// Three sweeps over the same P-producer / C-consumer workload as run_mpmc, each varying one
// thing and holding the rest at "2 producers, 2 consumers, 8-byte items, capacity 1024":
//
//   scale_threads_K    K producers and K consumers, K = 1, 2, 4, 8, 16 (2K threads on the
//                      machine's cores)
//   scale_bytes_B      items of B bytes, B = 8, 64, 512, 4096 (a uint64_t, or that value
//                      followed by B - 8 bytes of payload, copied in and out)
//   scale_capacity_C   capacity C = 1, 16, 256, 4096, 65536, 1048576 (bounded contenders only)
//
// Each trial reports throughput (items/s) and the latency of every 64th item: from just
// before its put() to just after the get() that returned it. Producers never wait for
// anything but the queue, so a bounded queue runs full and this is mostly queueing delay
// (about occupancy / throughput); an unbounded queue whose producers outrun its consumers
// grows for the whole trial, and its latency grows with the trial's length.
//
//   scale_memory       heap and resident memory of an empty queue, per slot of capacity, per
//                      queued item, and per thread blocked in get() (see run_memory)
//
// The adapter is a template A<T> over the item type, as in queue_workloads.hpp.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <malloc.h>
#include <memory>
#include <pthread.h>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "queue_workloads.hpp"

namespace bench {

// An item of `Bytes` bytes: the checked value, then payload.
template <std::size_t Bytes>
struct Item {
  static_assert(Bytes > sizeof(std::uint64_t));
  std::uint64_t value = 0;
  std::array<unsigned char, Bytes - sizeof(std::uint64_t)> payload{};
};

template <std::size_t Bytes>
struct ItemTraits<Item<Bytes>> {
  static std::uint64_t value(const Item<Bytes>& item) { return item.value; }
  static void set(Item<Bytes>& item, std::uint64_t v) { item.value = v; }
};

// run_mpmc over items of type T, timed.
template <template <class> class A, class T>
Result run_scale(std::uint64_t n, int producers, int consumers, std::size_t capacity) {
  return run_mpmc<A<T>, T, true>(n, producers, consumers, capacity);
}

// ---- memory ---------------------------------------------------------------------------------

// Bytes malloc has handed out and not taken back, in every arena (mallinfo2: uordblks) and in
// its own mmaps (hblkhd). Allocators that bypass malloc are not seen here; resident memory is.
inline double heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
}

// Resident set size, from /proc/self/statm (pages).
inline double rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// The scheduler state of thread `tid` of this process ('S' while asleep in the kernel).
inline char thread_state(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}

// K threads on stacks this benchmark owns: each stack is filled with a pattern (so it is
// resident before anything is measured) and scanned after the join for the deepest byte the
// thread wrote. `body` runs on each thread; `blocked()` returns once all K sleep in the kernel.
class BlockedThreads {
 public:
  static constexpr std::size_t kStack = 128 * 1024;
  static constexpr unsigned char kPattern = 0xA5;

  template <class Body>
  BlockedThreads(int k, Body body) : body_(std::move(body)), tids_(static_cast<std::size_t>(k)) {
    const std::size_t bytes = kStack * tids_.size();
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap of the thread stacks");
    stacks_ = static_cast<unsigned char*>(m);
    std::memset(stacks_, kPattern, bytes);
    for (std::size_t i = 0; i < tids_.size(); ++i) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstack(&attr, stacks_ + i * kStack, kStack);
      pthread_t t;
      if (pthread_create(&t, &attr, &BlockedThreads::start, this) != 0) fail("pthread_create");
      pthread_attr_destroy(&attr);
      threads_.push_back(t);
    }
  }
  BlockedThreads(const BlockedThreads&) = delete;
  BlockedThreads& operator=(const BlockedThreads&) = delete;
  ~BlockedThreads() { munmap(stacks_, kStack * tids_.size()); }

  // Waits (up to 10 s) until every thread has started and sleeps in the kernel.
  void wait_blocked() {
    const auto until = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      bool all = started_.load() == static_cast<int>(tids_.size());
      for (std::size_t i = 0; all && i < tids_.size(); ++i) all = thread_state(tids_[i]) == 'S';
      if (all) return;
      if (Clock::now() > until) fail("memory: threads did not block within 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Joins every thread; returns the deepest stack use in bytes (the glibc thread descriptor
  // and static TLS at the top of each stack included).
  double join() {
    for (pthread_t t : threads_) pthread_join(t, nullptr);
    std::size_t deepest = 0;
    for (std::size_t i = 0; i < tids_.size(); ++i) {
      const unsigned char* base = stacks_ + i * kStack;
      std::size_t low = 0;
      while (low < kStack && base[low] == kPattern) ++low;
      deepest = std::max(deepest, kStack - low);
    }
    return static_cast<double>(deepest);
  }

 private:
  static void* start(void* self_ptr) {
    auto* self = static_cast<BlockedThreads*>(self_ptr);
    const int i = self->next_.fetch_add(1);
    self->tids_[static_cast<std::size_t>(i)] = gettid();
    self->started_.fetch_add(1);
    self->body_();
    return nullptr;
  }

  std::function<void()> body_;
  std::vector<pid_t> tids_;
  std::vector<pthread_t> threads_;
  unsigned char* stacks_ = nullptr;
  std::atomic<int> next_{0}, started_{0};
};

// Memory of a queue of 8-byte items (bytes; heap as malloc counts it, resident from the
// kernel):
//   empty_heap        an empty queue of capacity 1024 (an unbounded one: just constructed)
//   slot_heap         per slot of capacity: (empty at 65536 - empty at 1024) / 64512
//   item_heap, item_rss   per queued item: a queue of capacity 65536 filled with 65536 items,
//                     minus the same queue empty
//   blocked_heap, blocked_rss   per thread blocked in get(), beyond a thread blocked in a bare
//                     futex wait (std::atomic::wait), 128 threads of each, every one of which
//                     has made one small allocation first
//   blocked_stack, futex_stack  deepest stack use of such a thread, and of the bare one
// The primary value is item_heap.
template <template <class> class A>
Result run_memory() {
  using Ad = A<std::uint64_t>;
  Result r;
  r.unit = "bytes";
  {
    const double h0 = heap_bytes();
    auto q = Ad::make(1024);
    r.extra["empty_heap"] = heap_bytes() - h0;
  }
  constexpr std::uint64_t kItems = 65536;
  {
    const double h1024 = heap_bytes();
    auto small = Ad::make(1024);
    const double h0 = heap_bytes();
    auto q = Ad::make(kItems);
    const double h1 = heap_bytes();
    r.extra["slot_heap"] = ((h1 - h0) - (h0 - h1024)) / static_cast<double>(kItems - 1024);
    const double rss1 = rss_bytes();
    {
      typename Ad::Producer prod(*q);
      for (std::uint64_t v = 1; v <= kItems; ++v) prod.push(v);
    }
    r.extra["item_heap"] = (heap_bytes() - h1) / static_cast<double>(kItems);
    r.extra["item_rss"] = (rss_bytes() - rss1) / static_cast<double>(kItems);
    typename Ad::Consumer cons(*q);
    Tally t;
    for (std::uint64_t i = 0; i < kItems; ++i) t.add(cons.pop());
    check_items(t, kItems, "memory: filled queue");
  }
  constexpr int kThreads = 128;
  // The baseline: threads blocked in a bare futex wait, after one small allocation each (a
  // real thread has used malloc, which gives it a tcache and perhaps an arena). Run twice and
  // measured the second time, so that what the first run leaves (arenas, glibc's per-thread
  // state, this code's own) is there for the baseline and the queue's threads alike.
  std::atomic<std::uint32_t> word{0};
  double base_heap = 0, base_rss = 0, futex_stack = 0;
  for (int run = 0; run < 2; ++run) {
    word.store(0);
    const double h0 = heap_bytes(), rss0 = rss_bytes();
    BlockedThreads bare(kThreads, [&] {
      auto used_malloc = std::make_unique<std::uint64_t>(1);
      keep(*used_malloc);
      while (word.load() == 0) word.wait(0);
    });
    bare.wait_blocked();
    base_heap = heap_bytes() - h0;
    base_rss = rss_bytes() - rss0;
    word.store(1);
    word.notify_all();
    futex_stack = bare.join();
  }
  {
    auto q = Ad::make(1024);
    Tally t;
    std::atomic<std::uint64_t> sum{0};
    const double h0 = heap_bytes(), rss0 = rss_bytes();
    BlockedThreads getters(kThreads, [&] {
      auto used_malloc = std::make_unique<std::uint64_t>(1);
      keep(*used_malloc);
      typename Ad::Consumer cons(*q);
      sum.fetch_add(cons.pop());
    });
    getters.wait_blocked();
    const double heap = heap_bytes() - h0, rss = rss_bytes() - rss0;
    {
      typename Ad::Producer prod(*q);
      for (std::uint64_t v = 1; v <= kThreads; ++v) prod.push(v);
    }
    r.extra["blocked_stack"] = getters.join();
    check(sum.load() == kThreads * (kThreads + 1) / 2, "memory: blocked getters");
    r.extra["blocked_heap"] = (heap - base_heap) / kThreads;
    r.extra["blocked_rss"] = (rss - base_rss) / kThreads;
    r.extra["futex_stack"] = futex_stack;
  }
  r.value = r.extra["item_heap"];
  r.n = kItems;
  return r;
}

// Registers the memory row and, with `sweeps`, the sweeps for contender `name`; `bounded`:
// whether capacity means anything to it (the capacity sweep is registered only then).
template <template <class> class A>
void register_scaling(const std::string& name, bool bounded, bool sweeps = true) {
  using u64 = std::uint64_t;
  registry().push_back({"scale_memory", name, [](const Params&) { return run_memory<A>(); }});
  if (!sweeps) return;
  for (int k : {1, 2, 4, 8, 16}) {
    registry().push_back({"scale_threads_" + std::to_string(k), name,
                          [k](const Params& p) { return run_scale<A, u64>(p.n, k, k, 1024); }});
  }
  const auto bytes = [&](int b, BenchFn fn) {
    registry().push_back({"scale_bytes_" + std::to_string(b), name, std::move(fn)});
  };
  bytes(8, [](const Params& p) { return run_scale<A, u64>(p.n, 2, 2, 1024); });
  bytes(64, [](const Params& p) { return run_scale<A, Item<64>>(p.n, 2, 2, 1024); });
  bytes(512, [](const Params& p) { return run_scale<A, Item<512>>(p.n, 2, 2, 1024); });
  bytes(4096, [](const Params& p) { return run_scale<A, Item<4096>>(p.n, 2, 2, 1024); });
  if (bounded) {
    for (std::size_t c : {1UL, 16UL, 256UL, 4096UL, 65536UL, 1048576UL}) {
      registry().push_back({"scale_capacity_" + std::to_string(c), name,
                            [c](const Params& p) { return run_scale<A, u64>(p.n, 2, 2, c); }});
    }
  }
}

}  // namespace bench
