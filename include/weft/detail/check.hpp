// SPDX-License-Identifier: MIT
// weft/detail/check.hpp: WEFT_INVARIANT, the assertion of the waiting layer's invariants.
//
// On in debug builds (NDEBUG not defined: the tsan and asan configurations of
// scripts/test.sh) and wherever WEFT_CHECK_INVARIANTS is defined; it compiles to nothing
// otherwise, arguments included, so an invariant may name a load that release builds must
// not pay for. A violation prints the condition and its place, then aborts: an invariant of
// the waiting layer that fails means a wake-up may already be lost, and going on would hide
// where.
#pragma once

#if !defined(NDEBUG) || defined(WEFT_CHECK_INVARIANTS)
#define WEFT_INVARIANTS_ON 1
#else
#define WEFT_INVARIANTS_ON 0
#endif

namespace weft::detail {
// Prints the violation and aborts (src/parker.cpp; defined in every build of the library).
[[noreturn]] void invariant_failed(const char* cond, const char* what, const char* file,
                                   int line) noexcept;
}  // namespace weft::detail

#if WEFT_INVARIANTS_ON
#define WEFT_INVARIANT(cond, what) \
  ((cond) ? static_cast<void>(0)   \
          : ::weft::detail::invariant_failed(#cond, what, __FILE__, __LINE__))
#else
#define WEFT_INVARIANT(cond, what) static_cast<void>(0)
#endif
