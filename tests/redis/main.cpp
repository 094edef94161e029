// tests/redis/main.cpp: GoogleTest's main, or a client role when started by Worker.
//
// Roles (argv: --weft-redis-worker <role> <options> <queue> <maxsize> ...); every line the
// role prints is one event the test waits for:
//   consumer [hang=<point>] [hold]  get until ShutDown: "got <id>", task_done, "done <id>";
//                                    hold: read a line from stdin before each task_done
//   producer <first> <count> [hang=<point>]   put ids first..first+count-1: "put <id>";
//                                    "finished" at the end
//   getter <timeout_ms|-1>           one get: "item <id>" / "empty" / "shutdown"
//   putter <id>                      one put: "ok" / "shutdown"
//   joiner                           join(): "joined"
// hang=<point>: at that fault_hook point the role prints "hang <point>" and stops forever
// (the test kills it there). Items are std::int64_t ids. Every role prints "ready" once its
// queue is open.
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace weft::redis::testing {
namespace {

void say(const std::string& s) {
  const std::string l = s + "\n";
  const char* p = l.data();
  std::size_t left = l.size();
  while (left > 0) {
    const ssize_t n = ::write(1, p, left);
    if (n <= 0) std::_Exit(3);
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

using IdQueue = Queue<std::int64_t>;

}  // namespace

int worker_main(int argc, char** argv) {
  if (argc < 6) return 2;
  const std::string role = argv[2];
  Options opt = deserialize(argv[3]);
  const std::string name = argv[4];
  const std::ptrdiff_t maxsize = std::atoll(argv[5]);
  std::string hang;
  bool hold = false;
  for (int i = 6; i < argc; ++i) {
    if (std::strncmp(argv[i], "hang=", 5) == 0) hang = argv[i] + 5;
    if (std::strcmp(argv[i], "hold") == 0) hold = true;
  }
  if (!hang.empty()) {
    opt.fault_hook = [hang](std::string_view point) {
      if (point == hang) {
        say("hang " + hang);
        for (;;) ::pause();
      }
    };
  }
  IdQueue q(name, maxsize, opt);
  say("ready");
  try {
    if (role == "consumer") {
      for (;;) {
        std::int64_t id = 0;
        try {
          id = q.get();
        } catch (const ShutDown&) {
          say("shutdown");
          return 0;
        }
        say("got " + std::to_string(id));
        if (hold) {
          std::string l;
          if (!std::getline(std::cin, l)) return 4;
        }
        q.task_done();
        say("done " + std::to_string(id));
      }
    }
    if (role == "producer") {
      const std::int64_t first = std::atoll(argv[6]);
      const std::int64_t count = std::atoll(argv[7]);
      for (std::int64_t id = first; id < first + count; ++id) {
        try {
          q.put(id);
        } catch (const ShutDown&) {
          say("shutdown");
          return 0;
        }
        say("put " + std::to_string(id));
      }
      say("finished");
      return 0;
    }
    if (role == "getter") {
      const long long ms = std::atoll(argv[6]);
      try {
        const std::int64_t id = ms < 0 ? q.get() : q.get(std::chrono::milliseconds(ms));
        say("item " + std::to_string(id));
        q.task_done();
      } catch (const Empty&) {
        say("empty");
      } catch (const ShutDown&) {
        say("shutdown");
      }
      return 0;
    }
    if (role == "putter") {
      try {
        q.put(std::atoll(argv[6]));
        say("ok");
      } catch (const ShutDown&) {
        say("shutdown");
      }
      return 0;
    }
    if (role == "joiner") {
      q.join();
      say("joined");
      return 0;
    }
  } catch (const std::exception& e) {
    say(std::string("error ") + e.what());
    return 1;
  }
  return 2;
}

}  // namespace weft::redis::testing

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--weft-redis-worker") == 0) {
    ::signal(SIGPIPE, SIG_IGN);
    return weft::redis::testing::worker_main(argc, argv);
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
