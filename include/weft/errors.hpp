// SPDX-License-Identifier: MIT
// weft/errors.hpp: the exceptions weft throws.
//
// Operational outcomes derive from std::runtime_error: Empty, Full (a non-blocking or timed
// queue operation could not proceed), ShutDown (the queue was shut down), BrokenBarrierError
// (a Barrier was aborted, reset or timed out under a waiter), Cancelled (a std::stop_token
// cancelled a call that returns an item or nothing).
//
// Programming errors throw std::logic_error or a subclass (std::invalid_argument for bad
// arguments such as a negative queue timeout or Semaphore::release(0)). Each is thrown
// before anything changes: the primitive is left exactly as it was.
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

// get_nowait(), or a timed get, found the queue empty. (Python: queue.Empty)
class Empty : public std::runtime_error {
 public:
  Empty() : std::runtime_error("weft::Empty: queue is empty") {}
};

// put_nowait(), or a timed put, found the queue full. (Python: queue.Full)
class Full : public std::runtime_error {
 public:
  Full() : std::runtime_error("weft::Full: queue is full") {}
};

// The queue was shut down. (Python: queue.ShutDown)
class ShutDown : public std::runtime_error {
 public:
  ShutDown() : std::runtime_error("weft::ShutDown: queue is shut down") {}
};

// The Barrier was broken. (Python: threading.BrokenBarrierError)
class BrokenBarrierError : public std::runtime_error {
 public:
  BrokenBarrierError() : std::runtime_error("weft::BrokenBarrierError: barrier is broken") {}
};

// A std::stop_token stopped a blocking call that has no false/nullopt to return.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("weft::Cancelled: stop requested") {}
};

// Thrown by a blocking call that would close a certain deadlock, when diagnostics are on
// with OnDeadlock::raise (weft/diagnostics.hpp); what() is the report.
class Deadlock : public std::runtime_error {
 public:
  explicit Deadlock(const std::string& report) : std::runtime_error(report) {}
};

}  // namespace weft
