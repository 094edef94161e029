// SPDX-License-Identifier: MIT
// Parker pool, park loop, and WordLock slow path.
#include "weft/detail/parker.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

namespace weft::detail {

namespace {

// Before sleeping in the kernel, a park spins, then yields. A wake-up that arrives within a
// few hundred nanoseconds (the other thread is running on another core) is caught by the
// spin, and one within a few microseconds by the yields; either way it costs no futex call
// on either side. The spin is kept short: a pause is ~20 ns on recent cores, and on an
// oversubscribed machine spinning only steals the waker's core (docs/benchmarks.md, section
// 4: 100 spins cost 2 us per round trip). A yield does not steal it: it hands the core to a
// runnable thread, and returns at once on an idle machine. Measured: MPMC 4P/4C 10-16 ->
// 29-33 M items/s, queue ping-pong 21 -> 2.2 us (docs/benchmarks.md, section 4).
constexpr int kParkSpins = 16;
constexpr int kParkYields = 8;
constexpr int kLockSpins = 40;

// Parkers are never freed (see parker.hpp, "stale wake"): a thread returns its Parker here at
// exit, and a new thread reuses it.
}  // namespace

// Intrusive free list: returning a Parker at thread exit cannot fail.
class ParkerPool {
 public:
  Parker* take() {
    {
      std::lock_guard<std::mutex> g(mutex_);
      if (Parker* p = free_) {
        free_ = p->next_free_;
        return p;
      }
    }
    return new Parker();  // owned by the pool for the program's lifetime
  }
  void give_back(Parker* p) noexcept {
    std::lock_guard<std::mutex> g(mutex_);
    p->next_free_ = free_;
    free_ = p;
  }

 private:
  std::mutex mutex_;
  Parker* free_ = nullptr;
};

namespace {

ParkerPool& pool() {
  static auto* p = new ParkerPool();  // never destroyed: threads may exit after main returns
  return *p;
}

// A thread's Parker, returned to the pool when the thread exits; a copy would return it twice.
struct ThreadParker {
  ThreadParker() = default;
  ThreadParker(const ThreadParker&) = delete;
  ThreadParker& operator=(const ThreadParker&) = delete;
  ~ThreadParker() { pool().give_back(parker); }

  Parker* parker = pool().take();
};

}  // namespace

Parker& Parker::current() {
  thread_local ThreadParker tp;
  return *tp.parker;
}

bool Waiter::abort(Decision d) noexcept {
  const std::uint32_t token = d.code() << kDecisionShift;
  std::uint32_t v = word_.load(std::memory_order_relaxed);
  while (undecided(v)) {
    if (word_.compare_exchange_weak(v, token | kNotified | (v & kSleeping),
                                    std::memory_order_acq_rel, std::memory_order_relaxed)) {
      if (v & kSleeping) futex_wake_one(word_);
      return true;
    }
  }
  return false;
}

// Waits until NOTIFIED is set or, while the park is undecided, the deadline passes.
// Returns the word it saw last.
std::uint32_t Parker::wait_notified(Deadline deadline) noexcept {
  for (int i = 0; i < kParkSpins; ++i) {
    const std::uint32_t v = word_.load(std::memory_order_acquire);
    if (v & kNotified) return v;
    cpu_relax();
  }
  // Then a few yields: on a busy machine each hands the core to a runnable thread (perhaps
  // the one that will wake us), and on an idle one it returns at once, so a wake-up that
  // comes within a few microseconds is caught before the futex sleep, whose wake-up costs
  // ~20 us on an idle CPU (its exit from the idle state).
  for (int i = 0; i < kParkYields; ++i) {
    const std::uint32_t v = word_.load(std::memory_order_acquire);
    if (v & kNotified) return v;
    if (deadline.expired()) break;
    std::this_thread::yield();
  }
  for (;;) {
    std::uint32_t v = word_.load(std::memory_order_acquire);
    if (v & kNotified) return v;
    if (!(v & kSleeping)) {
      // Announce the sleep, so that wake()/abort() make the system call. If the CAS fails
      // the word changed (claimed or notified): look again.
      if (!word_.compare_exchange_weak(v, v | kSleeping, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        continue;
      }
      v |= kSleeping;
    }
    // Once claimed, the deadline no longer applies (the claim already decided the
    // outcome): the waker is a few instructions from wake(), or, for a waiter that
    // Condition::notify() claimed, the wake comes with the release of the lock that the
    // waiter must retake anyway.
    const Deadline d = undecided(v) ? deadline : Deadline::never();
    // Wake-up sources: Parker::wake() (claimer), Parker::abort() (stop_callback), the
    // deadline, a signal handler, or spurious (stale wakes from an earlier park): all lead
    // back to the loop.
    const FutexResult r = futex_wait(word_, v, d);
    if (r == FutexResult::timed_out) {
      // Deadline passed while undecided: try to decide it ourselves.
      abort(Decision::timed_out());
    } else if (r == FutexResult::interrupted && on_signal_ != nullptr) [[unlikely]] {
      interrupted();
    }
  }
}

// A signal handler interrupted the sleep of a thread in a SignalStopScope: the stop request
// runs the park's stop_callback, if this wait was given the source's token, which aborts the
// park as cancelled unless a claim decided it first (I1). Only the owner thread calls it.
void Parker::interrupted() noexcept {
  on_signal_->request_stop();
}

Decision Parker::park(Deadline deadline, const std::stop_token* stop) noexcept {
  struct Cancel {
    Parker* self;
    void operator()() const noexcept { self->cancel(); }
  };
  // The callback runs at once if a stop was already requested; its destructor waits for a
  // callback running in another thread, so it never outlives this frame.
  std::optional<std::stop_callback<Cancel>> on_stop;
  if (stop != nullptr && stop->stop_possible()) on_stop.emplace(*stop, Cancel{this});
  if (deadline.expired()) abort(Decision::timed_out());
  return Decision::from_code(wait_notified(deadline) >> kDecisionShift);
}

Decision Parker::settle() noexcept {
  abort(Decision::timed_out());
  // Either our abort set NOTIFIED, or a claimer did (or is about to: no deadline applies).
  return Decision::from_code(wait_notified(Deadline::never()) >> kDecisionShift);
}

// Defined whatever NDEBUG says: a program built with invariants on may link a library built
// without them.
void invariant_failed(const char* cond, const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "weft: invariant violated: %s (%s) at %s:%d\n", what, cond, file, line);
  std::abort();
}

void WordLock::lock_slow() noexcept {
  for (int i = 0; i < kLockSpins; ++i) {
    std::uint32_t expected = 0;
    if (state_.load(std::memory_order_relaxed) == 0 &&
        state_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return;
    }
    cpu_relax();
  }
  // Drepper's mutex: mark contended (2) and sleep. Taking the lock with 2 rather than 1 may
  // cost one needless wake at unlock, never a missed one.
  while (state_.exchange(2, std::memory_order_acquire) != 0) {
    // Wake-up source: WordLock::unlock() seeing 2.
    futex_wait(state_, 2, Deadline::never());
  }
}

}  // namespace weft::detail
