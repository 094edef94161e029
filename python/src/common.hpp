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
//  3. Waits are sliced in the main thread (kSignalSlice): between slices the mutex is released,
//     the GIL taken and PyErr_CheckSignals() runs the Python signal handlers. A handler that
//     raises ends the wait with its exception; one that returns lets the wait go on toward the
//     deadline computed when the call started. Other threads never run signal handlers, so
//     they wait in one piece (a wake-up source is then the notify/set/release, the deadline,
//     nothing else).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <structmember.h>

#include <weft/condition.hpp>
#include <weft/lock.hpp>

namespace weftpy {

using Clock = std::chrono::steady_clock;

// How long the main thread sleeps at most before it runs pending signal handlers.
inline constexpr std::chrono::milliseconds kSignalSlice{20};

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
  PyObject* str_put;         // "_put", "_get", "_qsize", "_init", interned
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

enum class Wait { kWoken, kTimedOut, kError };

// With the GIL and `mutex` (cond's lock) held: releases the GIL and waits on `cond` until a
// notify (wake-up source: the notifier), the deadline, or, in the main thread, the end of a
// slice, after which signal handlers run (rule 3). kWoken may be spurious: re-check the
// predicate. kError: a signal handler raised; the mutex is NOT held then.
Wait cond_wait(weft::Lock& mutex, weft::Condition& cond, const Deadline& deadline);

// Waits for `try_fn()` to succeed with the GIL released, calling `block_fn(duration)` (returns
// true on success) in slices in the main thread and in one piece elsewhere; `block_forever_fn`
// is used for an untimed wait outside the main thread. Returns 1 on success, 0 on timeout,
// -1 with an exception from a signal handler. The caller has already tried once.
template <class BlockFor, class BlockForever>
int blocking_call(const Deadline& deadline, BlockFor block_fn, BlockForever block_forever_fn) {
  const bool main = in_main_thread();
  for (;;) {
    bool ok;
    if (!main && deadline.forever) {
      Py_BEGIN_ALLOW_THREADS ok = block_forever_fn();
      Py_END_ALLOW_THREADS
    } else {
      Clock::duration d = deadline.forever ? Clock::duration::max() : deadline.remaining();
      if (main && d > kSignalSlice) d = kSignalSlice;
      Py_BEGIN_ALLOW_THREADS ok = block_fn(d);
      Py_END_ALLOW_THREADS
    }
    if (ok) return 1;
    if (main && PyErr_CheckSignals() < 0) return -1;
    if (deadline.expired()) return 0;
  }
}

// --- misc -------------------------------------------------------------------------------

// Module-level helpers shared by the sync primitives' files.
int add_sync_types(PyObject* module, ModuleState* st);
int add_queue_types(PyObject* module, ModuleState* st);
int sync_traverse(ModuleState* st, visitproc visit, void* arg);

}  // namespace weftpy
