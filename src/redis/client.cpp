// src/redis/client.cpp: weft::redis::detail::Client over hiredis (synchronous API, RESP2).
//
// Threads: callers take a connection from a pool for the length of one operation; a
// heartbeat thread with its own connection renews the session's lease and releases the
// items of gets whose callers gave up after an unknown outcome. The Lua function library is
// in scripts.hpp; the protocol is in docs/redis.md.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <hiredis/hiredis.h>
#include <mutex>
#include <optional>
#include <random>
#include <sys/socket.h>
#include <sys/time.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

#include <weft/errors.hpp>
#include <weft/redis/client.hpp>

#include "redis/scripts.hpp"

namespace weft::redis::detail {
namespace {

using std::chrono::milliseconds;

// The library's functions (scripts.hpp), in the order of kFunctionNames.
enum Script {
  kInit,
  kPut,
  kGet,
  kAck,
  kJoin,
  kStat,
  kShutdown,
  kRenew,
  kLeave,
  kDestroy,
  kNack,
  kScriptCount
};

constexpr std::array<const char*, kScriptCount> kFunctionNames = {
    "init",     "put",   "get",   "ack",     "join",   "stat",
    "shutdown", "renew", "leave", "destroy", "release"};

// FCALL's names of the functions, and the library's text (FUNCTION LOAD).
const std::array<std::string, kScriptCount>& function_names() {
  static const std::array<std::string, kScriptCount> names = [] {
    std::array<std::string, kScriptCount> n;
    for (std::size_t i = 0; i < n.size(); ++i) n[i] = lua::function_name(kFunctionNames[i]);
    return n;
  }();
  return names;
}
const std::string& library_source() {
  static const std::string source = lua::library_source();
  return source;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A retryable failure: the connection dropped or the server said LOADING, BUSY ...
struct Transient {
  std::string what;
};
// A stop request ended the call.
struct Stopped {};

bool starts_with(const redisReply* r, std::string_view p) {
  return std::string_view(r->str, r->len).substr(0, p.size()) == p;
}

// The reply to an FCALL of a function the server does not have (FUNCTION FLUSH, a server
// restarted without its data, another cluster node).
bool function_missing(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && starts_with(r, "ERR Function not found");
}

// A function's refusal of a call for a queue that is not the one the client opened
// (scripts.hpp, begin()).
bool queue_gone(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && starts_with(r, "WEFTGONE");
}

// Errors that pass: a server loading its data or busy in a script, a replica (READONLY: a
// failover; the caller reconnects), a cluster without quorum or a primary (CLUSTERDOWN,
// MASTERDOWN), a slot being migrated (TRYAGAIN; inside a function, a key of such a slot
// fails with "... non local key ...").
bool transient_error(const redisReply* r) {
  if (r->type != REDIS_REPLY_ERROR) return false;
  for (const std::string_view p :
       {"LOADING", "BUSY", "TRYAGAIN", "READONLY", "CLUSTERDOWN", "MASTERDOWN"}) {
    if (starts_with(r, p)) return true;
  }
  return std::string_view(r->str, r->len).find("non local key") != std::string_view::npos;
}

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<std::uint64_t>(::getpid()) ^
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  }());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[gen() & 15];
  return s;
}

std::string format_double(double d) {
  std::array<char, 64> buf{};
  auto [p, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  return std::string(buf.data(), p);
}

std::int64_t as_int(const redisReply* r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(r->str, r->str + r->len, v);
    if (ec == std::errc() && end == r->str + r->len && r->len > 0) return v;
    throw Error("weft::redis: malformed reply (expected an integer, got \"" +
                std::string(r->str, std::min<std::size_t>(r->len, 40)) + "\")");
  }
  throw Error("weft::redis: malformed reply (expected an integer)");
}

std::string as_string(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
    return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  throw Error("weft::redis: malformed reply (expected a string)");
}

const redisReply* element(const redisReply* r, std::size_t i) {
  if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
    throw Error("weft::redis: malformed reply (short array)");
  return r->element[i];
}

