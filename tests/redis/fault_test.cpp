// tests/redis/fault_test.cpp: crashes and failures, each with an exact account of every item
// afterwards (all delivered, duplicates only where at-least-once allows them, counters
// exact): a consumer killed after get and before task_done; a consumer and a producer killed
// between their blocking wait and the commit; CLIENT KILL; redis-server SIGKILLed and
// restarted from its AOF after an outage longer than a lease; a client SIGSTOPped past its
// lease; FUNCTION FLUSH mid-run; FUNCTION LOAD refused for a while; a load of many producer and consumer processes.
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace weft::redis::testing {
namespace {

using Ids = Queue<std::int64_t>;

std::vector<std::string> wargs(const Options& o, const std::string& q, std::ptrdiff_t max,
                               std::vector<std::string> more = {}) {
  std::vector<std::string> a = {serialize(o), q, std::to_string(max)};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

void await_blocked(const RedisServer& s, std::int64_t n) {
  ASSERT_TRUE(eventually([&] { return s.info("blocked_clients") == n; }))
      << "blocked_clients=" << s.info("blocked_clients") << ", expected " << n;
}

// After everything is acknowledged: no item left anywhere, counters at zero.
void expect_settled(Ids& q) {
  const Stats st = q.stats();
  EXPECT_EQ(st.ready, 0);
  EXPECT_EQ(st.leased, 0);
  EXPECT_EQ(st.unfinished, 0);
}

TEST(RedisFaults, ConsumerKilledAfterGetBeforeTaskDone) {
  RedisServer s;
  const Options o = s.options(500ms);
  Ids q("f_kill_get", o);
  for (std::int64_t i = 0; i < 10; ++i) q.put(i);
  Worker c("consumer", wargs(o, "f_kill_get", 0, {"hang=get:leased"}));
  ASSERT_EQ(c.line(), "ready");
  ASSERT_EQ(c.line(), "hang get:leased");
  c.signal(SIGKILL);
  EXPECT_EQ(c.wait(), 128 + SIGKILL);
  EXPECT_EQ(q.stats().leased, 1);
  // Item 0 comes back once the dead consumer's lease expires (a blocked get waits for that
  // moment by itself); every item is delivered once more and acknowledged exactly once.
  std::multiset<std::int64_t> got;
  for (int i = 0; i < 10; ++i) {
    got.insert(q.get(20s));
    q.task_done();
  }
  EXPECT_EQ(got, (std::multiset<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  expect_settled(q);
}

TEST(RedisFaults, ConsumerKilledBetweenWakeUpAndCommit) {
  RedisServer s;
  const Options o = s.options(500ms);
  Ids q("f_kill_wake_get", o);
  Worker c1("consumer", wargs(o, "f_kill_wake_get", 0, {"hang=get:woken"}));
  ASSERT_EQ(c1.line(), "ready");
  await_blocked(s, 1);
  Worker c2("consumer", wargs(o, "f_kill_wake_get", 0));
  ASSERT_EQ(c2.line(), "ready");
  await_blocked(s, 2);
  q.put(7);  // wakes c1, the longest waiter: it takes the wake token and stops
  ASSERT_EQ(c1.line(), "hang get:woken");
  c1.signal(SIGKILL);
  c1.wait();
  // The token c1 took is restored; c2, blocked, still gets the item.
  EXPECT_EQ(c2.line(), "got 7");
  EXPECT_EQ(c2.line(), "done 7");
  q.put(8);
  EXPECT_EQ(c2.line(), "got 8");
  EXPECT_EQ(c2.line(), "done 8");
  EXPECT_TRUE(q.join(20s));
  expect_settled(q);
}

TEST(RedisFaults, ProducerKilledBetweenWakeUpAndCommit) {
  RedisServer s;
  const Options o = s.options(500ms);
  Ids q("f_kill_wake_put", 1, o);
  q.put(0);
  Worker p1("producer", wargs(o, "f_kill_wake_put", 1, {"100", "1", "hang=put:woken"}));
  ASSERT_EQ(p1.line(), "ready");
  await_blocked(s, 1);
  Worker p2("producer", wargs(o, "f_kill_wake_put", 1, {"200", "1"}));
  ASSERT_EQ(p2.line(), "ready");
  await_blocked(s, 2);
  EXPECT_EQ(q.get(), 0);  // room for one: wakes p1, which stops before its put
  q.task_done();
  ASSERT_EQ(p1.line(), "hang put:woken");
  p1.signal(SIGKILL);
  p1.wait();
  EXPECT_EQ(p2.line(), "put 200");
  EXPECT_EQ(q.get(20s), 200);
  q.task_done();
  EXPECT_EQ(q.try_get(), std::nullopt);  // 100 never committed
  expect_settled(q);
}

// Producer and consumer threads move `n` ids through a bounded queue while `disturb` runs
// each time another `every` ids have been acknowledged. Returns how often each id was
// delivered.
std::map<std::int64_t, int> run_with_disturbance(const Options& o, const std::string& name,
                                                 std::int64_t n, std::int64_t every,
                                                 const std::function<void()>& disturb) {
  Ids q(name, 50, o);
  std::mutex mu;
  std::map<std::int64_t, int> seen;
  std::atomic<std::int64_t> acked{0};
  std::thread producer([&] {
    Ids p(name, 50, o);
    for (std::int64_t i = 0; i < n; ++i) p.put(i);
  });
  std::vector<std::thread> consumers;
  for (int k = 0; k < 2; ++k) {
    consumers.emplace_back([&] {
      Ids c(name, 50, o);
      for (;;) {
        std::int64_t id = 0;
        try {
          id = c.get();
        } catch (const ShutDown&) {
          return;
        }
        {
          std::lock_guard lock(mu);
          ++seen[id];
        }
        c.task_done();
        ++acked;
      }
    });
  }
  std::int64_t next = every;
  while (next < n) {
    EXPECT_TRUE(eventually([&] { return acked.load() >= next; }, 60s));
    disturb();
    next += every;
  }
  producer.join();
  EXPECT_TRUE(eventually(
      [&] {
        std::lock_guard lock(mu);
        return static_cast<std::int64_t>(seen.size()) == n;
      },
      60s));
  EXPECT_TRUE(q.join(60s));
  q.shutdown();
  for (auto& t : consumers) t.join();
  expect_settled(q);
  return seen;
}

TEST(RedisFaults, ClientKillLosesNothingAndDuplicatesNothing) {
  RedisServer s;
  int kills = 0;
  auto seen = run_with_disturbance(s.options(2000ms), "f_client_kill", 1500, 100, [&] {
    const std::string r = s.cmd({"CLIENT", "KILL", "TYPE", "normal"});
    if (r != "0") ++kills;
  });
  EXPECT_GT(kills, 0);
  ASSERT_EQ(seen.size(), 1500u);
  // Lost replies are replayed (get) or deduplicated (put): exactly once here.
  for (auto& [id, times] : seen) EXPECT_EQ(times, 1) << "id " << id;
}

// The server loses the function library (as a server restarted without its data, or a
// cluster node that never had it): every client loads it again, pipelined acks included.
TEST(RedisFaults, FunctionFlushMidRun) {
  RedisServer s;
  int flushes = 0;
  auto seen = run_with_disturbance(s.options(2000ms), "f_flush", 1500, 100, [&] {
    EXPECT_EQ(s.cmd({"FUNCTION", "FLUSH"}), "OK");
    ++flushes;
  });
  ASSERT_EQ(seen.size(), 1500u);
  for (auto& [id, times] : seen) EXPECT_EQ(times, 1) << "id " << id;
  // Loaded at the start and again after every flush (items moved after each).
  const std::string stats = s.cmd({"INFO", "commandstats"});
  const std::string field = "cmdstat_function|load:calls=";
  const auto at = stats.find(field);
  ASSERT_NE(at, std::string::npos) << stats;
  EXPECT_GT(std::strtoll(stats.c_str() + at + field.size(), nullptr, 10), flushes);
}

// How many commands the server refused with -OOM.
std::int64_t oom_errors(const RedisServer& s) {
  const std::string stats = s.cmd({"INFO", "errorstats"});
  const std::string field = "errorstat_OOM:count=";
  const auto at = stats.find(field);
  return at == std::string::npos ? 0 : std::strtoll(stats.c_str() + at + field.size(), nullptr, 10);
}

// FUNCTION LOAD refused for a while (here -OOM: the server is over maxmemory after a
// FUNCTION FLUSH) is retried within the caller's deadline, as the command's own transient
// errors are, and the call goes on once the server takes it.
TEST(RedisFaults, FunctionLoadRefusedForAWhileIsRetried) {
  RedisServer s;
  Ids q("f_load", s.options(60s));  // no heartbeat during the test: the get loads alone
  q.put(1);
  ASSERT_EQ(s.cmd({"CONFIG", "SET", "maxmemory", "1"}), "OK");
  ASSERT_EQ(s.cmd({"FUNCTION", "FLUSH"}), "OK");
  std::atomic<bool> got{false};
  std::thread consumer([&] {
    try {
      EXPECT_EQ(q.get(30s), 1);
      got = true;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "get: " << e.what();
    }
  });
  // Refused more than once: the get retries its FUNCTION LOAD.
  EXPECT_TRUE(eventually([&] { return oom_errors(s) >= 3; })) << oom_errors(s);
  EXPECT_FALSE(got.load());
  EXPECT_EQ(s.cmd({"CONFIG", "SET", "maxmemory", "0"}), "OK");
  consumer.join();
  EXPECT_TRUE(got.load());
  q.task_done();
  expect_settled(q);
}

TEST(RedisFaults, ServerKilledAndRestartedFromAofAfterOutageLongerThanLease) {
  RedisServer s(ServerConfig{.aof = true});
  const auto lease = 500ms;
  int crashes = 0;
  auto seen = run_with_disturbance(s.options(lease), "f_server_kill", 1200, 400, [&] {
    s.kill9();
    ++crashes;
    // The outage itself (not a synchronization): longer than a lease, so every session
    // has expired when the server is back.
    std::this_thread::sleep_for(lease * 3);
    s.restart();
  });
  EXPECT_EQ(crashes, 2);
  // Nothing lost; items leased at the crash may come twice (at least once).
  ASSERT_EQ(seen.size(), 1200u);
  int dups = 0;
  for (auto& [id, times] : seen) dups += times - 1;
  EXPECT_LE(dups, 2 * 2 * 1);  // at most what the two consumers held at each crash
}

TEST(RedisFaults, ClientStoppedPastItsLeaseThenContinued) {
  RedisServer s;
  const Options o = s.options(500ms);
  Ids q("f_sigstop", o);
  q.put(1);
  Worker c("consumer", wargs(o, "f_sigstop", 0, {"hold"}));
  ASSERT_EQ(c.line(), "ready");
  ASSERT_EQ(c.line(), "got 1");
  c.signal(SIGSTOP);
  // Its lease expires on the server's clock; the item is back in the queue.
  ASSERT_TRUE(eventually([&] {
    const Stats st = q.stats();
    return st.ready == 1 && st.leased == 0;
  }));
  auto d = q.get_delivery(5s);
  EXPECT_EQ(d.item, 1);
  c.signal(SIGCONT);
  c.send("go");  // the stopped consumer finishes its item after all
  EXPECT_EQ(c.line(), "done 1");
  // Its task_done() returned with the acknowledgement still queued in that process; the
  // server has it within Options::ack_delay (sent by its heartbeat thread).
  ASSERT_TRUE(eventually([&] { return q.stats().unfinished == 0; }));
  EXPECT_FALSE(q.task_done(d.receipt));  // acknowledged once, by the first to finish
  expect_settled(q);
  q.shutdown();
  EXPECT_EQ(c.line(), "shutdown");
  EXPECT_EQ(c.wait(), 0);
}

TEST(RedisFaults, LoadManyProducerAndConsumerProcessesOnABoundedQueue) {
  RedisServer s;
  const Options o = s.options(5000ms);
  constexpr std::ptrdiff_t kMax = 8;
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
#ifdef WEFT_SANITIZED
  constexpr std::int64_t kEach = 150;
#else
  constexpr std::int64_t kEach = 400;
#endif
  Ids q("f_load", kMax, o);
  std::vector<Worker> producers;
  std::vector<Worker> consumers;
  for (int i = 0; i < kConsumers; ++i) consumers.emplace_back("consumer", wargs(o, "f_load", kMax));
  for (int i = 0; i < kProducers; ++i)
    producers.emplace_back(
        "producer", wargs(o, "f_load", kMax, {std::to_string(i * kEach), std::to_string(kEach)}));
  // Invariant, sampled while the load runs: never more than maxsize waiting.
  std::int64_t peak = 0;
  std::int64_t samples = 0;
  // The put counter (meta's "seq:<generation>", from 1): every put done once.
  const std::string seq = "seq:" + s.cmd({"HGET", "weft:{f_load}:meta", "gen"});
  ASSERT_TRUE(eventually(
      [&] {
        const Stats st = q.stats();
        peak = std::max(peak, st.ready);
        ++samples;
        return st.unfinished == 0 && st.ready == 0 && st.leased == 0 &&
               std::stoll(s.cmd({"HGET", "weft:{f_load}:meta", seq})) == kProducers * kEach + 1;
      },
      120s));
  EXPECT_LE(peak, kMax);
  EXPECT_GT(samples, 1);
  for (auto& p : producers) EXPECT_EQ(p.wait(), 0);
  q.shutdown();
  std::map<std::int64_t, int> done;
  for (auto& c : consumers) {
    for (std::string l = c.line(); !l.empty() && l != "shutdown"; l = c.line()) {
      if (l.rfind("done ", 0) == 0) ++done[std::stoll(l.substr(5))];
    }
    EXPECT_EQ(c.wait(), 0);
  }
  ASSERT_EQ(done.size(), static_cast<std::size_t>(kProducers * kEach));
  for (auto& [id, times] : done) EXPECT_EQ(times, 1) << "id " << id;
  EXPECT_EQ(done.begin()->first, 0);
  EXPECT_EQ(done.rbegin()->first, kProducers * kEach - 1);
}

}  // namespace
}  // namespace weft::redis::testing
