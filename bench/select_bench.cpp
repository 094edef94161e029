// SPDX-License-Identifier: MIT
// select workloads.
//
// fanin: 4 producers, each feeding its own queue of capacity 1024; one consumer takes items
// from whichever queue has one.
//   weft_select   weft::select(get(q0), get(q1), get(q2), get(q3)) in a loop
//   std_select    what one writes without select: 4 deques under ONE std::mutex, one
//                 condition_variable for "any queue not empty" and one per queue for "not full"
//   (the registered single-shared-queue contenders, 4 producers -> 1 queue -> 1 consumer,
//   are the baseline: no select needed)
//
// idle_select: "selecting over idle sources costs the producers nothing". The SPSC workload
// through a weft::Queue(1024), while a third thread
//   none          does not exist
//   weft_select   sits in weft::select over 4 OTHER queues that stay empty (parked, registered)
//   polling       polls those 4 queues with try_get() and yields (select without select)
// Reported: the producer->consumer throughput.
//
// select_ready: one thread takes n items from a weft::Queue(n) filled beforehand (CPU time,
// per item; the select target: within 1.5x of a plain get's instructions)
//   get           q.get()
//   select2       weft::select(get(q), get(empty)): one of two sources ready
//   select2_biased  the same with weft::biased (q first)
//   select4       weft::select over q and 3 empty queues
//   select4_all   weft::select over 4 queues that all hold items (n split among them): the
//                 busy fan-in's consumer without its producers, every pick ready
#include <array>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <variant>

#include <weft/weft.hpp>

#include "common.hpp"

namespace {

using bench::Gate;
using bench::Result;
using bench::Tally;

constexpr int kSources = 4;

Result weft_select_fanin(std::uint64_t n) {
  std::array<weft::Queue<std::uint64_t>, kSources> qs{
      weft::Queue<std::uint64_t>(1024), weft::Queue<std::uint64_t>(1024),
      weft::Queue<std::uint64_t>(1024), weft::Queue<std::uint64_t>(1024)};
  Gate gate(kSources + 1);
  Tally tally;
  std::vector<std::thread> threads;
  threads.reserve(kSources);
  for (int p = 0; p < kSources; ++p) {
    threads.emplace_back([&, p] {
      const std::uint64_t count = bench::items_of(n, p, kSources);
      gate.arrive_and_wait();
      std::uint64_t v = static_cast<std::uint64_t>(p) + 1;
      for (std::uint64_t i = 0; i < count; ++i, v += kSources)
        qs[static_cast<std::size_t>(p)].put(std::uint64_t{v});
    });
  }
  threads.emplace_back([&] {
    Tally t;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < n; ++i) {
      auto r = weft::select(weft::get(qs[0]), weft::get(qs[1]), weft::get(qs[2]), weft::get(qs[3]));
      const std::uint64_t v = std::visit([](auto& item) { return *item; }, r);
      t.add(v);
    }
    tally = t;
  });
  gate.open();
  for (auto& t : threads) t.join();
  const double s = gate.close();
  bench::check_items(tally, n, "weft select fan-in");
  return bench::throughput(n, s);
}

class TutorialMultiQueue {
 public:
  void put(int source, std::uint64_t v) {
    std::unique_lock<std::mutex> lk(m_);
    auto& dq = items_[static_cast<std::size_t>(source)];
    not_full_[static_cast<std::size_t>(source)].wait(lk, [&] { return dq.size() < 1024; });
    dq.push_back(v);
    any_.notify_one();
  }
  std::uint64_t get_any() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      for (int k = 0; k < kSources; ++k) {
        const auto i = static_cast<std::size_t>((next_ + k) % kSources);
        if (!items_[i].empty()) {
          const std::uint64_t v = items_[i].front();
          items_[i].pop_front();
          next_ = static_cast<int>(i) + 1;
          not_full_[i].notify_one();
          return v;
        }
      }
      any_.wait(lk);
    }
  }

 private:
  std::mutex m_;
  std::condition_variable any_;
  std::array<std::condition_variable, kSources> not_full_;
  std::array<std::deque<std::uint64_t>, kSources> items_;
  int next_ = 0;
};

Result std_select_fanin(std::uint64_t n) {
  TutorialMultiQueue q;
  Gate gate(kSources + 1);
  Tally tally;
  std::vector<std::thread> threads;
  threads.reserve(kSources);
  for (int p = 0; p < kSources; ++p) {
    threads.emplace_back([&, p] {
      const std::uint64_t count = bench::items_of(n, p, kSources);
      gate.arrive_and_wait();
      std::uint64_t v = static_cast<std::uint64_t>(p) + 1;
      for (std::uint64_t i = 0; i < count; ++i, v += kSources) q.put(p, v);
    });
  }
  threads.emplace_back([&] {
    Tally t;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < n; ++i) t.add(q.get_any());
    tally = t;
  });
  gate.open();
  for (auto& t : threads) t.join();
  const double s = gate.close();
  bench::check_items(tally, n, "hand-written select fan-in");
  return bench::throughput(n, s);
}

enum class Idle { none, weft_select, polling };

