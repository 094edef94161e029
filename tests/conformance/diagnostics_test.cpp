// SPDX-License-Identifier: MIT
// Conformance tests for weft/diagnostics.hpp (docs/diagnostics.md): names, the thread dump
// (structured, printed, from a signal, from the watchdog), and the deadlock detector's
// verdicts: certain on every deadlock shape, none on each near-miss.
//
// Deterministic: a step that must follow another thread's wait waits until diagnostics
// record that thread as waiting (its own record, published before it parks) or until the
// detector has run (deadlock_checks()); no sleeps.
#include "weft/diagnostics.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "diagnostics_helpers.hpp"
#include "weft/barrier.hpp"
#include "weft/condition.hpp"
#include "weft/event.hpp"
#include "weft/lock.hpp"
#include "weft/queue.hpp"
#include "weft/select.hpp"
#include "weft/semaphore.hpp"

namespace diag = weft::diagnostics;
using diag::SourceKind;

namespace {

// Collects deadlock reports.
struct Reports {
  std::mutex m;
  std::vector<diag::DeadlockReport> seen;
  std::size_t size() {
    std::lock_guard g(m);
    return seen.size();
  }
  diag::DeadlockReport at(std::size_t i) {
    std::lock_guard g(m);
    return seen.at(i);
  }
};

class Diagnostics : public ::testing::Test {
 protected:
  void enable(diag::OnDeadlock policy) {
    diag::Options o;
    o.on_deadlock = policy;
    o.on_report = [this](const diag::DeadlockReport& r) {
      std::lock_guard g(reports.m);
      reports.seen.push_back(r);
    };
    diag::enable(std::move(o));
  }
  void SetUp() override { enable(diag::OnDeadlock::raise); }
  void TearDown() override {
    diag::stop_watchdog();
    diag::disable();
  }
  Reports reports;
};

using weft::testing::await_checked;
using weft::testing::await_checked_on;
using weft::testing::printed;
using weft::testing::thread_named;

// "diagnostics_test.cpp:<line>", as the dump gives a construction site in this file.
std::string here(int line) {
  return "diagnostics_test.cpp:" + std::to_string(line);
}

// Checks that the thread named `thread` waits on one source, of kind `kind`, named `name`
// ("": unnamed), constructed at `site`.
void expect_waits_on(const std::string& thread, SourceKind kind, const std::string& name,
                     const std::string& site) {
  const auto w = thread_named(thread);
  ASSERT_TRUE(w);
  ASSERT_EQ(w->waits_on.size(), 1U);
  EXPECT_EQ(w->waits_on[0].kind, kind) << thread;
  EXPECT_EQ(w->waits_on[0].name, name) << thread;
  EXPECT_EQ(w->waits_on[0].site, site) << thread;
}

// A thread named `name` blocks in q.get(): the dump shows the queue unnamed, constructed at
// `line` of this file.
template <class Q>
void expect_get_waits_on_site(Q& q, const std::string& name, int line) {
  std::thread t([&] {
    diag::set_thread_name(name);
    (void)q.get();
  });
  await_checked_on(name, SourceKind::queue_get);
  expect_waits_on(name, SourceKind::queue_get, "", here(line));
  q.put(1);
  t.join();
}

// ---- names --------------------------------------------------------------------------------

TEST_F(Diagnostics, NamesAtConstructionAndLaterAndForgottenAtDestruction) {
  std::optional<weft::Lock> jobs;
  jobs.emplace("jobs");
  const void* addr = &*jobs;  // an address only: name_of never dereferences it
  EXPECT_EQ(diag::name_of(addr), "jobs");
  diag::set_name(*jobs, std::string("renamed"));
  EXPECT_EQ(diag::name_of(addr), "renamed");
  jobs.reset();
  EXPECT_EQ(diag::name_of(addr), "");  // dropped by ~Lock
  const std::string dynamic = "queue-" + std::to_string(7);
  weft::Event e{dynamic};
  weft::RLock r{"r"};
  weft::Semaphore s{2, "permits"};
  weft::BoundedSemaphore bs{1, "bounded"};
  weft::Condition c{"cond"};
  EXPECT_EQ(diag::name_of(&e), "queue-7");
  EXPECT_EQ(diag::name_of(&r), "r");
  EXPECT_EQ(diag::name_of(&s), "permits");
  EXPECT_EQ(diag::name_of(&bs), "bounded");
  EXPECT_EQ(diag::name_of(&c), "cond");
  const std::string longer(100, 'x');
  weft::Lock l{longer};
  EXPECT_EQ(diag::name_of(&l), std::string(47, 'x'));  // truncated, not rejected
}

TEST_F(Diagnostics, UnnamedPrimitiveIsIdentifiedByKindAddressAndSite) {
  weft::Event e;  // constructed while diagnostics are on: its site is known
  std::thread t([&] {
    diag::set_thread_name("waiter");
    e.wait();
  });
  await_checked("waiter", &e);
  const auto w = thread_named("waiter");
  ASSERT_TRUE(w);
  ASSERT_EQ(w->waits_on.size(), 1U);
  EXPECT_EQ(w->waits_on[0].kind, SourceKind::event);
  EXPECT_EQ(w->waits_on[0].address, &e);
  EXPECT_EQ(w->waits_on[0].name, "");
  EXPECT_NE(w->waits_on[0].site.find("diagnostics_test.cpp:"), std::string::npos)
      << w->waits_on[0].site;
  e.set();
  t.join();
}

TEST_F(Diagnostics, BarrierWaitShowsAsTheNamedBarrier) {
  {
    const int line = __LINE__ + 1;
    weft::Barrier b{2, "rendezvous"};
    std::thread t([&] {
      diag::set_thread_name("arriver");
      EXPECT_EQ(b.wait(), 0U);
    });
    await_checked("arriver", &b);
    expect_waits_on("arriver", SourceKind::barrier, "rendezvous", here(line));
    const std::string dump = printed();
    EXPECT_NE(dump.find("Barrier \"rendezvous\" @"), std::string::npos) << dump;
    diag::set_name(b, "renamed");  // named later: the dump follows
    expect_waits_on("arriver", SourceKind::barrier, "renamed", here(line));
    EXPECT_EQ(b.wait(), 1U);
    t.join();
  }
  std::optional<weft::Barrier> gone;
  gone.emplace(1, "gone");
  const void* addr = &*gone;  // an address only: name_of never dereferences it
  EXPECT_EQ(diag::name_of(addr), "gone");
  gone.reset();
  EXPECT_EQ(diag::name_of(addr), "");  // dropped by ~Barrier
}

TEST_F(Diagnostics, UnnamedBarrierShowsItsConstructionSite) {
  const int line = __LINE__ + 1;
  weft::Barrier b{2, [] {}, std::chrono::hours(1)};
  std::thread t([&] {
    diag::set_thread_name("arriver");
    (void)b.wait();
  });
  await_checked("arriver", &b);
  expect_waits_on("arriver", SourceKind::barrier, "", here(line));
  const std::string dump = printed();
  EXPECT_NE(dump.find("Barrier @"), std::string::npos) << dump;
  (void)b.wait();
  t.join();
}

TEST_F(Diagnostics, UnnamedQueuesShowTheirConstructionSite) {
  const int fifo = __LINE__ + 1;
  weft::Queue<int> q;
  expect_get_waits_on_site(q, "fifo-getter", fifo);
  const int bounded = __LINE__ + 1;
  weft::Queue<int> qb{4};
  expect_get_waits_on_site(qb, "bounded-getter", bounded);
  const int lifo = __LINE__ + 1;
  weft::LifoQueue<int> lq{2};
  expect_get_waits_on_site(lq, "lifo-getter", lifo);
  const int prio = __LINE__ + 1;
  weft::PriorityQueue<int, std::greater<>> pq{0, std::greater<>()};
  expect_get_waits_on_site(pq, "priority-getter", prio);
  const int simple = __LINE__ + 1;
  weft::SimpleQueue<int> sq;
  expect_get_waits_on_site(sq, "simple-getter", simple);
}

// ---- the dump -----------------------------------------------------------------------------

TEST_F(Diagnostics, DumpShowsWaitsHoldersDeadlinesAndSelectSources) {
  weft::Lock held{"held"};
  weft::RLock rheld{"rheld"};
  weft::Event never{"never"};
  weft::Event stop_all{"stop-all"};
  std::thread holder([&] {
    diag::set_thread_name("holder");
    held.acquire();
    rheld.acquire();
    rheld.acquire();  // reentered: still one entry
    stop_all.wait();
    rheld.release();
    rheld.release();
    held.release();
  });
  await_checked("holder", &stop_all);
  std::thread blocked([&] {
    diag::set_thread_name("blocked");
    EXPECT_TRUE(held.acquire(std::chrono::hours(1)));
    held.release();
  });
  std::thread selecting([&] {
    diag::set_thread_name("selecting");
    auto r = weft::select(weft::wait(never), weft::acquire(rheld));
    EXPECT_EQ(r.index(), 1U);
    rheld.release();
  });
  await_checked("blocked", &held);
  await_checked("selecting", &rheld);

  const auto h = thread_named("holder");
  ASSERT_TRUE(h);
  ASSERT_EQ(h->holds.size(), 2U);
  EXPECT_EQ(h->holds[0].name, "held");
  EXPECT_EQ(h->holds[1].kind, SourceKind::rlock);
  EXPECT_FALSE(h->deadline);

  const auto b = thread_named("blocked");
  ASSERT_TRUE(b);
  ASSERT_EQ(b->waits_on.size(), 1U);
  EXPECT_EQ(b->waits_on[0].kind, SourceKind::lock);
  EXPECT_EQ(b->waits_on[0].name, "held");
  EXPECT_EQ(b->waits_on[0].holder, h->id);
  ASSERT_TRUE(b->deadline);
  EXPECT_GT(*b->deadline, diag::Clock::now() + std::chrono::minutes(30));
  ASSERT_TRUE(b->since);
  EXPECT_LE(*b->since, diag::Clock::now());

  const auto s = thread_named("selecting");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->waits_on.size(), 2U);  // every source of the select
  EXPECT_EQ(s->waits_on[0].name, "never");
  EXPECT_EQ(s->waits_on[1].kind, SourceKind::rlock);  // the RLock, not its inner Lock
  EXPECT_EQ(s->waits_on[1].address, static_cast<const void*>(&rheld));
  EXPECT_EQ(s->waits_on[1].holder, h->id);

