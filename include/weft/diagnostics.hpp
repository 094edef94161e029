// SPDX-License-Identifier: MIT
// weft/diagnostics.hpp: what every thread waits on, who holds each Lock, and deadlocks
// caught by the thread about to close them (docs/diagnostics.md).
//
// Off by default. diagnostics::enable() installs the wait loop's hooks (wait_loop.hpp) and
// starts recording, per thread, in preallocated storage:
//  - what it waits on: every source of the wait (one, or each operation of a select), since
//    when, its deadline, whether a stop token can end it;
//  - the weft Locks and RLocks it holds (a Lock's holder is the thread that acquired it);
//  - its name (set_thread_name) and the user-declared Group it belongs to.
// Primitives are named at construction (weft::Lock jobs{"jobs"}) or later (set_name);
// unnamed ones are identified by kind, address and, if diagnostics were on when they were
// constructed, their construction site.
//
// Deadlock detection runs in a thread about to sleep with no deadline and no stop token.
// It reports a *certain* deadlock when that thread is part of a set of such threads none of
// which can be woken by anyone outside the set: each waits only for Locks/RLocks held by
// members, or is in a Group all of whose declared members are in the set. A thread with a
// deadline, a stop token, one source of a select that is not blocked that way, or a wake-up
// already claimed for it is never part of a verdict. A wait on sources without an owner
// (Event, Condition, Semaphore, queue, Barrier) all of whose known producers (the threads
// that ever ended a wait on them, as the claim protocol names them) are blocked or gone is
// reported as *likely*, never acted on.
//
// Also, while on: lock-order checking (Options::lock_order: an acquire-before graph of lock
// classes, an inversion reported the first time it is seen, with both acquisition sites),
// and contention figures per known primitive (contention()).
//
// Diagnostics never block on a weft primitive; the signal-handler dump allocates nothing
// and takes no lock. -DWEFT_DIAGNOSTICS=0 removes everything (these calls then do nothing).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/detail/diag_hooks.hpp"
#include "weft/errors.hpp"

