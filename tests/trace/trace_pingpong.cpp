// SPDX-License-Identifier: MIT
// A program whose trace is known: `ping` puts a number into the queue "ping" and gets the
// answer from "pong", 20 times; `pong` answers each, but only once `ping` is blocked in
// its get (it polls diagnostics::snapshot()), so every round has a wait ended by a put,
// with a flow. Written with --trace FILE; tests/trace/check_trace.py checks the file.
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <weft/diagnostics.hpp>
#include <weft/queue.hpp>

namespace diag = weft::diagnostics;

namespace {

constexpr int kRounds = 20;

// True once the thread named `name` waits on something.
bool is_waiting(const char* name) {
  for (const diag::ThreadState& t : diag::snapshot().threads)
    if (t.name == name && t.waiting) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape): an exception ends the test
  if (argc != 3 || std::strcmp(argv[1], "--trace") != 0) {
    std::fprintf(stderr, "usage: %s --trace FILE\n", argv[0]);
    return 2;
  }
  diag::enable();
  diag::start_tracing();
  weft::Queue<int> ping(1, "ping");
  weft::Queue<int> pong(1, "pong");
  int failures = 0;
  std::thread answerer([&] {
    diag::set_thread_name("pong");
    for (int i = 0; i < kRounds; ++i) {
      const int n = ping.get();
      while (!is_waiting("ping")) std::this_thread::yield();  // ping is blocked in its get
      pong.put(n + 1);
    }
  });
  diag::set_thread_name("ping");
  for (int i = 0; i < kRounds; ++i) {
    ping.put(2 * i);
    if (pong.get() != 2 * i + 1) ++failures;
  }
  answerer.join();
  if (!diag::write_trace(argv[2])) {
    std::fprintf(stderr, "cannot write %s\n", argv[2]);
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
