// SPDX-License-Identifier: MIT
// examples/demo.hpp: the plumbing every demo shares, kept out of the way of what each one
// shows: the command line (--time-scale, --help), a scaled sleep, and whole-line printing.
#pragma once

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <weft/diagnostics.hpp>
#include <weft/lock.hpp>

namespace demo {

// The factor applied to every nap(): 1 reproduces the original's timing.
inline double time_scale = 1;

// Python's time.sleep(), scaled by --time-scale.
inline void nap(std::chrono::duration<double> d) {
  std::this_thread::sleep_for(d * time_scale);
}

namespace detail {
inline weft::Lock print_lock{"print"};
inline std::vector<std::string> printed;  // every line say() printed, in order; print_lock
}  // namespace detail

// Prints one line made of args. Lines never interleave, whichever threads print them.
template <class... Args>
void say(const Args&... args) {
  std::ostringstream line;
  (line << ... << args);
  std::scoped_lock guard(detail::print_lock);
  std::cout << line.str() << std::endl;
  detail::printed.push_back(line.str());
}

// The lines say() has printed so far, in order: for a demo that checks its own output.
inline std::vector<std::string> printed_lines() {
  std::scoped_lock guard(detail::print_lock);
  return detail::printed;
}

// Sets time_scale from `text`, a finite number >= 0; false if it is not one.
inline bool parse_time_scale(std::string_view text) {
  double scale = -1;
  const char* const last = text.data() + text.size();
  const auto [end, error] = std::from_chars(text.data(), last, scale);
  if (error != std::errc() || end != last || !std::isfinite(scale) || scale < 0) return false;
  time_scale = scale;
  return true;
}

// The file --trace names: written when the program exits (std::atexit), after its threads
// were joined (weft keeps the events of threads that exited while tracing).
inline std::string trace_path;

// Turns weft's diagnostics and its flight recorder on, and writes the trace at exit.
inline void start_trace(std::string path) {
  trace_path = std::move(path);
  weft::diagnostics::enable();
  weft::diagnostics::set_thread_name("main");
  weft::diagnostics::start_tracing();
  std::atexit([] {
    if (!weft::diagnostics::write_trace(trace_path))
      std::cerr << "cannot write the trace to " << trace_path << "\n";
  });
}

// Reads `--time-scale S` (default: default_scale), `--trace FILE` and `--help` (which
// prints `about`).
// Returns an exit status when the program should stop at once: after --help, or on a bad
// argument.
inline std::optional<int> parse_command_line(int argc, char** argv, std::string_view about,
                                             double default_scale) {
  time_scale = default_scale;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: " << argv[0] << " [--time-scale S] [--trace FILE]\n"
                << about << "\n  --time-scale S  multiply every sleep by S (default "
                << default_scale << "; 1 = the original's timing)\n"
                << "  --trace FILE    write weft's trace of the run to FILE (Chrome trace-event\n"
                << "                  JSON: ui.perfetto.dev; scripts/trace_timeline.py)\n";
      return 0;
    }
    if (arg == "--trace" && i + 1 < argc) {
      start_trace(argv[++i]);
      continue;
    }
    if (arg == "--time-scale" && i + 1 < argc && parse_time_scale(argv[++i])) continue;
    std::cerr << argv[0] << ": bad arguments (see --help)\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace demo
