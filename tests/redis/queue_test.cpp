// tests/redis/queue_test.cpp: the queue contract over Redis, in one process and across
// client processes (order, maxsize, nowait and timed forms, task_done/join, every shutdown
// case, consume, stop tokens, codecs).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "redis/scripts.hpp"

namespace weft::redis::testing {
namespace {

namespace lua = weft::redis::detail::lua;
using Ids = Queue<std::int64_t>;

std::vector<std::string> common_args(const RedisServer& s, const std::string& q,
                                     std::ptrdiff_t maxsize) {
  return {serialize(s.options()), q, std::to_string(maxsize)};
}

template <class... More>
std::vector<std::string> args(const RedisServer& s, const std::string& q, std::ptrdiff_t max,
                              More... more) {
  auto a = common_args(s, q, max);
  (a.push_back(std::string(more)), ...);
  return a;
}

// Waits until `n` clients are blocked in the server (BLPOP/BLMOVE).
void await_blocked(const RedisServer& s, std::int64_t n) {
  ASSERT_TRUE(eventually([&] { return s.info("blocked_clients") == n; }))
      << "blocked_clients=" << s.info("blocked_clients") << ", expected " << n;
}

TEST(RedisQueue, FifoOrder) {
  RedisServer s;
  Ids q("fifo", s.options());
  for (std::int64_t i = 0; i < 10; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 10u);
  for (std::int64_t i = 0; i < 10; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_TRUE(q.empty());
}

TEST(RedisQueue, LifoOrder) {
  RedisServer s;
  LifoQueue<std::int64_t> q("lifo", s.options());
  for (std::int64_t i = 0; i < 10; ++i) q.put(i);
  for (std::int64_t i = 9; i >= 0; --i) EXPECT_EQ(q.get(), i);
}

TEST(RedisQueue, PriorityOrderTiesFifo) {
  RedisServer s;
  PriorityQueue<std::string> q("prio", s.options());
  q.put(2, "c1");
  q.put(-1.5, "a");
  q.put(2, "c2");
  q.put(1, "b");
  q.put(2, "c3");
  q.put(1e300, "z");
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get(), "b");
  EXPECT_EQ(q.get(), "c1");
  EXPECT_EQ(q.get(), "c2");
  auto d = q.get_delivery();
  EXPECT_EQ(d.item, "c3");
  EXPECT_EQ(d.priority, 2);
  EXPECT_EQ(q.get(), "z");
  // Bad input: a clear exception and nothing changes.
  EXPECT_THROW(q.put(std::nan(""), "nan"), std::invalid_argument);
  EXPECT_EQ(q.qsize(), 0u);
  q.put(-std::numeric_limits<double>::infinity(), "first");
  q.put(0, "second");
  EXPECT_EQ(q.get(), "first");
}

TEST(RedisQueue, OrderAcrossProcesses) {
  RedisServer s;
  Ids q("xorder", s.options());
  {
    Worker p("producer", args(s, "xorder", 0, "0", "200"));
    EXPECT_EQ(p.expect("finished"), "finished");
    EXPECT_EQ(p.wait(), 0);
  }
  for (std::int64_t i = 0; i < 200; ++i) ASSERT_EQ(q.get(), i);
}

TEST(RedisQueue, MaxsizeNowaitAndTimedForms) {
  RedisServer s;
  Ids q("bounded", 2, s.options());
  EXPECT_EQ(q.maxsize(), 2);
  q.put_nowait(1);
  EXPECT_TRUE(q.try_put(2));
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(3), Full);
  EXPECT_FALSE(q.try_put(3));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(q.put(3, 100ms), Full);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_FALSE(q.try_put(3, 50ms));
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_EQ(q.try_get(), std::optional<std::int64_t>(2));
  EXPECT_THROW(q.get_nowait(), Empty);
  EXPECT_EQ(q.try_get(), std::nullopt);
  t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(q.get(100ms), Empty);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_EQ(q.try_get(50ms), std::nullopt);
  EXPECT_THROW(q.get(-1ms), std::invalid_argument);
  EXPECT_THROW(q.put(1, -1ms), std::invalid_argument);
  // Leased items do not count against maxsize.
  q.put(5);
  q.put(6);
  EXPECT_TRUE(q.full());
}

TEST(RedisQueue, KindOrMaxsizeMismatchIsRejected) {
  RedisServer s;
  Ids q("fixed", 3, s.options());
  EXPECT_THROW(Ids("fixed", 4, s.options()), std::invalid_argument);
  EXPECT_THROW(LifoQueue<std::int64_t>("fixed", 3, s.options()), std::invalid_argument);
  Ids same("fixed", 3, s.options());
  same.put(1);
  EXPECT_EQ(q.get(), 1);
}

// maxsize is kept as the client's decimal text: a second client with the same large
// maxsize agrees with the first, and stats report it exactly.
TEST(RedisQueue, LargeMaxsizeIsStoredExactly) {
  RedisServer s;
  for (const std::ptrdiff_t max :
       {std::ptrdiff_t{100'000'000'000'000}, std::numeric_limits<std::ptrdiff_t>::max()}) {
    const std::string name = "big" + std::to_string(max);
    Ids q(name, max, s.options());
    EXPECT_EQ(s.cmd({"HGET", "weft:{" + name + "}:meta", "maxsize"}), std::to_string(max));
    Ids again(name, max, s.options());
    EXPECT_EQ(again.maxsize(), max);
    q.put(7);
    EXPECT_FALSE(q.full());  // from the server's stats: its maxsize
    EXPECT_EQ(again.get(), 7);
  }
}

// Out of memory (maxmemory reached, noeviction): a put is refused with OutOfMemory; gets and
// task_done() still run, and drain the queue.
TEST(RedisQueue, OutOfMemoryRefusesPutsWhileGetsDrain) {
  RedisServer s;
  Queue<std::string> q("oom", s.options());
  const std::string big(std::size_t{64} * 1024, 'x');
  std::size_t in = 0;
  for (; in < 4; ++in) q.put(big);
  const std::int64_t used = s.info("used_memory");
  ASSERT_GT(used, 0);
  ASSERT_EQ(s.cmd({"CONFIG", "SET", "maxmemory", std::to_string(used + std::int64_t{256} * 1024)}),
            "OK");
  bool refused = false;
  for (int i = 0; i < 64 && !refused; ++i) {
    try {
      q.put(big);
      ++in;
    } catch (const OutOfMemory& e) {
      refused = true;
      EXPECT_NE(std::string(e.what()).find("put refused: the server is out of memory"),
                std::string::npos)
          << e.what();
    }
  }
  ASSERT_TRUE(refused) << "used_memory " << s.info("used_memory") << " never passed maxmemory";
  EXPECT_EQ(q.qsize(), in);
  for (std::size_t i = 0; i < in; ++i) EXPECT_EQ(q.get(), big);
  // A join that has to wait waits (the server, still out of memory, refuses BLMOVE), woken
  // by the task_done()s.
  std::thread joiner([&] {
    try {
      q.join();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "join: " << e.what();
    }
  });
  await_blocked(s, 1);
  for (std::size_t i = 0; i < in; ++i) q.task_done();
  joiner.join();
  EXPECT_TRUE(q.empty());
  ASSERT_EQ(s.cmd({"CONFIG", "SET", "maxmemory", "0"}), "OK");
  q.put("after");
  EXPECT_EQ(q.get(), "after");
}

// A queue whose stored protocol version is not this client's (or that has none: made by an
// earlier build) is refused with a clear error, and the refused client leaves no session.
TEST(RedisQueue, OtherProtocolVersionIsRefused) {
  RedisServer s;
  Ids q("proto", s.options());
  q.put(1);
  const std::string meta = "weft:{proto}:meta";
  ASSERT_EQ(s.cmd({"HGET", meta, "proto"}), "3");
  for (const bool none : {false, true}) {
    if (none)
      ASSERT_EQ(s.cmd({"HDEL", meta, "proto"}), "1");
    else
      ASSERT_EQ(s.cmd({"HSET", meta, "proto", "1"}), "0");
    try {
      Ids other("proto", s.options());
      ADD_FAILURE() << "a queue of another protocol was opened";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("same protocol version"), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.cmd({"ZCARD", "weft:{proto}:clients"}), "1");  // q's session alone
  }
  ASSERT_EQ(s.cmd({"HSET", meta, "proto", "3"}), "1");
  Ids again("proto", s.options());
  EXPECT_EQ(again.get(), 1);
}

// A queue destroyed and made again (here as another kind, with a maxsize) is not served to
// the clients of the old one: each of their calls throws QueueGone and changes nothing; an
// acknowledgement of an item got from the old queue does not finish the new queue's item
// of the same sequence number.
TEST(RedisQueue, QueueMadeAgainIsNotServedToClientsOfTheOldOne) {
  RedisServer s;
  Ids old("again", s.options());
  old.put(1);
  old.put(2);
  EXPECT_EQ(old.get(), 1);
  {
    Ids other("again", s.options());
    other.destroy();
  }
  LifoQueue<std::int64_t> fresh("again", 1, s.options());
  fresh.put(10);
  EXPECT_THROW(old.put(3), QueueGone);
  EXPECT_THROW(old.get_nowait(), QueueGone);
  old.task_done();  // pipelined: refused when it is sent
  EXPECT_THROW(old.qsize(), QueueGone);
  EXPECT_THROW(old.shutdown(true), QueueGone);
  EXPECT_THROW(old.destroy(), QueueGone);
  EXPECT_EQ(fresh.qsize(), 1u);
  EXPECT_TRUE(fresh.full());
  EXPECT_EQ(fresh.unfinished_tasks(), 1u);
  EXPECT_EQ(fresh.get(), 10);
  fresh.task_done();
  EXPECT_EQ(fresh.unfinished_tasks(), 0u);
}

// FCALLs the server has run (INFO commandstats).
std::int64_t fcalls(const RedisServer& s) {
  const std::string all = s.cmd({"INFO", "commandstats"});
  const auto at = all.find("cmdstat_fcall:calls=");
  if (at == std::string::npos) return 0;
  return std::strtoll(all.c_str() + at + 20, nullptr, 10);
}

// A client whose get was refused (QueueGone) sends nothing more on its own: the get left no
// orphan to release and its heartbeat stops renewing. Over three beats the server runs no
// FCALL (the new queue's client has gone: its session stays, unrenewed).
TEST(RedisQueue, ClientOfAGoneQueueStopsItsHeartbeat) {
  RedisServer s;
  const auto lease = 300ms;
  Ids old("hb", s.options(lease));
  old.put(1);
  {
    Ids other("hb", s.options(lease));
    other.destroy();
  }
  { Ids fresh("hb", s.options(lease)); }
  EXPECT_THROW(old.get_nowait(), QueueGone);
  EXPECT_THROW(old.get(10ms), QueueGone);
  const std::int64_t before = fcalls(s);
  std::this_thread::sleep_for(lease);  // the window measured: three beats
  EXPECT_LE(fcalls(s) - before, 1);
}

// A getter of the old queue, still blocked, takes no wake-up token of the queue made again
// under its name: the new queue's getter is woken by the put at once, long before its
// heartbeat or max_block would wake it (a long lease: the first beat is 10 s away).
TEST(RedisQueue, BlockedClientOfTheOldQueueTakesNoTokenOfTheNewOne) {
  RedisServer s;
  const Options o = s.options(30000ms);
  Ids old("tok", o);
  std::stop_source stop_old;
  std::atomic<bool> old_woken{false};
  std::jthread blocked_old([&] {
    try {
      EXPECT_EQ(old.try_get(stop_old.get_token()), std::nullopt);
    } catch (const QueueGone&) {
      old_woken = true;  // it took a token (refused then)
    }
  });
  await_blocked(s, 1);
  {
    Ids other("tok", o);
    other.destroy();
  }
  Ids fresh("tok", o);
  std::optional<std::int64_t> got;
  std::jthread blocked_new([&] { got = fresh.try_get(3s); });
  await_blocked(s, 2);
  fresh.put(7);
  blocked_new.join();
  EXPECT_EQ(got, std::optional<std::int64_t>(7));
  stop_old.request_stop();
  blocked_old.join();
  EXPECT_FALSE(old_woken.load());
}

// destroy() is idempotent: a destroy that finds the queue gone (its reply lost and retried,
// or cut short after meta went) deletes what is left and succeeds.
TEST(RedisQueue, DestroyFinishesAndRepeats) {
  RedisServer s;
  Ids q("del", s.options());
  q.put(1);
  EXPECT_EQ(q.get(), 1);  // a held item: the session's keys too
  q.put(2);
  ASSERT_EQ(s.cmd({"DEL", "weft:{del}:meta"}), "1");
  q.destroy();
  EXPECT_EQ(s.cmd({"DBSIZE"}), "0");
  q.destroy();
  EXPECT_EQ(s.cmd({"DBSIZE"}), "0");
}

// The first client that loads this build's library deletes the libraries of older
// protocols, and leaves this protocol's other builds', newer protocols' and other
// libraries. A client of an old protocol loads its own again (as after FUNCTION FLUSH).
TEST(RedisQueue, OlderProtocolsLibrariesAreDeleted) {
  RedisServer s;
  const std::string ours = lua::kProtocol;
  const std::string same = "weft_p" + ours + "_0123456789abcdef";
  const std::vector<std::string> old = {"weft_0123456789abcdef", "weft_p2_0123456789abcdef"};
  const std::vector<std::string> kept = {same, "weft_p99_0123456789abcdef", "mylib"};
  const auto load = [&](const std::string& lib) {
    return s.cmd({"FUNCTION", "LOAD",
                  "#!lua name=" + lib + "\nredis.register_function('" + lib +
                      "_f', function() return 1 end)"});
  };
  const auto runs = [&](const std::string& lib) {
    return s.cmd({"FCALL", lib + "_f", "0"}) == "1";
  };
  for (const auto& lib : old) ASSERT_EQ(load(lib), lib);
  for (const auto& lib : kept) ASSERT_EQ(load(lib), lib);
  Ids q("libs", s.options());
  for (const auto& lib : old) EXPECT_FALSE(runs(lib)) << lib;
  for (const auto& lib : kept) EXPECT_TRUE(runs(lib)) << lib;
  EXPECT_EQ(load(old[1]), old[1]);
  q.put(1);
  EXPECT_EQ(q.get(), 1);
  EXPECT_TRUE(runs(old[1]));  // no client of this build loaded its library again
}

// A malformed reply is a clear error, not a number read from its first digits.
TEST(RedisQueue, MalformedMaxsizeInMetaIsAnError) {
  RedisServer s;
  { Ids q("bad", 12, s.options()); }
  ASSERT_EQ(s.cmd({"HSET", "weft:{bad}:meta", "maxsize", "12x"}), "0");
  try {
    Ids q("bad", 12, s.options());
    ADD_FAILURE() << "a malformed maxsize was read as 12";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed reply"), std::string::npos) << e.what();
  }
}

TEST(RedisQueue, BlockedGetWokenByPutInAnotherProcess) {
  RedisServer s;
  Ids q("wake_get", s.options());
  Worker g("getter", args(s, "wake_get", 0, "-1"));
  ASSERT_EQ(g.line(), "ready");
  await_blocked(s, 1);
  q.put(42);
  EXPECT_EQ(g.line(), "item 42");
  EXPECT_EQ(g.wait(), 0);
  EXPECT_TRUE(q.join(10s));
}

TEST(RedisQueue, BlockedPutWokenByGetInAnotherProcess) {
  RedisServer s;
  Ids q("wake_put", 1, s.options());
  q.put(1);
  Worker p("putter", args(s, "wake_put", 1, "2"));
  ASSERT_EQ(p.line(), "ready");
  await_blocked(s, 1);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(p.line(), "ok");
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(p.wait(), 0);
}

TEST(RedisQueue, ManyBlockedGettersEachGetOneItem) {
  RedisServer s;
  Ids q("many_get", s.options());
  std::vector<Worker> gs;
  for (int i = 0; i < 4; ++i) {
    gs.emplace_back("getter", args(s, "many_get", 0, "-1"));
    ASSERT_EQ(gs.back().line(), "ready");
  }
  await_blocked(s, 4);
  for (std::int64_t i = 0; i < 4; ++i) q.put(i);
  std::vector<bool> seen(4, false);
  for (auto& g : gs) {
    const std::string l = g.line();
    ASSERT_EQ(l.rfind("item ", 0), 0u) << l;
    const auto id = std::stoll(l.substr(5));
    ASSERT_FALSE(seen[static_cast<std::size_t>(id)]);
    seen[static_cast<std::size_t>(id)] = true;
  }
  EXPECT_TRUE(q.join(10s));
}

// More blocked getters than a token list holds (64): one put_many wakes them all, each
// woken getter passing the wake-up on. The lease is long, so neither the heartbeat
// (lease/3) nor a lease expiry can stand in for a lost wake-up within the bound.
TEST(RedisQueue, PutManyWakesMoreGettersThanTokens) {
  RedisServer s;
  constexpr int kGetters = 80;
  Ids q("wide", s.options(120s));
  std::atomic<int> got{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kGetters; ++i) {
    ts.emplace_back([&] {
      try {
        q.get();
        got.fetch_add(1);
        q.task_done();
      } catch (const weft::ShutDown&) {
      }
    });
  }
  await_blocked(s, kGetters);
  Ids p("wide", s.options(120s));
  std::vector<std::int64_t> items(kGetters);
  for (int i = 0; i < kGetters; ++i) items[static_cast<std::size_t>(i)] = i;
  ASSERT_EQ(p.put_many(items), static_cast<std::size_t>(kGetters));
  EXPECT_TRUE(eventually([&] { return got.load() == kGetters; }, 20s)) << got.load();
  p.shutdown();  // releases any getter left blocked, so the threads end either way
  for (auto& t : ts) t.join();
  EXPECT_EQ(got.load(), kGetters);
  EXPECT_TRUE(q.join(10s));
}

TEST(RedisQueue, TaskDoneAndJoinAcrossProcesses) {
  RedisServer s;
  Ids q("join", s.options());
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  Worker j("joiner", args(s, "join", 0));
  ASSERT_EQ(j.line(), "ready");
  await_blocked(s, 1);
  EXPECT_FALSE(q.join(50ms));
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get(), 2);
  q.task_done();
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(j.line(200ms), "");  // still waiting
  q.task_done();
  EXPECT_EQ(j.line(), "joined");
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_THROW(q.task_done(), std::logic_error);
  EXPECT_TRUE(q.join(0ms));
}

