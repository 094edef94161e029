// SPDX-License-Identifier: MIT
// weft/detail/queue_core.hpp: the one synchronization skeleton of every weft queue.
//
// QueueCore<T, Storage> adds to a storage (ring.hpp, storage.hpp) what makes it a blocking
// queue: three WaitSources (getters waiting for "not empty", putters waiting for "not full",
// joiners waiting for "all tasks done"), task accounting, and shutdown. Every blocking call
// goes through the one loop of wait_loop.hpp, with the operations at the end of this file.
//
// Invariants:
//  - unfinished tasks == storage.pushed() - done_, never negative: task_done() refuses to
//    take done_ past pushed(), and shutdown(true) counts at most the unfinished tasks done.
//  - A thread parks in a WaitSource only after registering in it and then re-checking the
//    storage (the flag handshake of wait_source.hpp); every successful push claims a getter, every
//    successful pop of a bounded queue claims a putter, and shutdown() claims everyone.
//  - Lifetime: every operation makes its publication (the item, the freed slot, the last
//    task done, the shutdown) its final access to the queue, and wakes the threads it claimed
//    only afterwards, touching nothing but their Parkers; see try_push(), task_done() and
//    shutdown().
//  - A woken (claimed) thread always retries its operation before giving up, so a wake-up is
//    never dropped: if the retry fails, another thread consumed what the wake announced.
//  - A failed, timed-out or cancelled operation changes nothing (the item stays with the
//    caller; a getter takes nothing).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <stop_token>
#include <utility>
#include <vector>

#include "weft/detail/deadline.hpp"
#include "weft/detail/diag_hooks.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/storage.hpp"
#include "weft/detail/wait_loop.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft::detail {

enum class Status { ok, timed_out, shut_down, cancelled };

// How a batch ended: `count` items moved, and why it stopped (ok: all of them were put, or
// at least one was got). A batch that moved an item reports success with its count, whatever
// stopped it afterwards (write(2)'s rule): only a batch that moved nothing reports a failure.
struct BatchResult {
  std::size_t count;
  Status status;
};

template <class Core>
class QueuePutOp;
template <class Core>
class QueueGetOp;
template <class Core>
class QueueJoinOp;

template <class T, class Storage>
class QueueCore {
 public:
  template <class... Args>
  explicit QueueCore(std::ptrdiff_t maxsize, Args&&... args)
      : maxsize_(maxsize),
        bounded_(maxsize > 0),
        storage_(bounded_ ? static_cast<std::size_t>(maxsize) : 0, std::forward<Args>(args)...) {}

  // A Sink says what a pop builds and what a failure yields (queue.hpp, select.hpp):
  //   R take(T&& item)  builds the result from the item, which is still in the storage
  //                     (storage.hpp: the item leaves only once this has returned)
  //   R fail(Status)    the result of a pop that took nothing (or throws)
  template <class Sink>
  using PopResultOf = decltype(std::declval<Sink&>().take(std::declval<T&&>()));

  // One non-blocking attempt. A success claims one waiter of the other side before the
  // storage publishes its change, and wakes it after: the publication is this call's last
  // access to the queue (docs/api.md, Lifetime).
  PushResult try_push(T& item) {
    WakeBatch woken;  // wakes on return, touching only Parkers
    const PushResult r = storage_.try_push(item, &not_empty_, woken);
    if (r == PushResult::shut_down) sync_with_shutdown();
    return r;
  }
  // fail(Status::timed_out) when empty.
  template <class Sink>
  PopResultOf<Sink> try_pop(Sink& sink) {
    PopResult r;
    {
      WakeBatch woken;  // declared before the ticket: wakes after the ticket's last access
      typename Storage::PopTicket ticket(storage_, putters(), woken);
      r = ticket.status();
      if (r == PopResult::ok) return ticket.take(sink);
    }
    if (r == PopResult::empty) return sink.fail(Status::timed_out);
    sync_with_shutdown();
    return sink.fail(Status::shut_down);
  }
  // Re-checks for the waiting handshake: could a push / a pop proceed (or fail for good)?
  bool push_ready() noexcept { return !storage_.full_and_open(); }
  bool pop_ready() noexcept { return !storage_.empty_and_open(); }
  // Hints for select's first attempt (select.hpp), lock-free: false only when the storage
  // was seen empty (full, for a push) and open (what that guarantees, per storage: the
  // comment on Selector::try_all); a storage without hints says true.
  bool pop_hint() noexcept {
    if constexpr (requires { storage_.pop_hint(); }) {
      return storage_.pop_hint();
    } else {
      return true;
    }
  }
  bool push_hint() noexcept {
    if constexpr (requires { storage_.push_hint(); }) {
      return storage_.push_hint();
    } else {
      return true;
    }
  }

