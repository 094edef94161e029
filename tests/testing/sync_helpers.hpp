// SPDX-License-Identifier: MIT
// Helpers shared by weft's conformance and stress tests.
//
// Tests synchronize through observable state, never through sleeps. The one thing a
// test cannot observe through weft's own API is "this thread is now parked inside a
// wait" (CPython's lock_tests.py approximates it with a sleep). Here it is read from
// the kernel instead: wait_blocked() returns once every given thread is asleep in the
// kernel and has stayed asleep across two scans (see the comment there).
//
// Every test binary that includes this header also gets a per-test watchdog: a test
// still running after kWatchdogLimit aborts the process with its name, so a lost
// wake-up fails loudly instead of hanging CI.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <sys/syscall.h>
#include <sys/types.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_TEST_SANITIZER_DETECTED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SANITIZER_DETECTED 1
#endif

namespace weft_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// True in sanitizer builds: WEFT_SANITIZED=1 from CMake, or a sanitizer detected in a
// hand build. Stress counts shrink then.
#if (defined(WEFT_SANITIZED) && WEFT_SANITIZED) || defined(WEFT_TEST_SANITIZER_DETECTED)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// `full` in a plain build, `sanitized` under a sanitizer.
constexpr std::size_t scaled(std::size_t full, std::size_t sanitized) {
  return kSanitized ? sanitized : full;
}

inline constexpr std::chrono::seconds kWatchdogLimit{120};

// How long a test waits for something that must happen "promptly" before declaring
// it lost. Generous: a loaded 2-core machine under TSAN is slow, and a real lost
// wake-up never arrives at all.
inline constexpr std::chrono::seconds kPatience{60};

inline pid_t current_tid() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// The standard's TimedLockable requirements, spelled out (the standard has no concept).
template <class L>
concept TimedLockable = requires(L& l, std::chrono::milliseconds d, Clock::time_point t) {
  l.lock();
  l.unlock();
  { l.try_lock() } -> std::convertible_to<bool>;
  { l.try_lock_for(d) } -> std::convertible_to<bool>;
  { l.try_lock_until(t) } -> std::convertible_to<bool>;
};

// ---------------------------------------------------------------------------------
// Timing checks for timeouts under test.

inline Clock::duration elapsed_since(Clock::time_point start) {
  return Clock::now() - start;
}

// A timed wait of `expected` took `actual`: it must not return early (10% slack for
// clock granularity) and must not overshoot insanely (5 s on top, for loaded machines).
inline ::testing::AssertionResult took_about(Clock::duration actual, Clock::duration expected) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  const auto lower = expected * 9 / 10;
  const auto upper = expected + std::chrono::seconds(5);
  if (actual >= lower && actual < upper) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "a timeout of " << duration_cast<microseconds>(expected).count() << " us took "
         << duration_cast<microseconds>(actual).count() << " us (allowed ["
         << duration_cast<microseconds>(lower).count() << ", "
         << duration_cast<microseconds>(upper).count() << ") us)";
}

// A call that must not block (a poll) took `actual`. One second is far above any poll.
inline ::testing::AssertionResult returned_promptly(Clock::duration actual) {
  if (actual < std::chrono::seconds(1)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "a non-blocking call took "
         << std::chrono::duration_cast<std::chrono::milliseconds>(actual).count() << " ms";
}

// ---------------------------------------------------------------------------------
// Polling an observable condition (not a sleep used to synchronize: the condition is
// the synchronization, the short pause only keeps the 2-core machine usable).

template <class Pred>
::testing::AssertionResult eventually(Pred pred, Clock::duration limit = kPatience) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (pred()) return ::testing::AssertionSuccess();
    if (Clock::now() >= deadline)
      return ::testing::AssertionFailure() << "condition not reached within the limit";
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// ---------------------------------------------------------------------------------
// Is a thread parked in the kernel?
//
// /proc/self/task/<tid>/status gives the scheduler state and the count of voluntary
// context switches. A thread that reads 'S' (interruptible sleep) in one scan and in
// the next, with the same switch count, slept through the whole interval between the
// two reads: had it woken and slept again, the count would have grown. When every
// thread passes, all of them were asleep at the same instant (between the scans), so
// none of them was part-way through registering with a primitive: a thread that sleeps
// on a primitive's internal lock is woken by the holder, which is running (not 'S')
// until it has done so.

struct TaskState {
  bool exists = false;
  char state = '?';
  long long voluntary_switches = -1;
};

inline TaskState read_task_state(pid_t tid) {
  TaskState out;
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
  if (!in) return out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      fields >> out.state;
    } else if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
      out.voluntary_switches = std::stoll(line.substr(24));
    }
  }
  out.exists = out.state != '?' && out.voluntary_switches >= 0;
  return out;
}

