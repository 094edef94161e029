// SPDX-License-Identifier: MIT
// weft/detail/futex.hpp: the kernel sleep that every blocking path of weft ends in.
//
// futex_wait(word, expected, deadline) sleeps while *word == expected, until futex_wake on
// the same word, the deadline, a signal handler run by this thread, or a spurious wake-up;
// callers always re-check their own condition in a loop. On Linux it is FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC
// deadline (no relative-timeout drift); elsewhere a portable fallback parks on one of a
// fixed table of std::mutex/std::condition_variable buckets hashed by address.
//
// Lifetime: futex_wake may be called on a word whose owner has already stopped waiting (a
// "stale" wake). Both implementations tolerate that: on Linux the kernel only hashes the
// address of a private futex, and the fallback's buckets live for the whole program. weft
// only ever waits on words inside Parkers and WordLocks; see parker.hpp for why a stale wake
// is harmless there.
#pragma once

#include <atomic>
#include <cstdint>

#include "weft/detail/atomic.hpp"
#include "weft/detail/deadline.hpp"

namespace weft::detail {

// Why futex_wait returned.
enum class FutexResult : std::uint8_t {
  woken,        // woken, the value differed, or spurious
  timed_out,    // the deadline passed
  interrupted,  // a signal handler ran in this thread (EINTR: installed without SA_RESTART,
                // as CPython installs its handlers); never reported by the portable fallback
};

FutexResult futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                       Deadline deadline) noexcept;
void futex_wake_one(const Atomic<std::uint32_t>& word) noexcept;
void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept;
// Whether the library was built with the portable fallback (the tests check which one they
// were linked with).
bool futex_is_portable() noexcept;

// CPU hint inside bounded spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace weft::detail
