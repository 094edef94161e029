// SPDX-License-Identifier: MIT
// bench/common.hpp: what every benchmark of weft_bench shares.
//
// A benchmark is one (workload, contender) pair, registered at static-initialization time by
// the translation unit of its contender and run once per process by main.cpp:
//
//     weft_bench run <workload> <contender> --n <N>
//
// prints one JSON line (the primary metric, its unit, and extras such as latency
// percentiles). Rounds, interleaving, medians, callgrind and plots are the runner's business
// (bench/run.py); a process per trial keeps trials independent (fresh heap, fresh threads)
// and lets the runner put exactly one trial under valgrind.
//
// Every queue workload checks what arrived (count, sum and sum of squares of the item
// values) and fails loudly -- message on stderr, exit status 2 -- when anything was lost or
// duplicated.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <time.h>
#include <utility>
#include <valgrind/callgrind.h>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "weft_bench: CHECK FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::exit(2);
}

inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// What a benchmark reports. `value` is the primary metric in `unit`:
//   "Mitems/s"  throughput, higher is better
//   "ns/op"     cost of one operation, lower is better
//   "us"        median latency, lower is better (p99 etc. in `extra`)
struct Result {
  std::string unit;
  double value = 0;
  std::uint64_t n = 0;  // items, operations or round trips measured
  double seconds = 0;   // wall time of the measured region
  std::map<std::string, double> extra;
  std::vector<double> quantiles_us;  // latency workloads: q0, value0, q1, value1, ... (us)
};

struct Params {
  std::uint64_t n = 0;
};

using BenchFn = std::function<Result(const Params&)>;

struct Entry {
  std::string workload;
  std::string contender;
  BenchFn fn;
};

inline std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}

struct Register {
  Register(std::string workload, std::string contender, BenchFn fn) {
    registry().push_back({std::move(workload), std::move(contender), std::move(fn)});
  }
};

// ---- the measured region ------------------------------------------------------------------
// Threads are created first and wait at the gate; the clock (and, under callgrind, the
// instruction count) runs from open() to close(), after every worker has been joined.
class Gate {
 public:
  explicit Gate(int workers) : workers_(workers) {}

  // Called by each worker before its measured loop.
  void arrive_and_wait() {
    ready_.fetch_add(1, std::memory_order_acq_rel);
    go_.wait(false, std::memory_order_acquire);
  }

  // Called by the coordinator: waits until every worker is at the gate, then opens it.
  void open() {
    while (ready_.load(std::memory_order_acquire) != workers_) std::this_thread::yield();
    CALLGRIND_START_INSTRUMENTATION;
    t0_ = Clock::now();
    go_.store(true, std::memory_order_release);
    go_.notify_all();
  }

  // Called by the coordinator after joining every worker. Returns the seconds measured.
  double close() {
    const auto t1 = Clock::now();
    CALLGRIND_STOP_INSTRUMENTATION;
    return seconds_between(t0_, t1);
  }

 private:
  const int workers_;
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
  Clock::time_point t0_;
};

// Single-thread microbenchmarks are timed on the thread's CPU clock
// (CLOCK_THREAD_CPUTIME_ID), not on the wall clock: on a shared 2-core machine a preemption
// in the middle of a 20 ms loop would otherwise count as time spent in the operation.
class CpuTimer {
 public:
  void start() {
    CALLGRIND_START_INSTRUMENTATION;
    t0_ = now();
  }
  double stop() {
    const double t1 = now();
    CALLGRIND_STOP_INSTRUMENTATION;
    return t1 - t0_;
  }

 private:
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  double t0_ = 0;
};

// A single-thread microbenchmark's result: nanoseconds per operation.
inline Result per_op(std::uint64_t n, double seconds) {
  Result r;
  r.unit = "ns/op";
  r.n = n;
  r.seconds = seconds;
  r.value = seconds * 1e9 / static_cast<double>(n);
  return r;
}

