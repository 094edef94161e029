// SPDX-License-Identifier: MIT
// weft/detail/storage.hpp: the storages of the queue family behind one small interface,
// and the locked ones (FIFO/LIFO deque, priority heap).
//
// A Storage<T> offers:
//   PushResult try_push(T& item, notify, woken)  moves from item only when it returns ok
//   PopTicket(storage, notify, woken)            one pop attempt: status(), then take(sink)
//   bool empty_and_open(), full_and_open()       re-checks for the waiting handshake
//   size(), pushed() (successful pushes so far), close(), closed(), drain(vector&)
//   PushResult try_push_many(feed, done, notify, woken)
//                                                pushes items from a BatchFeed while there is
//                                                room: ok (the feed is empty), full or
//                                                shut_down; adds each item pushed to `done`
//   PopResult try_pop_many(out, max, done, notify, woken)
//                                                pops 1..max items into a BatchOut: ok, or
//                                                empty / shut_down (nothing popped)
// A batch that throws (an item's copy or move, the comparator, the sink) keeps what it did
// before the throw, counted in `done`, with its waiters claimed; the item that threw stays
// where it was (with the caller, or queued).
// Every operation either succeeds or leaves the storage and the caller's item as they were
// (strong guarantee), whatever the item's constructors or the comparator throw.
//
// A pop is a ticket rather than a function that returns the item: the ticket finds the item
// and holds it in place (under the lock, or in its claimed ring slot); take(sink) builds the
// caller's result straight from it (one move: `T get()` returns a prvalue made there); the
// ticket removes the item only once that construction has returned. If it throws, the item
// stays where it was. No intermediate std::optional, so no second move that could throw
// after the item had already left the queue.
//
// The locked storages keep their container under a WordLock; that lock is what orders their
// pushes and pops against the waiting handshake (wait_source.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/parker.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft::detail {

enum class PushResult { ok, full, shut_down };
enum class PopResult { ok, empty, shut_down };  // shut_down: empty and closed

// ---- batches: where a put_many's items come from and where a get_many's go ----------------

// The items of a put_many: [it, end). An iterator whose reference is T&& (std::move_iterator)
// gives items to move from (only once the storage took them); any other reference gives the
// value a T is built from (a copy). The caller counts an item as stored before it advances
// the feed, so an iterator whose ++ throws cannot leave a stored item uncounted.
template <class T, class It, class S>
class BatchFeed {
  using Ref = std::iter_reference_t<It>;
  // What the items are read through on the lock-free ring's claimed run: the iterator, or
  // the one a std::move_iterator wraps.
  template <class I>
  struct Base {
    using type = I;
  };
  template <class B>
  struct Base<std::move_iterator<B>> {
    using type = B;
  };
  using BaseIt = typename Base<It>::type;

 public:
  // Whether the items are moved from (else a T is built from each).
  static constexpr bool kMoves = std::is_same_v<Ref, T&&>;
  // Whether the ring may claim slots for a run of items before it builds them: only when
  // nothing between the claim and the last publication can throw or wait on the caller.
  // The items are then read through plain pointers (a contiguous range of known size), and
  // a T is built from each without throwing; any other range goes one item at a time, each
  // built before its slot is claimed.
  static constexpr bool kClaimRun =
      std::contiguous_iterator<BaseIt> && std::sized_sentinel_for<S, It> &&
      (kMoves ? std::is_nothrow_move_constructible_v<T> : std::is_nothrow_constructible_v<T, Ref>);

