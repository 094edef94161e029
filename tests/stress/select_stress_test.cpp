// SPDX-License-Identifier: MIT
// Stress tests for weft::select: many threads selecting over shared queues of different item
// types (plus a Semaphore and an Event) while others put (blocking, timed, try, and by
// select), time out, and are cancelled at random points (std::jthread request_stop), until
// the queues shut down. Every item carries a unique id; counts and checksums prove that
// each is delivered exactly once (no loss, no duplicate), that permits are neither lost nor
// made up, and the per-test watchdog (sync_helpers.hpp, 120 s) that every thread finishes.
// A dedicated test waits for quiescence after every few puts, so that a wake-up lost by a
// select (an item left in a queue while every consumer sleeps) fails instead of being
// rescued by the next put. Counts shrink under sanitizers (WEFT_SANITIZED).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "sync_helpers.hpp"
#include "weft/select.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Clock;
using weft_test::scaled;
using weft_test::Threads;

using Id = std::uint32_t;

// Three queues of three item types, each carrying an id: an int (the lock-free ring), a
// std::string (a bounded locked LIFO) and a move-only pointer (an unbounded FIFO).
struct Queues {
  weft::Queue<int> ints{8};
  weft::LifoQueue<std::string> strings{8};
  weft::Queue<std::unique_ptr<Id>> ptrs;

  void shutdown() {
    ints.shutdown();
    strings.shutdown();
    ptrs.shutdown();
  }
};

Id id_of(int v) {
  return static_cast<Id>(v);
}
Id id_of(const std::string& s) {
  return static_cast<Id>(std::stoul(s));
}
Id id_of(const std::unique_ptr<Id>& p) {
  return *p;
}

// What one consumer thread got, merged at the end.
struct Log {
  std::mutex mutex;
  std::vector<Id> ids;
  std::uint64_t permits = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t stops = 0;
  void add(const std::vector<Id>& got, std::uint64_t p, std::uint64_t t, std::uint64_t s) {
    std::lock_guard<std::mutex> g(mutex);
    ids.insert(ids.end(), got.begin(), got.end());
    permits += p;
    timeouts += t;
    stops += s;
  }
};

// Every id in [0, total) exactly once.
::testing::AssertionResult exactly_once(std::vector<Id> ids, std::size_t total) {
  if (ids.size() != total) {
    return ::testing::AssertionFailure() << ids.size() << " items delivered, " << total << " put";
  }
  std::vector<std::uint8_t> seen(total, 0);
  for (Id id : ids) {
    if (id >= total) return ::testing::AssertionFailure() << "unknown id " << id;
    if (seen[id]++) return ::testing::AssertionFailure() << "id " << id << " delivered twice";
  }
  // With the size equal and no duplicate, nothing is missing; the checksum says it again.
  const std::uint64_t sum = std::accumulate(ids.begin(), ids.end(), std::uint64_t{0});
  const std::uint64_t expected = std::uint64_t{total} * (total - 1) / 2;
  if (sum != expected)
    return ::testing::AssertionFailure() << "checksum " << sum << " != " << expected;
  return ::testing::AssertionSuccess();
}

// Records the outcome of one select over get(ints), get(strings), get(ptrs), then any
// further operations (a permit or an event, no item). Returns false when the select took
// nothing from an item queue. `closed` collects the queues reported shut down and drained.
template <class Variant>
bool record_get(const Variant& r, std::vector<Id>& got, bool closed[3], std::uint64_t& permits,
                bool& event) {
  switch (r.index()) {
    case 0:
      if (const auto& v = std::get<0>(r))
        got.push_back(id_of(*v));
      else
        closed[0] = true;
      return std::get<0>(r).has_value();
    case 1:
      if (const auto& v = std::get<1>(r))
        got.push_back(id_of(*v));
      else
        closed[1] = true;
      return std::get<1>(r).has_value();
    case 2:
      if (const auto& v = std::get<2>(r))
        got.push_back(id_of(*v));
      else
        closed[2] = true;
      return std::get<2>(r).has_value();
    case 3:
      ++permits;
      return false;
    default:
      event = true;
      return false;
  }
}

