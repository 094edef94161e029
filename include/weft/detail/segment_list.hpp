// SPDX-License-Identifier: MIT
// weft/detail/segment_list.hpp: the lock-free storage of an unbounded FIFO weft::Queue and
// SimpleQueue of a nothrow-movable T: a singly linked list of fixed-size ring segments.
//
// The design follows the list flavour of crossbeam-channel (positions that reserve one value
// per segment for the hand-over to the next segment, a closed mark in the tail) and the
// block lists of moodycamel's ConcurrentQueue (segments that go back to a pool instead of
// the allocator); the code and the retirement rule are weft's own.
//
// Positions: head_ and tail_ count positions, `Slots + 1` of them per segment (kLap): offsets
// 0 .. Slots-1 name the segment's slots, offset Slots is the hand-over position, held only
// while the thread that claimed the segment's last slot installs the next segment. Bit 63 of
// tail_ is the closed mark (set by close(), kept by every later change of tail_); bit 63 of
// head_ is a hint: every slot of the head segment has been claimed by a push, so a pop need
// not read tail_ to know that its slot will be filled. count(position) is the number of
// items that passed it: hand-over positions count for nothing.
//
// Protocol:
//  - A push claims position p = tail_ by CAS (tail_ -> p + 1), writes the item into slot
//    p % kLap of the tail segment and stores the slot's stamp p + 1 (release). A pop claims
//    p = head_ by CAS once tail_ (or the hint) shows that p was claimed by a push, waits for
//    the stamp p + 1 (acquire), takes the item, and adds 1 to the segment's `taken`.
//    Positions are never reused (64 bits), so a stamp names one push, whatever segment it
//    was written in before.
//  - The claimer of a segment's last slot installs its successor, leaving the hand-over
//    position: the producer stores tail_seg_, moves tail_ on by fetch_add (which keeps the
//    closed mark) and links the old segment's `next`; the consumer waits for that `next`,
//    stores head_seg_, then head_. Whoever meets a hand-over position backs off until it ends.
//  - A segment pointer is loaded after its position (acquire) and dereferenced only after the
//    CAS on that position succeeded: the position being unchanged proves the segment is still
//    the current one. So a thread holding a stale pointer never touches the segment, even if
//    it was recycled or freed meanwhile.
//  - Retirement: the pop whose `taken` increment makes it Slots (acq_rel) is the last thread
//    to touch the segment (every push to it published before its pop acquired the stamp; the
//    last-slot consumer read `next` before its increment), so it resets the segment and gives
//    it to one of kSpares spare places, or frees it if they are full.
//  - A push that will claim a segment's last slot takes its successor *before* its CAS: a
//    spare, or else, if tail_ has not moved meanwhile, a new allocation, which may throw
//    bad_alloc. So an allocation failure leaves the queue untouched, nothing can fail after a
//    claim, and a push that lost the race for the last slot (tail_ moved) goes on without
//    allocating. A segment taken and not used goes back before the push publishes its item.
// Memory: the segments between head and tail (at most ceil(n / Slots) + 1 for n items
// queued, plus those still held by a pop that has claimed a slot and not finished it), up to
// kSpares spares, and one in the hands of each push at a segment boundary. A queue that
// stays within the segments it has allocates nothing: a retired segment is the next one
// installed.
//
// Waits inside an operation (all Backoff: spin, then yield), with their wake-up sources:
//  - a push or pop at a hand-over position: the claimer of the last slot, which installs the
//    next segment right after its CAS, before touching its item;
//  - a pop whose slot was claimed but not yet written: the push that claimed it, which
//    stores the stamp right after its nothrow move;
//  - the last slot's pop, waiting for `next`: the last slot's push, as above.
// The ring (ring.hpp) waits for the same two of them, before its CAS instead of after. These
// waits have no deadline: a get with a timeout that has claimed a slot waits for that slot's
// push even past its deadline (the push is between its CAS and its stamp store, a few
// instructions, unless it is preempted there).
//
// Memory ordering: the CASes on head_ and tail_ and the loads in empty_and_open() are seq_cst
// for the waiting layer's handshake, as in ring.hpp; the stamps publish items (release /
// acquire); every other order is given its reason where it is used. Loads that are seq_cst
// cost a plain load on x86 and carry no comment.
//
// Batches: try_push_many and try_pop_many claim a run of positions within one segment with
// one CAS, in rounds, one per segment; a pop batch waits for each claimed slot's stamp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/atomic.hpp"
#include "weft/detail/ring.hpp"
#include "weft/detail/storage.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft::detail {

