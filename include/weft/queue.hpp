// SPDX-License-Identifier: MIT
// weft/queue.hpp: weft::Queue, LifoQueue, PriorityQueue and SimpleQueue, Python's queue
// module for C++.
//
// Queue<T> is FIFO, LifoQueue<T> LIFO, PriorityQueue<T, Compare> smallest first (equal items
// in the order they were put); all three may be bounded (maxsize > 0), track tasks
// (task_done()/join()) and shut down. SimpleQueue<T> is an unbounded FIFO without task
// tracking or shutdown. T may be move-only.
//
// Guarantees:
//  - Nothing is lost: a put that fails (Full, ShutDown, Cancelled, a timeout, or an exception
//    from T's constructors, the comparator or the allocator) leaves the queue unchanged and
//    the item with the caller; shutdown(true) returns the items it removed.
//  - A put that finds room and a get that finds an item make no system call. A Queue or
//    SimpleQueue of a nothrow-movable T is lock-free on that path: bounded, Vyukov's ring
//    (detail/ring.hpp; up to 4 MiB of slots, allocated at construction: a larger maxsize
//    gets the locked deque); unbounded, a list of ~4 KiB segments (detail/segment_list.hpp;
//    items over ~500 bytes: the locked deque) whose memory follows its contents (a drained
//    queue keeps at most three segments; one within its segments allocates nothing). Others take
//    a short internal lock. A thread that must wait spins briefly, then sleeps in the kernel
//    until an operation that lets it proceed wakes it: a put wakes one getter, a get wakes
//    one putter, shutdown wakes all.
//  - Negative timeouts throw std::invalid_argument (Python: ValueError) on every form that
//    takes one; duration::max() waits forever; deadlines use the monotonic clock.
//  - After shutdown(): puts throw ShutDown; gets return what is left, then throw ShutDown
//    (at once after shutdown(true)); every blocked put/get wakes.
//  - qsize() is never negative and, when bounded, never above maxsize(); maxsize() is the
//    value given (<= 0: unbounded), as in Python.
//  - A stop_token form returns false/nullopt, or throws weft::Cancelled, when a stop is
//    requested before it could proceed, and then changes nothing.
//  - A thread woken by put() or get() may destroy the queue at once; after a put_many, the
//    thread that got its last item may.
//  - Batches (put_many, get_many; see there): a batch that moved at least one item returns
//    its count whatever stopped it, and only a batch that moved nothing throws; each item is
//    one task; a batch of k items wakes up to k waiters of the other side.
//
// Memory ordering: everything a thread did before put(x) happens-before everything the
// thread that gets x does after get() returns it; everything a thread did before a
// task_done() happens-before the return of a join() that it released.
//
// Example:
//     weft::Queue<std::unique_ptr<Job>> jobs(100);
//     std::jthread worker([&] {
//       for (auto job : jobs.consume()) { job->run(); jobs.task_done(); }
//     });
//     jobs.put(std::make_unique<Job>());
//     jobs.join();           // every job done
//     jobs.shutdown();       // the worker's loop ends
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/deadline.hpp"
#include "weft/detail/queue_core.hpp"
#include "weft/detail/ring.hpp"
#include "weft/detail/segment_list.hpp"
#include "weft/detail/storage.hpp"
#include "weft/errors.hpp"

namespace weft {

namespace detail {

struct SelectAccess;

// Queue's and SimpleQueue's storage, chosen once, at construction: when T moves without
// throwing, the lock-free ring if bounded (up to Ring<T>::max_capacity(), 4 MiB of slots) and
// the lock-free segment list if unbounded (segment_list.hpp; Slots per segment, 0 for items
// too large for it); otherwise, and for a larger maxsize, a locked deque.
template <class T, std::size_t Slots = segment_slots<T>()>
class FifoStorage {
  static constexpr bool kLockFree = std::is_nothrow_move_constructible_v<T>;
  static constexpr bool kList = kLockFree && Slots != 0;
  using Locked = LockedStorage<T, DequeContainer<T, false>>;
  // Placeholders when T's move may throw, so that neither lock-free storage is instantiated.
  // (Without kList the list's type is instantiated, with one slot, and never constructed.)
  using RingT = std::conditional_t<kLockFree, Ring<T>, int>;
  using ListT = std::conditional_t<kLockFree, SegmentList<T, Slots == 0 ? 1 : Slots>, int>;

