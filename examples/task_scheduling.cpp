// SPDX-License-Identifier: MIT
// task_scheduling: a pool of worker threads fed through a weft::Queue, with task_done()/join().
// A port of the Python queue.Queue worker-pool example (workers loop on get(), call
// task_done(), and the main thread join()s the queue); where the original stops its workers
// with one None sentinel each, this one shuts the queue down.
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/queue.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "Four workers run 20 tasks from a weft::Queue; main join()s, then shuts the queue down.";
constexpr double kDefaultTimeScale = 1;  // the original's timing: about 1.3 s

namespace {

constexpr int kWorkers = 4;
constexpr int kTasks = 20;

struct Task {
  int id;
  std::chrono::duration<double> cost;  // how long running it takes
};

// Atomics, so that a task run twice at once or a join() returning early would show up as a
// wrong count rather than as a data race.
struct Tally {
  std::array<std::atomic<int>, kTasks> runs_of_task{};
  std::array<std::atomic<int>, kWorkers> tasks_of_worker{};
};

void worker(int n, weft::Queue<Task>& tasks, Tally& tally) {
  for (Task task : tasks.consume()) {
    say("Worker ", n, ": running task ", task.id);
    nap(task.cost);
    ++tally.runs_of_task[task.id];
    ++tally.tasks_of_worker[n];
    tasks.task_done();  // last: join() must not return before the task's effects are in
  }
}

}  // namespace

// An exception that escapes ends the demo through std::terminate: its ctest test fails.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  weft::Queue<Task> tasks;  // unbounded, as queue.Queue()
  Tally tally;
  std::vector<std::jthread> workers;
  workers.reserve(kWorkers);
  for (int n = 0; n < kWorkers; ++n) {
    workers.emplace_back(worker, n, std::ref(tasks), std::ref(tally));
  }

  for (int id = 0; id < kTasks; ++id) {
    tasks.put(Task{id, 0.1s * (1 + id * 7 % 4)});  // 0.1 to 0.4 s, mixed
  }
  tasks.join();  // until every task put has been task_done()

  int total = 0;
  say("All tasks done:");
  for (int n = 0; n < kWorkers; ++n) {
    say("  worker ", n, " ran ", tally.tasks_of_worker[n].load(), " tasks");
    total += tally.tasks_of_worker[n];
  }
  say("  total ", total, " of ", kTasks);

  tasks.shutdown();  // the workers' consume() loops end
  workers.clear();   // and the threads are joined

  for (int id = 0; id < kTasks; ++id) {
    if (const int runs = tally.runs_of_task[id]; runs != 1) {
      std::cerr << "task_scheduling: FAILED: task " << id << " ran " << runs << " times\n";
      return 1;
    }
  }
  if (total != kTasks) {
    std::cerr << "task_scheduling: FAILED: the workers counted " << total << " tasks\n";
    return 1;
  }
  return 0;
}
