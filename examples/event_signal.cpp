// event_signal: one thread tells another "go" with weft::Event.
// A port of the classic Python threading.Event example: the producer does some work, then
// sets the event; the consumer, blocked in event.wait(), starts as soon as it is set.
#include <charconv>
#include <chrono>
#include <cmath>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/event.hpp>
#include <weft/lock.hpp>

using namespace std::chrono_literals;

namespace {

// ---- demo plumbing: --time-scale, --help, whole-line printing ---------------------------

constexpr std::string_view kAbout =
    "A producer works, then sets a weft::Event that a consumer is waiting for.\n";
double time_scale = 0.5;  // default: the original's 2 s of work in 1 s

// Python's time.sleep(), scaled by --time-scale.
void nap(std::chrono::duration<double> d) {
  std::this_thread::sleep_for(d * time_scale);
}

weft::Lock print_lock;                // lines never interleave
std::vector<std::string> transcript;  // what was printed, in order (guarded by print_lock)

void say(std::string_view line) {
  std::scoped_lock guard(print_lock);
  std::cout << line << std::endl;
  transcript.emplace_back(line);
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

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = parse_command_line(argc, argv)) return *exit_status;

  weft::Event event;
  weft::Event consumer_spoke;  // only fixes the order of the first two lines, see below

  std::jthread consumer([&] {
    say("Consumer: Waiting for the event to be set...");
    consumer_spoke.set();
    event.wait();
    say("Consumer: Event received, starting work.");
  });

  // The original starts both threads at once, and the consumer's line usually, not always,
  // comes first; starting the producer once the consumer has spoken makes the order certain.
  consumer_spoke.wait();
  std::jthread producer([&] {
    say("Producer: Doing some work...");
    nap(2s);
    say("Producer: Work done, setting the event.");
    event.set();
  });

  producer.join();
  consumer.join();

  // The consumer can only have printed its last line after the producer's: an event that let
  // it through early would show up here as a different order.
  const std::vector<std::string> expected = {
      "Consumer: Waiting for the event to be set...",
      "Producer: Doing some work...",
      "Producer: Work done, setting the event.",
      "Consumer: Event received, starting work.",
  };
  if (transcript != expected) {
    std::cerr << "event_signal: FAILED: the lines came out in an unexpected order\n";
    return 1;
  }
  return 0;
}
