// SPDX-License-Identifier: MIT
// event_signal: one thread tells another "go" with weft::Event.
// A port of the classic Python threading.Event example: the producer does some work, then
// sets the event; the consumer, blocked in event.wait(), starts as soon as it is set.
#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/event.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "A producer works, then sets a weft::Event that a consumer is waiting for.";
constexpr double kDefaultTimeScale = 0.5;  // the original's 2 s of work in 1 s

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

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
  if (demo::printed_lines() != expected) {
    std::cerr << "event_signal: FAILED: the lines came out in an unexpected order\n";
    return 1;
  }
  return 0;
}
