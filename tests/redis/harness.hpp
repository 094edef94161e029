// tests/redis/harness.hpp: private redis-server instances and client processes for the
// weft::redis tests.
//
// RedisServer starts `redis-server` on a unix socket (and, on request, a loopback port) in
// a private temporary directory, waits until it answers PING, and stops it (SIGKILL for the
// crash tests, then restart() from the same directory and AOF). Worker starts this test
// executable again (fork + exec of /proc/self/exe) in a client role (main.cpp) and talks to
// it over its stdin/stdout: tests synchronize on the lines it prints and on server-side
// state (blocked_clients, the queue's counters), never on sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <hiredis/hiredis.h>
#include <string>
#include <sys/types.h>
#include <vector>

#include <weft/redis/queue.hpp>

namespace weft::redis::testing {

using namespace std::chrono_literals;

struct ServerConfig {
  bool tcp = false;      // also listen on a free loopback port
  bool aof = false;      // appendonly yes, appendfsync always
  bool cluster = false;  // cluster-enabled yes (implies tcp)
};

class RedisServer {
 public:
  explicit RedisServer(ServerConfig cfg = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  void kill9();    // SIGKILL, reaped
  void restart();  // start again, same directory, port and config
  void stop();     // SIGTERM, reaped
  bool running() const { return pid_ > 0; }

  const std::string& socket() const { return socket_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // Options reaching this server (unix socket unless tcp is asked for), with a short lease.
  Options options(std::chrono::milliseconds lease = 1000ms, bool tcp = false) const;

  // Runs one command on a fresh connection; the reply as text (arrays joined by '\n';
  // errors prefixed with "ERR:" as Redis sends them).
  std::string cmd(const std::vector<std::string>& args) const;
  // A field of INFO, e.g. info("blocked_clients").
  std::int64_t info(const std::string& field) const;

 private:
  void start();
  ServerConfig cfg_;
  std::string dir_;
  std::string socket_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Polls `done` until it is true or `timeout` passes; returns its last value. For waiting on
// state another process changes (the condition is observable, the poll interval short).
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s);

// A client process: this executable with argv = {--weft-redis-worker, role, args...}.
class Worker {
 public:
  Worker(const std::string& role, const std::vector<std::string>& args);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  Worker(Worker&& other) noexcept;

  // The next line the worker printed; "" at EOF or after `timeout`.
  std::string line(std::chrono::milliseconds timeout = 20s);
  // Lines until one starts with `prefix` (returned), or "" at EOF / timeout.
  std::string expect(const std::string& prefix, std::chrono::milliseconds timeout = 20s);
  void send(const std::string& line);  // to its stdin
  void signal(int sig);
  // Waits for exit; the exit status (WEXITSTATUS, or 128 + signal).
  int wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int in_ = -1;   // its stdin
  int out_ = -1;  // its stdout
  std::string buf_;
};

// Entry point of worker roles (main.cpp); returns the exit code.
int worker_main(int argc, char** argv);

// Option strings for workers.
std::string serialize(const Options& o);
Options deserialize(const std::string& s);

}  // namespace weft::redis::testing