bool all_closed(const bool closed[3]) {
  return closed[0] && closed[1] && closed[2];
}

// ---- producers ---------------------------------------------------------------------------

// Puts ids [first, last) one at a time, queue by id % 3, rotating the put forms: blocking
// put, timed try_put (retried), try_put (retried), and a one-operation select_for.
void produce_directly(Queues& qs, Id first, Id last) {
  for (Id id = first; id < last; ++id) {
    const unsigned form = (id / 3) % 4;
    switch (id % 3) {
      case 0: {
        int item = static_cast<int>(id);
        if (form == 0) {
          qs.ints.put(int{item});
        } else if (form == 1) {
          while (!qs.ints.try_put(int{item}, 200us)) {
          }
        } else if (form == 2) {
          while (!qs.ints.try_put(int{item})) std::this_thread::yield();
        } else {
          while (!weft::select_for(1ms, weft::put(qs.ints, item))) {
          }
        }
        break;
      }
      case 1: {
        std::string item = std::to_string(id);
        if (form == 0) {
          qs.strings.put(std::move(item));
        } else if (form == 1) {
          // NOLINTBEGIN(bugprone-use-after-move): a failed try_put leaves the item; checked
          while (!qs.strings.try_put(std::move(item), 200us)) {
            ASSERT_EQ(item, std::to_string(id)) << "a failed try_put touched the item";
          }
        } else if (form == 2) {
          while (!qs.strings.try_put(std::move(item))) std::this_thread::yield();
          // NOLINTEND(bugprone-use-after-move)
        } else {
          while (!weft::select_for(1ms, weft::put(qs.strings, item))) {
            ASSERT_EQ(item, std::to_string(id)) << "a timed-out select touched the item";
          }
        }
        break;
      }
      default: {
        auto item = std::make_unique<Id>(id);
        if (form % 2 == 0) {
          qs.ptrs.put(std::move(item));
        } else {
          ASSERT_TRUE(std::get<0>(weft::select(weft::put(qs.ptrs, item))));
          ASSERT_EQ(item, nullptr);
        }
        break;
      }
    }
  }
}

// Puts ids [first, last) through selects over three puts at once: one pending item per
// queue; the one put is refilled with the next id, the two not chosen must be untouched.
void produce_by_select(Queues& qs, Id first, Id last, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Id next = first;
  std::optional<int> a;
  std::optional<std::string> b;
  std::unique_ptr<Id> c;
  Id a_id = 0, b_id = 0, c_id = 0;
  auto refill = [&] {
    if (!a && next < last) a_id = next++, a = static_cast<int>(a_id);
    if (!b && next < last) b_id = next++, b = std::to_string(b_id);
    if (!c && next < last) c_id = next++, c = std::make_unique<Id>(c_id);
  };
  refill();
  while (a && b && c) {
    const bool timed = rng() % 4 == 0;
    std::optional<std::variant<bool, bool, bool>> r;
    if (timed) {
      r = weft::select_for(std::chrono::microseconds(rng() % 300), weft::put(qs.ints, *a),
                           weft::put(qs.strings, *b), weft::put(qs.ptrs, c));
    } else {
      r = weft::select(weft::put(qs.ints, *a), weft::put(qs.strings, *b), weft::put(qs.ptrs, c));
    }
    if (r) {
      ASSERT_TRUE(std::visit([](bool ok) { return ok; }, *r)) << "no queue is shut down yet";
    }
    const std::size_t chosen = r ? r->index() : 3;
    // The items not put are intact.
    if (chosen != 1) {
      ASSERT_EQ(*b, std::to_string(b_id));
    }
    if (chosen != 2) {
      ASSERT_TRUE(c != nullptr && *c == c_id);
    } else {
      ASSERT_EQ(c, nullptr);
    }
    if (chosen == 0) a.reset();
    if (chosen == 1) b.reset();
    refill();
  }
  // The ids ran out: put what is left directly.
  if (a) qs.ints.put(int{*a});
  if (b) qs.strings.put(std::move(*b));
  if (c) qs.ptrs.put(std::move(c));
}