namespace weft {

class Lock;
class RLock;
class Event;
class Semaphore;
class Condition;
class Barrier;

namespace diagnostics {

using SourceKind = detail::SourceKind;
using Clock = std::chrono::steady_clock;

// What a thread that would close a certain deadlock does.
enum class OnDeadlock : std::uint8_t {
  ignore,  // no detection at all
  report,  // report it (Options::on_report, else stderr) and sleep as asked
  abort,   // report it to stderr, then std::abort()
  raise,   // report it, and throw weft::Deadlock from the blocking call instead of sleeping
};

// A primitive as diagnostics know it.
struct Primitive {
  SourceKind kind = SourceKind::other;
  const void* address = nullptr;
  std::string name;                     // empty if unnamed
  std::string site;                     // "file:line" of its construction, if known
  std::optional<std::uint64_t> holder;  // for a Lock/RLock: the holding thread's id, if known
};

struct ThreadState {
  std::uint64_t id = 0;  // the kernel's thread id (gettid)
  std::string name;      // set_thread_name(), else empty
  std::string group;     // the Group it joined, else empty
  bool waiting = false;
  std::vector<Primitive> waits_on;            // every source of the wait (select: each operation)
  std::optional<Clock::time_point> since;     // when the wait began (if waiting)
  std::optional<Clock::time_point> deadline;  // none: no deadline
  bool cancellable = false;                   // a stop token can end the wait
  bool checked = false;          // deadlock detection is done with this wait (or had nothing to do)
  std::vector<Primitive> holds;  // Locks and RLocks it holds
};

// How much a primitive made threads wait (only primitives diagnostics know: named, or
// constructed while diagnostics were on). A wait here is one park: a thread that is woken,
// loses the race for the primitive and parks again waits twice.
struct Contention {
  Primitive primitive;
  std::uint64_t waits = 0;    // parks on it that have ended
  Clock::duration waited{};   // their total length
  Clock::duration longest{};  // the longest one
  // For a Lock/RLock: the waits that a release ended, charged to the thread that released
  // it (the last release before the woken thread ran), longest total first.
  struct Charge {
    std::uint64_t thread = 0;  // kernel thread id
    std::string name;          // its name, if it is still running and named
    std::uint64_t waits = 0;
    Clock::duration waited{};
  };
  std::vector<Charge> charged;
  std::uint64_t uncharged_waits = 0;  // ended by a timeout, a stop token, or not charged
};

struct Report {
  std::vector<ThreadState> threads;    // every thread diagnostics have seen, waiting or not
  std::vector<Contention> contention;  // every primitive with a wait, most waited-on first
};

struct DeadlockReport {
  // certain: the threads can only be woken by each other (a Lock/RLock cycle, a Group).
  // Not certain ("likely"): a thread blocked on a source without an owner, every thread
  // that ever woke a waiter of that source being itself blocked; never fatal.
  bool certain = true;
  std::vector<ThreadState> threads;  // the deadlocked threads, the closing one first
  std::string text;                  // what is printed
};

// Receives each deadlock report (in the closing thread, before it sleeps or throws). Must
// not block on a weft primitive.
using ReportFn = std::function<void(const DeadlockReport&)>;

// A potential deadlock found by lock-order checking: a thread acquired `cycle[0].second`
// while holding `cycle[0].first`, and earlier acquisitions (cycle[1..]) had established the
// opposite order, from cycle[0].second back to cycle[0].first.
struct LockOrderReport {
  struct Edge {
    std::string first;         // the lock class held ("Lock \"a\"", or a construction site)
    std::string second;        // the lock class acquired while holding it
    std::string first_site;    // "file:line" where `first` was acquired ("" if unknown)
    std::string second_site;   // "file:line" where `second` was acquired
    std::uint64_t thread = 0;  // the thread that did it
  };
  std::vector<Edge> cycle;
  std::string text;  // what is printed
};
using LockOrderFn = std::function<void(const LockOrderReport&)>;

struct Options {
  OnDeadlock on_deadlock = OnDeadlock::report;
  ReportFn on_report;             // empty: reports go to stderr
  std::string trace_on_deadlock;  // if tracing: write_trace() here on a certain deadlock
  // Lock-order checking: every Lock/RLock acquired while another is held adds an edge
  // "held class -> acquired class"; the first edge that closes a cycle is reported, once,
  // before any thread blocks. Classes: a lock's name, else its construction site, else its
  // address.
  bool lock_order = false;
  LockOrderFn on_lock_order;  // empty: reports go to stderr
};

// Turns diagnostics on (again, with new options) or off. Locks acquired while diagnostics
// were off have no known holder; primitives constructed while off have no known site.
void enable(Options options = {});
void disable();
bool enabled() noexcept;

// Names the calling thread in reports (truncated to 31 bytes).
void set_thread_name(std::string_view name);

// Names a primitive (truncated to 47 bytes); the name is dropped when it is destroyed.
void set_name(const Lock& p, std::string_view name);
void set_name(const RLock& p, std::string_view name);
void set_name(const Event& p, std::string_view name);
void set_name(const Semaphore& p, std::string_view name);
void set_name(const Condition& p, std::string_view name);
void set_name(const Barrier& p, std::string_view name);
// Any other object a wait reports (a queue: pass the queue).
void set_name(const void* p, SourceKind kind, std::string_view name);
std::string name_of(const void* p);  // empty if unnamed

// The flight recorder: while tracing (and diagnostics are on), each thread keeps its last
// 256 events: wait, wake (with a flow from the notifier's claim), timeout, cancel, notify,
// and Lock/RLock acquire and release. trace_json() renders every live thread's events as
// Chrome trace-event JSON (Perfetto, chrome://tracing): one named track per thread, a slice
// per wait, an arrow from each notifier to the thread it woke.
void start_tracing();
void stop_tracing();
std::string trace_json();
bool write_trace(const std::string& path);  // false if the file could not be written

// How many times a thread about to sleep has run deadlock detection (a verdict or not).
std::uint64_t deadlock_checks() noexcept;

// Leaves this lock out of lock-order checking (as held and as acquired): for locks whose
// order is known to be safe by other means. Lasts until the lock is destroyed.
void skip_lock_order(const Lock& lock);
void skip_lock_order(const RLock& lock);
// How many inversions lock-order checking has reported.
std::uint64_t lock_order_reports() noexcept;
// Forgets every order seen so far (each inversion can then be reported again).
void reset_lock_order();

// Contention figures of every primitive with a wait, most waited-on first.
std::vector<Contention> contention();
std::string format(const std::vector<Contention>& figures);
// Forgets every contention figure.
void reset_contention();

// Every thread diagnostics have seen, now.
Report snapshot();
std::string format(const Report& report);
// Writes the report of every thread to fd (stderr by default) without allocating.
void print(int fd = 2) noexcept;

// On signal `signo` (e.g. SIGUSR1, SIGQUIT), writes the report to `fd` (each signal to its
// own); async-signal-safe. Returns false if the handler could not be installed.
bool install_signal_handler(int signo, int fd = 2) noexcept;

// A thread that, every `period`, reports each wait older than `threshold` once: to
// `on_long_wait` if given, else to stderr. Starting it again replaces it.
void start_watchdog(Clock::duration threshold, Clock::duration period,
                    std::function<void(const ThreadState&)> on_long_wait = {});
void stop_watchdog();

// A set of threads the user declares closed: only its members wake each other. When every
// one of its `size` members waits with no deadline and no stop token (and no wake-up is
// pending for any of them), the group is deadlocked, whatever primitives they wait on.
class Group {
 public:
  Group(std::string_view name, std::size_t size);
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  ~Group();
  // The calling thread becomes a member (until it exits or joins another group).
  void join();  // NOLINT(readability-make-member-function-const): changes the membership

 private:
  std::uint32_t id_ = 0;  // 0: no slot was free (the group is then never complete)
};

}  // namespace diagnostics
}  // namespace weft
