// SPDX-License-Identifier: MIT
// tests/dsched/scenarios.cpp: what the explorer runs. Each scenario is a few threads doing
// a few operations on weft primitives, with assertions inside the threads (dsched::check)
// and on the final state (check()). A lost wake-up shows up as a deadlock (an untimed wait
// that nobody ends), which the scheduler reports by itself.
//
// Post-conditions look at private state (the waiter lists, the waiter bits, the Parker word)
// through explicit-instantiation member pointers ("Rob" below), which C++ allows without
// touching the headers.
#include <algorithm>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "scheduler.hpp"
#include "weft/async.hpp"
#include "weft/barrier.hpp"
#include "weft/condition.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

namespace {

using namespace std::chrono_literals;
using weft::detail::Atomic;
using weft::detail::Parker;
using weft::detail::WaitList;

// ---- white-box access ---------------------------------------------------------------------
// An explicit instantiation may name private members; the friend function defined inside it
// hands the member pointer out.
template <class Tag, typename Tag::type M>
struct Rob {
  friend typename Tag::type get(Tag) { return M; }
};
#define WEFT_DSCHED_ROB(NAME, CLASS, TYPE, MEMBER) \
  struct NAME {                                    \
    using type = TYPE CLASS::*;                    \
    friend type get(NAME);                         \
  };                                               \
  template struct Rob<NAME, &CLASS::MEMBER>

// The primitives' wait sources, by their full types (the primitives' aliases are private).
using WordSource32 = weft::detail::WaitSource<weft::detail::WordAnnouncement<std::uint32_t, 2u>>;
using WordSource64 = weft::detail::WaitSource<weft::detail::WordAnnouncement<std::uint64_t, 1u>>;
using weft::detail::FlagAnnouncement;
using weft::detail::FlagSource;

WEFT_DSCHED_ROB(EventWaiters, weft::Event, WordSource32, waiters_);
WEFT_DSCHED_ROB(LockWaiters, weft::Lock, WordSource32, waiters_);
WEFT_DSCHED_ROB(CondWaiters, weft::Condition, FlagSource, waiters_);
WEFT_DSCHED_ROB(SemWaiters, weft::Semaphore, WordSource64, waiters_);
WEFT_DSCHED_ROB(WaiterWord, weft::detail::Waiter, Atomic<std::uint32_t>, word_);
WEFT_DSCHED_ROB(Word32List, WordSource32, WaitList, list_);
WEFT_DSCHED_ROB(Word64List, WordSource64, WaitList, list_);
WEFT_DSCHED_ROB(FlagList, FlagSource, WaitList, list_);
WEFT_DSCHED_ROB(FlagSourceAnnouncement, FlagSource, FlagAnnouncement, announcement_);
WEFT_DSCHED_ROB(FlagValue, FlagAnnouncement, Atomic<bool>, flag_);

const WaitList& list_of(WordSource32& s) {
  return s.*get(Word32List{});
}
const WaitList& list_of(WordSource64& s) {
  return s.*get(Word64List{});
}
const WaitList& list_of(FlagSource& s) {
  return s.*get(FlagList{});
}
bool flag_of(FlagSource& s) {
  return ((s.*get(FlagSourceAnnouncement{})).*get(FlagValue{})).peek();
}

int length(const WaitList& l) {
  int n = 0;
  for (auto* w = l.front(); w != nullptr; w = w->next) ++n;
  return n;
}

// The code of the Decision of a Parker's last park (kClaimed, kTimedOut, kCancelled).
constexpr std::uint32_t kClaimed = weft::detail::Decision::claim(0).code();
constexpr std::uint32_t kTimedOut = weft::detail::Decision::timed_out().code();
constexpr std::uint32_t kCancelled = weft::detail::Decision::cancelled().code();
std::uint32_t decision(Parker* p) {
  return (p->*get(WaiterWord{})).peek() >> 2;
}
bool notified(Parker* p) {
  return ((p->*get(WaiterWord{})).peek() & 1u) != 0;
}

// The calling thread's Parker, with its word reset: the pool may hand out a Parker whose
// word still holds the decision of a park in an earlier run.
Parker* fresh_parker() {
  Parker* p = &Parker::current();
  p->prepare();
  return p;
}
bool parked(Parker* p) {
  return (p->*get(WaiterWord{})).peek() != 0;
}

bool linked(const WaitList& l, Parker* p) {
  for (auto* w = l.front(); w != nullptr; w = w->next) {
    if (w->waiter == p) return true;
  }
  return false;
}

std::string str(std::int64_t v) {
  return std::to_string(v);
}

// Virtual-time stamp at which a timed call may legitimately have given up.
struct Timed {
  std::int64_t start = 0;
  std::int64_t ns = 0;
  void begin(std::chrono::nanoseconds d) {
    start = dsched::now_ns();
    ns = d.count();
  }
  // A timed call returned false/nothing: its deadline must have passed.
  void check_expired(const std::string& who) const {
    dsched::check(dsched::now_ns() >= start + ns, who + " gave up before its deadline (now +" +
                                                      str(dsched::now_ns() - start) +
                                                      "ns, timeout " + str(ns) + "ns)");
  }
};

void check_event_quiet(weft::Event& ev) {
  WordSource32& src = ev.*get(EventWaiters{});
  const int n = length(list_of(src));
  const std::uint32_t s = src.announcement().word().peek();
  dsched::check(n == 0, "Event: " + str(n) + " node(s) still linked after every thread left");
  dsched::check((s & 2u) == 0, "Event: kWaiters set with no waiter linked");
}
void check_lock_quiet(weft::Lock& l) {
  WordSource32& src = l.*get(LockWaiters{});
  const int n = length(list_of(src));
  const std::uint32_t s = src.announcement().word().peek();
  dsched::check(n == 0, "Lock: " + str(n) + " node(s) still linked");
  dsched::check(s == 0, "Lock: final state " + str(s) + " (expected 0: unlocked, no waiters)");
}
void check_sem_quiet(weft::Semaphore& sem, std::uint64_t permits) {
  WordSource64& src = sem.*get(SemWaiters{});
  const int n = length(list_of(src));
  const std::uint64_t s = src.announcement().word().peek();
  dsched::check(n == 0, "Semaphore: " + str(n) + " node(s) still linked");
  dsched::check(s == permits << 1, "Semaphore: final state " + str(static_cast<std::int64_t>(s)) +
                                       ", expected " +
                                       str(static_cast<std::int64_t>(permits << 1)));
}
void check_waitqueue_quiet(FlagSource& q, const std::string& name) {
  const int n = length(list_of(q));
  dsched::check(n == 0, name + ": " + str(n) + " node(s) still linked");
  dsched::check(!flag_of(q), name + ": waiting flag set with nobody linked");
}

// ---- Event ----------------------------------------------------------------------------------

// CPython issue 13502: threads waiting when set() is called return true even if clear()
// follows at once. T2 sets and clears only once both waiters are linked; T1's wait is timed,
// so it may also time out first: then it returns what is_set() says when the wait loop tries
// once more after the deadline round (true if set() came before clear() there), and a claim
// always makes it return true.
class Event13502 : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i < 2) {
      parker[i] = fresh_parker();
      if (i == 0) {
        r[0] = ev.wait();
      } else {
        t1.begin(5ms);
        r[1] = ev.wait(5ms);
        if (!r[1]) t1.check_expired("T1 wait(5ms)");
      }
      return;
    }
    dsched::await([this] {
      const WaitList& l = list_of(ev.*get(EventWaiters{}));
      return linked(l, parker[0]) && (linked(l, parker[1]) || dsched::thread_finished(1));
    });
    ev.set();
    ev.clear();
  }
  void check() override {
    dsched::check(r[0], "T0 (waiting at set()) returned false");
    dsched::check(notified(parker[0]), "T0's park ended without NOTIFIED");
    if (parked(parker[1])) {  // else its deadline had passed before it parked
      const std::uint32_t d = decision(parker[1]);
      dsched::check(notified(parker[1]), "T1's park ended without NOTIFIED");
      dsched::check(d == kClaimed || d == kTimedOut, "T1's park decided by token " + str(d));
      dsched::check(r[1] || d != kClaimed, "T1 returned false but its park was claimed");
    } else {
      dsched::check(!r[1], "T1 returned true without parking");
    }
    dsched::check(!ev.is_set(), "event still set after clear()");
    check_event_quiet(ev);
  }

 private:
  weft::Event ev;
  bool r[2] = {false, false};
  Parker* parker[2] = {nullptr, nullptr};
  Timed t1;
};