  const std::string text = diag::format(diag::snapshot());
  EXPECT_NE(text.find("thread \"blocked\""), std::string::npos) << text;
  EXPECT_NE(text.find("Lock \"held\""), std::string::npos) << text;
  EXPECT_NE(text.find("on any of:"), std::string::npos) << text;

  // print() writes the same facts without allocating.
  const std::string printed = weft::testing::printed();
  EXPECT_NE(printed.find("thread \"selecting\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("RLock \"rheld\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("held by tid " + std::to_string(h->id)), std::string::npos) << printed;

  stop_all.set();
  holder.join();
  blocked.join();
  selecting.join();
}

TEST_F(Diagnostics, LockReleasedByAnotherThreadLeavesNoHolder) {
  weft::Lock l{"passed"};
  std::thread t([&] {
    diag::set_thread_name("acquirer");
    l.acquire();
  });
  t.join();  // the record is gone with the thread; the next acquirer's is what counts
  std::thread u([&] {
    diag::set_thread_name("acquirer2");
    l.release();  // Python's Lock: any thread may release it
    l.acquire();
    const auto held = thread_named("acquirer2");
    ASSERT_TRUE(held);
    ASSERT_EQ(held->holds.size(), 1U);
    EXPECT_EQ(held->holds[0].address, &l);
    l.release();
    const auto after = thread_named("acquirer2");
    ASSERT_TRUE(after);
    EXPECT_TRUE(after->holds.empty());
  });
  u.join();
}

// Each signal writes to the fd it was installed with.
TEST_F(Diagnostics, EachSignalDumpsToItsOwnFd) {
  int usr1[2];
  int usr2[2];
  ASSERT_EQ(::pipe(usr1), 0);
  ASSERT_EQ(::pipe(usr2), 0);
  ASSERT_TRUE(diag::install_signal_handler(SIGUSR1, usr1[1]));
  ASSERT_TRUE(diag::install_signal_handler(SIGUSR2, usr2[1]));
  EXPECT_FALSE(diag::install_signal_handler(0, usr2[1]));
  ::raise(SIGUSR1);  // handled in this thread before raise() returns
  std::signal(SIGUSR1, SIG_DFL);
  std::signal(SIGUSR2, SIG_DFL);
  ::close(usr1[1]);
  ::close(usr2[1]);
  auto drain = [](int fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    ::close(fd);
    return out;
  };
  EXPECT_NE(drain(usr1[0]).find("weft: threads"), std::string::npos);
  EXPECT_EQ(drain(usr2[0]), "");
}

TEST_F(Diagnostics, SignalHandlerDumpsUnderLoad) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_TRUE(diag::install_signal_handler(SIGUSR1, fds[1]));
  std::string out;
  std::thread reader([&] {
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  });
  // Two threads park and unpark on each other while signals arrive.
  weft::Semaphore ping{0, "ping"};
  weft::Semaphore pong{0, "pong"};
  std::atomic<bool> done{false};
  std::thread a([&] {
    diag::set_thread_name("ping-pong-a");
    while (!done.load()) {
      ping.release();
      pong.acquire();
    }
    ping.release();
  });
  std::thread b([&] {
    diag::set_thread_name("ping-pong-b");
    for (;;) {
      ping.acquire();
      if (done.load()) break;
      pong.release();
    }
  });
  while (!thread_named("ping-pong-a") || !thread_named("ping-pong-b")) std::this_thread::yield();
  for (int i = 0; i < 200; ++i) ::pthread_kill(a.native_handle(), SIGUSR1);
  for (int i = 0; i < 200; ++i) ::pthread_kill(b.native_handle(), SIGUSR1);
  ::raise(SIGUSR1);
  done.store(true);
  pong.release();
  a.join();
  b.join();
  std::signal(SIGUSR1, SIG_DFL);
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  EXPECT_NE(out.find("weft: threads"), std::string::npos);
  EXPECT_NE(out.find("thread \"ping-pong-a\""), std::string::npos) << out.substr(0, 2000);
}

TEST_F(Diagnostics, WatchdogReportsALongWaitOnce) {
  weft::Event e{"slow"};
  std::atomic<int> seen{0};
  std::atomic<bool> right{false};
  diag::start_watchdog(std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                       [&](const diag::ThreadState& t) {
                         if (t.name != "sleeper") return;
                         right = t.waits_on.size() == 1 && t.waits_on[0].name == "slow";
                         seen.fetch_add(1);
                       });
  std::thread t([&] {
    diag::set_thread_name("sleeper");
    e.wait();
  });
  while (seen.load() == 0) std::this_thread::yield();
  diag::stop_watchdog();
  EXPECT_EQ(seen.load(), 1);  // once per wait, however long it lasts
  EXPECT_TRUE(right.load());
  e.set();
  t.join();
}

TEST_F(Diagnostics, ForkedChildSeesOnlyItself) {
  weft::Event e{"e"};
  std::thread t([&] {
    diag::set_thread_name("parent-only");
    e.wait();
  });
  await_checked("parent-only", &e);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const auto rep = diag::snapshot();
    bool ok = true;
    for (const auto& th : rep.threads) ok = ok && th.name != "parent-only";
    weft::Lock l{"child"};  // diagnostics still work in the child
    l.acquire();
    weft::Lock* pl = &l;
    ok = ok && diag::name_of(pl) == "child";
    l.release();
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  e.set();
  t.join();
}

// ---- tracing ------------------------------------------------------------------------------

// The value of "key":<value> in one JSON line of trace_json() (one event per line).
std::string field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const std::size_t at = line.find(k);
  if (at == std::string::npos) return {};
  std::size_t b = at + k.size();
  std::size_t e = b;
  if (line[b] == '"') {
    e = line.find('"', b + 1);
    return line.substr(b + 1, e - b - 1);
  }
  while (e < line.size() && line[e] != ',' && line[e] != '}') ++e;
  return line.substr(b, e - b);
}

