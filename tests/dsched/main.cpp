// SPDX-License-Identifier: MIT
// tests/dsched/main.cpp: the explorer's command line.
//
//   weft_dsched [--scenario=NAME[,NAME...]|all] [--strategy=S[,S...]] [--seed=N] [--runs=N]
//               [--trace] [--verbose] [--list] [--list-names] [--event-rate=P] [--spurious=N]
//               [--step-limit=N]
//               [--scale=X]   (multiplies the scenarios' schedule budgets)
//               [--determinism]  (replays schedules out of order; fails if a hash differs)
//
// Strategies: random | pct:D[:L] | pb:K[:L] (see scheduler.cpp). Without --strategy, each
// scenario runs under random, pct:2, pct:3 and pb:2, its budget split between them. Schedule
// k of a strategy uses seed N+k; a failure prints the seed and the command that replays it.
// --list describes every registered scenario; --list-names prints only their names, one a line,
// for ctest (tests/dsched/CMakeLists.txt makes one test of each).
// Exit status: 0 when every schedule passed.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "scheduler.hpp"

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, ',');) {
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

bool flag(const char* arg, const char* name, std::string& value) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  value = arg + n + 1;
  return true;
}

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--scenario=NAME[,NAME...]|all] [--strategy=S[,S...]] [--seed=N]\n"
      "          [--runs=N] [--trace] [--verbose] [--list] [--list-names] [--event-rate=P]\n"
      "          [--spurious=N] [--step-limit=N] [--scale=X] [--determinism]\n"
      "strategies: random | pct:D[:L] | pb:K[:L]\n",
      argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  dsched::Options base;
  base.argv0 = argv[0];
  std::vector<std::string> names{"all"};
  std::vector<std::string> strategies;
  bool list = false;
  bool list_names = false;
  bool determinism = false;
  double scale = 1;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    const char* a = argv[i];
    try {
      if (flag(a, "--scenario", v)) {
        names = split(v);
      } else if (flag(a, "--strategy", v)) {
        strategies = split(v);
      } else if (flag(a, "--seed", v)) {
        base.seed = std::stoull(v);
      } else if (flag(a, "--runs", v)) {
        base.runs = std::stoi(v);
      } else if (flag(a, "--event-rate", v)) {
        base.event_rate = std::stod(v);
        base.event_rate_given = true;
      } else if (flag(a, "--spurious", v)) {
        base.spurious_budget = std::stoi(v);
      } else if (flag(a, "--step-limit", v)) {
        base.step_limit = std::stoull(v);
      } else if (flag(a, "--scale", v)) {
        scale = std::stod(v);
      } else if (std::strcmp(a, "--trace") == 0) {
        base.trace = true;
      } else if (std::strcmp(a, "--determinism") == 0) {
        determinism = true;
      } else if (std::strcmp(a, "--verbose") == 0) {
        base.verbose = true;
      } else if (std::strcmp(a, "--list") == 0) {
        list = true;
      } else if (std::strcmp(a, "--list-names") == 0) {
        list_names = true;
      } else {
        return usage(argv[0]);
      }
    } catch (const std::exception&) {
      return usage(argv[0]);
    }
  }

  auto& all = dsched::scenarios();
  if (list_names) {
    // Each name becomes a ctest test name and a --scenario= argument: it must be unique and
    // plain.
    std::unordered_set<std::string> seen;
    for (auto& s : all) {
      const bool plain = !s.name.empty() && std::all_of(s.name.begin(), s.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
      });
      if (!plain || !seen.insert(s.name).second) {
        std::fprintf(stderr, "scenario name '%s' is %s\n", s.name.c_str(),
                     plain ? "registered twice" : "not [A-Za-z0-9_]+");
        return 2;
      }
    }
    for (auto& s : all) std::printf("%s\n", s.name.c_str());
    return 0;
  }
  if (list) {
    for (auto& s : all) {
      std::printf("%-22s %d threads, %5d schedules: %s\n", s.name.c_str(), s.threads, s.runs,
                  s.what.c_str());
    }
    return 0;
  }
  std::vector<const dsched::Scenario*> chosen;
  for (auto& n : names) {
    bool found = false;
    for (auto& s : all) {
      if (n == "all" || n == s.name) {
        chosen.push_back(&s);
        found = true;
      }
    }
    if (!found) {
      std::fprintf(stderr, "unknown scenario '%s' (--list shows them)\n", n.c_str());
      return 2;
    }
  }
  if (determinism) {
    // Replays each schedule in a different order and compares the schedule hashes: a run
    // must be a function of (scenario, strategy, seed) only, not of what ran before it.
    const std::vector<std::string> strats =
        strategies.empty() ? std::vector<std::string>{"random", "pct:3:400", "pb:2:400"}
                           : strategies;
    int bad = 0;
    for (const dsched::Scenario* s : chosen) {
      for (auto& strat : strats) {
        dsched::Options o = base;
        o.strategy = strat;
        const int n = base.runs > 0 ? base.runs : 40;
        o.runs = n;
        std::vector<std::uint64_t> forward;
        dsched::explore(*s, o, &forward);
        for (int k = n - 1; k >= 0; --k) {
          dsched::Options one = o;
          one.seed = base.seed + static_cast<std::uint64_t>(k);
          one.runs = 1;
          std::vector<std::uint64_t> again;
          dsched::explore(*s, one, &again);
          if (again.size() != 1 || forward.size() != static_cast<std::size_t>(n) ||
              again[0] != forward[static_cast<std::size_t>(k)]) {
            std::printf("NONDETERMINISM scenario=%s strategy=%s seed=%llu\n", s->name.c_str(),
                        strat.c_str(), static_cast<unsigned long long>(one.seed));
            ++bad;
          }
        }
      }
    }
    std::printf("dsched determinism: %d mismatch(es)\n", bad);
    std::fflush(stdout);
    std::_Exit(bad == 0 ? 0 : 1);
  }
  const bool default_strategies = strategies.empty();
  if (default_strategies) strategies = {"random", "pct:2", "pct:3", "pb:2"};

  dsched::Figures total;
  std::unordered_set<std::string> failed;
  for (const dsched::Scenario* s : chosen) {
    for (auto& strat : strategies) {
      dsched::Options o = base;
      o.strategy = strat;
      if (o.runs == 0 && default_strategies) {
        o.runs = std::max(1, s->runs / static_cast<int>(strategies.size()));
      }
      if (o.runs == 0) o.runs = s->runs;
      if (base.runs == 0) o.runs = std::max(1, static_cast<int>(o.runs * scale));
      dsched::Figures f;
      try {
        f = dsched::explore(*s, o);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return usage(argv[0]);
      }
      std::printf(
          "[%-20s] %-10s schedules %5llu  distinct %5llu  max-preemptions %4llu  "
          "max-steps %6llu  timeouts %5llu  spurious %4llu  ext-blocks %3llu  failures %llu  "
          "(%.1f s)\n",
          s->name.c_str(), strat.c_str(), static_cast<unsigned long long>(f.schedules),
          static_cast<unsigned long long>(f.distinct),
          static_cast<unsigned long long>(f.max_preemptions),
          static_cast<unsigned long long>(f.max_steps), static_cast<unsigned long long>(f.timeouts),
          static_cast<unsigned long long>(f.spurious),
          static_cast<unsigned long long>(f.external_blocks),
          static_cast<unsigned long long>(f.failures), f.seconds);
      std::fflush(stdout);
      total.schedules += f.schedules;
      total.distinct += f.distinct;
      total.max_preemptions = std::max(total.max_preemptions, f.max_preemptions);
      total.max_steps = std::max(total.max_steps, f.max_steps);
      total.total_steps += f.total_steps;
      total.failures += f.failures;
      total.seconds += f.seconds;
      if (f.failures) failed.insert(s->name);
    }
  }
  std::printf(
      "dsched: %llu schedules explored, %llu distinct interleavings, %llu steps, "
      "max preemptions %llu, failures %llu (%.1f s)\n",
      static_cast<unsigned long long>(total.schedules),
      static_cast<unsigned long long>(total.distinct),
      static_cast<unsigned long long>(total.total_steps),
      static_cast<unsigned long long>(total.max_preemptions),
      static_cast<unsigned long long>(total.failures), total.seconds);
  std::fflush(stdout);
  // Threads of a failed run stay blocked in the scheduler; skip static destructors.
  std::_Exit(total.failures == 0 ? 0 : 1);
}
