// SPDX-License-Identifier: MIT
// bounded_queue: a producer held back by a bounded weft::Queue feeding a slower consumer.
// A port of the Python queue.Queue(maxsize=5) producer/consumer example. Unlike the original,
// whose consumer loops forever, this one ends: the producer shuts the queue down after its
// last item, and the consumer's consume() loop ends once it has taken that item.
#include <chrono>
#include <iostream>
#include <numeric>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/diagnostics.hpp>
#include <weft/queue.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "A producer fills a weft::Queue of maxsize 5 faster than its consumer empties it.";
constexpr double kDefaultTimeScale = 0.3;  // the original's 5 s in 1.5 s

namespace {

constexpr int kItems = 10;

void producer(weft::Queue<int>& q) {
  weft::diagnostics::set_thread_name("producer");  // how --trace names this thread
  for (int i = 0; i < kItems; ++i) {
    q.put(i);  // blocks while the queue holds 5 items
    say("Produced ", i);
    nap(0.1s);
  }
  q.shutdown();  // no more puts; the items still queued are delivered all the same
}

void consumer(weft::Queue<int>& q, std::vector<int>& consumed) {
  weft::diagnostics::set_thread_name("consumer");
  for (int item : q.consume()) {
    nap(0.5s);  // the slow part, which lets the queue fill up behind it
    say("Consumed ", item);
    consumed.push_back(item);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  weft::Queue<int> q(5, "items");
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
