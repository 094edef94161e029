// SPDX-License-Identifier: MIT
// A program that uses weft::redis as a stranger's project would: it needs no server to
// prove that the headers, weft::redis and hiredis link and run. A queue on a socket nobody
// listens on must fail with weft::redis::Error once its retry time is spent.
#include <chrono>
#include <cstdint>
#include <cstdio>

#include <weft/redis/queue.hpp>

int main() {
  using namespace std::chrono_literals;
  weft::redis::Options o;
  o.unix_socket = "/nonexistent/weft-consumer/redis.sock";
  o.connect_timeout = 100ms;
  o.retry_min = 100ms;
  o.retry_max = 100ms;
  try {
    weft::redis::Queue<std::int64_t> q("consumer", o);
    std::puts("weft::redis consumer: FAILED (connected to a socket that does not exist)");
    return 1;
  } catch (const weft::redis::Error& e) {
    std::printf("weft::redis consumer: ok (%s)\n", e.what());
    return 0;
  }
}
