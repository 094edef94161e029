// SPDX-License-Identifier: MIT
// weft/detail/diag_hooks.hpp: what the primitives themselves tell weft's diagnostics
// (weft/diagnostics.hpp): their names and construction sites, and which thread holds which
// Lock/RLock. Waits are reported through the wait loop's hooks (wait_loop.hpp).
//
// Cost when diagnostics are off (the default): a Lock/RLock acquire and release load one
// global word (relaxed) and branch on it; a primitive's constructor does the same, and its
// destructor loads one flag that is set only once anything was ever named. Nothing else; no
// primitive grows. -DWEFT_DIAGNOSTICS=0 removes all of it (and the wait loop's hooks).
//
// Names live in a side table keyed by address (src/diagnostics.cpp), filled only when a
// primitive is named or constructed while diagnostics are on, and emptied by the destructor;
// the table never dereferences the key, so a destroyed primitive is never touched.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "weft/detail/probes.hpp"
#include "weft/detail/wait_loop.hpp"

#ifndef WEFT_DIAGNOSTICS
#define WEFT_DIAGNOSTICS 1
#endif

// Under ThreadSanitizer, RLock and Lock tell TSAN they are mutexes (__tsan_mutex_*), so that
// TSAN's lock-order (potential deadlock) reports include them. A Lock may be released by a
// thread that did not acquire it, which TSAN's model cannot express: see Lock's tsan_*
// members. Semaphore is not a mutex to TSAN (a permit has no holder: weft/semaphore.hpp).
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN_MUTEX 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN_MUTEX 1
#endif
#endif
#if defined(WEFT_TSAN_MUTEX) && WEFT_DIAGNOSTICS
#include <sanitizer/tsan_interface.h>
#else
#undef WEFT_TSAN_MUTEX
#endif

namespace weft {

// Where a primitive was constructed: SourceSite::current() as a default argument gives the
// caller's file and line (std::source_location's job, which clang 14 cannot compile with
// libstdc++ 12; the builtins work in GCC and Clang alike).
struct SourceSite {
  const char* file = nullptr;
  unsigned line = 0;
  static constexpr SourceSite current(const char* file = __builtin_FILE(),
                                      unsigned line = __builtin_LINE()) noexcept {
    return SourceSite{file, line};
  }
};

// A primitive's name, for diagnostics: a string literal or any string (copied; names longer
// than 47 bytes are truncated).
class Name {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): Lock l{"jobs"} reads as intended.
  constexpr Name(const char* s) noexcept : s_(s) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Name(std::string_view s) noexcept : s_(s) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  Name(const std::string& s) noexcept : s_(s) {}
  constexpr std::string_view view() const noexcept { return s_; }

 private:
  std::string_view s_;
};

