// SPDX-License-Identifier: MIT
// pipeline: a three-stage pipeline (read -> transform -> write) joined by bounded weft::Queues.
// The Python queue pipeline pattern: one thread per stage, each looping over its input queue
// and putting to its output queue. Shutdown travels down the pipe: when a stage's input ends,
// it shuts its output down, which ends the next stage's loop once that has drained it.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include <weft/diagnostics.hpp>
#include <weft/event.hpp>
#include <weft/queue.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "500 records flow through read -> transform -> write stages joined by bounded queues.";
constexpr double kDefaultTimeScale = 1;  // the original's timing: about 1.2 s

namespace {

constexpr int kRecords = 500;
constexpr std::ptrdiff_t kQueueSize = 16;

struct Record {
  int seq;
  std::string text;
};

struct Progress {
  std::atomic<int> read{0};
  std::atomic<int> transformed{0};
  std::atomic<int> written{0};
};

void read_stage(weft::Queue<Record>& out, Progress& progress) {
  weft::diagnostics::set_thread_name("read");  // the thread's name in reports and --trace
  for (int seq = 0; seq < kRecords; ++seq) {
    nap(1ms);  // reading the record
    out.put(Record{seq, "record " + std::to_string(seq)});
    ++progress.read;
  }
  out.shutdown();  // end of input
}

std::string upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

void transform_stage(weft::Queue<Record>& in, weft::Queue<Record>& out, Progress& progress) {
  weft::diagnostics::set_thread_name("transform");
  for (Record record : in.consume()) {
    nap(2ms);  // the slowest stage: the queue before it fills up, the one after it runs dry
    record.text = upper(std::move(record.text));
    out.put(std::move(record));
    ++progress.transformed;
  }
  out.shutdown();  // `in` was shut down and is drained: pass the end on
}

void write_stage(weft::Queue<Record>& in, std::vector<Record>& written, Progress& progress) {
  weft::diagnostics::set_thread_name("write");
  for (Record record : in.consume()) {
    nap(1ms);  // writing the record
    written.push_back(std::move(record));
    ++progress.written;
  }
}

// On a terminal, one line redrawn in place ten times a second; otherwise (a log, a test) a
// plain line now and then. Either way a last line with the final counts. Straight to stderr,
// without say(): while the stages run, no other thread prints.
void report_progress(const Progress& progress, weft::Event& finished) {
  weft::diagnostics::set_thread_name("progress");
  const bool live = isatty(STDERR_FILENO) != 0;
  const auto show = [&](bool last) {
    std::cerr << (live ? "\r" : "") << "stage1 " << progress.read << '/' << kRecords << " stage2 "
              << progress.transformed << " stage3 " << progress.written
              << (live && !last ? "" : "\n") << std::flush;
  };
  while (!finished.wait(live ? 100ms : 400ms)) show(false);
  show(true);
}

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  weft::Queue<Record> read_to_transform(kQueueSize, "read->transform");
  weft::Queue<Record> transform_to_write(kQueueSize, "transform->write");
  Progress progress;
  std::vector<Record> written;
  weft::Event finished{"finished"};
  {
    std::jthread reporter(report_progress, std::cref(progress), std::ref(finished));
    {
      std::jthread reader(read_stage, std::ref(read_to_transform), std::ref(progress));
      std::jthread transformer(transform_stage, std::ref(read_to_transform),
                               std::ref(transform_to_write), std::ref(progress));
      std::jthread writer(write_stage, std::ref(transform_to_write), std::ref(written),
                          std::ref(progress));
    }  // the stages end one after the other as the shutdown travels down the pipe
    finished.set();
  }

  bool in_order = written.size() == static_cast<std::size_t>(kRecords);
  for (std::size_t i = 0; in_order && i < written.size(); ++i) {
    in_order =
        written[i].seq == static_cast<int>(i) && written[i].text == "RECORD " + std::to_string(i);
  }
  if (!in_order) {
    std::cerr << "pipeline: FAILED: " << written.size() << " records came out, not " << kRecords
              << " once each, in order\n";
    return 1;
  }
  say("All ", kRecords, " records went through, once each, in order");
  return 0;
}
