// SPDX-License-Identifier: MIT
// CPU burned by a thread blocked for one second (getrusage(RUSAGE_THREAD), user + system),
// in weft's Queue::get (ring and locked storage), get with a timeout, Event::wait,
// Semaphore::acquire and select; a std::condition_variable wait for comparison. All waiters
// block at once; after one second the main thread releases them (the timed ones time out).
// A primitive that spins while it waits shows here as CPU time close to the wall time.
#include <condition_variable>
#include <mutex>
#include <sys/resource.h>

#include <weft/weft.hpp>

#include "common.hpp"

namespace {

double thread_cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

bench::Result blocked_cpu(std::uint64_t) {
  using namespace std::chrono_literals;
  weft::Queue<std::uint64_t> ring(1024);
  weft::Queue<std::uint64_t> unbounded;
  weft::Event event;
  weft::Semaphore sem(0);
  weft::Queue<std::uint64_t> sel_a(16), sel_b(16), sel_c(16);
  std::mutex m;
  std::condition_variable cv;
  bool flag = false;

  struct Probe {
    std::string name;
    std::function<void()> block;
    double cpu_us = 0;
    double wall_ms = 0;
  };
  std::vector<Probe> probes;
  probes.push_back(
      {"std::this_thread::sleep_for(1s) (reference)", [] { std::this_thread::sleep_for(1s); }});
  probes.push_back({"weft Queue(1024).get()", [&] { bench::check(ring.get() == 1, "ring get"); }});
  probes.push_back(
      {"weft Queue().get()", [&] { bench::check(unbounded.get() == 1, "deque get"); }});
  probes.push_back({"weft Queue.get(1s) (times out)", [&] {
                      try {
                        (void)sel_b.get(1s);
                        bench::fail("get(1s) returned an item");
                      } catch (const weft::Empty&) {
                      }
                    }});
  probes.push_back({"weft Event.wait()", [&] { event.wait(); }});
  probes.push_back({"weft Event.wait(1s) (times out)", [&] {
                      weft::Event never;
                      bench::check(!never.wait(1s), "wait(1s) on an unset event");
                    }});
  probes.push_back({"weft Semaphore.acquire()", [&] { sem.acquire(); }});
  probes.push_back({"weft select(get, get)", [&] {
                      auto r = weft::select(weft::get(sel_a), weft::get(sel_c));
                      (void)r;
                    }});
  probes.push_back({"std::condition_variable.wait()", [&] {
                      std::unique_lock<std::mutex> lk(m);
                      cv.wait(lk, [&] { return flag; });
                    }});

  std::vector<std::thread> threads;
  threads.reserve(probes.size());
  std::atomic<int> started{0};
  for (auto& pr : probes) {
    threads.emplace_back([&pr, &started, &sel_b] {
      // Warm-up, not measured: the thread's Parker (first use allocates it), the futex path,
      // and the unwinder (the first exception a thread throws loads its tables).
      weft::Event warm;
      (void)warm.wait(1ms);
      try {
        (void)sel_b.get_nowait();
      } catch (const weft::Empty&) {
      }
      const double c0 = thread_cpu_us();
      const auto t0 = bench::Clock::now();
      started.fetch_add(1);
      pr.block();
      pr.wall_ms = bench::seconds_between(t0, bench::Clock::now()) * 1e3;
      pr.cpu_us = thread_cpu_us() - c0;
    });
  }
  while (started.load() != static_cast<int>(probes.size())) std::this_thread::yield();
  std::this_thread::sleep_for(1s);
  ring.put(1);
  unbounded.put(1);
  event.set();
  sem.release();
  sel_a.put(1);
  {
    std::lock_guard<std::mutex> g(m);
    flag = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();

  bench::Result r;
  r.unit = "us cpu";
  double worst = 0;
  for (auto& pr : probes) {
    r.extra[pr.name + " | cpu_us"] = pr.cpu_us;
    r.extra[pr.name + " | wall_ms"] = pr.wall_ms;
    if (pr.name.rfind("weft", 0) == 0 && pr.cpu_us > worst) worst = pr.cpu_us;
  }
  r.value = worst;
  r.n = probes.size();
  r.seconds = 1;
  return r;
}

const bool registered = [] {
  bench::registry().push_back(
      {"blocked_cpu", "weft", [](const bench::Params& p) { return blocked_cpu(p.n); }});
  return true;
}();

}  // namespace