  // Moves from `item` only when it returns ok.
  Status push(T& item, Deadline deadline, const std::stop_token* stop) {
    // Fast path, inline: one attempt (and the wake-up it owes). The rest is out of line.
    if (stop == nullptr || !stop->stop_requested()) [[likely]] {
      WakeBatch woken;
      if (storage_.try_push(item, &not_empty_, woken) == PushResult::ok) [[likely]] {
        return Status::ok;
      }
    }
    return push_slow(item, deadline, stop);
  }
  [[gnu::noinline]] Status push_slow(T& item, Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
    QueuePutOp<QueueCore> op(*this);
    // If the item's move or the comparator throws in a retry after a pop claimed us for the
    // slot it freed, the loop passes that wake-up on to the next putter.
    WaitLoop loop(deadline, stop);
    for (;;) {
      PushResult pushed;
      try {
        pushed = try_push(item);
      } catch (...) {
        loop.pass_on_claim();
        throw;
      }
      switch (pushed) {
        case PushResult::ok:
          diag_traced(TraceOp::put, SourceKind::queue_put, this);
          return Status::ok;
        case PushResult::shut_down:
          return Status::shut_down;
        case PushResult::full:
          break;
      }
      const Round r = loop.wait(op);
      if (r.ended()) return r.cancelled() ? Status::cancelled : Status::timed_out;
    }
  }

  // Returns sink.take(item) with an item got, or sink.fail(status).
  template <class Sink>
  PopResultOf<Sink> pop(Sink& sink, Deadline deadline, const std::stop_token* stop) {
    if (stop == nullptr || !stop->stop_requested()) [[likely]] {
      WakeBatch woken;
      using Ticket = typename Storage::PopTicket;
      if constexpr (requires { requires Ticket::kInertUnlessOk; }) {
        // The ticket's destructor runs only after an ok status: a failed ticket holds
        // nothing, so its life ends without it. With the destructor on the failure path
        // too, g++ may leave that cold call out of line (under --param inline-unit-growth,
        // which depends on the whole translation unit, even on WEFT_USDT), and a ticket
        // whose address reaches a call lives in memory: ~16 instructions more per get of
        // the ring or the list (callgrind `spsc`, `unbounded_spsc`).
        // Place's members are {} (not = default: that would delete them, Ticket's are not
        // trivial).
        union Place {
          Place() noexcept {}  // NOLINT(modernize-use-equals-default): see above
          Place(const Place&) = delete;
          Place& operator=(const Place&) = delete;
          ~Place() {}  // NOLINT(modernize-use-equals-default): see above
          Ticket ticket;
        } place;
        Ticket& ticket = *::new (&place.ticket) Ticket(storage_, putters(), woken);
        if (ticket.status() == PopResult::ok) [[likely]] {
          struct End {
            Ticket& t;
            explicit End(Ticket& owned) noexcept : t(owned) {}
            End(const End&) = delete;
            End& operator=(const End&) = delete;
            ~End() { t.~Ticket(); }
          } end(ticket);
          return ticket.take(sink);
        }
      } else {
        Ticket ticket(storage_, putters(), woken);
        if (ticket.status() == PopResult::ok) [[likely]]
          return ticket.take(sink);
      }
    }
    return pop_slow(sink, deadline, stop);
  }
  template <class Sink>
  [[gnu::noinline]] PopResultOf<Sink> pop_slow(Sink& sink, Deadline deadline,
                                               const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return sink.fail(Status::cancelled);
    QueueGetOp<QueueCore> op(*this);
    Status failure = Status::timed_out;
    {
      // If building the result (T's move) or the comparator throws in a retry after a push
      // claimed us, the item is still queued and the loop passes the wake-up on.
      WaitLoop loop(deadline, stop);
      for (;;) {
        PopResult r;
        try {
          WakeBatch woken;
          typename Storage::PopTicket ticket(storage_, putters(), woken);
          r = ticket.status();
          if (r == PopResult::ok) {
            diag_traced(TraceOp::get, SourceKind::queue_get, this);
            return ticket.take(sink);
          }
        } catch (...) {
          loop.pass_on_claim();
          throw;
        }
        if (r == PopResult::shut_down) {
          sync_with_shutdown();
          failure = Status::shut_down;
          break;
        }
        const Round round = loop.wait(op);
        if (round.ended()) {
          if (round.cancelled()) failure = Status::cancelled;
          break;
        }
      }
    }
    return sink.fail(failure);  // outside the loop: a throwing fail() is not a lost wake-up
  }

