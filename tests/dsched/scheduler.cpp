// SPDX-License-Identifier: MIT
// tests/dsched/scheduler.cpp: the baton, the futex/time model, the strategies, and the
// weft::detail hooks (futex_*, atomic_fence) of the explorer build. See scheduler.hpp.
#include "scheduler.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <malloc.h>
#include <mutex>
#include <new>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigaction, not std::signal
#include <sstream>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX clock_gettime
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "weft/detail/futex.hpp"
#include "weft/detail/parker.hpp"
#include "weft_dsched_hooks.hpp"

namespace dsched {

namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
// Virtual time starts well after 0 (Deadline::poll() is 0: "long past").
constexpr std::int64_t kStartTime = 1'000'000'000'000;
// Consecutive reads of unchanged memory after which a thread counts as spinning. weft's
// longest non-spinning read-only sequence is a ring pop's head/stamp/tail (3 loads).
constexpr int kSpinReads = 6;
// A spin allowed to run alone ("burst") yields after this many steps.
constexpr std::uint64_t kBurstCap = 400;
constexpr std::size_t kTraceTail = 120;

enum class St : std::uint8_t {
  start,             // created, waiting for its first turn
  ready,             // at a schedule point, may be chosen
  running,           // holds the baton
  futex,             // in futex_wait (or a virtual sleep when faddr is null)
  await,             // in dsched::await
  external,          // blocked outside the scheduler (a stop_callback's destructor)
  external_arrived,  // came back from there; ready again at the end of the stop request
  finished,
};

const char* st_name(St s) {
  switch (s) {
    case St::start:
      return "start";
    case St::ready:
      return "ready";
    case St::running:
      return "running";
    case St::futex:
      return "futex";
    case St::await:
      return "await";
    case St::external:
      return "external";
    case St::external_arrived:
      return "external_arrived";
    case St::finished:
      return "finished";
  }
  return "?";
}

const char* op_name(Op op) {
  switch (op) {
    case Op::load:
      return "load";
    case Op::store:
      return "store";
    case Op::exchange:
      return "exchange";
    case Op::cas_weak:
      return "cas_weak";
    case Op::cas_strong:
      return "cas_strong";
    case Op::fetch_add:
      return "fetch_add";
    case Op::fetch_sub:
      return "fetch_sub";
    case Op::fetch_or:
      return "fetch_or";
    case Op::fetch_and:
      return "fetch_and";
    case Op::fence:
      return "fence";
    case Op::futex_wait:
      return "futex_wait";
    case Op::futex_wake_one:
      return "futex_wake_one";
    case Op::futex_wake_all:
      return "futex_wake_all";
    case Op::yield:
      return "yield";
    case Op::start:
      return "start";
    case Op::finish:
      return "finish";
    case Op::await:
      return "await";
    case Op::sleep:
      return "sleep";
    case Op::stop_request:
      return "request_stop";
  }
  return "?";
}

// splitmix64: tiny, good enough, and fully determined by the seed.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  bool coin() { return (next() >> 63) != 0; }

 private:
  std::uint64_t s_;
};

struct Rec {
  std::uint64_t step;
  int thread;
  char kind;  // 'o' op, 'b' blocks, 'w' woken, 't' timed out, 's' spurious, 'k' clock tick,
              // 'x' blocked outside the scheduler, 'c' choice
  Op op;
  int addr;
  std::uint64_t before;
  std::uint64_t after;
};

class Run;
class Strategy;

thread_local Run* tls_run = nullptr;

// Destroyed memory of the current run (see dsched::destroy).
std::mutex g_dead_m;
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> g_dead;
std::atomic<std::size_t> g_dead_n{0};
// Blocks freed by a destroy(): kept (not freed) until the run ends, so that a late access
// finds them still marked instead of reused by another allocation.
std::vector<void*> g_quarantine;
thread_local int tls_track_frees = 0;
// Set while this thread holds g_dead_m: an allocation then (the list growing) must not
// take it again.
thread_local bool tls_in_dead_list = false;

// NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a scope guard
struct DeadListGuard {
  std::lock_guard<std::mutex> g{g_dead_m};
  DeadListGuard() { tls_in_dead_list = true; }
  ~DeadListGuard() { tls_in_dead_list = false; }
};

bool is_dead(const void* a) {
  if (a == nullptr || g_dead_n.load(std::memory_order_relaxed) == 0) return false;
  const auto x = reinterpret_cast<std::uintptr_t>(a);
  DeadListGuard g;
  for (auto& [lo, hi] : g_dead) {
    if (x >= lo && x < hi) return true;
  }
  return false;
}

// Memory handed out again is alive again.
void revive(const void* p, std::size_t n) {
  const auto lo = reinterpret_cast<std::uintptr_t>(p);
  const auto hi = lo + n;
  DeadListGuard g;
  std::erase_if(g_dead, [&](auto& r) { return r.first < hi && lo < r.second; });
  g_dead_n.store(g_dead.size(), std::memory_order_relaxed);
}