// Set, clear and set again against two timed waiters: a waiter returns false only after its
// deadline, true only once a set() has started.
class EventTimed : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 2) {
      set_started = true;
      ev.set();
      ev.clear();
      ev.set();
      return;
    }
    Timed t;
    const auto d = i == 0 ? 2ms : 1ms;
    t.begin(d);
    const bool r = ev.wait(d);
    if (r) {
      dsched::check(set_started, "T" + str(i) + " returned true before any set()");
    } else {
      t.check_expired("T" + str(i) + " wait");
    }
  }
  void check() override {
    dsched::check(ev.is_set(), "event not set at the end");
    check_event_quiet(ev);
  }

 private:
  weft::Event ev;
  bool set_started = false;
};

// wait(stop_token) racing set() and a stop request: the result agrees with the decision of
// the park, and nothing stays linked.
class EventCancel : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      parker = fresh_parker();
      r = ev.wait(src.get_token());
      if (r) dsched::check(set_started, "wait() true before any set()");
      if (!r) dsched::check(stop_started, "wait() false without a stop request");
    } else if (i == 1) {
      set_started = true;
      ev.set();
    } else {
      stop_started = true;
      dsched::request_stop(src);
    }
  }
  void check() override {
    if (parked(parker)) {  // else a fast path answered without parking
      const std::uint32_t d = decision(parker);
      dsched::check(notified(parker), "park ended without NOTIFIED");
      if (d == kCancelled) dsched::check(!r, "cancelled park but wait() true");
      if (d == kClaimed) dsched::check(r, "claimed park but wait() false");
    }
    check_event_quiet(ev);
  }

 private:
  weft::Event ev;
  std::stop_source src;
  bool r = false;
  bool set_started = false;
  bool stop_started = false;
  Parker* parker = nullptr;
};

// Only a stop request can end these waits: an Event nobody sets, an empty queue, a Lock
// held until the others are done. A cancellation that fails to wake its waiter is a
// deadlock; the stop callback runs on T3 and races each waiter's park.
class CancelWakes : public dsched::Instance {
 public:
  void thread(int i) override {
    switch (i) {
      case 0:
        dsched::check(!ev.wait(src.get_token()), "wait(stop) returned true, nobody set");
        break;
      case 1:
        try {
          (void)q.get(src.get_token());
          dsched::check(false, "get(stop) returned an item from an empty queue");
        } catch (const weft::Cancelled&) {
        }
        break;
      case 2:
        dsched::check(!lock.acquire(src.get_token()), "acquire(stop) took a held lock");
        break;
      default:
        dsched::request_stop(src);
        break;
    }
  }
  void check() override {
    check_event_quiet(ev);
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    lock.release();
    check_lock_quiet(lock);
  }

  CancelWakes() { lock.acquire(); }

 private:
  weft::Event ev;
  weft::Queue<int> q{1};
  weft::Lock lock;
  std::stop_source src;
};

// ---- Lock -----------------------------------------------------------------------------------

// Mutual exclusion with blocking and timed acquires, for a Lock and for a Semaphore(1)
// (permit conservation): at most one thread inside; release() must wake a waiter (an
// untimed acquire that is never woken is a deadlock); a timed acquire gives up only after
// its deadline; the primitive is back to its initial state at the end.
void check_quiet(weft::Lock& l) {
  check_lock_quiet(l);
}
void check_quiet(weft::Semaphore& s) {
  check_sem_quiet(s, 1);
}

template <class P>  // weft::Lock or weft::Semaphore (one permit by default)
class Exclusion : public dsched::Instance {
 public:
  void thread(int i) override {
    for (int k = 0; k < 2; ++k) {
      if (i == 2) {
        Timed t;
        t.begin(1ms);
        if (!p.acquire(1ms)) {
          t.check_expired("T2 acquire(1ms)");
          continue;
        }
      } else {
        p.acquire();
      }
      ++inside;
      dsched::check(inside == 1, str(inside) + " threads inside the critical section");
      dsched::yield();
      --inside;
      ++entries;
      p.release();
    }
  }
  void check() override {
    dsched::check(entries >= 4, "only " + str(entries) + " critical sections");
    check_quiet(p);
  }

 private:
  P p;
  int inside = 0;
  int entries = 0;
};

// acquire(stop_token) racing a release and a stop request.
class LockCancel : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      lock.acquire();
      enter();
      lock.release();
    } else if (i == 1) {
      if (lock.acquire(src.get_token())) {
        enter();
        lock.release();
      } else {
        dsched::check(stop_started, "acquire(stop) false without a stop request");
      }
    } else {
      stop_started = true;
      dsched::request_stop(src);
    }
  }
  void check() override { check_lock_quiet(lock); }

 private:
  void enter() {
    ++inside;
    dsched::check(inside == 1, str(inside) + " threads inside the critical section");
    dsched::yield();
    dsched::yield();
    --inside;
  }
  weft::Lock lock;
  std::stop_source src;
  int inside = 0;
  bool stop_started = false;
};

// release() against a timed waiter that gives up just before it is claimed, and an untimed
// acquirer that registers while release() is between its claim and its publishing CAS: the
// untimed one must not be left parked with the lock free.
class LockTimeoutRace : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      lock.acquire();
      held = true;
      dsched::await([] { return dsched::thread_waiting(1) || dsched::thread_finished(1); });
      lock.release();
    } else if (i == 1) {
      dsched::await([this] { return held; });
      if (lock.acquire(1ms)) lock.release();
    } else {
      dsched::await([this] { return held; });
      lock.acquire();
      lock.release();
    }
  }
  void check() override { check_lock_quiet(lock); }

 private:
  weft::Lock lock;
  bool held = false;
};

// ---- Condition ------------------------------------------------------------------------------

// notify(2) wakes exactly two waiters, the oldest live ones; a waiter that timed out is
// never counted. W1 waits with a timeout, W0 and W2 without.
class ConditionNotify : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i < 3) {
      cv.acquire();
      order.push_back(i);
      bool r;
      if (i == 1) {
        Timed t;
        t.begin(3ms);
        r = cv.wait(3ms);
        if (!r) t.check_expired("W1 wait(3ms)");
      } else {
        r = cv.wait();
      }
      result[i] = r ? 1 : 0;
      cv.release();
      return;
    }
    // The notifier: once all three registered (they push to `order` under the lock and link
    // their node before releasing it)...
    dsched::await([this] { return order.size() == 3; });
    cv.acquire();
    cv.notify(2);
    cv.release();
    // ...and once everything woken has run to completion:
    dsched::await([] { return dsched::quiescent(); });
    cv.acquire();
    std::vector<int> woken;
    for (int w = 0; w < 3; ++w) {
      if (result[w] == 1) woken.push_back(w);
    }
    dsched::check(woken.size() == 2,
                  "notify(2) woke " + str(static_cast<int>(woken.size())) + " waiter(s)");
    // FIFO: the waiters that returned true are the oldest ones, skipping a waiter that timed
    // out (which left before notify could claim it).
    std::vector<int> live;
    for (int w : order) {
      if (result[w] != 0) live.push_back(w);  // true, or still waiting
    }
    dsched::check(live.size() >= 2 && result[live[0]] == 1 && result[live[1]] == 1,
                  "notify(2) did not wake the two oldest live waiters");
    cv.notify_all();
    cv.release();
  }
  void check() override {
    // (The Parker's decision is not checked here: reacquiring the lock may park again.)
    dsched::check(result[0] == 1 && result[2] == 1, "an untimed waiter returned false");
    const int n = length(list_of(cv.*get(CondWaiters{})));
    dsched::check(n == 0, "Condition: " + str(n) + " node(s) still linked");
    dsched::check(!flag_of(cv.*get(CondWaiters{})), "Condition: waiters' flag left set");
    check_lock_quiet(lock);
  }

 private:
  weft::Lock lock;
  weft::Condition cv{lock};
  std::vector<int> order;
  int result[3] = {-1, -1, -1};
};

