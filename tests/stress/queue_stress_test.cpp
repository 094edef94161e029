// SPDX-License-Identifier: MIT
// Stress tests for weft's queues: several producers and consumers over every queue kind,
// bounded and unbounded, mixing the blocking, timed, nowait, try and stop_token forms, with
// task_done()/join(), and shutdown(false) or shutdown(true) in the middle of the traffic
// (CPython test_queue's test_shutdown_*_in_many_threads and BaseSimpleQueueTest's
// test_many_threads*, scaled up and made to account for every item).
//
// Every item is a unique 64-bit id. Producers record what they put successfully, consumers
// what they got, shutdown(true) what it removed; the test then proves each item put arrived
// exactly once (per-id flags, plus count, sum and xor), no item arrived that was not put,
// qsize() stayed within [0, maxsize] throughout, and every thread, blocked or not, was
// released at the end (a hang is turned into a failure by sync_helpers.hpp's 120 s
// watchdog). Counts shrink under sanitizers (WEFT_SANITIZED).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <latch>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/queue.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::make_queue;
using weft_test::scaled;
using weft_test::Threads;

template <class Kind>
class QueueStress : public ::testing::Test {};
TYPED_TEST_SUITE(QueueStress, weft_test::AllQueueKinds, weft_test::KindNames);

enum class Ending {
  drain,               // producers finish, consumers take everything (join, then shutdown)
  shutdown,            // shutdown(false) once half the items were got
  shutdown_immediate,  // shutdown(true) once half the items were got
};

struct Config {
  std::ptrdiff_t maxsize = 0;
  Ending ending = Ending::drain;
  std::size_t producers = 3;
  std::size_t consumers = 3;
  std::size_t per_producer = scaled(20000, 1500);
  // Half the puts and gets are batches (put_many, get_many in every form) of 1..8 items.
  bool batches = false;
};

// What a set of threads put or got: count, sum and xor of the ids.
struct Tally {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t bits = 0;
  void add(std::uint64_t id) {
    ++count;
    sum += id;
    bits ^= id;
  }
  void merge(const Tally& other) {
    count += other.count;
    sum += other.sum;
    bits ^= other.bits;
  }
};

// Merges per-thread tallies under a mutex-free scheme: one slot per thread.
struct Ledger {
  explicit Ledger(std::size_t producers, std::size_t per_producer)
      : producers(producers),
        per_producer(per_producer),
        put_flags(producers * per_producer),
        got_flags(producers * per_producer) {}

  static std::uint64_t id_of(std::size_t producer, std::size_t k) {
    return (static_cast<std::uint64_t>(producer + 1) << 32) | static_cast<std::uint64_t>(k);
  }
  // The flag index of an id, or -1 for an id no producer made.
  std::ptrdiff_t index_of(std::uint64_t id) const {
    const std::uint64_t p = (id >> 32);
    const std::uint64_t k = id & 0xffffffffu;
    if (p == 0 || p > producers || k >= per_producer) return -1;
    return static_cast<std::ptrdiff_t>((p - 1) * per_producer + k);
  }

  void record_put(std::uint64_t id) { put_flags[static_cast<std::size_t>(index_of(id))].store(1); }
  // Returns false for a duplicate or an id nobody made.
  bool record_got(std::uint64_t id) {
    const std::ptrdiff_t i = index_of(id);
    if (i < 0) return false;
    return got_flags[static_cast<std::size_t>(i)].fetch_add(1) == 0;
  }

  std::size_t producers;
  std::size_t per_producer;
  std::vector<std::atomic<std::uint8_t>> put_flags;
  std::vector<std::atomic<std::uint8_t>> got_flags;
};

