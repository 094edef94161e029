// SPDX-License-Identifier: MIT
// weft_dsched_hooks.hpp: the clock and the random source weft uses under the deterministic
// schedule explorer.
//
// include/weft/detail/deadline.hpp includes this header when WEFT_DETERMINISTIC_SCHEDULER is
// defined (tests/dsched/ puts it on the explorer's include path); scheduler.cpp defines the
// functions. In a normal build neither the header nor the calls exist.
//
//   weft_dsched_now_ns()   Deadline's clock (nanoseconds): the scheduler's virtual time in the
//                          scenario's threads, CLOCK_MONOTONIC in any other thread.
//   weft_dsched_random()   select's fair order (detail::select_random): drawn from the
//                          schedule's seeded generator, so an unbiased select replays and its
//                          choice is part of the explored schedule.
#pragma once

#include <cstdint>

std::int64_t weft_dsched_now_ns() noexcept;
std::uint32_t weft_dsched_random() noexcept;
