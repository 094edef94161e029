// SPDX-License-Identifier: MIT
// Event slow paths. The waiters live in a WaitSource announced by kWaiters in the state
// word (wait_source.hpp): the bit is set iff the list is non-empty, both changed only under
// the source's lock.
#include "weft/event.hpp"

#include "weft/detail/wait_loop.hpp"

namespace weft {

using detail::Deadline;
using detail::WaitLoop;
using detail::WakeBatch;

// Claim first, publish last: the flag is raised by the final access this call makes to the
// Event, so that no thread can see it (and destroy the Event: a timed-out waiter that
// retries, say) while this call still uses the list. Every thread waiting when the flag
// rises is claimed: those registered before the CAS below were claimed here, and a
// registration sets kWaiters, which makes that CAS fail and sends us back to claim it.
void Event::set_slow() noexcept {
  WakeBatch woken;  // declared first: wakes after the publishing CAS, touching only Parkers
  detail::diag_traced(detail::TraceOp::set, detail::SourceKind::event, this);
  for (;;) {
    waiters_.claim(woken, Source::kAll);  // clears kWaiters: the list is empty
    std::uint32_t s = state().load(std::memory_order_relaxed);
    while ((s & kWaiters) == 0) {
      if (s & kSet) return;  // raised by a concurrent set(): nothing left to publish
      // release: publishes the setter's writes to whoever sees the flag.
      if (state().compare_exchange_weak(s, s | kSet, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        return;
      }
    }
  }
}

bool Event::wait_slow(Deadline deadline, const std::stop_token* stop) {
  if (deadline.expired()) return is_set();
  detail::EventWaitOp op(*this);
  WaitLoop loop(deadline, stop);
  for (;;) {
    if (is_set()) return true;
    const detail::Round r = loop.wait(op);
    // A claim means set() ran while we waited: true, even if clear() ran since (CPython
    // issue 13502).
    if (r.claimed()) return true;
    if (r.ended()) return false;  // timed out or cancelled (Python returns False on timeout)
  }
}

}  // namespace weft