// The event lines of trace_json() (one event per line, between the header and "]}"); empty
// if the JSON is not laid out so.
std::vector<std::string> event_lines(const std::string& json) {
  std::vector<std::string> lines;
  if (json.rfind(R"({"displayTimeUnit":"ns","traceEvents":[)", 0) != 0) return lines;
  for (std::size_t at = json.find('\n') + 1; at < json.size();) {
    const std::size_t nl = json.find('\n', at);
    lines.push_back(json.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.empty() || lines.back() != "]}") return {};
  lines.pop_back();
  return lines;
}

TEST_F(Diagnostics, TraceHasAFlowFromANotifierToEveryWake) {
  weft::Semaphore ping{0, "ping"};
  weft::Semaphore pong{0, "pong"};
  constexpr int kRounds = 40;  // fits the per-thread rings (256 events)
  weft::Event done{"done"};
  auto player = [&](const char* name, weft::Semaphore& mine, weft::Semaphore& other, bool serve) {
    diag::set_thread_name(name);
    for (int i = 0; i < kRounds; ++i) {
      if (serve) other.release();
      mine.acquire();
      if (!serve) other.release();
    }
    done.wait();  // the rings are read while both threads exist (a record goes with its thread)
  };
  // A first wait per thread tells diagnostics its Parker (a claim names the woken by it).
  weft::Event warm{"warm"};
  EXPECT_FALSE(warm.wait(std::chrono::microseconds(1)));
  diag::start_tracing();
  std::thread a([&] {
    EXPECT_FALSE(warm.wait(std::chrono::microseconds(1)));
    player("server", ping, pong, true);
  });
  std::thread b([&] {
    EXPECT_FALSE(warm.wait(std::chrono::microseconds(1)));
    player("receiver", pong, ping, false);
  });
  await_checked("server", &done);
  await_checked("receiver", &done);
  const std::string json = diag::trace_json();
  const std::string path = ::testing::TempDir() + "weft_diagnostics_trace.json";
  EXPECT_TRUE(diag::write_trace(path));
  std::remove(path.c_str());
  done.set();
  a.join();
  b.join();
  diag::stop_tracing();

  std::vector<std::string> lines = event_lines(json);
  ASSERT_FALSE(lines.empty()) << json.substr(0, 2000);
  std::map<std::string, std::string> starts;  // flow id -> notifier tid
  std::map<std::string, std::string> names;   // tid -> track name
  int wakes = 0, flows_to_waits = 0;
  std::map<std::string, bool> open;  // tid -> inside a wait slice
  std::string pending_flow_tid;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    ASSERT_FALSE(l.empty()) << json.substr(0, 2000);
    ASSERT_EQ(l.front(), '{') << l;
    ASSERT_TRUE(l.back() == '}' || (l.size() > 1 && l.substr(l.size() - 2) == "},")) << l;
    const std::string ph = field(l, "ph"), tid = field(l, "tid");
    if (ph == "M") names[tid] = field(l, "name") == "thread_name" ? l : "";
    if (ph == "B") open[tid] = true;
    if (ph == "s") starts[field(l, "id")] = tid;
    if (ph == "f") {
      // A flow ends on the wait slice it woke: inside an open wait of its thread, and the
      // next event of that thread closes the wait as a wake.
      EXPECT_TRUE(open[tid]) << l;
      ASSERT_LT(i + 1, lines.size());
      EXPECT_EQ(field(lines[i + 1], "ph"), "E") << lines[i + 1];
      EXPECT_EQ(field(lines[i + 1], "end"), "wake") << lines[i + 1];
      ++flows_to_waits;
    }
    if (ph == "E") {
      if (field(l, "end") == "wake") {
        ++wakes;
        ASSERT_GT(i, 0U);
        EXPECT_EQ(field(lines[i - 1], "ph"), "f") << "a wake without its flow: " << l;
      }
      open[tid] = false;
    }
  }
  EXPECT_GT(wakes, 0);
  EXPECT_EQ(flows_to_waits, wakes);
  for (const auto& l : lines) {
    if (field(l, "ph") != "f") continue;
    const auto s = starts.find(field(l, "id"));
    ASSERT_NE(s, starts.end()) << "a flow that no notifier started: " << l;
    EXPECT_NE(s->second, field(l, "tid")) << "woken by itself: " << l;
  }
  EXPECT_NE(json.find("\"name\":\"server\""), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"receiver\""), std::string::npos);
  EXPECT_NE(json.find("wait Semaphore \\\"ping\\\""), std::string::npos) << json.substr(0, 1500);
}

