// SPDX-License-Identifier: MIT
// Helpers shared by weft's queue tests (conformance and stress).
//
//  - One traits struct per queue kind, for TYPED_TEST (CPython's test_queue runs one mixin
//    over Queue, LifoQueue and PriorityQueue the same way). weft::Queue appears twice: with
//    a nothrow-movable item it is the lock-free ring when bounded, with an item whose move
//    may throw it is the locked deque; both must honour the same contract.
//  - make_queue / new_queue build any kind with a maxsize (SimpleQueue takes none).
//  - in_get_order: the order a kind hands back a sequence of puts.
//  - Item types: MoveMayThrow<V> (a V whose move is not noexcept), SlowMove (its move takes
//    a while), Tracked (counts its constructions and destructions, detects use after
//    destruction and double destruction), Explosive (its copy or move throws on demand);
//    ThrowingLess (a comparator that throws on demand).
//  - blocked(threads): every thread is parked (and none returned instead).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sync_helpers.hpp"
#include "weft/queue.hpp"

namespace weft_test {

enum class Order { fifo, lifo, priority };

// A value whose move constructor is not noexcept, so that weft::Queue<MoveMayThrow<V>> takes its
// locked-deque storage even when bounded. Converts to and from V, so tests written against
// plain items read the same for it.
template <class V>
struct MoveMayThrow {
  V value;
  MoveMayThrow() : value() {}
  MoveMayThrow(V v) : value(std::move(v)) {}  // NOLINT(google-explicit-constructor): q.put(1)
  MoveMayThrow(const MoveMayThrow& other) : value(other.value) {}
  MoveMayThrow(MoveMayThrow&& other) noexcept(false) : value(std::move(other.value)) {}
  MoveMayThrow& operator=(const MoveMayThrow& other) = default;
  MoveMayThrow& operator=(MoveMayThrow&& other) noexcept(false) {
    value = std::move(other.value);
    return *this;
  }
  operator V() const { return value; }  // NOLINT(google-explicit-constructor)
  friend bool operator<(const MoveMayThrow& a, const MoveMayThrow& b) { return a.value < b.value; }
};
using MoveMayThrowInt = MoveMayThrow<int>;
static_assert(!std::is_nothrow_move_constructible_v<MoveMayThrowInt>);

// An int whose move busy-waits for slow_move_time_us() (zero unless a test sets it): keeps
// a thread inside a queue's critical section long enough for another thread to contend for
// it. Moves are noexcept (weft::Queue<SlowMove> bounded is the ring; FifoLockedKind's
// ItemOf<SlowMove> is the locked deque).
struct SlowMove {
  int value = 0;
  explicit SlowMove(int v) : value(v) {}
  SlowMove(SlowMove&& other) noexcept : value(other.value) { linger(); }
  SlowMove& operator=(SlowMove&& other) noexcept {
    value = other.value;
    linger();
    return *this;
  }
  friend bool operator<(const SlowMove& a, const SlowMove& b) { return a.value < b.value; }

  static std::atomic<long>& slow_move_time_us() {
    static std::atomic<long> us{0};
    return us;
  }

