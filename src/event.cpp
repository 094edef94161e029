// SPDX-License-Identifier: MIT
// Event slow paths. Invariant: kWaiters is set iff waiters_ is non-empty, and both change
// only under list_lock_.
#include "weft/event.hpp"

namespace weft {

using detail::Deadline;
using detail::Parker;
using detail::WaitNode;
using detail::WakeBatch;
using detail::WordLockGuard;

bool Event::register_waiter(WaitNode& node) noexcept {
  WordLockGuard g(list_lock_);
  // acquire (load and CAS failure): seeing kSet here must order the setter's writes before
  // our return, as the fast path's is_set() does. (An acquire fence after a relaxed load
  // would be valid C++ too, but ThreadSanitizer does not model standalone fences.)
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s & kSet) return false;
    // The flag and the waiter bit share one word, so this CAS and set()'s CAS are totally
    // ordered: either the setter sees kWaiters and takes list_lock_ (which we hold until the
    // node is linked), or we see kSet.
    // Success is acquire too: a failure order stronger than the success order is valid
    // C++17, but GCC's builtins reject it (-Winvalid-memory-model under ASan's inlining).
    if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  waiters_.push_back(node);
  return true;
}

void Event::unregister_waiter(WaitNode& node) noexcept {
  WordLockGuard g(list_lock_);
  if (!node.linked) return;  // already taken off by set_slow()
  waiters_.remove(node);
  if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
}

// Claim first, publish last: the flag is raised by the final access this call makes to the
// Event, so that no thread can see it (and destroy the Event: a timed-out waiter that
// retries, say) while this call still uses the list. Every thread waiting when the flag
// rises is claimed: those registered before the CAS below were claimed here, and a
// registration sets kWaiters, which makes that CAS fail and sends us back to claim it.
void Event::set_slow() noexcept {
  WakeBatch woken;  // declared first: wakes after the publishing CAS, touching only Parkers
  for (;;) {
    {
      WordLockGuard g(list_lock_);
      while (WaitNode* n = waiters_.claim_front()) woken.add(n);
      state_.fetch_and(~kWaiters, std::memory_order_relaxed);  // list empty, under its lock
    }
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kWaiters) == 0) {
      if (s & kSet) return;  // raised by a concurrent set(): nothing left to publish
      // release: publishes the setter's writes to whoever sees the flag.
      if (state_.compare_exchange_weak(s, s | kSet, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
  }
}

bool Event::wait_slow(Deadline deadline, const std::stop_token* stop) {
  if (deadline.expired()) return is_set();
  Parker& parker = Parker::current();
  parker.prepare();
  WaitNode node;
  node.parker = &parker;
  if (!register_waiter(node)) return true;
  // Wake-up sources: set_slow() (claims the node), the deadline, a stop request.
  const std::uint32_t outcome = parker.park(deadline, stop);
  if (outcome == detail::kWoken) return true;
  unregister_waiter(node);
  return false;  // timed out or cancelled (Python returns False on timeout)
}

}  // namespace weft