// A shutdown wakes a blocked getter, and the trace names that wake by the shutdown: the
// closer's slice is "shutdown Queue \"jobs\"" (a claim of a getter is otherwise named
// "put"), its flow ends at the end of the getter's wait, and the shutdown itself is an
// instant on the closer's track.
TEST_F(Diagnostics, TraceNamesTheWakeOfAShutdownShutdown) {
  weft::Queue<int> jobs{0, "jobs"};
  weft::Event done{"done"};
  diag::start_tracing();
  diag::set_thread_name("closer");
  std::thread getter([&] {
    diag::set_thread_name("getter");
    EXPECT_THROW((void)jobs.get(), weft::ShutDown);
    done.wait();  // the ring is read while the thread exists
  });
  weft::testing::await_checked_on("getter", SourceKind::queue_get);
  jobs.shutdown();
  await_checked("getter", &done);
  const std::string json = diag::trace_json();
  done.set();
  getter.join();
  diag::stop_tracing();

  const std::vector<std::string> lines = event_lines(json);
  ASSERT_FALSE(lines.empty()) << json.substr(0, 2000);
  const std::string shutdown_name = R"("name":"shutdown Queue \"jobs\"")";
  std::string closer, woken, flow, instant;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    EXPECT_EQ(l.find("\"name\":\"put Queue"), std::string::npos) << "a shutdown named put: " << l;
    if (l.find(shutdown_name) == std::string::npos) continue;
    if (field(l, "ph") == "i") instant = field(l, "tid");
    if (field(l, "ph") != "X") continue;
    closer = field(l, "tid");
    woken = field(l, "woke");
    ASSERT_LT(i + 1, lines.size());
    EXPECT_EQ(field(lines[i + 1], "ph"), "s") << lines[i + 1];  // the flow starts here
    flow = field(lines[i + 1], "id");
  }
  ASSERT_FALSE(closer.empty()) << "no shutdown slice in " << json;
  EXPECT_EQ(instant, closer) << json;
  EXPECT_NE(woken, closer);
  bool ended = false;  // the flow ends on the getter's track, at the end of its wait
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    if (field(lines[i], "ph") != "f" || field(lines[i], "id") != flow) continue;
    EXPECT_EQ(field(lines[i], "tid"), woken) << lines[i];
    EXPECT_EQ(field(lines[i + 1], "end"), "wake") << lines[i + 1];
    EXPECT_NE(lines[i + 1].find("Queue(get) \\\"jobs\\\""), std::string::npos) << lines[i + 1];
    ended = true;
  }
  EXPECT_TRUE(ended) << "flow " << flow << " does not end in " << json;
}

