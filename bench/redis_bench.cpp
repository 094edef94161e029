// bench/redis_bench.cpp: weft::redis::Queue against a bare hiredis LPUSH + BRPOP loop on the
// same server, in the same run (scripts/bench_redis.sh starts the server, runs
// redis-benchmark beside this, and prints the table of docs/redis.md).
//
//   weft_redis_bench --socket PATH [--items N] [--rounds R] [--samples S]
//
// Contenders, interleaved round by round (medians and ranges over rounds are printed; the
// ratio to the bare loop is taken round by round):
//   bare        producer thread LPUSH, consumer thread BRPOP: no lease, no ack, no bound
//   weft        producer put(), consumer get() + task_done(): every guarantee
//   weft-batch  put_many(64), get_many(64) + task_done(n)
//   weft-bound  as weft, maxsize 1000 (producers block on a full queue)
// Throughput: items/s moving N items from one producer thread to one consumer thread.
// Latency: one item at a time through an empty queue (put -> the blocked get returns), S
// samples, median and 99th percentile in microseconds.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <hiredis/hiredis.h>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <weft/redis/queue.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using Ids = weft::redis::Queue<std::int64_t>;

std::string g_socket;
// Of the last throughput run, per item: the server's time, the scripts run, the blocking
// waits (BLPOP/BLMOVE/BRPOP) and all commands the clients sent (INFO commandstats).
struct ServerCost {
  double usec = 0;
  double scripts = 0;
  double waits = 0;
  double commands = 0;
};
ServerCost g_cost;

redisContext* connect_bare() {
  redisContext* c = redisConnectUnix(g_socket.c_str());
  if (c == nullptr || c->err != 0) {
    std::fprintf(stderr, "cannot connect to %s\n", g_socket.c_str());
    std::exit(1);  // NOLINT(concurrency-mt-unsafe): before any thread starts
  }
  return c;
}

weft::redis::Options options() {
  weft::redis::Options o;
  o.unix_socket = g_socket;
  return o;
}

void flush() {
  redisContext* c = connect_bare();
  freeReplyObject(redisCommand(c, "FLUSHALL"));
  freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
  redisFree(c);
}

// What the server did since the last flush(), per item (INFO commandstats). Only the
// commands clients send count: Redis 7 also lists the commands a script or function calls,
// whose time the script's own line (evalsha, fcall) already includes.
ServerCost server_cost(std::int64_t items) {
  static constexpr std::array<const char*, 10> kTopLevel = {
      "cmdstat_evalsha:", "cmdstat_script|load:", "cmdstat_fcall:",  "cmdstat_function|load:",
      "cmdstat_ping:",    "cmdstat_blpop:",       "cmdstat_blmove:", "cmdstat_lpush:",
      "cmdstat_brpop:",   "cmdstat_rpop:"};
  redisContext* c = connect_bare();
  auto* r = static_cast<redisReply*>(redisCommand(c, "INFO commandstats"));
  ServerCost cost;
  for (const char* name : kTopLevel) {
    const char* p = std::strstr(r->str, name);
    if (p == nullptr) continue;
    const char* calls = std::strstr(p, "calls=");
    const char* usec = std::strstr(p, ",usec=");
    if (calls == nullptr || usec == nullptr) continue;
    const double n = std::strtod(calls + 6, nullptr);
    cost.usec += std::strtod(usec + 6, nullptr);
    cost.commands += n;
    if (std::strcmp(name, "cmdstat_evalsha:") == 0 || std::strcmp(name, "cmdstat_fcall:") == 0)
      cost.scripts += n;
    if (name[8] == 'b') cost.waits += n;  // blpop, blmove, brpop
  }
  freeReplyObject(r);
  redisFree(c);
  const auto per = static_cast<double>(items);
  return {cost.usec / per, cost.scripts / per, cost.waits / per, cost.commands / per};
}

