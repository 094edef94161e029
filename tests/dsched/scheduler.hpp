// SPDX-License-Identifier: MIT
// tests/dsched/scheduler.hpp: a deterministic schedule explorer for weft.
//
// A *run* executes one scenario (N real std::threads) one thread at a time: a baton says
// which thread may execute; every weft::detail::Atomic operation, every futex call and every
// dsched:: call below is a *schedule point* where the scheduler may pass the baton to another
// thread. Which thread runs is chosen by a strategy from a seed, so a run is a pure function
// of (scenario, strategy, seed) and can be replayed.
//
// The model the scheduler keeps of the world:
//  - futex: futex_wait blocks the thread in the scheduler (value check done atomically with
//    the decision to block); futex_wake_one/all make waiters on the same word runnable. A
//    timed wait may be timed out (the scheduler advances virtual time to its deadline), and
//    spurious wake-ups are injected within a per-run budget.
//  - time: weft's clock (Deadline::now_ns(), through weft_dsched_now_ns() of
//    weft_dsched_hooks.hpp) is virtual in managed threads; it advances only when the
//    scheduler times a waiter out, or ticks the clock (an injected event), never on its own.
//    An unbiased select draws its order from the run's seeded generator (weft_dsched_random).
//  - spins: a thread whose last `kSpinReads` operations read memory that nobody changed is
//    *spinning*; per spin episode the strategy lets it either run its spin out alone (burst)
//    or yield, in which case it is not scheduled again until some thread writes (unless no
//    other thread can run). A spin that never ends is reported as a livelock by the step limit.
//  - deadlock: every unfinished thread blocked, with no timed waiter: a failure.
//
// Scenario code uses the helpers below from its threads, and `check()` for its assertions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "weft_dsched_atomic.hpp"

namespace dsched {

// ---- for scenario threads ---------------------------------------------------------------

// A plain schedule point (e.g. inside a critical section, so that other threads may try to
// enter it).
void yield() noexcept;
// Blocks (in the scheduler) until pred() is true. pred runs with the scheduler's lock held
// and every other thread stopped: it may read scenario state and the helpers below.
void await(std::function<bool()> pred) noexcept;
// Sleeps in virtual time.
void sleep_for_ns(std::int64_t ns) noexcept;
// std::stop_source::request_stop() under the scheduler: weft's stop_callback runs on this
// thread, and a waiter returning from park meanwhile blocks in ~stop_callback until it is
// done; the scheduler must know (see scheduler.cpp, "external blocking").
bool request_stop(std::stop_source& source) noexcept;

// Scheduler view of thread `i` (valid inside await predicates and scenario threads).
bool thread_blocked(int i) noexcept;  // in futex_wait (or a virtual sleep)
bool thread_finished(int i) noexcept;
bool thread_spinning(int i) noexcept;  // re-reading memory nobody changes
// Blocked, spinning or finished: "waiting" in the user's sense for a registered waiter.
bool thread_waiting(int i) noexcept;
// Every thread other than the caller is blocked or finished.
bool quiescent() noexcept;
std::int64_t now_ns() noexcept;  // virtual time
int self_id() noexcept;

// Lifetime (design.md I3): after a scenario destroys a primitive, any operation of any
// thread on its memory (an Atomic, a futex call) fails the run as a use of a destroyed
// object. destroy() also marks everything the destructor frees (a ring's slots live on the
// heap): the explorer binary replaces the global operator new/delete for that.
void mark_destroyed(const void* p, std::size_t n) noexcept;
class TrackFrees {  // frees by this thread while alive are marked destroyed
 public:
  TrackFrees() noexcept;
  ~TrackFrees();
  TrackFrees(const TrackFrees&) = delete;
  TrackFrees& operator=(const TrackFrees&) = delete;
};
template <class T>
void destroy(std::unique_ptr<T>& p) {
  const void* a = p.get();
  {
    TrackFrees t;
    p.reset();
  }
  mark_destroyed(a, sizeof(T));
}

// Records a failure (with the schedule) and stops the run. In a scenario thread it does not
// return; in check() it returns and the run is reported failed.
void fail(const std::string& what) noexcept;
inline void check(bool ok, const std::string& what) noexcept {
  if (!ok) fail(what);
}

// ---- scenarios ----------------------------------------------------------------------------

class Instance {
 public:
  virtual ~Instance() = default;
  virtual void thread(int i) = 0;
  // After every thread finished, on the controller thread (no schedule points there).
  virtual void check() {}
};

struct Scenario {
  std::string name;
  std::string what;
  int threads;
  std::function<std::unique_ptr<Instance>()> make;
  int runs = 2000;         // default budget, split over the default strategies
  double event_rate = -1;  // >= 0: this scenario's clock-tick/spurious-wake rate
};

std::vector<Scenario>& scenarios();
struct Register {
  explicit Register(Scenario s) { scenarios().push_back(std::move(s)); }
};

// ---- exploration --------------------------------------------------------------------------

struct Options {
  std::string strategy = "random";  // random | pct:D[:L] | pb:K[:L]
  std::uint64_t seed = 1;
  int runs = 0;  // 0: the scenario's budget
  bool trace = false;
  bool verbose = false;
  std::uint64_t step_limit = 200000;
  int spurious_budget = 2;
  double event_rate = 1.0 / 48;   // chance per schedule point of a clock tick or spurious wake
  bool event_rate_given = false;  // --event-rate overrides the scenario's own rate
  std::string argv0 = "weft_dsched";
};

struct Figures {
  std::uint64_t schedules = 0;
  std::uint64_t distinct = 0;
  std::uint64_t max_preemptions = 0;
  std::uint64_t max_steps = 0;
  std::uint64_t total_steps = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t spurious = 0;
  std::uint64_t external_blocks = 0;
  std::uint64_t failures = 0;
  double seconds = 0;
};

// Explores `s` under one strategy; prints each failure with its seed and replay command.
// Stops at the first failure.
// hashes_out, if given, receives each schedule's hash (for the determinism check).
Figures explore(const Scenario& s, const Options& o,
                std::vector<std::uint64_t>* hashes_out = nullptr);

}  // namespace dsched