TEST(RedisQueue, ReceiptsAcknowledgeSpecificItems) {
  RedisServer s;
  Ids q("receipts", s.options());
  q.put(1);
  q.put(2);
  auto a = q.get_delivery();
  auto b = q.get_delivery();
  EXPECT_EQ(a.item, 1);
  EXPECT_EQ(b.item, 2);
  EXPECT_THROW(q.task_done(), std::logic_error);  // deliveries are not anonymous
  EXPECT_TRUE(q.task_done(b.receipt));
  EXPECT_FALSE(q.task_done(b.receipt));  // idempotent
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  q.release(a.receipt);
  EXPECT_EQ(q.qsize(), 1u);
  auto again = q.get_delivery();
  EXPECT_EQ(again.item, 1);
  EXPECT_TRUE(q.task_done(again.receipt));
  EXPECT_TRUE(q.join(0ms));
}

TEST(RedisQueue, ShutdownPutThrowsGetDrainsThenThrows) {
  RedisServer s;
  Ids q("sd", s.options());
  q.put(1);
  EXPECT_FALSE(q.is_shutdown());
  EXPECT_TRUE(q.shutdown().empty());
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_THROW(q.put(2), ShutDown);
  EXPECT_FALSE(q.try_put(2));
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW(q.get(), ShutDown);
  EXPECT_THROW(q.get_nowait(), ShutDown);
  EXPECT_THROW(q.get(10ms), ShutDown);
  EXPECT_EQ(q.try_get(), std::nullopt);
  // Another client of the same queue sees it.
  Ids other("sd", s.options());
  EXPECT_TRUE(other.is_shutdown());
  EXPECT_THROW(other.put(3), ShutDown);
}

