// SPDX-License-Identifier: MIT
// A benchmark-only prototype of an Event whose waiters live outside it (docs/benchmarks.md,
// section 3): the Event is one flag word; the waiters and a count of them sit in a global
// table of buckets keyed by the Event's address, as parking_lot and libstdc++'s atomic wait
// keep theirs. It exists to measure what weft::Event would cost built that way; it is not
// part of the library and supports only wait() without a timeout.
//
//   set()    if the flag is clear: exchange it to 1 (the one locked instruction; the last
//            access to the Event), then load the bucket's waiter count; only if that is
//            non-zero, lock the bucket and claim every waiter whose key is this address.
//   clear()  a plain store of 0.
//   wait()   return if the flag is set; otherwise link a node (key = address) in the bucket
//            and count it, under the bucket's lock; re-check the flag; park on the thread's
//            weft Parker (spin, yield, futex) until claimed.
//
// Why nothing is lost: the waiter's count increment (a seq_cst RMW) precedes its flag
// re-check, and set()'s exchange (seq_cst) precedes its count load, so either the waiter sees
// the flag or set() sees the count and claims the waiter under the bucket's lock. A claimed
// waiter returns true even if clear() ran since (CPython issue 13502), as weft::Event's does.
// Lifetime: after its exchange, set() touches only the table and Parkers, both of which
// outlive every Event, so a waiter woken by it may destroy the Event at once.
//
// Contenders: "table" (256 buckets) and "table_1" (one bucket: every Event collides, which
// shows what collisions cost: a set() whose bucket holds another Event's waiter takes the
// locked slow path, though it wakes nobody).
#include <array>
#include <atomic>
#include <cstdint>

#include <weft/detail/deadline.hpp>
#include <weft/detail/parker.hpp>

#include "sync_workloads.hpp"

namespace {

using weft::detail::Parker;
using weft::detail::WordLock;
using weft::detail::WordLockGuard;

struct TableNode {
  const void* key = nullptr;
  Parker* parker = nullptr;
  TableNode* next = nullptr;
  TableNode* prev = nullptr;
  bool linked = false;
};

struct alignas(64) Bucket {
  WordLock lock;
  // Nodes linked here (any key). Changed only under `lock`; read without it by set().
  std::atomic<std::uint32_t> waiters{0};
  TableNode* head = nullptr;  // guarded by lock

  void link(TableNode& n) {
    n.prev = nullptr;
    n.next = head;
    if (head != nullptr) head->prev = &n;
    head = &n;
    n.linked = true;
    waiters.fetch_add(1);  // seq_cst: ordered before the waiter's re-check of the flag
  }
  void unlink(TableNode& n) {
    (n.prev != nullptr ? n.prev->next : head) = n.next;
    if (n.next != nullptr) n.next->prev = n.prev;
    n.linked = false;
    // relaxed: a setter that still sees the old count only takes the slow path for nothing.
    waiters.fetch_sub(1, std::memory_order_relaxed);
  }
};

template <std::size_t Buckets>
class Table {
 public:
  static Bucket& of(const void* key) noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(key);
    const std::uint64_t h = static_cast<std::uint64_t>(a) * 0x9E3779B97F4A7C15ULL;
    return buckets_[static_cast<std::size_t>(h >> 32) % Buckets];
  }

 private:
  static inline std::array<Bucket, Buckets> buckets_{};
};

template <std::size_t Buckets>
class TableEvent {
 public:
  bool is_set() const noexcept { return flag_.load(std::memory_order_acquire) != 0; }

  void set() noexcept {
    // Already set: the set() that raised it owns the wake-ups of every waiter registered
    // before its exchange, and no waiter parks on a raised flag.
    if (flag_.load(std::memory_order_relaxed) != 0) return;
    Bucket& b = Table<Buckets>::of(this);
    flag_.exchange(1);  // seq_cst: before the count load below; the last access to *this
    if (b.waiters.load() != 0) [[unlikely]]
      wake_all(b, this);
  }

  // relaxed: clearing publishes nothing; waiters never return because the flag is clear.
  void clear() noexcept { flag_.store(0, std::memory_order_relaxed); }

  void wait() {
    if (!is_set()) wait_slow();
  }

 private:
  [[gnu::noinline]] void wait_slow() {
    Parker& me = Parker::current();
    Bucket& b = Table<Buckets>::of(this);
    for (;;) {
      me.prepare();
      TableNode node{this, &me};
      {
        WordLockGuard g(b.lock);
        b.link(node);
      }
      if (flag_.load() != 0) {  // seq_cst: after the count increment
        {
          WordLockGuard g(b.lock);
          if (node.linked) b.unlink(node);
        }
        me.settle();  // a setter that claimed us meanwhile is done with the node after this
        return;
      }
      // Wake-up source: a set() of this Event, which claims the node (wake_all).
      const weft::detail::Decision d = me.park(weft::detail::Deadline::never(), nullptr);
      if (d.claimed()) return;
      WordLockGuard g(b.lock);
      if (node.linked) b.unlink(node);
    }
  }

  // Claims every waiter of `key` under the bucket's lock, wakes them after unlocking.
  [[gnu::noinline]] static void wake_all(Bucket& b, const void* key) noexcept {
    std::array<Parker*, 64> woken{};
    std::size_t n = 0;
    bool more = true;
    while (more) {
      more = false;
      {
        WordLockGuard g(b.lock);
        for (TableNode* p = b.head; p != nullptr;) {
          TableNode* next = p->next;
          if (p->key == key) {
            if (n == woken.size()) {
              more = true;
              break;
            }
            b.unlink(*p);
            if (p->parker->try_claim(0)) woken[n++] = p->parker;
          }
          p = next;
        }
      }
      for (std::size_t i = 0; i < n; ++i) woken[i]->wake();
      n = 0;
    }
  }

  std::atomic<std::uint32_t> flag_{0};
};

const bool registered = [] {
  bench::register_event<TableEvent<256>>("table");
  bench::register_event<TableEvent<1>>("table_1");
  return true;
}();

}  // namespace