// notify() hands the waiters it claims to the lock, to be woken by the release that frees
// it (wait morphing). A Lock has no owner, so a thread that does not hold it may notify
// while the holder releases: whichever lands last, the waiter must be woken (a lost one
// deadlocks), and nothing may stay deferred on the lock.
class ConditionNotifyUnowned : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {  // the waiter
      lock.acquire();
      waiting = true;
      const bool r = cv.wait();
      dsched::check(r, "the waiter's untimed wait returned false");
      woke = true;
      lock.release();
    } else if (i == 1) {  // the holder: takes the lock the waiter released, then frees it
      dsched::await([this] { return waiting; });
      lock.acquire();
      holding = true;
      lock.release();
    } else {  // the notifier, which does not hold the lock
      dsched::await([this] { return holding; });
      bool notified = true;
      try {
        cv.notify();
      } catch (const std::logic_error&) {
        notified = false;  // the lock was free already: notify() refused, as Python's
      }
      if (!notified) {
        lock.acquire();
        cv.notify();
        lock.release();
      }
    }
  }
  void check() override {
    dsched::check(woke, "the notified waiter never returned");
    check_lock_quiet(lock);
  }

 private:
  weft::Lock lock;
  weft::Condition cv{lock};
  bool waiting = false;
  bool holding = false;
  bool woke = false;
};

// ---- Semaphore ------------------------------------------------------------------------------

// release(2) must let two blocked acquirers through (an acquire that is never woken is a
// deadlock); a third, cancellable acquirer is cancelled or gets nothing extra.
class SemaphoreReleaseN : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i < 2) {
      sem.acquire();
      ++got;
    } else if (i == 2) {
      if (sem.acquire(src.get_token())) {
        ++got;
        sem.release();  // give it back so the untimed acquirers still get theirs
        ++given_back;
      }
    } else {
      sem.release(2);
      dsched::request_stop(src);
    }
  }
  void check() override {
    dsched::check(got == 2 + given_back,
                  "permits taken " + str(got) + ", given back " + str(given_back));
    check_sem_quiet(sem, 0);
  }

 private:
  weft::Semaphore sem{0};
  std::stop_source src;
  int got = 0;
  int given_back = 0;
};

// ---- Queue ----------------------------------------------------------------------------------

// Bounded ring (capacity 2), two producers, two consumers, shutdown by a fifth thread once
// both producers are done: every item is delivered exactly once, in order per producer and
// consumer, and nobody stays blocked.
class QueueMpmc : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i < 2) {
      for (int k = 0; k < kItems; ++k) {
        const int item = 100 * (i + 1) + k;
        if (i == 1) {
          // Timed puts, retried: Full only after the deadline.
          for (;;) {
            Timed t;
            t.begin(2ms);
            try {
              q.put(int(item), 2ms);
              break;
            } catch (const weft::Full&) {
              t.check_expired("put(2ms)");
            }
          }
        } else {
          q.put(int(item));
        }
      }
    } else if (i < 4) {
      for (;;) {
        try {
          got[i - 2].push_back(q.get());
        } catch (const weft::ShutDown&) {
          break;
        }
      }
    } else {
      dsched::await([] { return dsched::thread_finished(0) && dsched::thread_finished(1); });
      q.shutdown();
    }
  }
  void check() override {
    std::map<int, int> seen;
    for (auto& g : got) {
      int last[2] = {-1, -1};
      for (int v : g) {
        ++seen[v];
        const int p = v / 100 - 1;
        dsched::check(v > last[p], "producer " + str(p) + "'s items out of order");
        last[p] = v;
      }
    }
    for (int p = 0; p < 2; ++p) {
      for (int k = 0; k < kItems; ++k) {
        const int v = 100 * (p + 1) + k;
        dsched::check(seen[v] == 1, "item " + str(v) + " delivered " + str(seen[v]) + " times");
      }
    }
    dsched::check(static_cast<int>(seen.size()) == 2 * kItems, "unexpected items delivered");
    dsched::check(q.qsize() == 0, "items left in the queue");
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    check_waitqueue_quiet(core.not_full(), "not_full");
  }

 private:
  static constexpr int kItems = 3;
  weft::Queue<int> q{2};
  std::vector<int> got[2];
};

// get(stop_token) racing a put and a stop request: a cancelled get takes nothing, so every
// item put is either got or still in the queue.
class QueueCancel : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      for (int v = 1; v <= 2; ++v) {
        try {
          q.put(int(v), 3ms);
          put.push_back(v);
        } catch (const weft::Full&) {
        }
      }
    } else if (i == 1) {
      for (int k = 0; k < 2; ++k) {
        try {
          got.push_back(q.get(src.get_token()));
        } catch (const weft::Cancelled&) {
          dsched::check(stop_started, "Cancelled without a stop request");
          break;
        }
      }
    } else {
      stop_started = true;
      dsched::request_stop(src);
    }
  }
  void check() override {
    std::vector<int> all = got;
    while (auto v = q.try_get()) all.push_back(*v);
    std::sort(all.begin(), all.end());
    dsched::check(all == put, "items put and items got/left differ");
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    check_waitqueue_quiet(core.not_full(), "not_full");
  }

 private:
  weft::Queue<int> q{1};
  std::stop_source src;
  std::vector<int> put, got;
  bool stop_started = false;
};

// select over two bounded queues: two selecting consumers, one producer per queue, shutdown
// of both once the producers are done. Each item is taken exactly once, by one select
// operation; a select is claimed by one source only. One consumer selects unbiased (its
// random order comes from the schedule's seed through weft_dsched_random(), so the choice is
// explored and replays), the other biased.
class SelectTwoQueues : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i < 2) {
      weft::Queue<int>& q = i == 0 ? a : b;
      for (int k = 0; k < 2; ++k) q.put(10 * (i + 1) + k);
    } else if (i < 4) {
      bool a_open = true, b_open = true;
      while (a_open || b_open) {
        // A shut-down queue yields nullopt at once, so select only over the open ones.
        if (a_open && b_open) {
          auto r = i == 2 ? weft::select(weft::get(a), weft::get(b))
                          : weft::select(weft::biased, weft::get(a), weft::get(b));
          auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          if (v) {
            got[i - 2].push_back(*v);
          } else {
            (r.index() == 0 ? a_open : b_open) = false;
          }
        } else {
          weft::Queue<int>& q = a_open ? a : b;
          try {
            got[i - 2].push_back(q.get());
          } catch (const weft::ShutDown&) {
            (a_open ? a_open : b_open) = false;
          }
        }
      }
    } else {
      dsched::await([] { return dsched::thread_finished(0) && dsched::thread_finished(1); });
      a.shutdown();
      b.shutdown();
    }
  }
  void check() override {
    std::map<int, int> seen;
    for (auto& g : got) {
      for (int v : g) ++seen[v];
    }
    for (int v : {10, 11, 20, 21}) {
      dsched::check(seen[v] == 1, "item " + str(v) + " delivered " + str(seen[v]) + " times");
    }
    dsched::check(seen.size() == 4, "unexpected items delivered");
    for (weft::Queue<int>* q : {&a, &b}) {
      auto& core = weft::detail::SelectAccess::core(*q);
      check_waitqueue_quiet(core.not_empty(), "not_empty");
      check_waitqueue_quiet(core.not_full(), "not_full");
    }
  }

 private:
  weft::Queue<int> a{1}, b{1};
  std::vector<int> got[2];
};

// select's ready-first attempt (its hints skip a queue they see empty) racing a producer and
// a plain getter: the select may find the items in its first attempt, or find both queues
// empty, register, and be claimed by either put, while the plain getter waits on `a` too.
// Each item is got once; a put that claims the select (which then takes the other queue's
// item) leaves its own item to the plain getter, which must still be woken.
class SelectReadyFirst : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      auto r = weft::select(weft::get(a), weft::get(b));
      auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
      dsched::check(v.has_value(), "select fired with nothing (queues open)");
      got.push_back(*v);
    } else if (i == 1) {
      a.put(1);
      b.put(2);
      a.put(3);
    } else {
      got_plain = a.get();
    }
  }
  void check() override {
    std::vector<int> all = got;
    all.push_back(got_plain);
    while (auto v = a.try_get()) all.push_back(*v);
    while (auto v = b.try_get()) all.push_back(*v);
    std::sort(all.begin(), all.end());
    dsched::check(all == std::vector<int>{1, 2, 3}, "items lost or duplicated");
    for (weft::Queue<int>* q : {&a, &b}) {
      auto& core = weft::detail::SelectAccess::core(*q);
      check_waitqueue_quiet(core.not_empty(), "not_empty");
      check_waitqueue_quiet(core.not_full(), "not_full");
    }
  }

 private:
  weft::Queue<int> a{2}, b{1};
  std::vector<int> got;
  int got_plain = 0;
};

