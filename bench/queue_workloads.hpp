// SPDX-License-Identifier: MIT
// bench/queue_workloads.hpp: the queue workloads, written once over an adapter per contender.
//
// An adapter A provides
//     using Queue = ...;                            // the contender's queue of uint64_t
//     static std::unique_ptr<Queue> make(std::size_t capacity);   // 0: unbounded
//     struct Producer { explicit Producer(Queue&); void push(std::uint64_t); };
//     struct Consumer { explicit Consumer(Queue&); std::uint64_t pop(); };   // blocking
// Most adapters are instances of a template over the item type (WeftQueueOf<T>, ...) with
// push(T) and T pop(), which scale_workloads.hpp instantiates with larger items.
// (Producer/Consumer exist so that moodycamel's per-thread tokens can be used, which is how
// its author recommends running it.) For the batch workload, Producer also has
// `void push_many(const std::uint64_t* items, std::size_t n)` (all of them, blocking while
// full) and Consumer `std::size_t pop_many(std::uint64_t* out, std::size_t max)` (1..max,
// blocking for the first).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace bench {

// Runs `producers` threads of producer(p, gate) and `consumers` threads of consumer(c, gate);
// each calls gate.arrive_and_wait() when it is ready to start its measured loop. Returns the
// seconds from the gate's opening to the last join.
template <class ProducerFn, class ConsumerFn>
double run_threads(int producers, int consumers, ProducerFn producer, ConsumerFn consumer) {
  Gate gate(producers + consumers);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) threads.emplace_back([&, p] { producer(p, gate); });
  for (int c = 0; c < consumers; ++c) threads.emplace_back([&, c] { consumer(c, gate); });
  gate.open();
  for (auto& t : threads) t.join();
  return gate.close();
}

// How the workloads read and write an item of type T (specialized for other item types in
// scale_workloads.hpp): the value checked on arrival.
template <class T>
struct ItemTraits {
  static std::uint64_t value(std::uint64_t v) { return v; }
  static void set(std::uint64_t& item, std::uint64_t v) { item = v; }
};

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// With Timed, every item whose value is a multiple of kLatencyEvery is timed.
inline constexpr std::uint64_t kLatencyEvery = 64;

// P producers put items 1..n, C consumers get exactly their quota each; the clock runs from
// the gate to the last join. Checks count, sum and sum of squares of what arrived.
// T is the item type (A's); with Timed, the result's `extra` also holds the latency
// percentiles (p50_us, p99_us, ...) of every kLatencyEvery-th item, from just before its put
// to just after the get that returned it. The sampled item's value indexes the two time
// arrays: one producer writes its put time, one consumer its get time, and the joins order
// both before they are read.
template <class A, class T = std::uint64_t, bool Timed = false>
Result run_mpmc(std::uint64_t n, int producers, int consumers, std::size_t capacity) {
  using Traits = ItemTraits<T>;
  auto q = A::make(capacity);
  std::vector<Tally> tallies(static_cast<std::size_t>(consumers));
  std::vector<std::int64_t> put_ns, got_ns;
  if constexpr (Timed) {
    put_ns.resize(n / kLatencyEvery + 1);
    got_ns.resize(n / kLatencyEvery + 1);
  }
  const double s = run_threads(
      producers, consumers,
      [&](int p, Gate& gate) {
        typename A::Producer prod(*q);
        const std::uint64_t count = items_of(n, p, producers);
        T item{};
        gate.arrive_and_wait();
        std::uint64_t v = static_cast<std::uint64_t>(p) + 1;
        for (std::uint64_t i = 0; i < count; ++i, v += static_cast<std::uint64_t>(producers)) {
          Traits::set(item, v);
          if constexpr (Timed) {
            if (v % kLatencyEvery == 0) put_ns[v / kLatencyEvery] = now_ns();
          }
          prod.push(item);
        }
      },
      [&](int c, Gate& gate) {
        typename A::Consumer cons(*q);
        const std::uint64_t quota = quota_of(n, c, consumers);
        Tally t;
        gate.arrive_and_wait();
        for (std::uint64_t i = 0; i < quota; ++i) {
          const std::uint64_t v = Traits::value(cons.pop());
          if constexpr (Timed) {
            if (v % kLatencyEvery == 0) got_ns[v / kLatencyEvery] = now_ns();
          }
          t.add(v);
        }
        tallies[static_cast<std::size_t>(c)] = t;
      });
  Tally total;
  for (auto& t : tallies) total.merge(t);
  check_items(total, n, "queue workload");
  Result r = throughput(n, s);
  if constexpr (Timed) {
    std::vector<std::int64_t> samples;
    for (std::uint64_t k = 1; k <= n / kLatencyEvery; ++k) {
      samples.push_back(got_ns[k] - put_ns[k]);
    }
    if (!samples.empty()) {
      Result lat;
      fill_latency(lat, samples);
      r.extra = lat.extra;
      r.extra["samples"] = static_cast<double>(samples.size());
    }
  }
  return r;
}

