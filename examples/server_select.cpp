// SPDX-License-Identifier: MIT
// server_select: a server loop that waits on three things at once with weft::select: a job
// queue, a control queue ("pause", "resume", "stats") and a shutdown Event; it hands each job
// to a std::jthread worker pool with a select over a put, so that it stays responsive while
// the pool is busy. The pool stops cleanly on request_stop, the job queue still open.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <weft/event.hpp>
#include <weft/queue.hpp>
#include <weft/select.hpp>
#include <weft/semaphore.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "A server loop selecting over a job queue, a control queue and a shutdown Event, feeding a\n"
    "std::jthread worker pool that stops on request_stop.";
constexpr double kDefaultTimeScale = 1;  // about 0.5 s

namespace {

constexpr int kWorkers = 3;
constexpr int kFirstBatch = 6;
constexpr int kSecondBatch = 6;
constexpr int kJobs = kFirstBatch + kSecondBatch;
constexpr auto kPatience = 10s;  // for a reply that must come: a bug fails instead of hanging

struct Job {
  int id = 0;
  std::chrono::duration<double> cost{};
};

struct Stats {
  std::uint64_t dispatched = 0;
  std::uint64_t completed = 0;
  std::size_t waiting = 0;  // jobs queued, not yet taken by the server
  bool paused = false;
};

class Server {
 public:
  Server() {
    for (int n = 0; n < kWorkers; ++n) {
      workers_.emplace_back([this, n](std::stop_token stop) { work(n, stop); });
    }
    loop_ = std::jthread([this] { serve(); });
  }

  weft::Queue<Job>& jobs() { return jobs_; }

  // Sends a command and waits for the server's answer.
  std::optional<Stats> command(std::string what) {
    control_.put(std::move(what));
    return replies_.try_get(kPatience);
  }

  // Until `n` jobs in all have finished.
  bool wait_finished(int n) {
    for (; waited_ < n; ++waited_) {
      if (!finished_.acquire(kPatience)) return false;
    }
    return true;
  }

  // Ends the server loop (shutdown Event), then the pool (request_stop).
  void stop() {
    stopping_.set();
    loop_.join();
    for (std::jthread& w : workers_) w.request_stop();
    workers_.clear();  // ~jthread joins
  }

  std::uint64_t result_sum() const { return result_sum_; }
  int workers_stopped() const { return workers_stopped_; }
  bool loop_ended() const { return loop_ended_; }

 private:
  // The server loop. One select per turn, over what the server can do in its state:
  //   a job in hand:          hand it to a worker  | a command | shutdown
  //   accepting jobs:         take a job           | a command | shutdown
  //   paused, or jobs closed: a command            | shutdown
  void serve() {
    std::optional<Job> in_hand;
    bool paused = false;
    bool jobs_open = true;
    for (;;) {
      std::optional<std::string> cmd;
      if (in_hand && !paused) {
        auto r =
            weft::select(weft::put(work_, *in_hand), weft::get(control_), weft::wait(stopping_));
        if (r.index() == 2) break;
        if (r.index() == 1) cmd = std::move(std::get<1>(r));
        if (r.index() == 0 && std::get<0>(r)) {
          ++dispatched_;
          in_hand.reset();
        }
      } else if (!in_hand && !paused && jobs_open) {
        auto r = weft::select(weft::get(jobs_), weft::get(control_), weft::wait(stopping_));
        if (r.index() == 2) break;
        if (r.index() == 1) cmd = std::move(std::get<1>(r));
        if (r.index() == 0) {
          if (auto& job = std::get<0>(r)) {
            in_hand = *job;
          } else {
            jobs_open = false;  // shut down and drained: reported, not hidden
            say("Server: job queue shut down and drained");
          }
        }
      } else {
        auto r = weft::select(weft::get(control_), weft::wait(stopping_));
        if (r.index() == 1) break;
        cmd = std::move(std::get<0>(r));
      }
      if (!cmd) continue;
      if (*cmd == "pause") paused = true;
      if (*cmd == "resume") paused = false;
      say("Server: ", *cmd);
      replies_.put(Stats{dispatched_, completed_.load(), jobs_.qsize(), paused});
    }
    say("Server: shutdown event set, leaving");
    loop_ended_ = true;
  }

