// SPDX-License-Identifier: MIT
// weft/detail/deadline.hpp: the one timeout vocabulary of weft.
//
// Every timed call turns its argument (a std::chrono::duration of any rep and period, or a
// time_point of any clock) into a Deadline: an absolute instant on the monotonic clock
// (std::chrono::steady_clock, which is CLOCK_MONOTONIC on Linux), or "never".
//
// Guarantees:
//  - Saturation, never overflow: a duration too large to add to now() (duration::max() of
//    any rep and period, floating point included) becomes Deadline::never().
//  - A time_point of another clock (system_clock, ...) is converted once, at the call, by
//    measuring its distance from that clock's now(); a later jump of the wall clock does not
//    move the deadline.
//  - A NaN duration is rejected with std::invalid_argument.
//
// Seam: under WEFT_DETERMINISTIC_SCHEDULER (tests/dsched) the clock is the explorer's virtual
// clock, weft_dsched_now_ns() from "weft_dsched_hooks.hpp"; otherwise steady_clock, with no
// indirection.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

#if defined(WEFT_DETERMINISTIC_SCHEDULER)
#include "weft_dsched_hooks.hpp"
#endif

namespace weft::detail {

using SteadyClock = std::chrono::steady_clock;

class Deadline {
 public:
  using rep = std::int64_t;  // nanoseconds since the steady clock's epoch

  static constexpr Deadline never() noexcept { return Deadline(kNever); }
  // Already passed: the operation only tries.
  static constexpr Deadline poll() noexcept { return Deadline(0); }
  static Deadline now() noexcept { return Deadline(now_ns()); }

  // A deadline `d` from now. d <= 0 gives a deadline that has already passed ("poll").
  template <class Rep, class Period>
  static Deadline after(std::chrono::duration<Rep, Period> d) {
    return Deadline(add_saturating(now_ns(), d));
  }

  template <class Clock, class Dur>
  static Deadline at(std::chrono::time_point<Clock, Dur> tp) {
    if constexpr (std::is_same_v<Clock, SteadyClock>) {
      return Deadline(add_saturating(0, tp.time_since_epoch()));
    } else {
      // Converted once, here: distance from the clock's own now(), laid on the steady clock.
      // Subtracted in long double: tp may be time_point::max() of a coarse duration, whose
      // conversion to the clock's native period would overflow.
      using Wide = std::chrono::duration<long double, std::nano>;
      const Wide remaining = Wide(tp.time_since_epoch()) - Wide(Clock::now().time_since_epoch());
      return Deadline(add_saturating(now_ns(), remaining));
    }
  }

  bool is_never() const noexcept { return ns_ == kNever; }
  rep ns() const noexcept { return ns_; }
  bool expired() const noexcept { return !is_never() && now_ns() >= ns_; }

  static rep now_ns() noexcept {
#if defined(WEFT_DETERMINISTIC_SCHEDULER)
    return weft_dsched_now_ns();
#else
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               SteadyClock::now().time_since_epoch())
        .count();
#endif
  }

  // base + d in nanoseconds, saturating to kNever above and to 0 below (0 is long past).
  template <class Rep, class Period>
  static rep add_saturating(rep base, std::chrono::duration<Rep, Period> d) {
    // long double holds every int64 nanosecond count exactly (64-bit mantissa on x86) and the
    // range of any standard duration, so the comparison below cannot overflow.
    const long double ns = std::chrono::duration<long double, std::nano>(d).count();
    if (std::isnan(ns)) throw std::invalid_argument("weft: timeout is NaN");
    const long double sum = static_cast<long double>(base) + ns;
    if (sum >= static_cast<long double>(kNever)) return kNever;
    if (sum <= 0) return 0;
    if constexpr (std::is_floating_point_v<Rep>) {
      return static_cast<rep>(sum);
    } else {
      // Exact integer arithmetic where it fits: avoids rounding through long double for
      // nanosecond counts near 2^63.
      return base + static_cast<rep>(ns);
    }
  }

  friend bool operator==(Deadline, Deadline) = default;

 private:
  static constexpr rep kNever = std::numeric_limits<rep>::max();
  explicit constexpr Deadline(rep ns) noexcept : ns_(ns) {}
  rep ns_;
};

// Python's queue module rejects negative timeouts; Event/Lock/Condition waits poll instead.
template <class Rep, class Period>
bool is_negative(std::chrono::duration<Rep, Period> d) noexcept {
  return d < std::chrono::duration<Rep, Period>::zero();
}

}  // namespace weft::detail