 public:
  explicit FifoStorage(std::size_t cap) {
    if constexpr (kLockFree) {
      if (cap == 0 && kList) {
        list_ = std::make_unique<ListT>();
        return;
      }
      if (cap != 0 && cap <= Ring<T>::max_capacity()) {
        ring_ = std::make_unique<RingT>(cap);
        return;
      }
    }
    locked_.emplace(cap);
  }

#define WEFT_FIFO_DISPATCH(call)   \
  if constexpr (kLockFree) {       \
    if (ring_) return ring_->call; \
    if (list_) return list_->call; \
  }                                \
  return locked_->call

  PushResult try_push(T& item, FlagSource* notify, WakeBatch& woken) {
    WEFT_FIFO_DISPATCH(try_push(item, notify, woken));
  }
  bool empty_and_open() noexcept {
    WEFT_FIFO_DISPATCH(empty_and_open());
  }
  bool full_and_open() noexcept {
    WEFT_FIFO_DISPATCH(full_and_open());
  }
  // select's hints (queue_core.hpp): the lock-free storages' re-checks are lock-free already.
  bool pop_hint() noexcept {
    if constexpr (kLockFree) {
      if (ring_) return !ring_->empty_and_open();
      if (list_) return !list_->empty_and_open();
    }
    return locked_->pop_hint();
  }
  bool push_hint() noexcept {
    if constexpr (kLockFree) {
      if (ring_) return !ring_->full_and_open();
      if (list_) return true;  // unbounded
    }
    return locked_->push_hint();
  }
  std::size_t size() const noexcept {
    WEFT_FIFO_DISPATCH(size());
  }
  std::uint64_t pushed() const noexcept {
    WEFT_FIFO_DISPATCH(pushed());
  }
  void close() noexcept {
    WEFT_FIFO_DISPATCH(close());
  }
  bool closed() const noexcept {
    WEFT_FIFO_DISPATCH(closed());
  }
  void drain(std::vector<T>& out) {
    out.reserve(out.size() + size());
    WEFT_FIFO_DISPATCH(drain(out));
  }
  template <class Feed>
  PushResult try_push_many(Feed& feed, std::size_t& done, FlagSource* notify, WakeBatch& woken) {
    WEFT_FIFO_DISPATCH(try_push_many(feed, done, notify, woken));
  }
  // The lock-free storages cannot give a claimed position back: their sink must not throw
  // (BasicQueue's get_many checks that at compile time, see kPopSinkMustNotThrow).
  template <class Out>
  PopResult try_pop_many(Out& out, std::size_t max, std::size_t& done, FlagSource* notify,
                         WakeBatch& woken) {
    static_assert(!kLockFree || Out::kNothrow, "a claimed position cannot be given back");
    if constexpr (kLockFree) {
      if (ring_) return ring_->try_pop_many(out, max, done, notify, woken);
      if (list_) return list_->try_pop_many(out, max, done, notify, woken);
    }
    return locked_->try_pop_many(out, max, done, notify, woken);
  }
#undef WEFT_FIFO_DISPATCH

  // Whether a get_many's sink must not throw (a lock-free storage may be in use).
  static constexpr bool kPopSinkMustNotThrow = kLockFree;

  // The segment list, if this queue uses it (tests).
  const ListT* segment_list() const noexcept {
    return list_.get();
  }

 private:
  // The ticket of whichever storage this queue uses (storage.hpp): the ring's, the list's, or
  // the locked deque's state, in the union, as kind_ says. The deque (a bounded queue beyond
  // the ring's maximum) is reached through out-of-line calls that take scalars only: with
  // its ticket inline g++ outlines this one or QueueCore::pop (~40 instructions more per get
  // of the ring, callgrind `spsc`), and with a pointer to the ticket passed out of line the
  // ticket must live in memory instead of registers (~16 more).
  class DispatchTicket {
    using RingTicket = typename RingT::PopTicket;
    using ListTicket = typename ListT::PopTicket;
    enum class Kind : unsigned char { ring, list, locked };

