// tests/redis/harness.cpp: see harness.hpp.
#include "harness.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace weft::redis::testing {
namespace {

bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A loopback port that is free, and whose cluster bus port (+10000) is free too.
int free_port() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind failed");
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    const int port = ntohs(a.sin_port);
    if (port > 0 && port + 10000 < 65536 && port_free(port + 10000)) return port;
  }
  throw std::runtime_error("no free port");
}

std::string reply_text(const redisReply* r) {
  if (r == nullptr) return "NULL";
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "ERR:" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string s;
      for (std::size_t i = 0; i < r->elements; ++i) {
        if (i > 0) s += '\n';
        s += reply_text(r->element[i]);
      }
      return s;
    }
    default:
      return "?";
  }
}

}  // namespace

RedisServer::RedisServer(ServerConfig cfg) : cfg_(cfg) {
  char tmpl[] = "/tmp/weft-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_ = dir_ + "/redis.sock";
  if (cfg_.tcp || cfg_.cluster) port_ = free_port();
  std::ofstream conf(dir_ + "/redis.conf");
  conf << "port " << port_ << "\n"
       << "bind 127.0.0.1\n"
       << "unixsocket " << socket_ << "\nunixsocketperm 700\n"
       << "dir " << dir_ << "\n"
       << "logfile " << dir_ << "/redis.log\n"
       << "daemonize no\nsave \"\"\nmaxmemory-policy noeviction\n"
       << "appendonly " << (cfg_.aof ? "yes" : "no") << "\nappendfsync always\n";
  if (cfg_.cluster)
    conf << "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 3000\n";
  conf.close();
  start();
}

RedisServer::~RedisServer() {
  if (pid_ > 0) kill9();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::start() {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const std::string conf = dir_ + "/redis.conf";
    ::execlp("redis-server", "redis-server", conf.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  pid_ = pid;
  const bool up = eventually([&] {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
    }
    return cmd({"PING"}) == "PONG";
  });
  if (!up) throw std::runtime_error("redis-server did not answer; see " + dir_ + "/redis.log");
}

void RedisServer::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::restart() {
  if (pid_ > 0) throw std::logic_error("restart: still running");
  start();
}

Options RedisServer::options(std::chrono::milliseconds lease, bool tcp) const {
  Options o;
  if (tcp || cfg_.cluster) {
    o.host = "127.0.0.1";
    o.port = port_;
  } else {
    o.unix_socket = socket_;
  }
  o.lease = lease;
  o.retry_max = 60s;
  return o;
}

std::string RedisServer::cmd(const std::vector<std::string>& args) const {
  timeval tv{5, 0};
  redisContext* c = port_ > 0 ? redisConnectWithTimeout("127.0.0.1", port_, tv)
                              : redisConnectUnixWithTimeout(socket_.c_str(), tv);
  if (c == nullptr) return "NOCONN";
  if (c->err != 0) {
    redisFree(c);
    return "NOCONN";
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string s = reply_text(r);
  if (r != nullptr) freeReplyObject(r);
  redisFree(c);
  return s;
}

std::int64_t RedisServer::info(const std::string& field) const {
  const std::string all = cmd({"INFO"});
  const auto at = all.find("\n" + field + ":");
  if (at == std::string::npos) return -1;
  return std::strtoll(all.c_str() + at + field.size() + 2, nullptr, 10);
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// --- Worker ---------------------------------------------------------------------------------
Worker::Worker(const std::string& role, const std::vector<std::string>& args) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_s = {"/proc/self/exe", "--weft-redis-worker", role};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
  exe[n] = '\0';
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execv(exe, argv.data());
    std::_Exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  pid_ = pid;
  in_ = in[1];
  out_ = out[0];
}

Worker::Worker(Worker&& o) noexcept
    : pid_(o.pid_), in_(o.in_), out_(o.out_), buf_(std::move(o.buf_)) {
  o.pid_ = -1;
  o.in_ = o.out_ = -1;
}

Worker::~Worker() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::string Worker::line(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string l = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return l;
    }
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    char chunk[4096];
    const ssize_t got = ::read(out_, chunk, sizeof chunk);
    if (got <= 0) return "";
    buf_.append(chunk, static_cast<std::size_t>(got));
  }
}

std::string Worker::expect(const std::string& prefix, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    std::string l = line(left);
    if (l.empty()) return "";
    if (l.rfind(prefix, 0) == 0) return l;
  }
}

// NOLINTNEXTLINE(readability-make-member-function-const): writes to the worker's pipe
void Worker::send(const std::string& l) {
  const std::string s = l + "\n";
  if (::write(in_, s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    throw std::runtime_error("write to worker failed");
}

// NOLINTNEXTLINE(readability-make-member-function-const): signals the worker's process
void Worker::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Worker::wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string serialize(const Options& o) {
  std::ostringstream s;
  s << (o.unix_socket.empty() ? "-" : o.unix_socket) << ',' << o.host << ',' << o.port << ','
    << o.lease.count();
  return s.str();
}

Options deserialize(const std::string& str) {
  Options o;
  std::istringstream s(str);
  std::string f;
  std::getline(s, f, ',');
  if (f != "-") o.unix_socket = f;
  std::getline(s, o.host, ',');
  std::getline(s, f, ',');
  o.port = std::stoi(f);
  std::getline(s, f, ',');
  o.lease = std::chrono::milliseconds(std::stoll(f));
  o.retry_max = 60s;
  return o;
}

}  // namespace weft::redis::testing
