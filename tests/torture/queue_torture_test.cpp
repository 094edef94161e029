// SPDX-License-Identifier: MIT
// Torture: long mixed workloads over every queue kind. Producers put with every put form
// (blocking, timed, nowait, try, stop_token) and put_many, consumers get with every get form,
// get_many and select (of a get or a get_many),
// a joiner waits in join() (timed, untimed, cancellable), a canceller fires stop requests at
// random workers, and the main thread shuts the queue down in the middle (shutdown(false) or
// shutdown(true), alternately). Every item is accounted for: each id is got exactly once,
// removed by shutdown(true), or still held by its producer (whose put failed), checked by
// per-id flags, a count, a sum and an xor of a hash of the ids. Every blocked thread is
// released at the end (the watchdog of sync_helpers.hpp turns a lost wake-up into a failure).
//
// Counts shrink under sanitizers; WEFT_TORTURE_SCALE=<k> runs k times more items.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "figures.hpp"
#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/weft.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::Threads;

constexpr int kProducers = 3;
constexpr int kConsumers = 3;
constexpr int kIdBits = 24;

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// count, sum and xor of mix(id): two multisets of ids with equal Tally are equal with
// overwhelming probability; the per-id flags make it exact.
struct Tally {
  std::uint64_t count = 0, sum = 0, xr = 0;
  void add(int id) {
    const std::uint64_t h = mix(static_cast<std::uint64_t>(id));
    ++count;
    sum += h;
    xr ^= h;
  }
  void add(const Tally& o) {
    count += o.count;
    sum += o.sum;
    xr ^= o.xr;
  }
  friend bool operator==(const Tally&, const Tally&) = default;
};

// A stop_source per worker that the canceller may fire at any time; the worker takes a fresh
// one once its current one has fired.
class Cancellable {
 public:
  std::stop_token token() {
    std::lock_guard<std::mutex> g(m_);
    if (src_.stop_requested()) src_ = std::stop_source();
    return src_.get_token();
  }
  void fire() {
    std::stop_source s;
    {
      std::lock_guard<std::mutex> g(m_);
      s = src_;
    }
    s.request_stop();
  }

 private:
  std::mutex m_;
  std::stop_source src_;
};

template <class Kind>
class QueueTorture : public ::testing::Test {};
TYPED_TEST_SUITE(QueueTorture, weft_test::AllQueueKinds, weft_test::KindNames);

