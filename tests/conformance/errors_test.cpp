// SPDX-License-Identifier: MIT
// The errors contract (docs/api.md: Errors): operational outcomes derive from
// std::runtime_error, programming errors throw std::logic_error (or a subclass) and
// change nothing. Includes only the umbrella header, which must bring in every primitive.
#include <chrono>
#include <cstring>
#include <exception>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;

template <class E>
constexpr bool is_operational_error =
    std::is_base_of_v<std::runtime_error, E> && !std::is_base_of_v<std::logic_error, E> &&
    std::is_nothrow_copy_constructible_v<E> && std::is_default_constructible_v<E>;

static_assert(is_operational_error<weft::Empty>);
static_assert(is_operational_error<weft::Full>);
static_assert(is_operational_error<weft::ShutDown>);
static_assert(is_operational_error<weft::BrokenBarrierError>);
static_assert(is_operational_error<weft::Cancelled>);

// No error is another's subclass: catching one never catches a different outcome.
static_assert(!std::is_base_of_v<weft::Empty, weft::Full> &&
              !std::is_base_of_v<weft::Full, weft::Empty>);
static_assert(!std::is_base_of_v<weft::ShutDown, weft::Empty> &&
              !std::is_base_of_v<weft::Empty, weft::ShutDown>);
static_assert(!std::is_base_of_v<weft::Cancelled, weft::ShutDown> &&
              !std::is_base_of_v<weft::ShutDown, weft::Cancelled>);
static_assert(!std::is_base_of_v<weft::BrokenBarrierError, weft::Cancelled> &&
              !std::is_base_of_v<weft::Cancelled, weft::BrokenBarrierError>);

template <class E>
std::string message_of() {
  try {
    throw E();
  } catch (const std::runtime_error& e) {
    return e.what();
  } catch (...) {
    ADD_FAILURE() << "not caught as std::runtime_error";
    return {};
  }
}

TEST(Errors, EachIsCaughtAsRuntimeErrorWithADistinctMessage) {
  const std::string messages[] = {
      message_of<weft::Empty>(), message_of<weft::Full>(), message_of<weft::ShutDown>(),
      message_of<weft::BrokenBarrierError>(), message_of<weft::Cancelled>()};
  std::set<std::string> distinct;
  for (const std::string& m : messages) {
    EXPECT_FALSE(m.empty());
    distinct.insert(m);
  }
  EXPECT_EQ(distinct.size(), std::size(messages));
}

TEST(Errors, CaughtByExactType) {
  EXPECT_THROW(throw weft::Empty(), weft::Empty);
  EXPECT_THROW(throw weft::Full(), weft::Full);
  EXPECT_THROW(throw weft::ShutDown(), weft::ShutDown);
  EXPECT_THROW(throw weft::BrokenBarrierError(), weft::BrokenBarrierError);
  EXPECT_THROW(throw weft::Cancelled(), weft::Cancelled);
}

// Every programming error of the core primitives, in one place: each is a
// std::logic_error. (Each primitive's own test file also checks that nothing changed.)
TEST(Errors, ProgrammingErrorsAreLogicErrors) {
  weft::Lock lock;
  EXPECT_THROW(lock.release(), std::logic_error) << "release of an unlocked Lock";

  weft::RLock rlock;
  EXPECT_THROW(rlock.release(), std::logic_error) << "release of an unheld RLock";
  {
    rlock.acquire();
    bool threw = false;
    weft_test::Threads other(1, [&](std::size_t) {
      try {
        rlock.release();
      } catch (const std::logic_error&) {
        threw = true;
      }
    });
    other.join();
    EXPECT_TRUE(threw) << "release of an RLock by a thread that does not own it";
    rlock.release();
  }

  weft::Condition cond;
  EXPECT_THROW(cond.wait(), std::logic_error) << "wait without the lock";
  EXPECT_THROW(cond.wait(1s), std::logic_error) << "timed wait without the lock";
  EXPECT_THROW(cond.notify(), std::logic_error) << "notify without the lock";
  EXPECT_THROW(cond.notify_all(), std::logic_error) << "notify_all without the lock";

  weft::BoundedSemaphore bounded(1);
  EXPECT_THROW(bounded.release(), std::logic_error) << "BoundedSemaphore over-release";

  weft::Semaphore sem(1);
  EXPECT_THROW(sem.release(0), std::invalid_argument) << "Semaphore::release(0)";
  EXPECT_THROW(bounded.release(0), std::invalid_argument) << "BoundedSemaphore::release(0)";

  EXPECT_THROW(weft::Barrier(0), std::logic_error) << "Barrier of 0 parties";
}

}  // namespace
