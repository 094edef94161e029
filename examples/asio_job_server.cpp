// SPDX-License-Identifier: MIT
// asio_job_server: a TCP job server whose connection handlers are Asio coroutines and whose
// work is done by plain worker threads, with weft queues between the two (weft::asio).
//
//   - Each connection's coroutine reads lines "<id> <n>" and puts a Job on one shared
//     weft::Queue<Job> with co_await weft::asio::async_put: when the workers fall behind,
//     the queue is full and the coroutine suspends (back-pressure), never blocking the
//     io_context's thread.
//   - Worker threads (std::jthread) take jobs with the blocking get(), compute, and put the
//     reply on the connection's own weft::Queue<std::string>.
//   - The connection's writer coroutine awaits that reply queue with async_get and writes
//     each reply back: threads wake coroutines through the same queues they use themselves.
//
// The demo serves itself: clients in the same program connect over loopback (port chosen by
// the system), send their jobs, check every reply, and the server shuts down when the last
// client is done. Exits non-zero if a reply is missing or wrong.
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
#include <iostream>
#include <istream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <weft/asio.hpp>
#include <weft/event.hpp>
#include <weft/queue.hpp>

#include "demo.hpp"

using asio::use_awaitable;
using asio::ip::tcp;
using demo::say;

constexpr std::string_view kAbout =
    "A TCP job server: Asio coroutines read jobs and feed a weft::Queue drained by worker\n"
    "threads, which answer through per-connection weft queues the coroutines await.";

constexpr int kClients = 4;
constexpr int kJobsPerClient = 200;
constexpr int kWorkers = 3;

// The work: the sum of the squares 1..n (checked by the client with the closed form).
std::uint64_t work(std::uint64_t n) {
  std::uint64_t s = 0;
  for (std::uint64_t i = 1; i <= n; ++i) s += i * i;
  return s;
}

struct Job {
  std::uint64_t id = 0;
  std::uint64_t n = 0;
  std::shared_ptr<weft::SimpleQueue<std::string>> reply_to;  // the connection's replies
};

// One connection: reads jobs, queues them; a second coroutine writes the replies.
asio::awaitable<void> serve(tcp::socket socket, weft::Queue<Job>& jobs) {
  auto replies = std::make_shared<weft::SimpleQueue<std::string>>();
  auto sock = std::make_shared<tcp::socket>(std::move(socket));
  auto expected = std::make_shared<std::uint64_t>(0);  // set before the "" marker is put
  // The writer: one reply per job, in the order the workers finish them. The reader's ""
  // marker says how many to expect; replies may still follow it.
  asio::co_spawn(
      sock->get_executor(),
      [sock, replies, expected]() -> asio::awaitable<void> {
        bool all_read = false;
        for (std::uint64_t written = 0; !all_read || written < *expected;) {
          std::string line = co_await weft::asio::async_get(*replies, use_awaitable);
          if (line.empty()) {
            all_read = true;
            continue;
          }
          co_await asio::async_write(*sock, asio::buffer(line), use_awaitable);
          ++written;
        }
        sock->shutdown(tcp::socket::shutdown_send);
      },
      asio::detached);
  asio::streambuf in;
  std::uint64_t queued = 0;
  for (;;) {
    auto [ec, size] = co_await asio::async_read_until(*sock, in, '\n',
                                                      asio::experimental::as_tuple(use_awaitable));
    if (ec) break;  // the client closed its side: every job is read
    std::istream line(&in);
    Job job;
    line >> job.id >> job.n;
    line.ignore(1);
    job.reply_to = replies;
    // Suspends while the workers are behind (the queue holds 16 jobs at most).
    co_await weft::asio::async_put(jobs, std::move(job), use_awaitable);
    ++queued;
  }
  *expected = queued;
  replies->put(std::string());
  say("server: connection done, ", queued, " jobs");
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, weft::Queue<Job>& jobs) {
  for (int i = 0; i < kClients; ++i) {
    tcp::socket s = co_await acceptor.async_accept(use_awaitable);
    asio::co_spawn(acceptor.get_executor(), serve(std::move(s), jobs), asio::detached);
  }
}

// A client: sends its jobs, reads every reply, checks them.
asio::awaitable<void> client(int c, tcp::endpoint server, std::atomic<int>& wrong,
                             std::atomic<int>& answered) {
  tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(server, use_awaitable);
  std::ostringstream out;
  for (int j = 0; j < kJobsPerClient; ++j) out << c * 1000 + j << ' ' << 10 + j << '\n';
  co_await asio::async_write(s, asio::buffer(out.str()), use_awaitable);
  s.shutdown(tcp::socket::shutdown_send);
  asio::streambuf in;
  std::vector<bool> seen(kJobsPerClient, false);
  for (;;) {
    auto [ec, size] =
        co_await asio::async_read_until(s, in, '\n', asio::experimental::as_tuple(use_awaitable));
    if (ec) break;  // the server closed: every reply is in
    std::istream line(&in);
    std::uint64_t id = 0, result = 0;
    line >> id >> result;
    line.ignore(1);
    const std::uint64_t j = id - static_cast<std::uint64_t>(c) * 1000;
    const std::uint64_t n = 10 + j;
    if (j >= kJobsPerClient || seen[j] || result != n * (n + 1) * (2 * n + 1) / 6) {
      ++wrong;
    } else {
      seen[j] = true;
      ++answered;
    }
  }
  say("client ", c, ": done");
}

int run(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, 1.0)) return *exit_status;

  weft::Queue<Job> jobs(16);
  std::vector<std::jthread> workers;
  workers.reserve(kWorkers);
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&jobs](std::stop_token) {
      for (;;) {
        Job job;
        try {
          job = jobs.get();
        } catch (const weft::ShutDown&) {
          return;
        }
        job.reply_to->put(std::to_string(job.id) + ' ' + std::to_string(work(job.n)) + '\n');
        jobs.task_done();
      }
    });
  }

  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const tcp::endpoint server = acceptor.local_endpoint();
  say("server: listening on ", server.address().to_string(), ":", server.port());
  asio::co_spawn(io, accept_loop(acceptor, jobs), asio::detached);
  std::atomic<int> wrong{0}, answered{0};
  for (int c = 0; c < kClients; ++c)
    asio::co_spawn(io, client(c, server, wrong, answered), asio::detached);
  io.run();  // returns when every connection and client is done

  jobs.shutdown();  // the workers finish what is queued (nothing by now) and stop
  workers.clear();
  say("answered ", answered.load(), " of ", kClients * kJobsPerClient, " jobs, ", wrong.load(),
      " wrong");
  return answered == kClients * kJobsPerClient && wrong == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a socket error, for instance
    std::cerr << "asio_job_server: " << e.what() << '\n';
    return 1;
  }
}