TEST(RedisQueue, ShutdownWakesEveryBlockedCallerInEveryProcess) {
  RedisServer s;
  Ids full("sd_wake_full", 1, s.options());
  Ids empty("sd_wake_empty", s.options());
  full.put(0);
  std::vector<Worker> ws;
  for (int i = 0; i < 3; ++i) {
    ws.emplace_back("getter", args(s, "sd_wake_empty", 0, "-1"));
    ASSERT_EQ(ws.back().line(), "ready");
  }
  for (int i = 0; i < 3; ++i) {
    ws.emplace_back("putter", args(s, "sd_wake_full", 1, "7"));
    ASSERT_EQ(ws.back().line(), "ready");
  }
  await_blocked(s, 6);
  empty.shutdown();
  full.shutdown();
  for (auto& w : ws) EXPECT_EQ(w.line(), "shutdown");
  EXPECT_EQ(full.qsize(), 1u);  // normal shutdown keeps the items
}

TEST(RedisQueue, ShutdownImmediateRemovesItemsAndReleasesJoin) {
  RedisServer s;
  Ids q("sd_imm", s.options());
  for (std::int64_t i = 0; i < 5; ++i) q.put(i);
  EXPECT_EQ(q.get(), 0);  // leased: still unfinished after the shutdown
  Worker j("joiner", args(s, "sd_imm", 0));
  ASSERT_EQ(j.line(), "ready");
  await_blocked(s, 1);
  auto removed = q.shutdown(true);
  EXPECT_EQ(removed, (std::vector<std::int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_THROW(q.get_nowait(), ShutDown);
  q.task_done();
  EXPECT_EQ(j.line(), "joined");
}

// shutdown(true) whose reply is lost: the server runs the function and drops the
// connection before it writes the reply; the client reconnects and retries, and the retry
// returns the items the first run removed. A connection killed (CLIENT KILL) after the
// function ran would not lose the reply: the server writes it before it reads its next
// command. So the server drops it itself: a reply larger than its static 16 KiB buffer
// exceeds a hard output limit of 1 byte, and a client over its limit is closed before its
// reply is written (were a part written, the client could not parse it either). At the
// "shutdown:sent" point (the command is written) the test waits until the record of the
// removed items exists (the function ran), then lifts the limit for the retry.
TEST(RedisQueue, ShutdownImmediateWhoseReplyIsLostReturnsItsItems) {
  RedisServer s;
  const std::vector<std::string> items{std::string(10000, 'a'), std::string(10000, 'b'),
                                       std::string(10000, 'c')};
  // A lease of a minute: no heartbeat connects while the test counts connections.
  Options o = s.options(60s);
  int attempts = 0;
  bool ran = false;
  std::int64_t connections = 0;
  o.fault_hook = [&](std::string_view point) {
    if (point != "shutdown:sent" || ++attempts > 1) return;
    ran = eventually([&] { return s.cmd({"EXISTS", "weft:{sd_lost}:sdo"}) == "1"; });
    s.cmd({"CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0"});
    connections = s.info("total_connections_received");
  };
  Queue<std::string> q("sd_lost", o);
  for (const auto& item : items) q.put(item);
  ASSERT_EQ(s.cmd({"CONFIG", "SET", "client-output-buffer-limit", "normal 1 0 0"}), "OK");
  const auto removed = q.shutdown(true);
  EXPECT_TRUE(ran) << "the first attempt did not run";
  EXPECT_EQ(attempts, 2);
  // The client connected again after the hook (the test's INFO connects once more).
  EXPECT_GE(s.info("total_connections_received"), connections + 2);
  ASSERT_EQ(removed.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) EXPECT_TRUE(removed[i] == items[i]) << i;
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

TEST(RedisQueue, ShutdownImmediateWakesBlockedGettersAndPutters) {
  RedisServer s;
  Ids q("sd_imm_wake", 1, s.options());
  q.put(1);
  Worker p("putter", args(s, "sd_imm_wake", 1, "2"));
  ASSERT_EQ(p.line(), "ready");
  await_blocked(s, 1);
  EXPECT_EQ(q.shutdown(true), std::vector<std::int64_t>{1});
  EXPECT_EQ(p.line(), "shutdown");
  Worker g("getter", args(s, "sd_imm_wake", 1, "-1"));
  ASSERT_EQ(g.line(), "ready");
  EXPECT_EQ(g.line(), "shutdown");
}

TEST(RedisQueue, ConsumeEndsWhenShutDownAndDrained) {
  RedisServer s;
  Ids q("consume", s.options());
  Worker c("consumer", args(s, "consume", 0));
  ASSERT_EQ(c.line(), "ready");
  for (std::int64_t i = 0; i < 20; ++i) q.put(i);
  for (std::int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(c.line(), "got " + std::to_string(i));
    EXPECT_EQ(c.line(), "done " + std::to_string(i));
  }
  q.shutdown();
  EXPECT_EQ(c.line(), "shutdown");
  EXPECT_EQ(c.wait(), 0);
  // In process: consume() is a range.
  Ids r("consume2", s.options());
  for (std::int64_t i = 0; i < 5; ++i) r.put(i);
  r.shutdown();
  std::vector<std::int64_t> got;
  for (std::int64_t v : r.consume()) {
    got.push_back(v);
    r.task_done();
  }
  EXPECT_EQ(got, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(r.join(0ms));
}

TEST(RedisQueue, StopTokenCancelsBlockedCallsAndLosesNoWakeUp) {
  RedisServer s;
  Ids q("stop", s.options());
  std::stop_source src;
  std::atomic<int> outcome{0};
  std::thread t([&] {
    try {
      q.get(src.get_token());
      outcome = 1;
    } catch (const Cancelled&) {
      outcome = 2;
    }
  });
  await_blocked(s, 1);
  src.request_stop();
  t.join();
  EXPECT_EQ(outcome.load(), 2);
  // A getter in another process still gets the next item (no token was lost).
  Worker g("getter", args(s, "stop", 0, "-1"));
  ASSERT_EQ(g.line(), "ready");
  await_blocked(s, 1);
  q.put(9);
  EXPECT_EQ(g.line(), "item 9");
  // try_get and join forms.
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_EQ(q.try_get(stopped.get_token()), std::nullopt);
  q.put(1);
  EXPECT_THROW(q.join(stopped.get_token()), Cancelled);
  EXPECT_FALSE(q.join(10ms, stopped.get_token()));
}

struct Point {
  int x = 0;
  int y = 0;
};
struct PointCodec {
  static std::string encode(const Point& p) {
    return std::to_string(p.x) + "," + std::to_string(p.y);
  }
  static Point decode(std::string_view s) {
    const auto comma = s.find(',');
    if (comma == std::string_view::npos) throw std::runtime_error("bad point");
    return Point{std::stoi(std::string(s.substr(0, comma))),
                 std::stoi(std::string(s.substr(comma + 1)))};
  }
};

TEST(RedisQueue, Codecs) {
  RedisServer s;
  Queue<std::string> strings("strings", s.options());
  const std::string binary("a\0b\r\n", 5);
  strings.put(binary);
  strings.put("");
  EXPECT_EQ(strings.get(), binary);
  EXPECT_EQ(strings.get(), "");
  Queue<std::vector<std::byte>> bytes("bytes", s.options());
  bytes.put({std::byte{0}, std::byte{255}});
  EXPECT_EQ(bytes.get(), (std::vector<std::byte>{std::byte{0}, std::byte{255}}));
  Queue<Point, PointCodec> points("points", s.options());
  points.put(Point{3, -4});
  const Point p = points.get();
  EXPECT_EQ(p.x, 3);
  EXPECT_EQ(p.y, -4);
  // A malformed item: the codec's exception, and the item stays in the queue.
  Queue<std::string> raw("ints", s.options());
  raw.put("abc");
  Ids ints("ints", s.options());
  EXPECT_THROW(ints.get(), Error);
  EXPECT_EQ(ints.qsize(), 1u);
  EXPECT_EQ(raw.get(), "abc");
}

TEST(RedisQueue, ManyAtOnce) {
  RedisServer s;
  Ids q("many", 100, s.options());
  std::vector<std::int64_t> v(250);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(i);
  std::thread consumer([&] {
    std::int64_t next = 0;
    while (next < 250) {
      const auto batch = q.get_many(64);
      for (auto x : batch) {
        EXPECT_EQ(x, next);
        ++next;
      }
      EXPECT_THROW(q.task_done(batch.size() + 1), std::logic_error);  // all or none
      q.task_done(batch.size());
    }
  });
  EXPECT_EQ(q.put_many(v), 250u);
  consumer.join();
  EXPECT_TRUE(q.join(10s));
}

}  // namespace
}  // namespace weft::redis::testing