void clear_dead() {
  DeadListGuard g;
  for (void* p : g_quarantine) std::free(p);
  g_quarantine.clear();
  g_dead.clear();
  g_dead_n.store(0, std::memory_order_relaxed);
}
Run* g_checking = nullptr;  // the run whose check() is executing on the controller
int g_pred_self = -1;       // the awaiting thread while its predicate is evaluated

}  // namespace

struct ThreadCtl {
  int id = 0;
  std::thread th;
  pid_t tid = 0;
  St st = St::start;
  std::condition_variable cv;
  // futex_wait / sleep
  const void* faddr = nullptr;
  std::int64_t deadline = kNever;
  bool fresult = true;
  // await
  std::function<bool()> pred;
  // spin detection
  std::uint64_t read_epoch = std::numeric_limits<std::uint64_t>::max();
  int idle = 0;
  bool spin_decided = false;
  bool burst = false;
  std::uint64_t burst_start = 0;
  std::uint64_t yield_epoch = std::numeric_limits<std::uint64_t>::max();
  // strategies
  long priority = 0;
  // pending operation (reports)
  Op op = Op::start;
  const void* addr = nullptr;
  bool exit_allowed = false;
};

thread_local ThreadCtl* tls_self = nullptr;

namespace {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  virtual void begin(Run&) {}
  // Chooses among `eligible` (non-empty). cur: the thread at the schedule point if it may
  // continue, else -1; from: the thread that held the baton (-1 at the start).
  virtual int pick(Run& r, int cur, int from, const std::vector<int>& eligible) = 0;
  virtual bool burst(Rng& rng) { return rng.coin(); }
};

class Run {
 public:
  Run(const Scenario& s, const Options& o, Strategy& strat, std::uint64_t seed)
      : scenario(s), opts(o), strat(strat), seed(seed), rng(seed) {}

  // ---- state (guarded by m) ----
  const Scenario& scenario;
  const Options& opts;
  Strategy& strat;
  std::uint64_t seed;
  Rng rng;
  std::mutex m;
  std::condition_variable ctl_cv;
  std::vector<std::unique_ptr<ThreadCtl>> th;
  int running = -1;
  int started = 0;
  bool done = false;
  bool failed = false;
  std::string failure;
  std::uint64_t steps = 0;
  std::uint64_t epoch = 0;
  std::atomic<std::int64_t> vnow{kStartTime};
  int regions = 0;
  int spurious_left = 0;
  std::uint64_t hash = 1469598103934665603ull;
  std::uint64_t preemptions = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t spurious = 0;
  std::uint64_t external_blocks = 0;
  std::vector<Rec> trace;  // ring of the last kTraceTail records, or everything with --trace
  std::size_t trace_pos = 0;
  std::unordered_map<const void*, int> addr_ids;
  std::string schedule_tail;

  int addr_id(const void* a) {
    if (a == nullptr) return -1;
    auto [it, inserted] = addr_ids.emplace(a, static_cast<int>(addr_ids.size()));
    return it->second;
  }

  void record(int thread, char kind, Op op, const void* addr, std::uint64_t b, std::uint64_t a) {
    Rec rec{steps, thread, kind, op, addr_id(addr), b, a};
    if (opts.trace || trace.size() < kTraceTail) {
      trace.push_back(rec);
    } else {
      trace[trace_pos] = rec;
      trace_pos = (trace_pos + 1) % kTraceTail;
    }
  }

  void note_choice(std::uint64_t c) { hash = (hash ^ (c + 1)) * 1099511628211ull; }

  bool deprioritized(const ThreadCtl& t) const { return t.yield_epoch == epoch; }

  // Threads whose wait ended without anyone running: timed-out futex waiters and sleepers,
  // awaits whose predicate holds.
  void promote() {
    const std::int64_t now = vnow.load(std::memory_order_relaxed);
    for (auto& t : th) {
      if (t->st == St::futex && t->deadline <= now) {
        t->st = St::ready;
        t->fresult = false;
        if (t->faddr) {
          ++timeouts;
          record(t->id, 't', Op::futex_wait, t->faddr, 0, 0);
        }
        note_choice(1000 + static_cast<std::uint64_t>(t->id));
      } else if (t->st == St::await) {
        g_pred_self = t->id;
        const bool ok = t->pred();
        g_pred_self = -1;
        if (ok) {
          t->st = St::ready;
          t->pred = nullptr;
        }
      }
    }
  }

  void inject_event() {
    std::vector<int> waiters;
    for (auto& t : th) {
      if (t->st == St::futex && t->faddr) waiters.push_back(t->id);
    }
    if (!waiters.empty() && spurious_left > 0 && rng.coin()) {
      --spurious_left;
      ++spurious;
      ThreadCtl& w = *th[waiters[rng.below(waiters.size())]];
      w.st = St::ready;
      w.fresult = true;
      record(w.id, 's', Op::futex_wait, w.faddr, 0, 0);
      note_choice(2000 + static_cast<std::uint64_t>(w.id));
      return;
    }
    // A clock tick of up to 2 ms: timed waits expire at arbitrary points, not only when
    // nothing else can run.
    const auto dt = static_cast<std::int64_t>(rng.below(2'000'001));
    vnow.fetch_add(dt, std::memory_order_relaxed);
    record(-1, 'k', Op::sleep, nullptr, 0, static_cast<std::uint64_t>(dt));
    note_choice(3000);
  }