// Lock and RLock acquire and release are instants named by their kind.
TEST_F(Diagnostics, TraceNamesLockAndRLockEventsByKind) {
  weft::Lock lock{"plain"};
  weft::RLock rlock{"reentrant"};
  diag::start_tracing();
  lock.acquire();
  lock.release();
  rlock.acquire();
  rlock.release();
  const std::string json = diag::trace_json();
  diag::stop_tracing();
  for (const char* name : {R"(acquire Lock \"plain\")", R"(release Lock \"plain\")",
                           R"(acquire RLock \"reentrant\")", R"(release RLock \"reentrant\")"})
    EXPECT_NE(json.find(std::string("\"name\":\"") + name + "\""), std::string::npos)
        << name << json;
}

// ---- certain deadlocks --------------------------------------------------------------------

TEST_F(Diagnostics, SelfDeadlockOnALockIsCertain) {
  weft::Lock l{"twice"};
  l.acquire();
  try {
    l.acquire();
    FAIL() << "no deadlock reported";
  } catch (const weft::Deadlock& d) {
    EXPECT_NE(std::string(d.what()).find("Lock \"twice\""), std::string::npos) << d.what();
  }
  l.release();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports.at(0).threads.size(), 1U);
}

// Two threads, each holding one lock and acquiring the other's: the second to block closes
// the cycle and throws; the first then gets its lock.
template <class L>
void two_lock_cycle(Reports& reports, SourceKind kind) {
  L a{"a"};
  L b{"b"};
  weft::Event a_held;
  diag::set_thread_name("t2");
  b.acquire();  // before t1 exists: t1 finds it held
  std::thread t1([&] {
    diag::set_thread_name("t1");
    a.acquire();
    a_held.set();
    b.acquire();  // blocks until t2 gives up
    b.release();
    a.release();
  });
  a_held.wait();
  await_checked("t1", &b);
  bool thrown = false;
  try {
    a.acquire();
  } catch (const weft::Deadlock& d) {
    thrown = true;
    const std::string text = d.what();
    EXPECT_NE(text.find("certain"), std::string::npos) << text;
    EXPECT_NE(text.find("thread \"t1\""), std::string::npos) << text;
    EXPECT_NE(text.find("thread \"t2\""), std::string::npos) << text;
  }
  EXPECT_TRUE(thrown);
  b.release();
  t1.join();
  ASSERT_EQ(reports.size(), 1U);
  const auto r = reports.at(0);
  ASSERT_EQ(r.threads.size(), 2U);
  EXPECT_EQ(r.threads[0].name, "t2");  // the closing thread first
  EXPECT_EQ(r.threads[0].waits_on.at(0).kind, kind);
  EXPECT_EQ(r.threads[0].waits_on.at(0).name, "a");
  EXPECT_EQ(r.threads[1].name, "t1");
  EXPECT_EQ(r.threads[1].waits_on.at(0).name, "b");
  EXPECT_EQ(r.threads[1].holds.at(0).name, "a");
}