  BatchFeed(It it, S end) : it_(std::move(it)), end_(std::move(end)) {}
  bool empty() const { return it_ == end_; }
  // For kClaimRun: the items left, as a pointer and a count (read before anything is
  // claimed: may throw).
  auto run() const requires kClaimRun {
    const auto n = static_cast<std::size_t>(end_ - it_);
    if constexpr (std::is_same_v<It, BaseIt>) {
      return std::pair{std::to_address(it_), n};
    } else {
      return std::pair{std::to_address(it_.base()), n};
    }
  }
  // Builds a T at `where` from the item at `p` (a pointer from run()).
  template <class P>
  static void construct_at(void* where, P p) noexcept requires kClaimRun {
    if constexpr (std::is_same_v<It, BaseIt>) {
      ::new (where) T(*p);  // from Ref, an lvalue
    } else {
      ::new (where) T(std::move(*p));  // from Ref, the move_iterator's rvalue
    }
  }
  // Calls f(T&) with the current item (moved from only if f stores it) or with a T built
  // from it; returns what f returned. Does not advance.
  template <class F>
  bool with_next(F&& f) {
    if constexpr (kMoves) {
      T&& item = *it_;
      return f(static_cast<T&>(item));
    } else {
      T item(*it_);
      return f(item);
    }
  }
  void advance() { ++it_; }
  void advance(std::size_t n) {
    std::ranges::advance(it_, static_cast<std::iter_difference_t<It>>(n));
  }

 private:
  It it_;
  S end_;
};

// A put_many's items one at a time through the storage's own try_push, for a range the
// storage cannot take as one run (BatchFeed::kClaimRun false): each item is built before the
// storage is touched, and its getter is woken before the caller's range is read again (the
// range may be slow, throw, or use the queue itself).
template <class Storage, class Feed>
PushResult push_each(Storage& storage, Feed& feed, std::size_t& done, FlagSource* notify) {
  PushResult r = storage.closed() ? PushResult::shut_down : PushResult::ok;
  while (r == PushResult::ok && !feed.empty()) {
    bool stored = false;
    {
      WakeBatch woken;  // wakes at the end of this scope, after the item's last access
      stored = feed.with_next([&](auto& item) {
        return (r = storage.try_push(item, notify, woken)) == PushResult::ok;
      });
    }
    if (!stored) break;
    ++done;  // counted before the feed advances (its ++ may throw)
    feed.advance();
  }
  return r;
}

// drain() of a lock-free storage, after its close(): pops everything through its own
// tickets, waiting out pushes that claimed a position before the close. Cannot throw once
// `out` has room (T moves without throwing).
template <class Storage, class T>
void drain_by_tickets(Storage& storage, std::vector<T>& out) {
  struct Append {
    std::vector<T>& out;
    void take(T&& item) noexcept { out.push_back(std::move(item)); }
  } append{out};
  out.reserve(out.size() + storage.size());
  WakeBatch none;
  for (;;) {
    typename Storage::PopTicket t(storage, nullptr, none);
    if (t.status() != PopResult::ok) return;
    t.take(append);
  }
}

// Where a get_many's items go: appended to a vector (after a reserve, so that the ring's
// appends cannot throw), or written through an output iterator.
// Both are small values that the ring copies into a local while it works (and back).
template <class T>
class VectorOut {
 public:
  explicit VectorOut(std::vector<T>& v) noexcept : v_(&v) {}
  // Room for at least n more items, called before anything is taken (may throw
  // bad_alloc); returns the room there is (appends up to it cannot reallocate).
  std::size_t prepare(std::size_t n) {
    v_->reserve(v_->size() + n);
    return v_->capacity() - v_->size();
  }
  // Cannot throw after prepare() when T moves without throwing.
  static constexpr bool kNothrow = std::is_nothrow_move_constructible_v<T>;
  void operator()(T&& item) noexcept(kNothrow) { v_->push_back(std::move(item)); }

 private:
  std::vector<T>* v_;
};
template <class T, class Out>
class IteratorOut {
 public:
  explicit IteratorOut(Out out) noexcept(std::is_nothrow_move_constructible_v<Out>)
      : out_(std::move(out)) {}
  std::size_t prepare(std::size_t) noexcept { return static_cast<std::size_t>(-1); }
  // The ring holds the iterator in a local while it empties a claimed run: its moves count.
  static constexpr bool kNothrow =
      noexcept(*std::declval<Out&>() = std::declval<T&&>())&& noexcept(++std::declval<Out&>()) &&
      std::is_nothrow_move_constructible_v<Out> && std::is_nothrow_move_assignable_v<Out>;
  void operator()(T&& item) noexcept(kNothrow) {
    *out_ = std::move(item);
    ++out_;
  }

 private:
  Out out_;
};