// As run_mpmc, in batches: each producer puts its items `batch` at a time, each consumer takes
// up to `batch` at a time (never more than its quota left).
template <class A>
Result run_batch(std::uint64_t n, int producers, int consumers, std::size_t capacity,
                 std::size_t batch) {
  auto q = A::make(capacity);
  std::vector<Tally> tallies(static_cast<std::size_t>(consumers));
  const double s = run_threads(
      producers, consumers,
      [&](int p, Gate& gate) {
        typename A::Producer prod(*q);
        const std::uint64_t count = items_of(n, p, producers);
        std::vector<std::uint64_t> buf(batch);
        gate.arrive_and_wait();
        std::uint64_t v = static_cast<std::uint64_t>(p) + 1;
        for (std::uint64_t i = 0; i < count;) {
          const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(batch, count - i));
          for (std::size_t j = 0; j < k; ++j, v += static_cast<std::uint64_t>(producers)) {
            buf[j] = v;
          }
          prod.push_many(buf.data(), k);
          i += k;
        }
      },
      [&](int c, Gate& gate) {
        typename A::Consumer cons(*q);
        const std::uint64_t quota = quota_of(n, c, consumers);
        std::vector<std::uint64_t> buf(batch);
        Tally t;
        gate.arrive_and_wait();
        for (std::uint64_t i = 0; i < quota;) {
          const auto max = static_cast<std::size_t>(std::min<std::uint64_t>(batch, quota - i));
          const std::size_t k = cons.pop_many(buf.data(), max);
          for (std::size_t j = 0; j < k; ++j) t.add(buf[j]);
          i += k;
        }
        tallies[static_cast<std::size_t>(c)] = t;
      });
  Tally total;
  for (auto& t : tallies) total.merge(t);
  check_items(total, n, "batch workload");
  return throughput(n, s);
}

// Round trip: A puts i into `ping`, B gets it and puts i back into `pong`, A gets it. Each trip
// is timed on A's side; the result is the median round trip with percentiles.
template <class A>
Result run_pingpong(std::uint64_t trips, std::size_t capacity) {
  auto ping = A::make(capacity);
  auto pong = A::make(capacity);
  Gate gate(2);
  std::vector<std::int64_t> samples(trips);
  std::thread echo([&] {
    typename A::Consumer in(*ping);
    typename A::Producer out(*pong);
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < trips; ++i) out.push(in.pop());
  });
  std::thread driver([&] {
    typename A::Producer out(*ping);
    typename A::Consumer in(*pong);
    gate.arrive_and_wait();
    for (std::uint64_t i = 1; i <= trips; ++i) {
      const auto t0 = Clock::now();
      out.push(i);
      const std::uint64_t back = in.pop();
      const auto t1 = Clock::now();
      if (back != i)
        fail("ping-pong: sent " + std::to_string(i) + ", got back " + std::to_string(back));
      samples[i - 1] = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    }
  });
  gate.open();
  echo.join();
  driver.join();
  const double s = gate.close();
  Result r;
  fill_latency(r, samples);
  r.n = trips;
  r.seconds = s;
  return r;
}

// Registers the queue workloads an adapter takes part in.
//   spsc       1 producer, 1 consumer, capacity 1024
//   mpmc       4 producers, 4 consumers, capacity 1024 (8 threads on the 2-core machine)
//   unbounded  2 producers, 2 consumers, unbounded
//   unbounded_spsc, unbounded_mpmc
//              1 producer and 1 consumer, 4 producers and 4 consumers, unbounded
//   pingpong   round trip through two queues of capacity 16
//   fanin1     4 producers, 1 consumer, one shared queue of capacity 1024 (the baseline of
//              the select fan-in workload)
//   batch      1 producer, 1 consumer, capacity 1024, batches of 64 (push_many/pop_many)
//   batch_mpmc 2 producers, 2 consumers, capacity 1024, batches of 64
//   batch_unbounded, batch_unbounded_mpmc
//              the same two, unbounded (capacity 0)
struct QueueWorkloads {
  bool spsc = false, mpmc = false, unbounded = false, pingpong = false, fanin1 = false;
  bool batch = false, batch_unbounded = false;
};

template <class A>
void register_queue(const std::string& contender, QueueWorkloads w) {
  if (w.spsc) {
    registry().push_back(
        {"spsc", contender, [](const Params& p) { return run_mpmc<A>(p.n, 1, 1, 1024); }});
  }
  if (w.mpmc) {
    registry().push_back(
        {"mpmc", contender, [](const Params& p) { return run_mpmc<A>(p.n, 4, 4, 1024); }});
  }
  if (w.unbounded) {
    registry().push_back(
        {"unbounded", contender, [](const Params& p) { return run_mpmc<A>(p.n, 2, 2, 0); }});
    registry().push_back(
        {"unbounded_spsc", contender, [](const Params& p) { return run_mpmc<A>(p.n, 1, 1, 0); }});
    registry().push_back(
        {"unbounded_mpmc", contender, [](const Params& p) { return run_mpmc<A>(p.n, 4, 4, 0); }});
  }
  if (w.pingpong) {
    registry().push_back(
        {"pingpong", contender, [](const Params& p) { return run_pingpong<A>(p.n, 16); }});
  }
  if constexpr (requires(typename A::Producer & prod, typename A::Consumer & cons,
                         std::uint64_t * buf) {
                  prod.push_many(buf, std::size_t{1});
                  cons.pop_many(buf, std::size_t{1});
                }) {
    if (w.batch) {
      registry().push_back(
          {"batch", contender, [](const Params& p) { return run_batch<A>(p.n, 1, 1, 1024, 64); }});
      registry().push_back({"batch_mpmc", contender,
                            [](const Params& p) { return run_batch<A>(p.n, 2, 2, 1024, 64); }});
    }
    if (w.batch_unbounded) {
      registry().push_back({"batch_unbounded", contender,
                            [](const Params& p) { return run_batch<A>(p.n, 1, 1, 0, 64); }});
      registry().push_back({"batch_unbounded_mpmc", contender,
                            [](const Params& p) { return run_batch<A>(p.n, 2, 2, 0, 64); }});
    }
  }
  if (w.fanin1) {
    registry().push_back(
        {"fanin", contender, [](const Params& p) { return run_mpmc<A>(p.n, 4, 1, 1024); }});
  }
}

}  // namespace bench