template <class Kind>
void run_mpmc(const Config& cfg) {
  using Id = typename Kind::template ItemOf<std::uint64_t>;
  constexpr bool kTasks = Kind::kTasks;
  auto q = make_queue<Kind, Id>(cfg.maxsize);
  const std::size_t total = cfg.producers * cfg.per_producer;
  Ledger ledger(cfg.producers, cfg.per_producer);
  std::vector<Tally> put_tally(cfg.producers);
  std::vector<Tally> got_tally(cfg.consumers);
  std::atomic<std::uint64_t> got_count{0};
  std::atomic<int> bad_items{0};
  std::atomic<int> bad_sizes{0};
  std::atomic<int> task_errors{0};
  std::latch half_got(1);  // counted down by the consumer that gets item total/2
  std::stop_source never_stopped;
  // SimpleQueue has no shutdown: its consumers stop after `total` gets, by ticket.
  std::atomic<std::uint64_t> tickets{0};

  auto note_got = [&](std::size_t c, const Id& item) {
    const auto id = static_cast<std::uint64_t>(item);
    if (!ledger.record_got(id)) bad_items.fetch_add(1);
    got_tally[c].add(id);
    if (got_count.fetch_add(1) + 1 == total / 2) half_got.count_down();
    if constexpr (kTasks) {
      try {
        q.task_done();
      } catch (const std::logic_error&) {
        task_errors.fetch_add(1);
      }
    }
  };

  // A batch of ids [k, k + n): returns how many went in (each recorded); fewer than n only
  // once the queue is shut down.
  auto put_batch = [&](std::size_t p, std::size_t k, std::size_t n) -> std::size_t {
    std::vector<Id> ids;
    for (std::size_t i = 0; i < n; ++i) ids.emplace_back(Ledger::id_of(p, k + i));
    std::size_t in = 0;
    while (in < n) {
      std::size_t c = 0;
      try {
        const auto first = ids.begin() + static_cast<std::ptrdiff_t>(in);
        switch ((k / 7 + p) % 4) {
          case 0:
            c = q.put_many(first, ids.end());
            break;
          case 1:
            try {
              c = q.put_many(std::vector<Id>(first, ids.end()), 5ms);
            } catch (const weft::Full&) {
            }
            break;
          case 2:
            try {
              c = q.put_many_nowait(first, ids.end());
            } catch (const weft::Full&) {
              std::this_thread::yield();
            }
            break;
          case 3:
            c = q.put_many(std::make_move_iterator(first), std::make_move_iterator(ids.end()),
                           never_stopped.get_token());
            break;
        }
      } catch (const weft::ShutDown&) {
        break;
      }
      for (std::size_t i = in; i < in + c; ++i) {
        ledger.record_put(Ledger::id_of(p, k + i));
        put_tally[p].add(Ledger::id_of(p, k + i));
      }
      in += c;
      if constexpr (kTasks) {
        if (in < n && c == 0 && q.is_shutdown()) break;
      }
    }
    return in;
  };

  auto producer = [&](std::size_t p) {
    for (std::size_t k = 0; k < cfg.per_producer; ++k) {
      if (cfg.batches && (k + p) % 2 == 0) {
        const std::size_t n = std::min<std::size_t>(1 + k % 8, cfg.per_producer - k);
        if (put_batch(p, k, n) < n) return;  // shut down
        k += n - 1;
        continue;
      }
      const std::uint64_t id = Ledger::id_of(p, k);
      // Put once, with the form this k picks; retry the non-blocking forms while full. A
      // put is counted only when its call reports success.
      bool put = false;
      bool refused = false;  // shut down: no later put can succeed
      while (!put && !refused) {
        try {
          switch ((k + p) % 6) {
            case 0:
              q.put(Id(id));
              put = true;
              break;
            case 1:
              try {
                q.put(Id(id), 5ms);
                put = true;
              } catch (const weft::Full&) {
              }
              break;
            case 2:
              try {
                q.put_nowait(Id(id));
                put = true;
              } catch (const weft::Full&) {
                std::this_thread::yield();
              }
              break;
            case 3:
              put = q.try_put(Id(id));
              if (!put) std::this_thread::yield();
              break;
            case 4:
              put = q.try_put(Id(id), 5ms);
              break;
            case 5:
              q.put(Id(id), never_stopped.get_token());
              put = true;
              break;
          }
        } catch (const weft::ShutDown&) {
          refused = true;
        }
        if constexpr (kTasks) {
          if (!put && q.is_shutdown()) refused = true;
        }
      }
      if (!put) return;
      ledger.record_put(id);
      put_tally[p].add(id);
    }
  };

  auto consumer = [&](std::size_t c) {
    if constexpr (kTasks) {
      if (c == 0) {  // one consumer uses consume(): it ends at shutdown + drained
        for (auto item : q.consume()) note_got(c, item);
        return;
      }
    }
    for (std::size_t n = c;; ++n) {
      if (cfg.batches && (n % 2 == 0 || !kTasks)) {
        // A batch: the timed and nowait forms only for SimpleQueue (no shutdown ends a
        // blocked get_many there: its consumers stop once every item was got).
        if constexpr (!kTasks) {
          if (got_count.load() >= total) return;
        }
        const std::size_t max = 1 + n % 8;
        std::vector<Id> got;
        bool was_shut = false;
        if constexpr (kTasks) was_shut = q.is_shutdown();
        try {
          switch ((n / 2) % (kTasks ? 4 : 2)) {
            case 0:
              try {
                (void)q.get_many(got, max, 5ms);
              } catch (const weft::Empty&) {
              }
              break;
            case 1:
              try {
                got = q.get_many_nowait(max);
              } catch (const weft::Empty&) {
                std::this_thread::yield();
              }
              break;
            case 2:
              got = q.get_many(max);
              break;
            case 3:
              got = q.get_many(max, never_stopped.get_token());
              break;
          }
        } catch (const weft::ShutDown&) {
          return;  // shut down and drained
        }
        if (got.size() > max) bad_items.fetch_add(1);
        for (const Id& item : got) note_got(c, item);
        if (got.empty() && was_shut) return;
        continue;
      }
      if constexpr (!kTasks) {
        if (tickets.fetch_add(1) >= total) return;
      }
      // Get one item with the form n picks; the non-blocking forms retry until they get one
      // or see the queue shut down and empty.
      for (;;) {
        bool was_shut = false;
        if constexpr (kTasks) was_shut = q.is_shutdown();
        std::optional<Id> item;
        try {
          switch (n % 6) {
            case 0:
              item.emplace(q.get());
              break;
            case 1:
              try {
                item.emplace(q.get(5ms));
              } catch (const weft::Empty&) {
              }
              break;
            case 2:
              try {
                item.emplace(q.get_nowait());
              } catch (const weft::Empty&) {
                std::this_thread::yield();
              }
              break;
            case 3:
              item = q.try_get();
              if (!item) std::this_thread::yield();
              break;
            case 4:
              item = q.try_get(5ms);
              break;
            case 5:
              item.emplace(q.get(never_stopped.get_token()));
              break;
          }
        } catch (const weft::ShutDown&) {
          return;  // shut down and drained
        }
        if (item) {
          note_got(c, *item);
          break;
        }
        if (was_shut) return;  // empty after the shutdown: drained
      }
    }
  };

  // Checks qsize() against [0, maxsize] while the traffic runs. (A negative size would
  // wrap around to a huge std::size_t: `<= total` catches it.)
  std::atomic<bool> observing{true};
  auto observer = [&](std::size_t) {
    while (observing.load()) {
      const std::size_t size = q.qsize();
      if (size > total || (cfg.maxsize > 0 && size > static_cast<std::size_t>(cfg.maxsize))) {
        bad_sizes.fetch_add(1);
      }
      std::this_thread::yield();
    }
  };

  std::vector<std::uint64_t> removed;  // by shutdown(true)
  {
    Threads observers(1, observer);
    Threads consumers(cfg.consumers, consumer);
    std::latch producers_done(1);
    // Joiners: wait in join() while the traffic runs. They start when every producer is
    // done (drain) or at half time (shutdown), so that join() has tasks to wait for.
    std::atomic<int> joined{0};
    Threads joiners(kTasks ? 2 : 0, [&](std::size_t i) {
      if constexpr (kTasks) {
        if (cfg.ending == Ending::drain) {
          producers_done.wait();
        } else {
          half_got.wait();
        }
        if (i == 0) {
          q.join();
        } else {
          while (!q.join(50ms)) {
          }
        }
        joined.fetch_add(1);
      }
    });
    {
      Threads producers(cfg.producers, producer);
      if (cfg.ending != Ending::drain) {
        half_got.wait();
        if constexpr (kTasks) {
          auto out = q.shutdown(cfg.ending == Ending::shutdown_immediate);
          for (const Id& item : out) removed.push_back(static_cast<std::uint64_t>(item));
        }
      }
    }
    producers_done.count_down();
    if constexpr (kTasks) {
      if (cfg.ending == Ending::drain) {
        q.join();  // every item put was got and task_done()
        EXPECT_EQ(q.qsize(), 0u);
        (void)q.shutdown();  // ends the consumers (blocked ones included)
      }
    }
    consumers.join();
    joiners.join();
    observing = false;
    observers.join();
    if constexpr (kTasks) {
      EXPECT_EQ(joined.load(), 2);
    }
  }

  // Whatever is left (nothing, if the consumers drained as they should).
  std::vector<std::uint64_t> leftover;
  while (auto item = q.try_get()) leftover.push_back(static_cast<std::uint64_t>(*item));
  EXPECT_TRUE(leftover.empty()) << leftover.size() << " items never got";

  Tally put_all, got_all;
  for (const Tally& t : put_tally) put_all.merge(t);
  for (const Tally& t : got_tally) got_all.merge(t);
  for (std::uint64_t id : removed) {
    if (!ledger.record_got(id)) bad_items.fetch_add(1);
    got_all.add(id);
  }
  for (std::uint64_t id : leftover) {
    if (!ledger.record_got(id)) bad_items.fetch_add(1);
    got_all.add(id);
  }

  EXPECT_EQ(bad_items.load(), 0) << "duplicated or invented items";
  EXPECT_EQ(bad_sizes.load(), 0) << "qsize() outside [0, maxsize]";
  EXPECT_EQ(task_errors.load(), 0) << "task_done() refused for an item got";
  EXPECT_EQ(got_all.count, put_all.count);
  EXPECT_EQ(got_all.sum, put_all.sum);
  EXPECT_EQ(got_all.bits, put_all.bits);
  std::size_t mismatched = 0;
  for (std::size_t i = 0; i < total; ++i) {
    if (ledger.put_flags[i].load() != ledger.got_flags[i].load()) ++mismatched;
  }
  EXPECT_EQ(mismatched, 0u) << "items put and never got, or got and never put";
  if (cfg.ending == Ending::drain) {
    EXPECT_EQ(put_all.count, total) << "every put must succeed when nobody shuts down";
  } else {
    EXPECT_GE(got_all.count, total / 2);
  }
  if constexpr (kTasks) {
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_TRUE(q.join(0s));
  }
  EXPECT_EQ(q.qsize(), 0u);
}