// FIFO or LIFO over a deque: push_back/pop_front or pop_back never relocate elements, so a
// throwing move leaves the deque unchanged (unlike a vector's reallocation).
template <class T, bool Lifo>
class DequeContainer {
 public:
  struct PopPlan {};  // nothing to decide before a pop

  void push(T& item, std::uint64_t /*seq*/) { items_.push_back(std::move(item)); }
  // A pop in three steps, so that the item can be moved out before it is removed:
  // plan_pop() (may throw, changes nothing), front(plan), commit_pop(plan) (cannot throw).
  PopPlan plan_pop() noexcept { return {}; }
  T& front(const PopPlan&) noexcept { return Lifo ? items_.back() : items_.front(); }
  void commit_pop(const PopPlan&) noexcept {
    if constexpr (Lifo) {
      items_.pop_back();
    } else {
      items_.pop_front();
    }
  }
  std::size_t size() const noexcept { return items_.size(); }

  // Visits every item in pop order (for drain); may throw from f, changes nothing itself.
  template <class F>
  void for_each_in_pop_order(F&& f) {
    if constexpr (Lifo) {
      for (auto it = items_.rbegin(); it != items_.rend(); ++it) f(*it);
    } else {
      for (T& item : items_) f(item);
    }
  }
  void clear() noexcept { items_.clear(); }

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
  ~HeapContainer() { clear(); }

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

  // The path along which the last entry sinks from the root once the root is taken: the
  // only comparisons of a pop, made before anything changes.
  // Only path[0, depth) is written and read: zeroing 512 bytes per pop would buy nothing.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
  struct PopPlan {
    std::size_t path[64];
    int depth = 0;
  };
  PopPlan plan_pop() {
    PopPlan plan;
    const std::size_t n = heap_.size() - 1;  // size once the last slot is vacated
    const Entry* last = heap_.back();
    std::size_t i = 0;
    for (;;) {
      const std::size_t left = 2 * i + 1;
      if (left >= n) break;
      std::size_t child = left;
      if (left + 1 < n && before(*heap_[left + 1], *heap_[left])) child = left + 1;
      if (!before(*heap_[child], *last)) break;
      plan.path[plan.depth++] = child;
      i = child;
    }
    return plan;
  }
  T& front(const PopPlan&) noexcept { return heap_.front()->item; }
  // Pointer moves only.
  void commit_pop(const PopPlan& plan) noexcept {
    Entry* root = heap_.front();
    Entry* last = heap_.back();
    std::size_t hole = 0;
    for (int k = 0; k < plan.depth; ++k) {
      heap_[hole] = heap_[plan.path[k]];
      hole = plan.path[k];
    }
    if (heap_.size() > 1) heap_[hole] = last;
    heap_.pop_back();
    delete root;
  }

  std::size_t size() const noexcept { return heap_.size(); }