double bare_throughput(std::int64_t n) {
  flush();
  const auto t0 = Clock::now();
  std::thread producer([n] {
    redisContext* c = connect_bare();
    for (std::int64_t i = 0; i < n; ++i) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "LPUSH bare %b", &i, sizeof i));
      freeReplyObject(r);
    }
    redisFree(c);
  });
  redisContext* c = connect_bare();
  for (std::int64_t i = 0; i < n; ++i) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "BRPOP bare 0"));
    freeReplyObject(r);
  }
  redisFree(c);
  producer.join();
  const double rate =
      static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count();
  g_cost = server_cost(n);
  return rate;
}

double weft_throughput(std::int64_t n, std::ptrdiff_t maxsize, std::size_t batch) {
  flush();
  Ids q("bench", maxsize, options());
  const auto t0 = Clock::now();
  std::thread producer([&] {
    Ids p("bench", maxsize, options());
    if (batch == 1) {
      for (std::int64_t i = 0; i < n; ++i) p.put(i);
    } else {
      std::vector<std::int64_t> v;
      for (std::int64_t i = 0; i < n;) {
        v.clear();
        for (std::size_t k = 0; k < batch && i < n; ++k) v.push_back(i++);
        p.put_many(v);
      }
    }
  });
  std::int64_t got = 0;
  while (got < n) {
    if (batch == 1) {
      const std::int64_t v = q.get();
      if (v != got) {
        std::fprintf(stderr, "out of order: got %lld, expected %lld\n", static_cast<long long>(v),
                     static_cast<long long>(got));
        std::abort();
      }
      q.task_done();
      ++got;
    } else {
      auto v = q.get_many(batch);
      for (auto x : v) {
        if (x != got) {
          std::fprintf(stderr, "out of order (batch): got %lld, expected %lld\n",
                       static_cast<long long>(x), static_cast<long long>(got));
          std::abort();
        }
        ++got;
      }
      q.task_done(v.size());
    }
  }
  producer.join();
  const double rate =
      static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count();
  g_cost = server_cost(n);
  if (!q.join(std::chrono::seconds(10))) {
    std::fprintf(stderr, "join timed out: %llu unfinished\n",
                 static_cast<unsigned long long>(q.unfinished_tasks()));
    std::abort();
  }
  return rate;
}

struct Latency {
  double median_us = 0;
  double p99_us = 0;
};

Latency summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

// One item at a time: the consumer is blocked when the producer puts; the producer waits
// for the consumer's acknowledgement (an atomic) before the next one.
Latency bare_latency(int samples) {
  flush();
  std::atomic<int> done{0};
  std::vector<double> us(static_cast<std::size_t>(samples));
  std::thread consumer([&] {
    redisContext* c = connect_bare();
    for (int i = 0; i < samples; ++i) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "BRPOP lat 0"));
      std::int64_t t = 0;
      std::memcpy(&t, r->element[1]->str, sizeof t);
      freeReplyObject(r);
      us[static_cast<std::size_t>(i)] =
          static_cast<double>(Clock::now().time_since_epoch().count() - t) / 1000.0;
      done.store(i + 1);
      done.notify_one();
    }
    redisFree(c);
  });
  redisContext* c = connect_bare();
  for (int i = 0; i < samples; ++i) {
    // Let the consumer block first: wait until the server counts it blocked.
    for (;;) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "INFO clients"));
      const bool blocked = std::strstr(r->str, "blocked_clients:1") != nullptr;
      freeReplyObject(r);
      if (blocked) break;
    }
    const std::int64_t t = Clock::now().time_since_epoch().count();
    freeReplyObject(redisCommand(c, "LPUSH lat %b", &t, sizeof t));
    done.wait(i);
  }
  redisFree(c);
  consumer.join();
  return summarize(std::move(us));
}