  // Chooses who runs next; -1 when the run is over (finished or failed).
  int decide(int cur, int from) {
    ++steps;
    if (steps > opts.step_limit) {
      fail_locked("step limit (" + std::to_string(opts.step_limit) +
                  ") exceeded: livelock, or an unbounded spin");
      return -1;
    }
    if (cur >= 0) {
      ThreadCtl& t = *th[cur];
      if (t.idle >= kSpinReads) {
        if (!t.spin_decided) {
          t.spin_decided = true;
          t.burst = strat.burst(rng);
          t.burst_start = steps;
        }
        if (t.burst && steps - t.burst_start < kBurstCap) return cur;
        t.yield_epoch = epoch;
      } else {
        t.spin_decided = false;
      }
    }
    std::vector<int> ready;
    std::vector<int> eligible;
    for (;;) {
      promote();
      ready.clear();
      for (auto& t : th) {
        if (t->st == St::ready) ready.push_back(t->id);
      }
      if (!ready.empty() && opts.event_rate > 0 && rng.chance(opts.event_rate)) {
        inject_event();
        promote();
        ready.clear();
        for (auto& t : th) {
          if (t->st == St::ready) ready.push_back(t->id);
        }
      }
      if (!ready.empty()) break;
      // Nothing can run: time passes to the next deadline, if there is one.
      std::int64_t next = kNever;
      bool all_finished = true;
      bool any_external = false;
      for (auto& t : th) {
        if (t->st == St::futex) next = std::min(next, t->deadline);
        if (t->st != St::finished) all_finished = false;
        if (t->st == St::external || t->st == St::external_arrived) any_external = true;
      }
      if (next != kNever) {
        vnow.store(std::max(next, vnow.load(std::memory_order_relaxed)), std::memory_order_relaxed);
        continue;
      }
      if (all_finished) return -1;
      fail_locked(any_external ? "harness: only threads blocked outside the scheduler remain"
                               : "deadlock: every thread is blocked and none has a deadline");
      return -1;
    }
    eligible.clear();
    for (int id : ready) {
      if (!deprioritized(*th[id])) eligible.push_back(id);
    }
    if (eligible.empty()) eligible = ready;
    const int c = strat.pick(*this, cur, from, eligible);
    if (cur >= 0 && c != cur && !deprioritized(*th[cur])) ++preemptions;
    if (c != from) note_choice(static_cast<std::uint64_t>(c));
    return c;
  }

  // Runs decide() and passes the baton. m held.
  void schedule(int cur, int from) {
    const int next = decide(cur, from);
    if (next < 0) {
      running = -1;
      if (!failed) done = true;
      ctl_cv.notify_all();
      return;
    }
    running = next;
    th[next]->st = St::running;
    if (next != from) th[next]->cv.notify_one();
  }

  void wait_baton(std::unique_lock<std::mutex>& lk, ThreadCtl& t) const {
    while (running != t.id) t.cv.wait(lk);
  }

  void fail_locked(const std::string& what) {
    if (failed) return;
    failed = true;
    std::ostringstream os;
    os << what << "\n    threads:";
    for (auto& t : th) {
      os << "\n      T" << t->id << " " << st_name(t->st) << " at " << op_name(t->op);
      if (t->addr) os << " a" << addr_id(t->addr);
      if (t->st == St::futex) {
        os << (t->faddr ? " (futex wait" : " (sleep");
        if (t->deadline != kNever) {
          os << ", deadline +" << (t->deadline - kStartTime) / 1000 << "us";
        } else {
          os << ", no deadline";
        }
        os << ")";
      }
    }
    os << "\n    virtual time +" << (vnow.load() - kStartTime) / 1000 << "us, step " << steps;
    failure = os.str();
    running = -1;
    ctl_cv.notify_all();
  }

  std::string format_trace() const {
    std::ostringstream os;
    const std::size_t n = trace.size();
    const std::size_t start = (opts.trace || n < kTraceTail) ? 0 : trace_pos;
    for (std::size_t k = 0; k < n; ++k) {
      const Rec& r = trace[(start + k) % n];
      os << "    #" << r.step << " ";
      if (r.thread >= 0) {
        os << "T" << r.thread << " ";
      } else {
        os << "-- ";
      }
      switch (r.kind) {
        case 'o':
          os << op_name(r.op);
          if (r.addr >= 0) os << " a" << r.addr;
          if (r.op != Op::fence && r.op != Op::yield) {
            os << " " << r.before;
            if (r.before != r.after) os << " -> " << r.after;
          }
          break;
        case 'b':
          os << "blocks in futex_wait a" << r.addr << " (value " << r.before << ")";
          break;
        case 'n':
          os << "futex_wait a" << r.addr << ": value changed, returns";
          break;
        case 'w':
          os << "wakes T" << r.before << " (a" << r.addr << ")";
          break;
        case 't':
          os << "futex_wait a" << r.addr << " times out";
          break;
        case 's':
          os << "spurious wake-up (a" << r.addr << ")";
          break;
        case 'k':
          os << "clock +" << r.after / 1000 << "us";
          break;
        case 'x':
          os << "blocked outside the scheduler (stop_callback)";
          break;
        case 'a':
          os << op_name(r.op);
          break;
        default:
          os << r.kind;
          break;
      }
      os << "\n";
    }
    return os.str();
  }