namespace detail {

// g_diag_flags and its bits are in parker.hpp (a claim reports itself to the trace). A
// primitive that misses a change of the flags only goes unrecorded (the reports then say
// "holder unknown"); the side table and the thread records are synchronized on their own.
// True once anything was ever put in the name table; never cleared. relaxed: whoever named
// an object happens-before its destruction (the user's own synchronization), so the
// destroying thread sees the flag (write-read coherence).
inline std::atomic<bool> g_diag_names_used{false};

void diag_register(const void* object, SourceKind kind, std::string_view name,
                   const SourceSite* site) noexcept;
void diag_forget(const void* object) noexcept;
// `site`: where the caller acquired it (for lock-order reports; file null if unknown). By
// value: its constants are then materialized in the caller's cold branch only.
void diag_lock_acquired(const void* lock, SourceKind kind, SourceSite site) noexcept;
void diag_lock_released(const void* lock) noexcept;

// An operation the flight recorder shows as an instant on the caller's track, beside the
// waits and wakes (weft/diagnostics.hpp, "trace"). Recorded only on the paths that block or
// wake someone (Event::set with waiters, a put or get that had to wait, a Semaphore acquire
// that had to wait, a queue's shutdown), so that the fast paths pay nothing when tracing is
// off; a put that wakes a getter is shown through its claim (the notifier's slice is named
// by what woke).
enum class TraceOp : std::uint8_t { put, get, set, acquire, shutdown };
void diag_trace_op(TraceOp op, SourceKind kind, const void* object) noexcept;
inline void diag_traced(TraceOp op, SourceKind kind, const void* object) noexcept {
#if WEFT_HAVE_PROBES
  switch (op) {  // the USDT probes (probes.hpp) fire whether tracing is on or not
    case TraceOp::put:
      WEFT_PROBE2(put, static_cast<int>(kind), object);
      break;
    case TraceOp::get:
      WEFT_PROBE2(get, static_cast<int>(kind), object);
      break;
    case TraceOp::set:
      WEFT_PROBE2(set, static_cast<int>(kind), object);
      break;
    case TraceOp::acquire:
      WEFT_PROBE2(acquire, static_cast<int>(kind), object);
      break;
    case TraceOp::shutdown:
      WEFT_PROBE2(shutdown, static_cast<int>(kind), object);
      break;
  }
#endif
#if WEFT_DIAGNOSTICS
  if (g_diag_flags.load(std::memory_order_relaxed) & kDiagTrace) [[unlikely]]
    diag_trace_op(op, kind, object);
#else
  (void)op, (void)kind, (void)object;
#endif
}

// Names the claims the calling thread makes in its scope by `op` instead of by the wait each
// ends (a shutdown wakes getters, but is no put), and records `op` itself (diag_traced).
void diag_notify_as(std::uint8_t op_plus_one) noexcept;
class DiagNotifiesAs {
 public:
  DiagNotifiesAs(TraceOp op, SourceKind kind, const void* object) noexcept {
    diag_traced(op, kind, object);
#if WEFT_DIAGNOSTICS
    // relaxed: as for every check of the flags, a change missed costs one name.
    if (g_diag_flags.load(std::memory_order_relaxed) & kDiagTrace) [[unlikely]] {
      diag_notify_as(static_cast<std::uint8_t>(static_cast<std::uint8_t>(op) + 1));
      set_ = true;
    }
#endif
  }
  DiagNotifiesAs(const DiagNotifiesAs&) = delete;
  DiagNotifiesAs& operator=(const DiagNotifiesAs&) = delete;
  ~DiagNotifiesAs() {
#if WEFT_DIAGNOSTICS
    if (set_) diag_notify_as(0);
#endif
  }

#if WEFT_DIAGNOSTICS
 private:
  bool set_ = false;
#endif
};

inline bool diag_tracking() noexcept {
#if WEFT_DIAGNOSTICS
  return (g_diag_flags.load(std::memory_order_relaxed) & kDiagTrack) != 0;
#else
  return false;
#endif
}

// In a constructor: registers the construction site while diagnostics are on.
inline void diag_constructed(const void* object, SourceKind kind, SourceSite site) noexcept {
  if (diag_tracking()) [[unlikely]]
    diag_register(object, kind, {}, &site);
}
// In a constructor given a name: always registers (so that turning diagnostics on later
// finds the name).
inline void diag_named(const void* object, SourceKind kind, Name name, SourceSite site) noexcept {
#if WEFT_DIAGNOSTICS
  diag_register(object, kind, name.view(), &site);
#else
  (void)object, (void)kind, (void)name, (void)site;
#endif
}
// In a destructor: removes the object from the name table.
inline void diag_destroyed(const void* object) noexcept {
#if WEFT_DIAGNOSTICS
  if (g_diag_names_used.load(std::memory_order_relaxed)) [[unlikely]]
    diag_forget(object);
#else
  (void)object;
#endif
}
inline void diag_acquired(const void* lock, SourceKind kind, SourceSite site = {}) noexcept {
  if (diag_tracking()) [[unlikely]]
    diag_lock_acquired(lock, kind, site);
}
inline void diag_released(const void* lock) noexcept {
  if (diag_tracking()) [[unlikely]]
    diag_lock_released(lock);
}

// TSAN's view of an RLock (no-ops without ThreadSanitizer). recursion: how many levels the
// call takes or gives back at once (Condition::wait releases them all).
inline void tsan_created(const void* m) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_create(const_cast<void*>(m), __tsan_mutex_write_reentrant);
#else
  (void)m;
#endif
}
inline void tsan_destroyed(const void* m) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_destroy(const_cast<void*>(m), 0);
#else
  (void)m;
#endif
}
inline void tsan_locked(const void* m, int recursion = 1) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_pre_lock(const_cast<void*>(m), 0);
  if (recursion == 1) {
    __tsan_mutex_post_lock(const_cast<void*>(m), 0, 0);
  } else {
    __tsan_mutex_post_lock(const_cast<void*>(m), __tsan_mutex_recursive_lock, recursion);
  }
#else
  (void)m, (void)recursion;
#endif
}
// TSAN's view of a Lock: a mutex taken in shared ("read") mode, the one mode of TSAN's
// model without an owner thread, so that no report depends on which thread releases it or
// destroys it (see Lock::tsan_acquired). Lock order is checked all the same. `try_only`: a
// try-lock, which cannot deadlock and adds no lock-order edge.
inline void tsan_lock_created(const void* m) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_create(const_cast<void*>(m), 0);
#else
  (void)m;
#endif
}
inline void tsan_lock_locked(const void* m, bool try_only) noexcept {
#ifdef WEFT_TSAN_MUTEX
  const unsigned flags = __tsan_mutex_read_lock | (try_only ? __tsan_mutex_try_lock : 0U);
  __tsan_mutex_pre_lock(const_cast<void*>(m), flags);
  __tsan_mutex_post_lock(const_cast<void*>(m), flags, 0);
#else
  (void)m, (void)try_only;
#endif
}
inline void tsan_lock_unlocked(const void* m) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_pre_unlock(const_cast<void*>(m), __tsan_mutex_read_lock);
  __tsan_mutex_post_unlock(const_cast<void*>(m), __tsan_mutex_read_lock);
#else
  (void)m;
#endif
}
// A number unique to the calling thread, never reused (a thread_local's address is: a new
// thread may get the storage of one that exited).
inline std::uint64_t tsan_self() noexcept {
  static std::atomic<std::uint64_t> next{1};
  // relaxed: only uniqueness matters, which the RMW gives.
  static thread_local const std::uint64_t self = next.fetch_add(1, std::memory_order_relaxed);
  return self;
}
inline void tsan_unlocked(const void* m, bool all = false) noexcept {
#ifdef WEFT_TSAN_MUTEX
  __tsan_mutex_pre_unlock(const_cast<void*>(m), all ? __tsan_mutex_recursive_unlock : 0);
  __tsan_mutex_post_unlock(const_cast<void*>(m), all ? __tsan_mutex_recursive_unlock : 0);
#else
  (void)m, (void)all;
#endif
}

}  // namespace detail
}  // namespace weft
