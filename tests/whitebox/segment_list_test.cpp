// SPDX-License-Identifier: MIT
// The segment list (detail/segment_list.hpp), the storage of an unbounded Queue and
// SimpleQueue of a nothrow-movable T, at its boundaries: items in order and qsize() exact
// across segment hand-overs, move-only items, batches that span segments, shutdown(true)
// over several segments, the destructor, recycling (a steady state allocates no segment, a
// drained queue keeps at most three) and per-producer order under racing producers and
// consumers; get_many's cost; which items get the list. Segments of 1, 3, 31 and the
// default slots (255 for int; queue_kinds.hpp's SegmentQueue).
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "queue_kinds.hpp"
#include "sync_helpers.hpp"
#include "weft/queue.hpp"

namespace {

using weft_test::scaled;
using weft_test::SegmentQueue;
using weft_test::Threads;

template <class Q>
class SegmentList : public ::testing::Test {};
using Queues = ::testing::Types<SegmentQueue<int, 1>, SegmentQueue<int, 3>, SegmentQueue<int, 31>,
                                SegmentQueue<int, weft::detail::segment_slots<int>()>>;
TYPED_TEST_SUITE(SegmentList, Queues);

// A drained queue keeps its head segment and at most two spares.
constexpr std::size_t kDrainedSegments = 3;

TYPED_TEST(SegmentList, OrderAndExactSizeAcrossSegments) {
  TypeParam q;
  ASSERT_GT(q.segments_allocated(), 0u) << "an unbounded Queue of int must use the list";
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) {
      q.put(int{i});
      ASSERT_EQ(q.qsize(), static_cast<std::size_t>(i + 1));
    }
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(q.get_nowait(), i);
      ASSERT_EQ(q.qsize(), static_cast<std::size_t>(99 - i));
    }
    EXPECT_TRUE(q.empty());
    EXPECT_THROW((void)q.get_nowait(), weft::Empty);
    EXPECT_LE(q.segments_allocated(), kDrainedSegments);
  }
  EXPECT_EQ(q.unfinished_tasks(), 300u);
}

TYPED_TEST(SegmentList, BatchesSpanSegments) {
  TypeParam q;
  std::vector<int> in(200);
  std::iota(in.begin(), in.end(), 0);
  EXPECT_EQ(q.put_many(in), in.size());
  EXPECT_EQ(q.qsize(), in.size());
  std::vector<int> out;
  while (out.size() < in.size()) {
    const std::vector<int> batch = q.get_many_nowait(37);
    ASSERT_FALSE(batch.empty());
    ASSERT_LE(batch.size(), 37u);
    out.insert(out.end(), batch.begin(), batch.end());
    EXPECT_EQ(q.qsize(), in.size() - out.size());
  }
  EXPECT_EQ(out, in);
  // Into an output iterator (a pointer), from a position in the middle of a segment.
  q.put(-1);
  EXPECT_EQ(q.get_nowait(), -1);
  EXPECT_EQ(q.put_many(in.begin(), in.begin() + 50), 50u);
  std::vector<int> dest(50, -1);
  std::size_t got = 0;
  while (got < 50) got += q.get_many_nowait(dest.data() + got, 50 - got);
  EXPECT_EQ(dest, std::vector<int>(in.begin(), in.begin() + 50));
  EXPECT_LE(q.segments_allocated(), kDrainedSegments);
}

TYPED_TEST(SegmentList, ShutdownImmediateTakesEverySegmentInOrder) {
  TypeParam q;
  for (int i = 0; i < 100; ++i) q.put(int{i});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q.get(), i);
  for (int i = 0; i < 10; ++i) q.task_done();
  const std::vector<int> removed = q.shutdown(true);
  std::vector<int> expected(90);
  std::iota(expected.begin(), expected.end(), 10);
  EXPECT_EQ(removed, expected);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_THROW(q.put(1), weft::ShutDown);
  EXPECT_THROW((void)q.get(), weft::ShutDown);
  EXPECT_THROW(q.put_many(expected), weft::ShutDown);  // nothing went in
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_LE(q.segments_allocated(), kDrainedSegments);
}

// An item that counts its moves (nothrow, so that the queue uses the list).
struct Counted {
  static inline std::size_t moves = 0;
  int v = 0;
  explicit Counted(int x) noexcept : v(x) {}
  Counted(Counted&& o) noexcept : v(o.v) { ++moves; }
  Counted& operator=(Counted&& o) noexcept {
    v = o.v;
    ++moves;
    return *this;
  }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  ~Counted() = default;
};

// get_many into a vector reserves once for what is queued: each item moves once into the
// vector, not again at every segment's run (a reserve per run moved the vector's contents
// each time: quadratic in the batch).
TEST(SegmentListItems, GetManyMovesEachItemOnce) {
  SegmentQueue<Counted, 3> q;
  constexpr int kItems = 600;  // 200 segments
  for (int i = 0; i < kItems; ++i) q.put(Counted{i});
  Counted::moves = 0;
  std::vector<Counted> out = q.get_many(kItems);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)].v, i);
  EXPECT_LE(Counted::moves, 2u * kItems);
}

