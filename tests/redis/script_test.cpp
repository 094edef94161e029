// tests/redis/script_test.cpp: the library's idempotency, driven directly (whitebox): a put
// retried with the same id adds nothing; a get retried with the same request id returns the
// same item instead of leasing another; the heartbeat's release of an abandoned request puts
// its item back. (The fault tests reach these paths by CLIENT KILL, at random moments; here
// each is hit on purpose.)
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "redis/scripts.hpp"

namespace weft::redis::testing {
namespace {

namespace lua = weft::redis::detail::lua;

class Scripts : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(server_.cmd({"FUNCTION", "LOAD", lua::library_source()}), lua::library_name());
  }
  // FCALL of the library's function `fn` on queue "w", with `settings` ("f0 g1": FIFO,
  // unbounded, generation g1) as a client passes them.
  std::string call(const char* fn, const std::vector<std::string>& extra,
                   const std::string& session = "sessionA") {
    std::vector<std::string> args = {
        "FCALL", lua::function_name(fn), "1", "weft:{w}:meta", session, settings_};
    args.insert(args.end(), extra.begin(), extra.end());
    return server_.cmd(args);
  }
  RedisServer server_;
  std::string settings_ = "f0 g1";
};

TEST_F(Scripts, PutRetriedWithTheSameIdAddsNothing) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  EXPECT_EQ(call("put", {"0 s0 p1", "payload"}), "1");
  EXPECT_EQ(call("put", {"r0 s0 p1", "payload"}),
            "1");  // the retry
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "1");  // one unfinished task
  // Even after the item was got and acknowledged, inside the dedupe window.
  const std::string got = call("get", {"1 30000 s0 r1"});
  ASSERT_EQ(got.rfind("OK\n", 0), 0u) << got;
  const std::string receipt = got.substr(3, got.find('\n', 3) - 3);
  EXPECT_EQ(call("ack", {receipt}), "1");
  EXPECT_EQ(call("put", {"r0 s0 p1", "payload"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "0");
  // The next request on the slot, retried from its second item (as after a reply "full
  // after 1"): what got in is not put again.
  EXPECT_EQ(call("put", {"0 s0 p2", "x", "y"}), "2");
  EXPECT_EQ(call("put", {"r1 s0 p2", "y"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "2");
  // A request whose first item got in before the queue was full, retried whole.
  server_.cmd({"HSET", "weft:{w}:pr:sessionA", "s0", "p3 1"});
  EXPECT_EQ(call("put", {"r0 s0 p3", "u", "v"}), "2");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "3");
  // The record expires on its own (the heartbeat renews it).
  EXPECT_GT(std::stoll(server_.cmd({"PTTL", "weft:{w}:pr:sessionA"})), 0);
}

TEST_F(Scripts, GetRetriedWithTheSameRequestIdReturnsTheSameItem) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  call("put", {"0 s0 p1", "first", "second"});
  const std::string once = call("get", {"1 30000 s0 r1"});
  const std::string again = call("get", {"r1 30000 s0 r1"});  // the reply was lost
  EXPECT_EQ(once, again);
  EXPECT_NE(once.find("first"), std::string::npos);
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");  // "second" still waits
  // A new request on that connection gets the next item.
  EXPECT_NE(call("get", {"1 30000 s0 r2"}).find("second"), std::string::npos);
}

TEST_F(Scripts, AbandonedRequestIsReleasedByTheHeartbeat) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  call("put", {"0 s0 p1", "first"});
  ASSERT_NE(call("get", {"1 30000 s0 r1"}).find("first"), std::string::npos);
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  // The caller gave up without seeing the reply: the heartbeat releases (slot, request).
  EXPECT_EQ(call("renew", {"30000", "3600000", "s0 r1"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:held:sessionA"}), "0");
  // Releasing a request whose items were delivered and acknowledged changes nothing.
  const std::string got = call("get", {"1 30000 s0 r2"});
  const std::string receipt = got.substr(3, got.find('\n', 3) - 3);
  EXPECT_EQ(call("ack", {receipt}), "1");
  EXPECT_EQ(call("renew", {"30000", "3600000", "s0 r2"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "0");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "0");
}

TEST_F(Scripts, ExpiredSessionLosesItsItemsToRecovery) {
  settings_ = "p0 g1";
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("priority\n0\n") + lua::kProtocol + "\ng1");
  call("put", {"0 s0 p1", "low", "5", "high", "1"});
  EXPECT_NE(call("get", {"1 30000 s0 r1"}).find("high"), std::string::npos);
  // The session's lease ends now (as if its heartbeat had stopped).
  server_.cmd({"ZADD", "weft:{w}:clients", "0", "sessionA"});
  const std::string stat = call("stat", {}, "sessionB");
  EXPECT_EQ(stat.substr(0, stat.find('\n')), "2");  // both items wait again
  // ... in priority order, with their priorities.
  const std::string got = call("get", {"1 30000 s0 r1"}, "sessionB");
  EXPECT_NE(got.find("high"), std::string::npos) << got;
}

// The put records live the client's dedupe window after its last heartbeat: a put that
// adds a connection slot's record keeps a longer window than its default hour.
TEST_F(Scripts, PutRecordKeepsALongerDedupeWindow) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  EXPECT_EQ(call("put", {"0 s0 p1", "a"}), "1");
  const auto ttl = [&] { return std::stoll(server_.cmd({"PTTL", "weft:{w}:pr:sessionA"})); };
  EXPECT_LE(ttl(), 3600000);
  EXPECT_EQ(call("renew", {"30000", "7200000"}), "1");  // a two-hour window
  EXPECT_GT(ttl(), 3600000);
  EXPECT_EQ(call("put", {"0 s1 p2", "b"}), "1");  // another slot: a new record
  EXPECT_GT(ttl(), 3600000);
}

TEST_F(Scripts, PutAfterShutdownAddsNothing) {
  settings_ = "f2 g1";
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n2\n") + lua::kProtocol + "\ng1");
  EXPECT_EQ(call("put", {"0 s0 p1", "a"}), "1");
  EXPECT_EQ(call("shutdown", {"0 d1 60000"}), "");
  EXPECT_EQ(call("shutdown", {"0 d1 60000"}), "");  // twice: the mark on `seq` is added once
  // Not full: the put learns it from its sequence number.
  EXPECT_EQ(call("put", {"0 s0 p2", "b"}), "S");
  EXPECT_EQ(call("put", {"0 s0 p3", "c"}), "S");
  // Full: from the shutdown state.
  server_.cmd({"ZADD", "weft:{w}:ready", "0", "0000000000000009"});
  EXPECT_EQ(call("put", {"0 s0 p4", "d"}), "S");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "2");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "1");
  // The queue drains: the item put before the shutdown is still got.
  EXPECT_NE(call("get", {"1 30000 s0 r1"}).find("\na\n"), std::string::npos);
}

