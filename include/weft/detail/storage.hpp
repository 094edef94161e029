// weft/detail/storage.hpp: the storages of the queue family behind one small interface,
// and the locked ones (FIFO/LIFO deque, priority heap).
//
// A Storage<T> offers:
//   PushResult try_push(T& item)           moves from item only when it returns ok
//   PopResult  try_pop(std::optional<T>&)  fills the optional only when it returns ok
//   bool empty_and_open(), full_and_open() re-checks for the waiting handshake
//   size(), pushed() (successful pushes so far), close(), closed(), drain(vector&)
// Every operation either succeeds or leaves the storage and the caller's item as they were
// (strong guarantee), whatever the item's constructors or the comparator throw.
//
// The locked storages keep their container under a WordLock; that lock is what orders their
// pushes and pops against the waiting handshake (wait_queue.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "weft/detail/parker.hpp"
#include "weft/detail/wait_queue.hpp"

namespace weft::detail {

enum class PushResult { ok, full, shut_down };
enum class PopResult { ok, empty, shut_down };  // shut_down: empty and closed

// FIFO or LIFO over a deque: push_back/pop_front or pop_back never relocate elements, so a
// throwing move leaves the deque unchanged (unlike a vector's reallocation).
template <class T, bool Lifo>
class DequeContainer {
 public:
  void push(T& item, std::uint64_t /*seq*/) { items_.push_back(std::move(item)); }
  void pop(std::optional<T>& out) {
    if constexpr (Lifo) {
      out.emplace(std::move(items_.back()));
      items_.pop_back();
    } else {
      out.emplace(std::move(items_.front()));
      items_.pop_front();
    }
  }
  std::size_t size() const noexcept { return items_.size(); }

  // Moves every item to `out` in pop order (out has room reserved: no reallocation).
  void take_all(std::vector<T>& out) {
    if constexpr (Lifo) {
      while (!items_.empty()) {
        out.push_back(std::move(items_.back()));
        items_.pop_back();
      }
    } else {
      while (!items_.empty()) {
        out.push_back(std::move(items_.front()));
        items_.pop_front();
      }
    }
  }

 private:
  std::deque<T> items_;
};

// A binary min-heap under Compare, ties broken by insertion order (FIFO), so equal items come
// out in the order they were put. Entries are heap-allocated and the heap array holds
// pointers: every comparison happens before anything moves, and the moves are of pointers,
// so a comparator that throws leaves the heap exactly as it was.
template <class T, class Compare>
class HeapContainer {
 public:
  explicit HeapContainer(Compare comp = Compare()) : comp_(std::move(comp)) {}
  HeapContainer(const HeapContainer&) = delete;
  HeapContainer& operator=(const HeapContainer&) = delete;
  ~HeapContainer() {
    for (Entry* e : heap_) delete e;
  }

  void push(T& item, std::uint64_t seq) {
    if (heap_.size() == heap_.capacity()) heap_.reserve(heap_.empty() ? 16 : heap_.size() * 2);
    // 1. Where will it go? Only comparisons (which may throw): nothing changed yet.
    std::size_t pos = heap_.size();
    while (pos > 0) {
      const std::size_t parent = (pos - 1) / 2;
      if (!comp_(item, heap_[parent]->item)) break;  // ties: the older entry stays above
      pos = parent;
    }
    // 2. The entry (may throw bad_alloc or from T's move: still nothing changed).
    // new-expression: the allocation happens before the item is moved into the entry.
    std::unique_ptr<Entry> entry(new Entry{std::move(item), seq});
    // 3. Pointer moves only: cannot throw (capacity reserved above).
    heap_.push_back(nullptr);
    std::size_t hole = heap_.size() - 1;
    while (hole != pos) {
      const std::size_t parent = (hole - 1) / 2;
      heap_[hole] = heap_[parent];
      hole = parent;
    }
    heap_[pos] = entry.release();
  }