// Slots per segment of an unbounded Queue of T: 2^k - 1 for the largest k whose 2^k slots
// (an item and its 8-byte stamp each) fit in 4 KiB, so that a position's offset is a mask
// and a segment's allocation and retirement are shared by many items (255 items of up to 8
// bytes, 127 of up to 24, ...). 0 when fewer than 7 would fit (items over ~500 bytes): a
// segment would then hold too few items to pay for itself, and FifoStorage (queue.hpp) uses
// the locked deque.
template <class T>
constexpr std::size_t segment_slots() noexcept {
  constexpr std::size_t align = alignof(T) > 8 ? alignof(T) : 8;
  constexpr std::size_t slot = (8 + sizeof(T) + align - 1) / align * align;
  constexpr std::size_t fit = slot > 4096 ? 0 : std::bit_floor(std::size_t{4096} / slot);
  return fit >= 8 ? fit - 1 : 0;
}

template <class T, std::size_t Slots = segment_slots<T>()>
class SegmentList {
  static_assert(std::is_nothrow_move_constructible_v<T>);
  static_assert(Slots >= 1 && std::has_single_bit(Slots + 1), "Slots + 1 is a power of two");

  static constexpr std::uint64_t kLap = Slots + 1;
  static constexpr std::uint64_t kMark = std::uint64_t{1} << 63;  // tail: closed; head: hint
  static constexpr std::size_t kSpares = 2;

  // `storage` is raw on purpose: an item lives there only between its push and its pop.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init)
  struct Slot {
    Atomic<std::uint64_t> stamp{0};  // p + 1 once the item of position p is written
    alignas(T) unsigned char storage[sizeof(T)];
    T* item() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };
  struct Segment {
    Atomic<Segment*> next{nullptr};
    Atomic<std::uint32_t> taken{0};  // pops finished in this segment's current use
    alignas(kCacheLine) Slot slots[Slots];
  };

 public:
  // `cap` must be 0: the list is unbounded. Allocates the first segment (may throw).
  explicit SegmentList(std::size_t /*cap*/ = 0) {
    auto* const first = new Segment;
    head_seg_.store(first, std::memory_order_relaxed);  // relaxed: not shared yet
    tail_seg_.store(first, std::memory_order_relaxed);
  }
  SegmentList(const SegmentList&) = delete;
  SegmentList& operator=(const SegmentList&) = delete;

  ~SegmentList() {
    // Single-threaded now: destroy what is still stored, then free every segment.
    // relaxed: no other thread.
    const std::uint64_t head = head_.load(std::memory_order_relaxed) & ~kMark;
    const std::uint64_t end = count(tail_.load(std::memory_order_relaxed) & ~kMark);
    Segment* seg = head_seg_.load(std::memory_order_relaxed);
    std::uint64_t offset = head % kLap;
    for (std::uint64_t n = count(head); n != end; ++n) {
      if (offset == Slots) {
        seg = seg->next.load(std::memory_order_relaxed);
        offset = 0;
      }
      seg->slots[offset++].item()->~T();
    }
    seg = head_seg_.load(std::memory_order_relaxed);
    while (seg != nullptr) {
      Segment* const next = seg->next.load(std::memory_order_relaxed);
      delete seg;
      seg = next;
    }
    for (auto& spare : spares_) delete spare.load(std::memory_order_relaxed);
  }

