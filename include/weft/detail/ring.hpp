// SPDX-License-Identifier: MIT
// weft/detail/ring.hpp: the lock-free storage of a bounded FIFO weft::Queue.
//
// Algorithm: Dmitry Vyukov's bounded MPMC queue (per-slot sequence "stamps"), with the
// lap/index position encoding and the "closed" mark bit in the tail used by
// crossbeam-channel's array flavor, so that shutdown is a single RMW that no later push can
// slip past.
//
// Positions: head and tail are `lap | index`, index in [0, cap) in the low bits, one mark
// bit above them (tail only: set by close()), laps counted in the bits above that (one lap is
// `lap_unit_`). A slot's stamp says whose turn it is:
//   stamp == tail                  the slot is free for the push at position `tail`
//   stamp == head + 1              the slot holds the item for the pop at position `head`
//   stamp == head + lap_unit_      (written by a pop) free for the push one lap later
// Invariants: head <= tail (as positions); tail - head <= cap; a position is claimed by
// exactly one successful CAS, so each item is written once and read once.
//
// Memory ordering: the first loads of head_/tail_ in a push or pop are relaxed, because they
// are only a guess of the position, checked by the acquire load of that slot's stamp and
// then by the CAS; the item is published by the Release store of the slot's stamp and
// consumed by the Acquire load of the same stamp; the head/tail CASes are seq_cst because
// the waiting layer's handshake (wait_source.hpp) re-checks emptiness/fullness by loading
// them, and must not miss a push or pop that a notifier saw no waiter for.
//
// Batches (try_push_many, try_pop_many) first scan the slots from the tail (head) for the
// run of k consecutive positions that are ready, each by the same stamp test a single push
// (pop) makes, then claim all k with one CAS and fill (empty) them in order. A batch never
// claims a position whose slot is still in another operation's hands, so, like a single
// operation, it never waits for a thread that may have been preempted after its CAS.
//
// T must be nothrow move constructible (the slot is claimed before the item is moved in, and
// a claimed slot cannot be given back); weft::Queue uses a locked deque for other types.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/futex.hpp"
#include "weft/detail/storage.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft::detail {

// Fixed padding constant (rather than hardware_destructive_interference_size, whose value
// may change between compilers and so break the ABI): 128 covers adjacent-line prefetch.
inline constexpr std::size_t kCacheLine = 128;

// Spins on a condition that another thread is a few instructions from making true (a
// push or pop between its CAS and its stamp store), then yields: if that thread was
// preempted, spinning cannot help it.
class Backoff {
 public:
  void snooze() noexcept {
    if (step_ < 6) {
      for (unsigned i = 0; i < (1u << step_); ++i) cpu_relax();
      ++step_;
    } else {
      std::this_thread::yield();
    }
  }
  void spin() noexcept {
    for (unsigned i = 0; i < (1u << (step_ < 6 ? step_ : 6)); ++i) cpu_relax();
    if (step_ < 6) ++step_;
  }

 private:
  unsigned step_ = 0;
};

template <class T>
class Ring {
  static_assert(std::is_nothrow_move_constructible_v<T>);

  // `storage` is raw on purpose: an item lives there only between its push and its pop.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
  struct Slot {
    Atomic<std::uint64_t> stamp;
    alignas(T) unsigned char storage[sizeof(T)];
    T* item() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

 public:
  explicit Ring(std::size_t cap)
      : cap_(cap),
        mark_(std::bit_ceil(cap + 1)),
        lap_unit_(mark_ * 2),
        index_mask_(mark_ - 1),
        wrap_step_(lap_unit_ - cap + 1),
        slots_(std::make_unique<Slot[]>(cap)) {
    for (std::size_t i = 0; i < cap; ++i) slots_[i].stamp.store(i, std::memory_order_relaxed);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  ~Ring() {
    // Single-threaded now: destroy what is still stored.
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed) & ~mark_;
    while (head != tail) {
      Slot& s = slots_[head & index_mask_];
      s.item()->~T();
      head = next(head);
    }
  }