   public:
    // Nothing to release unless status() is ok (QueueCore::pop): the ring's and the list's
    // tickets hold a slot only then, and locked_begin has unlocked again unless ok.
    static constexpr bool kInertUnlessOk = true;
    [[gnu::always_inline]] DispatchTicket(FifoStorage& s, FlagSource* notify, WakeBatch& woken)
        : kind_(s.ring_   ? Kind::ring
                : s.list_ ? Kind::list
                          : Kind::locked) {
      if (kind_ == Kind::ring) {
        ::new (&ring_) RingTicket(*s.ring_, notify, woken);
      } else if (kind_ == Kind::list) [[likely]] {
        ::new (&list_) ListTicket(*s.list_, notify, woken);
      } else {
        Locked* const l = &*s.locked_;
        const PopResult r = locked_begin(l, notify, woken);
        ::new (&locked_) LockedState{l, r, false};
      }
    }
    DispatchTicket(const DispatchTicket&) = delete;
    DispatchTicket& operator=(const DispatchTicket&) = delete;
    ~DispatchTicket() {
      if (kind_ == Kind::ring) {
        ring_.~RingTicket();
      } else if (kind_ == Kind::list) [[likely]] {
        list_.~ListTicket();
      } else if (locked_.status == PopResult::ok) {
        locked_end(locked_.storage, locked_.taken);
      }
    }
    PopResult status() const noexcept {
      if (kind_ == Kind::ring) return ring_.status();
      if (kind_ == Kind::list) [[likely]]
        return list_.status();
      return locked_.status;
    }
    template <class Sink>
    decltype(auto) take(Sink& sink) {
      if (kind_ == Kind::ring) return ring_.take(sink);
      if (kind_ == Kind::list) [[likely]]
        return list_.take(sink);
      locked_.taken = true;
      return sink.take(std::move(locked_.storage->pop_item()));
    }

   private:
    struct LockedState {
      Locked* storage;
      PopResult status;
      bool taken;
    };
    [[gnu::noinline]] static PopResult locked_begin(Locked* l, FlagSource* notify,
                                                    WakeBatch& woken) noexcept {
      return l->pop_begin(notify, woken);
    }
    [[gnu::noinline]] static void locked_end(Locked* l, bool taken) noexcept { l->pop_end(taken); }

    const Kind kind_;
    union {
      RingTicket ring_;
      ListTicket list_;
      LockedState locked_;
    };
  };
  // Without the lock-free storages: the locked deque's ticket.
  class LockedTicket : public Locked::PopTicket {
   public:
    LockedTicket(FifoStorage& s, FlagSource* notify, WakeBatch& woken)
        : Locked::PopTicket(*s.locked_, notify, woken) {}
  };

 public:
  using PopTicket = std::conditional_t<kLockFree, DispatchTicket, LockedTicket>;

 private:
  std::unique_ptr<RingT> ring_;   // bounded, kLockFree, up to Ring<T>::max_capacity()
  std::unique_ptr<ListT> list_;   // unbounded, kList
  std::optional<Locked> locked_;  // otherwise
};

// What put_many and get_many accept (queue.hpp's BasicQueue).
template <class R, class T>
concept PutManyRange =
    std::ranges::input_range<R> && std::constructible_from<T, std::ranges::range_reference_t<R>>;
template <class It, class S, class T>
concept PutManyIterators = std::input_iterator<It> && std::sentinel_for<S, It> &&
    std::constructible_from<T, std::iter_reference_t<It>>;

template <class Rep, class Period>
Deadline queue_deadline(std::chrono::duration<Rep, Period> timeout) {
  if (is_negative(timeout)) {
    throw std::invalid_argument("weft: timeout must be a non-negative duration");
  }
  return Deadline::after(timeout);
}

// The public interface shared by every queue kind.
template <class T, class Storage>
class BasicQueue {
 public:
  using value_type = T;

  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() { detail::diag_destroyed(&core_); }

