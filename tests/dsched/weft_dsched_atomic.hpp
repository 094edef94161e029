// SPDX-License-Identifier: MIT
// weft_dsched_atomic.hpp: weft's atomic seam under the deterministic schedule explorer.
//
// include/weft/detail/atomic.hpp includes this header (instead of aliasing std::atomic) when
// WEFT_DETERMINISTIC_SCHEDULER is defined; tests/dsched/ puts it on the include path of the
// explorer build only. Every operation of weft::detail::Atomic<T> first hands control to the
// scheduler (tests/dsched/scheduler.hpp), which may run another thread before it; then the
// operation runs with the baton held, so the program executes one thread at a time in an
// order the scheduler chose and can replay.
//
// Memory model: every operation is performed seq_cst, whatever order the caller asked for.
// The explorer checks weft's *interleavings* under sequential consistency; the weak orderings
// themselves are TSAN's job (see docs/reliability.md).
//
// Outside a run (the controller thread building or checking a scenario, static
// initialisation) the operations are plain atomics with no schedule point.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace dsched {

enum class Op : std::uint8_t {
  load,
  store,
  exchange,
  cas_weak,
  cas_strong,
  fetch_add,
  fetch_sub,
  fetch_or,
  fetch_and,
  fence,
  futex_wait,
  futex_wake_one,
  futex_wake_all,
  yield,
  start,
  finish,
  await,
  sleep,
  stop_request,
};

struct ThreadCtl;

// Schedule point before an operation on `addr`. Returns null (and does nothing) when the
// calling thread is not running under the scheduler.
ThreadCtl* point(const void* addr, Op op) noexcept;
// Bookkeeping after the operation (trace, spin detection). `changed`: the value changed.
void done(ThreadCtl* self, const void* addr, Op op, bool changed, std::uint64_t before,
          std::uint64_t after) noexcept;
// May a compare_exchange_weak fail spuriously here? (decided by the scheduler's seed)
bool spurious_cas_failure(ThreadCtl* self) noexcept;

template <class T>
std::uint64_t bits(T v) noexcept {
  if constexpr (std::is_pointer_v<T>) {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(v));
  } else {
    return static_cast<std::uint64_t>(v);
  }
}

}  // namespace dsched

namespace weft::detail {

template <class T>
class Atomic {
 public:
  static constexpr bool is_always_lock_free = std::atomic<T>::is_always_lock_free;

  Atomic() noexcept : v_(T{}) {}
  constexpr Atomic(T v) noexcept : v_(v) {}  // NOLINT(google-explicit-constructor): as std::atomic
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(std::memory_order = std::memory_order_seq_cst) const noexcept {
    dsched::ThreadCtl* t = dsched::point(this, dsched::Op::load);
    const T v = v_.load();
    if (t) dsched::done(t, this, dsched::Op::load, false, dsched::bits(v), dsched::bits(v));
    return v;
  }

  void store(T v, std::memory_order = std::memory_order_seq_cst) noexcept {
    dsched::ThreadCtl* t = dsched::point(this, dsched::Op::store);
    const T old = v_.exchange(v);
    if (t) dsched::done(t, this, dsched::Op::store, old != v, dsched::bits(old), dsched::bits(v));
  }

  T exchange(T v, std::memory_order = std::memory_order_seq_cst) noexcept {
    dsched::ThreadCtl* t = dsched::point(this, dsched::Op::exchange);
    const T old = v_.exchange(v);
    if (t) {
      dsched::done(t, this, dsched::Op::exchange, old != v, dsched::bits(old), dsched::bits(v));
    }
    return old;
  }

  bool compare_exchange_weak(T& expected, T desired, std::memory_order,
                             std::memory_order) noexcept {
    return cas(expected, desired, true);
  }
  bool compare_exchange_weak(T& expected, T desired,
                             std::memory_order = std::memory_order_seq_cst) noexcept {
    return cas(expected, desired, true);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order,
                               std::memory_order) noexcept {
    return cas(expected, desired, false);
  }
  bool compare_exchange_strong(T& expected, T desired,
                               std::memory_order = std::memory_order_seq_cst) noexcept {
    return cas(expected, desired, false);
  }

  template <class U>
  T fetch_add(U arg, std::memory_order = std::memory_order_seq_cst) noexcept {
    return rmw(dsched::Op::fetch_add, [&] { return v_.fetch_add(arg); });
  }
  template <class U>
  T fetch_sub(U arg, std::memory_order = std::memory_order_seq_cst) noexcept {
    return rmw(dsched::Op::fetch_sub, [&] { return v_.fetch_sub(arg); });
  }
  template <class U>
  T fetch_or(U arg, std::memory_order = std::memory_order_seq_cst) noexcept {
    return rmw(dsched::Op::fetch_or, [&] { return v_.fetch_or(arg); });
  }
  template <class U>
  T fetch_and(U arg, std::memory_order = std::memory_order_seq_cst) noexcept {
    return rmw(dsched::Op::fetch_and, [&] { return v_.fetch_and(arg); });
  }

  // Harness only: the value, with no schedule point (the futex model's value check, which
  // runs under the scheduler's lock, and post-run checks).
  T peek() const noexcept { return v_.load(); }

 private:
  bool cas(T& expected, T desired, bool weak) noexcept {
    const dsched::Op op = weak ? dsched::Op::cas_weak : dsched::Op::cas_strong;
    dsched::ThreadCtl* t = dsched::point(this, op);
    if (t && weak && dsched::spurious_cas_failure(t)) {
      expected = v_.load();
      dsched::done(t, this, op, false, dsched::bits(expected), dsched::bits(expected));
      return false;
    }
    const T before = expected;
    const bool ok = v_.compare_exchange_strong(expected, desired);
    if (t) {
      dsched::done(t, this, op, ok && before != desired, dsched::bits(ok ? before : expected),
                   dsched::bits(ok ? desired : expected));
    }
    return ok;
  }

  template <class F>
  T rmw(dsched::Op op, F f) noexcept {
    dsched::ThreadCtl* t = dsched::point(this, op);
    const T old = f();
    if (t) {
      const T now = v_.load();
      dsched::done(t, this, op, old != now, dsched::bits(old), dsched::bits(now));
    }
    return old;
  }

  std::atomic<T> v_;
};

void atomic_fence(std::memory_order order) noexcept;

}  // namespace weft::detail