  // Moves `item` in on success; leaves it untouched on full or closed. On success, claims
  // one waiter of `notify` into `woken` *before* publishing the item: the stamp store is
  // this call's last access to the ring, so the getter may destroy the queue at once.
  PushResult try_push(T& item, FlagSource* notify, WakeBatch& woken) noexcept {
    // First attempt straight-line (no Backoff, no loop): the uncontended case.
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    Slot& slot = slots_[tail & index_mask_];
    if (slot.stamp.load(std::memory_order_acquire) == tail &&
        tail_.compare_exchange_strong(tail, next(tail), std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) [[likely]] {
      if (notify != nullptr) notify->claim_one(woken);
      ::new (slot.storage) T(std::move(item));
      slot.stamp.store(tail + 1, std::memory_order_release);
      return PushResult::ok;
    }
    return try_push_slow(item, notify, woken);
  }
  [[gnu::noinline]] PushResult try_push_slow(T& item, FlagSource* notify,
                                             WakeBatch& woken) noexcept {
    Backoff backoff;
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      if (tail & mark_) return PushResult::shut_down;
      Slot& slot = slots_[tail & index_mask_];
      const std::uint64_t stamp = slot.stamp.load(std::memory_order_acquire);
      if (stamp == tail) {
        // seq_cst: see the header (the waiting handshake loads tail_).
        if (tail_.compare_exchange_weak(tail, next(tail), std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          // seq_cst flag load after the seq_cst CAS: the waiting handshake.
          if (notify != nullptr) notify->claim_one(woken);
          ::new (slot.storage) T(std::move(item));
          // release: publishes the item to the pop that acquires this stamp.
          slot.stamp.store(tail + 1, std::memory_order_release);
          return PushResult::ok;
        }
        backoff.spin();
      } else if (stamp + lap_unit_ == tail + 1) {
        // The slot still holds last lap's item: full, unless a pop is in flight.
        const std::uint64_t head = head_.load(std::memory_order_seq_cst);
        if (head + lap_unit_ == tail) return PushResult::full;
        backoff.snooze();
        tail = tail_.load(std::memory_order_relaxed);
      } else {
        // Another push took this position and has not written yet, or we raced a lap.
        backoff.snooze();
        tail = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // One pop attempt (storage.hpp): on ok the ticket has claimed position `head` by its
  // CAS, and the item waits in its slot for take(sink). It claims a putter waiting on
  // `notify` at once; when the ticket ends it destroys the moved-from item and hands the slot
  // back (the stamp store), and only then does the caller's WakeBatch wake the putter: as in
  // try_push, the publication is the pop's last access.
  class PopTicket {
   public:
    PopTicket(Ring& r, FlagSource* notify, WakeBatch& woken) noexcept : r_(r) {
      // First attempt straight-line: the uncontended case.
      std::uint64_t head = r.head_.load(std::memory_order_relaxed);
      Slot* slot = &r.slots_[head & r.index_mask_];
      if (slot->stamp.load(std::memory_order_acquire) != head + 1 ||
          !r.head_.compare_exchange_strong(head, r.next(head), std::memory_order_seq_cst,
                                           std::memory_order_relaxed)) [[unlikely]] {
        const Claim c = r.claim_head_slow();
        if (c.slot == nullptr) {
          status_ = c.status;
          return;
        }
        slot = c.slot;
        head = c.head;
      }
      // seq_cst flag load after the seq_cst CAS: the waiting handshake.
      if (notify != nullptr) notify->claim_one(woken);
      slot_ = slot;
      head_ = head;
    }
    PopTicket(const PopTicket&) = delete;
    PopTicket& operator=(const PopTicket&) = delete;
    ~PopTicket() {
      if (slot_ == nullptr) return;
      slot_->item()->~T();
      // release: hands the slot back to the push one lap later.
      slot_->stamp.store(head_ + r_.lap_unit_, std::memory_order_release);
    }

    PopResult status() const noexcept { return status_; }
    // The claimed position cannot be given back, so the result must be built: T moves
    // without throwing, and the sinks of queue_core.hpp and select.hpp build nothing else.
    template <class Sink>
    // NOLINTNEXTLINE(bugprone-exception-escape): the sinks build from a nothrow move, above
    decltype(auto) take(Sink& sink) noexcept {
      return sink.take(std::move(*slot_->item()));
    }

   private:
    Ring& r_;
    Slot* slot_ = nullptr;
    std::uint64_t head_ = 0;
    PopResult status_ = PopResult::ok;
  };

  // Pushes items from `feed` while there is room (see the top of this file). On any result
  // `done` has grown by the items pushed. The last stamp store is the last access to the
  // ring; the getters for the items are claimed before the first.
  template <class Feed>
  PushResult try_push_many(Feed& feed, std::size_t& done, FlagSource* notify, WakeBatch& woken) {
    if constexpr (!Feed::kClaimRun) {
      // Each item built before its slot is claimed, one position at a time.
      return push_each(*this, feed, done, notify);
    } else {
      const auto [items, want] = feed.run();  // may throw: nothing claimed yet
      Backoff backoff;
      // relaxed: a guess, checked by the acquire stamp loads of scan() and by the CAS.
      std::uint64_t tail = tail_.load(std::memory_order_relaxed);
      std::size_t k = 0;
      for (;;) {
        if (tail & mark_) return PushResult::shut_down;
        if (want == 0) return PushResult::ok;
        k = scan(tail, want, 0);  // the free slots from `tail` on
        if (k == 0) [[unlikely]] {
          // As try_push_slow: full, or a pop in flight, or a stale tail.
          const Slot& slot = slots_[tail & index_mask_];
          if (slot.stamp.load(std::memory_order_acquire) + lap_unit_ == tail + 1 &&
              head_.load(std::memory_order_seq_cst) + lap_unit_ == tail) {
            return PushResult::full;
          }
          backoff.snooze();
          tail = tail_.load(std::memory_order_relaxed);  // relaxed: a guess, as above
          continue;
        }
        // seq_cst: see the header. relaxed on failure: the new guess is checked again.
        if (tail_.compare_exchange_weak(tail, position(count(tail) + k), std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          break;
        }
        backoff.spin();
      }
      // seq_cst flag load after the seq_cst CAS: the waiting handshake.
      if (notify != nullptr && notify->maybe_waiting()) [[unlikely]]
        notify->claim(woken, k);
      // Lap by lap: within one, the positions and their slots are consecutive. Only plain
      // pointers and nothrow constructions run between the claim and the last publication.
      auto item = items;
      const std::uint64_t skip = lap_unit_ - cap_;  // from one past the last index to index 0
      Slot* const slots = slots_.get();
      for (std::size_t left = k; left != 0;) {
        const std::size_t index = tail & index_mask_;
        const std::size_t run = std::min<std::size_t>(left, cap_ - index);
        Slot* const end = slots + index + run;
        // Unrolled: the loop's own bookkeeping is then a fraction of an instruction per item.
#pragma GCC unroll 4
        for (Slot* slot = slots + index; slot != end; ++slot, ++tail, ++item) {
          Feed::construct_at(slot->storage, item);
          // release: publishes the item to the pop that acquires this stamp.
          slot->stamp.store(tail + 1, std::memory_order_release);
        }
        left -= run;
        if (index + run == cap_) tail += skip;
      }
      done += k;
      feed.advance(k);  // after the count: may throw (not for the usual iterators)
      return k == want ? PushResult::ok : PushResult::full;
    }
  }

  // Pops 1..max items into `out` (whose appends cannot throw once prepared), or reports
  // empty / shut_down. The last stamp store is the last access to the ring; the putters for
  // the freed slots are claimed before the first.
  template <class Out>
  PopResult try_pop_many(Out& out, std::size_t max, std::size_t& done, FlagSource* notify,
                         WakeBatch& woken) {
    static_assert(Out::kNothrow, "a claimed ring position cannot be given back");
    if (max == 0) [[unlikely]]
      return PopResult::ok;  // (scan() would find nothing to take, forever)
    Backoff backoff;
    // relaxed: a guess, checked by the acquire stamp loads of scan() and by the CAS.
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    {
      // Room in `out` for what is queued now (may throw: nothing claimed yet); the claim
      // below takes no more than that room. relaxed: a guess, as above (the two loads may
      // be far apart: clamped to the capacity).
      const std::uint64_t t = count(tail_.load(std::memory_order_relaxed) & ~mark_);
      const std::uint64_t h = count(head);
      const std::size_t queued =
          t > h ? static_cast<std::size_t>(std::min<std::uint64_t>(t - h, cap_)) : 1;
      max = std::min(max, out.prepare(std::min(max, queued)));
    }
    std::size_t k = 0;
    for (;;) {
      k = scan(head, max, 1);  // the published items from `head` on
      if (k == 0) [[unlikely]] {
        // As claim_head_slow: empty (or closed), or a push in flight, or a stale head.
        const Slot& slot = slots_[head & index_mask_];
        if (slot.stamp.load(std::memory_order_acquire) == head) {
          const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
          if ((tail & ~mark_) == head) {
            return (tail & mark_) ? PopResult::shut_down : PopResult::empty;
          }
        }
        backoff.snooze();
        head = head_.load(std::memory_order_relaxed);  // relaxed: a guess, as above
        continue;
      }
      // seq_cst: see the header. relaxed on failure: the new guess is checked again.
      if (head_.compare_exchange_weak(head, position(count(head) + k), std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        break;
      }
      backoff.spin();
    }
    // seq_cst flag load after the seq_cst CAS: the waiting handshake.
    if (notify != nullptr && notify->maybe_waiting()) [[unlikely]]
      notify->claim(woken, k);
    // Lap by lap, with locals, as in try_push_many.
    Out o = std::move(out);
    const std::uint64_t lap = lap_unit_;
    const std::uint64_t skip = lap_unit_ - cap_;
    Slot* const slots = slots_.get();
    for (std::size_t left = k; left != 0;) {
      const std::size_t index = head & index_mask_;
      const std::size_t run = std::min<std::size_t>(left, cap_ - index);
      Slot* const end = slots + index + run;
#pragma GCC unroll 4
      for (Slot* slot = slots + index; slot != end; ++slot, ++head) {
        o(std::move(*slot->item()));
        slot->item()->~T();
        // release: hands the slot back to the push one lap later.
        slot->stamp.store(head + lap, std::memory_order_release);
      }
      left -= run;
      if (index + run == cap_) head += skip;
    }
    out = std::move(o);
    done += k;
    return PopResult::ok;
  }

  // Re-checks for the waiting handshake (seq_cst loads of the positions), also select's
  // hints (queue.hpp). Each answers true only if the ring was empty (full) and open at one
  // instant of the seq_cst order: at one of its two loads, t1 and t2. Both positions only
  // grow, and head <= tail.
  //
  // Empty: head first, then tail. If head(t1) == tail(t2), then head(t2), between the two,
  // equals tail(t2): the ring was empty at t2, where the closed bit was read. (Tail first
  // would not do: a push and then a pop between the loads make them equal although the ring
  // held an item throughout.) A push whose CAS follows the tail load sees the waiter's
  // announcement, made before it.
  bool empty_and_open() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
    return (tail & mark_) == 0 && tail == head;
  }
  // Full: tail first, then head. If head(t2) + lap == tail(t1), then head(t1), no later than
  // head(t2), is a lap behind tail(t1): the ring was full at t1, where the closed bit was
  // read, so full and open held together at t1. A pop whose CAS follows the head load sees
  // the waiter's announcement.
  bool full_and_open() const noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    return (tail & mark_) == 0 && head + lap_unit_ == tail;
  }

  std::size_t size() const noexcept {
    // Head first: tail only grows, so the later tail is >= the earlier head (never
    // negative); pops between the loads can make it exceed cap, hence the clamp.
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst) & ~mark_;
    const std::uint64_t n = count(tail) - count(head);
    return n > cap_ ? cap_ : static_cast<std::size_t>(n);
  }

  // Pushes ever claimed (each claimed position is a push that succeeds).
  std::uint64_t pushed() const noexcept {
    return count(tail_.load(std::memory_order_seq_cst) & ~mark_);
  }

  void close() noexcept {
    tail_.fetch_or(mark_, std::memory_order_seq_cst);
  }
  bool closed() const noexcept {
    return (tail_.load(std::memory_order_seq_cst) & mark_) != 0;
  }

  // After close(): pops everything, waiting out pushes that claimed a position before it.
  // Cannot throw once `out` has room (T moves without throwing).
  void drain(std::vector<T>& out) {
    drain_by_tickets(*this, out);
  }

  std::size_t capacity() const noexcept {
    return cap_;
  }

  // The largest capacity weft builds a ring for. The ring allocates and stamps every slot up
  // front, so a queue bounded only nominally (Queue<int>(1 << 30), as Python users write
  // Queue(maxsize=10**9)) would allocate gigabytes before its first put; above this size a
  // Queue uses the locked deque, which grows with its contents.
  static constexpr std::size_t max_capacity() noexcept {
    return (std::size_t{4} << 20) / sizeof(Slot);  // slots in 4 MiB
  }

 private:
  // The contended path of PopTicket: claims the head position, or reports empty / closed.
  struct Claim {
    Slot* slot;  // nullptr: nothing claimed, see status
    std::uint64_t head;
    PopResult status;
  };
  [[gnu::noinline]] Claim claim_head_slow() noexcept {
    Backoff backoff;
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& slot = slots_[head & index_mask_];
      const std::uint64_t stamp = slot.stamp.load(std::memory_order_acquire);
      if (stamp == head + 1) {
        // seq_cst: see the header (the waiting handshake loads head_).
        if (head_.compare_exchange_weak(head, next(head), std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          return {&slot, head, PopResult::ok};
        }
        backoff.spin();
      } else if (stamp == head) {
        // Nothing written here yet: empty, unless a push is in flight.
        const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
        if ((tail & ~mark_) == head) {
          return {nullptr, 0, (tail & mark_) ? PopResult::shut_down : PopResult::empty};
        }
        backoff.snooze();
        head = head_.load(std::memory_order_relaxed);
      } else {
        backoff.snooze();
        head = head_.load(std::memory_order_relaxed);
      }
    }
  }

  // The position after `pos`: the next index, or index 0 of the next lap (pos's lap plus
  // one: pos + lap_unit_ - (cap_ - 1)). On every push and pop, hence the precomputed step.
  std::uint64_t next(std::uint64_t pos) const noexcept {
    return pos + ((pos & index_mask_) == cap_ - 1 ? wrap_step_ : 1);
  }
  // Number of items -> position (the inverse of count).
  std::uint64_t position(std::uint64_t n) const noexcept {
    return (n / cap_) * lap_unit_ + (n % cap_);
  }
  // How many of the `want` slots from position `pos` on are ready, stopping at the first that
  // is not: a slot is ready when its stamp is `pos + offset` for its position (offset 0:
  // free for a push there; 1: holding the item for a pop there). acquire: synchronizes with
  // the release store that gave the slot that stamp, as a single push or pop's check does.
  std::size_t scan(std::uint64_t pos, std::size_t want, std::uint64_t offset) const noexcept {
    std::size_t k = 0;
    while (k < want) {
      const std::size_t index = pos & index_mask_;
      const std::size_t run = std::min<std::size_t>(want - k, cap_ - index);
      const Slot* const slot = &slots_[index];
      const std::uint64_t first = pos + offset;
#pragma GCC unroll 4
      for (std::size_t j = 0; j < run; ++j) {
        if (slot[j].stamp.load(std::memory_order_acquire) != first + j) return k + j;
      }
      k += run;
      pos += run;
      if (index + run == cap_) pos += lap_unit_ - cap_;
    }
    return k;
  }
  // Position -> number of items that passed it.
  std::uint64_t count(std::uint64_t pos) const noexcept {
    return (pos / lap_unit_) * cap_ + (pos & index_mask_);
  }

  const std::uint64_t cap_;
  const std::uint64_t mark_;        // the closed bit in tail_; also one past the largest index
  const std::uint64_t lap_unit_;    // one lap
  const std::uint64_t index_mask_;  // mark_ - 1: position -> index
  const std::uint64_t wrap_step_;   // next() from the last index: to index 0, one lap on
  std::unique_ptr<Slot[]> slots_;
  alignas(kCacheLine) Atomic<std::uint64_t> head_{0};
  alignas(kCacheLine) Atomic<std::uint64_t> tail_{0};
  char pad_[kCacheLine - sizeof(Atomic<std::uint64_t>)] = {};
};

}  // namespace weft::detail