  void work(int n, std::stop_token stop) {
    while (std::optional<Job> job = work_.try_get(stop)) {
      nap(job->cost);
      result_sum_ += static_cast<std::uint64_t>(job->id) * job->id;
      ++completed_;
      say("Worker ", n, ": job ", job->id, " done");
      finished_.release();
    }
    say("Worker ", n, ": stop requested, leaving");
    ++workers_stopped_;
  }

  weft::Queue<Job> jobs_;
  weft::Queue<std::string> control_;
  weft::Event stopping_;
  weft::Queue<Job> work_{1};  // the pool's hand-off: one job at a time waits for a worker
  weft::Queue<Stats> replies_;
  weft::Semaphore finished_{0};   // one permit per finished job, for wait_finished()
  int waited_ = 0;                // permits wait_finished() has taken (main thread only)
  std::uint64_t dispatched_ = 0;  // server thread only
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> result_sum_{0};
  std::atomic<int> workers_stopped_{0};
  std::atomic<bool> loop_ended_{false};
  std::vector<std::jthread> workers_;
  std::jthread loop_;
};

}  // namespace

// An exception that escapes ends the demo through std::terminate: its ctest test fails.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }
  bool ok = true;
  auto check = [&](bool condition, std::string_view what) {
    if (!condition) {
      std::cerr << "server_select: FAILED: " << what << "\n";
      ok = false;
    }
  };
  auto job = [](int id) { return Job{id, 0.05s + 0.02s * (id % 3)}; };

  Server server;

  // 1. A first batch, served as it comes.
  for (int id = 0; id < kFirstBatch; ++id) server.jobs().put(job(id));
  check(server.wait_finished(kFirstBatch), "the first batch did not finish");

  // 2. Paused: jobs wait in the queue; the server still answers commands.
  const std::optional<Stats> at_pause = server.command("pause");
  check(at_pause && at_pause->paused, "no answer to pause");
  for (int id = kFirstBatch; id < kJobs; ++id) server.jobs().put(job(id));
  const std::optional<Stats> while_paused = server.command("stats");
  check(while_paused && at_pause && while_paused->dispatched == at_pause->dispatched &&
            while_paused->waiting == kSecondBatch,
        "a job was dispatched while paused");
  if (while_paused) {
    say("Main: paused with ", while_paused->waiting, " jobs waiting, ", while_paused->completed,
        " done");
  }

  // 3. Resumed; the job queue is shut down once filled: the server drains it, sees it
  // reported as shut down, and keeps answering commands.
  check(server.command("resume").has_value(), "no answer to resume");
  server.jobs().shutdown();
  check(server.wait_finished(kJobs), "the second batch did not finish");
  const std::optional<Stats> final_stats = server.command("stats");
  check(final_stats && final_stats->dispatched == kJobs && final_stats->completed == kJobs &&
            final_stats->waiting == 0,
        "wrong final statistics");

  // 4. Shutdown: the Event ends the server loop, request_stop ends the idle workers.
  const auto stopping = std::chrono::steady_clock::now();
  server.stop();
  const auto took = std::chrono::steady_clock::now() - stopping;
  say("Main: server and ", kWorkers, " workers stopped in ",
      std::chrono::duration_cast<std::chrono::microseconds>(took).count(), " us");

  std::uint64_t expected_sum = 0;
  for (int id = 0; id < kJobs; ++id) expected_sum += static_cast<std::uint64_t>(id) * id;
  check(server.result_sum() == expected_sum, "a job ran twice or not at all");
  check(server.loop_ended(), "the server loop did not end");
  check(server.workers_stopped() == kWorkers, "a worker did not stop");
  check(took < 2s, "stopping took too long");
  return ok ? 0 : 1;
}