TYPED_TEST(QueueStress, Unbounded) {
  run_mpmc<TypeParam>({.maxsize = 0});
}

TYPED_TEST(QueueStress, Bounded) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue is unbounded";
  } else {
    run_mpmc<TypeParam>({.maxsize = 8});
  }
}

TYPED_TEST(QueueStress, BoundedToOne) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue is unbounded";
  } else {
    run_mpmc<TypeParam>({.maxsize = 1, .per_producer = scaled(5000, 500)});
  }
}

TYPED_TEST(QueueStress, ManyThreadsSmallQueue) {
  if constexpr (!TypeParam::kTasks) {
    run_mpmc<TypeParam>(
        {.maxsize = 0, .producers = 8, .consumers = 8, .per_producer = scaled(3000, 300)});
  } else {
    run_mpmc<TypeParam>(
        {.maxsize = 2, .producers = 8, .consumers = 8, .per_producer = scaled(3000, 300)});
  }
}

TYPED_TEST(QueueStress, ShutdownMidwayUnbounded) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    run_mpmc<TypeParam>({.maxsize = 0, .ending = Ending::shutdown});
  }
}

TYPED_TEST(QueueStress, ShutdownMidwayBounded) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    run_mpmc<TypeParam>({.maxsize = 4, .ending = Ending::shutdown});
  }
}