TEST_F(Diagnostics, LockCycleIsCertain) {
  two_lock_cycle<weft::Lock>(reports, SourceKind::lock);
}
TEST_F(Diagnostics, RLockCycleIsCertain) {
  two_lock_cycle<weft::RLock>(reports, SourceKind::rlock);
}

TEST_F(Diagnostics, ThreeThreadCycleIsCertain) {
  weft::Lock a{"a"}, b{"b"}, c{"c"};
  weft::Event held1, held2;
  diag::set_thread_name("main");
  c.acquire();  // before t2 exists
  std::thread t1([&] {
    diag::set_thread_name("t1");
    a.acquire();
    held1.set();
    held2.wait();
    b.acquire();  // held by t2
    b.release();
    a.release();
  });
  std::thread t2([&] {
    diag::set_thread_name("t2");
    b.acquire();
    held2.set();
    c.acquire();  // held by main
    c.release();
    b.release();
  });
  held1.wait();
  held2.wait();
  await_checked("t1", &b);
  await_checked("t2", &c);
  EXPECT_THROW(a.acquire(), weft::Deadlock);
  c.release();
  t2.join();
  t1.join();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports.at(0).threads.size(), 3U);
}

TEST_F(Diagnostics, SelectOfTwoHeldLocksIsCertain) {
  weft::Lock a{"a"}, b{"b"}, c{"c"};
  weft::Event held;
  diag::set_thread_name("main");
  a.acquire();  // before t1 exists
  std::thread t1([&] {
    diag::set_thread_name("t1");
    b.acquire();
    c.acquire();
    held.set();
    a.acquire();  // waits for main
    a.release();
    c.release();
    b.release();
  });
  held.wait();
  await_checked("t1", &a);
  bool thrown = false;
  try {
    weft::select(weft::acquire(b), weft::acquire(c));  // both held by t1
  } catch (const weft::Deadlock& d) {
    thrown = true;
    EXPECT_NE(std::string(d.what()).find("Lock \"c\""), std::string::npos) << d.what();
  }
  EXPECT_TRUE(thrown);
  a.release();
  t1.join();
}