  // ---- put ------------------------------------------------------------------------------
  // Every form takes the item by rvalue reference and moves from it only when the put
  // succeeds; each has a const T& twin (where T is copyable) that puts a copy.
  //
  // Blocks while full. Throws ShutDown.
  void put(T&& item) { put_impl(item, Deadline::never(), nullptr); }
  void put(const T& item) requires std::copy_constructible<T> {
    T copy(item);
    put_impl(copy, Deadline::never(), nullptr);
  }
  // Throws Full on timeout, ShutDown, std::invalid_argument for a negative timeout.
  template <class Rep, class Period>
  void put(T&& item, std::chrono::duration<Rep, Period> timeout) {
    put_impl(item, queue_deadline(timeout), nullptr);
  }
  template <class Rep, class Period>
  void put(const T& item,
           std::chrono::duration<Rep, Period> timeout) requires std::copy_constructible<T> {
    const Deadline deadline = queue_deadline(timeout);
    T copy(item);
    put_impl(copy, deadline, nullptr);
  }
  // Throws Cancelled when stopped, ShutDown.
  void put(T&& item, std::stop_token stop) { put_impl(item, Deadline::never(), &stop); }
  void put(const T& item, std::stop_token stop) requires std::copy_constructible<T> {
    T copy(item);
    put_impl(copy, Deadline::never(), &stop);
  }
  template <class Rep, class Period>
  void put(T&& item, std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    put_impl(item, queue_deadline(timeout), &stop);
  }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout,
           std::stop_token stop) requires std::copy_constructible<T> {
    const Deadline deadline = queue_deadline(timeout);
    T copy(item);
    put_impl(copy, deadline, &stop);
  }
  // Throws Full, ShutDown.
  void put_nowait(T&& item) { put_impl(item, Deadline::poll(), nullptr); }
  void put_nowait(const T& item) requires std::copy_constructible<T> {
    T copy(item);
    put_impl(copy, Deadline::poll(), nullptr);
  }
  // false if full or shut down; never blocks.
  bool try_put(T&& item) { return core_.push(item, Deadline::poll(), nullptr) == Status::ok; }
  bool try_put(const T& item) requires std::copy_constructible<T> {
    T copy(item);
    return core_.push(copy, Deadline::poll(), nullptr) == Status::ok;
  }
  // false on timeout, shut down, or stop.
  template <class Rep, class Period>
  bool try_put(T&& item, std::chrono::duration<Rep, Period> timeout) {
    return core_.push(item, queue_deadline(timeout), nullptr) == Status::ok;
  }
  template <class Rep, class Period>
  bool try_put(const T& item,
               std::chrono::duration<Rep, Period> timeout) requires std::copy_constructible<T> {
    const Deadline deadline = queue_deadline(timeout);
    T copy(item);
    return core_.push(copy, deadline, nullptr) == Status::ok;
  }
  bool try_put(T&& item, std::stop_token stop) {
    return core_.push(item, Deadline::never(), &stop) == Status::ok;
  }
  bool try_put(const T& item, std::stop_token stop) requires std::copy_constructible<T> {
    T copy(item);
    return core_.push(copy, Deadline::never(), &stop) == Status::ok;
  }
  template <class Rep, class Period>
  bool try_put(T&& item, std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return core_.push(item, queue_deadline(timeout), &stop) == Status::ok;
  }
  template <class Rep, class Period>
  bool try_put(const T& item, std::chrono::duration<Rep, Period> timeout,
               std::stop_token stop) requires std::copy_constructible<T> {
    const Deadline deadline = queue_deadline(timeout);
    T copy(item);
    return core_.push(copy, deadline, &stop) == Status::ok;
  }

  // ---- get ------------------------------------------------------------------------------
  // Blocks while empty. Throws ShutDown once shut down and empty.
  T get() { return get_impl(Deadline::never(), nullptr); }
  // Throws Empty on timeout, ShutDown, std::invalid_argument for a negative timeout.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_impl(queue_deadline(timeout), nullptr);
  }
  // Throws Cancelled when stopped, ShutDown.
  T get(std::stop_token stop) { return get_impl(Deadline::never(), &stop); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return get_impl(queue_deadline(timeout), &stop);
  }
  // Throws Empty, ShutDown.
  T get_nowait() { return get_impl(Deadline::poll(), nullptr); }
  // nullopt if empty (or shut down and empty); never blocks.
  std::optional<T> try_get() { return try_get_impl(Deadline::poll(), nullptr); }
  // nullopt on timeout, shut down and empty, or stop.
  template <class Rep, class Period>
  std::optional<T> try_get(std::chrono::duration<Rep, Period> timeout) {
    return try_get_impl(queue_deadline(timeout), nullptr);
  }
  std::optional<T> try_get(std::stop_token stop) { return try_get_impl(Deadline::never(), &stop); }
  template <class Rep, class Period>
  std::optional<T> try_get(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return try_get_impl(queue_deadline(timeout), &stop);
  }