// shutdown(true) whose reply was lost: the retry (same request id, 'r') returns the items
// the first attempt removed, not an empty list; another request gets nothing again.
TEST_F(Scripts, ImmediateShutdownRetriedReturnsTheRemovedItems) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  call("put", {"0 s0 p1", "a", "b"});
  EXPECT_EQ(call("shutdown", {"1 d1 60000"}), "a\nb");
  EXPECT_EQ(call("shutdown", {"r1 d1 60000"}), "a\nb");  // the retry
  EXPECT_EQ(call("shutdown", {"1 d2 60000"}), "");       // a new request
  EXPECT_EQ(call("shutdown", {"r1 d2 60000"}), "");
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "0");  // removed, counted as done
  const auto ttl = std::stoll(server_.cmd({"PTTL", "weft:{w}:sdo"}));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 60000);
  // Another session's retry of a request of the same id gets nothing of it.
  EXPECT_EQ(call("shutdown", {"r1 d1 60000"}, "sessionB"), "");
  // The record goes with the session that made it.
  EXPECT_EQ(call("leave", {}, "sessionB"), "1");
  EXPECT_EQ(server_.cmd({"EXISTS", "weft:{w}:sdo"}), "1");
  EXPECT_EQ(call("leave", {}), "1");
  EXPECT_EQ(server_.cmd({"EXISTS", "weft:{w}:sdo"}), "0");
}

// A call that names another generation than the queue's (a queue destroyed and made again)
// is refused, and changes nothing. The caller is a session of the old queue (sessionZ):
// the new one's sessions are all of its generation.
TEST_F(Scripts, CallOfAnotherGenerationIsRefused) {
  ASSERT_EQ(call("init", {"30000", "g1"}), std::string("fifo\n0\n") + lua::kProtocol + "\ng1");
  EXPECT_EQ(call("put", {"0 s0 p1", "a"}), "1");
  settings_ = "l5 g0";
  for (const auto& [fn, extra] : std::vector<std::pair<const char*, std::vector<std::string>>>{
           {"put", {"0 s0 p2", "b"}},
           {"get", {"1 30000 s0 r1"}},
           {"ack", {"0000000000000001"}},
           {"stat", {}},
           {"shutdown", {"1 d1 60000"}},
           {"renew", {"30000", "3600000"}},
           {"destroy", {}}}) {
    const std::string r = call(fn, extra, "sessionZ");
    EXPECT_EQ(r.rfind("ERR:WEFTGONE", 0), 0u) << fn << ": " << r;
  }
  settings_ = "f0";  // none
  EXPECT_EQ(call("put", {"0 s0 p3", "c"}, "sessionZ").rfind("ERR:WEFTGONE", 0), 0u);
  const std::string meta = server_.cmd({"HGETALL", "weft:{w}:meta"});
  EXPECT_EQ(meta.find("seq:g0"), std::string::npos) << meta;  // the put's HINCRBY undone
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:meta"}), "6") << meta;
  EXPECT_EQ(server_.cmd({"HGET", "weft:{w}:meta", "gen"}), "g1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:clients"}), "1");  // sessionZ not registered
  EXPECT_EQ(server_.cmd({"HLEN", "weft:{w}:items"}), "1");
  EXPECT_EQ(server_.cmd({"ZCARD", "weft:{w}:ready"}), "1");
}

}  // namespace
}  // namespace weft::redis::testing