  // ---- the run ----
  void execute(Instance* inst) {
    spurious_left = opts.spurious_budget;
    const int n = scenario.threads;
    for (int i = 0; i < n; ++i) {
      auto t = std::make_unique<ThreadCtl>();
      t->id = i;
      th.push_back(std::move(t));
    }
    strat.begin(*this);
    for (int i = 0; i < n; ++i) {
      th[i]->th = std::thread([this, i, inst] { thread_main(i, inst); });
    }
    std::unique_lock<std::mutex> lk(m);
    while (started < n) ctl_cv.wait(lk);
    schedule(-1, -1);
    control(lk);
  }

  void thread_main(int i, Instance* inst) {
    ThreadCtl& self = *th[i];
    tls_self = &self;
    tls_run = this;
    {
      std::unique_lock<std::mutex> lk(m);
      self.tid = static_cast<pid_t>(::syscall(SYS_gettid));
      self.st = St::ready;
      ++started;
      ctl_cv.notify_all();
      wait_baton(lk, self);
    }
    // Taken with the baton, so which pooled Parker each thread gets is deterministic; and
    // reset outside the scheduler (no schedule point), so that the word a pooled Parker
    // kept from an earlier run cannot change this run's schedule.
    tls_self = nullptr;
    weft::detail::Parker::current().prepare();
    tls_self = &self;
    inst->thread(i);
    // A schedule point first: a thread coming back from a block outside the scheduler must
    // not decide for the others before it holds the baton again.
    (void)point(nullptr, Op::finish);
    std::unique_lock<std::mutex> lk(m);
    self.op = Op::finish;
    self.st = St::finished;
    record(i, 'a', Op::finish, nullptr, 0, 0);
    schedule(-1, i);
    while (!self.exit_allowed) self.cv.wait(lk);
    tls_self = nullptr;
    tls_run = nullptr;
  }

  static bool os_sleeping(pid_t tid) {
    std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return false;
    const auto p = line.rfind(')');
    if (p == std::string::npos || p + 2 >= line.size()) return false;
    const char state = line[p + 2];
    return state == 'S' || state == 'D';
  }

  // The controller: waits for the run to end; detects a thread blocked outside the
  // scheduler while a stop request runs callbacks; a watchdog for harness stalls.
  void control(std::unique_lock<std::mutex>& lk) {
    using namespace std::chrono_literals;
    std::uint64_t last_steps = steps;
    auto last_progress = std::chrono::steady_clock::now();
    int stalls = 0;
    while (!done && !failed) {
      ctl_cv.wait_for(lk, regions > 0 ? 1ms : 500ms);
      if (done || failed) break;
      const auto now = std::chrono::steady_clock::now();
      if (steps != last_steps) {
        last_steps = steps;
        last_progress = now;
        stalls = 0;
        continue;
      }
      if (regions > 0 && running >= 0 && th[running]->st == St::running &&
          os_sleeping(th[running]->tid)) {
        if (++stalls >= 2) {
          // ~stop_callback waits for the callback that the requesting thread is running: a
          // block outside the scheduler. Run the others; the thread rejoins at its next
          // schedule point, and is ready again once the stop request has returned.
          const int t = running;
          th[t]->st = St::external;
          ++external_blocks;
          record(t, 'x', Op::stop_request, nullptr, 0, 0);
          note_choice(4000 + static_cast<std::uint64_t>(t));
          schedule(-1, t);
          stalls = 0;
        }
        continue;
      }
      if (now - last_progress > 20s) {
        fail_locked("harness: T" + std::to_string(running) +
                    " reached no schedule point for 20 s (blocked outside the scheduler?)");
        break;
      }
    }
  }

  // After the run: lets the threads exit one at a time (their thread_local Parkers go back
  // to the pool in a fixed order) and joins them. Only when nobody is stuck.
  void finish_threads() {
    for (auto& t : th) {
      {
        std::lock_guard<std::mutex> g(m);
        t->exit_allowed = true;
        t->cv.notify_one();
      }
      t->th.join();
    }
  }
};

// ---- strategies ----

class RandomStrategy final : public Strategy {
 public:
  std::string name() const override { return "random"; }
  int pick(Run& r, int, int, const std::vector<int>& eligible) override {
    return eligible[r.rng.below(eligible.size())];
  }
};