// select over a queue, an event and a semaphore, with a stop token: exactly one operation
// takes effect per select, and a cancelled select takes nothing.
class SelectMixedCancel : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      auto r = weft::select(weft::biased, src.get_token(), weft::get(q), weft::acquire(sem));
      if (!r) {
        dsched::check(stop_started, "select stopped without a stop request");
        return;
      }
      if (r->index() == 0) {
        dsched::check(std::get<0>(*r).has_value(), "get() fired with nothing (queue open)");
        took_item = true;
      } else {
        took_permit = true;
      }
    } else if (i == 1) {
      q.put(7);
      sem.release();
    } else {
      stop_started = true;
      dsched::request_stop(src);
    }
  }
  void check() override {
    dsched::check(!(took_item && took_permit), "two operations of one select took effect");
    const bool item_left = q.try_get().has_value();
    dsched::check(item_left != took_item, "the item was lost or duplicated");
    dsched::check(static_cast<int>(sem.value()) == (took_permit ? 0 : 1),
                  "the permit was lost or duplicated");
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    const int n = length(list_of(sem.*get(SemWaiters{})));
    dsched::check(n == 0, "Semaphore: " + str(n) + " node(s) still linked");
  }

 private:
  weft::Queue<int> q{1};
  weft::Semaphore sem{0};
  std::stop_source src;
  bool took_item = false, took_permit = false, stop_started = false;
};

// ---- Coroutine waiters (async.hpp) ------------------------------------------------------
//
// Thread 0 runs the coroutines and is their scheduler: it drains what the wake steps
// schedule. The notifier and the stop request run on threads 1 and 2, so every interleaving
// of claim, abort, the gate and the hand-over to the scheduler is explored; a continuation
// scheduled twice or never shows up as a failed check or a deadlock.

class DschedScheduler {
 public:
  void schedule(weft::AsyncResume f) noexcept {
    for (Slot& slot : slots_) {
      int empty = kEmpty;
      if (slot.state.compare_exchange_strong(empty, kWriting)) {
        slot.f.emplace(f);
        slot.state.store(kFull);
        return;
      }
    }
    dsched::fail("more continuations pending than the scenario has coroutines");
  }
  // Waits for a scheduled continuation (or for `stop`, a side-effect-free predicate) and
  // runs it; false if stop() held first.
  template <class Stop>
  bool run_one(Stop stop) {
    dsched::await([this, &stop] { return any_full() || stop(); });
    for (Slot& slot : slots_) {
      if (slot.state.load() != kFull) continue;
      weft::AsyncResume f = *slot.f;
      slot.state.store(kEmpty);
      f();
      return true;
    }
    return false;
  }

 private:
  static constexpr int kEmpty = 0;
  static constexpr int kWriting = 1;
  static constexpr int kFull = 2;
  // Not schedule points (std::atomic, not weft's Atomic): await()'s predicate reads them, and
  // the hand-over to a scheduler is not weft's protocol (the wake steps' atomics before it
  // are).
  struct Slot {
    std::atomic<int> state{kEmpty};
    std::optional<weft::AsyncResume> f;
  };
  bool any_full() const {
    for (const Slot& slot : slots_) {
      if (slot.state.load() == kFull) return true;
    }
    return false;
  }
  Slot slots_[4];
};

struct DschedTask {
  struct promise_type {
    DschedTask get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// weft::asio's way in (AsyncOp::initiate: register without trying, or leave the first
// attempt to the caller, which schedules it; an AsyncStop in place of a std::stop_token), as
// an awaiter.
template <class... Ops>
class InitiatedAwait : public weft::detail::AsyncOp<DschedScheduler, Ops...> {
  using Base = weft::detail::AsyncOp<DschedScheduler, Ops...>;

 public:
  using Base::Base;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    if (Base::initiate(h)) Base::scheduler().schedule(Base::resume_of(*this));
  }
  auto await_resume() {
    this->rethrow_if_failed();
    return std::move(this->result());
  }
};

// A coroutine's get racing put() and a stop request: the item is got or stays queued.
// kInitiated false: async_get(stop_token). true: weft::asio's initiation and in-place stop.
template <bool kInitiated>
class AsyncQueueCancel : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      consume();
      while (!finished) sched.run_one([this] { return finished; });
    } else if (i == 1) {
      q.put(7);
    } else {
      stop_started = true;
      if constexpr (kInitiated) {
        inplace.request();
      } else {
        dsched::request_stop(src);
      }
    }
  }
  void check() override {
    dsched::check(got + static_cast<int>(q.qsize()) == 1, "the item was lost or duplicated");
    dsched::check(got == 1 || stop_started, "cancelled without a stop request");
    check_waitqueue_quiet(weft::detail::SelectAccess::core(q).not_empty(), "not_empty");
  }

 private:
  using Get = weft::detail::GetOp<weft::Queue<int>>;
  DschedTask consume() {
    if constexpr (kInitiated) {
      auto r = co_await InitiatedAwait<Get>(sched, false, weft::detail::Deadline::never(), &inplace,
                                            Get(q));
      got = r && std::get<0>(*r) == 7 ? 1 : r ? 2 : 0;
    } else {
      try {
        got = co_await weft::async_get(q, sched, src.get_token()) == 7 ? 1 : 2;
      } catch (const weft::Cancelled&) {
        got = 0;
      }
    }
    finished = true;
  }

  DschedScheduler sched;
  weft::Queue<int> q;
  std::stop_source src;
  weft::detail::AsyncStop inplace;
  int got = -1;
  bool finished = false;
  bool stop_started = false;
};

// A queue's get without its ready_hint(), which says when its first link() begins and
// what it did: the initiation then registers whatever the queue holds, so with an item
// already queued the registration finds it on its re-check and is withdrawn
// (Link::withdrawn).
class UnhintedGet : public weft::detail::GetOp<weft::Queue<int>> {
  using Base = weft::detail::GetOp<weft::Queue<int>>;

 public:
  // std::atomic, not schedule points: another thread's await() predicate reads them.
  struct Seen {
    std::atomic<bool> linking{false};
    std::atomic<int> first{-1};  // the first link()'s Link
  };
  UnhintedGet(weft::Queue<int>& q, Seen* seen) noexcept : Base(q), seen_(seen) {}
  bool ready_hint() = delete;  // AsyncOp::initiate() asks no source without a hint
  weft::detail::Link link(weft::detail::WaitNode& node, weft::detail::Position pos) {
    seen_->linking.store(true);
    const weft::detail::Link r = Base::link(node, pos);
    if (seen_->first.load() < 0) seen_->first.store(static_cast<int>(r));
    return r;
  }

 private:
  Seen* seen_;
};

// weft::asio's initiation whose registration is withdrawn: item 7 is queued before the
// coroutine initiates a get, so its link re-checks, finds 7 and unlinks again. From the
// moment it begins to link, thread 1 puts 8 (it may claim the node between the link and
// the unlink: the initiation then waits at the gate for that claim's wake step, or
// schedules itself) and thread 2 requests the stop. The coroutine is scheduled exactly
// once (never: a deadlock) and gets 7, or is cancelled and takes nothing; no node stays
// linked.
class AsyncInitiateWithdrawn : public dsched::Instance {
 public:
  AsyncInitiateWithdrawn() { q.put(7); }
  void thread(int i) override {
    if (i == 0) {
      consume();
      while (!finished) sched.run_one([this] { return finished; });
      return;
    }
    dsched::await([this] { return seen.linking.load(); });
    if (i == 1) {
      q.put(8);
    } else {
      stop_started = true;
      inplace.request();
    }
  }
  void check() override {
    dsched::check(seen.first.load() == static_cast<int>(weft::detail::Link::withdrawn),
                  "the initiation's registration was not withdrawn");
    dsched::check(got == 7 || (got == 0 && stop_started), "got no item, or a wrong one");
    dsched::check(static_cast<int>(q.qsize()) == (got == 7 ? 1 : 2), "an item was lost");
    check_waitqueue_quiet(weft::detail::SelectAccess::core(q).not_empty(), "not_empty");
  }

 private:
  DschedTask consume() {
    auto r = co_await InitiatedAwait<UnhintedGet>(sched, false, weft::detail::Deadline::never(),
                                                  &inplace, UnhintedGet(q, &seen));
    got = r ? (std::get<0>(*r) ? *std::get<0>(*r) : -1) : 0;
    finished = true;
  }

