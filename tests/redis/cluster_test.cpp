// tests/redis/cluster_test.cpp: a 3-node Redis Cluster started by the test, queues whose
// hash tags put them on different nodes, clients that know one node only (they follow
// MOVED), a blocked get on another node woken from another process, and a queue in a slot
// being migrated (ASK).
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace weft::redis::testing {
namespace {

using Ids = Queue<std::int64_t>;

class RedisCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto& n : nodes_) n = std::make_unique<RedisServer>(ServerConfig{.cluster = true});
    std::string cmd = "redis-cli --cluster create";
    for (auto& n : nodes_) cmd += " 127.0.0.1:" + std::to_string(n->port());
    cmd += " --cluster-replicas 0 --cluster-yes >" + nodes_[0]->dir() + "/create.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "see " << nodes_[0]->dir() << "/create.log";
    ASSERT_TRUE(eventually(
        [&] {
          for (auto& n : nodes_) {
            if (n->cmd({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos)
              return false;
          }
          return true;
        },
        30s));
  }

  // The node that serves `name`'s queue: the one that answers a key of it without MOVED.
  int owner(const std::string& name) {
    for (int i = 0; i < 3; ++i) {
      if (nodes_[i]->cmd({"EXISTS", "weft:{" + name + "}:meta"}).rfind("ERR:MOVED", 0) != 0)
        return i;
    }
    return -1;
  }

  std::array<std::unique_ptr<RedisServer>, 3> nodes_;
};

TEST_F(RedisCluster, QueuesOnDifferentNodesThroughOneAddress) {
  // One queue name per node (slots are spread evenly by `--cluster create`).
  std::array<std::string, 3> names;
  for (int i = 0, found = 0; found < 3 && i < 1000; ++i) {
    const std::string n = "cq" + std::to_string(i);
    const int o = owner(n);
    ASSERT_GE(o, 0);
    if (names[static_cast<std::size_t>(o)].empty()) {
      names[static_cast<std::size_t>(o)] = n;
      ++found;
    }
  }
  for (auto& n : names) ASSERT_FALSE(n.empty());
  const Options via_first = nodes_[0]->options(1000ms);
  std::vector<std::unique_ptr<Ids>> qs;
  for (int k = 0; k < 3; ++k) {
    qs.push_back(std::make_unique<Ids>(names[static_cast<std::size_t>(k)], 4, via_first));
    for (std::int64_t i = 0; i < 4; ++i) qs.back()->put(std::int64_t{100} * k + i);
    EXPECT_TRUE(qs.back()->full());
  }
  for (int k = 0; k < 3; ++k) {
    // The keys live on their owner only.
    for (int n = 0; n < 3; ++n) {
      const std::string r =
          nodes_[n]->cmd({"EXISTS", "weft:{" + names[static_cast<std::size_t>(k)] + "}:items"});
      if (n == k)
        EXPECT_EQ(r, "1");
      else
        EXPECT_EQ(r.rfind("ERR:MOVED", 0), 0u) << r;
    }
    for (std::int64_t i = 0; i < 4; ++i)
      EXPECT_EQ(qs[static_cast<std::size_t>(k)]->get(), std::int64_t{100} * k + i);
    for (int i = 0; i < 4; ++i) qs[static_cast<std::size_t>(k)]->task_done();
    EXPECT_TRUE(qs[static_cast<std::size_t>(k)]->join(0ms));
  }

  // A getter in another process, told only the first node's address, blocks on the third
  // node; a put from here wakes it.
  Worker g("getter", {serialize(via_first), names[2], "4", "-1"});
  ASSERT_EQ(g.line(), "ready");
  ASSERT_TRUE(eventually([&] { return nodes_[2]->info("blocked_clients") == 1; }));
  qs[2]->put(77);
  EXPECT_EQ(g.line(), "item 77");
  EXPECT_EQ(g.wait(), 0);
  EXPECT_TRUE(qs[2]->join(10s));
}

// A queue created while its slot is being migrated: the node that owns the slot answers
// ASK (the queue's keys are not there), the client follows it to the importing node with
// ASKING, every call keeps working through the first node's address, and the keys live on
// the importing node only; once the slot is assigned to that node, MOVED is followed.
TEST_F(RedisCluster, QueueInASlotBeingMigratedFollowsAsk) {
  std::string name;
  for (int i = 0; i < 1000 && name.empty(); ++i) {
    const std::string n = "mq" + std::to_string(i);
    if (owner(n) == 0) name = n;
  }
  ASSERT_FALSE(name.empty());
  const std::string slot = nodes_[0]->cmd({"CLUSTER", "KEYSLOT", "weft:{" + name + "}:meta"});
  const std::string from_id = nodes_[0]->cmd({"CLUSTER", "MYID"});
  const std::string to_id = nodes_[1]->cmd({"CLUSTER", "MYID"});
  ASSERT_EQ(nodes_[1]->cmd({"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id}), "OK");
  ASSERT_EQ(nodes_[0]->cmd({"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id}), "OK");
  // The first node now answers ASK for the queue's keys (none of them exists there).
  ASSERT_EQ(nodes_[0]->cmd({"EXISTS", "weft:{" + name + "}:meta"}).rfind("ERR:ASK", 0), 0u);

  const Options via_first = nodes_[0]->options(1000ms);
  // A long lease for this client: once the getter below has left, no lease expiry ends a
  // blocked call early (so the stop request below is what wakes it).
  Ids q(name, 4, nodes_[0]->options(120s));
  for (std::int64_t i = 0; i < 4; ++i) q.put(i);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(9), weft::Full);
  EXPECT_EQ(q.get(), 0);
  EXPECT_EQ(q.get_nowait(), 1);
  q.task_done();
  q.task_done();
  EXPECT_EQ(q.qsize(), 2);
  EXPECT_EQ(q.unfinished_tasks(), 2);
  // The keys were created on the importing node, and only there.
  EXPECT_EQ(nodes_[0]->cmd({"CLUSTER", "COUNTKEYSINSLOT", slot}), "0");
  EXPECT_NE(nodes_[1]->cmd({"CLUSTER", "COUNTKEYSINSLOT", slot}), "0");

  // A getter in another process, told the first node only, blocks (on the importing node,
  // through ASK) once the queue is empty; a put from here wakes it.
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  Worker g("getter", {serialize(via_first), name, "4", "-1"});
  ASSERT_EQ(g.line(), "ready");
  ASSERT_TRUE(eventually([&] { return nodes_[1]->info("blocked_clients") == 1; }));
  q.put(77);
  EXPECT_EQ(g.line(), "item 77");
  EXPECT_EQ(g.wait(), 0);

  // A stop request ends a get blocked on the importing node through ASK (the blocked call
  // would otherwise end at max_block, 30 s).
  {
    std::stop_source stop;
    std::atomic<bool> cancelled{false};
    std::atomic<bool> ended{false};
    std::thread t([&] {
      try {
        q.get(stop.get_token());
      } catch (const weft::Cancelled&) {
        cancelled = true;
      }
      ended = true;
    });
    const bool blocked = eventually([&] { return nodes_[1]->info("blocked_clients") == 1; });
    stop.request_stop();  // (also when it failed to block: the thread must end)
    EXPECT_TRUE(blocked);
    EXPECT_TRUE(eventually([&] { return ended.load(); }, 10s));
    t.join();
    EXPECT_TRUE(cancelled.load());
  }

  // The migration ends: the slot belongs to the importing node; the client follows MOVED.
  for (auto& n : nodes_) ASSERT_EQ(n->cmd({"CLUSTER", "SETSLOT", slot, "NODE", to_id}), "OK");
  EXPECT_EQ(nodes_[0]->cmd({"EXISTS", "weft:{" + name + "}:meta"}).rfind("ERR:MOVED", 0), 0u);
  q.task_done();
  q.task_done();
  EXPECT_TRUE(q.join(10s));
  EXPECT_EQ(q.qsize(), 0);
  q.put(5);
  EXPECT_EQ(q.get(), 5);
  q.task_done();
  EXPECT_TRUE(q.join(10s));
}

}  // namespace
}  // namespace weft::redis::testing