  // ---- batches ---------------------------------------------------------------------------
  // Puts the feed's items, waiting for room as needed, until all are in, the deadline, a
  // stop, shutdown or an exception. If an item throws (its copy or move, the comparator)
  // after others went in, the batch ends there and returns their count; the exception
  // propagates only from a batch that put nothing.
  // (Per batch, not per item: no separate inline fast path.)
  template <class Feed>
  BatchResult push_many(Feed& feed, Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return {0, Status::cancelled};
    QueuePutOp<QueueCore> op(*this);
    WaitLoop loop(deadline, stop);
    std::size_t done = 0;
    for (;;) {
      const std::size_t before = done;
      PushResult r;
      try {
        WakeBatch woken;  // wakes after the storage's last access
        r = storage_.try_push_many(feed, done, &not_empty_, woken);
      } catch (...) {
        // A wake-up this round did not use goes to the next putter (as in push_slow).
        if (done == before) loop.pass_on_claim();
        if (done == 0) throw;
        return {done, Status::ok};
      }
      if (r == PushResult::ok) return {done, Status::ok};
      if (r == PushResult::shut_down) {
        sync_with_shutdown();
        return {done, Status::shut_down};
      }
      if (done != before) continue;  // room was made meanwhile: try again before waiting
      const Round round = loop.wait(op);
      if (round.ended()) return {done, round.cancelled() ? Status::cancelled : Status::timed_out};
    }
  }

  // Gets 1..max items into `out`, waiting for the first only. If `out` or the comparator
  // throws after items were got, the batch ends there and returns their count (the item that
  // threw stays queued); the exception propagates only from a batch that got nothing.
  template <class Out>
  BatchResult pop_many(Out& out, std::size_t max, Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return {0, Status::cancelled};
    QueueGetOp<QueueCore> op(*this);
    WaitLoop loop(deadline, stop);
    for (;;) {
      BatchResult r{};
      try {
        r = try_pop_many(out, max);
      } catch (...) {
        loop.pass_on_claim();  // nothing was got: as in pop_slow
        throw;
      }
      if (r.status != Status::timed_out) return r;  // got some, or shut down and empty
      const Round round = loop.wait(op);
      if (round.ended()) return {0, round.cancelled() ? Status::cancelled : Status::timed_out};
    }
  }
  // One non-blocking attempt (pop_many's, select's get_many): {0, timed_out} when empty.
  template <class Out>
  BatchResult try_pop_many(Out& out, std::size_t max) {
    std::size_t done = 0;
    PopResult r;
    try {
      WakeBatch woken;
      r = storage_.try_pop_many(out, max, done, putters(), woken);
    } catch (...) {
      if (done == 0) throw;
      return {done, Status::ok};
    }
    if (r == PopResult::ok) return {done, Status::ok};
    if (r == PopResult::empty) return {0, Status::timed_out};
    sync_with_shutdown();
    return {0, Status::shut_down};
  }

