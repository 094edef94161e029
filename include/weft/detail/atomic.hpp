// SPDX-License-Identifier: MIT
// weft/detail/atomic.hpp: the atomic type every weft primitive uses for shared state.
//
// This is the seam for deterministic schedule exploration: a test build defines
// WEFT_DETERMINISTIC_SCHEDULER and provides "weft_dsched_atomic.hpp", whose Atomic<T> has
// std::atomic's interface but hands control to a scheduler before every operation, and whose
// futex_wait/futex_wake block and wake threads under that scheduler. Everything else in weft
// is written against this header, so the same code runs in production and under the
// explorer.
#pragma once

#include <atomic>

#if defined(WEFT_DETERMINISTIC_SCHEDULER)
#include "weft_dsched_atomic.hpp"
#else

namespace weft::detail {

template <class T>
using Atomic = std::atomic<T>;

inline void atomic_fence(std::memory_order order) noexcept {
  std::atomic_thread_fence(order);
}

}  // namespace weft::detail

#endif