  DschedScheduler sched;
  weft::Queue<int> q;
  weft::detail::AsyncStop inplace;
  UnhintedGet::Seen seen;
  int got = -2;
  bool finished = false;
  bool stop_started = false;
};

// Two coroutine acquirers, A cancellable: release(1) racing A's stop. The permit reaches A
// or B; if A's stop won after the release claimed it, the claim is used (A retries), and if
// the stop won first, the release claims B: B never waits on a free permit.
class AsyncSemaphorePassOn : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      acquire(a, true);
      acquire(b, false);
      for (;;) {
        if (a == 1 && !released_again) {
          released_again = true;
          sem.release();  // A took the permit: B needs another
        }
        if (a >= 0 && b >= 0) break;
        // A lost wake-up leaves nothing scheduled: the explorer reports the deadlock.
        sched.run_one([] { return false; });
      }
    } else if (i == 1) {
      sem.release();
    } else {
      dsched::request_stop(src);
    }
  }
  void check() override {
    dsched::check(b == 1, "B did not get a permit");
    dsched::check(sem.value() == 0, "a permit was left over");
  }

 private:
  DschedTask acquire(int& out, bool cancellable) {
    if (cancellable) {
      out = co_await weft::async_acquire(sem, sched, src.get_token()) ? 1 : 0;
    } else {
      out = co_await weft::async_acquire(sem, sched) ? 1 : 0;
    }
  }

  DschedScheduler sched;
  weft::Semaphore sem{0};
  std::stop_source src;
  int a = -1;
  int b = -1;
  bool released_again = false;
};

// Two coroutines wait on a Condition over a Lock, A with a stop token: notify() (on thread
// 1, its wake-up deferred to the release) racing A's stop (thread 2). The notify reaches A
// (true) or, if the stop won first, B; never neither, never both.
class AsyncConditionStopNotify : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      wait(a, true);
      wait(b, false);
      for (;;) {
        if (a == 1 && !renotified) {  // A used the notify: B needs another
          renotified = true;
          lock.acquire();
          cv.notify();
          lock.release();
        }
        if (a >= 0 && b >= 0) break;
        // A lost wake-up leaves nothing scheduled: the explorer reports the deadlock.
        sched.run_one([] { return false; });
      }
    } else if (i == 1) {
      dsched::await([this] { return waiting == 2; });
      lock.acquire();
      cv.notify();
      lock.release();
    } else {
      dsched::request_stop(src);
    }
  }
  void check() override {
    dsched::check(b == 1, "B was not notified");
    dsched::check(a == 0 || a == 1, "A did not finish");
    const int n = length(list_of(cv.*get(CondWaiters{})));
    dsched::check(n == 0, "Condition: " + str(n) + " node(s) still linked");
    dsched::check(!flag_of(cv.*get(CondWaiters{})), "Condition: waiters' flag left set");
    check_lock_quiet(lock);
  }

 private:
  DschedTask wait(int& out, bool cancellable) {
    co_await weft::async_acquire(lock, sched);
    ++waiting;
    if (cancellable) {
      out = co_await weft::async_wait(cv, lock, sched, src.get_token()) ? 1 : 0;
    } else {
      out = co_await weft::async_wait(cv, lock, sched) ? 1 : 0;
    }
    dsched::check(lock.locked(), "resumed without the lock");
    lock.release();
  }

  DschedScheduler sched;
  weft::Lock lock;
  weft::Condition cv{lock};
  std::stop_source src;
  int waiting = 0;
  int a = -1;
  int b = -1;
  bool renotified = false;
};

// A coroutine's frame is destroyed (thread 0) while notify() runs on thread 1, which holds
// the lock until the destruction is over (once the release has scheduled A, A must be
// resumed or dropped, not destroyed): the destruction either unregisters A before the claim,
// or finds the claim and takes back its wake-up, deferred to that release (waiting for the
// deferral if it has not happened yet); either way the notify reaches B.
class AsyncConditionDestroyNotify : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      frame_a = wait(a);
      static_cast<void>(wait(b));
      dsched::await([this] { return notifying; });
      frame_a.destroy();
      destroyed = true;
      while (b < 0) sched.run_one([] { return false; });
    } else {
      dsched::await([this] { return waiting == 2; });
      lock.acquire();
      notifying = true;
      cv.notify();
      dsched::await([this] { return destroyed; });
      lock.release();
    }
  }
  void check() override {
    dsched::check(a == -1, "a destroyed coroutine was resumed");
    dsched::check(b == 1, "B was not notified");
    const int n = length(list_of(cv.*get(CondWaiters{})));
    dsched::check(n == 0, "Condition: " + str(n) + " node(s) still linked");
    check_lock_quiet(lock);
  }

 private:
  struct Frame {
    struct promise_type {
      Frame get_return_object() noexcept {
        return Frame{std::coroutine_handle<promise_type>::from_promise(*this)};
      }
      std::suspend_never initial_suspend() noexcept { return {}; }
      std::suspend_always final_suspend() noexcept { return {}; }
      void return_void() noexcept {}
      void unhandled_exception() noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> h;
    void destroy() {
      if (h) std::exchange(h, {}).destroy();
    }
  };
  Frame wait(int& out) {
    co_await weft::async_acquire(lock, sched);
    ++waiting;
    out = co_await weft::async_wait(cv, lock, sched) ? 1 : 0;
    lock.release();
  }

  DschedScheduler sched;
  weft::Lock lock;
  weft::Condition cv{lock};
  Frame frame_a;
  int waiting = 0;
  bool notifying = false;
  bool destroyed = false;
  int a = -1;
  int b = -1;
};

// A coroutine party (thread 0, cancellable) and a thread party of a Barrier(2), the stop
// (thread 2) racing the thread's arrival: the coroutine passes with the other index, or is
// withdrawn (Cancelled) and thread 0 completes the cycle itself; the barrier never breaks.
class AsyncBarrierStop : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      wait();
      while (a == -2) sched.run_one([this] { return a != -2; });
      if (a == -1) mine = static_cast<int>(barrier.wait());  // the thread's other party
    } else if (i == 1) {
      t = static_cast<int>(barrier.wait());
    } else {
      dsched::request_stop(src);
    }
  }
  void check() override {
    dsched::check(!barrier.broken(), "the barrier broke");
    const int other = a >= 0 ? a : mine;
    dsched::check(other + t == 1, "indices " + str(other) + " and " + str(t) + " not distinct");
    dsched::check(barrier.n_waiting() == 0, "a party is still counted");
  }

 private:
  DschedTask wait() {
    try {
      a = static_cast<int>(co_await weft::async_wait(barrier, sched, src.get_token()));
    } catch (const weft::Cancelled&) {
      a = -1;
    }
  }

  DschedScheduler sched;
  weft::Barrier barrier{2};
  std::stop_source src;
  int a = -2;  // the coroutine's index, -1 when cancelled
  int t = -1;
  int mine = -1;
};

// ---- Lifetime (design.md I3: claim first, publish last) ---------------------------------
//
// A thread that sees a call's effect, woken or not (a timed-out waiter that retried, a fast
// path), may destroy the primitive at once, provided no other call is still in progress
// except those whose effect it saw. dsched::destroy() makes any later access by any thread
// a failure. Each scenario lets the destroying thread wait (await) for the threads whose
// calls did not cause its return, as the contract requires.

class EventLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      while (!ev->wait(1ms)) {
      }
      dsched::await([] { return dsched::thread_finished(2); });
      dsched::destroy(ev);
    } else if (i == 1) {
      ev->set();
    } else {
      (void)ev->wait(1ms);
    }
  }

 private:
  std::unique_ptr<weft::Event> ev = std::make_unique<weft::Event>();
};

class LockLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      lock->acquire();
      t0_acquired = true;
      dsched::yield();
      lock->release();
    } else if (i == 1) {
      if (lock->acquire(1ms)) lock->release();
    } else {
      dsched::await([this] { return t0_acquired; });
      while (!lock->acquire(1ms)) {
      }
      dsched::await([] { return dsched::thread_finished(1); });
      lock->release();
      dsched::destroy(lock);
    }
  }

 private:
  std::unique_ptr<weft::Lock> lock = std::make_unique<weft::Lock>();
  bool t0_acquired = false;
};