  // Visits every item in pop order: sorts a copy of the pointer array (comparisons and
  // allocation may throw; the heap itself is untouched), then visits.
  template <class F>
  void for_each_in_pop_order(F&& f) {
    std::vector<Entry*> order(heap_);
    std::sort(order.begin(), order.end(),
              [this](const Entry* a, const Entry* b) { return before(*a, *b); });
    for (Entry* e : order) f(e->item);
  }
  void clear() noexcept {
    for (Entry* e : heap_) delete e;
    heap_.clear();
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
  static constexpr bool kMoveMayThrow = !std::is_nothrow_move_constructible_v<T>;

 public:
  // A get_many's sink may throw: the item it was given stays queued.
  static constexpr bool kPopSinkMustNotThrow = false;

  template <class... Args>
  explicit LockedStorage(std::size_t cap, Args&&... args)
      : cap_(cap), items_(std::forward<Args>(args)...) {}

  // On success, claims one waiter of `notify` into `woken` inside the critical section: the
  // unlock is then this call's last access, and nobody can see the item before it.
  // flatten: keeps the container's push (std::deque::push_back) inline. Without it g++ 12
  // outlines that push into a shared clone once push_slow also calls this function, which
  // costs the unbounded queue 12 instructions per item (callgrind, `unbounded` workload).
  [[gnu::flatten]] PushResult try_push(T& item, FlagSource* notify, WakeBatch& woken) {
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

  // One pop attempt (see the top of this file). Holds lock_ for its lifetime; when the
  // status is ok, take(sink) must be called once. On ok it claims one waiter of `notify`
  // into `woken` at once (if the take then throws, that waiter's wake-up is spurious: it
  // retries and sleeps again); when the ticket ends it removes the item, inside the critical
  // section, so the unlock is the pop's last access.
  class PopTicket {
   public:
    PopTicket(LockedStorage& s, FlagSource* notify, WakeBatch& woken) : s_(s), guard_(s.lock_) {
      if (s.items_.size() == 0) {
        status_ = s.closed_ ? PopResult::shut_down : PopResult::empty;
        return;
      }
      plan_ = s.items_.plan_pop();  // may throw (the comparator): guard_ unlocks
      status_ = PopResult::ok;
      if (notify != nullptr) notify->claim_one(woken);
    }
    PopTicket(const PopTicket&) = delete;
    PopTicket& operator=(const PopTicket&) = delete;
    ~PopTicket() {
      if (!taken_) return;
      // The result was not built (its construction threw): the item stays.
      if constexpr (kMoveMayThrow) {
        if (std::uncaught_exceptions() != uncaught_) return;
      }
      s_.items_.commit_pop(plan_);
      s_.size_.store(s_.items_.size(), std::memory_order_relaxed);
    }

    PopResult status() const noexcept { return status_; }
    // Returns sink.take(T&&)'s result, built from the item in place.
    template <class Sink>
    decltype(auto) take(Sink& sink) {
      taken_ = true;
      if constexpr (kMoveMayThrow) uncaught_ = std::uncaught_exceptions();
      return sink.take(std::move(s_.items_.front(plan_)));
    }

   private:
    LockedStorage& s_;
    WordLockGuard guard_;
    typename Container::PopPlan plan_{};
    PopResult status_ = PopResult::empty;
    bool taken_ = false;
    int uncaught_ = 0;
  };

  // The pop ticket as three calls whose state is the caller's scalars (FifoStorage keeps its
  // ticket in registers: a ticket whose address reaches an out-of-line call cannot be).
  // For a T that moves without throwing and a container without a plan (the deque).
  // pop_begin takes lock_ and reports; unless ok it has unlocked again. On ok: pop_item is
  // the item in place, and pop_end(taken) removes it if it was taken, then unlocks.
  PopResult pop_begin(FlagSource* notify, WakeBatch& woken) noexcept {
    static_assert(!kMoveMayThrow && std::is_empty_v<typename Container::PopPlan>);
    lock_.lock();
    if (items_.size() == 0) {
      const PopResult r = closed_ ? PopResult::shut_down : PopResult::empty;
      lock_.unlock();
      return r;
    }
    if (notify != nullptr) notify->claim_one(woken);
    return PopResult::ok;
  }
  T& pop_item() noexcept { return items_.front({}); }
  void pop_end(bool taken) noexcept {
    if (taken) {
      items_.commit_pop({});
      size_.store(items_.size(), std::memory_order_relaxed);  // relaxed: as in PopTicket
    }
    lock_.unlock();
  }

  // Pushes items from `feed` while there is room, under one lock acquisition; the waiters
  // for the items pushed are claimed inside the critical section (see try_push).
  template <class Feed>
  PushResult try_push_many(Feed& feed, std::size_t& done, FlagSource* notify, WakeBatch& woken) {
    // Only a contiguous range of nothrow-built items is read under the lock.
    if constexpr (!Feed::kClaimRun) return push_each(*this, feed, done, notify);
    WordLockGuard g(lock_);
    if (closed_) return PushResult::shut_down;
    // Publishes what was pushed, also when an item throws: declared after the guard, so it
    // runs before the unlock.
    BatchPublish publish{*this, done, notify, woken, true};
    while (!feed.empty()) {
      if (cap_ != 0 && items_.size() >= cap_) return PushResult::full;
      feed.with_next([this, &publish](T& item) {
        items_.push(item, pushed_count_ + publish.n);
        return true;
      });
      ++publish.n;  // stored: counted before the feed advances (its ++ may throw)
      feed.advance();
    }
    return PushResult::ok;
  }

  // Pops up to `max` items into `out` under one lock acquisition, each removed only once
  // `out` took it (if out or the comparator throws, that item stays queued); claims as many
  // waiters of `notify` inside the critical section.
  template <class Out>
  PopResult try_pop_many(Out& out, std::size_t max, std::size_t& done, FlagSource* notify,
                         WakeBatch& woken) {
    WordLockGuard g(lock_);
    if (items_.size() == 0) return closed_ ? PopResult::shut_down : PopResult::empty;
    BatchPublish publish{*this, done, notify, woken, false};
    (void)out.prepare(std::min(max, items_.size()));  // fewer reallocations
    while (publish.n < max && items_.size() != 0) {
      const auto plan = items_.plan_pop();  // may throw (the comparator): nothing changed
      out(std::move(items_.front(plan)));   // may throw: the item stays
      items_.commit_pop(plan);
      ++publish.n;
    }
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
  // select's hints (queue_core.hpp), without the lock: false only when size() read 0 (the
  // capacity) and closed() read false. Two relaxed loads, not one snapshot: each value is
  // one the queue had, no older than a change the caller synchronized with (that change
  // happens before the load, so coherence shows it or a later value), but the two need not
  // hold at one instant. That is enough for select: it never misses an item or a close the
  // caller synchronized with, and a stale "maybe" costs only an attempt under the lock.
  bool pop_hint() const noexcept { return size() != 0 || closed(); }
  bool push_hint() const noexcept { return cap_ == 0 || size() < cap_ || closed(); }

  // A snapshot for qsize()/empty()/full(), without the lock.
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  std::uint64_t pushed() const noexcept { return pushed_.load(std::memory_order_relaxed); }

  void close() noexcept {
    WordLockGuard g(lock_);
    closed_ = true;
    closed_flag_.store(true, std::memory_order_relaxed);
  }
  bool closed() const noexcept { return closed_flag_.load(std::memory_order_relaxed); }

  // Appends every item to `out` in pop order and empties the storage. If T moves without
  // throwing, or can be copied, this is all or nothing: the items are moved (or, when the
  // move may throw, copied) first and removed only once all have arrived, so a throw leaves
  // the storage and `out` as they were. A move-only T whose move throws is taken item by
  // item: the items not yet taken stay.
  void drain(std::vector<T>& out) {
    WordLockGuard g(lock_);
    // size_ follows items_ whatever happens.
    // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a local scope guard
    struct SyncSize {
      LockedStorage* s;
      ~SyncSize() { s->size_.store(s->items_.size(), std::memory_order_relaxed); }
    } sync{this};
    out.reserve(out.size() + items_.size());  // may throw bad_alloc: nothing changed yet
    if constexpr (!kMoveMayThrow || std::copy_constructible<T>) {
      const std::size_t base = out.size();
      try {
        // move_if_noexcept: a copy when the move may throw.
        items_.for_each_in_pop_order(
            [&out](T& item) { out.push_back(std::move_if_noexcept(item)); });
      } catch (...) {
        while (out.size() > base) out.pop_back();
        throw;
      }
      items_.clear();
    } else {
      while (items_.size() != 0) {
        const auto plan = items_.plan_pop();
        out.push_back(std::move(items_.front(plan)));
        items_.commit_pop(plan);
      }
    }
  }

 private:
  // The end of a batch, under lock_ (its guard is declared after the lock's): the counters
  // follow the n items pushed or popped, and n waiters of `notify` are claimed.
  // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a scope guard
  struct BatchPublish {
    LockedStorage& s;
    std::size_t& done;
    FlagSource* notify = nullptr;
    WakeBatch& woken;
    bool pushing = false;
    std::size_t n = 0;
    ~BatchPublish() {
      if (n == 0) return;
      if (notify != nullptr && notify->maybe_waiting()) notify->claim(woken, n);
      // relaxed: a snapshot for qsize(), as in try_push; the lock orders everything else.
      s.size_.store(s.items_.size(), std::memory_order_relaxed);
      if (pushing) {
        s.pushed_count_ += n;
        // relaxed: as in try_push.
        s.pushed_.store(s.pushed_count_, std::memory_order_relaxed);
      }
      done += n;
    }
  };

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