timeval to_timeval(milliseconds ms) {
  if (ms < milliseconds(1)) ms = milliseconds(1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

struct Address {
  std::string host;
  int port = 0;
  std::string unix_socket;
};

// One connection. `slot` names it in the server's records of the last get (replay of a
// lost reply); it survives reconnects.
//
// `acks` are pipelined task_done()s (Options::pipeline_task_done), queued unsent: the
// connection's next command carries them (a get inside its function call; any other
// command behind them as ack calls of their own, `sent`, their replies read before its
// reply).
// A dropped connection marks them unsent: they are sent again (acks are idempotent).
struct PendingAck {
  std::vector<std::string> receipts;
  bool sent = false;
};
struct Conn {
  redisContext* ctx = nullptr;
  std::string slot;  // set by Impl::acquire
  std::deque<PendingAck> acks;
  // The socket timeout last set on ctx (negative: none yet): set again only when it
  // changes, not with two setsockopt calls per command.
  milliseconds timeout{-1};
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { drop(); }
  void drop() noexcept {
    if (ctx != nullptr) redisFree(ctx);
    ctx = nullptr;
    timeout = milliseconds(-1);
    for (auto& a : acks) a.sent = false;
  }
  void set_timeout(milliseconds t) {
    if (t == timeout) return;
    redisSetTimeout(ctx, to_timeval(t));
    timeout = t;
  }
  bool replies_pending() const noexcept { return !acks.empty() && acks.front().sent; }
};

}  // namespace

struct Client::Impl {
  std::string name;
  Kind kind;
  std::int64_t maxsize = 0;
  Options opt;
  std::string prefix;    // weft:{name}:
  std::string meta_key;  // weft:{name}:meta
  // Kind letter, maxsize, a space and the queue's generation (set at init): every
  // function's args[2] ("f0 9c1e...").
  std::string settings;
  // ":<generation>" (set at init): the suffix of the queue's token lists, so that a client
  // of an older generation never takes a token meant for this one.
  std::string token_suffix;
  std::string session = random_hex(16);
  // Ids unique within the session (so across clients with the session's 64 random bits):
  // put ids, get request ids, connection slots. Relaxed: only uniqueness matters.
  std::atomic<std::uint64_t> next_id{0};
  std::string unique_id() {
    return std::to_string(next_id.fetch_add(1, std::memory_order_relaxed));
  }
  std::string lease_ms;

  std::mutex addr_mu;
  Address addr;  // guarded by addr_mu

  // An acknowledgement's FCALL found no function: the library is loaded again before the
  // next acknowledgements are written (call() does it for the command it runs).
  std::atomic<bool> library_missing{false};

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Conn>> pool;  // idle connections; guarded by pool_mu

  std::mutex state_mu;
  std::deque<std::string> unacked;   // guarded by state_mu
  std::vector<std::string> orphans;  // tags "<slot> <request id>"; guarded by state_mu
  bool renormalize = false;          // guarded by state_mu
  std::size_t unconfirmed = 0;       // pipelined acks not yet confirmed; state_mu
  // When the heartbeat sends the unsent acks of idle connections (max: none waits);
  // set by the first task_done() after a flush. Guarded by state_mu.
  Clock::time_point ack_flush_at = Clock::time_point::max();
  std::condition_variable_any confirmed_cv;
  std::condition_variable_any heartbeat_cv;
  std::jthread heartbeat;

  Impl(std::string n, Kind k, std::ptrdiff_t max, Options o)
      : name(std::move(n)), kind(k), maxsize(max > 0 ? max : 0), opt(std::move(o)) {
    if (name.empty()) throw std::invalid_argument("weft::redis: empty queue name");
    if (opt.lease < milliseconds(30))
      throw std::invalid_argument("weft::redis: lease must be at least 30 ms");
    prefix = "weft:{" + name + "}:";
    meta_key = prefix + "meta";
    lease_ms = std::to_string(opt.lease.count());
    const char letter = kind == Kind::fifo ? 'f' : kind == Kind::lifo ? 'l' : 'p';
    settings = letter + std::to_string(maxsize);
    addr = {opt.host, opt.port, opt.unix_socket};
  }

  void hook(std::string_view point) const {
    if (opt.fault_hook) opt.fault_hook(point);
  }

  // --- connections ------------------------------------------------------------------
  std::unique_ptr<Conn> acquire() {
    {
      std::lock_guard lock(pool_mu);
      if (!pool.empty()) {
        auto c = std::move(pool.back());
        pool.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<Conn>();
    c->slot = "s" + unique_id();
    return c;
  }
  void give_back(std::unique_ptr<Conn> c) {
    std::lock_guard lock(pool_mu);
    pool.push_back(std::move(c));
  }
  struct Pooled {
    Impl* impl;
    std::unique_ptr<Conn> conn;
    explicit Pooled(Impl* i) : impl(i), conn(i->acquire()) {}
    Pooled(const Pooled&) = delete;
    Pooled& operator=(const Pooled&) = delete;
    ~Pooled() { impl->give_back(std::move(conn)); }
  };

  redisContext* connect_to(const Address& a) {
    redisContext* ctx =
        a.unix_socket.empty()
            ? redisConnectWithTimeout(a.host.c_str(), a.port, to_timeval(opt.connect_timeout))
            : redisConnectUnixWithTimeout(a.unix_socket.c_str(), to_timeval(opt.connect_timeout));
    if (ctx == nullptr) throw Transient{"cannot allocate a connection"};
    if (ctx->err != 0) {
      std::string what = std::string("connect: ") + ctx->errstr;
      redisFree(ctx);
      throw Transient{what};
    }
    if (a.unix_socket.empty()) redisEnableKeepAlive(ctx);
    auto setup = [&](std::vector<std::string> args) {
      redisSetTimeout(ctx, to_timeval(opt.command_timeout));
      Reply r = command(ctx, args);
      if (!r) {
        std::string what = std::string("setup: ") + ctx->errstr;
        redisFree(ctx);
        throw Transient{what};
      }
      if (r->type == REDIS_REPLY_ERROR) {
        std::string what(r->str, r->len);
        redisFree(ctx);
        if (starts_with(r.get(), "LOADING")) throw Transient{what};
        throw Error("weft::redis: " + args[0] + ": " + what);
      }
    };
    if (!opt.password.empty()) {
      if (opt.username.empty())
        setup({"AUTH", opt.password});
      else
        setup({"AUTH", opt.username, opt.password});
    }
    if (opt.db != 0) setup({"SELECT", std::to_string(opt.db)});
    return ctx;
  }

  static Reply command(redisContext* ctx, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return Reply(static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  Address current_address() {
    std::lock_guard lock(addr_mu);
    return addr;
  }

  // "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> that node's address.
  static Address parse_redirect(const redisReply* r) {
    std::string_view s(r->str, r->len);
    auto sp = s.rfind(' ');
    auto colon = s.rfind(':');
    if (sp == std::string_view::npos || colon == std::string_view::npos || colon < sp)
      throw Error("weft::redis: malformed redirection: " + std::string(s));
    Address a;
    a.host = std::string(s.substr(sp + 1, colon - sp - 1));
    auto port = s.substr(colon + 1);
    std::from_chars(port.data(), port.data() + port.size(), a.port);
    return a;
  }

  // One command on `c`, riding over transient errors until retry_deadline, following
  // MOVED/ASK, loading the function library when the server has not got it. `block` is the
  // server-side block time of a blocking command (added to the reply timeout). `retry_mark`
  // (when nonzero) is the index of an argument that gets an 'r' in front on the attempts
  // after the first: the command may have run before (a lost reply). Throws Stopped, Error,
  // std::exception from the hook.
  Reply call(Conn& c, std::vector<std::string> args, Clock::time_point retry_deadline,
             milliseconds block, const std::stop_token* stop, Script script = kScriptCount,
             std::size_t retry_mark = 0) {
    milliseconds backoff(2);
    std::string last;
    bool reloaded = false;  // the library was loaded once in this call
    for (bool first = true;; first = false) {
      if (!first && retry_mark != 0 && !args.at(retry_mark).starts_with('r'))
        args[retry_mark].insert(0, 1, 'r');
      if (stop != nullptr && stop->stop_requested()) throw Stopped{};
      try {
        if (c.ctx == nullptr) c.ctx = connect_to(current_address());
        c.set_timeout(opt.command_timeout + block);
        Reply r;
        {
          const int fd = c.ctx->fd;
          std::optional<std::stop_callback<std::function<void()>>> wake;
          if (stop != nullptr && block.count() > 0)
            wake.emplace(*stop, std::function<void()>([fd] { ::shutdown(fd, SHUT_RDWR); }));
          r = exchange(c, args, script == kGet, script == kShutdown ? "shutdown:sent" : nullptr);
        }
        if (!r) {
          last = c.ctx != nullptr ? c.ctx->errstr : "connection lost";
          c.drop();
          if (stop != nullptr && stop->stop_requested()) throw Stopped{};
          throw Transient{last};
        }
        if (r->type != REDIS_REPLY_ERROR) return r;
        if (starts_with(r.get(), "MOVED")) {
          Address a = parse_redirect(r.get());
          {
            std::lock_guard lock(addr_mu);
            addr = a;
          }
          c.drop();
          continue;
        }
        if (starts_with(r.get(), "ASK")) {
          const Address to = parse_redirect(r.get());
          ask_acks(c, to);  // acks a get carried came back unsent: they go first
          return ask(args, to, block, script, stop);
        }
        if (function_missing(r.get()) && script != kScriptCount) {
          load_library(c);  // its transient failures wait below like the command's
          if (!reloaded) {
            reloaded = true;
            continue;
          }
          // Gone again since the last load (FUNCTION FLUSH in a loop, a failover): retried
          // with backoff, within the deadline.
          throw Transient{"the function library went missing again"};
        }
        if (queue_gone(r.get())) throw gone();
        if (starts_with(r.get(), "READONLY")) c.drop();  // a replica now: find the primary
        if (transient_error(r.get())) throw Transient{std::string(r->str, r->len)};
        if (starts_with(r.get(), "OOM")) throw out_of_memory(args, r.get());
        throw Error("weft::redis: " + args[0] + ": " + std::string(r->str, r->len));
      } catch (const Transient& t) {
        last = t.what;
      }
      const auto now = Clock::now();
      if (now + backoff > retry_deadline)
        throw Error("weft::redis: server unavailable (" + last + ")");
      if (stop != nullptr) {
        std::mutex m;
        std::unique_lock lock(m);
        std::condition_variable_any cv;
        cv.wait_for(lock, *stop, backoff, [] { return false; });
      } else {
        std::this_thread::sleep_for(backoff);
      }
      backoff = std::min(backoff * 2, milliseconds(200));
    }
  }

  QueueGone gone() const {
    return QueueGone("weft::redis: queue '" + name +
                     "' was destroyed (and perhaps made again) since this client opened it; "
                     "open a new client");
  }

  // An -OOM reply: the server refuses commands that may grow memory (a put's function; a
  // BLMOVE).
  static OutOfMemory out_of_memory(const std::vector<std::string>& args, const redisReply* r) {
    std::string what = args[0];
    if (args[0] == "FCALL") {
      const auto& names = function_names();
      const auto it = std::find(names.begin(), names.end(), args.at(1));
      if (it != names.end()) what = kFunctionNames[static_cast<std::size_t>(it - names.begin())];
    }
    return OutOfMemory("weft::redis: " + what +
                       " refused: the server is out of memory (maxmemory reached): " +
                       std::string(r->str, r->len));
  }

  // ASK redirection: ASKING then the command, once, on a connection to that node (which
  // may not have the function library yet: loaded there, then asked again). A stop
  // request wakes a blocking command here as in call(): it shuts the socket down.
  Reply ask(const std::vector<std::string>& args, const Address& a, milliseconds block,
            Script script, const std::stop_token* stop = nullptr) {
    if (stop != nullptr && stop->stop_requested()) throw Stopped{};
    const std::unique_ptr<redisContext, void (*)(redisContext*)> ctx(connect_to(a), redisFree);
    redisSetTimeout(ctx.get(), to_timeval(opt.command_timeout + block));
    const auto once = [&] {
      Reply asking = command(ctx.get(), {"ASKING"});
      return asking ? command(ctx.get(), args) : Reply();
    };
    Reply r;
    {
      const int fd = ctx->fd;
      std::optional<std::stop_callback<std::function<void()>>> wake;
      if (stop != nullptr && block.count() > 0)
        wake.emplace(*stop, std::function<void()>([fd] { ::shutdown(fd, SHUT_RDWR); }));
      r = once();
    }
    if (r && function_missing(r.get()) && script != kScriptCount) {
      Reply loaded = command(ctx.get(), {"FUNCTION", "LOAD", library_source()});
      if (loaded && (loaded->type == REDIS_REPLY_STRING || already_loaded(loaded.get())))
        r = once();
    }
    if (!r && stop != nullptr && stop->stop_requested()) throw Stopped{};
    if (!r) throw Transient{"ASK redirection failed"};
    if (r->type == REDIS_REPLY_ERROR && starts_with(r.get(), "OOM"))
      throw out_of_memory(args, r.get());
    if (queue_gone(r.get())) throw gone();
    if (r->type == REDIS_REPLY_ERROR) throw Transient{std::string(r->str, r->len)};
    return r;
  }

  // Sends the connection's unsent acks to the node an ASK named, one by one; what fails
  // stays unsent.
  void ask_acks(Conn& c, const Address& to) {
    if (c.acks.empty() || c.acks.back().sent) return;
    std::size_t confirmed = 0;
    for (auto it = c.acks.begin(); it != c.acks.end();) {
      if (it->sent) {
        ++it;
        continue;
      }
      try {
        ask(ack_argv(*it), to, milliseconds(0), kAck);
      } catch (const QueueGone&) {
        // Dropped, as in read_ack_replies().
      } catch (const Transient&) {
        ++it;
        continue;
      }
      it = c.acks.erase(it);
      ++confirmed;
    }
    note_confirmed(confirmed);
  }

  // --- pipelined acknowledgements -----------------------------------------------------
  // Receipts as the functions take them: this session's as the member alone.
  void append_wire(std::vector<std::string>& v, const std::vector<std::string>& receipts) const {
    for (const auto& r : receipts) {
      if (r.size() == 17 + session.size() && r[16] == '@' && r.ends_with(session))
        v.push_back(r.substr(0, 16));
      else
        v.push_back(r);
    }
  }
  std::vector<std::string> wire(const std::vector<std::string>& receipts) const {
    std::vector<std::string> v;
    v.reserve(receipts.size());
    append_wire(v, receipts);
    return v;
  }
  std::vector<std::string> ack_argv(const PendingAck& a) const {
    std::vector<std::string> v = {"FCALL", function_names()[kAck], "1", meta_key, session,
                                  settings};
    append_wire(v, a.receipts);
    return v;
  }
  // Writes the command into the output buffer, formatted here in one allocation (hiredis'
  // own argv formatting costs several times the instructions of the rest of a call).
  static void append(redisContext* ctx, const std::vector<std::string>& args) {
    std::size_t size = 16;
    for (const auto& a : args) size += a.size() + 16;
    std::string out;
    out.reserve(size);
    const auto header = [&out](char tag, std::size_t n) {
      std::array<char, 24> digits{};
      const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), n);
      out += tag;
      out.append(digits.data(), end);
      out += "\r\n";
    };
    header('*', args.size());  // RESP: an array of bulk strings
    for (const auto& a : args) {
      header('$', a.size());
      out += a;
      out += "\r\n";
    }
    redisAppendFormattedCommand(ctx, out.data(), out.size());
  }
  // Appends the unsent acks to the output buffer (loading the library first if an ack
  // found it missing).
  void append_acks(Conn& c) {
    if (c.acks.empty() || c.acks.back().sent) return;
    if (library_missing.load()) load_library(c);
    for (auto& a : c.acks) {
      if (a.sent) continue;
      append(c.ctx, ack_argv(a));
      a.sent = true;
    }
  }
  // Reads the replies of the sent acks. false: the connection failed (dropped; the acks
  // are unsent again).
  bool read_ack_replies(Conn& c) {
    std::size_t confirmed = 0;
    bool moved = false;
    while (c.replies_pending()) {
      void* raw = nullptr;
      if (redisGetReply(c.ctx, &raw) != REDIS_OK) {
        c.drop();
        note_confirmed(confirmed);
        return false;
      }
      Reply r(static_cast<redisReply*>(raw));
      PendingAck a = std::move(c.acks.front());
      c.acks.pop_front();
      if (r && r->type == REDIS_REPLY_ERROR && starts_with(r.get(), "ASK")) {
        // The slot is being migrated and the queue's keys are on the importing node.
        try {
          ask(ack_argv(a), parse_redirect(r.get()), milliseconds(0), kAck);
          ++confirmed;
          continue;
        } catch (const QueueGone&) {
          ++confirmed;  // dropped, as below
          continue;
        } catch (const Transient&) {
          // Sent again with the next command.
        }
      }
      if (r && r->type == REDIS_REPLY_ERROR && starts_with(r.get(), "MOVED")) {
        // The slot moved for good: reconnect there (below) and send it again.
        const Address to = parse_redirect(r.get());
        std::lock_guard lock(addr_mu);
        addr = to;
        moved = true;
      }
      if (r && queue_gone(r.get())) {
        // The queue it acknowledges is gone: dropped (the next call says so).
        ++confirmed;
        continue;
      }
      if (r && r->type == REDIS_REPLY_ERROR) {
        // No function, LOADING, BUSY ...: send it again with the next command.
        if (function_missing(r.get())) library_missing.store(true);
        a.sent = false;
        c.acks.push_back(std::move(a));
        continue;
      }
      ++confirmed;
    }
    note_confirmed(confirmed);
    if (moved) {
      c.drop();
      return false;
    }
    return true;
  }
  void note_confirmed(std::size_t n) {
    if (n == 0) return;
    {
      std::lock_guard lock(state_mu);
      unconfirmed -= n;
    }
    confirmed_cv.notify_all();
  }
  // Reads the replies the connection owes before a synchronous command.
  void settle(Conn& c) {
    if (c.replies_pending() && !read_ack_replies(c)) throw Transient{"connection lost"};
  }
  // One command, behind the connection's pending acks (one round trip for all). With
  // `fold` (the get function) the unsent acks go inside the command, as its trailing
  // arguments, rather than as calls of their own: confirmed by its reply, unsent again
  // when it fails (they are idempotent; a call cut short may have applied some).
  // `sent_point` (when not null): the command is written out in full, then the fault hook
  // is called with it, before any reply is read.
  Reply exchange(Conn& c, const std::vector<std::string>& args, bool fold,
                 const char* sent_point = nullptr) {
    std::vector<PendingAck> folded;
    std::vector<std::string> with_acks;
    if (fold && !c.acks.empty() && !c.acks.back().sent) {
      with_acks = args;
      for (auto it = c.acks.begin(); it != c.acks.end();) {
        if (it->sent) {
          ++it;
          continue;
        }
        append_wire(with_acks, it->receipts);
        folded.push_back(std::move(*it));
        it = c.acks.erase(it);
      }
    }
    // No unsent ack is left when folding, so append_acks cannot throw (no FUNCTION LOAD).
    append_acks(c);
    append(c.ctx, folded.empty() ? args : with_acks);
    Reply r;
    if (sent_point != nullptr) {
      // No ack is folded here (fold is for the get function only): nothing to put back.
      for (int done = 0; done == 0;) {
        if (redisBufferWrite(c.ctx, &done) != REDIS_OK) return r;
      }
      hook(sent_point);
    }
    if (read_ack_replies(c)) {
      void* raw = nullptr;
      if (redisGetReply(c.ctx, &raw) == REDIS_OK) r.reset(static_cast<redisReply*>(raw));
    }
    if (r && r->type != REDIS_REPLY_ERROR) {
      note_confirmed(folded.size());
    } else {
      for (auto& a : folded) {
        a.sent = false;
        c.acks.push_back(std::move(a));
      }
    }
    return r;
  }
  // Sends and confirms, with a PING behind them, the acks that idle connections owe: all
  // of them (`unsent_only` false), or those not yet written (a task_done whose write failed).
  void flush_idle_acks(Clock::time_point until, bool unsent_only) {
    std::vector<std::unique_ptr<Conn>> owing;
    {
      std::lock_guard lock(pool_mu);
      for (auto& c : pool) {
        // Unsent acks are a suffix of a connection's (append_acks sends in order).
        if (c && !c->acks.empty() && !(unsent_only && c->acks.back().sent))
          owing.push_back(std::move(c));
      }
      std::erase(pool, nullptr);
    }
    for (auto& c : owing) {
      try {
        call(*c, {"PING"}, until, milliseconds(0), nullptr);
      } catch (...) {
      }
      give_back(std::move(c));
    }
  }

  // Until every pipelined ack of this client is confirmed (or retry_max passes): what this
  // client reads next (stats, join) includes its own task_done()s.
  void confirm_all() {
    const auto until = retry_default();
    for (;;) {
      flush_idle_acks(until, false);
      std::unique_lock lock(state_mu);
      if (unconfirmed == 0 || Clock::now() >= until) return;
      // Another thread's connection owes them: its next reply confirms them.
      confirmed_cv.wait_for(lock, milliseconds(50), [&] { return unconfirmed == 0; });
      if (unconfirmed == 0) return;
    }
  }

  // Whether `lib` is a weft library of a protocol older than this client's: "weft_<16 hex>"
  // (protocols 1 and 2 did not name theirs) or "weft_p<protocol>_<16 hex>".
  static bool older_library(std::string_view lib) {
    const auto hex = [](std::string_view h) {
      return h.size() == 16 && std::all_of(h.begin(), h.end(), [](char ch) {
               return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
             });
    };
    if (!lib.starts_with("weft_")) return false;
    lib.remove_prefix(5);
    if (hex(lib)) return true;
    if (!lib.starts_with('p')) return false;
    const auto us = lib.find('_');
    if (us == std::string_view::npos || !hex(lib.substr(us + 1))) return false;
    int proto = 0;
    const auto [end, ec] = std::from_chars(lib.data() + 1, lib.data() + us, proto);
    return ec == std::errc() && end == lib.data() + us && proto < std::atoi(lua::kProtocol);
  }
  // Deletes the weft libraries of older protocols from the server: no queue of this
  // protocol serves their clients, and a client still running one (on a queue of its own
  // protocol) finds its functions missing and loads them again, once per server. Newer
  // protocols' are left, so that two versions side by side do not delete each other's in
  // turn. Best effort: a refusal (a replica, a cluster node down) leaves them.
  void delete_older_libraries(Conn& c) {
    Reply list = command(c.ctx, {"FUNCTION", "LIST", "LIBRARYNAME", "weft_*"});
    if (!list) {
      std::string what = c.ctx->errstr;
      c.drop();
      throw Transient{what};
    }
    if (list->type != REDIS_REPLY_ARRAY) return;
    std::vector<std::string> old;
    for (std::size_t i = 0; i < list->elements; ++i) {
      const redisReply* lib = list->element[i];
      if (lib->type != REDIS_REPLY_ARRAY) continue;
      for (std::size_t k = 0; k + 1 < lib->elements; k += 2) {
        const redisReply* key = lib->element[k];
        const redisReply* val = lib->element[k + 1];
        if (key->type == REDIS_REPLY_STRING && starts_with(key, "library_name") &&
            val->type == REDIS_REPLY_STRING && older_library({val->str, val->len}))
          old.emplace_back(val->str, val->len);
      }
    }
    for (const auto& lib : old) {
      if (!command(c.ctx, {"FUNCTION", "DELETE", lib})) {
        std::string what = c.ctx->errstr;
        c.drop();
        throw Transient{what};
      }
    }
  }

  // FUNCTION LOAD of the library (the server answers with an error when it has it already:
  // its name carries its version, so it is this library).
  static bool already_loaded(const redisReply* r) {
    return r->type == REDIS_REPLY_ERROR &&
           std::string_view(r->str, r->len).find("already exists") != std::string_view::npos;
  }
  // Transient failures (the server's errors as call() classifies them, and OOM: a server
  // out of memory refuses FUNCTION LOAD) throw Transient; the caller retries within its
  // deadline. The connection's socket timeout is the caller's again on return (a blocking
  // command may follow, its block time in its timeout).
  void load_library(Conn& c) {
    const milliseconds callers = c.timeout;
    c.set_timeout(opt.command_timeout);
    library_missing.store(false);
    Reply r;
    try {
      settle(c);  // replies of pipelined acks come first
      r = command(c.ctx, {"FUNCTION", "LOAD", library_source()});
    } catch (...) {
      library_missing.store(true);
      throw;
    }
    if (!r) {
      std::string what = c.ctx->errstr;
      c.drop();
      library_missing.store(true);
      throw Transient{what};
    }
    if (r->type == REDIS_REPLY_STRING || already_loaded(r.get())) {
      // The first client of this library on the server removes the older protocols'.
      if (r->type == REDIS_REPLY_STRING) delete_older_libraries(c);
      if (callers.count() >= 0) c.set_timeout(callers);
      return;
    }
    library_missing.store(true);
    std::string what = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "?";
    if (r->type == REDIS_REPLY_ERROR && starts_with(r.get(), "READONLY")) c.drop();
    if (r->type == REDIS_REPLY_ERROR && (transient_error(r.get()) || starts_with(r.get(), "OOM"))) {
      if (c.ctx != nullptr && callers.count() >= 0) c.set_timeout(callers);
      throw Transient{what};
    }
    if (callers.count() >= 0) c.set_timeout(callers);
    throw Error("weft::redis: FUNCTION LOAD: " + what);
  }

  // Runs a function of the library: FCALL <name> 1 <meta> <session> <settings> extra...
  // `retry_mark`: as call()'s, an index into `extra` (kNoMark: none).
  static constexpr std::size_t kNoMark = static_cast<std::size_t>(-1);
  Reply run(Conn& c, Script s, const std::vector<std::string>& extra,
            Clock::time_point retry_deadline, const std::stop_token* stop = nullptr,
            const std::string* session_override = nullptr, std::size_t retry_mark = kNoMark) {
    static constexpr std::size_t kFixed = 6;
    std::vector<std::string> args;
    args.reserve(kFixed + extra.size());
    args.insert(args.end(), {"FCALL", function_names()[s], "1", meta_key,
                             session_override != nullptr ? *session_override : session, settings});
    args.insert(args.end(), extra.begin(), extra.end());
    return call(c, std::move(args), retry_deadline, milliseconds(0), stop, s,
                retry_mark != kNoMark ? kFixed + retry_mark : 0);
  }

  Clock::time_point retry_until(Clock::time_point deadline) const {
    const auto floor = Clock::now() + opt.retry_min;
    return std::max(deadline, floor);
  }
  Clock::time_point retry_default() const { return Clock::now() + opt.retry_max; }

  // Blocks on a token list ("gtok", "ptok", "jtok" of the client's generation) for at most min(deadline, wake_in, max_block). A stop request
  // wakes it (shutting the socket down); the token it may have taken is restored by the
  // heartbeat's next call.
  bool wait_token(Conn& c, const std::string& list, bool rotate, Clock::time_point deadline,
                  std::int64_t wake_in_ms, const std::stop_token* stop) {
    auto now = Clock::now();
    milliseconds block = opt.max_block;
    if (deadline != Clock::time_point::max())
      block = std::min(block, std::chrono::ceil<milliseconds>(deadline - now));
    if (wake_in_ms >= 0) block = std::min(block, milliseconds(wake_in_ms));
    if (block <= milliseconds(0)) return false;
    std::array<char, 32> secs{};
    std::snprintf(secs.data(), secs.size(), "%.3f", static_cast<double>(block.count()) / 1000.0);
    std::vector<std::string> args;
    const std::string key = prefix + list + token_suffix;
    if (rotate)
      args = {"BLMOVE", key, key, "LEFT", "RIGHT", secs.data()};
    else
      args = {"BLPOP", key, secs.data()};
    try {
      Reply r = call(c, std::move(args), retry_until(deadline), block, stop);
      return r->type != REDIS_REPLY_NIL;
    } catch (const Stopped&) {
      request_renormalize();
      throw;
    }
  }

  // Receipts acknowledged or released explicitly leave the anonymous task_done() order.
  void forget_receipts(const std::vector<std::string>& receipts) {
    std::lock_guard lock(state_mu);
    for (const auto& r : receipts) {
      auto it = std::find(unacked.begin(), unacked.end(), r);
      if (it != unacked.end()) unacked.erase(it);
    }
  }

  void request_renormalize() {
    {
      std::lock_guard lock(state_mu);
      renormalize = true;
    }
    heartbeat_cv.notify_all();
  }

  // --- heartbeat ----------------------------------------------------------------------
  // Renews the lease every lease/3 (next_beat), and at once when a caller asks for a
  // renormalization or left an orphaned get; sends the acks task_done() left unsent on
  // idle connections at ack_flush_at.
  // After a failed beat, nothing is urgent until the next beat: a refused or failing renew
  // is not sent again at once. When the queue is gone (QueueGone), the heartbeat ends: there
  // is no lease to renew, and the orphans' items went with the queue.
  void heartbeat_loop(std::stop_token st) {
    Conn c;
    std::unique_lock lock(state_mu);
    auto next_beat = Clock::now() + opt.lease / 3;
    bool failed = false;  // the last beat failed: wait for the next
    const auto urgent = [&] { return !failed && (renormalize || !orphans.empty()); };
    while (!st.stop_requested()) {
      // Wake-up sources: next_beat, ack_flush_at, request_renormalize() and an orphaned
      // get (notify heartbeat_cv under state_mu's protocol), the stop request.
      heartbeat_cv.wait_until(lock, st, std::min(next_beat, ack_flush_at), urgent);
      if (st.stop_requested()) break;
      const auto now = Clock::now();
      if (!urgent() && now < next_beat) {
        if (now < ack_flush_at) continue;  // armed while we slept: wait for it
        ack_flush_at = Clock::time_point::max();
        lock.unlock();
        try {
          flush_idle_acks(now + opt.lease / 3, true);
        } catch (...) {
          // Unreachable server: the next beat (or the next command) sends them.
        }
        lock.lock();
        continue;
      }
      std::vector<std::string> extra = {lease_ms, std::to_string(opt.dedupe_window.count())};
      extra.insert(extra.end(), orphans.begin(), orphans.end());
      auto taken = std::move(orphans);
      orphans.clear();
      renormalize = false;
      ack_flush_at = Clock::time_point::max();  // the beat sends them
      next_beat = now + opt.lease / 3;
      lock.unlock();
      try {
        flush_idle_acks(Clock::now() + opt.lease / 3, true);
        run(c, kRenew, extra, Clock::now() + opt.lease / 3, &st);
      } catch (const QueueGone&) {
        lock.lock();
        orphans.clear();
        return;
      } catch (...) {
        // Unreachable server, another error, or stop: keep the orphans for the next beat.
        lock.lock();
        orphans.insert(orphans.end(), taken.begin(), taken.end());
        failed = true;
        continue;
      }
      lock.lock();
      failed = false;
    }
  }
};

Client::Client(std::string name, Kind kind, std::ptrdiff_t maxsize, Options options)
    : impl_(std::make_unique<Impl>(std::move(name), kind, maxsize, std::move(options))) {
  Impl::Pooled p(impl_.get());
  const char* kname = kind == Kind::fifo ? "fifo" : kind == Kind::lifo ? "lifo" : "priority";
  // A generation for the queue, should this client make it (init keeps the queue's own).
  Reply r = impl_->run(*p.conn, kInit, {impl_->lease_ms, random_hex(16)}, impl_->retry_default());
  const std::string stored_proto = as_string(element(r.get(), 2));
  if (stored_proto != lua::kProtocol) {
    throw Error("weft::redis: queue '" + impl_->name + "' was made by clients of " +
                (stored_proto.empty() ? std::string("an earlier protocol (none stored)")
                                      : "protocol " + stored_proto) +
                ", this one speaks protocol " + lua::kProtocol +
                ": all clients of one queue must run the same protocol version");
  }
  // Every later call names the queue's generation: the functions refuse it for another.
  const std::string gen = as_string(element(r.get(), 3));
  impl_->settings += ' ' + gen;
  impl_->token_suffix = ':' + gen;
  const std::string stored_kind = as_string(element(r.get(), 0));
  const std::int64_t stored_max = as_int(element(r.get(), 1));
  if (stored_kind != kname || stored_max != impl_->maxsize) {
    // Leave no session behind.
    try {
      impl_->run(*p.conn, kLeave, {}, impl_->retry_default());
    } catch (...) {
    }
    throw std::invalid_argument("weft::redis: queue '" + impl_->name + "' exists as " +
                                stored_kind + " with maxsize " + std::to_string(stored_max) +
                                ", not " + kname + " with maxsize " +
                                std::to_string(impl_->maxsize));
  }
  impl_->heartbeat = std::jthread([this](std::stop_token st) { impl_->heartbeat_loop(st); });
}

Client::~Client() {
  impl_->heartbeat.request_stop();
  impl_->heartbeat_cv.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
  // The session ends: what it holds unacknowledged goes back to the queue now rather than
  // at lease expiry. Best effort: an unreachable server expires the lease instead.
  try {
    impl_->confirm_all();  // acknowledged items must not be requeued by leave
    Impl::Pooled p(impl_.get());
    impl_->run(*p.conn, kLeave, {}, Clock::now() + impl_->opt.command_timeout);
  } catch (...) {
  }
}

Status Client::put(const std::vector<RawPut>& items, Clock::time_point deadline,
                   const std::stop_token* stop, std::size_t& done) {
  auto& im = *impl_;
  done = 0;
  for (const auto& it : items) {
    if (std::isnan(it.priority))
      throw std::invalid_argument("weft::redis: a priority must be a number, not NaN");
  }
  // One request id for the call, sent by every retry: the function records per connection
  // slot how many items of the slot's last request are in, and a retry skips those.
  Impl::Pooled p(impl_.get());
  // Arguments: "<index> <slot> <request id>", the index in the request of the first item
  // sent ("w" in front after a wake-up: the function passes it on; "r" in front, added by
  // call(), on a retry); then the items: payloads, each followed by its priority for a
  // priority queue.
  const bool with_priority = im.kind == Kind::priority;
  const std::size_t per_item = with_priority ? 2 : 1;
  const std::string request = ' ' + p.conn->slot + ' ' + im.unique_id();
  std::vector<std::string> extra;
  extra.reserve(1 + per_item * items.size());
  extra.push_back("0" + request);
  for (const auto& it : items) {
    extra.push_back(it.payload);
    if (with_priority) extra.push_back(format_double(it.priority));
  }
  bool woken = false;
  try {
    for (;;) {
      if (woken) extra[0].insert(0, 1, 'w');
      Reply r = im.run(*p.conn, kPut, extra, im.retry_until(deadline), stop, nullptr, 0);
      woken = false;
      if (r->type == REDIS_REPLY_INTEGER) {  // all in
        done = items.size();
        im.hook("put:committed");
        return Status::ok;
      }
      const std::string tag = as_string(element(r.get(), 0));
      if (tag == "S") return Status::shutdown;
      // Full after n more: those are in; the rest waits, sent again under the same request
      // (so a put that got in before a lost reply is not repeated).
      const auto n = static_cast<std::size_t>(as_int(element(r.get(), 2)));
      done += n;
      extra.erase(extra.begin() + 1, extra.begin() + 1 + static_cast<std::ptrdiff_t>(per_item * n));
      extra[0] = std::to_string(done) + request;
      if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
      if (Clock::now() >= deadline) return Status::unavailable;
      if (im.wait_token(*p.conn, "ptok", false, deadline, as_int(element(r.get(), 1)), stop)) {
        woken = true;
        im.hook("put:woken");
      }
    }
  } catch (const Stopped&) {
    return Status::cancelled;
  }
}

Status Client::get(std::size_t max, std::vector<RawItem>& out, Clock::time_point deadline,
                   const std::stop_token* stop, bool remember_receipts) {
  auto& im = *impl_;
  const std::string req = "r" + im.unique_id();
  Impl::Pooled p(impl_.get());
  // The request's tag, "<slot> <request id>": its items are recorded under it.
  const std::string request_tag = p.conn->slot + ' ' + req;
  const std::string request = std::to_string(max) + ' ' + im.lease_ms + ' ' + request_tag;
  bool maybe_leased = false;  // a get function may have run without our seeing its reply
  bool woken = false;         // by a token: the function passes the wake-up on
  try {
    for (;;) {
      Reply r;
      try {
        maybe_leased = true;
        // "<count> <lease> <slot> <request id>". Flags in front: "r", added by call() on a
        // retry, says that this request may have run before (its reply lost); only then does
        // the function look for a reply to replay (the items it holds from this request). A
        // later pass of this loop (after a wait) follows an "E" reply: that attempt leased
        // nothing. "w": woken by a token, the function passes the wake-up on.
        r = im.run(*p.conn, kGet, {woken ? 'w' + request : request}, im.retry_until(deadline), stop,
                   nullptr, 0);
      } catch (const QueueGone&) {
        // Refused before the function wrote anything: this request leased nothing (and a
        // lost attempt's items went with the queue).
        throw;
      } catch (...) {
        if (maybe_leased) {
          // Unknown outcome: the server may hold items for this request. The heartbeat
          // releases them (found by slot and request id); this connection's later gets go
          // under a new slot.
          std::lock_guard lock(im.state_mu);
          im.orphans.push_back(request_tag);
          p.conn->slot = "s" + im.unique_id();
        }
        im.heartbeat_cv.notify_all();
        throw;
      }
      maybe_leased = false;
      const std::string tag = as_string(element(r.get(), 0));
      if (tag == "OK") {
        const std::size_t n = (r->elements - 1) / 3;
        out.reserve(out.size() + n);
        for (std::size_t i = 0; i < n; ++i) {
          RawItem it;
          it.receipt = as_string(element(r.get(), 1 + 3 * i)) + '@' + im.session;
          it.payload = as_string(element(r.get(), 2 + 3 * i));
          const std::string sc = as_string(element(r.get(), 3 + 3 * i));
          std::from_chars(sc.data(), sc.data() + sc.size(), it.priority);
          out.push_back(std::move(it));
        }
        if (remember_receipts) {
          std::lock_guard lock(im.state_mu);
          for (std::size_t i = out.size() - n; i < out.size(); ++i)
            im.unacked.push_back(out[i].receipt);
        }
        im.hook("get:leased");
        return Status::ok;
      }
      if (tag == "S") return Status::shutdown;
      if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
      if (Clock::now() >= deadline) return Status::unavailable;
      woken = im.wait_token(*p.conn, "gtok", false, deadline, as_int(element(r.get(), 1)), stop);
      if (woken) im.hook("get:woken");
    }
  } catch (const Stopped&) {
    return Status::cancelled;
  }
}

std::size_t Client::ack(const std::vector<std::string>& receipts) {
  auto& im = *impl_;
  im.forget_receipts(receipts);
  Impl::Pooled p(impl_.get());
  Reply r = im.run(*p.conn, kAck, im.wire(receipts), im.retry_default());
  return static_cast<std::size_t>(as_int(r.get()));
}

void Client::ack_oldest(std::size_t n) {
  auto& im = *impl_;
  std::vector<std::string> receipts;
  {
    std::lock_guard lock(im.state_mu);
    if (im.unacked.size() < n)
      throw std::logic_error("weft::redis: task_done() called more times than items were got");
    for (std::size_t i = 0; i < n; ++i) {
      receipts.push_back(std::move(im.unacked.front()));
      im.unacked.pop_front();
    }
  }
  if (receipts.empty()) return;
  if (im.opt.pipeline_task_done) {
    // Queued on an idle connection, unsent: the next command there carries it (a get
    // inside its function call), or the heartbeat thread sends it ack_delay from now.
    Impl::Pooled p(impl_.get());
    p.conn->acks.push_back(PendingAck{std::move(receipts), false});
    bool arm = false;
    {
      std::lock_guard lock(im.state_mu);
      ++im.unconfirmed;
      if (im.ack_flush_at == Clock::time_point::max()) {
        im.ack_flush_at = Clock::now() + im.opt.ack_delay;
        arm = true;
      }
    }
    if (arm) im.heartbeat_cv.notify_all();
    return;
  }
  try {
    Impl::Pooled p(impl_.get());
    im.run(*p.conn, kAck, im.wire(receipts), im.retry_default());
  } catch (...) {
    std::lock_guard lock(im.state_mu);
    im.unacked.insert(im.unacked.begin(), std::make_move_iterator(receipts.begin()),
                      std::make_move_iterator(receipts.end()));
    throw;
  }
}

void Client::release(const std::vector<std::string>& receipts) {
  auto& im = *impl_;
  im.forget_receipts(receipts);
  Impl::Pooled p(impl_.get());
  im.run(*p.conn, kNack, im.wire(receipts), im.retry_default());
}

Status Client::join(Clock::time_point deadline, const std::stop_token* stop) {
  auto& im = *impl_;
  im.confirm_all();
  Impl::Pooled p(impl_.get());
  // The joiners' token is rotated (BLMOVE), left for the other joiners, except when the
  // server is out of memory: it refuses BLMOVE then, not BLPOP. A token BLPOP took is put
  // back by the join function's normalization, which wakes the next joiner.
  bool rotate = true;
  try {
    for (;;) {
      Reply r = im.run(*p.conn, kJoin, {}, im.retry_until(deadline), stop);
      if (as_int(element(r.get(), 0)) == 0) return Status::ok;
      if (stop != nullptr && stop->stop_requested()) return Status::cancelled;
      if (Clock::now() >= deadline) return Status::unavailable;
      try {
        im.wait_token(*p.conn, "jtok", rotate, deadline, as_int(element(r.get(), 1)), stop);
      } catch (const OutOfMemory&) {
        if (!rotate) throw;
        rotate = false;
      }
    }
  } catch (const Stopped&) {
    return Status::cancelled;
  }
}

std::vector<std::string> Client::shutdown(bool immediate) {
  auto& im = *impl_;
  Impl::Pooled p(impl_.get());
  // "<immediate> <request id> <keep ms>" (an 'r' in front on a retry): the removed items
  // are kept under the request id for longer than this call retries, and a retry gets
  // them (a lost reply loses none). The expiry runs on the server's clock, and a late
  // retry may first reconnect (connect_timeout, then AUTH and SELECT): the margin is
  // generous, twice all of it and a minute more. leave() and destroy() delete the record
  // anyway, so it costs little.
  const auto keep = 2 * (im.opt.retry_max + im.opt.connect_timeout + 3 * im.opt.command_timeout) +
                    milliseconds(60000);
  const std::string request = std::string(immediate ? "1 " : "0 ") + "d" + im.unique_id() + ' ' +
                              std::to_string(keep.count());
  Reply r = im.run(*p.conn, kShutdown, {request}, im.retry_default(), nullptr, nullptr, 0);
  std::vector<std::string> out;
  if (r->type != REDIS_REPLY_ARRAY) throw Error("weft::redis: malformed reply to shutdown");
  out.reserve(r->elements);
  for (std::size_t i = 0; i < r->elements; ++i) out.push_back(as_string(r->element[i]));
  return out;
}

Stats Client::stats() {
  auto& im = *impl_;
  im.confirm_all();
  Impl::Pooled p(impl_.get());
  Reply r = im.run(*p.conn, kStat, {}, im.retry_default());
  Stats s;
  s.ready = as_int(element(r.get(), 0));
  s.unfinished = as_int(element(r.get(), 1));
  s.shutdown = static_cast<int>(as_int(element(r.get(), 2)));
  s.leased = as_int(element(r.get(), 3));
  s.maxsize = as_int(element(r.get(), 4));
  s.sessions = as_int(element(r.get(), 5));
  return s;
}

void Client::destroy() {
  auto& im = *impl_;
  Impl::Pooled p(impl_.get());
  const std::string none;
  im.run(*p.conn, kDestroy, {}, im.retry_default(), nullptr, &none);
}

std::int64_t Client::maxsize() const noexcept {
  return impl_->maxsize;
}
const std::string& Client::name() const noexcept {
  return impl_->name;
}
const std::string& Client::session() const noexcept {
  return impl_->session;
}

}  // namespace weft::redis::detail