TYPED_TEST(QueueTorture, MixedWorkloadLosesNothing) {
  using Item = typename TypeParam::Item;
  constexpr bool kTasks = TypeParam::kTasks;
  const long quota = weft_test::scaled_count(static_cast<long>(weft_test::scaled(30000, 1500)));
  ASSERT_LT(quota, 1L << kIdBits);
  long items_moved = 0, puts_failed = 0, gets_failed = 0, stops_fired = 0;
  std::atomic<long> batch_puts{0}, batch_gets{0};  // items through put_many / get_many

  for (int round = 0; round < 4; ++round) {
    const bool immediate = round % 2 == 1;
    const std::ptrdiff_t maxsize = round < 2 ? 4 : 0;  // bounded, then unbounded
    SCOPED_TRACE(::testing::Message() << "round " << round << ", maxsize " << maxsize
                                      << (immediate ? ", shutdown(true)" : ", shutdown(false)"));
    auto q = weft_test::new_queue<TypeParam>(maxsize);
    const long total = kProducers * quota;
    std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(total));
    auto index_of = [&](int id) {
      return static_cast<std::size_t>((id >> kIdBits) * quota + (id & ((1 << kIdBits) - 1)));
    };
    std::vector<Tally> put_ok(kProducers), kept(kProducers), got(kConsumers);
    std::atomic<long> consumed{0}, failed_puts{0}, failed_gets{0};
    std::atomic<bool> producers_done_flag{false};
    std::atomic<int> producers_left{kProducers};
    std::atomic<bool> end{false};
    std::vector<Cancellable> cancel(kProducers + kConsumers + 1);
    std::atomic<int> poison_got{0};

    // Producers: kProducers, then consumers, then the joiner, then the canceller.
    const std::size_t joiner = kProducers + kConsumers;
    Threads workers(kProducers + kConsumers + 2, [&](std::size_t w) {
      std::mt19937 rng(static_cast<unsigned>(static_cast<std::size_t>(round) * 101 + w));
      if (w < kProducers) {
        const int p = static_cast<int>(w);
        long seq = 0;
        std::optional<Item> item;
        bool shut = false;
        while (seq < quota && !shut) {
          const int id = (p << kIdBits) | static_cast<int>(seq);
          const auto timeout = std::chrono::microseconds(rng() % 200);
          const unsigned op = rng() % 10;
          if (op >= 8 && !item) {
            // A batch of the next 1..5 ids: the items put are the first n; the rest stay
            // with us, not moved from, as does the whole batch when put_many throws.
            const long b = std::min<long>(1 + static_cast<long>(rng() % 5), quota - seq);
            std::vector<Item> batch;
            for (long k = 0; k < b; ++k) batch.emplace_back(id + static_cast<int>(k));
            auto first = std::make_move_iterator(batch.begin());
            auto last = std::make_move_iterator(batch.end());
            std::size_t n = 0;
            try {
              switch (rng() % 4) {
                case 0:
                  n = q->put_many(first, last);
                  break;
                case 1:
                  n = q->put_many(first, last, timeout);
                  break;
                case 2:
                  n = q->put_many_nowait(first, last);
                  break;
                default:
                  n = q->put_many(first, last, cancel[w].token());
                  break;
              }
            } catch (const weft::Full&) {
            } catch (const weft::Cancelled&) {
            } catch (const weft::ShutDown&) {
              shut = true;
            }
            EXPECT_LE(n, batch.size());
            for (std::size_t k = n; k < batch.size(); ++k) {
              EXPECT_EQ(static_cast<int>(batch[k]), id + static_cast<int>(k))
                  << "put_many took an item it did not count";
            }
            for (std::size_t k = 0; k < n; ++k) put_ok[w].add(id + static_cast<int>(k));
            seq += static_cast<long>(n);
            batch_puts += static_cast<long>(n);
            if (n == 0) failed_puts.fetch_add(1, std::memory_order_relaxed);
            if (n < batch.size()) {
              if constexpr (kTasks) {
                if (q->is_shutdown()) shut = true;
              }
            }
            continue;
          }
          if (!item) item.emplace(id);
          bool ok = false;
          try {
            switch (op % 8) {
              case 0:
                q->put(std::move(*item));
                ok = true;
                break;
              case 1:
                q->put(std::move(*item), timeout);
                ok = true;
                break;
              case 2:
                q->put_nowait(std::move(*item));
                ok = true;
                break;
              case 3:
                ok = q->try_put(std::move(*item));
                break;
              case 4:
                ok = q->try_put(std::move(*item), timeout);
                break;
              case 5:
                q->put(std::move(*item), cancel[w].token());
                ok = true;
                break;
              case 6:
                ok = q->try_put(std::move(*item), cancel[w].token());
                break;
              default:
                q->put(std::move(*item), 1ms, cancel[w].token());
                ok = true;
                break;
            }
          } catch (const weft::Full&) {
          } catch (const weft::Cancelled&) {
          } catch (const weft::ShutDown&) {
            shut = true;
          }
          if (ok) {
            put_ok[w].add(id);
            item.reset();
            ++seq;
            continue;
          }
          // The failed put left the item with us, untouched.
          EXPECT_EQ(static_cast<int>(*item), id) << "a failed put took the item";
          failed_puts.fetch_add(1, std::memory_order_relaxed);
          if constexpr (kTasks) {
            if (q->is_shutdown()) shut = true;
          }
        }
        for (; seq < quota; ++seq) kept[w].add((p << kIdBits) | static_cast<int>(seq));
        if (--producers_left == 0) producers_done_flag = true;
      } else if (w < joiner) {
        const std::size_t c = w - kProducers;
        // One item got: false once this consumer took its end marker (SimpleQueue).
        auto take = [&](Item&& item) {
          const int id = static_cast<int>(item);
          if (id < 0) {  // SimpleQueue's end marker
            ++poison_got;
            return false;
          }
          EXPECT_EQ(seen[index_of(id)].fetch_add(1), 0) << "item " << id << " got twice";
          got[c].add(id);
          consumed.fetch_add(1, std::memory_order_relaxed);
          if constexpr (kTasks) q->task_done();
          return true;
        };
        for (;;) {
          std::optional<Item> item;
          std::vector<Item> many;
          bool shut = false;
          const auto timeout = std::chrono::microseconds(rng() % 200);
          const std::size_t n = 1 + rng() % 4;
          try {
            switch (rng() % 12) {
              case 0:
                item.emplace(q->get());
                break;
              case 1:
                item.emplace(q->get(timeout));
                break;
              case 2:
                item.emplace(q->get_nowait());
                break;
              case 3:
                item = q->try_get();
                break;
              case 4:
                item = q->try_get(timeout);
                break;
              case 5:
                item.emplace(q->get(cancel[w].token()));
                break;
              case 6:
                item = q->try_get(cancel[w].token());
                break;
              case 7:
                item.emplace(q->get(1ms, cancel[w].token()));
                break;
              case 8: {
                auto r = weft::select_for(timeout, cancel[w].token(), weft::get(*q));
                if (r) {
                  auto& got_item = std::get<0>(*r);
                  if (got_item) {
                    item.emplace(std::move(*got_item));
                  } else {
                    shut = true;
                  }
                }
                break;
              }
              case 9:
                many = q->get_many(n, timeout);
                break;
              case 10:
                (void)q->get_many(many, n, cancel[w].token());
                break;
              default: {
                auto r = weft::select_for(timeout, cancel[w].token(), weft::get_many(*q, n));
                if (r) {
                  many = std::move(std::get<0>(*r));
                  if (many.empty()) shut = true;  // shut down and drained
                }
                break;
              }
            }
          } catch (const weft::Empty&) {
          } catch (const weft::Cancelled&) {
          } catch (const weft::ShutDown&) {
            shut = true;
          }
          if (item) {
            if (!take(std::move(*item))) return;
            continue;
          }
          if (!many.empty()) {
            EXPECT_LE(many.size(), n);
            batch_gets += static_cast<long>(many.size());
            bool ended = false;
            for (Item& i : many) {
              if (!ended) {
                ended = !take(std::move(i));
              } else {
                // A second end marker in one batch belongs to another consumer: back it goes.
                EXPECT_LT(static_cast<int>(i), 0) << "an item after the end marker";
                q->put(std::move(i));
              }
            }
            if (ended) return;
            continue;
          }
          failed_gets.fetch_add(1, std::memory_order_relaxed);
          if (shut) return;
          if constexpr (!kTasks) {
            if (end.load()) return;
          }
        }
      } else if (w == joiner) {
        if constexpr (kTasks) {
          while (!end.load()) {
            switch (rng() % 3) {
              case 0:
                (void)q->join(std::chrono::microseconds(rng() % 500));
                break;
              case 1:
                (void)q->join(std::chrono::microseconds(rng() % 500), cancel[w].token());
                break;
              default:
                try {
                  q->join(cancel[w].token());
                } catch (const weft::Cancelled&) {
                }
                break;
            }
          }
          q->join();  // every task is done by now: must return
        }
      } else {  // the canceller
        long fired = 0;
        while (!end.load()) {
          cancel[rng() % cancel.size()].fire();
          ++fired;
          std::this_thread::sleep_for(std::chrono::microseconds(50 + rng() % 200));  // pacing only
        }
        stops_fired += fired;
      }
    });

    std::vector<Item> removed;
    if constexpr (kTasks) {
      // Shut down in the middle: once half the items went through.
      EXPECT_TRUE(weft_test::eventually([&] { return consumed.load() >= total / 2; }));
      removed = q->shutdown(immediate);
      if (!immediate) {
        EXPECT_TRUE(removed.empty());
      }
      // Consumers end on ShutDown once the queue is drained; producers on ShutDown.
      EXPECT_TRUE(weft_test::eventually([&] {
        for (std::size_t w = 0; w < joiner; ++w) {
          if (!workers.finished(w)) return false;
        }
        return true;
      }));
      end = true;
    } else {
      EXPECT_TRUE(weft_test::eventually([&] { return producers_done_flag.load(); }));
      EXPECT_TRUE(weft_test::eventually([&] { return consumed.load() == total; }));
      end = true;
      // Consumers blocked in get() are released by one end marker each.
      for (int c = 0; c < kConsumers; ++c) q->put(Item(-1));
    }
    workers.join();

    Tally all_put, all_kept, all_got, all_removed;
    for (const auto& t : put_ok) all_put.add(t);
    for (const auto& t : kept) all_kept.add(t);
    for (const auto& t : got) all_got.add(t);
    for (const Item& item : removed) {
      const int id = static_cast<int>(item);
      EXPECT_EQ(seen[index_of(id)].fetch_add(1), 0) << "item " << id << " got and removed";
      all_removed.add(id);
    }
    Tally delivered = all_got;
    delivered.add(all_removed);
    EXPECT_EQ(delivered, all_put) << "items put were not got or removed exactly once";
    Tally generated;
    for (int p = 0; p < kProducers; ++p) {
      for (long s = 0; s < quota; ++s) generated.add((p << kIdBits) | static_cast<int>(s));
    }
    Tally accounted = all_put;
    accounted.add(all_kept);
    EXPECT_EQ(accounted, generated) << "items neither put nor kept by their producer";
    std::size_t seen_once = 0;
    for (auto& s : seen) seen_once += s.load() == 1 ? 1 : 0;
    EXPECT_EQ(seen_once, all_put.count);
    if constexpr (kTasks) {
      EXPECT_EQ(q->qsize(), 0u);
      EXPECT_EQ(q->unfinished_tasks(), 0u);
    } else {
      // End markers no consumer took are still queued, nothing else.
      int left = 0;
      while (auto item = q->try_get()) {
        EXPECT_EQ(static_cast<int>(*item), -1);
        ++left;
      }
      EXPECT_EQ(left + poison_got.load(), kConsumers);
    }
    items_moved += static_cast<long>(delivered.count);
    puts_failed += failed_puts.load();
    gets_failed += failed_gets.load();
    if (::testing::Test::HasFailure()) break;
  }
  weft_test::report_figure("torture_items_moved", items_moved);
  weft_test::report_figure("torture_failed_puts", puts_failed);
  weft_test::report_figure("torture_failed_gets", gets_failed);
  weft_test::report_figure("torture_stops_fired", stops_fired);
  weft_test::report_figure("torture_batch_puts", batch_puts.load());
  weft_test::report_figure("torture_batch_gets", batch_gets.load());
  // The batch paths ran (a fifth of the operations pick one; 0 means they were skipped).
  EXPECT_GT(batch_puts.load(), 0);
  EXPECT_GT(batch_gets.load(), 0);
}

}  // namespace