Latency weft_latency(int samples) {
  flush();
  Ids q("lat", options());
  std::atomic<int> done{0};
  std::vector<double> us(static_cast<std::size_t>(samples));
  std::thread consumer([&] {
    Ids c("lat", options());
    for (int i = 0; i < samples; ++i) {
      const std::int64_t t = c.get();
      us[static_cast<std::size_t>(i)] =
          static_cast<double>(Clock::now().time_since_epoch().count() - t) / 1000.0;
      c.task_done();
      done.store(i + 1);
      done.notify_one();
    }
  });
  redisContext* probe = connect_bare();
  for (int i = 0; i < samples; ++i) {
    for (;;) {
      auto* r = static_cast<redisReply*>(redisCommand(probe, "INFO clients"));
      const bool blocked = std::strstr(r->str, "blocked_clients:1") != nullptr;
      freeReplyObject(r);
      if (blocked) break;
    }
    q.put(Clock::now().time_since_epoch().count());
    done.wait(i);
  }
  redisFree(probe);
  consumer.join();
  return summarize(std::move(us));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

// NOLINTNEXTLINE(bugprone-exception-escape): a failed run ends with the exception's message
int main(int argc, char** argv) {
  std::int64_t items = 50000;
  int rounds = 3;
  int samples = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--socket")
      g_socket = argv[i + 1];
    else if (a == "--items")
      items = std::atoll(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--samples")
      samples = std::atoi(argv[i + 1]);
  }
  if (g_socket.empty()) {
    std::fprintf(stderr, "usage: %s --socket PATH [--items N] [--rounds R] [--samples S]\n",
                 argv[0]);
    return 2;
  }
  std::map<std::string, std::vector<double>> rate;
  std::map<std::string, std::vector<ServerCost>> server;
  auto record = [&](const char* name, double r) {
    rate[name].push_back(r);
    server[name].push_back(g_cost);
  };
  for (int r = 0; r < rounds; ++r) {
    record("bare LPUSH + BRPOP", bare_throughput(items));
    record("weft put / get + task_done", weft_throughput(items, 0, 1));
    record("weft, maxsize 1000", weft_throughput(items, 1000, 1));
    record("weft put_many / get_many (64)", weft_throughput(items, 0, 64));
  }
  // Each round's ratio is taken against the bare loop of the same round (the machine's load
  // moves both); the table gives their median and range over the rounds.
  const std::vector<double>& bare = rate["bare LPUSH + BRPOP"];
  std::printf(
      "| 1 producer thread, 1 consumer thread, %lld items, %d rounds | items/s, median "
      "(min-max) | vs bare, median (min-max) | server us/item | commands/item | scripts/item "
      "| waits/item |\n",
      static_cast<long long>(items), rounds);
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const char* name : {"bare LPUSH + BRPOP", "weft put / get + task_done", "weft, maxsize 1000",
                           "weft put_many / get_many (64)"}) {
    const std::vector<double>& v = rate[name];
    std::vector<double> ratio;
    for (std::size_t i = 0; i < v.size(); ++i) ratio.push_back(v[i] / bare[i]);
    const auto& c = server[name];
    const auto field = [&](double ServerCost::*f) {
      std::vector<double> x;
      for (const auto& e : c) x.push_back(e.*f);
      return median(std::move(x));
    };
    std::printf(
        "| %s | %.0f (%.0f-%.0f) | %.2fx (%.2f-%.2f) | %.1f | %.2f | %.2f | %.2f |\n", name,
        median(v), *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()),
        median(ratio), *std::min_element(ratio.begin(), ratio.end()),
        *std::max_element(ratio.begin(), ratio.end()), field(&ServerCost::usec),
        field(&ServerCost::commands), field(&ServerCost::scripts), field(&ServerCost::waits));
  }
  const Latency lb = bare_latency(samples);
  const Latency lw = weft_latency(samples);
  std::printf("\n| latency, put to blocked get (%d samples) | median us | p99 us |\n", samples);
  std::printf("|---|---:|---:|\n");
  std::printf("| bare LPUSH -> BRPOP | %.1f | %.1f |\n", lb.median_us, lb.p99_us);
  std::printf("| weft put -> get | %.1f | %.1f |\n", lw.median_us, lw.p99_us);
  return 0;
}