// Returns once every thread in `tids` is asleep in the kernel (see above).
inline ::testing::AssertionResult wait_blocked(const std::vector<pid_t>& tids,
                                               Clock::duration limit = kPatience) {
  const auto deadline = Clock::now() + limit;
  std::vector<TaskState> first(tids.size());
  for (;;) {
    bool all_asleep = true;
    for (std::size_t i = 0; i < tids.size() && all_asleep; ++i) {
      first[i] = read_task_state(tids[i]);
      if (!first[i].exists) {
        // The thread has exited (its call returned): it will never block again.
        return ::testing::AssertionFailure() << "thread " << tids[i] << " has exited";
      }
      all_asleep = first[i].state == 'S';
    }
    for (std::size_t i = 0; i < tids.size() && all_asleep; ++i) {
      const TaskState again = read_task_state(tids[i]);
      all_asleep = again.exists && again.state == 'S' &&
                   again.voluntary_switches == first[i].voluntary_switches;
    }
    if (all_asleep) return ::testing::AssertionSuccess();
    if (Clock::now() >= deadline) {
      auto failure = ::testing::AssertionFailure() << "threads not all blocked:";
      for (pid_t tid : tids) {
        const TaskState s = read_task_state(tid);
        failure << " [tid " << tid << " state " << s.state << "]";
      }
      return failure;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

inline ::testing::AssertionResult wait_blocked(pid_t tid, Clock::duration limit = kPatience) {
  return wait_blocked(std::vector<pid_t>{tid}, limit);
}

// ---------------------------------------------------------------------------------
// A bunch of threads running body(index), as CPython's Bunch. The constructor returns
// once every thread has started and published its kernel tid; the destructor joins.
// An exception escaping a body is reported as a test failure in the joining thread.

class Threads {
 public:
  template <class Body>
  Threads(std::size_t count, Body body)
      : slots_(count), started_(static_cast<std::ptrdiff_t>(count)) {
    threads_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      threads_.emplace_back([this, i, body]() mutable {
        Slot& slot = slots_[i];
        slot.tid.store(current_tid());
        started_.count_down();
        try {
          body(i);
        } catch (const std::exception& e) {
          slot.error = std::string("exception escaped a test thread: ") + e.what();
        } catch (...) {
          slot.error = "unknown exception escaped a test thread";
        }
        slot.finished.store(true);
      });
    }
    started_.wait();
  }

  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;

  ~Threads() { join(); }

  void join() {
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      if (threads_[i].joinable()) {
        threads_[i].join();
        if (!slots_[i].error.empty()) ADD_FAILURE() << slots_[i].error;
      }
    }
  }

  std::size_t size() const { return slots_.size(); }
  pid_t tid(std::size_t i) const { return slots_[i].tid.load(); }
  std::vector<pid_t> tids() const {
    std::vector<pid_t> out;
    for (const Slot& s : slots_) out.push_back(s.tid.load());
    return out;
  }
  bool finished(std::size_t i) const { return slots_[i].finished.load(); }
  std::size_t finished_count() const {
    std::size_t n = 0;
    for (const Slot& s : slots_) n += s.finished.load() ? 1 : 0;
    return n;
  }

 private:
  struct Slot {
    std::atomic<pid_t> tid{0};
    std::atomic<bool> finished{false};
    std::string error;
  };
  std::vector<Slot> slots_;
  std::latch started_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------
// Watchdog: aborts the process if not disarmed within `limit`.

class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = kWatchdogLimit)
      : what_(std::move(what)), thread_([this, limit] { run(limit); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void run(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
      std::fprintf(stderr,
                   "\nWATCHDOG: %s still running after %lld s: aborting (hang or lost wake-up)\n",
                   what_.c_str(), static_cast<long long>(limit.count()));
      std::fflush(stderr);
      std::abort();
    }
  }
  std::string what_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

class WatchdogListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    dog_ = std::make_unique<Watchdog>(std::string(info.test_suite_name()) + "." + info.name());
  }
  void OnTestEnd(const ::testing::TestInfo&) override { dog_.reset(); }

 private:
  std::unique_ptr<Watchdog> dog_;
};

inline const bool kWatchdogInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new WatchdogListener);
  return true;
}();

}  // namespace weft_test