 private:
  static void linger() noexcept {
    const long us = slow_move_time_us().load(std::memory_order_relaxed);
    if (us <= 0) return;
    const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    while (std::chrono::steady_clock::now() < end) {
    }
  }
};

// The int inside a SlowMove, bare or wrapped (Kind::ItemOf<SlowMove>).
inline int value_of(const SlowMove& item) {
  return item.value;
}
template <class V>
int value_of(const MoveMayThrow<V>& item) {
  return value_of(item.value);
}

// ---- queue kinds -----------------------------------------------------------------------
// Kind::QueueOf<T>  the queue template        Kind::Item  the item type of the typed tests
// Kind::ItemOf<V>   the item type carrying a V (MoveMayThrow<V> for FifoLockedKind, else V)
// Kind::kOrder      the get order             Kind::kTasks  bounded, task_done/join,
//                                                           shutdown, consume (all but
//                                                           SimpleQueue)

struct FifoKind {  // bounded: the lock-free ring
  static constexpr const char* kName = "Queue";
  template <class T>
  using QueueOf = weft::Queue<T>;
  template <class V>
  using ItemOf = V;
  using Item = int;
  static constexpr Order kOrder = Order::fifo;
  static constexpr bool kTasks = true;
};

struct FifoLockedKind {  // the same class over its locked deque
  static constexpr const char* kName = "QueueLocked";
  template <class T>
  using QueueOf = weft::Queue<T>;
  template <class V>
  using ItemOf = MoveMayThrow<V>;
  using Item = MoveMayThrowInt;
  static constexpr Order kOrder = Order::fifo;
  static constexpr bool kTasks = true;
};

struct LifoKind {
  static constexpr const char* kName = "LifoQueue";
  template <class T>
  using QueueOf = weft::LifoQueue<T>;
  template <class V>
  using ItemOf = V;
  using Item = int;
  static constexpr Order kOrder = Order::lifo;
  static constexpr bool kTasks = true;
};

struct PriorityKind {
  static constexpr const char* kName = "PriorityQueue";
  template <class T>
  using QueueOf = weft::PriorityQueue<T>;
  template <class V>
  using ItemOf = V;
  using Item = int;
  static constexpr Order kOrder = Order::priority;
  static constexpr bool kTasks = true;
};

struct SimpleKind {
  static constexpr const char* kName = "SimpleQueue";
  template <class T>
  using QueueOf = weft::SimpleQueue<T>;
  template <class V>
  using ItemOf = V;
  using Item = int;
  static constexpr Order kOrder = Order::fifo;
  static constexpr bool kTasks = false;
};

// weft::Queue's own class over segment lists of `Slots` slots (3, 1: a hand-over every few
// items, every item) instead of the default (segment_slots<T>()): unbounded, it is the segment list; bounded,
// the same ring as FifoKind.
template <class T, std::size_t Slots>
class SegmentQueue : public weft::detail::TaskQueue<T, weft::detail::FifoStorage<T, Slots>> {
 public:
  explicit SegmentQueue(std::ptrdiff_t maxsize = 0)
      : weft::detail::TaskQueue<T, weft::detail::FifoStorage<T, Slots>>(maxsize) {}
  static constexpr std::size_t kSlots = Slots;
  // Segments allocated now (in the list, spare, or in a push's hands); 0 if not a list.
  std::size_t segments_allocated() const {
    const auto* list = this->core_.storage().segment_list();
    return list != nullptr ? list->segments_allocated() : 0;
  }
};

template <std::size_t Slots>
struct FifoSegmentsKind {
  static constexpr const char* kName = Slots == 1 ? "QueueSegments1" : "QueueSegments3";
  template <class T>
  using QueueOf = SegmentQueue<T, Slots>;
  template <class V>
  using ItemOf = V;
  using Item = int;
  static constexpr Order kOrder = Order::fifo;
  static constexpr bool kTasks = true;
};

// For TYPED_TEST_SUITE's third argument: test names read "Queue", "LifoQueue", ...
struct KindNames {
  template <class Kind>
  static std::string GetName(int) {
    return Kind::kName;
  }
};

// Every kind, and the kinds with maxsize/task_done/join/shutdown/consume.
using AllQueueKinds =
    ::testing::Types<FifoKind, FifoLockedKind, LifoKind, PriorityKind, SimpleKind>;
using TaskQueueKinds = ::testing::Types<FifoKind, FifoLockedKind, LifoKind, PriorityKind>;

template <class Kind, class T = typename Kind::Item>
using QueueFor = typename Kind::template QueueOf<T>;

// A queue of the kind; maxsize is ignored for SimpleQueue (always unbounded).
template <class Kind, class T = typename Kind::Item>
QueueFor<Kind, T> make_queue(std::ptrdiff_t maxsize = 0) {
  if constexpr (Kind::kTasks) {
    return QueueFor<Kind, T>(maxsize);
  } else {
    (void)maxsize;
    return QueueFor<Kind, T>();
  }
}

template <class Kind, class T = typename Kind::Item>
std::unique_ptr<QueueFor<Kind, T>> new_queue(std::ptrdiff_t maxsize = 0) {
  if constexpr (Kind::kTasks) {
    return std::make_unique<QueueFor<Kind, T>>(maxsize);
  } else {
    (void)maxsize;
    return std::make_unique<QueueFor<Kind, T>>();
  }
}

// The order in which a queue of the kind returns `puts` (all put before any get). Priority:
// smallest first, equal items in put order (docs/api.md).
template <class Kind, class V>
std::vector<V> in_get_order(std::vector<V> puts) {
  if constexpr (Kind::kOrder == Order::lifo) {
    std::reverse(puts.begin(), puts.end());
  } else if constexpr (Kind::kOrder == Order::priority) {
    std::stable_sort(puts.begin(), puts.end());
  }
  return puts;
}

// The items as ints, in order (for comparing what shutdown(true) returned).
template <class V>
std::vector<int> to_ints(const std::vector<V>& items) {
  std::vector<int> out;
  for (const V& item : items) out.push_back(static_cast<int>(item));
  return out;
}

// Empties a queue without blocking; returns the items as ints, in get order.
template <class Q>
std::vector<int> drain_ints(Q& q) {
  std::vector<int> out;
  while (auto item = q.try_get()) out.push_back(static_cast<int>(*item));
  return out;
}

// The exceptions the test item types and comparator throw on demand.
struct Boom : std::runtime_error {
  Boom() : std::runtime_error("weft_test::Boom: an item's copy or move failed on purpose") {}
};

struct ComparatorBoom : std::runtime_error {
  ComparatorBoom()
      : std::runtime_error("weft_test::ComparatorBoom: comparison failed on purpose") {}
};

// ---- Outcome: how a queue call ended -----------------------------------------------------
// Lets a test thread report an expected exception as a value (an unexpected one escaping a
// weft_test::Threads body is a test failure).
enum class Outcome {
  pending,  // not finished yet
  ok,
  empty,
  full,
  shut_down,
  cancelled,
  invalid_argument,
  logic_error,
  boom,  // weft_test::Boom or ComparatorBoom
  other,
};

inline const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::pending:
      return "pending";
    case Outcome::ok:
      return "ok";
    case Outcome::empty:
      return "Empty";
    case Outcome::full:
      return "Full";
    case Outcome::shut_down:
      return "ShutDown";
    case Outcome::cancelled:
      return "Cancelled";
    case Outcome::invalid_argument:
      return "std::invalid_argument";
    case Outcome::logic_error:
      return "std::logic_error";
    case Outcome::boom:
      return "weft_test::Boom";
    case Outcome::other:
      return "another exception";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, Outcome o) {
  return os << outcome_name(o);
}

