// SPDX-License-Identifier: MIT
// What weft's diagnostics find before a program hangs, and how much its locks cost it
// (docs/diagnostics.md): the findings that are hints, never fatal.
//
//  1. Lock order: two transfers take two accounts in opposite orders, one after the other.
//     Nothing deadlocks, but lock-order checking reports the inversion with the four
//     acquisition sites the first time the second order is seen.
//  2. A likely deadlock: a consumer waits on a queue whose only producer so far is itself
//     blocked on an Event that nobody is going to set. Reported as "likely" (someone else
//     could still put), the consumer keeps waiting; here main gives up and puts.
//  3. Contention: four clerks share one ledger Lock; the figures say how often and how long
//     they waited, and whose releases ended those waits.
//
// Usage: diagnostics_hints [--time-scale X]   (accepted for the examples' test; unused)
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "weft/diagnostics.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/semaphore.hpp"

namespace diag = weft::diagnostics;

// Waits until the thread named `name` is blocked on a source of `kind` and the detector is
// done with its wait.
static void await_blocked(const char* name, diag::SourceKind kind) {
  for (;;) {
    for (const auto& t : diag::snapshot().threads)
      if (t.name == name && t.waiting && t.checked && t.waits_on.at(0).kind == kind) return;
    std::this_thread::yield();
  }
}

static void lock_order() {
  std::puts("== 1. two transfers, opposite order, never at the same time ==");
  weft::Lock alice{"account:alice"};
  weft::Lock bob{"account:bob"};
  std::thread pay([&] {
    alice.acquire();
    bob.acquire();
    bob.release();
    alice.release();
  });
  pay.join();
  bob.acquire();  // the refund: the other way round, reported here, before anyone blocks
  alice.acquire();
  alice.release();
  bob.release();
}

static void likely_deadlock() {
  std::puts("\n== 2. a consumer whose only producer is blocked ==");
  weft::Queue<int> jobs;
  diag::set_name(&jobs, diag::SourceKind::queue_get, "jobs");
  weft::Event resume{"resume"};
  weft::Event go{"go"};
  std::thread consumer([&] {
    diag::set_thread_name("consumer");
    std::printf("-- consumer got job %d\n", jobs.get());
    go.wait();
    std::printf("-- consumer got job %d\n", jobs.get());  // reported as likely
  });
  std::thread producer([&] {
    diag::set_thread_name("producer");
    await_blocked("consumer", diag::SourceKind::queue_get);
    jobs.put(1);    // wakes the consumer: now a known producer of jobs
    resume.wait();  // nobody will set it
  });
  await_blocked("producer", diag::SourceKind::event);
  await_blocked("consumer", diag::SourceKind::event);  // done with job 1
  go.set();
  await_blocked("consumer", diag::SourceKind::queue_get);  // the report is out
  std::puts("-- main puts job 2 and sets resume");
  jobs.put(2);
  resume.set();
  producer.join();
  consumer.join();
}

static void contention() {
  std::puts("\n== 3. four clerks, one ledger ==");
  diag::reset_contention();
  weft::Lock ledger{"ledger"};
  weft::Semaphore done{0, "done"};
  weft::Event finish{"finish"};
  long balance = 0;
  std::vector<std::thread> clerks;
  clerks.reserve(4);
  for (int c = 0; c < 4; ++c) {
    clerks.emplace_back([&, c] {
      diag::set_thread_name("clerk-" + std::to_string(c));
      for (int i = 0; i < 2000; ++i) {
        ledger.acquire();
        balance += i % 7;
        if (i % 8 == c) std::this_thread::yield();  // now and then, a slow entry
        ledger.release();
      }
      done.release();
      finish.wait();  // still running (and named) while the figures are printed
    });
  }
  for (int c = 0; c < 4; ++c) done.acquire();
  std::printf("-- balance %ld; the figures:\n%s", balance,
              diag::format(diag::contention()).c_str());
  finish.set();
  for (auto& t : clerks) t.join();
}

int main() {
  try {
    diag::Options options;
    options.lock_order = true;
    // By default reports go to stderr; here to stdout, in order with the rest.
    options.on_lock_order = [](const diag::LockOrderReport& r) {
      std::fputs(r.text.c_str(), stdout);
    };
    options.on_report = [](const diag::DeadlockReport& r) { std::fputs(r.text.c_str(), stdout); };
    diag::enable(std::move(options));
    lock_order();
    likely_deadlock();
    contention();
    diag::disable();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diagnostics_hints: %s\n", e.what());
    return 1;
  }
  return 0;
}