// ---- item checks ----------------------------------------------------------------------------
// Items are the values 1..n (never 0: atomic_queue reserves 0 as its empty marker), split
// among producers; consumers accumulate count, sum and sum of squares (mod 2^64).
struct Tally {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t sumsq = 0;
  void add(std::uint64_t v) {
    ++count;
    sum += v;
    sumsq += v * v;
  }
  void merge(const Tally& o) {
    count += o.count;
    sum += o.sum;
    sumsq += o.sumsq;
  }
};

inline void check_items(const Tally& t, std::uint64_t n, const char* what) {
  const unsigned __int128 N = n;
  const auto sum = static_cast<std::uint64_t>(N * (N + 1) / 2);
  const auto sumsq = static_cast<std::uint64_t>(N * (N + 1) * (2 * N + 1) / 6);
  if (t.count != n || t.sum != sum || t.sumsq != sumsq) {
    fail(std::string(what) + ": expected " + std::to_string(n) + " items (sum " +
         std::to_string(sum) + "), got " + std::to_string(t.count) + " (sum " +
         std::to_string(t.sum) + ", sum of squares " + (t.sumsq == sumsq ? "ok" : "WRONG") + ")");
  }
}

// Items of producer p (of P) when n items are split among P producers: p+1, p+1+P, ...
inline std::uint64_t items_of(std::uint64_t n, int p, int P) {
  const auto up = static_cast<std::uint64_t>(p);
  const auto uP = static_cast<std::uint64_t>(P);
  return up < n ? (n - up - 1) / uP + 1 : 0;
}

// Quota of consumer c (of C): the n pops split as evenly as possible. Consumers pop exactly
// their quota, so no sentinel is needed (moodycamel's queue is FIFO per producer only, so a
// sentinel could overtake real items).
inline std::uint64_t quota_of(std::uint64_t n, int c, int C) {
  const auto uc = static_cast<std::uint64_t>(c);
  const auto uC = static_cast<std::uint64_t>(C);
  return n / uC + (uc < n % uC ? 1 : 0);
}

// ---- latency ---------------------------------------------------------------------------------
// The quantiles reported for the latency plots: every 1 % up to 90 %, then finer into the tail.
inline std::vector<double> latency_quantiles() {
  std::vector<double> qs;
  for (int i = 0; i < 90; ++i) qs.push_back(i / 100.0);
  for (int i = 900; i < 990; i += 5) qs.push_back(i / 1000.0);
  for (int i = 9900; i < 9990; i += 10) qs.push_back(i / 10000.0);
  for (double q : {0.999, 0.9995, 0.9999, 1.0}) qs.push_back(q);
  return qs;
}

inline void fill_latency(Result& r, std::vector<std::int64_t>& samples_ns) {
  std::sort(samples_ns.begin(), samples_ns.end());
  const auto at = [&](double q) {
    const double pos = q * static_cast<double>(samples_ns.size() - 1);
    return static_cast<double>(samples_ns[static_cast<std::size_t>(pos + 0.5)]) / 1000.0;
  };
  r.unit = "us";
  r.value = at(0.5);
  r.extra["p50_us"] = at(0.5);
  r.extra["p90_us"] = at(0.90);
  r.extra["p99_us"] = at(0.99);
  r.extra["p999_us"] = at(0.999);
  r.extra["min_us"] = at(0.0);
  r.extra["max_us"] = at(1.0);
  r.quantiles_us.clear();
  for (double q : latency_quantiles()) {
    r.quantiles_us.push_back(q);
    r.quantiles_us.push_back(at(q));
  }
}

inline Result throughput(std::uint64_t items, double seconds) {
  Result r;
  r.unit = "Mitems/s";
  r.n = items;
  r.seconds = seconds;
  r.value = static_cast<double>(items) / seconds / 1e6;
  return r;
}

// Keeps a value alive for the optimizer (single-threaded microbenchmarks).
template <class T>
inline void keep(T const& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

}  // namespace bench