TEST_F(Diagnostics, GroupAllBlockedOnEventsIsCertain) {
  diag::Group g("pair", 2);
  weft::Event e{"e"}, f{"f"};
  std::thread consumer([&] {
    g.join();
    diag::set_thread_name("consumer");
    e.wait();  // nobody will set it... until the producer gives up
  });
  await_checked("consumer", &e);
  g.join();
  diag::set_thread_name("producer");
  EXPECT_THROW(f.wait(), weft::Deadlock);
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports.at(0).threads.size(), 2U);
  EXPECT_EQ(reports.at(0).threads[0].group, "pair");
  e.set();
  consumer.join();
}

TEST_F(Diagnostics, GroupDeadlockInConditionWaitKeepsTheLock) {
  diag::Group g("solo", 1);
  g.join();
  weft::Condition cv{"cv"};
  cv.acquire();
  EXPECT_THROW(cv.wait(), weft::Deadlock);
  cv.release();  // still held after the throw: released exactly once
  EXPECT_THROW(cv.release(), std::logic_error);
}

TEST_F(Diagnostics, ReportPolicyReportsAndSleeps) {
  enable(diag::OnDeadlock::report);
  weft::Lock l{"l"};
  weft::Event go;
  std::thread t([&] {
    diag::set_thread_name("sleeps-anyway");
    l.acquire();
    l.acquire();  // reported, then sleeps: main releases it (a Lock has no owner)
    l.release();
  });
  while (reports.size() == 0) std::this_thread::yield();
  await_checked("sleeps-anyway", &l);
  l.release();
  t.join();
  EXPECT_EQ(reports.size(), 1U);
}

TEST(DiagnosticsDeathTest, AbortPolicyAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        diag::Options o;
        o.on_deadlock = diag::OnDeadlock::abort;
        diag::enable(std::move(o));
        weft::Lock l{"fatal"};
        l.acquire();
        l.acquire();
      },
      "deadlock \\(certain\\)");
}

