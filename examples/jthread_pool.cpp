// SPDX-License-Identifier: MIT
// jthread_pool: std::jthread workers that a stop request ends, with no queue shutdown at all.
// The Python worker-pool pattern (threads looping on jobs.get(), calling task_done(), the
// main thread join()ing the queue) recast for C++20 cancellation: each worker loops on
// jobs.try_get(stop_token), which a stop request wakes, so the pool stops at once.
#include <atomic>
#include <chrono>
#include <future>
#include <iostream>
#include <optional>
#include <stop_token>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <weft/queue.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "A pool of std::jthread workers that a stop request ends, with the job queue still open.";
constexpr double kDefaultTimeScale = 1;  // the original's timing: about 0.6 s

namespace {

constexpr int kWorkers = 4;
constexpr int kJobs = 12;

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int n = 0; n < workers; ++n) {
      workers_.emplace_back([this, n](std::stop_token stop) { work(n, stop); });
    }
  }

  std::future<int> submit(std::packaged_task<int()> job) {
    std::future<int> result = job.get_future();
    jobs_.put(std::move(job));
    return result;
  }

  // Until every job submitted so far has run.
  void wait() { jobs_.join(); }

  // Asks every worker to stop, then joins them. Destroying the jthreads alone would do too
  // (~jthread requests stop and joins), but one worker after the other.
  void stop() {
    for (std::jthread& worker : workers_) worker.request_stop();
    workers_.clear();
  }

  int workers_stopped() const { return workers_stopped_; }
  bool queue_shut_down() const { return jobs_.is_shutdown(); }

 private:
  void work(int n, std::stop_token stop) {
    // try_get(stop) waits for a job and returns nullopt only when stopped (or when the queue
    // is shut down and drained, which this pool never does).
    while (std::optional<std::packaged_task<int()>> job = jobs_.try_get(stop)) {
      (*job)();
      jobs_.task_done();
    }
    say("Worker ", n, ": stop requested, leaving");
    ++workers_stopped_;
  }

  weft::Queue<std::packaged_task<int()>> jobs_;  // unbounded; never shut down
  std::atomic<int> workers_stopped_{0};
  std::vector<std::jthread> workers_;  // last, so destroyed (stopped and joined) first
};

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  ThreadPool pool(kWorkers);
  std::vector<std::future<int>> results;
  results.reserve(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    results.push_back(pool.submit(std::packaged_task<int()>([i] {
      nap(0.1s + 0.05s * (i % 4));
      say("Job ", i, ": done");
      return i * i;
    })));
  }
  pool.wait();
  say("All jobs done; stopping the idle workers, the queue still open");

  const auto stopping = std::chrono::steady_clock::now();
  pool.stop();
  const auto took = std::chrono::steady_clock::now() - stopping;
  say("All workers stopped in ",
      std::chrono::duration_cast<std::chrono::microseconds>(took).count(), " us");

  bool ok = pool.workers_stopped() == kWorkers && !pool.queue_shut_down() && took < 2s;
  for (int i = 0; i < kJobs; ++i) {
    // wait() returned, so every result must be ready; checking first keeps a bug from hanging.
    ok = ok && results[i].wait_for(0s) == std::future_status::ready && results[i].get() == i * i;
  }
  if (!ok) {
    std::cerr << "jthread_pool: FAILED: a job result was missing or wrong, or the workers did "
                 "not stop promptly\n";
    return 1;
  }
  return 0;
}