TYPED_TEST(QueueStress, ShutdownImmediateMidwayUnbounded) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    run_mpmc<TypeParam>({.maxsize = 0, .ending = Ending::shutdown_immediate});
  }
}

TYPED_TEST(QueueStress, ShutdownImmediateMidwayBounded) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    run_mpmc<TypeParam>({.maxsize = 4, .ending = Ending::shutdown_immediate});
  }
}

// put_many and get_many mixed with the single-item forms: every item exactly once.
TYPED_TEST(QueueStress, BatchesMixedWithSingles) {
  run_mpmc<TypeParam>({.maxsize = TypeParam::kTasks ? 16 : 0, .batches = true});
}

TYPED_TEST(QueueStress, BatchesWithShutdownImmediateMidway) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    run_mpmc<TypeParam>({.maxsize = 8, .ending = Ending::shutdown_immediate, .batches = true});
  }
}

// Many rounds of a short burst ending in shutdown, with threads parked in every blocking
// form at the moment of the shutdown: each round must release all of them (a lost wake-up
// hangs a round, and the watchdog fails the test).
TYPED_TEST(QueueStress, ShutdownReleasesEveryBlockedThread) {
  if constexpr (!TypeParam::kTasks) {
    GTEST_SKIP() << "SimpleQueue has no shutdown";
  } else {
    using Item = typename TypeParam::Item;
    const std::size_t rounds = scaled(300, 40);
    for (std::size_t round = 0; round < rounds; ++round) {
      auto q = make_queue<TypeParam>(2);
      std::atomic<int> got{0}, put{0}, refused{0};
      std::stop_source never_stopped;
      std::size_t removed = 0;
      // Each round leaves some threads blocked at the shutdown: more puts than the gets
      // and the room can take, more gets than puts, or (balanced) only the stragglers.
      const int gets_each = round % 3 == 0 ? 2 : 3;
      const int puts_each = round % 3 == 1 ? 2 : 3;
      {
        // 6 getters and 6 putters over the three blocking forms.
        Threads threads(12, [&](std::size_t i) {
          const bool getter = i % 2 == 0;
          for (int n = 0; n < (getter ? gets_each : puts_each); ++n) {
            try {
              if (getter) {
                switch ((i / 2) % 3) {
                  case 0:
                    (void)q.get();
                    break;
                  case 1:
                    (void)q.get(1h);
                    break;
                  case 2:
                    (void)q.get(never_stopped.get_token());
                    break;
                }
                q.task_done();
                got.fetch_add(1);
              } else {
                switch ((i / 2) % 3) {
                  case 0:
                    q.put(Item(n));
                    break;
                  case 1:
                    q.put(Item(n), 1h);
                    break;
                  case 2:
                    q.put(Item(n), never_stopped.get_token());
                    break;
                }
                put.fetch_add(1);
              }
            } catch (const weft::ShutDown&) {
              refused.fetch_add(1);
              return;
            }
          }
        });
        // Sometimes at once, sometimes once the traffic has settled into blocked threads.
        if (round % 2 == 1) {
          ASSERT_TRUE(weft_test::eventually([&] { return got.load() + put.load() >= 10; }));
        }
        removed = q.shutdown(round % 4 >= 2).size();
      }  // joins every thread: a thread left blocked hangs here
      EXPECT_LE(got.load(), put.load());
      std::size_t left = 0;
      while (q.try_get()) {
        ++left;
        q.task_done();
      }
      EXPECT_LE(left + removed, 2u);
      EXPECT_EQ(static_cast<std::size_t>(got.load()) + left + removed,
                static_cast<std::size_t>(put.load()))
          << "round " << round << ": an item was lost or duplicated";
      EXPECT_TRUE(q.join(0s));
    }
  }
}