// PCT (Burckhardt et al., "A Randomized Scheduler with Probabilistic Guarantees of Finding
// Bugs", ASPLOS 2010): random distinct thread priorities, d-1 priority change points at random
// steps in [1, L]; the highest-priority runnable thread runs.
class PctStrategy final : public Strategy {
 public:
  PctStrategy(int depth, std::uint64_t length) : d_(depth), l_(length) {}
  std::string name() const override {
    return "pct:" + std::to_string(d_) + ":" + std::to_string(l_);
  }
  void begin(Run& r) override {
    const int n = static_cast<int>(r.th.size());
    std::vector<long> prio(n);
    for (int i = 0; i < n; ++i) prio[i] = d_ + i;
    for (int i = n - 1; i > 0; --i) std::swap(prio[i], prio[r.rng.below(i + 1)]);
    for (int i = 0; i < n; ++i) r.th[i]->priority = prio[i];
    change_.clear();
    for (int i = 1; i < d_; ++i) change_.push_back(1 + r.rng.below(l_));
    std::sort(change_.begin(), change_.end());
    next_ = 0;
  }
  int pick(Run& r, int, int from, const std::vector<int>& eligible) override {
    while (next_ < change_.size() && r.steps >= change_[next_]) {
      if (from >= 0) r.th[from]->priority = static_cast<long>(d_ - 1 - next_);
      ++next_;
    }
    int best = eligible[0];
    for (int id : eligible) {
      if (r.th[id]->priority > r.th[best]->priority) best = id;
    }
    return best;
  }

 private:
  int d_;
  std::uint64_t l_;
  std::vector<std::uint64_t> change_;
  std::size_t next_ = 0;
};

// Preemption bounding, randomized: a thread runs until it blocks, finishes or yields a spin,
// except for at most k preemptions placed at random (probability k/L per schedule point).
class PreemptionBoundStrategy final : public Strategy {
 public:
  PreemptionBoundStrategy(int k, std::uint64_t length) : k_(k), l_(length) {}
  std::string name() const override {
    return "pb:" + std::to_string(k_) + ":" + std::to_string(l_);
  }
  void begin(Run&) override { left_ = k_; }
  int pick(Run& r, int cur, int, const std::vector<int>& eligible) override {
    const bool cur_ok =
        cur >= 0 && std::find(eligible.begin(), eligible.end(), cur) != eligible.end();
    if (cur_ok) {
      if (left_ > 0 && eligible.size() > 1 &&
          r.rng.chance(static_cast<double>(k_) / static_cast<double>(l_))) {
        --left_;
        int c;
        do {
          c = eligible[r.rng.below(eligible.size())];
        } while (c == cur);
        return c;
      }
      return cur;
    }
    return eligible[r.rng.below(eligible.size())];
  }

 private:
  int k_;
  std::uint64_t l_;
  int left_ = 0;
};

struct StrategySpec {
  std::string kind;
  int param = 0;
  std::uint64_t length = 0;  // 0: estimate from the runs so far
};

StrategySpec parse_strategy(const std::string& s) {
  StrategySpec spec;
  std::vector<std::string> parts;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  if (parts.empty()) throw std::invalid_argument("empty strategy");
  spec.kind = parts[0];
  if (spec.kind == "random") {
    if (parts.size() != 1) throw std::invalid_argument("random takes no parameters");
  } else if (spec.kind == "pct" || spec.kind == "pb") {
    if (parts.size() < 2 || parts.size() > 3) {
      throw std::invalid_argument(spec.kind + " needs :D or :D:L");
    }
    spec.param = std::stoi(parts[1]);
    if (parts.size() == 3) spec.length = std::stoull(parts[2]);
    if (spec.param < (spec.kind == "pct" ? 1 : 0)) throw std::invalid_argument("bad depth");
  } else {
    throw std::invalid_argument("unknown strategy '" + s + "' (random, pct:D[:L], pb:K[:L])");
  }
  return spec;
}

std::unique_ptr<Strategy> make_strategy(const StrategySpec& spec, std::uint64_t length) {
  if (spec.kind == "pct") return std::make_unique<PctStrategy>(spec.param, length);
  if (spec.kind == "pb") return std::make_unique<PreemptionBoundStrategy>(spec.param, length);
  return std::make_unique<RandomStrategy>();
}

std::atomic<int> g_leaked_threads{0};

// What is running, for the crash handler: a seeded bug may corrupt memory (a node used after
// its frame died) and crash instead of failing a check; the seed must still be printed.
char g_crash_note[1024] = "";

extern "C" void on_crash(int sig) {
  const char head[] = "\nCRASH (signal ";
  char num[8];
  int n = 0;
  for (int v = sig; v > 0 && n < 7; v /= 10) num[n++] = static_cast<char>('0' + v % 10);
  (void)!::write(2, head, sizeof head - 1);
  while (n > 0) (void)!::write(2, &num[--n], 1);
  (void)!::write(2, ") during ", 9);
  (void)!::write(2, g_crash_note, std::strlen(g_crash_note));
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_crash_handler() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, on_crash);
}

}  // namespace

// ---- hooks called from Atomic<T> ----

void fail_dead(ThreadCtl* self, const void* addr, Op op);