  // ---- batches: put_many, get_many --------------------------------------------------------
  // One call moves many items. From a contiguous range of items that a T is built from
  // without throwing (a vector's or an array's, or move iterators over one), a lock-free
  // ring claims the positions of a whole batch with one atomic operation and a locked queue
  // takes its lock once. Any other range goes in one item at a time: each item built before
  // the queue is touched, its getter woken before the range is read again (so the range may
  // be slow, throw, or use the queue). A batch of k items wakes up to k waiters of the other
  // side (after its last access to the queue).
  //
  // put_many(items) takes an input range, put_many(first, last) iterators. A T is built from
  // each item: a copy, or a move when the iterator yields T&& (std::make_move_iterator,
  // which a move-only T needs). Items are taken in order, each moved from only once it is
  // in the queue. Returns how many went in: the first count items are in the queue (each
  // one task for task_done()), the rest untouched, still the caller's.
  //
  // A batch that moved at least one item returns its count, whatever stopped it: shutdown,
  // the deadline, a stop request, or an exception from an item's copy or move, the
  // comparator or the allocator (that item and the rest stay with the caller; the items
  // before it stay in the queue). Only a batch that moved nothing reports the failure, as
  // the single-item form would: Full (a timeout, or put_many_nowait found no room),
  // ShutDown (also for an empty batch on a shut-down queue), Cancelled, or the exception.
  // Retrying with the rest of the batch reports a persisting failure (write(2)'s rule).
  //
  // Blocking forms put every item, waiting for room as often as needed (so a batch larger
  // than maxsize goes through as getters make room); the timed forms until the deadline.
  // put_many_nowait puts what fits now.
  template <class R>
  requires detail::PutManyRange<R, T> std::size_t put_many(R&& items) {
    return put_many_impl(std::ranges::begin(items), std::ranges::end(items), Deadline::never(),
                         nullptr);
  }
  template <class R, class Rep, class Period>
  requires detail::PutManyRange<R, T> std::size_t put_many(
      R&& items, std::chrono::duration<Rep, Period> timeout) {
    return put_many_impl(std::ranges::begin(items), std::ranges::end(items),
                         queue_deadline(timeout), nullptr);
  }
  template <class R>
  requires detail::PutManyRange<R, T> std::size_t put_many(R&& items, std::stop_token stop) {
    return put_many_impl(std::ranges::begin(items), std::ranges::end(items), Deadline::never(),
                         &stop);
  }
  template <class R, class Rep, class Period>
  requires detail::PutManyRange<R, T> std::size_t put_many(
      R&& items, std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return put_many_impl(std::ranges::begin(items), std::ranges::end(items),
                         queue_deadline(timeout), &stop);
  }
  template <class R>
  requires detail::PutManyRange<R, T> std::size_t put_many_nowait(R&& items) {
    return put_many_impl(std::ranges::begin(items), std::ranges::end(items), Deadline::poll(),
                         nullptr);
  }
  template <class It, class S>
  requires detail::PutManyIterators<It, S, T> std::size_t put_many(It first, S last) {
    return put_many_impl(std::move(first), std::move(last), Deadline::never(), nullptr);
  }
  template <class It, class S, class Rep, class Period>
  requires detail::PutManyIterators<It, S, T> std::size_t put_many(
      It first, S last, std::chrono::duration<Rep, Period> timeout) {
    return put_many_impl(std::move(first), std::move(last), queue_deadline(timeout), nullptr);
  }
  template <class It, class S>
  requires detail::PutManyIterators<It, S, T> std::size_t put_many(It first, S last,
                                                                   std::stop_token stop) {
    return put_many_impl(std::move(first), std::move(last), Deadline::never(), &stop);
  }
  template <class It, class S, class Rep, class Period>
  requires detail::PutManyIterators<It, S, T> std::size_t put_many(
      It first, S last, std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return put_many_impl(std::move(first), std::move(last), queue_deadline(timeout), &stop);
  }
  template <class It, class S>
  requires detail::PutManyIterators<It, S, T> std::size_t put_many_nowait(It first, S last) {
    return put_many_impl(std::move(first), std::move(last), Deadline::poll(), nullptr);
  }