  // Moves `item` in on success; leaves it untouched on shut_down or when the allocation of a
  // segment throws. Claims one waiter of `notify` before publishing the item: the stamp
  // store is this call's last access to the list (the getter may destroy the queue at once).
  PushResult try_push(T& item, FlagSource* notify, WakeBatch& woken) {
    // First attempt straight-line: a slot that is not the segment's last, uncontended.
    // acquire: the segment loaded next is then the one installed for this position (the
    // installer stores tail_seg_ before it moves tail_ on with release).
    std::uint64_t tail = tail_.load(std::memory_order_acquire);
    // acquire: if the segment is recycled, the pops that read and destroyed its previous
    // items did so before its retirement (finish()'s acq_rel count), which keep() released,
    // take_spare() acquired and install_tail() released with tail_seg_: this push's write to
    // its slot comes after them. (Also the segment's reset `next` and count.)
    Segment* seg = tail_seg_.load(std::memory_order_acquire);
    const std::uint64_t offset = tail % kLap;  // (the mark is bit 63: a multiple of kLap)
    // seq_cst: the waiting handshake. relaxed on failure: the slow path loads again.
    if ((tail & kMark) == 0 && offset + 1 < Slots &&
        tail_.compare_exchange_strong(tail, tail + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) [[likely]] {
      publish_one(seg->slots[offset], tail, item, notify, woken);
      return PushResult::ok;
    }
    return try_push_slow(item, notify, woken);
  }

  [[gnu::noinline]] PushResult try_push_slow(T& item, FlagSource* notify, WakeBatch& woken) {
    Backoff backoff;
    SpareHolder spare{*this};
    std::uint64_t tail = tail_.load(std::memory_order_acquire);  // acquire: as in try_push
    for (;;) {
      if (tail & kMark) return PushResult::shut_down;
      const std::uint64_t offset = tail % kLap;
      if (offset == Slots) {
        // Hand-over: wakes when the last slot's claimer moves tail_ on (install_tail).
        backoff.snooze();
        tail = tail_.load(std::memory_order_acquire);
        continue;
      }
      const bool last = offset + 1 == Slots;
      if (last && spare.seg == nullptr) {
        spare.seg = successor_for(tail);     // may throw: nothing claimed
        if (spare.seg == nullptr) continue;  // tail_ moved on: `tail` is reloaded
      } else if (!last && spare.seg != nullptr) {
        // A spare taken for a last slot another push won: returned (perhaps freed) now,
        // before a claim, never between a claim and its publication, where a pop waits.
        spare.give_back();
      }
      Segment* const seg = tail_seg_.load(std::memory_order_acquire);  // acquire: as in try_push
      // acquire on failure: the reloaded position is used as above.
      if (tail_.compare_exchange_weak(tail, tail + 1, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
        if (last) install_tail(seg, spare.release());  // else no spare is held
        publish_one(seg->slots[offset], tail, item, notify, woken);
        return PushResult::ok;
      }
      backoff.spin();
    }
  }

  // One pop attempt (storage.hpp): on ok the ticket has claimed a position, and the item
  // waits in its slot for take(sink); when the ticket ends it destroys the moved-from item
  // and counts the slot as taken (retiring the segment if it was the last).
  class PopTicket {
   public:
    PopTicket(SegmentList& l, FlagSource* notify, WakeBatch& woken) noexcept : l_(l) {
      const Claim c = l.claim_one();
      if (c.n == 0) {
        status_ = c.status;
        return;
      }
      // seq_cst flag load after the seq_cst CAS: the waiting handshake.
      if (notify != nullptr) notify->claim_one(woken);
      seg_ = c.seg;
      slot_ = &c.seg->slots[c.pos % kLap];
      wait_stamp(*slot_, c.pos);
    }
    PopTicket(const PopTicket&) = delete;
    PopTicket& operator=(const PopTicket&) = delete;
    ~PopTicket() {
      if (slot_ == nullptr) return;
      slot_->item()->~T();
      l_.finish(seg_, 1);
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
    SegmentList& l_;
    Segment* seg_ = nullptr;
    Slot* slot_ = nullptr;
    PopResult status_ = PopResult::ok;
  };

  // Pushes items from `feed` (storage.hpp), a segment's run per round. On any result (or
  // exception: a segment's allocation) `done` has grown by the items pushed.
  template <class Feed>
  PushResult try_push_many(Feed& feed, std::size_t& done, FlagSource* notify, WakeBatch& woken) {
    if constexpr (!Feed::kClaimRun) {
      return push_each(*this, feed, done, notify);
    } else {
      SpareHolder spare{*this};
      for (;;) {
        const auto [items, want] = feed.run();  // may throw: nothing claimed in this round
        if (want == 0) return PushResult::ok;
        Backoff backoff;
        std::uint64_t tail = tail_.load(std::memory_order_acquire);  // acquire: as in try_push
        std::uint64_t offset = 0;
        std::size_t k = 0;
        Segment* seg = nullptr;
        for (;;) {
          if (tail & kMark) return PushResult::shut_down;
          offset = tail % kLap;
          if (offset == Slots) {
            // Hand-over: wakes when the last slot's claimer moves tail_ on.
            backoff.snooze();
            tail = tail_.load(std::memory_order_acquire);
            continue;
          }
          k = std::min<std::size_t>(want, Slots - offset);
          if (offset + k == Slots && spare.seg == nullptr) {
            spare.seg = successor_for(tail);     // may throw: nothing claimed in this round
            if (spare.seg == nullptr) continue;  // tail_ moved on: `tail` is reloaded
          } else if (offset + k != Slots && spare.seg != nullptr) {
            spare.give_back();  // as in try_push_slow: never between claim and publication
          }
          seg = tail_seg_.load(std::memory_order_acquire);  // acquire: as in try_push
          // acquire on failure: as in try_push_slow.
          if (tail_.compare_exchange_weak(tail, tail + k, std::memory_order_seq_cst,
                                          std::memory_order_acquire)) {
            break;
          }
          backoff.spin();
        }
        if (offset + k == Slots) install_tail(seg, spare.release());  // else no spare is held
        // seq_cst flag load after the seq_cst CAS: the waiting handshake.
        if (notify != nullptr && notify->maybe_waiting()) [[unlikely]]
          notify->claim(woken, k);
        auto item = items;
        Slot* slot = &seg->slots[offset];
#pragma GCC unroll 4
        for (std::size_t j = 0; j < k; ++j, ++slot, ++item) {
          Feed::construct_at(slot->storage, item);
          // release: publishes the item to the pop that acquires this stamp.
          slot->stamp.store(tail + j + 1, std::memory_order_release);
        }
        done += k;
        feed.advance(k);  // after the count: may throw (not for the usual iterators)
      }
    }
  }

  // Pops 1..max items into `out` (whose appends cannot throw once prepared), a segment's run
  // per round, or reports empty / shut_down. Only the first round may report those.
  template <class Out>
  PopResult try_pop_many(Out& out, std::size_t max, std::size_t& done, FlagSource* notify,
                         WakeBatch& woken) {
    static_assert(Out::kNothrow, "a claimed position cannot be given back");
    if (max == 0) [[unlikely]]
      return PopResult::ok;
    // Room in `out` for what is queued now, once (may throw: nothing claimed yet); the
    // rounds below take no more than that room.
    max = std::min(max, out.prepare(std::min(max, std::max<std::size_t>(size(), 1))));
    std::size_t got = 0;
    while (got < max) {
      const Claim c = claim_pop(max - got);
      if (c.n == 0) {
        if (got != 0) break;
        return c.status;
      }
      // seq_cst flag load after the seq_cst CAS: the waiting handshake.
      if (notify != nullptr && notify->maybe_waiting()) [[unlikely]]
        notify->claim(woken, c.n);
      Out o = std::move(out);
      Slot* slot = &c.seg->slots[c.pos % kLap];
      for (std::size_t j = 0; j < c.n; ++j, ++slot) {
        wait_stamp(*slot, c.pos + j);
        o(std::move(*slot->item()));
        slot->item()->~T();
      }
      out = std::move(o);
      finish(c.seg, c.n);
      got += c.n;
      done += c.n;
    }
    return PopResult::ok;
  }

  // Re-checks for the waiting handshake (seq_cst loads of the positions), also select's
  // hint (queue.hpp). True only if the list was empty and open at the tail load: head
  // first, then tail, as in ring.hpp. A pop claims only positions a push has claimed, so
  // head <= tail; if head(t1) == tail(t2), then head(t2) equals tail(t2), empty at t2, where
  // the closed bit was read. A push whose CAS follows the tail load sees the waiter's
  // announcement, made before it.
  bool empty_and_open() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
    return (tail & kMark) == 0 && count(tail) == count(head & ~kMark);
  }
  static constexpr bool full_and_open() noexcept {
    return false;
  }

  std::size_t size() const noexcept {
    // Head first: tail only grows and never passes below head, so never negative.
    const std::uint64_t head = head_.load(std::memory_order_seq_cst) & ~kMark;
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst) & ~kMark;
    return static_cast<std::size_t>(count(tail) - count(head));
  }

  // Pushes ever claimed (each claimed position is a push that succeeds).
  std::uint64_t pushed() const noexcept {
    return count(tail_.load(std::memory_order_seq_cst) & ~kMark);
  }

  void close() noexcept {
    tail_.fetch_or(kMark, std::memory_order_seq_cst);
  }
  bool closed() const noexcept {
    return (tail_.load(std::memory_order_seq_cst) & kMark) != 0;
  }

  // After close(): pops everything, waiting out pushes that claimed a position before it.
  // Cannot throw once `out` has room (T moves without throwing).
  void drain(std::vector<T>& out) {
    drain_by_tickets(*this, out);
  }

  // Segments allocated now (in the list, spare or in a push's hands): for tests.
  std::size_t segments_allocated() const noexcept {
    return static_cast<std::size_t>(allocated_.load(std::memory_order_relaxed));
  }

 private:
  // Positions claimed by one pop or pop batch: [pos, pos + n) in `seg`; n == 0: none (status).
  struct Claim {
    Segment* seg = nullptr;
    std::uint64_t pos = 0;
    std::size_t n = 0;
    PopResult status = PopResult::empty;
  };

  // A segment taken for a claim of a segment's last slot, returned if not used.
  // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a scope guard
  struct SpareHolder {
    SegmentList& l;
    Segment* seg = nullptr;
    ~SpareHolder() { give_back(); }
    Segment* release() noexcept { return std::exchange(seg, nullptr); }
    void give_back() noexcept {
      if (seg != nullptr) l.keep(release());
    }
  };

  // Writes the item of claimed position `pos` and publishes it.
  static void publish_one(Slot& slot, std::uint64_t pos, T& item, FlagSource* notify,
                          WakeBatch& woken) noexcept {
    // seq_cst flag load after the seq_cst CAS: the waiting handshake.
    if (notify != nullptr) notify->claim_one(woken);
    ::new (slot.storage) T(std::move(item));
    // release: publishes the item to the pop that acquires this stamp.
    slot.stamp.store(pos + 1, std::memory_order_release);
  }

  // Claims one position (PopTicket): inline, a slot that is not its segment's last, with one
  // CAS and no position arithmetic; anything else (a segment's last slot, a hand-over, an
  // empty or closed list, a lost CAS) goes to claim_pop_slow.
  Claim claim_one() noexcept {
    // acquire: the segment loaded after it is then the one installed for this position.
    std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t pos = head & ~kMark;
    if (pos % kLap + 1 < Slots) [[likely]] {
      // A push has claimed `pos` if the hint says so for its whole segment, or if tail_ has
      // passed it (positions only grow, and `pos` is no hand-over position).
      if ((head & kMark) != 0 || (tail_.load(std::memory_order_seq_cst) & ~kMark) > pos) {
        Segment* const seg = head_seg_.load(std::memory_order_acquire);  // acquire: as above
        // seq_cst: the waiting handshake. relaxed on failure: the slow path loads again.
        // head + 1 keeps the hint: it stays true until install_head moves head_ on.
        if (head_.compare_exchange_strong(head, head + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) [[likely]] {
          return {seg, pos, 1, PopResult::ok};
        }
      }
    }
    return claim_pop_slow(1);
  }

  // Claims up to `want` (>= 1) positions from head_, all in the head segment and all claimed
  // by pushes; or reports empty / shut_down.
  Claim claim_pop(std::size_t want) noexcept {
    // First attempt straight-line (no Backoff): the uncontended case.
    // acquire: the segment loaded after it is then the one installed for this position.
    std::uint64_t head = head_.load(std::memory_order_acquire);
    Claim c;
    if (try_claim_pop(head, want, c) == Attempt::done) [[likely]]
      return c;
    return claim_pop_slow(want);
  }
  [[gnu::noinline]] Claim claim_pop_slow(std::size_t want) noexcept {
    Backoff backoff;
    std::uint64_t head = head_.load(std::memory_order_acquire);  // acquire: as in claim_pop
    Claim c;
    for (;;) {
      switch (try_claim_pop(head, want, c)) {
        case Attempt::done:
          return c;
        case Attempt::handover:
          // Wakes when the last slot's claimer stores head_ (install_head).
          backoff.snooze();
          head = head_.load(std::memory_order_acquire);  // acquire: as in claim_pop
          break;
        case Attempt::lost:
          backoff.spin();  // the failed CAS reloaded head
          break;
      }
    }
  }
  enum class Attempt { done, handover, lost };
  // One claim attempt from `head`: done (c is the claim, or says empty / shut_down), a
  // hand-over position (retry later), or a lost CAS (head is reloaded).
  Attempt try_claim_pop(std::uint64_t& head, std::size_t want, Claim& c) noexcept {
    const std::uint64_t hint = head & kMark;
    const std::uint64_t pos = head & ~kMark;
    const std::uint64_t offset = pos % kLap;
    if (offset == Slots) return Attempt::handover;
    std::uint64_t n = Slots - offset;  // with the hint: every slot to the segment's end
    std::uint64_t next_hint = hint;
    if (hint == 0) {
      const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
      const std::uint64_t queued = count(tail & ~kMark) - count(pos);
      if (queued == 0) [[unlikely]] {
        c = {nullptr, 0, 0, (tail & kMark) ? PopResult::shut_down : PopResult::empty};
        return Attempt::done;
      }
      if (queued >= n) {
        next_hint = kMark;  // every slot of this segment has been claimed by a push
      } else {
        n = queued;
      }
    }
    const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, want));
    Segment* const seg = head_seg_.load(std::memory_order_acquire);  // acquire: as above
    // seq_cst: the waiting handshake. acquire on failure: the new position is used as above.
    if (!head_.compare_exchange_weak(head, (pos + k) | next_hint, std::memory_order_seq_cst,
                                     std::memory_order_acquire)) {
      return Attempt::lost;
    }
    if (offset + k == Slots) install_head(seg, pos + k);
    c = {seg, pos, k, PopResult::ok};
    return Attempt::done;
  }

