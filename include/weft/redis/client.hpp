// weft/redis/client.hpp: connection options, errors and the untyped client under
// weft::redis queues (docs/redis.md). Applications use <weft/redis/queue.hpp>.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace weft::redis {

// The server could not be reached (or kept answering with transient errors) within the
// caller's deadline, or it answered something unexpected. An operation that throws Error may
// or may not have taken effect on the server (a put whose reply was lost, say); at-least-once
// delivery covers that: nothing is lost, an item may arrive twice.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server refused to add: it is out of memory (used_memory above maxmemory, under the
// noeviction policy weft::redis needs). Only a put is refused so; gets, task_done(),
// release, join, stats, shutdown and destroy still run, so consumers can drain the queue.
// Thrown at once, not retried: memory comes back only when someone removes items.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

// The queue this client opened is gone: destroyed, or destroyed and made again (perhaps
// with another kind or maxsize) by another client. Thrown by every later call of this
// client, which did nothing (the server refuses it); nothing of the new queue is touched by
// it, not even an acknowledgement of an item got from the old one. Open a new client to
// use the new queue.
class QueueGone : public Error {
 public:
  using Error::Error;
};

// How to reach the server and how the queue behaves across failures.
struct Options {
  // TCP address, used when unix_socket is empty. Redis Cluster: any node; the client
  // follows MOVED/ASK to the node serving the queue's slot.
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_socket;
  std::string username;  // with password: AUTH username password (Redis 6 ACLs)
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT db (standalone servers only)

  std::chrono::milliseconds connect_timeout{2000};
  // How long a reply may take (beyond the block time of a blocking command) before the
  // connection is considered dead.
  std::chrono::milliseconds command_timeout{5000};
  // Transient errors (a dropped connection, LOADING, BUSY, READONLY, TRYAGAIN, CLUSTERDOWN,
  // MASTERDOWN) are retried with backoff until the caller's deadline, but at least for
  // retry_min (so a nowait call survives a reconnect); calls without a timeout parameter
  // that do not block on the queue (qsize, task_done, shutdown ...) retry for retry_max;
  // blocking calls without a deadline retry for as long as they would block.
  std::chrono::milliseconds retry_min{2000};
  std::chrono::milliseconds retry_max{30000};
  // A client that stops renewing its lease for this long (crashed, stopped, partitioned)
  // loses the items it got and has not acknowledged: they return to the queue. Renewed by
  // a heartbeat thread every lease/3.
  std::chrono::milliseconds lease{30000};
  // How long the records that make a put's retries idempotent outlive the client's last
  // heartbeat (a client cut off from the server for longer may put an item twice when it
  // retries a put whose reply was lost).
  std::chrono::milliseconds dedupe_window{std::chrono::hours(1)};
  // A blocking call re-checks its connection at least this often.
  std::chrono::milliseconds max_block{30000};
  // task_done() (and task_done(n)) returns at once, without a round trip: the
  // acknowledgement leaves with this client's next command on the same connection (inside
  // the script of a get, written ahead of any other command), and at the latest ack_delay
  // later, sent by the client's heartbeat thread, whichever comes first; it is also sent
  // before any blocking wait of this client, and this client's join(), qsize() & co. and its
  // destructor wait until the server has it. Other clients (their join() included) see it
  // once it is sent. A client that crashes before then has the item delivered again (at
  // least once). false: task_done() sends it and waits for the reply.
  bool pipeline_task_done = true;
  std::chrono::milliseconds ack_delay{2};
  // Testing: called with the name of a point a call passes ("get:woken", "put:woken",
  // "get:leased", "put:committed"; "shutdown:sent": the shutdown command is written out,
  // its reply not yet read, on every attempt); a test can stop or kill the process there.
  std::function<void(std::string_view)> fault_hook;
};

namespace detail {

enum class Kind { fifo, lifo, priority };
// ok; unavailable: empty (get) or full (put) at the deadline; shutdown; cancelled.
enum class Status { ok, unavailable, shutdown, cancelled };

struct RawItem {
  std::string receipt;
  std::string payload;
  double priority = 0;
};

struct RawPut {
  std::string payload;
  double priority = 0;
};

struct Stats {
  std::int64_t ready = 0;       // qsize
  std::int64_t unfinished = 0;  // put and not yet task_done
  int shutdown = 0;             // 0 open, 1 shut down, 2 shut down immediately
  std::int64_t leased = 0;      // got and not yet task_done
  std::int64_t maxsize = 0;
  std::int64_t sessions = 0;  // live clients
};

using Clock = std::chrono::steady_clock;

// One queue on one server (or cluster slot), shared by every thread of the process that
// uses this object. Thread-safe. Payloads are opaque bytes.
class Client {
 public:
  Client(std::string name, Kind kind, std::ptrdiff_t maxsize, Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Puts items in order; blocks while full. `done` counts the items put (all on ok).
  Status put(const std::vector<RawPut>& items, Clock::time_point deadline,
             const std::stop_token* stop, std::size_t& done);
  // Gets 1..max items (blocks for the first); records their receipts for task_done().
  Status get(std::size_t max, std::vector<RawItem>& out, Clock::time_point deadline,
             const std::stop_token* stop, bool remember_receipts);
  // Acknowledges items; returns how many were not acknowledged before.
  std::size_t ack(const std::vector<std::string>& receipts);
  // Acknowledges the n oldest items this client got and has not acknowledged (all or none:
  // std::logic_error if there are fewer).
  void ack_oldest(std::size_t n);
  // Returns items this client holds to the queue (e.g. an item it could not decode).
  void release(const std::vector<std::string>& receipts);
  Status join(Clock::time_point deadline, const std::stop_token* stop);
  std::vector<std::string> shutdown(bool immediate);
  Stats stats();
  // Deletes every key of the queue: for tests and tear-down; no client may be using it.
  void destroy();

  std::int64_t maxsize() const noexcept;
  const std::string& name() const noexcept;
  const std::string& session() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace detail
}  // namespace weft::redis
