// SPDX-License-Identifier: MIT
// Allocation failure on demand: replaces the global operator new / operator new[] (every
// form: sized, aligned, nothrow) of the test binary that includes this header, so that the
// N-th allocation made by the calling thread inside an armed region fails (std::bad_alloc,
// or nullptr for the nothrow forms).
//
// Include it in exactly one translation unit per executable (each weft test binary is one
// .cpp). Counting and failing are per thread and happen only inside an AllocFaults region,
// so GoogleTest, the watchdog and other threads are never affected; outside a region the
// replacement is malloc/free. Every other hook (ASan's, TSAN's) still sees the allocations:
// they go through malloc/aligned_alloc, which the sanitizers intercept.
//
//     for (long n = 1;; ++n) {
//       weft_test::AllocFaults faults(n);      // the n-th allocation from here fails
//       try { op(); } catch (const std::bad_alloc&) { check_unchanged(); continue; }
//       break;                                  // op made fewer than n allocations
//     }
//
// Not under ThreadSanitizer: clang links TSAN's own operator new/delete with --whole-archive,
// so a replacement cannot be linked (kAllocFaultsAvailable is false there, and the tests
// skip). ASan and UBSan builds run them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_NO_ALLOC_FAULTS 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_NO_ALLOC_FAULTS 1
#endif

namespace weft_test {

#if defined(WEFT_TEST_NO_ALLOC_FAULTS)
inline constexpr bool kAllocFaultsAvailable = false;
#else
inline constexpr bool kAllocFaultsAvailable = true;
#endif

namespace alloc_faults_detail {
struct PerThread {
  bool armed = false;
  long count = 0;    // allocations in the region so far
  long fail_at = 0;  // 0: count only
  long failed = 0;   // allocations failed in the region
};
inline thread_local PerThread tl;
inline std::atomic<long> injected_total{0};
}  // namespace alloc_faults_detail

// Arms the calling thread: the fail_at-th allocation (1 = the next one) fails; 0 only counts.
class AllocFaults {
 public:
  explicit AllocFaults(long fail_at = 0) noexcept {
    auto& t = alloc_faults_detail::tl;
    t = {};
    t.fail_at = fail_at;
    t.armed = true;
  }
  AllocFaults(const AllocFaults&) = delete;
  AllocFaults& operator=(const AllocFaults&) = delete;
  ~AllocFaults() { alloc_faults_detail::tl.armed = false; }

  // Allocations attempted in the region (the failed one included).
  long count() const noexcept { return alloc_faults_detail::tl.count; }
  bool failed() const noexcept { return alloc_faults_detail::tl.failed > 0; }
  void disarm() noexcept { alloc_faults_detail::tl.armed = false; }

  // Allocation failures injected by every region of every thread so far.
  static long injected() noexcept { return alloc_faults_detail::injected_total.load(); }
};

namespace alloc_faults_detail {
// true: this allocation must fail.
inline bool should_fail() noexcept {
  PerThread& t = tl;
  if (!t.armed) return false;
  if (++t.count != t.fail_at) return false;
  ++t.failed;
  injected_total.fetch_add(1, std::memory_order_relaxed);
  return true;
}

inline void* allocate(std::size_t n, std::size_t align) noexcept {
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

inline void* allocate_or_throw(std::size_t n, std::size_t align) {
  if (should_fail()) throw std::bad_alloc();
  void* p = allocate(n, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

inline void* allocate_or_null(std::size_t n, std::size_t align) noexcept {
  if (should_fail()) return nullptr;
  return allocate(n, align);
}
}  // namespace alloc_faults_detail

}  // namespace weft_test

#if !defined(WEFT_TEST_NO_ALLOC_FAULTS)
// NOLINTBEGIN(misc-new-delete-overloads, cert-dcl54-cpp, hicpp-new-delete-operators)
void* operator new(std::size_t n) {
  return weft_test::alloc_faults_detail::allocate_or_throw(n, 0);
}
void* operator new[](std::size_t n) {
  return weft_test::alloc_faults_detail::allocate_or_throw(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return weft_test::alloc_faults_detail::allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return weft_test::alloc_faults_detail::allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return weft_test::alloc_faults_detail::allocate_or_null(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return weft_test::alloc_faults_detail::allocate_or_null(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return weft_test::alloc_faults_detail::allocate_or_null(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return weft_test::alloc_faults_detail::allocate_or_null(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
// NOLINTEND(misc-new-delete-overloads, cert-dcl54-cpp, hicpp-new-delete-operators)
#endif  // !WEFT_TEST_NO_ALLOC_FAULTS