template <class F>
Outcome outcome_of(F&& f) {
  try {
    std::forward<F>(f)();
    return Outcome::ok;
  } catch (const weft::Empty&) {
    return Outcome::empty;
  } catch (const weft::Full&) {
    return Outcome::full;
  } catch (const weft::ShutDown&) {
    return Outcome::shut_down;
  } catch (const weft::Cancelled&) {
    return Outcome::cancelled;
  } catch (const std::invalid_argument&) {
    return Outcome::invalid_argument;
  } catch (const std::logic_error&) {
    return Outcome::logic_error;
  } catch (const Boom&) {
    return Outcome::boom;
  } catch (const ComparatorBoom&) {
    return Outcome::boom;
  } catch (...) {
    return Outcome::other;
  }
}

// ---- blocked: the threads are parked inside their call ------------------------------------
// Returns once every listed thread (all by default) of `threads` is asleep in the kernel
// (sync_helpers.hpp: wait_blocked); fails as soon as one of them finishes instead, i.e.
// returned from a call that should have blocked.
inline ::testing::AssertionResult blocked(const Threads& threads,
                                          std::vector<std::size_t> which = {}) {
  if (which.empty()) {
    for (std::size_t i = 0; i < threads.size(); ++i) which.push_back(i);
  }
  std::vector<pid_t> tids;
  for (std::size_t i : which) tids.push_back(threads.tid(i));
  const auto deadline = Clock::now() + kPatience;
  for (;;) {
    for (std::size_t i : which) {
      if (threads.finished(i)) {
        return ::testing::AssertionFailure() << "thread " << i << " returned instead of blocking";
      }
    }
    if (wait_blocked(tids, std::chrono::milliseconds(20))) return ::testing::AssertionSuccess();
    if (Clock::now() >= deadline) return wait_blocked(tids, std::chrono::milliseconds(1));
  }
}

