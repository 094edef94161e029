// SPDX-License-Identifier: MIT
// Figures of the reliability suites (docs/reliability.md, scripts/reliability.sh).
//
// report_figure("items_moved", n) records n as a property of the running test (GoogleTest's
// XML/JSON output) and prints one stable line that scripts/reliability.sh collects and sums:
//
//     weft-figure: items_moved=123456
//
// torture_scale(): the multiplier of the long runs, from the environment variable
// WEFT_TORTURE_SCALE (default 1; CI's bounded run). The figures run sets it higher.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace weft_test {

inline void report_figure(const std::string& name, long long value) {
  ::testing::Test::RecordProperty(name, std::to_string(value));
  std::printf("weft-figure: %s=%lld\n", name.c_str(), value);
  std::fflush(stdout);
}

inline double torture_scale() {
  const char* s = std::getenv("WEFT_TORTURE_SCALE");
  if (s == nullptr || *s == '\0') return 1.0;
  const double v = std::strtod(s, nullptr);
  return v > 0 ? v : 1.0;
}

// `base` scaled by torture_scale(), at least 1.
inline long scaled_count(long base) {
  const double v = static_cast<double>(base) * torture_scale();
  return v < 1 ? 1 : static_cast<long>(v);
}

}  // namespace weft_test