  // Task accounting is under the joiners' source's lock (as Python's all_tasks_done
  // condition): the call that finishes the last task claims the joiners inside it, so a
  // joiner that returns has synchronized with the end of that call's last access, and may
  // destroy the queue.
  void task_done() {
    WakeBatch woken;  // declared first: wakes after the lock is released
    WordLockGuard g(joiners_.lock());
    const std::uint64_t pushed = storage_.pushed();
    const std::uint64_t done = done_.load(std::memory_order_relaxed);
    if (done >= pushed) throw std::logic_error("weft: task_done() called too many times");
    // relaxed: written under the joiners' lock; unfinished_tasks() reads a snapshot.
    done_.store(done + 1, std::memory_order_relaxed);
    if (done + 1 == pushed) joiners_.claim_locked(woken, FlagSource::kAll);
  }

  Status join(Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
    QueueJoinOp<QueueCore> op(*this);
    WaitLoop loop(deadline, stop);
    for (;;) {
      if (all_tasks_done_synced()) return Status::ok;
      const Round r = loop.wait(op);
      if (r.ended()) return r.cancelled() ? Status::cancelled : Status::timed_out;
    }
  }

  // Everything under shutdown_lock_: close, drain, task accounting and claiming every
  // waiter. A thread that then sees the queue shut down (a put or get that fails with
  // ShutDown, is_shutdown()) takes shutdown_lock_ once before reporting it, so it may
  // destroy the queue after this call's last access. Waiters that register after the claims
  // see the queue closed in their re-check.
  std::vector<T> shutdown(bool immediate) {
    std::vector<T> removed;
    WakeBatch woken;  // declared first: wakes after the lock is released
    WordLockGuard g(shutdown_lock_);
    // The trace names the claims below "shutdown", not by the waits they end (a put, a get).
    const DiagNotifiesAs as(TraceOp::shutdown, SourceKind::queue_get, this);
    storage_.close();
    // Even if the drain throws (T's copy or move, the comparator, bad_alloc), the waiters
    // are released, and whatever left the storage counts as done.
    // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a local scope guard
    struct ClaimAll {
      QueueCore* q;
      WakeBatch& woken;
      ~ClaimAll() {
        q->not_full_.claim_all(woken);
        q->not_empty_.claim_all(woken);
      }
    } claim_all{this, woken};
    if (immediate) {
      // NOLINTNEXTLINE(cppcoreguidelines-special-member-functions): a local scope guard
      struct MarkDone {
        QueueCore* q;
        const std::vector<T>& removed;
        WakeBatch& woken;
        ~MarkDone() { q->mark_done(removed.size(), woken); }
      } mark_done{this, removed, woken};
      storage_.drain(removed);  // all or nothing, unless T is move-only with a throwing move
    }
    return removed;
  }