ThreadCtl* point(const void* addr, Op op) noexcept {
  ThreadCtl* self = tls_self;
  if (self == nullptr) return nullptr;
  if (is_dead(addr)) fail_dead(self, addr, op);
  Run& r = *tls_run;
  std::unique_lock<std::mutex> lk(r.m);
  self->op = op;
  self->addr = addr;
  if (self->st == St::external) {
    // Back from a block outside the scheduler; the baton is elsewhere.
    self->st = St::external_arrived;
    r.ctl_cv.notify_all();
    r.wait_baton(lk, *self);
    return self;
  }
  self->st = St::ready;
  r.schedule(self->id, self->id);
  r.wait_baton(lk, *self);
  return self;
}

void done(ThreadCtl* self, const void* addr, Op op, bool changed, std::uint64_t before,
          std::uint64_t after) noexcept {
  Run& r = *tls_run;
  std::lock_guard<std::mutex> g(r.m);
  if (changed) {
    ++r.epoch;
    self->idle = 0;
  } else if (self->read_epoch == r.epoch) {
    ++self->idle;
  } else {
    self->idle = 1;
  }
  self->read_epoch = r.epoch;
  r.record(self->id, 'o', op, addr, before, after);
}

bool spurious_cas_failure(ThreadCtl*) noexcept {
  Run& r = *tls_run;
  std::lock_guard<std::mutex> g(r.m);
  return r.rng.below(32) == 0;
}

// ---- lifetime ----

void mark_destroyed(const void* p, std::size_t n) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(p);
  DeadListGuard g;
  g_dead.emplace_back(lo, lo + n);
  g_dead_n.store(g_dead.size(), std::memory_order_relaxed);
}

TrackFrees::TrackFrees() noexcept {
  ++tls_track_frees;
}
TrackFrees::~TrackFrees() {
  --tls_track_frees;
}

void fail_dead(ThreadCtl* self, const void* addr, Op op) {
  Run& r = *tls_run;
  std::unique_lock<std::mutex> lk(r.m);
  r.fail_locked("T" + std::to_string(self->id) + ": " + op_name(op) + " on a" +
                std::to_string(r.addr_id(addr)) +
                ", memory of a destroyed primitive (use after destroy: design.md I3)");
  r.wait_baton(lk, *self);
  std::abort();
}

// ---- scenario helpers ----

void yield() noexcept {
  if (ThreadCtl* t = point(nullptr, Op::yield)) done(t, nullptr, Op::yield, false, 0, 0);
}

void await(std::function<bool()> pred) noexcept {
  ThreadCtl* self = point(nullptr, Op::await);
  if (self == nullptr) {
    std::fprintf(stderr, "dsched::await outside a run\n");
    std::abort();
  }
  Run& r = *tls_run;
  std::unique_lock<std::mutex> lk(r.m);
  g_pred_self = self->id;
  const bool ok = pred();
  g_pred_self = -1;
  if (ok) return;
  self->st = St::await;
  self->pred = std::move(pred);
  self->idle = 0;
  r.record(self->id, 'a', Op::await, nullptr, 0, 0);
  r.schedule(-1, self->id);
  r.wait_baton(lk, *self);
}

void sleep_for_ns(std::int64_t ns) noexcept {
  ThreadCtl* self = point(nullptr, Op::sleep);
  if (self == nullptr) return;
  Run& r = *tls_run;
  std::unique_lock<std::mutex> lk(r.m);
  self->st = St::futex;
  self->faddr = nullptr;
  self->deadline = r.vnow.load() + ns;
  self->idle = 0;
  r.schedule(-1, self->id);
  r.wait_baton(lk, *self);
}

bool request_stop(std::stop_source& source) noexcept {
  ThreadCtl* self = point(nullptr, Op::stop_request);
  if (self == nullptr) return source.request_stop();
  Run& r = *tls_run;
  {
    std::lock_guard<std::mutex> g(r.m);
    ++r.regions;
    r.record(self->id, 'a', Op::stop_request, nullptr, 0, 0);
    r.ctl_cv.notify_all();
  }
  const bool result = source.request_stop();
  {
    std::unique_lock<std::mutex> lk(r.m);
    --r.regions;
    // The callbacks are done, so a thread blocked in ~stop_callback is unblocked: wait until
    // it is back at a schedule point, then it may be scheduled again.
    for (;;) {
      bool outside = false;
      for (auto& t : r.th) outside |= t->st == St::external;
      if (!outside || r.failed) break;
      r.ctl_cv.wait(lk);
    }
    for (auto& t : r.th) {
      if (t->st == St::external_arrived) t->st = St::ready;
    }
  }
  yield();
  return result;
}

namespace {
Run* current_run() {
  return tls_run ? tls_run : g_checking;
}
}  // namespace

bool thread_blocked(int i) noexcept {
  Run* r = current_run();
  return r && r->th[i]->st == St::futex;
}
bool thread_finished(int i) noexcept {
  Run* r = current_run();
  return r && r->th[i]->st == St::finished;
}
bool thread_spinning(int i) noexcept {
  Run* r = current_run();
  return r && r->th[i]->st != St::finished && r->th[i]->idle >= kSpinReads;
}
bool thread_waiting(int i) noexcept {
  return thread_blocked(i) || thread_spinning(i) || thread_finished(i);
}
bool quiescent() noexcept {
  Run* r = current_run();
  if (!r) return true;
  const int self = g_pred_self >= 0 ? g_pred_self : (tls_self ? tls_self->id : -1);
  for (auto& t : r->th) {
    if (t->id == self) continue;
    if (t->st != St::futex && t->st != St::finished) return false;
  }
  return true;
}
std::int64_t now_ns() noexcept {
  Run* r = current_run();
  return r ? r->vnow.load() : 0;
}
int self_id() noexcept {
  return tls_self ? tls_self->id : -1;
}

