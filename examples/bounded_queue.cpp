// bounded_queue: a producer held back by a bounded weft::Queue feeding a slower consumer.
// A port of the Python queue.Queue(maxsize=5) producer/consumer example. Unlike the original,
// whose consumer loops forever, this one ends: the producer shuts the queue down after its
// last item, and the consumer's consume() loop ends once it has taken that item.
#include <charconv>
#include <chrono>
#include <cmath>
#include <iostream>
#include <mutex>
#include <numeric>
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
    "A producer fills a weft::Queue of maxsize 5 faster than its consumer empties it.\n";

double time_scale = 0.3;  // default: the original's 5 s in 1.5 s

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

constexpr int kItems = 10;

void producer(weft::Queue<int>& q) {
  for (int i = 0; i < kItems; ++i) {
    q.put(i);  // blocks while the queue holds 5 items
    say("Produced ", i);
    nap(0.1s);
  }
  q.shutdown();  // no more puts; the items still queued are delivered all the same
}

void consumer(weft::Queue<int>& q, std::vector<int>& consumed) {
  for (int item : q.consume()) {
    nap(0.5s);  // the slow part, which lets the queue fill up behind it
    say("Consumed ", item);
    consumed.push_back(item);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = parse_command_line(argc, argv)) return *exit_status;

  weft::Queue<int> q(5);
  std::vector<int> consumed;
  {
    std::jthread consumer_thread(consumer, std::ref(q), std::ref(consumed));
    std::jthread producer_thread(producer, std::ref(q));
  }  // both joined here

  std::vector<int> expected(kItems);
  std::iota(expected.begin(), expected.end(), 0);
  if (consumed != expected) {
    std::cerr << "bounded_queue: FAILED: the consumer did not get 0.." << kItems - 1
              << " once each, in order\n";
    return 1;
  }
  return 0;
}
