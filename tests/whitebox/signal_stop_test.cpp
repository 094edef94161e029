// SPDX-License-Identifier: MIT
// detail::SignalStopScope (parker.hpp): a signal handler that interrupts a thread's sleep in
// a weft wait stops the source the thread lent its Parker; a wait given that source's token
// ends as cancelled, having changed nothing, and one given no token sleeps on.
//
// The handler is installed without SA_RESTART, as CPython installs its own. The signal is
// sent again and again until it interrupts the sleep: one that lands while the waiter still
// spins before sleeping interrupts nothing (the contract says so), the next one does.
#include <atomic>
#include <chrono>
#include <csignal>
#include <pthread.h>
#include <stop_token>
#include <thread>

#include <gtest/gtest.h>

#include "weft/detail/parker.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"

namespace {

using namespace std::chrono_literals;

std::atomic<int> g_handled{0};

extern "C" void count_signal(int) {
  g_handled.fetch_add(1, std::memory_order_relaxed);
}

class SignalStop : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_), 0);
  }
  void TearDown() override { sigaction(SIGUSR1, &old_, nullptr); }

  // Signals `t` every millisecond until done() (at most ~10 s).
  template <class Done>
  static void signal_until(pthread_t t, Done done) {
    for (int i = 0; i < 10'000 && !done(); ++i) {
      pthread_kill(t, SIGUSR1);
      std::this_thread::sleep_for(1ms);
    }
  }

  struct sigaction old_ {};
};

TEST_F(SignalStop, InterruptedWaitEndsAsCancelledAndChangesNothing) {
  weft::Event ev;
  weft::Lock lock;
  lock.lock();
  std::stop_source source;
  std::atomic<int> results{0};
  std::atomic<bool> event_result{true}, lock_result{true};
  std::thread waiter([&] {
    weft::detail::SignalStopScope scope(source);
    event_result = ev.wait(30s, source.get_token());
    results.fetch_add(1);
    source = std::stop_source();  // spent: a fresh one for the next wait
    lock_result = lock.acquire(source.get_token());
    results.fetch_add(1);
  });
  signal_until(waiter.native_handle(), [&] { return results.load() == 1; });
  signal_until(waiter.native_handle(), [&] { return results.load() == 2; });
  waiter.join();
  EXPECT_FALSE(event_result.load());
  EXPECT_FALSE(lock_result.load());
  EXPECT_TRUE(source.stop_requested());
  EXPECT_GT(g_handled.load(), 0);
  EXPECT_FALSE(ev.is_set());
  EXPECT_TRUE(lock.locked());  // still ours: the interrupted acquire took nothing
  lock.release();
  EXPECT_TRUE(lock.try_lock());
  lock.release();
}

TEST_F(SignalStop, WaitWithoutTheTokenSleepsOn) {
  weft::Event ev, done;
  std::stop_source source;
  std::atomic<bool> result{false};
  std::thread waiter([&] {
    weft::detail::SignalStopScope scope(source);
    result = ev.wait();  // no token: the signals do not end it
    done.set();
  });
  // Until a signal interrupted the sleep (the source records it), then a few more.
  signal_until(waiter.native_handle(), [&] { return source.stop_requested(); });
  const int before = g_handled.load();
  signal_until(waiter.native_handle(), [&] { return g_handled.load() >= before + 5; });
  EXPECT_TRUE(source.stop_requested());
  EXPECT_FALSE(done.is_set());
  ev.set();
  waiter.join();
  EXPECT_TRUE(result.load());
}

TEST_F(SignalStop, OutsideAScopeSignalsChangeNothing) {
  weft::Event ev;
  std::stop_source source;
  std::atomic<bool> result{false}, returned{false};
  std::thread waiter([&] {
    result = ev.wait(source.get_token());
    returned = true;
  });
  const int before = g_handled.load();
  signal_until(waiter.native_handle(), [&] { return g_handled.load() >= before + 20; });
  EXPECT_FALSE(returned.load());
  EXPECT_FALSE(source.stop_requested());
  ev.set();
  waiter.join();
  EXPECT_TRUE(result.load());
}

}  // namespace
