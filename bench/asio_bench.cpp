// SPDX-License-Identifier: MIT
// weft::asio against asio::experimental::concurrent_channel (scripts/bench_asio.sh).
//
// Rows: who produces and who consumes, on an io_context run by 1 or 2 threads.
//   c2c  coroutine -> coroutine   (both co_spawn'ed on the io_context)
//   t2c  thread -> coroutine      (a plain thread produces)
//   c2t  coroutine -> thread      (a plain thread consumes)
// Throughput: N items through a queue (channel) of capacity 1024, in Mitems/s. Round trip:
// a ping through one queue and its pong back through another, capacity 1 each, in us (the
// median round trip of a trial). A thread uses weft's blocking put/get; for the channel,
// which has no blocking face, it tries try_send/try_receive and, when that fails, waits on
// async_send/async_receive with asio::use_future (what a thread can do with a channel).
//
// Each trial runs in a fresh io_context; the contenders alternate within each round; the
// figures are the medians over the rounds, and the ratio is weft's advantage in the same
// round (throughput: weft/channel; round trip: channel/weft), its median (min .. max).
// Every trial checks that each item arrived once (count and sum).
//
// Usage: weft_asio_bench [--rounds R] [--items N] [--trips M] [--only TEXT] [--contender weft|channel]
// (--contender: run one side only, for callgrind: scripts/bench_asio.sh --callgrind)
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <asio/version.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "weft/asio.hpp"
#include "weft/weft.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using asio::use_awaitable;
using Channel = asio::experimental::concurrent_channel<void(std::error_code, std::uint64_t)>;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "weft_asio_bench: CHECK FAILED: %s\n", what);
  std::exit(2);  // NOLINT(concurrency-mt-unsafe): a failed check ends the run
}

// An io_context run by `threads` threads for the duration of one trial.
class Io {
 public:
  explicit Io(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ctx.run(); });
  }
  Io(const Io&) = delete;
  Io& operator=(const Io&) = delete;
  ~Io() {
    work_.reset();
    for (std::thread& t : threads_) t.join();
  }
  asio::io_context ctx;

 private:
  asio::executor_work_guard<asio::io_context::executor_type> work_{ctx.get_executor()};
  std::vector<std::thread> threads_;
};

enum class Shape { c2c, t2c, c2t };

// ---- the two contenders' faces ---------------------------------------------------------------

struct WeftQ {
  explicit WeftQ(asio::io_context&, std::size_t cap) : q(static_cast<std::ptrdiff_t>(cap)) {}
  asio::awaitable<void> co_put(std::uint64_t v) {
    co_await weft::asio::async_put(q, v, use_awaitable);
  }
  asio::awaitable<std::uint64_t> co_get() {
    co_return co_await weft::asio::async_get(q, use_awaitable);
  }
  void put(std::uint64_t v) { q.put(v); }
  std::uint64_t get() { return q.get(); }
  weft::Queue<std::uint64_t> q;
};

struct ChanQ {
  ChanQ(asio::io_context& ctx, std::size_t cap) : ch(ctx, cap) {}
  asio::awaitable<void> co_put(std::uint64_t v) {
    co_await ch.async_send(std::error_code(), v, use_awaitable);
  }
  asio::awaitable<std::uint64_t> co_get() { co_return co_await ch.async_receive(use_awaitable); }
  void put(std::uint64_t v) {
    if (!ch.try_send(std::error_code(), v))
      ch.async_send(std::error_code(), v, asio::use_future).get();
  }
  std::uint64_t get() {
    std::uint64_t out = 0;
    if (ch.try_receive([&](std::error_code, std::uint64_t v) { out = v; })) return out;
    return ch.async_receive(asio::use_future).get();
  }
  Channel ch;
};

// N items from one producer to one consumer; returns Mitems/s.
template <class Q>
double throughput(Shape shape, int threads, std::uint64_t n) {
  Io io(threads);
  Q q(io.ctx, 1024);
  std::uint64_t sum = 0, count = 0;
  std::latch done(2);
  auto co_producer = [&]() -> asio::awaitable<void> {
    for (std::uint64_t i = 1; i <= n; ++i) co_await q.co_put(i);
    done.count_down();
  };
  auto co_consumer = [&]() -> asio::awaitable<void> {
    for (std::uint64_t i = 0; i < n; ++i) {
      sum += co_await q.co_get();
      ++count;
    }
    done.count_down();
  };
  std::thread th;
  const Clock::time_point t0 = Clock::now();
  switch (shape) {
    case Shape::c2c:
      asio::co_spawn(io.ctx, co_consumer, asio::detached);
      asio::co_spawn(io.ctx, co_producer, asio::detached);
      break;
    case Shape::t2c:
      asio::co_spawn(io.ctx, co_consumer, asio::detached);
      th = std::thread([&] {
        for (std::uint64_t i = 1; i <= n; ++i) q.put(i);
        done.count_down();
      });
      break;
    case Shape::c2t:
      th = std::thread([&] {
        for (std::uint64_t i = 0; i < n; ++i) {
          sum += q.get();
          ++count;
        }
        done.count_down();
      });
      asio::co_spawn(io.ctx, co_producer, asio::detached);
      break;
  }
  done.wait();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (th.joinable()) th.join();
  if (count != n || sum != n * (n + 1) / 2) fail("items lost or duplicated");
  return static_cast<double>(n) / s / 1e6;
}

