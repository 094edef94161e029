// python/src/common.hpp: what every type of the weft extension module shares: the module
// state, argument parsing for METH_FASTCALL, timeouts and deadlines, and the blocking
// protocol between the GIL and weft's locks.
//
// The blocking protocol (every blocking path of the module follows it):
//  1. Never block on a weft lock while holding the GIL if another thread could hold that lock
//     while waiting for the GIL: try the lock first, and if it is taken, release the GIL and
//     block (lock_mutex). A thread that holds an internal mutex may wait for the GIL (after a
//     Condition wait returns), so rule 1 is what keeps the two from deadlocking.
//  2. No Python code runs in a thread while it holds an internal mutex, except the user's own
//     hooks that queue.Queue also runs under its mutex (_put/_get/_qsize overrides, __lt__ of
//     PriorityQueue items, a Barrier action). References are dropped after the mutex is
//     released, so a __del__ never runs under it; this is what makes SimpleQueue.put
//     re-entrant (from __del__, a GC callback or a signal handler).
//  3. Signals: only the main thread runs Python's signal handlers, and CPython installs them
//     without SA_RESTART, so a signal that arrives while the main thread sleeps in the kernel
//     interrupts that sleep. The main thread's waits are given the token of a stop source that
//     weft's Parker stops when that happens (weft::detail::SignalStopScope): the wait ends
//     having changed nothing (or completes, if a wake-up had claimed it first), the GIL is
//     taken, the mutex released and PyErr_CheckSignals() runs the handlers. A handler that
//     raises ends the call with its exception; one that returns lets the wait go on toward
//     the deadline computed when the call started. No wait polls: every one sleeps until its
//     wake-up source (the notify/set/release), its deadline, a signal (main thread) or its
//     CancelToken (cancel=).
//  4. Cancellation (weft.CancelToken, cancel=): the token's stop_source is handed to the
//     wait; in the main thread, where the wait already has the signal source's token, a
//     stop_callback forwards the user's stop to it. A cancelled wait raises weft.Cancelled,
//     having changed nothing, as one ended by a signal handler's exception.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <new>
#include <optional>
#include <stop_token>
#include <structmember.h>

#include <weft/condition.hpp>
#include <weft/detail/parker.hpp>
#include <weft/lock.hpp>

namespace weftpy {

using Clock = std::chrono::steady_clock;

// Set once at module execution from threading.main_thread(): the thread that runs Python's
// signal handlers.
extern unsigned long g_main_thread_ident;
// _thread.TIMEOUT_MAX: the largest timeout (seconds) any blocking call accepts.
extern double g_timeout_max;

inline bool in_main_thread() {
  return PyThread_get_thread_ident() == g_main_thread_ident;
}

struct ModuleState {
  PyTypeObject* lock_type;
  PyTypeObject* rlock_type;
  PyTypeObject* condition_type;
  PyTypeObject* semaphore_type;
  PyTypeObject* bounded_semaphore_type;
  PyTypeObject* event_type;
  PyTypeObject* barrier_type;
  PyTypeObject* queue_type;
  PyTypeObject* lifo_queue_type;
  PyTypeObject* priority_queue_type;
  PyTypeObject* simple_queue_type;
  PyObject* empty;           // queue.Empty
  PyObject* full;            // queue.Full
  PyObject* shutdown;        // queue.ShutDown (3.13), else weft's own
  PyObject* broken_barrier;  // threading.BrokenBarrierError
  PyTypeObject* cancel_token_type;
  PyObject* cancelled;  // weft.Cancelled
  PyObject* str_put;    // "_put", "_get", "_qsize", "_init", interned
  PyObject* str_get;
  PyObject* str_qsize;
  PyObject* str_init;
  PyObject* str_acquire;
  PyObject* str_release;
  PyObject* str_release_save;
  PyObject* str_acquire_restore;
  PyObject* str_is_owned;
  PyObject* base_put;  // the descriptors of weft.Queue's own _put/_get/_qsize/_init
  PyObject* base_get;
  PyObject* base_qsize;
  PyObject* base_init;
};

extern PyModuleDef g_module_def;

inline ModuleState* state_of_type(PyTypeObject* type) {
  PyObject* m = PyType_GetModuleByDef(type, &g_module_def);
  return m ? static_cast<ModuleState*>(PyModule_GetState(m)) : nullptr;
}

// --- arguments --------------------------------------------------------------------------

// Parses a METH_FASTCALL|METH_KEYWORDS call into out[0..nparams) (borrowed; nullptr where not
// given). Returns false with TypeError set on a bad call.
bool parse_args(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                const char* const* names, int nparams, int nrequired, PyObject** out);

// --- timeouts ---------------------------------------------------------------------------

struct Deadline {
  bool forever = true;
  Clock::time_point at{};

  static Deadline never() { return {}; }
  // A deadline past the clock's range (TIMEOUT_MAX is 292 years) is no deadline.
  static Deadline after(double seconds) {
    Deadline d;
    const Clock::time_point now = Clock::now();
    const double room = std::chrono::duration<double>(Clock::time_point::max() - now).count();
    if (seconds >= room / 2) return d;
    d.forever = false;
    d.at = now + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(seconds > 0 ? seconds : 0));
    return d;
  }
  bool expired() const { return !forever && Clock::now() >= at; }
  Clock::duration remaining() const {
    auto r = at - Clock::now();
    return r > Clock::duration::zero() ? r : Clock::duration::zero();
  }
};

// Converts a timeout in seconds (int or float). NaN: ValueError; larger than TIMEOUT_MAX:
// OverflowError. Returns false with the exception set. Negative values are returned as
// they are: each caller decides (ValueError for queues, "poll" for threading's waits).
bool timeout_seconds(PyObject* obj, double* out);
// The same checks on a number already converted.
bool check_timeout(double t);