// Wait morphing and the Lifetime rule: a waiter woken through a notify() from a thread that
// does not hold the Lock (the holder's release, or the notifier itself, wakes it) destroys
// the Condition and the Lock at once. Nothing may touch them afterwards (found by review:
// notify() used to re-read the Lock's state after handing the waiter over).
class ConditionUnownedLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {  // the waiter, which destroys both once woken
      lock->acquire();
      waiting = true;
      (void)cv->wait();
      lock->release();
      dsched::await([] { return dsched::thread_finished(1); });
      dsched::destroy(cv);
      dsched::destroy(lock);
    } else if (i == 1) {  // the holder
      dsched::await([this] { return waiting; });
      lock->acquire();
      holding = true;
      lock->release();
    } else {  // the notifier, which does not hold the lock
      dsched::await([this] { return holding; });
      try {
        cv->notify();
        return;  // the waiter may destroy everything from here on
      } catch (const std::logic_error&) {
        // The lock was free already: notify() refused, as Python's. Notify holding it.
      }
      lock->acquire();
      cv->notify();
      lock->release();
    }
  }

 private:
  std::unique_ptr<weft::Lock> lock = std::make_unique<weft::Lock>();
  std::unique_ptr<weft::Condition> cv = std::make_unique<weft::Condition>(*lock);
  bool waiting = false;
  bool holding = false;
};

class SemaphoreLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      while (!sem->acquire(1ms)) {
      }
      dsched::await([] { return dsched::thread_finished(2); });
      dsched::destroy(sem);
    } else if (i == 1) {
      sem->release(2);
    } else {
      (void)sem->acquire(1ms);
    }
  }

 private:
  std::unique_ptr<weft::Semaphore> sem = std::make_unique<weft::Semaphore>(0);
};

// Q is a ring Queue<int> or a locked-storage LifoQueue<int>.
template <class Q>
class QueueLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      std::optional<int> v;
      while (!(v = q->try_get(1ms))) {
      }
      dsched::await([] { return dsched::thread_finished(2); });
      dsched::destroy(q);
    } else if (i == 1) {
      q->put(7);
    } else {
      // A getter that may take the item and put it back.
      if (auto v = q->try_get(1ms)) q->put(int(*v));
    }
  }

 private:
  std::unique_ptr<Q> q = std::make_unique<Q>(1);
};

// A getter that sees ShutDown may destroy the queue: shutdown() must be done with it.
template <class Q>
class QueueShutdownLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      try {
        for (;;) (void)q->get();
      } catch (const weft::ShutDown&) {
      }
      dsched::await([] { return dsched::thread_finished(2); });
      dsched::destroy(q);
    } else if (i == 1) {
      q->put(1);
      q->shutdown();
    } else {
      try {
        q->put(2, 1ms);
      } catch (const weft::Full&) {
      } catch (const weft::ShutDown&) {
      }
    }
  }

 private:
  std::unique_ptr<Q> q = std::make_unique<Q>(1);
};

// A notified waiter may destroy the Condition (and the RLock it owns) once it holds the lock
// again and released it.
class ConditionLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      cv->acquire();
      const bool ok = cv->wait_for([this] { return ready; });
      dsched::check(ok, "wait_for(pred) without a timeout returned false");
      cv->release();
      dsched::await([] { return dsched::thread_finished(2); });
      dsched::destroy(cv);
    } else if (i == 1) {
      cv->acquire();
      ready = true;
      cv->notify_all();  // T2 may be the oldest waiter
      cv->release();
    } else {
      cv->acquire();
      (void)cv->wait(1ms);
      cv->release();
    }
  }

 private:
  std::unique_ptr<weft::Condition> cv = std::make_unique<weft::Condition>();
  bool ready = false;
};

// A claimed node is unlinked by its claimer, and the claimed source may be destroyed as soon
// as another waiter its notifier woke returns: a waiter that leaves its round after losing to
// a claim must not touch that source again. The two scenarios below stage it: thread 2 waits
// on the Event and destroys it as soon as set() has woken it and the select or coroutine on
// thread 0 is known to be claimed (or finished).

// A select operation of the test's own that is never linked: its link() waits until the
// Event's other waiter returned (so set() has claimed every node linked before it, the
// select's among them), then reports the source ready, ending the round unparked.
struct ReadyAfterWake {
  using result_type = std::monostate;
  bool* in_link;
  const bool* woken;
  bool try_fire(result_type& /*out*/) const noexcept { return false; }
  weft::WaitLink link(weft::WaitNode& /*node*/, weft::WaitPosition /*pos*/) const {
    *in_link = true;
    dsched::await([w = woken] { return *w; });
    return weft::WaitLink::ready;
  }
  void unlink(weft::WaitNode& /*node*/) const noexcept {}
};

// select(wait(e), ReadyAfterWake) on thread 0 (a thread, or a coroutine if kAsync): e linked,
// then the other operation found ready while set() claims the select's node for e; the
// woken waiter destroys e; the select settles its round and unlinks what was not claimed.
template <bool kAsync>
class SelectReadyLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      if constexpr (kAsync) {
        run_async();
        while (index < 0) sched.run_one([this] { return index >= 0; });
      } else {
        index = static_cast<int>(weft::select(weft::wait(*ev), op()).index());
      }
      if (in_link) dsched::check(index == 0, "the claim by set() was not reported");
    } else if (i == 1) {
      ev->set();
    } else {
      ev->wait();
      woken = true;
      // Thread 0 is claimed once it is in ReadyAfterWake::link (see there), or finished.
      dsched::await([this] { return in_link || dsched::thread_finished(0); });
      dsched::destroy(ev);
    }
  }

 private:
  ReadyAfterWake op() { return ReadyAfterWake{&in_link, &woken}; }
  DschedTask run_async() {
    const auto r = co_await weft::async_select(sched, weft::wait(*ev), op());
    index = static_cast<int>(r.index());
  }

  DschedScheduler sched;
  std::unique_ptr<weft::Event> ev = std::make_unique<weft::Event>();
  int index = -1;
  bool in_link = false;
  bool woken = false;
};

// A coroutine's async_wait(e, 1h) whose arm_timer throws after set() claimed it (the round
// is left as a destroyed frame leaves it: AsyncOp::withdraw and abandon share the unlinking).
// Destroying the frame itself cannot be staged here: a frame may be destroyed only before
// the wake step schedules it, which a program can ensure only for a round nobody decides.
class AsyncAbandonLifetime : public dsched::Instance {
 public:
  void thread(int i) override {
    if (i == 0) {
      wait();
      while (result < 0) sched.run_one([this] { return result >= 0; });
      dsched::check(result != 0 || in_arm_timer, "async_wait_for failed without arm_timer");
    } else if (i == 1) {
      ev->set();
    } else {
      ev->wait();
      woken = true;
      // A registered coroutine is claimed by the time we return (set() claims, then
      // publishes); one that is not registered yet may still read the Event.
      dsched::await([this] { return in_arm_timer || dsched::thread_finished(0); });
      dsched::destroy(ev);
    }
  }

 private:
  // A timed scheduler whose arm_timer throws once the Event's other waiter returned.
  struct Sched : DschedScheduler {
    AsyncAbandonLifetime* self;
    explicit Sched(AsyncAbandonLifetime* s) : self(s) {}
    void arm_timer(weft::AsyncTimer& /*t*/) const {
      self->in_arm_timer = true;
      dsched::await([s = self] { return s->woken; });
      throw std::runtime_error("arm_timer failed");
    }
    void disarm_timer(weft::AsyncTimer& /*t*/) noexcept {}
  };

  DschedTask wait() {
    try {
      result = co_await weft::async_wait(*ev, sched, 1h) ? 1 : 2;
    } catch (const std::runtime_error&) {
      result = 0;
    }
  }

  Sched sched{this};
  std::unique_ptr<weft::Event> ev = std::make_unique<weft::Event>();
  int result = -1;
  bool in_arm_timer = false;
  bool woken = false;
};

// weft::Queue's class over a segment list of `Slots` slots (queue.hpp's FifoStorage) instead
// of the default (segment_slots<int>(): 255), so that a few items cross several segment
// hand-overs.
template <std::size_t Slots>
class SegmentQueue : public weft::detail::TaskQueue<int, weft::detail::FifoStorage<int, Slots>> {
 public:
  explicit SegmentQueue(std::ptrdiff_t maxsize)
      : weft::detail::TaskQueue<int, weft::detail::FifoStorage<int, Slots>>(maxsize) {}
  std::size_t segments() const {
    return this->core_.storage().segment_list()->segments_allocated();
  }
};
template <class Q>
inline constexpr bool kIsSegmentQueue = false;
template <std::size_t Slots>
inline constexpr bool kIsSegmentQueue<SegmentQueue<Slots>> = true;

