// SPDX-License-Identifier: MIT
// weft/lock.hpp: weft::Lock and weft::RLock, Python's threading.Lock and threading.RLock.
//
// Lock is a mutual-exclusion lock that no thread owns: any thread may release it (as in
// Python), and releasing an unlocked Lock throws std::logic_error. RLock is reentrant: its
// owner may acquire it again, and must release it once per acquire; only the owner may
// release it (std::logic_error otherwise).
//
// Both satisfy the standard's TimedLockable (lock, unlock, try_lock, try_lock_for,
// try_lock_until), so std::scoped_lock, std::unique_lock and std::condition_variable_any
// work with them.
//
// Guarantees:
//  - An uncontended acquire and release are one compare-and-swap each: no lock, no
//    allocation, no system call. A thread that must wait spins briefly, then sleeps in the
//    kernel until a release wakes it; release wakes at most one waiter and only when one is
//    registered. Not fair: a running thread may take the lock before a woken one (as with
//    Python's and most OS locks), which keeps throughput high.
//  - acquire(timeout) with timeout <= 0 only tries; duration::max() waits forever.
//  - A stop request wakes a waiting acquire(..., stop_token), which returns false without the
//    lock.
//
// Memory ordering: for threads X and Y, everything X did before release() happens-before
// everything Y does after an acquire() that took the lock after that release.
//
// Example:
//     weft::Lock lock;
//     { std::scoped_lock g(lock); shared.push_back(x); }
//     if (lock.acquire(10ms)) { ...; lock.release(); }
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <utility>

#include "weft/detail/deadline.hpp"
#include "weft/detail/diag_hooks.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/wait_loop.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft {

class Condition;
namespace detail {
class LockAcquireOp;
struct AsyncAccess;
struct ConditionLock;
struct SelectAccess;
}  // namespace detail

class Lock {
 public:
  // An unnamed Lock; diagnostics identify it by address and, if they were on when it was
  // constructed, by `site`.
  // NOLINTNEXTLINE(google-explicit-constructor): a default constructor in practice.
  Lock(SourceSite site = SourceSite::current()) noexcept {
    detail::tsan_lock_created(this);
    detail::diag_constructed(this, detail::SourceKind::lock, site);
  }
  // A Lock that diagnostics call `name` (weft/diagnostics.hpp).
  explicit Lock(Name name, SourceSite site = SourceSite::current()) noexcept {
    detail::tsan_lock_created(this);
    detail::diag_named(this, detail::SourceKind::lock, name, site);
  }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock() {
    tsan_destroyed();
    detail::diag_destroyed(this);
  }

  // `site` (every acquire has it as its last, defaulted, argument) is where the caller
  // acquired the lock, for lock-order reports (weft/diagnostics.hpp); it costs nothing
  // unless diagnostics are on.
  bool acquire(bool blocking = true, SourceSite site = SourceSite::current()) {
    return noted(try_acquire() || (blocking && acquire_slow(detail::Deadline::never(), nullptr)),
                 site, !blocking);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout,
               SourceSite site = SourceSite::current()) {
    return noted(try_acquire() || acquire_slow(detail::Deadline::after(timeout), nullptr), site);
  }
  bool acquire(std::stop_token stop, SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    return noted(try_acquire() || acquire_slow(detail::Deadline::never(), &stop), site);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
               SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    return noted(try_acquire() || acquire_slow(detail::Deadline::after(timeout), &stop), site);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline,
                     SourceSite site = SourceSite::current()) {
    return noted(try_acquire() || acquire_slow(detail::Deadline::at(deadline), nullptr), site);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop,
                     SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    return noted(try_acquire() || acquire_slow(detail::Deadline::at(deadline), &stop), site);
  }

  // Throws std::logic_error if the lock is not locked.
  void release() { release(detail::SourceKind::lock); }

  bool locked() const noexcept { return (state().load(std::memory_order_relaxed) & kLocked) != 0; }