void fail(const std::string& what) noexcept {
  if (ThreadCtl* self = tls_self) {
    Run& r = *tls_run;
    std::unique_lock<std::mutex> lk(r.m);
    r.fail_locked("T" + std::to_string(self->id) + ": " + what);
    r.wait_baton(lk, *self);  // never returns: the run is over and nobody gets the baton
    std::abort();
  }
  if (g_checking) {
    std::lock_guard<std::mutex> g(g_checking->m);
    g_checking->fail_locked("check: " + what);
    return;
  }
  std::fprintf(stderr, "dsched::fail outside a run: %s\n", what.c_str());
  std::abort();
}

std::vector<Scenario>& scenarios() {
  static std::vector<Scenario> all;
  return all;
}

Figures explore(const Scenario& s, const Options& o, std::vector<std::uint64_t>* hashes_out) {
  const StrategySpec spec = parse_strategy(o.strategy);
  install_crash_handler();
  Options opts = o;
  if (s.event_rate >= 0 && !o.event_rate_given) opts.event_rate = s.event_rate;
  const int runs = o.runs > 0 ? o.runs : s.runs;
  Figures f;
  std::unordered_set<std::uint64_t> hashes;
  std::uint64_t length = spec.length != 0 ? spec.length : 300;
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < runs; ++k) {
    const std::uint64_t seed = o.seed + static_cast<std::uint64_t>(k);
    auto strat = make_strategy(spec, length);
    auto inst = s.make();
    clear_dead();
    auto run = std::make_unique<Run>(s, opts, *strat, seed);
    const auto run_start = std::chrono::steady_clock::now();
    std::snprintf(g_crash_note, sizeof g_crash_note,
                  "scenario=%s strategy=%s seed=%llu\n  replay: %s --scenario=%s --strategy=%s "
                  "--seed=%llu --runs=1 --trace\n",
                  s.name.c_str(), strat->name().c_str(), static_cast<unsigned long long>(seed),
                  o.argv0.c_str(), s.name.c_str(), strat->name().c_str(),
                  static_cast<unsigned long long>(seed));
    run->execute(inst.get());
    const bool stuck = run->failed;  // threads blocked for good: leak them
    if (o.verbose) {
      std::printf(
          "  run seed=%llu steps=%llu preemptions=%llu hash=%016llx %.1f ms\n",
          static_cast<unsigned long long>(seed), static_cast<unsigned long long>(run->steps),
          static_cast<unsigned long long>(run->preemptions),
          static_cast<unsigned long long>(run->hash),
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - run_start)
              .count());
    }
    if (!stuck) {
      run->finish_threads();
      g_checking = run.get();
      inst->check();
      g_checking = nullptr;
    }
    ++f.schedules;
    hashes.insert(run->hash);
    if (hashes_out) hashes_out->push_back(run->hash);
    f.max_preemptions = std::max(f.max_preemptions, run->preemptions);
    f.max_steps = std::max(f.max_steps, run->steps);
    f.total_steps += run->steps;
    f.timeouts += run->timeouts;
    f.spurious += run->spurious;
    f.external_blocks += run->external_blocks;
    if (o.trace) {
      std::printf("  trace of %s seed %llu:\n%s", s.name.c_str(),
                  static_cast<unsigned long long>(seed), run->format_trace().c_str());
    }
    if (run->failed) {
      ++f.failures;
      std::printf(
          "FAILURE scenario=%s strategy=%s seed=%llu (schedule %d of %d)\n  %s\n"
          "  last steps:\n%s"
          "  replay: %s --scenario=%s --strategy=%s --seed=%llu --runs=1 --trace\n",
          s.name.c_str(), strat->name().c_str(), static_cast<unsigned long long>(seed), k + 1, runs,
          run->failure.c_str(), run->format_trace().c_str(), o.argv0.c_str(), s.name.c_str(),
          strat->name().c_str(), static_cast<unsigned long long>(seed));
      std::fflush(stdout);
      if (stuck) {
        for (auto& t : run->th) {
          if (t->th.joinable()) t->th.detach();
          g_leaked_threads.fetch_add(1);
        }
        (void)run.release();
        (void)inst.release();
      }
      break;
    }
    if (spec.length == 0) length = std::max(length, run->steps);
  }
  f.distinct = hashes.size();
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return f;
}

}  // namespace dsched

// ---- the weft::detail seam: futex and fence under the scheduler ----

