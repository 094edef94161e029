// SPDX-License-Identifier: MIT
// A program that uses every operation weft has a USDT probe on (weft/detail/probes.hpp):
// tests/trace/check_probes.py reads its .note.stapsdt section (readelf -n) and checks that
// the probes are there, and runs it, so that the probes' argument code runs too.
#include <chrono>
#include <cstdio>
#include <stop_token>
#include <thread>

#include <weft/event.hpp>
#include <weft/lock.hpp>
#include <weft/queue.hpp>
#include <weft/semaphore.hpp>

using namespace std::chrono_literals;

int main() {  // NOLINT(bugprone-exception-escape): an exception ends the test
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "usdt_probes: FAILED: %s\n", what);
      ++failures;
    }
  };
  weft::Queue<int> q(1, "probed");
  expect(!q.try_get(1ms).has_value(), "a get from an empty queue times out");  // wait, timeout
  q.put(1);
  expect(!q.try_put(2, 1ms), "a put to a full queue times out");
  weft::Semaphore slots(0, "slots");
  expect(!slots.acquire(1ms), "an acquire with no permit times out");
  weft::Event ready("ready");
  std::stop_source stop;
  std::jthread canceller([&] {
    expect(ready.wait(5s), "the canceller is woken by set()");  // wait, claim, wake, set
    stop.request_stop();
  });
  // The waiter above may not have parked yet: set() is then a plain store, and it still
  // returns at once. Either way the program ends.
  ready.set();
  canceller.join();
  weft::Event never("never");
  expect(!never.wait(stop.get_token()), "a wait whose stop was requested is cancelled");
  weft::Lock lock("probed-lock");
  lock.acquire();
  expect(!lock.acquire(1ms), "a second acquire times out");
  // A contended acquire (acquire) and a release that wakes it (release), when the other
  // thread gets to wait before the release; the program ends either way.
  std::jthread contender([&] {
    expect(lock.acquire(5s), "the contender gets the lock");
    lock.release();
  });
  lock.release();
  contender.join();
  expect(q.get() == 1, "the queued item is got");
  q.shutdown();  // shutdown
  return failures == 0 ? 0 : 1;
}