  // TimedLockable (through std::scoped_lock and the like, the site is in the standard
  // library's header).
  void lock(SourceSite site = SourceSite::current()) { acquire(true, site); }
  void unlock() { release(); }
  bool try_lock(SourceSite site = SourceSite::current()) noexcept {
    return noted(try_acquire(), site, true);
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout,
                    SourceSite site = SourceSite::current()) {
    return acquire(timeout, site);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline,
                      SourceSite site = SourceSite::current()) {
    return acquire_until(deadline, site);
  }

 private:
  friend class RLock;
  friend class Condition;
  friend class detail::LockAcquireOp;
  friend struct detail::SelectAccess;
  friend struct detail::AsyncAccess;
  friend struct detail::ConditionLock;

  static constexpr std::uint32_t kLocked = 1;
  // The waiters' announcement: set while the list is non-empty (wait_source.hpp).
  static constexpr std::uint32_t kWaiters = 2;
  // Set while deferred_ is non-empty; changed only under the source's lock. It makes
  // release()'s fast-path CAS fail, so the release that frees the lock also wakes them.
  static constexpr std::uint32_t kDeferred = 4;
  // Set while diagnostics know this lock's holder (noted()); cleared by the release.
  static constexpr std::uint32_t kTracked = 8;
  using Source = detail::WaitSource<detail::WordAnnouncement<std::uint32_t, kWaiters>>;