  void pop(std::optional<T>& out) {
    Entry* root = heap_.front();
    Entry* last = heap_.back();
    const std::size_t n = heap_.size() - 1;  // size once the last slot is vacated
    // 1. The path along which `last` sinks from the root: comparisons only.
    std::size_t path[64];
    int depth = 0;
    if (n > 0) {
      std::size_t i = 0;
      for (;;) {
        const std::size_t left = 2 * i + 1;
        if (left >= n) break;
        std::size_t child = left;
        if (left + 1 < n && before(*heap_[left + 1], *heap_[left])) child = left + 1;
        if (!before(*heap_[child], *last)) break;
        path[depth++] = child;
        i = child;
      }
    }
    // 2. Take the item (may throw from T's move: nothing changed).
    out.emplace(std::move(root->item));
    // 3. Pointer moves only.
    std::size_t hole = 0;
    for (int k = 0; k < depth; ++k) {
      heap_[hole] = heap_[path[k]];
      hole = path[k];
    }
    if (n > 0) heap_[hole] = last;
    heap_.pop_back();
    delete root;
  }

  std::size_t size() const noexcept { return heap_.size(); }

  void take_all(std::vector<T>& out) {
    while (!heap_.empty()) {
      std::optional<T> item;
      pop(item);
      out.push_back(std::move(*item));
    }
  }

 private:
  struct Entry {
    T item;
    std::uint64_t seq;
  };
  bool before(const Entry& a, const Entry& b) {
    if (comp_(a.item, b.item)) return true;
    if (comp_(b.item, a.item)) return false;
    return a.seq < b.seq;
  }

  Compare comp_;
  std::vector<Entry*> heap_;
};

// A container under a WordLock, with capacity, the closed flag and the push count.
template <class T, class Container>
class LockedStorage {
 public:
  template <class... Args>
  explicit LockedStorage(std::size_t cap, Args&&... args)
      : cap_(cap), items_(std::forward<Args>(args)...) {}

  // On success, claims one waiter of `notify` into `woken` inside the critical section: the
  // unlock is then this call's last access, and nobody can see the item before it.
  PushResult try_push(T& item, WaitQueue* notify, WakeBatch& woken) {
    WordLockGuard g(lock_);
    if (closed_) return PushResult::shut_down;
    if (cap_ != 0 && items_.size() >= cap_) return PushResult::full;
    items_.push(item, pushed_count_);
    if (notify != nullptr) notify->claim_one(woken);
    ++pushed_count_;
    size_.store(items_.size(), std::memory_order_relaxed);
    // relaxed: readers that must see this count (task_done for an item they got) got the
    // item through lock_, which orders this store before their load.
    pushed_.store(pushed_count_, std::memory_order_relaxed);
    return PushResult::ok;
  }

  PopResult try_pop(std::optional<T>& out, WaitQueue* notify, WakeBatch& woken) {
    WordLockGuard g(lock_);
    if (items_.size() == 0) return closed_ ? PopResult::shut_down : PopResult::empty;
    items_.pop(out);
    if (notify != nullptr) notify->claim_one(woken);
    size_.store(items_.size(), std::memory_order_relaxed);
    return PopResult::ok;
  }

  bool empty_and_open() noexcept {
    WordLockGuard g(lock_);
    return !closed_ && items_.size() == 0;
  }
  bool full_and_open() noexcept {
    WordLockGuard g(lock_);
    return !closed_ && cap_ != 0 && items_.size() >= cap_;
  }

  // A snapshot for qsize()/empty()/full(), without the lock.
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  std::uint64_t pushed() const noexcept { return pushed_.load(std::memory_order_relaxed); }

  void close() noexcept {
    WordLockGuard g(lock_);
    closed_ = true;
    closed_flag_.store(true, std::memory_order_relaxed);
  }
  bool closed() const noexcept { return closed_flag_.load(std::memory_order_relaxed); }

  void drain(std::vector<T>& out) {
    WordLockGuard g(lock_);
    out.reserve(out.size() + items_.size());
    // If T's move throws part-way, the items not yet taken stay, and size_ says so.
    struct SyncSize {
      LockedStorage* s;
      ~SyncSize() { s->size_.store(s->items_.size(), std::memory_order_relaxed); }
    } sync{this};
    items_.take_all(out);
  }

 private:
  const std::size_t cap_;  // 0: unbounded
  WordLock lock_;          // protects items_, closed_, pushed_count_
  Container items_;
  bool closed_ = false;
  std::uint64_t pushed_count_ = 0;
  Atomic<std::size_t> size_{0};      // mirrors items_.size() for lock-free qsize()
  Atomic<std::uint64_t> pushed_{0};  // mirrors pushed_count_
  Atomic<bool> closed_flag_{false};  // mirrors closed_
};

}  // namespace weft::detail
