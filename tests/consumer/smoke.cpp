// SPDX-License-Identifier: MIT
// A program that uses weft as a stranger's project would: one thread puts into a Queue and
// sets an Event, main selects over both; the version macros come from <weft/version.hpp>.
#include <chrono>
#include <cstdio>
#include <thread>

#include <weft/version.hpp>
#include <weft/weft.hpp>

static_assert(WEFT_VERSION ==
              WEFT_VERSION_MAJOR * 10000 + WEFT_VERSION_MINOR * 100 + WEFT_VERSION_PATCH);

int main() {
  using namespace std::chrono_literals;
  weft::Queue<int> numbers(4);
  weft::Event done;
  std::thread producer([&] {
    numbers.put(42);
    done.set();
  });
  const auto first = weft::select_for(30s, weft::get(numbers));
  const bool woke = done.wait(30s);
  producer.join();
  if (!first || first->index() != 0 || std::get<0>(*first) != 42 || !woke) {
    std::puts("weft consumer: FAILED (item or event not observed)");
    return 1;
  }
  std::printf("weft consumer: ok (weft %s)\n", WEFT_VERSION_STRING);
  return 0;
}