// ---- the segment list's boundaries ------------------------------------------------------
// The unbounded configurations again over segments of 3 and of 1 slot (queue_kinds.hpp's
// SegmentQueue): a segment hand-over (and a retirement) every few items or at every item,
// raced by every form, batches and both shutdowns. The default segments
// (segment_slots<T>(): 255 slots for an int) are QueueStress's Queue and SimpleQueue.
template <class Kind>
class SegmentStress : public ::testing::Test {};
using SegmentKinds =
    ::testing::Types<weft_test::FifoSegmentsKind<3>, weft_test::FifoSegmentsKind<1>>;
TYPED_TEST_SUITE(SegmentStress, SegmentKinds, weft_test::KindNames);

TYPED_TEST(SegmentStress, Unbounded) {
  run_mpmc<TypeParam>({.maxsize = 0});
}
TYPED_TEST(SegmentStress, ManyThreads) {
  run_mpmc<TypeParam>(
      {.maxsize = 0, .producers = 8, .consumers = 8, .per_producer = scaled(3000, 300)});
}
TYPED_TEST(SegmentStress, ShutdownMidway) {
  run_mpmc<TypeParam>({.maxsize = 0, .ending = Ending::shutdown});
}
TYPED_TEST(SegmentStress, ShutdownImmediateMidway) {
  run_mpmc<TypeParam>({.maxsize = 0, .ending = Ending::shutdown_immediate});
}
TYPED_TEST(SegmentStress, BatchesMixedWithSingles) {
  run_mpmc<TypeParam>({.maxsize = 0, .batches = true});
}
TYPED_TEST(SegmentStress, BatchesWithShutdownImmediateMidway) {
  run_mpmc<TypeParam>({.maxsize = 0, .ending = Ending::shutdown_immediate, .batches = true});
}

}  // namespace
