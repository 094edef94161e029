// weft/detail/queue_core.hpp: the one synchronization skeleton of every weft queue.
//
// QueueCore<T, Storage> adds to a storage (ring.hpp, storage.hpp) what makes it a blocking
// queue: three WaitQueues (getters waiting for "not empty", putters waiting for "not full",
// joiners waiting for "all tasks done"), task accounting, and shutdown.
//
// Invariants:
//  - unfinished tasks == storage.pushed() - done_, never negative: task_done() refuses to
//    take done_ past pushed(), and shutdown(true) counts at most the unfinished tasks done.
//  - A thread parks in a WaitQueue only after registering in it and then re-checking the
//    storage (the handshake of wait_queue.hpp); every successful push notifies not_empty_,
//    every successful pop notifies not_full_, and close() notifies everyone.
//  - A woken (claimed) thread always retries its operation before giving up, so a wake-up is
//    never dropped: if the retry fails, another thread consumed what the wake announced.
//  - A failed, timed-out or cancelled operation changes nothing (the item stays with the
//    caller; a getter takes nothing).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <vector>

#include "weft/detail/deadline.hpp"
#include "weft/detail/parker.hpp"
#include "weft/detail/storage.hpp"
#include "weft/detail/wait_queue.hpp"

namespace weft::detail {

enum class Status { ok, timed_out, shut_down, cancelled };

template <class T, class Storage>
class QueueCore {
 public:
  template <class... Args>
  explicit QueueCore(std::ptrdiff_t maxsize, Args&&... args)
      : maxsize_(maxsize > 0 ? maxsize : 0),
        storage_(static_cast<std::size_t>(maxsize_), std::forward<Args>(args)...) {}

  // One non-blocking attempt, with the wake-up a success owes to the other side.
  PushResult try_push(T& item) {
    const PushResult r = storage_.try_push(item);
    if (r == PushResult::ok) not_empty_.notify_one();
    return r;
  }
  PopResult try_pop(std::optional<T>& out) {
    const PopResult r = storage_.try_pop(out);
    if (r == PopResult::ok && maxsize_ != 0) not_full_.notify_one();
    return r;
  }
  // Re-checks for the waiting handshake: could a push / a pop proceed (or fail for good)?
  bool push_ready() noexcept { return !storage_.full_and_open(); }
  bool pop_ready() noexcept { return !storage_.empty_and_open(); }

  // Moves from `item` only when it returns ok.
  Status push(T& item, Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
    for (;;) {
      switch (try_push(item)) {
        case PushResult::ok:
          return Status::ok;
        case PushResult::shut_down:
          return Status::shut_down;
        case PushResult::full:
          break;
      }
      if (deadline.expired()) return Status::timed_out;
      Parker& parker = Parker::current();
      parker.prepare();
      WaitNode node;
      node.parker = &parker;
      not_full_.link(node);
      if (!storage_.full_and_open()) {  // handshake re-check: space appeared, or closed
        not_full_.unlink(node);
        parker.settle();  // a claim that raced the re-check is absorbed: we retry anyway
        continue;
      }
      // Wake-up sources: a pop (not_full_.notify_one), close() (notify_all), the deadline, a
      // stop request.
      const std::uint32_t outcome = parker.park(deadline, stop);
      if (outcome == kWoken) continue;  // claimed: retry
      not_full_.unlink(node);
      if (outcome == kCancelled) return Status::cancelled;
      // Timed out: the loop makes one last attempt, then reports the timeout.
    }
  }

  Status pop(std::optional<T>& out, Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
    for (;;) {
      switch (try_pop(out)) {
        case PopResult::ok:
          return Status::ok;
        case PopResult::shut_down:
          return Status::shut_down;
        case PopResult::empty:
          break;
      }
      if (deadline.expired()) return Status::timed_out;
      Parker& parker = Parker::current();
      parker.prepare();
      WaitNode node;
      node.parker = &parker;
      not_empty_.link(node);
      if (!storage_.empty_and_open()) {  // handshake re-check: an item appeared, or closed
        not_empty_.unlink(node);
        parker.settle();
        continue;
      }
      // Wake-up sources: a push (not_empty_.notify_one), close() (notify_all), the deadline,
      // a stop request.
      const std::uint32_t outcome = parker.park(deadline, stop);
      if (outcome == kWoken) continue;
      not_empty_.unlink(node);
      if (outcome == kCancelled) return Status::cancelled;
    }
  }

