// SPDX-License-Identifier: MIT
// Must not compile (tests/CMakeLists.txt, compile_fail.*): a Condition over an RLock is not
// awaitable, and the error says why (weft/async.hpp).
#include <coroutine>

#include "async_helpers.hpp"
#include "weft/async.hpp"

weft_test::Detached wait_on_rlock(weft::Condition& c, weft::RLock& l,
                                  weft_test::ManualScheduler& s) {
  co_await weft::async_wait(c, l, s);
}
