// SPDX-License-Identifier: MIT
// weft_bench: runs ONE benchmark trial and prints its result as one JSON line.
//
//     weft_bench list                                   workload/contender pairs
//     weft_bench run <workload> <contender> [--n N]     one trial
//
// bench/run.py drives it (rounds, interleaving, medians, callgrind, plots): see bench/README.md.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "weft/diagnostics.hpp"

namespace {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string num(double v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

int usage() {
  std::cerr << "usage: weft_bench list | weft_bench run <workload> <contender> [--n N]\n";
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  // WEFT_BENCH_DIAGNOSTICS=1: run with weft's diagnostics on (thread records, Lock holders,
  // deadlock detection), to measure what they cost (docs/benchmarks.md); =2: the flight
  // recorder too (start_tracing()). bench/diag_cost.py compares the three.
  if (const char* d = std::getenv("WEFT_BENCH_DIAGNOSTICS"); d != nullptr && d[0] != '0') {
    weft::diagnostics::enable();
    if (d[0] == '2') weft::diagnostics::start_tracing();
  }
  const std::string cmd = argv[1];
  if (cmd == "list") {
    for (const auto& e : bench::registry()) std::cout << e.workload << ' ' << e.contender << '\n';
    return 0;
  }
  if (cmd != "run" || argc < 4) return usage();
  const std::string workload = argv[2], contender = argv[3];
  bench::Params params;
  params.n = 100000;
  for (int i = 4; i < argc; ++i) {
    if (std::strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
      params.n = std::stoull(argv[++i]);
    } else {
      return usage();
    }
  }
  if (params.n == 0) return usage();
  // Make the process multi-threaded before anything is measured: glibc skips the atomic
  // instructions of pthread_mutex_lock/unlock while a process has never had a second thread,
  // which would flatter std::mutex (and anything built on it) in the single-thread
  // microbenchmarks. Every real user of a lock has more than one thread.
  std::thread([] {}).join();
  for (const auto& e : bench::registry()) {
    if (e.workload != workload || e.contender != contender) continue;
    const bench::Result r = e.fn(params);
    std::ostringstream os;
    // NOLINTBEGIN(modernize-raw-string-literal): JSON keys read better inline
    os << "{\"workload\":\"" << json_escape(workload) << "\",\"contender\":\""
       << json_escape(contender) << "\",\"unit\":\"" << r.unit << "\",\"value\":" << num(r.value)
       << ",\"n\":" << r.n << ",\"seconds\":" << num(r.seconds) << ",\"extra\":{";
    // NOLINTEND(modernize-raw-string-literal)
    bool first = true;
    for (const auto& [k, v] : r.extra) {
      os << (first ? "" : ",") << '"' << json_escape(k) << "\":" << num(v);
      first = false;
    }
    os << "},\"quantiles_us\":[";
    for (std::size_t i = 0; i < r.quantiles_us.size(); ++i)
      os << (i ? "," : "") << num(r.quantiles_us[i]);
    os << "]}";
    std::cout << os.str() << std::endl;
    return 0;
  }
  std::cerr << "weft_bench: no benchmark '" << workload << "' for contender '" << contender
            << "'\n";
  return 64;
}