  // get_many(n) returns 1..n items in get order, as many as are queued up to n (on the
  // lock-free ring: those whose puts have finished, up to the first still in progress): it
  // waits for the first item only. get_many(out, n) appends them to a std::vector<T>& (reusing its
  // capacity) or writes them through an output iterator, and returns how many. n == 0 throws
  // std::invalid_argument. Each item got is one task for task_done(), as for get().
  //
  // Failures, when nothing was got: Empty (a timeout, or get_many_nowait on an empty
  // queue), ShutDown (shut down and empty: a shut-down queue hands out what is left first,
  // as get does), Cancelled. If building an item (T's move) or the comparator throws after
  // items were got, the batch ends there and returns them; the item stays queued, and the
  // exception comes from a batch that got nothing.
  //
  // Writing through an output iterator may throw only where the item can stay queued: a
  // Queue or SimpleQueue of nothrow-movable items (their lock-free storages claim items
  // before they move them out) requires an iterator whose assignment and increment are noexcept (a pointer, a
  // span's iterator); for a back_inserter use the vector form.
  std::vector<T> get_many(std::size_t n) { return get_many_vector(n, Deadline::never(), nullptr); }
  template <class Rep, class Period>
  std::vector<T> get_many(std::size_t n, std::chrono::duration<Rep, Period> timeout) {
    return get_many_vector(n, queue_deadline(timeout), nullptr);
  }
  std::vector<T> get_many(std::size_t n, std::stop_token stop) {
    return get_many_vector(n, Deadline::never(), &stop);
  }
  template <class Rep, class Period>
  std::vector<T> get_many(std::size_t n, std::chrono::duration<Rep, Period> timeout,
                          std::stop_token stop) {
    return get_many_vector(n, queue_deadline(timeout), &stop);
  }
  std::vector<T> get_many_nowait(std::size_t n) {
    return get_many_vector(n, Deadline::poll(), nullptr);
  }
  std::size_t get_many(std::vector<T>& out, std::size_t n) {
    return get_many_impl(out, n, Deadline::never(), nullptr);
  }
  template <class Rep, class Period>
  std::size_t get_many(std::vector<T>& out, std::size_t n,
                       std::chrono::duration<Rep, Period> timeout) {
    return get_many_impl(out, n, queue_deadline(timeout), nullptr);
  }
  std::size_t get_many(std::vector<T>& out, std::size_t n, std::stop_token stop) {
    return get_many_impl(out, n, Deadline::never(), &stop);
  }
  template <class Rep, class Period>
  std::size_t get_many(std::vector<T>& out, std::size_t n,
                       std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return get_many_impl(out, n, queue_deadline(timeout), &stop);
  }
  std::size_t get_many_nowait(std::vector<T>& out, std::size_t n) {
    return get_many_impl(out, n, Deadline::poll(), nullptr);
  }
  template <std::output_iterator<T&&> Out>
  std::size_t get_many(Out out, std::size_t n) {
    return get_many_impl(out, n, Deadline::never(), nullptr);
  }
  template <std::output_iterator<T&&> Out, class Rep, class Period>
  std::size_t get_many(Out out, std::size_t n, std::chrono::duration<Rep, Period> timeout) {
    return get_many_impl(out, n, queue_deadline(timeout), nullptr);
  }
  template <std::output_iterator<T&&> Out>
  std::size_t get_many(Out out, std::size_t n, std::stop_token stop) {
    return get_many_impl(out, n, Deadline::never(), &stop);
  }
  template <std::output_iterator<T&&> Out, class Rep, class Period>
  std::size_t get_many(Out out, std::size_t n, std::chrono::duration<Rep, Period> timeout,
                       std::stop_token stop) {
    return get_many_impl(out, n, queue_deadline(timeout), &stop);
  }
  template <std::output_iterator<T&&> Out>
  std::size_t get_many_nowait(Out out, std::size_t n) {
    return get_many_impl(out, n, Deadline::poll(), nullptr);
  }

  // ---- state ----------------------------------------------------------------------------
  std::size_t qsize() const noexcept { return core_.qsize(); }
  bool empty() const noexcept { return core_.qsize() == 0; }
  bool full() const noexcept { return core_.full(); }
  std::ptrdiff_t maxsize() const noexcept { return core_.maxsize(); }

 protected:
  friend struct SelectAccess;
  using Deadline = detail::Deadline;
  using SteadyClock = detail::SteadyClock;
  using Status = detail::Status;

  template <class... Args>
  explicit BasicQueue(std::ptrdiff_t maxsize, Args&&... args)
      : core_(maxsize, std::forward<Args>(args)...) {}
  // A queue's waits report its core: the name goes there (the queue's own address may
  // differ from it).
  void diag_name(Name name, SourceSite site) noexcept {
    detail::diag_named(&core_, detail::SourceKind::queue_get, name, site);
  }
  // An unnamed queue: its construction site, recorded while diagnostics are on.
  void diag_site(SourceSite site) noexcept {
    detail::diag_constructed(&core_, detail::SourceKind::queue_get, site);
  }

  void put_impl(T& item, Deadline deadline, const std::stop_token* stop) {
    const Status s = core_.push(item, deadline, stop);
    if (s != Status::ok) [[unlikely]]
      throw_failure<Full>(s);
  }
  template <class It, class S>
  std::size_t put_many_impl(It first, S last, Deadline deadline, const std::stop_token* stop) {
    detail::BatchFeed<T, It, S> feed(std::move(first), std::move(last));
    const detail::BatchResult r = core_.push_many(feed, deadline, stop);
    if (r.count == 0 && r.status != Status::ok) [[unlikely]]
      throw_failure<Full>(r.status);
    return r.count;
  }
  template <class Out>
  std::size_t get_many_impl(Out& out, std::size_t n, Deadline deadline,
                            const std::stop_token* stop) {
    if (n == 0) [[unlikely]]
      throw std::invalid_argument("weft: get_many(0): n must be at least 1");
    detail::BatchResult r{};
    if constexpr (std::is_same_v<std::remove_cvref_t<Out>, std::vector<T>>) {
      detail::VectorOut<T> sink(out);
      r = core_.pop_many(sink, n, deadline, stop);
    } else {
      using Sink = detail::IteratorOut<T, std::remove_cvref_t<Out>>;
      static_assert(
          Sink::kNothrow || !Storage::kPopSinkMustNotThrow,
          "weft: get_many into an output iterator whose assignment may throw: a "
          "Queue or SimpleQueue of nothrow-movable items cannot put an item back; use the "
          "std::vector<T>& form");
      Sink sink(std::move(out));
      r = core_.pop_many(sink, n, deadline, stop);
    }
    if (r.count == 0) [[unlikely]]
      throw_failure<Empty>(r.status);
    return r.count;
  }
  std::vector<T> get_many_vector(std::size_t n, Deadline deadline, const std::stop_token* stop) {
    std::vector<T> out;
    get_many_impl(out, n, deadline, stop);
    return out;
  }