// A blocked call was woken (by a put, a shutdown, a stop request) and returned `actual`
// after the waking call: promptly, i.e. within 10 s. Looser than returned_promptly() (a
// poll): the woken thread must be scheduled again on a loaded machine, while a lost wake-up
// is never made up for (the calls under test wait 1 h or forever).
inline ::testing::AssertionResult woken_promptly(Clock::duration actual) {
  if (actual < std::chrono::seconds(10)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "woken after " << std::chrono::duration_cast<std::chrono::milliseconds>(actual).count()
         << " ms";
}

// ---- Tracked: counts lives, detects double destruction ----------------------------------
// Every constructor increments `live`, the destructor decrements it; a destructor, copy or
// move that finds its object (or source) not alive records an error instead of going on
// silently. Moved-from objects hold id -1. NothrowMove picks the storage of weft::Queue.
struct TrackedCounters {
  std::atomic<long> live{0};
  std::atomic<long> constructed{0};
  std::atomic<long> destroyed{0};
  std::atomic<long> errors{0};  // double destruction, or use of a destroyed object
};

inline TrackedCounters& tracked_counters() {
  static TrackedCounters counters;
  return counters;
}

template <bool NothrowMove>
class BasicTracked {
 public:
  explicit BasicTracked(int id) : id_(id) { born(); }
  BasicTracked(const BasicTracked& other) : id_(other.checked_id()) { born(); }
  BasicTracked(BasicTracked&& other) noexcept(NothrowMove) : id_(other.checked_id()) {
    other.id_ = -1;
    born();
  }
  BasicTracked& operator=(const BasicTracked& other) {
    check_alive();
    id_ = other.checked_id();
    return *this;
  }
  BasicTracked& operator=(BasicTracked&& other) noexcept(NothrowMove) {
    check_alive();
    id_ = other.checked_id();
    other.id_ = -1;
    return *this;
  }
  ~BasicTracked() {
    if (magic_ != kAlive) {
      tracked_counters().errors.fetch_add(1);
      return;
    }
    magic_ = kDead;
    tracked_counters().live.fetch_sub(1);
    tracked_counters().destroyed.fetch_add(1);
  }

  int id() const { return checked_id(); }
  friend bool operator<(const BasicTracked& a, const BasicTracked& b) { return a.id() < b.id(); }

 private:
  static constexpr std::uint32_t kAlive = 0xA11CEu;
  static constexpr std::uint32_t kDead = 0xDEADu;

  void born() {
    tracked_counters().live.fetch_add(1);
    tracked_counters().constructed.fetch_add(1);
  }
  void check_alive() const {
    if (magic_ != kAlive) tracked_counters().errors.fetch_add(1);
  }
  int checked_id() const {
    check_alive();
    return id_;
  }

  std::uint32_t magic_ = kAlive;
  int id_;
};

using Tracked = BasicTracked<true>;
using TrackedMoveMayThrow = BasicTracked<false>;

// ---- Explosive: copy or move throws on demand ------------------------------------------
// Two triggers: an armed *source* (the next copy or move from this object throws: models a
// caller's item that cannot be moved into the queue) and a global countdown (the n-th copy
// or move of any Explosive from now throws: reaches the moves inside the queue). A throw
// happens before anything is modified. Moved-from objects hold -1. Copies and moves do
// not inherit the source's arming.
class Explosive {
 public:
  explicit Explosive(int v) : value_(v) {}
  Explosive(const Explosive& other) : value_(other.value_) { other.transfer(false); }
  Explosive(Explosive&& other) noexcept(false) : value_(other.value_) {
    other.transfer(true);
    other.value_ = -1;
  }
  Explosive& operator=(const Explosive& other) {
    other.transfer(false);
    value_ = other.value_;
    return *this;
  }
  Explosive& operator=(Explosive&& other) noexcept(false) {
    other.transfer(true);
    value_ = other.value_;
    other.value_ = -1;
    return *this;
  }
  ~Explosive() = default;

  int value() const { return value_; }
  explicit operator int() const { return value_; }
  friend bool operator<(const Explosive& a, const Explosive& b) { return a.value_ < b.value_; }

  void fail_next_copy() const { fail_copy_ = true; }
  void fail_next_move() const { fail_move_ = true; }
  // The n-th (1 = the next) copy or move of any Explosive throws; 0 disarms.
  static void fail_nth_transfer(int n) { countdown().store(n); }
  static void disarm() { countdown().store(0); }
  // Copies and moves of any Explosive so far (the ones that threw included).
  static long transfers() { return transfer_count().load(); }

 private:
  static std::atomic<int>& countdown() {
    static std::atomic<int> n{0};
    return n;
  }
  static std::atomic<long>& transfer_count() {
    static std::atomic<long> n{0};
    return n;
  }
  // Called on the source, before anything is modified.
  void transfer(bool move) const {
    transfer_count().fetch_add(1);
    bool& armed = move ? fail_move_ : fail_copy_;
    if (armed) {
      armed = false;
      throw Boom();
    }
    int n = countdown().load();
    while (n > 0 && !countdown().compare_exchange_weak(n, n - 1)) {
    }
    if (n == 1) throw Boom();
  }

  int value_;
  mutable bool fail_copy_ = false;
  mutable bool fail_move_ = false;
};

// ---- ThrowingLess: a comparator that throws on demand ----------------------------------
struct CompareControl {
  std::atomic<long> calls{0};
  std::atomic<long> fail_in{0};  // > 0: the fail_in-th call from now throws
  std::atomic<bool> poison_armed{false};
  std::atomic<int> poison{0};  // while armed: every comparison involving this value throws
  void fail_nth_call(long n) { fail_in.store(n); }
  void poison_value(int v) {
    poison.store(v);
    poison_armed.store(true);
  }
  void disarm() {
    fail_in.store(0);
    poison_armed.store(false);
  }
};

// Compares ints like std::less through `control`, which counts the calls and may make one
// throw. Copies share the control block.
struct ThrowingLess {
  CompareControl* control = nullptr;
  bool operator()(int a, int b) const {
    control->calls.fetch_add(1);
    long n = control->fail_in.load();
    while (n > 0 && !control->fail_in.compare_exchange_weak(n, n - 1)) {
    }
    if (n == 1) throw ComparatorBoom();
    if (control->poison_armed.load() &&
        (a == control->poison.load() || b == control->poison.load())) {
      throw ComparatorBoom();
    }
    return a < b;
  }
};

}  // namespace weft_test