// M round trips; returns the median round trip in us. c2c: a coroutine pings, another pongs;
// t2c: a thread pings, a coroutine pongs.
template <class Q>
double round_trip(Shape shape, int threads, std::uint64_t m) {
  Io io(threads);
  Q ping(io.ctx, 1), pong(io.ctx, 1);
  std::vector<double> us;
  us.reserve(m);
  std::latch done(2);
  asio::co_spawn(
      io.ctx,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t i = 0; i < m; ++i) co_await pong.co_put(co_await ping.co_get() + 1);
        done.count_down();
      },
      asio::detached);
  auto check = [&](std::uint64_t i, std::uint64_t r) {
    if (r != i + 1) fail("wrong pong");
  };
  if (shape == Shape::c2c) {
    asio::co_spawn(
        io.ctx,
        [&]() -> asio::awaitable<void> {
          for (std::uint64_t i = 0; i < m; ++i) {
            const auto t = Clock::now();
            co_await ping.co_put(i);
            check(i, co_await pong.co_get());
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
          }
          done.count_down();
        },
        asio::detached);
    done.wait();
  } else {
    for (std::uint64_t i = 0; i < m; ++i) {
      const auto t = Clock::now();
      ping.put(i);
      check(i, pong.get());
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    done.count_down();
    done.wait();
  }
  std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(us.size() / 2), us.end());
  return us[us.size() / 2];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size();
  return k % 2 == 1 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

struct Row {
  std::string name;
  bool latency;
  std::function<double()> weft, chan;
  std::vector<double> w, c, ratio;
};

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  std::uint64_t items = 200000, trips = 20000;
  std::string only;       // --only <text>: the rows whose name contains it
  std::string contender;  // --contender weft|channel: that side only (no ratios)
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--items") == 0) items = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--trips") == 0) trips = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--contender") == 0) contender = argv[i + 1];
  }
  std::vector<Row> rows;
  const struct {
    const char* name;
    Shape shape;
  } shapes[] = {{"coroutine -> coroutine", Shape::c2c},
                {"thread -> coroutine", Shape::t2c},
                {"coroutine -> thread", Shape::c2t}};
  for (const auto& sh : shapes) {
    for (int t : {1, 2}) {
      rows.push_back({std::string(sh.name) + ", " + std::to_string(t) + " io thread" +
                          (t > 1 ? "s" : "") + " [Mitems/s]",
                      false,
                      [=] { return throughput<WeftQ>(sh.shape, t, items); },
                      [=] { return throughput<ChanQ>(sh.shape, t, items); },
                      {},
                      {},
                      {}});
    }
  }
  for (const auto& sh : shapes) {
    if (sh.shape == Shape::c2t) continue;  // a round trip has both directions
    for (int t : {1, 2}) {
      rows.push_back({"round trip, " +
                          std::string(sh.shape == Shape::c2c ? "coroutine <-> coroutine"
                                                             : "thread <-> coroutine") +
                          ", " + std::to_string(t) + " io thread" + (t > 1 ? "s" : "") + " [us]",
                      true,
                      [=] { return round_trip<WeftQ>(sh.shape, t, trips); },
                      [=] { return round_trip<ChanQ>(sh.shape, t, trips); },
                      {},
                      {},
                      {}});
    }
  }
  std::erase_if(rows, [&](const Row& row) { return row.name.find(only) == std::string::npos; });
  if (!contender.empty()) {
    if (contender != "weft" && contender != "channel") fail("--contender weft|channel");
    for (int r = 0; r < rounds; ++r) {
      for (Row& row : rows) {
        std::printf("%s %s: %.3f\n", contender.c_str(), row.name.c_str(),
                    contender == "weft" ? row.weft() : row.chan());
      }
    }
    return 0;
  }
  for (int r = 0; r < rounds; ++r) {
    for (Row& row : rows) {
      double w, c;
      if (r % 2 == 0) {
        w = row.weft();
        c = row.chan();
      } else {
        c = row.chan();
        w = row.weft();
      }
      row.w.push_back(w);
      row.c.push_back(c);
      row.ratio.push_back(row.latency ? c / w : w / c);
    }
  }
  std::printf(
      "weft::asio vs asio::experimental::concurrent_channel (Asio %d.%d.%d), %d rounds, "
      "%llu items, %llu round trips; medians\n",
      ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100, rounds,
      static_cast<unsigned long long>(items), static_cast<unsigned long long>(trips));
  std::printf("| %-58s | %10s | %10s | %-24s |\n", "row", "weft", "channel", "weft advantage");
  std::printf("|%s|%s|%s|%s|\n", std::string(60, '-').c_str(), std::string(12, '-').c_str(),
              std::string(12, '-').c_str(), std::string(26, '-').c_str());
  bool ahead = true;
  for (Row& row : rows) {
    const double lo = *std::min_element(row.ratio.begin(), row.ratio.end());
    const double hi = *std::max_element(row.ratio.begin(), row.ratio.end());
    char adv[64];
    std::snprintf(adv, sizeof adv, "%.2fx (%.2f .. %.2f)", median(row.ratio), lo, hi);
    std::printf("| %-58s | %10.3f | %10.3f | %-24s |\n", row.name.c_str(), median(row.w),
                median(row.c), adv);
    ahead = ahead && median(row.ratio) > 1.0;
  }
  std::printf("weft ahead in every row: %s\n", ahead ? "yes" : "no");
  return 0;
}
