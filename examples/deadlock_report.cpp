// SPDX-License-Identifier: MIT
// Two programs that would hang forever, and what weft's diagnostics say instead
// (docs/diagnostics.md).
//
//  1. A Lock cycle: two tellers each hold one account and want the other's.
//  2. A consumer waiting on an Event that nobody will set: the producer, in the same
//     declared group, waits for the consumer's answer instead of setting it.
//
// Diagnostics run with OnDeadlock::raise: the thread that would close each deadlock gets
// weft::Deadlock instead of sleeping, prints the report, and backs off, so the program
// ends. A dump of every thread, as `kill -USR1` would print it, is shown in between.
//
// Usage: deadlock_report [--trace FILE] [--time-scale X]
//   --trace FILE   record a trace and write it to FILE (Chrome trace-event JSON: open it in
//                  ui.perfetto.dev or chrome://tracing) when the first deadlock is caught
//   --time-scale   accepted for the examples' test; unused
#include <csignal>
#include <cstdio>
#include <string_view>
#include <thread>

#include "weft/diagnostics.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"

namespace diag = weft::diagnostics;

// Waits until the thread named `name` is blocked and the detector is done with its wait.
static void await_blocked(const char* name) {
  for (;;) {
    for (const auto& t : diag::snapshot().threads)
      if (t.name == name && t.waiting && t.checked) return;
    std::this_thread::yield();
  }
}

static void lock_cycle() {
  std::puts("== 1. two tellers, two accounts, opposite order ==");
  weft::Lock alice{"account:alice"};
  weft::Lock bob{"account:bob"};
  weft::Event alice_locked{"alice-locked"};
  diag::set_thread_name("teller-2");
  bob.acquire();
  std::thread teller1([&] {
    diag::set_thread_name("teller-1");
    alice.acquire();
    alice_locked.set();
    bob.acquire();  // waits for teller-2
    bob.release();
    alice.release();
  });
  alice_locked.wait();
  await_blocked("teller-1");
  std::puts("-- every thread, as SIGUSR1 would print it:");
  std::fflush(stdout);
  diag::print(1);
  try {
    alice.acquire();  // closes the cycle
    alice.release();
  } catch (const weft::Deadlock& d) {
    std::printf("-- teller-2 caught weft::Deadlock:\n%s", d.what());
  }
  bob.release();  // backs off: teller-1 gets both accounts
  teller1.join();
}

static void nobody_sets() {
  std::puts("\n== 2. a consumer waits on an Event nobody will set ==");
  diag::Group pipeline("pipeline", 2);
  weft::Event item_ready{"item-ready"};
  weft::Event consumed{"consumed"};
  std::thread consumer([&] {
    pipeline.join();
    diag::set_thread_name("consumer");
    item_ready.wait();
    consumed.set();
  });
  await_blocked("consumer");
  pipeline.join();
  diag::set_thread_name("producer");
  try {
    consumed.wait();  // the bug: the producer forgot item_ready.set()
  } catch (const weft::Deadlock& d) {
    std::printf("-- producer caught weft::Deadlock:\n%s", d.what());
  }
  item_ready.set();
  consumer.join();
}

int main(int argc, char** argv) {
  diag::Options options;
  options.on_deadlock = diag::OnDeadlock::raise;
  options.on_report = [](const diag::DeadlockReport&) {};  // printed from the exception
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string_view(argv[i]) == "--trace") options.trace_on_deadlock = argv[i + 1];
  const bool trace = !options.trace_on_deadlock.empty();
  diag::enable(std::move(options));
  if (trace) diag::start_tracing();
  diag::install_signal_handler(SIGUSR1);
  lock_cycle();
  nobody_sets();
  diag::disable();
  return 0;
}
