// tests/redis/script_test.cpp: the scripts' idempotency, driven directly (whitebox): a put
// retried with the same id adds nothing; a get retried with the same request id returns the
// same item instead of leasing another; the heartbeat's release of an abandoned request puts
// its item back. (The fault tests reach these paths by CLIENT KILL, at random moments; here
// each is hit on purpose.)
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "redis/scripts.hpp"

namespace weft::redis::testing {
namespace {

namespace lua = weft::redis::detail::lua;

class Scripts : public ::testing::Test {
 protected:
  std::string eval(const char* body, const std::vector<std::string>& extra,
                   const std::string& session = "sessionA") {
    std::vector<std::string> args = {
        "EVAL", std::string(lua::kPrelude) + body, "1", "weft:{w}:meta", "weft:{w}:", session,
        "30000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return server_.cmd(args);
  }
  RedisServer server_;
};

TEST_F(Scripts, PutRetriedWithTheSameIdAddsNothing) {
  ASSERT_EQ(eval(lua::kInit, {"fifo", "0"}), "fifo\n0");
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p1", "0", "payload", "0"}), "OK\n1");
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p1", "r0", "payload", "0"}),
            "OK\n1");  // the retry
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "1");  // one unfinished task
  // Even after the item was got and acknowledged, inside the dedupe window.
  const std::string got = eval(lua::kGet, {"s0", "r1", "1"});
  ASSERT_EQ(got.rfind("OK\n", 0), 0u) << got;
  const std::string receipt = got.substr(3, got.find('\n', 3) - 3);
  EXPECT_EQ(eval(lua::kAck, {receipt}), "1");
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p1", "r0", "payload", "0"}), "OK\n1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "0");
  // The next request on the slot, retried from its second item (as after a reply "full
  // after 1"): what got in is not put again.
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p2", "0", "x", "0", "y", "0"}), "OK\n2");
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p2", "r1", "y", "0"}), "OK\n1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "2");
  // A request whose first item got in before the queue was full, retried whole.
  server_.cmd({"HSET", "weft:{w}:pr:sessionA", "s0", "p3 1"});
  EXPECT_EQ(eval(lua::kPut, {"3600000", "0", "s0", "p3", "r0", "u", "0", "v", "0"}), "OK\n2");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "3");
  // The record expires on its own (the heartbeat renews it).
  EXPECT_GT(std::stoll(server_.cmd({"PTTL", "weft:{w}:pr:sessionA"})), 0);
}

TEST_F(Scripts, GetRetriedWithTheSameRequestIdReturnsTheSameItem) {
  ASSERT_EQ(eval(lua::kInit, {"fifo", "0"}), "fifo\n0");
  eval(lua::kPut, {"3600000", "0", "s0", "p1", "0", "first", "0", "second", "0"});
  const std::string once = eval(lua::kGet, {"s0", "r1", "1"});
  const std::string again = eval(lua::kGet, {"s0", "r1", "1"});  // the reply was lost
  EXPECT_EQ(once, again);
  EXPECT_NE(once.find("first"), std::string::npos);
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");  // "second" still waits
  // A new request on that connection gets the next item.
  EXPECT_NE(eval(lua::kGet, {"s0", "r2", "1"}).find("second"), std::string::npos);
}

TEST_F(Scripts, AbandonedRequestIsReleasedByTheHeartbeat) {
  ASSERT_EQ(eval(lua::kInit, {"fifo", "0"}), "fifo\n0");
  eval(lua::kPut, {"3600000", "0", "s0", "p1", "0", "first", "0"});
  ASSERT_NE(eval(lua::kGet, {"s0", "r1", "1"}).find("first"), std::string::npos);
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  // The caller gave up without seeing the reply: the heartbeat releases (slot, request).
  EXPECT_EQ(eval(lua::kRenew, {"3600000", "s0", "r1"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:held:sessionA"}), "0");
  // Releasing a request whose items were delivered and acknowledged changes nothing.
  const std::string got = eval(lua::kGet, {"s0", "r2", "1"});
  const std::string receipt = got.substr(3, got.find('\n', 3) - 3);
  EXPECT_EQ(eval(lua::kAck, {receipt}), "1");
  EXPECT_EQ(eval(lua::kRenew, {"3600000", "s0", "r2"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "0");
}

TEST_F(Scripts, ExpiredSessionLosesItsItemsToRecovery) {
  ASSERT_EQ(eval(lua::kInit, {"priority", "0"}), "priority\n0");
  eval(lua::kPut, {"3600000", "0", "s0", "p1", "0", "low", "5", "high", "1"});
  EXPECT_NE(eval(lua::kGet, {"s0", "r1", "1"}).find("high"), std::string::npos);
  // The session's lease ends now (as if its heartbeat had stopped).
  server_.cmd({"ZADD", "weft:{w}:clients", "0", "sessionA"});
  const std::string stat = eval(lua::kStat, {}, "sessionB");
  EXPECT_EQ(stat.substr(0, stat.find('\n')), "2");  // both items wait again
  // ... in priority order, with their priorities.
  const std::string got = eval(lua::kGet, {"s0", "r1", "1"}, "sessionB");
  EXPECT_NE(got.find("high"), std::string::npos) << got;
}

}  // namespace
}  // namespace weft::redis::testing
