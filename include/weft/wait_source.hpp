// SPDX-License-Identifier: MIT
// weft/wait_source.hpp: weft::WaitSource, for making a source of your own selectable.
//
// select (select.hpp) waits on any operation that models weft::SelectOperation. An
// operation on a source of your own registers the selecting thread's WaitNode in a
// WaitSource, and whoever makes the source ready notifies it:
//
//     struct Mailbox {                         // a one-slot mailbox, say
//       std::atomic<int> value{0};             // 0: empty
//       weft::WaitSource readers;
//       void post(int v) { value.store(v); readers.notify_all(); }
//     };
//     struct TakeOp {                          // weft::SelectOperation
//       using result_type = int;
//       Mailbox* m;
//       bool try_fire(int& out) {
//         int v = m->value.exchange(0);
//         return v != 0 ? (out = v, true) : false;
//       }
//       weft::WaitLink link(weft::WaitNode& n, weft::WaitPosition pos) {
//         return m->readers.link(n, pos, [&] { return m->value.load() != 0; });
//       }
//       void unlink(weft::WaitNode& n) noexcept { m->readers.unlink(n); }
//     };
//     auto r = weft::select(TakeOp{&box}, weft::get(queue));
//
// Contract (the handshake that makes a wake-up impossible to miss):
//  - link(node, pos, ready) links `node` and announces it (a sequentially consistent
//    store), then calls ready() after releasing the source's internal lock; if ready() is
//    true it unlinks the node again and returns WaitLink::withdrawn, else WaitLink::linked.
//    ready() must read your state with sequentially consistent loads, or under a mutex that
//    the notifying side also holds while changing it (it may take that mutex: no lock of
//    the source is held then).
//  - A notifier first makes the state change (a sequentially consistent store or
//    read-modify-write, or under that mutex), then calls notify_one() or notify_all(). They
//    claim waiting nodes, oldest first, and wake their threads after releasing the source's
//    lock; with nobody registered they cost one load.
//  - A woken thread tries its operation again; if it finds nothing (another thread took it
//    first), it waits again. Notify once per state change that can let one waiter proceed
//    (notify_one), or once for a change that lets every waiter proceed (notify_all).
//  - A WaitSource must outlive every call on it; nothing may be linked when it is destroyed.
#pragma once

#include <cstddef>
#include <utility>

#include "weft/detail/parker.hpp"
#include "weft/detail/wait_source.hpp"

namespace weft {

using WaitNode = detail::WaitNode;      // one registration of a waiting thread
using WaitLink = detail::Link;          // what link() did: linked, ready or withdrawn
using WaitPosition = detail::Position;  // where a registration goes: back, or front

class WaitSource {
 public:
  WaitSource() = default;
  WaitSource(const WaitSource&) = delete;
  WaitSource& operator=(const WaitSource&) = delete;
  ~WaitSource() = default;

  template <class Ready>
  WaitLink link(WaitNode& node, WaitPosition pos, Ready&& ready) {
    return source_.link(node, pos, std::forward<Ready>(ready));
  }
  void unlink(WaitNode& node) noexcept { source_.unlink(node); }

  void notify_one() noexcept {
    detail::WakeBatch woken;  // wakes on return, after the source's lock is released
    source_.claim_one(woken);
  }
  void notify_all() noexcept {
    detail::WakeBatch woken;
    source_.claim_all(woken);
  }

 private:
  detail::FlagSource source_;
};

}  // namespace weft
