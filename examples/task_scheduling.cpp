// task_scheduling: a pool of worker threads fed through a weft::Queue, with task_done()/join().
// A port of the Python queue.Queue worker-pool example (workers loop on get(), call
// task_done(), and the main thread join()s the queue); where the original stops its workers
// with one None sentinel each, this one shuts the queue down.
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/lock.hpp>
#include <weft/queue.hpp>

using namespace std::chrono_literals;

namespace {

// ---- demo plumbing: --time-scale, --help, whole-line printing ---------------------------

constexpr std::string_view kAbout =
    "Four workers run 20 tasks from a weft::Queue; main join()s, then shuts the queue down.\n";

double time_scale = 1;  // the original's timing: about 1.3 s

// Python's time.sleep(), scaled by --time-scale.
void nap(std::chrono::duration<double> d) {
  std::this_thread::sleep_for(d * time_scale);
}

weft::Lock print_lock;  // lines never interleave

template <class... Args>
void say(const Args&... args) {
  std::scoped_lock guard(print_lock);
  (std::cout << ... << args) << std::endl;
}

// Sets time_scale from `text`, a finite number >= 0; false if it is not one.
bool parse_time_scale(std::string_view text) {
  double scale = -1;
  const char* const last = text.data() + text.size();
  const auto [end, error] = std::from_chars(text.data(), last, scale);
  if (error != std::errc() || end != last || !std::isfinite(scale) || scale < 0) return false;
  time_scale = scale;
  return true;
}

// Returns an exit status when the program should stop at once (--help, a bad argument).
std::optional<int> parse_command_line(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: " << argv[0] << " [--time-scale S]\n"
                << kAbout << "  --time-scale S  multiply every sleep by S (default " << time_scale
                << "; 1 = the original's timing)\n";
      return 0;
    }
    if (arg == "--time-scale" && i + 1 < argc && parse_time_scale(argv[++i])) continue;
    std::cerr << argv[0] << ": bad arguments (see --help)\n";
    return 2;
  }
  return std::nullopt;
}

// ---- the demo ---------------------------------------------------------------------------

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

int main(int argc, char** argv) {
  if (auto exit_status = parse_command_line(argc, argv)) return *exit_status;

  weft::Queue<Task> tasks;  // unbounded, as queue.Queue()
  Tally tally;
  std::vector<std::jthread> workers;
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