// =========================================================================================

TEST(SelectStress, EveryItemDeliveredExactlyOnce) {
  const Id per_producer = static_cast<Id>(scaled(15000, 1200));
  constexpr Id kProducers = 3;
  const Id total = per_producer * kProducers;
  const std::uint64_t kCredits = scaled(3000, 300);
  const std::size_t kReplacements = scaled(300, 40);

  Queues qs;
  weft::Semaphore credits(0);
  weft::Event done;  // set after shutdown: releases the consumers that select on it
  Log log;

  // Cancellable consumers: jthreads selecting with their stop token, replaced at random
  // points by the chaos thread below. Each logs what it got before it ends.
  auto cancellable_consumer = [&](std::stop_token st) {
    std::vector<Id> got;
    bool closed[3] = {false, false, false};
    std::uint64_t permits = 0, stops = 0;
    bool event = false;
    while (!event && !all_closed(closed)) {
      auto r = weft::select(st, weft::get(qs.ints), weft::get(qs.strings), weft::get(qs.ptrs),
                            weft::acquire(credits), weft::wait(done));
      if (!r) {
        ++stops;
        break;
      }
      record_get(*r, got, closed, permits, event);
    }
    log.add(got, permits, 0, stops);
  };
  // A plain getter, cancellable too, competing with the selects on the ring queue.
  auto plain_getter = [&](std::stop_token st) {
    std::vector<Id> got;
    while (auto v = qs.ints.try_get(st)) got.push_back(id_of(*v));
    log.add(got, 0, 0, st.stop_requested() ? 1 : 0);
  };

  std::vector<std::jthread> slots;
  slots.emplace_back(cancellable_consumer);
  slots.emplace_back(cancellable_consumer);
  slots.emplace_back(plain_getter);

  {
    // Long-lived consumers, each ending when it has seen every queue shut down and drained
    // (the biased one: when it sees any, since a drained first queue then always wins).
    Threads consumers(4, [&](std::size_t k) {
      std::mt19937 rng(static_cast<std::uint32_t>(100 + k));
      std::vector<Id> got;
      bool closed[3] = {false, false, false};
      std::uint64_t permits = 0, timeouts = 0;
      bool event = false;
      while (!all_closed(closed)) {
        if (k == 0) {  // plain select
          record_get(weft::select(weft::get(qs.ints), weft::get(qs.strings), weft::get(qs.ptrs),
                                  weft::acquire(credits)),
                     got, closed, permits, event);
        } else if (k == 1) {  // biased, the pointer queue first
          auto r = weft::select(weft::biased, weft::get(qs.ptrs), weft::get(qs.strings),
                                weft::get(qs.ints), weft::acquire(credits));
          // Reorder to the common layout (ints, strings, ptrs, permit).
          switch (r.index()) {
            case 0:
              if (auto& v = std::get<0>(r))
                got.push_back(id_of(*v));
              else
                closed[0] = closed[1] = closed[2] = true;
              break;
            case 1:
              if (auto& v = std::get<1>(r))
                got.push_back(id_of(*v));
              else
                closed[0] = closed[1] = closed[2] = true;
              break;
            case 2:
              if (auto& v = std::get<2>(r))
                got.push_back(id_of(*v));
              else
                closed[0] = closed[1] = closed[2] = true;
              break;
            default:
              ++permits;
              break;
          }
        } else if (k == 2) {  // timed
          auto r =
              weft::select_for(std::chrono::microseconds(rng() % 500), weft::get(qs.ints),
                               weft::get(qs.strings), weft::get(qs.ptrs), weft::acquire(credits));
          if (r) {
            record_get(*r, got, closed, permits, event);
          } else {
            ++timeouts;
          }
        } else {  // polling
          auto r = weft::try_select(weft::get(qs.ints), weft::get(qs.strings), weft::get(qs.ptrs),
                                    weft::acquire(credits));
          if (r) {
            record_get(*r, got, closed, permits, event);
          } else {
            std::this_thread::yield();
          }
        }
      }
      log.add(got, permits, timeouts, 0);
    });

    // Releases the permits one or two at a time.
    Threads ticker(1, [&](std::size_t) {
      std::uint64_t released = 0;
      while (released < kCredits) {
        const std::uint64_t n = std::min<std::uint64_t>(kCredits - released, 1 + released % 2);
        credits.release(n);
        released += n;
        if (released % 64 == 0) std::this_thread::yield();
      }
    });

    // Stops a random cancellable consumer at a random point and starts a new one.
    Threads chaos(1, [&](std::size_t) {
      std::mt19937 rng(7);
      for (std::size_t i = 0; i < kReplacements; ++i) {
        const auto until = Clock::now() + std::chrono::microseconds(rng() % 300);
        while (Clock::now() < until) std::this_thread::yield();
        const std::size_t s = rng() % slots.size();
        slots[s].request_stop();
        slots[s].join();
        if (s == 2) {
          slots[s] = std::jthread(plain_getter);
        } else {
          slots[s] = std::jthread(cancellable_consumer);
        }
      }
    });

    {
      Threads producers(kProducers, [&](std::size_t p) {
        const Id first = static_cast<Id>(p) * per_producer;
        if (p == 1) {
          produce_by_select(qs, first, first + per_producer, 11);
        } else {
          produce_directly(qs, first, first + per_producer);
        }
      });
    }
    chaos.join();
    ticker.join();
    qs.shutdown();  // the long-lived consumers drain and end
    consumers.join();
    done.set();  // the cancellable consumers that are still selecting end
    for (auto& s : slots) {
      s.request_stop();
      s.join();
    }
  }

  // What no consumer took (the biased and the stopped ones leave early): still queued.
  std::vector<Id> leftovers;
  while (auto v = qs.ints.try_get()) leftovers.push_back(id_of(*v));
  while (auto v = qs.strings.try_get()) leftovers.push_back(id_of(*v));
  while (auto v = qs.ptrs.try_get()) leftovers.push_back(id_of(*v));
  std::vector<Id> all = log.ids;
  all.insert(all.end(), leftovers.begin(), leftovers.end());
  EXPECT_TRUE(exactly_once(all, total));
  EXPECT_EQ(log.permits + credits.value(), kCredits) << "permits lost or made up";
  std::cout << "[ stress   ] " << total << " items (" << leftovers.size() << " left queued), "
            << log.permits << " permits by select, " << log.timeouts << " timed-out selects, "
            << log.stops << " consumers stopped\n";
}

