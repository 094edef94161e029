// SPDX-License-Identifier: MIT
// Semaphore slow paths. The waiters live in a WaitSource announced by kWaiters in the state
// word (wait_source.hpp).
#include "weft/semaphore.hpp"

#include <limits>
#include <stdexcept>

#include "weft/detail/wait_loop.hpp"

namespace weft {

using detail::Deadline;
using detail::WaitLoop;
using detail::WakeBatch;

namespace {
constexpr std::uint64_t kMaxPermits = std::numeric_limits<std::uint64_t>::max() >> 1;
constexpr int kAcquireSpins = 32;
}  // namespace

Semaphore::Semaphore(std::size_t value, SourceSite site) : Semaphore(value, Bound::none) {
  detail::diag_constructed(this, detail::SourceKind::semaphore, site);
}

Semaphore::Semaphore(std::size_t value, Name name, SourceSite site)
    : Semaphore(value, Bound::none) {
  detail::diag_named(this, detail::SourceKind::semaphore, name, site);
}

Semaphore::Semaphore(std::size_t value, Bound bound)
    : waiters_(std::uint64_t{value} << kCountShift),
      bound_(bound == Bound::initial ? std::uint64_t{value} : kMaxPermits),
      bounded_(bound == Bound::initial) {
  if (value > kMaxPermits) throw std::invalid_argument("weft::Semaphore: value too large");
}

bool Semaphore::acquire_slow(Deadline deadline, const std::stop_token* stop) {
  for (int i = 0; i < kAcquireSpins; ++i) {
    if (try_acquire()) return true;
    detail::cpu_relax();
  }
  detail::SemaphoreAcquireOp op(*this);
  WaitLoop loop(deadline, stop);
  for (;;) {
    // A woken waiter whose permit a running thread took first was not sent a missed
    // wake-up (the permit was consumed); the loop queues it again at the front.
    if (try_acquire()) {
      detail::diag_traced(detail::TraceOp::acquire, detail::SourceKind::semaphore, this);
      return true;
    }
    if (loop.wait(op).ended()) return false;  // timed out or cancelled
  }
}

// Claim first, publish last: the CAS that adds the permits is this call's final access to
// the Semaphore, so a thread that takes one (even one that timed out and retried) may destroy
// it at once. Up to n waiters are claimed before the permits appear; a waiter that registers
// in between sets kWaiters, which makes the CAS fail until it is claimed too (or n are).
void Semaphore::release(std::size_t n) {
  if (n == 0) throw std::invalid_argument("weft::Semaphore::release: n must be one or more");
  WakeBatch woken;  // declared first: wakes after the CAS, touching only Parkers
  std::size_t claimed = 0;
#if WEFT_HAVE_PROBES
  bool probed = false;  // the USDT release probe has fired (a CAS may fail and retry)
#endif
  std::uint64_t s = state().load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t count = s >> kCountShift;
    if (n > bound_ || count > bound_ - n) {
      // Claimed waiters (if a concurrent release raced us past the bound) are still woken,
      // and retry; the count is unchanged.
      if (bounded_) {
        throw std::logic_error("weft::BoundedSemaphore::release: released too many times");
      }
      throw std::overflow_error("weft::Semaphore::release: count would overflow");
    }
    if ((s & kWaiters) && claimed < n) {
      claimed += waiters_.claim(woken, n - claimed);
      s = state().load(std::memory_order_relaxed);
      if ((s & kWaiters) && claimed < n) continue;  // registered since: claim it too
    }
    // Once, before the CAS, the Semaphore's last access (the probe passes its address only).
#if WEFT_HAVE_PROBES
    if (claimed != 0 && !probed) {
      WEFT_PROBE2(release, static_cast<int>(detail::SourceKind::semaphore), this);
      probed = true;
    }
#endif
    // release: publishes the releaser's writes to the thread that takes the permit.
    if (state().compare_exchange_weak(s, s + (std::uint64_t{n} << kCountShift),
                                      std::memory_order_release, std::memory_order_relaxed)) {
      return;
    }
  }
}

}  // namespace weft