// Segments of about 4 KiB: many small items per segment, the locked deque for large items.
TEST(SegmentListItems, SegmentSizeFollowsTheItem) {
  using weft::detail::segment_slots;
  static_assert(segment_slots<char>() == 255);
  static_assert(segment_slots<std::uint64_t>() == 255);
  static_assert(segment_slots<std::array<std::byte, 24>>() == 127);
  static_assert(segment_slots<std::array<std::byte, 500>>() == 7);
  static_assert(segment_slots<std::array<std::byte, 600>>() == 0);
  SegmentQueue<std::uint64_t, segment_slots<std::uint64_t>()> small;
  EXPECT_EQ(small.segments_allocated(), 1u);
  // 64 KiB items: the locked deque, which allocates nothing up front.
  using Big = std::array<std::byte, 65536>;
  SegmentQueue<Big, segment_slots<Big>()> big;
  EXPECT_EQ(big.segments_allocated(), 0u);
  auto item = std::make_unique<Big>();
  big.put(Big(*item));
  EXPECT_EQ(big.qsize(), 1u);
  (void)big.get();
}

TEST(SegmentListItems, MoveOnlyItemsAndTheDestructor) {
  auto owner = std::make_shared<int>(7);
  {
    SegmentQueue<std::shared_ptr<int>, 3> q;
    for (int i = 0; i < 50; ++i) q.put(std::shared_ptr<int>(owner));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(*q.get(), 7);
    EXPECT_EQ(owner.use_count(), 31);
  }  // the destructor destroys the 30 items left, over several segments
  EXPECT_EQ(owner.use_count(), 1);

  weft::SimpleQueue<std::unique_ptr<int>> sq;
  for (int i = 0; i < 100; ++i) sq.put(std::make_unique<int>(i));
  std::vector<std::unique_ptr<int>> out = sq.get_many(64);
  ASSERT_EQ(out.size(), 64u);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(*out[static_cast<std::size_t>(i)], i);
  for (int i = 64; i < 100; ++i) EXPECT_EQ(*sq.get(), i);
}

// Recycling: a queue that never holds more than a segment's worth allocates nothing after
// its first round; one that grew gives back all but kDrainedSegments when drained.
TYPED_TEST(SegmentList, SteadyStateAllocatesNoSegment) {
  TypeParam q;
  // Past two segment ends: a retired segment is a spare.
  for (std::size_t i = 0; i < 2 * TypeParam::kSlots + 2; ++i) {
    q.put(static_cast<int>(i));
    (void)q.get();
  }
  const std::size_t warm = q.segments_allocated();
  EXPECT_LE(warm, kDrainedSegments);
  for (int i = 0; i < 10000; ++i) {
    q.put(int{i});
    ASSERT_EQ(q.get(), i);
    ASSERT_EQ(q.segments_allocated(), warm);
  }
  for (int burst = 0; burst < 50; ++burst) {
    for (int i = 0; i < 1000; ++i) q.put(int{i});
    EXPECT_GE(q.segments_allocated(), (1000 + TypeParam::kSlots - 1) / TypeParam::kSlots);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.get(), i);
    ASSERT_LE(q.segments_allocated(), kDrainedSegments);
  }
}

// Two producers (batches and single puts) and two consumers (get_many, get) over tiny
// segments, ended by shutdown(): each consumer sees each producer's items in order, every
// item arrives once, and the drained queue keeps at most kDrainedSegments.
TYPED_TEST(SegmentList, PerProducerOrderUnderRaces) {
  TypeParam q;
  const int per = static_cast<int>(scaled(50000, 5000));
  std::vector<std::vector<int>> got(2);
  std::latch producers_done(2);
  {
    Threads threads(5, [&](std::size_t i) {
      if (i < 2) {
        const int base = static_cast<int>(i) * per;
        for (int k = 0; k < per; k += 5) {
          std::vector<int> five;
          for (int j = k; j < k + 5 && j < per; ++j) five.push_back(base + j);
          if (k % 10 == 0) {
            q.put_many(five);
          } else {
            for (int v : five) q.put(int{v});
          }
        }
        producers_done.count_down();
      } else if (i < 4) {
        auto& mine = got[i - 2];
        try {
          for (;;) {
            if (i == 2) {
              const std::vector<int> batch = q.get_many(4);
              mine.insert(mine.end(), batch.begin(), batch.end());
            } else {
              mine.push_back(q.get());
            }
          }
        } catch (const weft::ShutDown&) {
        }
      } else {
        producers_done.wait();  // wakes when both producers have put everything
        q.shutdown();
      }
    });
  }
  std::vector<int> seen(static_cast<std::size_t>(2 * per), 0);
  for (const auto& mine : got) {
    int last[2] = {-1, -1};
    for (int v : mine) {
      const int p = v / per;
      ASSERT_GT(v, last[p]) << "producer " << p << "'s items out of order";
      last[p] = v;
      ++seen[static_cast<std::size_t>(v)];
    }
  }
  for (std::size_t v = 0; v < seen.size(); ++v) ASSERT_EQ(seen[v], 1) << "item " << v;
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_LE(q.segments_allocated(), kDrainedSegments);
}

}  // namespace