// Selects that put and selects that get, on queues of capacity 1 and 2, so that both sides
// block and are woken by the other side's select (pops wake putters, pushes wake getters).
TEST(SelectStress, PutSelectsAndGetSelectsOnTinyQueues) {
  const int per_producer = static_cast<int>(scaled(20000, 1500));
  constexpr int kProducers = 2, kConsumers = 3;
  const int total = per_producer * kProducers;
  weft::Queue<int> a(1);
  weft::PriorityQueue<int> b(2);
  std::atomic<std::uint64_t> sum{0};
  std::atomic<int> count{0};
  std::vector<std::vector<Id>> got(kConsumers);
  {
    Threads consumers(kConsumers, [&](std::size_t k) {
      bool closed[2] = {false, false};
      while (!(closed[0] && closed[1])) {
        auto r = weft::select(weft::get(a), weft::get(b));
        const auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
        if (v) {
          got[k].push_back(static_cast<Id>(*v));
          sum += static_cast<std::uint64_t>(*v);
          ++count;
        } else {
          closed[r.index()] = true;
        }
      }
    });
    {
      Threads producers(kProducers, [&](std::size_t p) {
        // Two pending items, one per queue; the one put is replaced by the next id.
        int next = static_cast<int>(p) * per_producer;
        const int last = next + per_producer;
        int x = next++, y = next++;
        bool have_x = true, have_y = true;
        while (have_x || have_y) {
          if (have_x && have_y) {
            auto r = weft::select(weft::put(a, x), weft::put(b, y));
            ASSERT_TRUE(r.index() == 0 ? std::get<0>(r) : std::get<1>(r));
            if (r.index() == 0) {
              have_x = next < last;
              if (have_x) x = next++;
            } else {
              have_y = next < last;
              if (have_y) y = next++;
            }
          } else if (have_x) {
            a.put(int{x});
            have_x = false;
          } else {
            b.put(int{y});
            have_y = false;
          }
        }
      });
    }
    a.shutdown();
    b.shutdown();
  }
  std::vector<Id> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  EXPECT_EQ(count.load(), total);
  EXPECT_TRUE(exactly_once(all, static_cast<std::size_t>(total)));
  EXPECT_EQ(sum.load(), static_cast<std::uint64_t>(total) * (total - 1) / 2);
}

