// SPDX-License-Identifier: MIT
// bench/sync_workloads.hpp: Event, Condition and Lock workloads, written once over adapters.
//
// Event adapter E:      void set(); void clear(); bool is_set(); void wait();
// Condition adapter C:  void lock(); void unlock(); void wait(); void notify();
//                       (wait/notify with the lock held, as a Python Condition)
// Lock adapter L:       void lock(); void unlock();
#pragma once

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace bench {

// Event round trip: the driver sets `ping` and waits for `pong`; the echo thread waits for
// `ping`, clears it and sets `pong`. Each event is set by one thread and cleared by the other
// after its wait, so no set is lost.
template <class E>
Result run_event_rt(std::uint64_t trips) {
  E ping, pong;
  Gate gate(2);
  std::vector<std::int64_t> samples(trips);
  std::thread echo([&] {
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < trips; ++i) {
      ping.wait();
      ping.clear();
      pong.set();
    }
  });
  std::thread driver([&] {
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < trips; ++i) {
      const auto t0 = Clock::now();
      ping.set();
      pong.wait();
      pong.clear();
      samples[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    }
  });
  gate.open();
  echo.join();
  driver.join();
  const double s = gate.close();
  check(!ping.is_set() && !pong.is_set(), "event round trip: events left set");
  Result r;
  fill_latency(r, samples);
  r.n = trips;
  r.seconds = s;
  return r;
}

// Single-thread costs with nobody waiting.
template <class E>
Result run_event_is_set(std::uint64_t n) {
  E e;
  e.set();
  CpuTimer timer;
  timer.start();
  std::uint64_t seen = 0;
  for (std::uint64_t i = 0; i < n; ++i) seen += e.is_set() ? 1 : 0;
  const double s = timer.stop();
  check(seen == n, "event is_set");
  return per_op(n, s);
}

template <class E>
Result run_event_wait_set(std::uint64_t n) {
  E e;
  e.set();
  CpuTimer timer;
  timer.start();
  for (std::uint64_t i = 0; i < n; ++i) e.wait();
  return per_op(n, timer.stop());
}

template <class E>
Result run_event_set_clear(std::uint64_t n) {
  E e;
  CpuTimer timer;
  timer.start();
  for (std::uint64_t i = 0; i < n; ++i) {
    e.set();
    e.clear();
  }
  const double s = timer.stop();
  check(!e.is_set(), "event set+clear");
  return per_op(n, s);
}

// Condition notify with nobody waiting, the lock held (as Python requires).
template <class C>
Result run_cond_notify_idle(std::uint64_t n) {
  C c;
  c.lock();
  CpuTimer timer;
  timer.start();
  for (std::uint64_t i = 0; i < n; ++i) c.notify();
  const double s = timer.stop();
  c.unlock();
  return per_op(n, s);
}

// Condition round trip (notify with a waiter): a turn variable under the condition's lock;
// the driver hands the turn to the echo thread and waits for it back.
template <class C>
Result run_cond_rt(std::uint64_t trips) {
  C c;
  int turn = 0;  // 0: driver's, 1: echo's; guarded by c's lock
  Gate gate(2);
  std::vector<std::int64_t> samples(trips);
  std::thread echo([&] {
    gate.arrive_and_wait();
    c.lock();
    for (std::uint64_t i = 0; i < trips; ++i) {
      while (turn != 1) c.wait();
      turn = 0;
      c.notify();
    }
    c.unlock();
  });
  std::thread driver([&] {
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < trips; ++i) {
      const auto t0 = Clock::now();
      c.lock();
      turn = 1;
      c.notify();
      while (turn != 0) c.wait();
      c.unlock();
      samples[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
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

// Uncontended acquire + release.
template <class L>
Result run_lock(std::uint64_t n) {
  L l;
  std::uint64_t guarded = 0;
  CpuTimer timer;
  timer.start();
  for (std::uint64_t i = 0; i < n; ++i) {
    l.lock();
    ++guarded;
    keep(guarded);
    l.unlock();
  }
  const double s = timer.stop();
  check(guarded == n, "lock");
  return per_op(n, s);
}

template <class E>
void register_event(const std::string& contender, bool round_trip = true, bool micro = true) {
  if (round_trip)
    registry().push_back(
        {"event_rt", contender, [](const Params& p) { return run_event_rt<E>(p.n); }});
  if (micro) {
    registry().push_back(
        {"event_is_set", contender, [](const Params& p) { return run_event_is_set<E>(p.n); }});
    registry().push_back(
        {"event_wait_set", contender, [](const Params& p) { return run_event_wait_set<E>(p.n); }});
    registry().push_back({"event_set_clear", contender,
                          [](const Params& p) { return run_event_set_clear<E>(p.n); }});
  }
}

template <class C>
void register_condition(const std::string& contender) {
  registry().push_back({"cond_notify_idle", contender,
                        [](const Params& p) { return run_cond_notify_idle<C>(p.n); }});
  registry().push_back({"cond_rt", contender, [](const Params& p) { return run_cond_rt<C>(p.n); }});
}

template <class L>
void register_lock(const std::string& contender) {
  registry().push_back({"lock", contender, [](const Params& p) { return run_lock<L>(p.n); }});
}

}  // namespace bench
