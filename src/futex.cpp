// SPDX-License-Identifier: MIT
// The kernel sleep: Linux futex, or a portable mutex/condition-variable table.
#include "weft/detail/futex.hpp"

// Under the deterministic scheduler the test harness provides the futex functions.
#if !defined(WEFT_DETERMINISTIC_SCHEDULER)

#include <cerrno>

#if defined(__linux__) && !defined(WEFT_PORTABLE_FUTEX)
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#endif

namespace weft::detail {

#if defined(__linux__) && !defined(WEFT_PORTABLE_FUTEX)

namespace {
// Atomic<uint32_t> is layout-compatible with uint32_t on every ABI weft targets.
static_assert(sizeof(Atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(Atomic<std::uint32_t>::is_always_lock_free);

std::uint32_t* address_of(const Atomic<std::uint32_t>& word) noexcept {
  return reinterpret_cast<std::uint32_t*>(const_cast<Atomic<std::uint32_t>*>(&word));
}
}  // namespace

FutexResult futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                       Deadline deadline) noexcept {
  timespec ts{};
  timespec* timeout = nullptr;
  if (!deadline.is_never()) {
    const auto ns = deadline.ns();
    if (ns <= Deadline::now_ns()) return FutexResult::timed_out;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    timeout = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (without
  // FUTEX_CLOCK_REALTIME), the same clock as std::chrono::steady_clock.
  const long rc = ::syscall(SYS_futex, address_of(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                            expected, timeout, nullptr, FUTEX_BITSET_MATCH_ANY);
  // Woken, EAGAIN (value differed) or spurious: the caller re-checks.
  if (rc != -1) return FutexResult::woken;
  if (errno == ETIMEDOUT) return FutexResult::timed_out;
  return errno == EINTR ? FutexResult::interrupted : FutexResult::woken;
}

void futex_wake_one(const Atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, address_of(word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr, 0);
}

void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, address_of(word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT32_MAX, nullptr,
            nullptr, 0);
}

bool futex_is_portable() noexcept {
  return false;
}

#else  // portable fallback

namespace {
struct Bucket {
  std::mutex mutex;
  std::condition_variable cv;
};

// Never destroyed: a stale wake during static destruction must still find its bucket (a
// union does not destroy its member). Not on the heap: the first futex_wait, noexcept, must
// not fail to allocate. std::mutex and libstdc++'s condition_variable construct noexcept.
union Buckets {
  Buckets() noexcept : table() {}
  Buckets(const Buckets&) = delete;
  Buckets& operator=(const Buckets&) = delete;
  ~Buckets() {}  // NOLINT(modernize-use-equals-default): = default would be deleted
  std::array<Bucket, 64> table;
};

Bucket& bucket_for(const void* address) noexcept {
  static Buckets buckets;
  const auto h = reinterpret_cast<std::uintptr_t>(address);
  return buckets.table[(h >> 4 ^ h >> 10) % buckets.table.size()];
}
}  // namespace

FutexResult futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                       Deadline deadline) noexcept {
  Bucket& b = bucket_for(&word);
  std::unique_lock<std::mutex> lock(b.mutex);
  // The waker changes the word, then takes the bucket mutex to notify: checking the word
  // under the mutex closes the window in which the wake could be missed.
  if (word.load(std::memory_order_acquire) != expected) return FutexResult::woken;
  if (deadline.is_never()) {
    b.cv.wait(lock);
    return FutexResult::woken;
  }
  // The condition variable resumes its wait after a signal handler: no interruption here.
  const auto tp = SteadyClock::time_point(std::chrono::nanoseconds(deadline.ns()));
  return b.cv.wait_until(lock, tp) == std::cv_status::no_timeout || !deadline.expired()
             ? FutexResult::woken
             : FutexResult::timed_out;
}

void futex_wake_one(const Atomic<std::uint32_t>& word) noexcept {
  // Several words share a bucket, so "one" must be "all" to wake the right thread.
  futex_wake_all(word);
}

void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept {
  Bucket& b = bucket_for(&word);
  { std::lock_guard<std::mutex> lock(b.mutex); }
  b.cv.notify_all();
}

bool futex_is_portable() noexcept {
  return true;
}

#endif

}  // namespace weft::detail

#endif  // !WEFT_DETERMINISTIC_SCHEDULER