  void task_done() {
    // seq_cst: the join handshake (done_ RMW, then all_done_'s flag load).
    const std::uint64_t done = done_.fetch_add(1, std::memory_order_seq_cst) + 1;
    const std::uint64_t pushed = storage_.pushed();
    if (done > pushed) {
      done_.fetch_sub(1, std::memory_order_relaxed);
      throw std::logic_error("weft: task_done() called too many times");
    }
    if (done == pushed) all_done_.notify_all();
  }

  Status join(Deadline deadline, const std::stop_token* stop) {
    if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
    for (;;) {
      if (all_tasks_done()) return Status::ok;
      if (deadline.expired()) return Status::timed_out;
      Parker& parker = Parker::current();
      parker.prepare();
      WaitNode node;
      node.parker = &parker;
      all_done_.link(node);
      if (all_tasks_done()) {
        all_done_.unlink(node);
        parker.settle();
        return Status::ok;
      }
      // Wake-up sources: the task_done() or shutdown(true) that finished the last task, the
      // deadline, a stop request.
      const std::uint32_t outcome = parker.park(deadline, stop);
      if (outcome == kWoken) continue;
      all_done_.unlink(node);
      if (outcome == kCancelled) return Status::cancelled;
    }
  }

  std::vector<T> shutdown(bool immediate) {
    storage_.close();
    std::vector<T> removed;
    if (immediate) {
      storage_.drain(removed);
      mark_done(removed.size());
    }
    // Every blocked putter must now fail, every getter re-check (and fail once empty).
    not_full_.notify_all();
    not_empty_.notify_all();
    return removed;
  }

  bool is_shutdown() const noexcept { return storage_.closed(); }
  std::size_t qsize() const noexcept { return storage_.size(); }
  std::ptrdiff_t maxsize() const noexcept { return maxsize_; }
  bool full() const noexcept {
    return maxsize_ != 0 && storage_.size() >= static_cast<std::size_t>(maxsize_);
  }
  std::uint64_t unfinished_tasks() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_seq_cst);
    const std::uint64_t pushed = storage_.pushed();
    return pushed > done ? pushed - done : 0;
  }

  // For select: registration in the queue's waiting lists.
  WaitQueue& not_empty() noexcept { return not_empty_; }
  WaitQueue& not_full() noexcept { return not_full_; }

 private:
  bool all_tasks_done() const noexcept {
    const std::uint64_t done = done_.load(std::memory_order_seq_cst);
    return done >= storage_.pushed();
  }

  // Counts up to n unfinished tasks as done (shutdown(true)'s removed items).
  void mark_done(std::uint64_t n) {
    if (n == 0) return;
    std::uint64_t done = done_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t pushed = storage_.pushed();
      const std::uint64_t unfinished = pushed > done ? pushed - done : 0;
      const std::uint64_t add = n < unfinished ? n : unfinished;
      if (add == 0) return;
      if (done_.compare_exchange_weak(done, done + add, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        if (done + add >= pushed) all_done_.notify_all();
        return;
      }
    }
  }

  const std::ptrdiff_t maxsize_;  // 0: unbounded
  Storage storage_;
  WaitQueue not_empty_;  // getters; notified by every push and by shutdown
  WaitQueue not_full_;   // putters; notified by every pop of a bounded queue and by shutdown
  WaitQueue all_done_;   // joiners; notified when the last unfinished task is done
  Atomic<std::uint64_t> done_{0};  // task_done() calls, plus items shutdown(true) removed
};

}  // namespace weft::detail