namespace weft::detail {

void atomic_fence(std::memory_order) noexcept {
  if (dsched::ThreadCtl* t = dsched::point(nullptr, dsched::Op::fence)) {
    dsched::done(t, nullptr, dsched::Op::fence, false, 0, 0);
  }
}

FutexResult futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                       Deadline deadline) noexcept {
  using namespace dsched;
  ThreadCtl* self = point(&word, Op::futex_wait);
  if (self == nullptr) {
    std::fprintf(stderr, "dsched: futex_wait outside a run (a blocking call in check()?)\n");
    std::abort();
  }
  Run& r = *tls_run;
  std::unique_lock<std::mutex> lk(r.m);
  const std::uint32_t v = word.peek();
  if (v != expected) {
    // As the kernel's EAGAIN: counts as a read for spin detection.
    if (self->read_epoch == r.epoch) {
      ++self->idle;
    } else {
      self->idle = 1;
    }
    self->read_epoch = r.epoch;
    r.record(self->id, 'n', Op::futex_wait, &word, v, v);
    return FutexResult::woken;
  }
  const std::int64_t dl = deadline.is_never() ? kNever : deadline.ns();
  if (dl <= r.vnow.load()) {
    r.record(self->id, 't', Op::futex_wait, &word, v, v);
    return FutexResult::timed_out;
  }
  self->st = St::futex;
  self->faddr = &word;
  self->deadline = dl;
  self->fresult = true;
  self->idle = 0;
  r.record(self->id, 'b', Op::futex_wait, &word, v, v);
  r.schedule(-1, self->id);
  r.wait_baton(lk, *self);
  self->faddr = nullptr;
  return self->fresult ? FutexResult::woken : FutexResult::timed_out;
}

namespace {
void wake(const Atomic<std::uint32_t>& word, bool all) noexcept {
  using namespace dsched;
  ThreadCtl* self = point(&word, all ? Op::futex_wake_all : Op::futex_wake_one);
  Run* rp = self ? tls_run : nullptr;
  if (rp == nullptr) return;  // outside a run nobody can be waiting
  Run& r = *rp;
  std::lock_guard<std::mutex> g(r.m);
  std::vector<int> waiters;
  for (auto& t : r.th) {
    if (t->st == St::futex && t->faddr == &word) waiters.push_back(t->id);
  }
  self->idle = 0;
  r.record(self->id, 'o', all ? Op::futex_wake_all : Op::futex_wake_one, &word, 0, 0);
  if (waiters.empty()) return;
  if (!all) {
    // The kernel wakes one waiter; which one is the scheduler's (seeded) choice.
    const int w = waiters[r.rng.below(waiters.size())];
    waiters.assign(1, w);
    r.note_choice(5000 + static_cast<std::uint64_t>(w));
  }
  for (int id : waiters) {
    r.th[id]->st = St::ready;
    r.th[id]->fresult = true;
    r.record(self->id, 'w', Op::futex_wake_one, &word, static_cast<std::uint64_t>(id), 0);
  }
}
}  // namespace

void futex_wake_one(const Atomic<std::uint32_t>& word) noexcept {
  wake(word, false);
}
void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept {
  wake(word, true);
}

}  // namespace weft::detail

// ---- virtual time and select's random order (weft_dsched_hooks.hpp) ----
//
// Deadline::now_ns() (detail/deadline.hpp) and detail::select_random() (select.hpp) call
// these under WEFT_DETERMINISTIC_SCHEDULER. Managed threads see virtual time and draw from
// the run's seeded generator (with the baton held, so the draws are part of the schedule);
// every other thread (the controller, static initialisation) sees the real clock and a
// fixed generator.
std::int64_t weft_dsched_now_ns() noexcept {
  if (dsched::tls_run != nullptr) return dsched::tls_run->vnow.load(std::memory_order_relaxed);
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::uint32_t weft_dsched_random() noexcept {
  if (dsched::tls_run != nullptr) {
    dsched::Run& r = *dsched::tls_run;
    std::lock_guard<std::mutex> g(r.m);
    return static_cast<std::uint32_t>(r.rng.next() >> 32);
  }
  thread_local std::uint32_t state = 0x9E3779B9u;
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

// ---- allocation hooks for dsched::destroy ----
//
// Replaces the global operator new/delete of the explorer binary: frees made while a
// TrackFrees is alive mark their block destroyed; any allocation revives what it reuses.
namespace {
void* allocate(std::size_t n, std::size_t align) {
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  if (dsched::g_dead_n.load(std::memory_order_relaxed) != 0 && !dsched::tls_in_dead_list) {
    dsched::revive(p, n);
  }
  return p;
}
void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  if (dsched::tls_track_frees > 0 && !dsched::tls_in_dead_list) {
    dsched::mark_destroyed(p, ::malloc_usable_size(p));
    dsched::DeadListGuard g;
    dsched::g_quarantine.push_back(p);
    return;
  }
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) {
  return allocate(n, 0);
}
void* operator new[](std::size_t n) {
  return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  deallocate(p);
}
void operator delete[](void* p) noexcept {
  deallocate(p);
}
void operator delete(void* p, std::size_t) noexcept {
  deallocate(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  deallocate(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  deallocate(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  deallocate(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  deallocate(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  deallocate(p);
}