// ---- near-misses: no certain verdict -------------------------------------------------------

// t1 holds a and waits for b in a way that can end (per `t1_wait`); main holds b and blocks
// on a. The detector runs in main and must find nothing; then `unblock` ends t1's wait.
template <class Wait, class Unblock>
void near_miss(Reports& reports, Wait t1_wait, Unblock unblock) {
  weft::Lock a{"a"};
  weft::Lock b{"b"};
  weft::Event a_held;
  diag::set_thread_name("main");
  b.acquire();  // before t1 exists
  std::thread t1([&] {
    diag::set_thread_name("t1");
    a.acquire();
    a_held.set();
    t1_wait(b);  // returns without b, or with it (then releases it)
    a.release();
  });
  a_held.wait();
  await_checked("t1", &b);
  std::thread closer([&] {
    await_checked("main", &a);  // main's detector has run: now let t1 go
    unblock(b);
  });
  a.acquire();  // blocks until t1 gives up a
  a.release();
  closer.join();
  t1.join();
  if (b.locked()) b.release();
  EXPECT_EQ(reports.size(), 0U);
}

TEST_F(Diagnostics, NearMissTimedWait) {
  weft::Event give_up{"give-up"};
  near_miss(
      reports,
      [&](weft::Lock& b) {
        // A deadline an hour away still ends the wait: not a certain deadlock. Ended early
        // by a select on give_up, also timed.
        auto r = weft::select_for(std::chrono::hours(1), weft::acquire(b), weft::wait(give_up));
        if (r && r->index() == 0) b.release();
      },
      [&](weft::Lock&) { give_up.set(); });
}

TEST_F(Diagnostics, NearMissStopToken) {
  std::stop_source stop;
  near_miss(
      reports,
      [&](weft::Lock& b) {
        if (b.acquire(stop.get_token())) b.release();
      },
      [&](weft::Lock&) { stop.request_stop(); });
}

TEST_F(Diagnostics, NearMissSelectWithOneLiveSource) {
  weft::Event live{"live"};
  near_miss(
      reports,
      [&](weft::Lock& b) {
        auto r = weft::select(weft::acquire(b), weft::wait(live));
        if (r.index() == 0) b.release();
      },
      [&](weft::Lock&) { live.set(); });
}

TEST_F(Diagnostics, NearMissThreadAboutToBeWoken) {
  // The consumer is notified (claimed) but cannot wake before the producer releases the
  // Condition's lock (wait morphing); the producer then blocks in its group. The consumer
  // is not blocked: its wake-up is decided. No certain verdict.
  diag::Group g("pair", 2);
  weft::Lock lock{"cv-lock"};
  weft::Condition cv{lock, "cv"};
  weft::Event f{"f"};
  bool ready = false;
  std::thread consumer([&] {
    g.join();
    diag::set_thread_name("consumer");
    lock.acquire();
    while (!ready) cv.wait();
    lock.release();
  });
  await_checked("consumer", &cv);
  g.join();
  diag::set_thread_name("producer");
  lock.acquire();
  ready = true;
  cv.notify();
  std::thread outsider([&] {
    await_checked("producer", &f);
    f.set();
  });
  f.wait();  // the consumer is claimed: no verdict
  lock.release();
  outsider.join();
  consumer.join();
  EXPECT_EQ(reports.size(), 0U);
}

TEST_F(Diagnostics, NearMissGroupNotComplete) {
  diag::Group g("three", 3);  // only two ever join
  weft::Event e{"e"}, f{"f"};
  std::thread consumer([&] {
    g.join();
    diag::set_thread_name("consumer");
    e.wait();
    f.set();
  });
  await_checked("consumer", &e);
  g.join();
  diag::set_thread_name("main");
  std::thread outsider([&] {
    await_checked("main", &f);
    e.set();
  });
  f.wait();
  outsider.join();
  consumer.join();
  EXPECT_EQ(reports.size(), 0U);
}

TEST_F(Diagnostics, IgnorePolicyRunsNoDetection) {
  enable(diag::OnDeadlock::ignore);
  const std::uint64_t checks = diag::deadlock_checks();
  weft::Lock l{"l"};
  l.acquire();
  std::thread t([&] {
    diag::set_thread_name("ignored");
    l.acquire();
    l.release();
  });
  await_checked("ignored", &l);
  l.release();
  t.join();
  EXPECT_EQ(diag::deadlock_checks(), checks);
}

}  // namespace
