// SPDX-License-Identifier: MIT
// connection_pool: a weft::BoundedSemaphore limiting how many threads use a resource at once.
// A port of the Python threading.BoundedSemaphore example from the threading docs
// ("pool_sema = BoundedSemaphore(value=maxconnections)"; "with pool_sema: conn = connectdb()"),
// with the pool handing out actual connection ids and checking it never overcommits.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <weft/lock.hpp>
#include <weft/semaphore.hpp>

#include "demo.hpp"

using namespace std::chrono_literals;
using demo::nap;
using demo::say;

constexpr std::string_view kAbout =
    "Eight clients share three connections; a weft::BoundedSemaphore counts the free ones.";
constexpr double kDefaultTimeScale = 1;  // the original's timing: about 1.5 s

namespace {

constexpr int kConnections = 3;
constexpr int kClients = 8;

// A fixed set of connections. The semaphore counts the free ones and makes a borrower wait
// while there are none; the lock guards the list of which ones are free. Bounded, so that
// giving a connection back twice throws instead of silently growing the pool.
class ConnectionPool {
 public:
  // A borrowed connection, given back when the Lease goes out of scope.
  class Lease {
   public:
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.give_back(id_); }
    int id() const { return id_; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool& pool, int id) : pool_(pool), id_(id) {}
    ConnectionPool& pool_;
    int id_;
  };

  explicit ConnectionPool(int size) : free_count_(size), free_(size) {
    std::iota(free_.begin(), free_.end(), 0);
  }

  Lease borrow() {
    free_count_.acquire();  // Python: with pool_sema:
    note_in_use(++in_use_);
    std::scoped_lock guard(lock_);
    if (free_.empty()) {
      throw std::logic_error("the semaphore let in more borrowers than connections");
    }
    const int id = free_.back();
    free_.pop_back();
    return Lease(*this, id);
  }

  int in_use() const { return in_use_; }
  int most_in_use() const { return most_in_use_; }
  std::vector<int> free_ids() const {
    std::scoped_lock guard(lock_);
    return free_;
  }

 private:
  void give_back(int id) {
    {
      std::scoped_lock guard(lock_);
      free_.push_back(id);
    }
    --in_use_;
    free_count_.release();  // only now may a waiting borrower take it
  }

  void note_in_use(int now) {
    int most = most_in_use_.load();
    while (now > most && !most_in_use_.compare_exchange_weak(most, now)) {
    }
  }

  weft::BoundedSemaphore free_count_;
  mutable weft::Lock lock_;
  std::vector<int> free_;  // guarded by lock_
  // Borrowers between acquire() and release(), counted outside lock_: what the semaphore
  // alone must keep within the pool's size.
  std::atomic<int> in_use_{0};
  std::atomic<int> most_in_use_{0};  // in_use_'s high-water mark
};

void client(int n, ConnectionPool& pool, std::atomic<int>& served) {
  say("Client ", n, ": waiting for a connection");
  const ConnectionPool::Lease conn = pool.borrow();
  say("Client ", n, ": got connection ", conn.id(), " (", pool.in_use(), " in use)");
  nap(0.3s + 0.1s * (n % 3));  // the query
  say("Client ", n, ": done with connection ", conn.id());
  ++served;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto exit_status = demo::parse_command_line(argc, argv, kAbout, kDefaultTimeScale)) {
    return *exit_status;
  }

  ConnectionPool pool(kConnections);
  std::atomic<int> served{0};
  {
    std::vector<std::jthread> clients;
    clients.reserve(kClients);
    for (int n = 0; n < kClients; ++n)
      clients.emplace_back(client, n, std::ref(pool), std::ref(served));
  }  // all joined here

  say("Served ", served.load(), " clients; at most ", pool.most_in_use(), " of ", kConnections,
      " connections were in use at once");

  std::vector<int> free_ids = pool.free_ids();
  std::sort(free_ids.begin(), free_ids.end());
  std::vector<int> all_ids(kConnections);
  std::iota(all_ids.begin(), all_ids.end(), 0);
  if (served != kClients || pool.most_in_use() > kConnections || free_ids != all_ids) {
    std::cerr << "connection_pool: FAILED: a client went unserved, the pool overcommitted, or "
                 "a connection was lost\n";
    return 1;
  }
  return 0;
}