// Batches: a put_many of 5 and single puts race a get_many(2) and single gets, then shutdown
// once the producers are done: every item is delivered exactly once, nobody stays blocked,
// and over the lock-free storages (whose batches claim several positions with one CAS) each
// consumer sees each producer's items in order.
//  - Q = Queue<int>, Max 3: the ring; the put_many waits for room mid-batch.
//  - Q = LifoQueue<int>, Max 3: the locked storage.
//  - Q = SegmentQueue<1 or 3>, Max 0, Immediate: the segment list with segments of 1 or 3
//    slots, every position or every few a hand-over, each segment retired by whichever getter
//    finishes its last slot and recycled by the next push to reach a segment's end; the
//    shutdown is shutdown(true), whose drain races the getters (what it removes counts as
//    delivered, in order per producer), and at the end the list keeps at most three
//    segments (its head and two spares).
//  - Race: the shutdown does not wait for the producers, so it races the put_many and the
//    puts: the close may land on a push's claim, while tail_ sits at a hand-over position
//    (install_tail must keep the closed mark), or between two rounds of the put_many (which
//    then returns how many went in). The account is exact: each producer's first n items
//    (n as put_many returned, or the puts that did not throw ShutDown) are delivered once,
//    to a getter or to shutdown(true)'s drain, and the rest nowhere.
template <class Q, std::ptrdiff_t Max = 3, bool Immediate = false, bool Race = false>
class QueueBatches : public dsched::Instance {
  static constexpr bool kFifo = !std::is_same_v<Q, weft::LifoQueue<int>>;

 public:
  void thread(int i) override {
    if (i == 0) {
      const std::vector<int> items = {100, 101, 102, 103, 104};
      try {
        put[0] = static_cast<int>(q.put_many(items));
      } catch (const weft::ShutDown&) {
        dsched::check(Race, "put_many: ShutDown before the shutdown");
      }
      dsched::check(put[0] == 5 || (Race && put[0] >= 0 && put[0] < 5),
                    "put_many returned " + str(put[0]));
    } else if (i == 1) {
      try {
        for (; put[1] < 2; ++put[1]) q.put(200 + put[1]);
      } catch (const weft::ShutDown&) {
        dsched::check(Race, "put: ShutDown before the shutdown");
      }
    } else if (i == 2) {
      try {
        for (;;) {
          const std::vector<int> batch = q.get_many(2);
          dsched::check(!batch.empty() && batch.size() <= 2, "get_many(2) size out of range");
          got[0].insert(got[0].end(), batch.begin(), batch.end());
        }
      } catch (const weft::ShutDown&) {
      }
    } else if (i == 3) {
      try {
        for (;;) got[1].push_back(q.get());
      } catch (const weft::ShutDown&) {
      }
    } else {
      if constexpr (!Race) {
        dsched::await([] { return dsched::thread_finished(0) && dsched::thread_finished(1); });
      }
      if constexpr (Immediate) {
        got[2] = q.shutdown(true);
      } else {
        q.shutdown();
      }
    }
  }
  void check() override {
    std::map<int, int> seen;
    for (auto& g : got) {
      int last[2] = {-1, -1};
      for (int v : g) {
        ++seen[v];
        const int p = v / 100 - 1;
        if constexpr (kFifo) {
          dsched::check(v > last[p], "producer " + str(p) + "'s items out of order");
        }
        last[p] = v;
      }
    }
    for (int p = 0; p < 2; ++p) {
      for (int k = 0; k < put[p]; ++k) {
        const int v = 100 * (p + 1) + k;
        dsched::check(seen[v] == 1, "item " + str(v) + " delivered " + str(seen[v]) + " times");
      }
    }
    dsched::check(
        seen.size() == static_cast<std::size_t>(put[0]) + static_cast<std::size_t>(put[1]),
        "items delivered that were not put (put_many " + str(put[0]) + ", puts " + str(put[1]) +
            ", delivered " + str(static_cast<long>(seen.size())) + ")");
    dsched::check(q.qsize() == 0, "items left in the queue");
    if constexpr (kIsSegmentQueue<Q>) {
      dsched::check(q.segments() <= 3,
                    "segments kept: " + str(static_cast<long>(q.segments())) + " (at most 3)");
    }
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    check_waitqueue_quiet(core.not_full(), "not_full");
  }

 private:
  Q q{Max};
  std::vector<int> got[3];
  int put[2] = {0, 0};  // items each producer put: put_many's count, the puts that returned
};

// One batch must wake every waiter it makes ready: a get_many(2) from a full ring(2) frees
// room for both blocked putters (Put = false); a put_many of 2 into an empty ring(4) feeds both
// blocked getters (Put = true). A waiter left blocked with its room or item there is a
// deadlock.
template <bool Put>
class QueueBatchWakesAll : public dsched::Instance {
 public:
  QueueBatchWakesAll() {
    if constexpr (!Put) {
      q.put_nowait(1);
      q.put_nowait(2);
    }
  }
  void thread(int i) override {
    if (i < 2) {
      if constexpr (Put) {
        got[i] = q.get();
      } else {
        q.put(10 + i);
      }
    } else if constexpr (Put) {
      const std::vector<int> items = {10, 11};
      const std::size_t n = q.put_many(items);
      dsched::check(n == 2, "put_many returned " + str(static_cast<long>(n)));
    } else {
      batch = q.get_many(2);
    }
  }
  void check() override {
    if constexpr (Put) {
      dsched::check(std::min(got[0], got[1]) == 10 && std::max(got[0], got[1]) == 11,
                    "getters got " + str(got[0]) + " and " + str(got[1]));
    } else {
      dsched::check(batch == std::vector<int>{1, 2},
                    "get_many(2) from a full queue got " + str(static_cast<long>(batch.size())));
      const int a = q.get_nowait();
      const int b = q.get_nowait();
      dsched::check(std::min(a, b) == 10 && std::max(a, b) == 11, "the puts were lost");
    }
    dsched::check(q.qsize() == 0, "items left in the queue");
    auto& core = weft::detail::SelectAccess::core(q);
    check_waitqueue_quiet(core.not_empty(), "not_empty");
    check_waitqueue_quiet(core.not_full(), "not_full");
  }

 private:
  weft::Queue<int> q{Put ? 4 : 2};
  int got[2] = {-1, -1};
  std::vector<int> batch;
};

// A "not ready" hint is true at one instant: try_select(get(q)) returns nothing only if q
// was empty at some point during the call. q starts with one item; a putter adds one and a
// getter takes one, so with a hint that loads tail before head the put and the get can both
// land between its two loads, which then match although q held an item throughout. A ghost
// count, raised after a put returns and lowered before a get starts (raised again if the
// get found nothing), is never above the queue's size; the selector records its least
// value during its call, and when it found nothing, that least value must be 0.
template <class Q, std::ptrdiff_t Max>
class SelectHintInstant : public dsched::Instance {
 public:
  SelectHintInstant() { q.put(0); }
  void thread(int i) override {
    if (i == 0) {
      in_call = true;
      least = ghost;
      auto r = weft::try_select(weft::get(q));
      in_call = false;
      if (r) {
        got.push_back(*std::get<0>(*r));
        note(-1);  // late, but only a call that found nothing is checked
      } else {
        dsched::check(least == 0,
                      "try_select found nothing while the queue held an item at "
                      "every instant of its call");
      }
    } else if (i == 1) {
      q.put(1);
      note(+1);
    } else {
      note(-1);
      if (auto v = q.try_get()) {
        got.push_back(*v);
      } else {
        note(+1);
      }
    }
  }
  void check() override {
    std::vector<int> all = got;
    while (auto v = q.try_get()) all.push_back(*v);
    std::sort(all.begin(), all.end());
    dsched::check(all == std::vector<int>{0, 1}, "items lost or duplicated");
  }

 private:
  void note(int d) {
    ghost += d;
    if (in_call) least = std::min(least, ghost);
  }
  Q q{Max};
  std::vector<int> got;
  int ghost = 1;
  int least = 1;
  bool in_call = false;
};