  // A failed put or get as its exception: a timeout is Full for a put and Empty for a get.
  template <class TimedOut>
  [[noreturn, gnu::noinline, gnu::cold]] static void throw_failure(Status s) {
    switch (s) {
      case Status::timed_out:
        throw TimedOut();
      case Status::shut_down:
        throw ShutDown();
      case Status::cancelled:
        throw Cancelled();
      default:
        break;
    }
    throw std::logic_error("weft: unreachable");
  }
  // The sinks of QueueCore::pop: a T built straight from the queued item (one move; if it
  // throws, the item stays queued), or an optional built in place.
  struct ValueSink {
    T take(T&& item) { return T(std::move(item)); }
    [[noreturn]] T fail(Status s) { throw_failure<Empty>(s); }
  };
  struct OptionalSink {
    std::optional<T> take(T&& item) { return std::optional<T>(std::in_place, std::move(item)); }
    std::optional<T> fail(Status) noexcept { return std::nullopt; }
  };

  T get_impl(Deadline deadline, const std::stop_token* stop) {
    ValueSink sink;
    return core_.pop(sink, deadline, stop);
  }
  std::optional<T> try_get_impl(Deadline deadline, const std::stop_token* stop) {
    OptionalSink sink;
    return core_.pop(sink, deadline, stop);  // engaged only when the pop succeeded
  }

  detail::QueueCore<T, Storage> core_;
};

// Task tracking, shutdown and consume(): everything but SimpleQueue.
template <class T, class Storage>
class TaskQueue : public BasicQueue<T, Storage> {
  using Base = BasicQueue<T, Storage>;
  using typename Base::Deadline;
  using typename Base::Status;

 public:
  // Marks one item put earlier as processed. Throws std::logic_error if called more times
  // than items were put (nothing changes then).
  void task_done() { this->core_.task_done(); }

  // Blocks until every item put has been task_done() (or removed by shutdown(true)).
  void join() { this->core_.join(Deadline::never(), nullptr); }
  // false on timeout; std::invalid_argument for a negative timeout.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->core_.join(queue_deadline(timeout), nullptr) == Status::ok;
  }
  // Throws Cancelled when stopped.
  void join(std::stop_token stop) {
    if (this->core_.join(Deadline::never(), &stop) == Status::cancelled) throw Cancelled();
  }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) {
    return this->core_.join(queue_deadline(timeout), &stop) == Status::ok;
  }

  // Unfinished tasks: items put and not yet task_done() (Python: unfinished_tasks).
  std::uint64_t unfinished_tasks() const noexcept { return this->core_.unfinished_tasks(); }

  // Puts now throw ShutDown; blocked callers wake. immediate: also removes every queued item
  // (returned, in get order) and counts each as a finished task, which may release join().
  std::vector<T> shutdown(bool immediate = false) { return this->core_.shutdown(immediate); }
  bool is_shutdown() const noexcept { return this->core_.is_shutdown(); }

  // An input range over the items as they are got; it ends when the queue is shut down and
  // drained (or, with a stop_token, when a stop is requested):
  //     for (Job job : q.consume()) handle(std::move(job));
  class ConsumeRange {
   public:
    class iterator {
     public:
      using iterator_concept = std::input_iterator_tag;
      using iterator_category = std::input_iterator_tag;
      using value_type = T;
      using difference_type = std::ptrdiff_t;
      using reference = T&&;

      iterator() = default;
      reference operator*() const { return std::move(*range_->current_); }
      iterator& operator++() {
        range_->advance();
        return *this;
      }
      void operator++(int) { ++*this; }
      friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
        return it.at_end();
      }

     private:
      friend class ConsumeRange;
      explicit iterator(ConsumeRange* range) noexcept : range_(range) {}
      bool at_end() const noexcept { return !range_->current_.has_value(); }
      ConsumeRange* range_ = nullptr;
    };

    iterator begin() {
      advance();
      return iterator(this);
    }
    std::default_sentinel_t end() const noexcept { return {}; }

   private:
    friend class TaskQueue;
    friend class iterator;
    explicit ConsumeRange(TaskQueue& q) noexcept : queue_(&q) {}
    ConsumeRange(TaskQueue& q, std::stop_token stop) : queue_(&q), stop_(std::move(stop)) {}
    // Builds the next item in current_ (one move), or leaves it empty at the end.
    struct Sink {
      std::optional<T>& out;
      void take(T&& item) { out.emplace(std::move(item)); }
      void fail(Status) noexcept {}
    };
    void advance() {
      current_.reset();
      Sink sink{current_};
      queue_->core_.pop(sink, Deadline::never(), stop_ ? &*stop_ : nullptr);
    }

    TaskQueue* queue_;
    std::optional<std::stop_token> stop_;
    std::optional<T> current_;
  };

  ConsumeRange consume() { return ConsumeRange(*this); }
  ConsumeRange consume(std::stop_token stop) { return ConsumeRange(*this, std::move(stop)); }

 protected:
  using Base::Base;
};

}  // namespace detail

