// SPDX-License-Identifier: MIT
// Helpers shared by the tests of weft/diagnostics.hpp. A step that must follow another
// thread's wait polls that thread's record (published before it parks) instead of sleeping.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <unistd.h>

#include "weft/diagnostics.hpp"

namespace weft::testing {

// The thread named `name`, as the dump shows it now.
inline std::optional<diagnostics::ThreadState> thread_named(const std::string& name) {
  for (auto& t : diagnostics::snapshot().threads)
    if (t.name == name) return t;
  return std::nullopt;
}

// Waits until the thread named `name` waits on `object` and the detector is done with it.
inline void await_checked(const std::string& name, const void* object) {
  for (;;) {
    if (auto t = thread_named(name); t && t->waiting && t->checked) {
      for (const auto& p : t->waits_on)
        if (p.address == object) return;
    }
    std::this_thread::yield();
  }
}

// Waits until the thread named `name` waits on one source of kind `kind` and the detector is
// done with it; returns that source's address (a queue's: the address its waits report).
inline const void* await_checked_on(const std::string& name, diagnostics::SourceKind kind) {
  for (;;) {
    if (auto t = thread_named(name);
        t && t->waiting && t->checked && t->waits_on.size() == 1 && t->waits_on[0].kind == kind)
      return t->waits_on[0].address;
    std::this_thread::yield();
  }
}

// What diagnostics::print() writes; empty if no pipe could be made.
inline std::string printed() {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  diagnostics::print(fds[1]);
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  return out;
}

}  // namespace weft::testing