template <class T>
dsched::Scenario make(std::string name, std::string what, int threads, int runs,
                      double event_rate = -1) {
  return dsched::Scenario{
      std::move(name), std::move(what), threads, [] { return std::make_unique<T>(); }, runs,
      event_rate};
}

const dsched::Register r1(make<Event13502>(
    "event_13502", "set()+clear() with two waiters linked: both return true (CPython 13502)", 3,
    3000));
const dsched::Register r2(make<EventTimed>("event_timed", "set/clear/set against two timed waiters",
                                           3, 3000));
const dsched::Register r3(make<EventCancel>("event_cancel",
                                            "wait(stop_token) racing set() and request_stop()", 3,
                                            3000));
const dsched::Register r3b(make<CancelWakes>(
    "cancel_wakes", "request_stop() alone ends an Event wait, a queue get and a Lock acquire", 4,
    2000));
const dsched::Register r4(make<Exclusion<weft::Lock>>(
    "lock_mutex", "mutual exclusion, wake on release, timed acquires", 3, 2000));
const dsched::Register r5(make<LockCancel>(
    "lock_cancel", "acquire(stop_token) racing release() and request_stop()", 3, 3000));
const dsched::Register r5b(make<LockTimeoutRace>(
    "lock_timeout_race", "release() vs a waiter timing out and a new untimed waiter", 3, 8000,
    1.0 / 8));
const dsched::Register r6(make<ConditionNotify>(
    "condition_notify", "notify(2) wakes exactly the two oldest live waiters", 4, 2000));
const dsched::Register r6b(make<ConditionNotifyUnowned>(
    "condition_notify_unowned",
    "notify() from a non-holder racing the holder's release(): the waiter still wakes", 3, 3000));
const dsched::Register r6c(make<ConditionUnownedLifetime>(
    "condition_unowned_lifetime",
    "a waiter woken through a non-holder's notify() destroys the Condition and its Lock", 3, 3000));
const dsched::Register r7(make<Exclusion<weft::Semaphore>>(
    "semaphore_permits", "Semaphore(1) conservation with timed acquires", 3, 2000));
const dsched::Register r8(make<SemaphoreReleaseN>(
    "semaphore_release_n", "release(2) wakes two blocked acquirers; a cancelled third", 4, 2000));
const dsched::Register r9(make<QueueMpmc>(
    "queue_mpmc", "ring(2), 2 producers, 2 consumers, shutdown: exactly-once delivery", 5, 1000));
const dsched::Register r10(make<QueueCancel>("queue_cancel",
                                             "get(stop_token) racing put() and request_stop()", 3,
                                             2000));
const dsched::Register r11(make<SelectTwoQueues>(
    "select_two_queues", "two selectors over two queues, shutdown: exactly-once", 5, 1000));
const dsched::Register r11b(make<SelectReadyFirst>(
    "select_ready_first",
    "select's hinted first attempt racing puts and a plain getter on the same queue: once", 3,
    2000));
const dsched::Register r12(make<SelectMixedCancel>(
    "select_mixed_cancel", "select(queue, semaphore, stop): one effect per select", 3, 2000));

const dsched::Register r12b(make<AsyncQueueCancel<false>>(
    "async_queue_cancel",
    "a coroutine's async_get(stop_token) racing put() and request_stop(): exactly once", 3, 3000));
const dsched::Register r12g(make<AsyncQueueCancel<true>>(
    "async_initiate_stop",
    "weft::asio's initiation (register, no attempt) and in-place stop racing put(): once", 3,
    3000));
const dsched::Register r12h(make<AsyncInitiateWithdrawn>(
    "async_initiate_withdrawn",
    "weft::asio's initiation withdrawing its registration, racing put() and a stop: once", 3,
    3000));
const dsched::Register r12c(make<AsyncSemaphorePassOn>(
    "async_semaphore_pass_on",
    "release() racing the stop of one of two coroutine acquirers: the permit is never stranded", 3,
    3000));

const dsched::Register r12d(make<AsyncConditionStopNotify>(
    "async_condition_stop_notify",
    "notify() racing the stop of one of two coroutines in Condition waits: it reaches one", 3,
    3000));
const dsched::Register r12e(make<AsyncConditionDestroyNotify>(
    "async_condition_destroy_notify",
    "a coroutine's frame destroyed while notify() claims it: the notify passes on", 2, 3000));
const dsched::Register r12f(make<AsyncBarrierStop>(
    "async_barrier_stop",
    "a coroutine's Barrier wait racing a thread's arrival and its own stop: never broken", 3,
    3000));

const dsched::Register r13(make<EventLifetime>(
    "event_lifetime", "a waiter that sees set() (woken or retrying) destroys the Event", 3, 2000));
const dsched::Register r14(make<LockLifetime>("lock_lifetime",
                                              "the thread that acquires next destroys the Lock", 3,
                                              2000));
const dsched::Register r15(make<SemaphoreLifetime>(
    "semaphore_lifetime", "an acquirer (woken or retrying) destroys the Semaphore", 3, 2000));
const dsched::Register r16(make<QueueLifetime<weft::Queue<int>>>(
    "queue_lifetime", "a getter (woken or retrying) destroys the ring Queue", 3, 2000));
const dsched::Register r17(make<QueueLifetime<weft::LifoQueue<int>>>(
    "lifo_lifetime", "a getter (woken or retrying) destroys the locked LifoQueue", 3, 2000));
const dsched::Register r18(make<QueueShutdownLifetime<weft::Queue<int>>>(
    "queue_shutdown_lifetime", "a getter that sees ShutDown destroys the ring Queue", 3, 2000));
const dsched::Register r19(make<ConditionLifetime>(
    "condition_lifetime", "a notified waiter destroys the Condition and its RLock", 3, 2000));
const dsched::Register r20(make<SelectReadyLifetime<false>>(
    "select_ready_lifetime",
    "select(wait(e), ready op): e claimed while the round ends unparked, then destroyed", 3, 2000));
const dsched::Register r21(make<SelectReadyLifetime<true>>(
    "async_select_ready_lifetime",
    "async_select(wait(e), ready op): e claimed while the round ends, then destroyed", 3, 2000));
const dsched::Register r22(make<AsyncAbandonLifetime>(
    "async_abandon_lifetime",
    "a coroutine claimed by set() leaves its round (arm_timer throws); e destroyed meanwhile", 3,
    2000));
const dsched::Register r23(make<QueueBatches<weft::Queue<int>>>(
    "queue_batches",
    "ring(3): put_many(5) and puts race get_many(2) and gets, shutdown: exactly-once, in order", 5,
    1000));
const dsched::Register r24(make<QueueBatches<weft::LifoQueue<int>>>(
    "lifo_batches", "LifoQueue(3): the same batches over the locked storage: exactly-once", 5,
    1000));
const dsched::Register r25(make<QueueBatchWakesAll<false>>(
    "queue_batch_frees_room", "get_many(2) from a full ring(2) wakes both blocked putters", 3,
    1000));
const dsched::Register r26(make<QueueBatchWakesAll<true>>(
    "queue_batch_feeds_getters", "put_many of 2 into an empty ring(4) wakes both blocked getters",
    3, 1000));

const dsched::Register r27(make<QueueBatches<SegmentQueue<1>, 0, true>>(
    "segment_handover",
    "segment list of 1-slot segments: the same batches, shutdown(true): once, in order", 5, 1000));
const dsched::Register r28(make<QueueBatches<SegmentQueue<3>, 0, true>>(
    "segment_batches",
    "segment list of 3-slot segments: batches within and across segments, shutdown(true)", 5,
    1000));
const dsched::Register r29(make<QueueBatches<SegmentQueue<1>, 0, true, true>>(
    "segment_close_race",
    "1-slot segments: shutdown(true) races put_many and puts at hand-overs: exact account", 5,
    1000));
const dsched::Register r30(make<QueueBatches<SegmentQueue<3>, 0, false, true>>(
    "segment_shutdown_race",
    "3-slot segments: shutdown() cuts put_many at a segment's end: exact account, in order", 5,
    1000));

const dsched::Register r31(make<SelectHintInstant<weft::Queue<int>, 4>>(
    "select_hint_ring",
    "try_select(get) on a ring while a put and a get race: nothing only if it was empty", 3, 1000));
const dsched::Register r32(make<SelectHintInstant<SegmentQueue<3>, 0>>(
    "select_hint_segments",
    "try_select(get) on a segment list while a put and a get race: nothing only if empty", 3,
    1000));

}  // namespace