// FIFO queue (Python: queue.Queue). maxsize <= 0: unbounded (maxsize() still reports it).
template <class T>
class Queue : public detail::TaskQueue<T, detail::FifoStorage<T>> {
 public:
  explicit Queue(std::ptrdiff_t maxsize = 0, SourceSite site = SourceSite::current())
      : detail::TaskQueue<T, detail::FifoStorage<T>>(maxsize) {
    this->diag_site(site);
  }
  // A queue that diagnostics call `name` (weft/diagnostics.hpp).
  Queue(std::ptrdiff_t maxsize, Name name, SourceSite site = SourceSite::current())
      : detail::TaskQueue<T, detail::FifoStorage<T>>(maxsize) {
    this->diag_name(name, site);
  }
};

// LIFO queue (Python: queue.LifoQueue).
template <class T>
class LifoQueue
    : public detail::TaskQueue<T, detail::LockedStorage<T, detail::DequeContainer<T, true>>> {
 public:
  explicit LifoQueue(std::ptrdiff_t maxsize = 0, SourceSite site = SourceSite::current())
      : detail::TaskQueue<T, detail::LockedStorage<T, detail::DequeContainer<T, true>>>(maxsize) {
    this->diag_site(site);
  }
  LifoQueue(std::ptrdiff_t maxsize, Name name, SourceSite site = SourceSite::current())
      : detail::TaskQueue<T, detail::LockedStorage<T, detail::DequeContainer<T, true>>>(maxsize) {
    this->diag_name(name, site);
  }
};

// Priority queue (Python: queue.PriorityQueue): the smallest item under Compare first; items
// that compare equal come out in the order they were put. Compare is the only comparison
// made; if it throws, the operation fails with its exception and changes nothing.
template <class T, class Compare = std::less<T>>
class PriorityQueue
    : public detail::TaskQueue<T, detail::LockedStorage<T, detail::HeapContainer<T, Compare>>> {
  using Base = detail::TaskQueue<T, detail::LockedStorage<T, detail::HeapContainer<T, Compare>>>;

 public:
  explicit PriorityQueue(std::ptrdiff_t maxsize = 0, Compare comp = Compare(),
                         SourceSite site = SourceSite::current())
      : Base(maxsize, std::move(comp)) {
    this->diag_site(site);
  }
  PriorityQueue(std::ptrdiff_t maxsize, Name name, Compare comp = Compare(),
                SourceSite site = SourceSite::current())
      : Base(maxsize, std::move(comp)) {
    this->diag_name(name, site);
  }
};

// Unbounded FIFO without task tracking or shutdown (Python: queue.SimpleQueue).
template <class T>
class SimpleQueue : private detail::BasicQueue<T, detail::FifoStorage<T>> {
  using Base = detail::BasicQueue<T, detail::FifoStorage<T>>;

  friend struct detail::SelectAccess;

 public:
  using value_type = T;
  // NOLINTNEXTLINE(google-explicit-constructor): a default constructor in practice.
  SimpleQueue(SourceSite site = SourceSite::current()) : Base(0) { this->diag_site(site); }
  explicit SimpleQueue(Name name, SourceSite site = SourceSite::current()) : Base(0) {
    this->diag_name(name, site);
  }

  using Base::empty;
  using Base::get;
  using Base::get_many;
  using Base::get_many_nowait;
  using Base::get_nowait;
  using Base::put;
  using Base::put_many;
  using Base::put_many_nowait;
  using Base::put_nowait;
  using Base::qsize;
  using Base::try_get;
  using Base::try_put;
};

}  // namespace weft