  bool is_shutdown() const noexcept {
    if (!storage_.closed()) return false;
    sync_with_shutdown();
    return true;
  }
  std::size_t qsize() const noexcept { return storage_.size(); }
  std::ptrdiff_t maxsize() const noexcept { return maxsize_; }
  bool full() const noexcept {
    return bounded_ && storage_.size() >= static_cast<std::size_t>(maxsize_);
  }
  std::uint64_t unfinished_tasks() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_relaxed);
    const std::uint64_t pushed = storage_.pushed();
    return pushed > done ? pushed - done : 0;
  }

  // The queue's wait sources (its operations below, and select's).
  FlagSource& not_empty() noexcept { return not_empty_; }
  FlagSource& not_full() noexcept { return not_full_; }
  FlagSource& joiners() noexcept { return joiners_; }
  // The storage, read-only (tests, select).
  const Storage& storage() const noexcept { return storage_; }

  // Whether every task is done, read under the joiners' lock, so that a join that sees it
  // has synchronized with the task_done() that finished the last task (see task_done()).
  bool all_tasks_done_synced() noexcept {
    WordLockGuard g(joiners_.lock());
    return all_tasks_done();
  }
  // The same, for a caller that holds the joiners' lock.
  bool all_tasks_done() const noexcept {
    return done_.load(std::memory_order_relaxed) >= storage_.pushed();
  }

 private:
  // Waits out a shutdown() that may still be finishing (see shutdown()).
  void sync_with_shutdown() const noexcept { WordLockGuard g(shutdown_lock_); }

  // The putters a pop claims from (none for an unbounded queue: nobody waits to put).
  FlagSource* putters() noexcept { return putters_; }

  // shutdown(true): counts up to n unfinished tasks as done (Python decrements
  // unfinished_tasks once per removed item while it is positive).
  void mark_done(std::uint64_t n, WakeBatch& woken) noexcept {
    if (n == 0) return;
    WordLockGuard g(joiners_.lock());
    const std::uint64_t pushed = storage_.pushed();
    const std::uint64_t done = done_.load(std::memory_order_relaxed);
    const std::uint64_t unfinished = pushed > done ? pushed - done : 0;
    const std::uint64_t add = n < unfinished ? n : unfinished;
    if (add == 0) return;
    done_.store(done + add, std::memory_order_relaxed);
    if (done + add == pushed) joiners_.claim_locked(woken, FlagSource::kAll);
  }

  const std::ptrdiff_t maxsize_;  // as given (Python keeps it): <= 0 means unbounded
  const bool bounded_;
  Storage storage_;
  FlagSource not_empty_;  // getters; a push claims one, shutdown all
  FlagSource not_full_;   // putters; a pop of a bounded queue claims one, shutdown all
  FlagSource* const putters_ = bounded_ ? &not_full_ : nullptr;
  mutable WordLock shutdown_lock_;  // held for all of shutdown(); see there
  // Threads in join(); its lock also protects done_'s updates (the task accounting).
  FlagSource joiners_;
  Atomic<std::uint64_t> done_{0};  // task_done() calls, plus items shutdown(true) removed
};

// ---- the queue's operations for the wait loop (and select) ---------------------------------

// Waiting on one of the queue's sources: `Source` is the getters' ("not empty"), the
// putters' ("not full") or the joiners' ("all tasks done") FlagSource, `Ready` the re-check
// of the handshake (wait_source.hpp) for it.
template <class Core, auto Source, auto Ready, SourceKind Kind>
class QueueWaitOp {
 public:
  explicit QueueWaitOp(Core& q) noexcept : q_(q) {}
  Link link(WaitNode& node, Position pos) {
    return (q_.*Source)().link(node, pos, [this] { return (q_.*Ready)(); });
  }
  void unlink(WaitNode& node) noexcept { (q_.*Source)().unlink(node); }
  // A waiter whose retry threw after a notifier claimed it (for the item it pushed, the
  // slot it freed): the next waiter gets the wake-up. If nobody had claimed us, the extra
  // waiter retries and waits again: a spurious wake-up, never a lost one.
  void pass_on() noexcept {
    WakeBatch woken;
    (q_.*Source)().claim_one(woken);
  }
  WaitTarget target() const noexcept { return {Kind, &q_}; }

 private:
  Core& q_;
};

template <class Core>
class QueueGetOp
    : public QueueWaitOp<Core, &Core::not_empty, &Core::pop_ready, SourceKind::queue_get> {
  using QueueWaitOp<Core, &Core::not_empty, &Core::pop_ready, SourceKind::queue_get>::QueueWaitOp;
};
template <class Core>
class QueuePutOp
    : public QueueWaitOp<Core, &Core::not_full, &Core::push_ready, SourceKind::queue_put> {
  using QueueWaitOp<Core, &Core::not_full, &Core::push_ready, SourceKind::queue_put>::QueueWaitOp;
};
// The joiners' re-check runs under their lock, as task_done() does its update.
template <class Core>
class QueueJoinOp : public QueueWaitOp<Core, &Core::joiners, &Core::all_tasks_done_synced,
                                       SourceKind::queue_join> {
  using QueueWaitOp<Core, &Core::joiners, &Core::all_tasks_done_synced,
                    SourceKind::queue_join>::QueueWaitOp;
};

}  // namespace weft::detail