Result idle_select(std::uint64_t n, Idle mode) {
  weft::Queue<std::uint64_t> q(1024);
  std::array<weft::Queue<std::uint64_t>, kSources> idle{
      weft::Queue<std::uint64_t>(1024), weft::Queue<std::uint64_t>(1024),
      weft::Queue<std::uint64_t>(1024), weft::Queue<std::uint64_t>(1024)};
  std::atomic<bool> stop{false};
  std::thread bystander;
  if (mode == Idle::weft_select) {
    bystander = std::thread([&] {
      auto r = weft::select(weft::get(idle[0]), weft::get(idle[1]), weft::get(idle[2]),
                            weft::get(idle[3]));
      if (r.index() != 0 || *std::get<0>(r) != 42)
        bench::fail("idle select woke for the wrong item");
    });
    // Let it register and park: it is then a node in each idle queue's waiting list.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } else if (mode == Idle::polling) {
    bystander = std::thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (auto& iq : idle) {
          if (iq.try_get()) bench::fail("idle queue had an item");
        }
        std::this_thread::yield();
      }
    });
  }
  Gate gate(2);
  Tally tally;
  std::thread producer([&] {
    gate.arrive_and_wait();
    for (std::uint64_t v = 1; v <= n; ++v) q.put(std::uint64_t{v});
  });
  std::thread consumer([&] {
    Tally t;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < n; ++i) t.add(q.get());
    tally = t;
  });
  gate.open();
  producer.join();
  consumer.join();
  const double s = gate.close();
  bench::check_items(tally, n, "idle select SPSC");
  if (mode == Idle::weft_select) idle[0].put(42);
  stop.store(true);
  if (bystander.joinable()) bystander.join();
  return bench::throughput(n, s);
}

enum class Ready { get, select2, select2_biased, select4, select4_all };

// One function per mode, so that each loop is compiled on its own (as a caller's would be).
template <Ready kMode>
Result select_ready(std::uint64_t n) {
  weft::Queue<std::uint64_t> q(static_cast<std::ptrdiff_t>(n));
  const auto others = static_cast<std::ptrdiff_t>(kMode == Ready::select4_all ? n : 1024);
  // The queues beside q: empty, except in select4_all.
  std::array<weft::Queue<std::uint64_t>, 3> rest{weft::Queue<std::uint64_t>(others),
                                                 weft::Queue<std::uint64_t>(others),
                                                 weft::Queue<std::uint64_t>(others)};
  if constexpr (kMode == Ready::select4_all) {
    // n / 4 items in each queue: every pick is ready until the first of the four runs dry.
    // The picks are random, so that happens near the end but not at it: for n = 200000,
    // typically a few hundred to about two thousand items before it, under about 1% of the
    // calls.
    std::array<weft::Queue<std::uint64_t>*, 4> all{&q, &rest[0], &rest[1], &rest[2]};
    for (std::uint64_t v = 1; v <= n; ++v) all[v % 4]->put_nowait(std::uint64_t{v});
  } else {
    for (std::uint64_t v = 1; v <= n; ++v) q.put(std::uint64_t{v});
  }
  const auto value = [](auto& r) { return std::visit([](auto& item) { return *item; }, r); };
  Tally t;
  bench::CpuTimer timer;
  timer.start();
  for (std::uint64_t i = 0; i < n; ++i) {
    if constexpr (kMode == Ready::get) {
      t.add(q.get());
    } else if constexpr (kMode == Ready::select2) {
      auto r = weft::select(weft::get(q), weft::get(rest[0]));
      t.add(value(r));
    } else if constexpr (kMode == Ready::select2_biased) {
      auto r = weft::select(weft::biased, weft::get(q), weft::get(rest[0]));
      t.add(value(r));
    } else {  // select4, select4_all
      auto r =
          weft::select(weft::get(q), weft::get(rest[0]), weft::get(rest[1]), weft::get(rest[2]));
      t.add(value(r));
    }
  }
  const double s = timer.stop();
  bench::check_items(t, n, "select_ready");
  return bench::per_op(n, s);
}

const bool registered = [] {
  auto& r = bench::registry();
  r.push_back(
      {"fanin", "weft_select", [](const bench::Params& p) { return weft_select_fanin(p.n); }});
  r.push_back(
      {"fanin", "std_select", [](const bench::Params& p) { return std_select_fanin(p.n); }});
  r.push_back(
      {"idle_select", "none", [](const bench::Params& p) { return idle_select(p.n, Idle::none); }});
  r.push_back({"idle_select", "weft_select",
               [](const bench::Params& p) { return idle_select(p.n, Idle::weft_select); }});
  r.push_back({"idle_select", "polling",
               [](const bench::Params& p) { return idle_select(p.n, Idle::polling); }});
  r.push_back({"select_ready", "get",
               [](const bench::Params& p) { return select_ready<Ready::get>(p.n); }});
  r.push_back({"select_ready", "select2",
               [](const bench::Params& p) { return select_ready<Ready::select2>(p.n); }});
  r.push_back({"select_ready", "select2_biased",
               [](const bench::Params& p) { return select_ready<Ready::select2_biased>(p.n); }});
  r.push_back({"select_ready", "select4",
               [](const bench::Params& p) { return select_ready<Ready::select4>(p.n); }});
  r.push_back({"select_ready", "select4_all",
               [](const bench::Params& p) { return select_ready<Ready::select4_all>(p.n); }});
  return true;
}();

}  // namespace