// --- the blocking protocol --------------------------------------------------------------

// Rule 1: take an internal mutex with the GIL held.
inline void lock_mutex(weft::Lock& m) {
  if (m.try_lock()) return;
  Py_BEGIN_ALLOW_THREADS m.lock();
  Py_END_ALLOW_THREADS
}

// weft.Cancelled, for the waits (set at module execution; the module keeps it alive).
extern PyObject* g_cancelled;

// The `cancel` argument of a blocking call: None/absent, or a weft.CancelToken whose token
// is stored in *token. Returns false with TypeError set for anything else.
bool cancel_arg(ModuleState* st, PyObject* obj, std::optional<std::stop_token>* token);
// The stop token of a weft.CancelToken object (already type-checked).
std::stop_token cancel_token_of(PyObject* token);

// The pointer form the helpers below take: null when there is no token.
inline const std::stop_token* ptr(const std::optional<std::stop_token>& t) {
  return t ? &*t : nullptr;
}

// Calls a primitive's wait in the form that fits: f(), f(token), f(remaining) or
// f(remaining, token), so that an untimed, uncancellable wait takes weft's simplest path.
template <class F>
bool call_wait(F& f, const Deadline& deadline, const std::stop_token* stop) {
  if (deadline.forever) return stop ? f(*stop) : f();
  return stop ? f(deadline.remaining(), *stop) : f(deadline.remaining());
}

// The main thread's stop source for rule 3 (only the main thread touches it).
std::stop_source& signal_source();

// How one attempt at a wait ended.
enum class Attempt { kOk, kFailed, kCancelled, kInterrupted, kError };

// One wait with the GIL released: `fn(stop)` (true on success) with the token it must pass
// to weft (rules 3 and 4). kFailed: the wait's own failure (its deadline); kCancelled: the
// user's token; kInterrupted: a signal (main thread; run the handlers, then try again);
// kError: MemoryError set.
template <class Fn>
Attempt attempt_wait(const std::stop_token* cancel, Fn fn) {
  if (!in_main_thread()) {
    PyThreadState* gil = PyEval_SaveThread();
    const bool ok = fn(cancel);
    PyEval_RestoreThread(gil);
    if (ok) return Attempt::kOk;
    return cancel && cancel->stop_requested() ? Attempt::kCancelled : Attempt::kFailed;
  }
  std::stop_source* source;
  std::optional<weft::detail::SignalStopScope> scope;
  try {
    source = &signal_source();
    if (source->stop_requested()) *source = std::stop_source();  // spent by an earlier signal
    scope.emplace(*source);
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
    return Attempt::kError;
  }
  std::stop_source& sig = *source;
  const std::stop_token token = sig.get_token();
  struct Forward {
    std::stop_source* to;
    void operator()() const noexcept { to->request_stop(); }
  };
  bool ok;
  PyThreadState* gil = PyEval_SaveThread();
  {
    std::optional<std::stop_callback<Forward>> forward;
    if (cancel) forward.emplace(*cancel, Forward{&sig});
    ok = fn(&token);
  }  // the forwarding ends here: no stop reaches `sig` from `cancel` after this
  PyEval_RestoreThread(gil);
  scope.reset();
  if (ok) return Attempt::kOk;
  if (cancel && cancel->stop_requested()) return Attempt::kCancelled;
  return sig.stop_requested() ? Attempt::kInterrupted : Attempt::kFailed;
}

inline void raise_cancelled() {
  PyErr_SetNone(g_cancelled);
}

enum class Wait { kWoken, kTimedOut, kError };

// With the GIL and `mutex` (cond's lock) held: releases the GIL and waits on `cond` until a
// notify (wake-up source: the notifier), the deadline, a signal (main thread) or `cancel`.
// kWoken may be spurious: re-check the predicate. kError: a signal handler raised, the wait
// was cancelled (weft.Cancelled) or memory ran out; the mutex is NOT held then.
Wait cond_wait(weft::Lock& mutex, weft::Condition& cond, const Deadline& deadline,
               const std::stop_token* cancel);

// Waits with the GIL released until `f` (a primitive's wait, called through call_wait)
// succeeds, its deadline passes, `cancel` is cancelled, or a signal handler raises; handlers
// that return let it wait again toward the same deadline. Returns 1 on success, 0 on
// timeout, -1 with an exception set. The caller has already tried once.
template <class F>
int blocking_call(const Deadline& deadline, const std::stop_token* cancel, F f) {
  for (;;) {
    const Attempt a = attempt_wait(
        cancel, [&](const std::stop_token* stop) { return call_wait(f, deadline, stop); });
    switch (a) {
      case Attempt::kOk:
        return 1;
      case Attempt::kCancelled:
        raise_cancelled();
        return -1;
      case Attempt::kInterrupted:
        if (PyErr_CheckSignals() < 0) return -1;
        break;  // the next attempt keeps the deadline
      case Attempt::kError:
        return -1;
      case Attempt::kFailed:
        if (!deadline.expired()) break;
        // A handler scheduled without a signal (_thread.interrupt_main) runs now, as after
        // CPython's own lock waits, and its exception wins over the timeout.
        if (in_main_thread() && PyErr_CheckSignals() < 0) return -1;
        return 0;
    }
  }
}

// --- misc -------------------------------------------------------------------------------

// Module-level helpers shared by the sync primitives' files.
int add_sync_types(PyObject* module, ModuleState* st);
int add_queue_types(PyObject* module, ModuleState* st);
int add_cancel_types(PyObject* module, ModuleState* st);
int sync_traverse(ModuleState* st, visitproc visit, void* arg);

}  // namespace weftpy