// Rounds of a few puts, each followed by waiting until every item was consumed: selects over
// several queues and plain getters compete, so that a select which took a wake-up meant for
// one queue and then served another would leave an item behind with every consumer asleep.
// Here nothing comes to rescue it: the round fails after a generous limit.
TEST(SelectStress, QuiescentRoundsLoseNoWakeUp) {
  const std::size_t rounds = scaled(3000, 300);
  weft::Queue<int> q1, q2;  // locked deques
  weft::Queue<int> q3(4);   // the ring
  weft::Semaphore sem(0);
  std::atomic<std::uint64_t> consumed{0};
  std::uint64_t produced = 0;
  std::size_t stuck_rounds = 0;
  std::stop_source end;
  {
    Threads consumers(6, [&](std::size_t k) {
      try {
        for (;;) {
          if (k < 3) {  // selects over all four sources
            auto r = weft::select(weft::get(q1), weft::get(q2), weft::get(q3), weft::acquire(sem));
            if (r.index() < 3) {
              const auto& v = r.index() == 0   ? std::get<0>(r)
                              : r.index() == 1 ? std::get<1>(r)
                                               : std::get<2>(r);
              if (!v) return;  // shut down: the test is over
            }
            ++consumed;
          } else if (k == 3) {
            q1.get();  // throws ShutDown at the end
            ++consumed;
          } else if (k == 4) {
            q2.get();
            ++consumed;
          } else {
            if (!sem.acquire(end.get_token())) return;
            ++consumed;
          }
        }
      } catch (const weft::ShutDown&) {
      }
    });
    {
      // Two putters, so that two sources become ready at about the same moment.
      std::mt19937 rng(3);
      for (std::size_t round = 0; round < rounds; ++round) {
        const unsigned pick = rng();
        std::latch go(2);
        {
          Threads putters(2, [&](std::size_t k) {
            go.arrive_and_wait();
            if (k == 1) {
              // A few microseconds later, a different delay each round: the second put then
              // often lands while a consumer woken by the first is registering again.
              const auto until = Clock::now() + std::chrono::microseconds((round % 8) * 4);
              while (Clock::now() < until) {
              }
            }
            switch ((pick >> (2 * k)) % 4) {
              case 0:
                q1.put(1);
                break;
              case 1:
                q2.put(1);
                break;
              case 2:
                q3.put(1);
                break;
              default:
                sem.release();
                break;
            }
          });
        }
        produced += 2;
        if (!weft_test::eventually([&] { return consumed.load() == produced; }, 10s)) {
          ++stuck_rounds;
          ADD_FAILURE() << "round " << round << ": " << produced - consumed.load()
                        << " item(s)/permit(s) left while every consumer sleeps (q1 " << q1.qsize()
                        << ", q2 " << q2.qsize() << ", q3 " << q3.qsize() << ", sem " << sem.value()
                        << "): a wake-up was lost";
          if (stuck_rounds >= 3) break;
          // Rescue: consume what is stuck here, so that the next round starts clean.
          while (q1.try_get()) ++consumed;
          while (q2.try_get()) ++consumed;
          while (q3.try_get()) ++consumed;
          while (sem.acquire(false)) ++consumed;
        }
      }
    }
    // End: shut the queues down (the selects and the getters end), stop the semaphore waiter.
    q1.shutdown();
    q2.shutdown();
    q3.shutdown();
    end.request_stop();
  }
  EXPECT_EQ(stuck_rounds, 0u);
}

}  // namespace