  // The claimer of `seg`'s last push slot: makes `next` the tail segment and leaves the
  // hand-over position.
  void install_tail(Segment* seg, Segment* next) noexcept {
    // release: a push that reads the new tail_ (acquire) finds `next`, reset, here.
    tail_seg_.store(next, std::memory_order_release);
    // Past the hand-over position; fetch_add keeps a closed mark that close() set meanwhile.
    // release: publishes tail_seg_ (above) to the pushes that acquire tail_.
    tail_.fetch_add(1, std::memory_order_release);
    // release: the last slot's pop acquires `next` (and its reset contents) here.
    seg->next.store(next, std::memory_order_release);
  }

  // The claimer of `seg`'s last pop slot: moves head_ from the hand-over position `handover`
  // to the next segment, with the hint if that segment is already full of claims.
  void install_head(Segment* seg, std::uint64_t handover) noexcept {
    Backoff backoff;
    // acquire: the segment's contents as install_tail published them.
    Segment* next = seg->next.load(std::memory_order_acquire);
    while (next == nullptr) {
      // Wakes when the last slot's push links `next` (install_tail, right after its CAS).
      backoff.snooze();
      next = seg->next.load(std::memory_order_acquire);
    }
    // acquire not needed: a non-null `next` of `next` only says that its slots were claimed.
    const std::uint64_t hint = next->next.load(std::memory_order_relaxed) != nullptr ? kMark : 0;
    // release: a pop that reads the new head_ (acquire) finds `next` here.
    head_seg_.store(next, std::memory_order_release);
    // release: publishes head_seg_. Nobody else changes head_ at a hand-over position; the
    // count it stands for does not change, so the waiting handshake has nothing to see here.
    head_.store((handover + 1) | hint, std::memory_order_release);
  }