  detail::Atomic<std::uint32_t>& state() noexcept { return waiters_.announcement().word(); }
  const detail::Atomic<std::uint32_t>& state() const noexcept {
    return waiters_.announcement().word();
  }
  // After an acquire: with diagnostics on, records the caller as the holder and marks the
  // lock kTracked, so that its release (whoever makes it) takes the slow path and forgets
  // the holder. With diagnostics off: one relaxed load; release() pays nothing.
  // `try_only`: a try-lock (for TSAN: no lock-order edge).
  bool noted(bool acquired, SourceSite site = {}, bool try_only = false) noexcept {
    if (acquired) tsan_acquired(try_only);
    if (acquired && detail::diag_tracking()) [[unlikely]] {
      // relaxed: only the holder sets the bit; the release's RMW on the same word sees it.
      state().fetch_or(kTracked, std::memory_order_relaxed);
      detail::diag_lock_acquired(this, detail::SourceKind::lock, site);
    }
    return acquired;
  }
  // TSAN's view (WEFT_TSAN_MUTEX builds only; nothing otherwise). A weft Lock may be
  // released by any thread (Python's semantics); TSAN's exclusive mutex has an owner thread.
  // So TSAN is told the Lock is taken in shared mode (no owner: no report of a release or a
  // destruction by another thread), and about each acquisition (noted()) and each release
  // made by the thread that acquired it: tsan_holder_. After a release by another thread,
  // TSAN's per-thread lock set still has the lock in the acquirer's, and it stays so until
  // that thread acquires and releases it itself (never, if it has exited); meanwhile
  // acquisitions and releases by others are not annotated, so TSAN's sets never grow with
  // repeated hand-offs. Lock order is checked in shared mode as in exclusive. Happens-before
  // does not depend on any of this: the annotations come after the acquiring atomic and
  // before the releasing one, and TSAN sees those. The Lock inside an RLock never goes
  // through noted(), and is marked so that only the RLock is annotated.
  // A lock taken for a coroutine (async.hpp) is the coroutine's: the thread that ran the
  // attempt lets go of it in TSAN's view at once (tsan_disown), so that no thread is seen
  // holding it while it runs other work, and no thread's lock set keeps it after another
  // thread destroys the Lock (TSAN's per-thread set holds 64 locks, then aborts).
  void tsan_acquired(bool try_only) noexcept {
#ifdef WEFT_TSAN_MUTEX
    // relaxed: only the thread holding the weft Lock reads or writes it, and the Lock's own
    // acquire/release orders one holder's accesses before the next one's.
    if (tsan_holder_.load(std::memory_order_relaxed) != 0) return;
    tsan_holder_.store(detail::tsan_self(), std::memory_order_relaxed);
    detail::tsan_lock_locked(this, try_only);
#else
    (void)try_only;
#endif
  }
  void tsan_releasing() noexcept {
#ifdef WEFT_TSAN_MUTEX
    if (tsan_holder_.load(std::memory_order_relaxed) != detail::tsan_self()) return;
    detail::tsan_lock_unlocked(this);
    tsan_holder_.store(0, std::memory_order_relaxed);
#endif
  }
  void tsan_disown() noexcept {
    tsan_releasing();
  }
  void tsan_destroyed() noexcept {
#ifdef WEFT_TSAN_MUTEX
    if (tsan_holder_.load(std::memory_order_relaxed) == kTsanInner) return;
    // Destroyed while its acquirer holds it: let go first, so that the thread's lock set
    // forgets it (a new Lock may come to this address).
    if (tsan_holder_.load(std::memory_order_relaxed) == detail::tsan_self())
      detail::tsan_lock_unlocked(this);
    detail::tsan_destroyed(this);
#endif
  }
  // Unnamed, unregistered: the Lock inside an RLock (which diagnostics name instead).
  struct Inner {};
  explicit Lock(Inner) noexcept {
#ifdef WEFT_TSAN_MUTEX
    tsan_holder_.store(kTsanInner, std::memory_order_relaxed);  // never annotated
#endif
  }
  // release(); `kind`: what the USDT release probe reports (an RLock's Lock says rlock; it is
  // the RLock's first member, at the RLock's address).
  void release(detail::SourceKind kind) {
    tsan_releasing();
    std::uint32_t expected = kLocked;
    // release: publishes the critical section to the next acquirer. A lock whose holder
    // diagnostics recorded has kTracked set: the CAS fails and release_slow() forgets it.
    if (state().compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      return;
    }
    release_slow(kind);
  }
  bool try_acquire() noexcept {
    std::uint32_t s = state().load(std::memory_order_relaxed);
    while ((s & kLocked) == 0) {
      // acquire: pairs with release()'s release.
      if (state().compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  // `rlock`: the RLock this Lock is inside, which a blocked acquire reports instead.
  bool acquire_slow(detail::Deadline deadline, const std::stop_token* stop,
                    const void* rlock = nullptr);
  void release_slow(detail::SourceKind kind);
  // Wait morphing, for Condition::notify() (called with this lock held): the waiters it
  // claimed are woken by the release() that frees the lock, not at once, so that they wake
  // into a free lock instead of blocking on it again while the notifier still holds it.
  void defer_wakes(detail::WakeBatch& claimed) noexcept;
  // For a coroutine waiter that leaves while its notify's wake is deferred (async.hpp): takes
  // `node` back out of deferred_; false if it is not there (not deferred yet, or its wake is
  // under way).
  bool undefer(const detail::WaitNode& node) noexcept;

  Source waiters_;              // threads blocked in acquire, oldest first; owns the state word
  detail::WakeBatch deferred_;  // claimed by Condition::notify(), woken by the next release;
                                // guarded by waiters_.lock()
#ifdef WEFT_TSAN_MUTEX
  std::atomic<std::uint64_t> tsan_holder_{0};  // a tsan_self(), or 0; see tsan_acquired()
  static constexpr std::uint64_t kTsanInner = ~std::uint64_t{0};  // an RLock's Lock
#endif
};

class RLock {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a default constructor in practice.
  RLock(SourceSite site = SourceSite::current()) noexcept {
    detail::tsan_created(this);
    detail::diag_constructed(this, detail::SourceKind::rlock, site);
  }
  explicit RLock(Name name, SourceSite site = SourceSite::current()) noexcept {
    detail::tsan_created(this);
    detail::diag_named(this, detail::SourceKind::rlock, name, site);
  }
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;
  ~RLock() {
    // Destroying a held RLock is allowed (as in Python): TSAN hears of a release first.
    if (is_owned()) detail::tsan_unlocked(this, true);
    detail::tsan_destroyed(this);
    detail::diag_destroyed(this);
  }

  // The inner Lock is taken directly (try_acquire, acquire_slow), so that diagnostics see
  // this RLock, not the Lock inside it, as the one held and waited for.
  // `site`: as for Lock::acquire.
  bool acquire(bool blocking = true, SourceSite site = SourceSite::current()) {
    if (reenter()) return true;
    return adopt(lock_.try_acquire() ||
                     (blocking && lock_.acquire_slow(detail::Deadline::never(), nullptr, this)),
                 site);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout,
               SourceSite site = SourceSite::current()) {
    if (reenter()) return true;
    return adopt(
        lock_.try_acquire() || lock_.acquire_slow(detail::Deadline::after(timeout), nullptr, this),
        site);
  }
  bool acquire(std::stop_token stop, SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    if (reenter()) return true;
    return adopt(lock_.try_acquire() || lock_.acquire_slow(detail::Deadline::never(), &stop, this),
                 site);
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
               SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    if (reenter()) return true;
    return adopt(
        lock_.try_acquire() || lock_.acquire_slow(detail::Deadline::after(timeout), &stop, this),
        site);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline,
                     SourceSite site = SourceSite::current()) {
    if (reenter()) return true;
    return adopt(
        lock_.try_acquire() || lock_.acquire_slow(detail::Deadline::at(deadline), nullptr, this),
        site);
  }
  template <class Clock, class Duration>
  bool acquire_until(std::chrono::time_point<Clock, Duration> deadline, std::stop_token stop,
                     SourceSite site = SourceSite::current()) {
    if (stop.stop_requested()) return false;
    if (reenter()) return true;
    return adopt(
        lock_.try_acquire() || lock_.acquire_slow(detail::Deadline::at(deadline), &stop, this),
        site);
  }

  // Throws std::logic_error unless the calling thread owns the lock.
  void release();

  // Whether the calling thread owns the lock (Python: RLock._is_owned()).
  bool is_owned() const noexcept { return owner_.load(std::memory_order_relaxed) == self(); }

  void lock(SourceSite site = SourceSite::current()) { acquire(true, site); }
  void unlock() { release(); }
  bool try_lock(SourceSite site = SourceSite::current()) { return acquire(false, site); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout,
                    SourceSite site = SourceSite::current()) {
    return acquire(timeout, site);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline,
                      SourceSite site = SourceSite::current()) {
    return acquire_until(deadline, site);
  }

 private:
  friend class Condition;
  friend struct detail::ConditionLock;
  friend struct detail::SelectAccess;

  // A per-thread identity that costs one TLS address computation.
  static const void* self() noexcept {
    static thread_local const char tag = 0;
    return &tag;
  }
  bool reenter() noexcept {
    if (!is_owned()) return false;
    ++count_;
    detail::tsan_locked(this);
    return true;
  }
  bool adopt(bool acquired, SourceSite site = {}) noexcept {
    if (acquired) {
      // relaxed: only the owner compares owner_ with itself, and a thread always sees its
      // own last write; other threads can never read their own identity here by accident.
      owner_.store(self(), std::memory_order_relaxed);
      count_ = 1;
      detail::tsan_locked(this);
      detail::diag_acquired(this, detail::SourceKind::rlock, site);
    }
    return acquired;
  }
  // Condition::wait support: release fully, returning the depth; then restore it.
  std::size_t release_all();
  void restore(std::size_t depth);

  Lock lock_{Lock::Inner{}};
  detail::Atomic<const void*> owner_{nullptr};
  std::size_t count_ = 0;  // written only by the owner, under lock_
};

namespace detail {

// Waiting for the lock to be free (the wait loop's operation; select's too). Registration
// announces the waiter in the state word while the lock is held, so the release (an RMW on
// the same word) sees kWaiters and comes to claim; a lock found free is "ready" and the
// caller tries to take it.
class LockAcquireOp {
 public:
  explicit LockAcquireOp(Lock& l, SourceKind kind = SourceKind::lock,
                         const void* object = nullptr) noexcept
      : l_(&l), object_(object != nullptr ? object : &l), kind_(kind) {}
  Link link(WaitNode& node, Position pos) {
    return l_->waiters_.link(node, pos, [](std::uint32_t s) { return (s & Lock::kLocked) == 0; });
  }
  void unlink(WaitNode& node) noexcept { l_->waiters_.unlink(node); }
  WaitTarget target() const noexcept { return {kind_, object_}; }

 protected:
  Lock* l_;
  const void* object_;  // what diagnostics name: the Lock, or the RLock around it
  SourceKind kind_;
};

}  // namespace detail

}  // namespace weft