  // Waits for the item of claimed position `pos`.
  static void wait_stamp(Slot& slot, std::uint64_t pos) noexcept {
    // acquire: synchronizes with the push's release store of the stamp (its item).
    if (slot.stamp.load(std::memory_order_acquire) == pos + 1) [[likely]]
      return;
    Backoff backoff;
    // Wakes when the push that claimed `pos` stores the stamp (publish_one, right after its
    // nothrow move).
    while (slot.stamp.load(std::memory_order_acquire) != pos + 1) backoff.snooze();
  }

  // n pops of `seg` are done with their slots; the last of all Slots retires the segment.
  void finish(Segment* seg, std::size_t n) noexcept {
    // acq_rel: release orders this pop's accesses to the segment before its reuse; the pop
    // that completes the count acquires every other pop's (and, through their stamps, every
    // push's).
    if (seg->taken.fetch_add(static_cast<std::uint32_t>(n), std::memory_order_acq_rel) + n ==
        Slots) {
      // relaxed: published by keep()'s release.
      seg->next.store(nullptr, std::memory_order_relaxed);
      seg->taken.store(0, std::memory_order_relaxed);
      keep(seg);
    }
  }

  // The successor segment for a push about to claim the last slot at `tail`: a spare; else,
  // if tail_ is still at `tail`, a new segment (may throw bad_alloc: the queue needs one to
  // go past `tail`); else nullptr with `tail` reloaded, so that the pushes that lose the race
  // for a segment's last slot neither allocate nor fail for a segment the queue did not need.
  Segment* successor_for(std::uint64_t& tail) {
    if (Segment* const s = take_spare()) return s;
    // acquire: as in try_push (the caller goes on from the reloaded position).
    const std::uint64_t now = tail_.load(std::memory_order_acquire);
    if (now != tail) {
      tail = now;
      return nullptr;
    }
    try {
      auto* const s = new Segment;
      // relaxed: a statistic for tests.
      allocated_.fetch_add(1, std::memory_order_relaxed);
      return s;
    } catch (const std::bad_alloc&) {
      // acquire: as above.
      const std::uint64_t again = tail_.load(std::memory_order_acquire);
      if (again == tail) throw;  // still needed: the put fails, nothing claimed
      tail = again;
      return nullptr;
    }
  }
  // A spare segment, or nullptr.
  Segment* take_spare() noexcept {
    for (auto& spare : spares_) {
      // relaxed: a guess; the exchange decides.
      if (spare.load(std::memory_order_relaxed) == nullptr) continue;
      // acquire: the reset the retiring pop (or the returning push) made before its release.
      if (Segment* const s = spare.exchange(nullptr, std::memory_order_acquire)) return s;
    }
    return nullptr;
  }
  // Keeps a free segment as a spare, or frees it when the spares are taken.
  void keep(Segment* s) noexcept {
    for (auto& spare : spares_) {
      Segment* expected = nullptr;
      // release: publishes the segment's reset to the push that takes it (acquire).
      // relaxed on failure: that place is taken; try the next.
      if (spare.compare_exchange_strong(expected, s, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        return;
      }
    }
    delete s;
    allocated_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a statistic for tests
  }

  // Position -> number of items that passed it (the hand-over positions hold none).
  static constexpr std::uint64_t count(std::uint64_t pos) noexcept {
    return (pos / kLap) * Slots + pos % kLap;
  }

  alignas(kCacheLine) Atomic<std::uint64_t> head_{0};
  Atomic<Segment*> head_seg_{nullptr};
  alignas(kCacheLine) Atomic<std::uint64_t> tail_{0};
  Atomic<Segment*> tail_seg_{nullptr};
  alignas(kCacheLine) Atomic<Segment*> spares_[kSpares] = {};
  Atomic<std::int64_t> allocated_{1};
};

}  // namespace weft::detail
