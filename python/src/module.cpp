// python/src/module.cpp: the weft._weft module: state, shared helpers, initialization.
#include <cstring>

#include "common.hpp"

namespace weftpy {

unsigned long g_main_thread_ident = 0;
double g_timeout_max = 0;

bool parse_args(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                const char* const* names, int nparams, int nrequired, PyObject** out) {
  for (int i = 0; i < nparams; ++i) out[i] = nullptr;
  if (nargs > nparams) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fname,
                 nparams, nargs);
    return false;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
  if (kwnames) {
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      int found = -1;
      for (int i = 0; i < nparams; ++i) {
        if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
          found = i;
          break;
        }
      }
      if (found < 0) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
        return false;
      }
      if (out[found]) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                     names[found]);
        return false;
      }
      out[found] = args[nargs + k];
    }
  }
  for (int i = 0; i < nrequired; ++i) {
    if (!out[i]) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)", fname, names[i],
                   i + 1);
      return false;
    }
  }
  return true;
}

bool timeout_seconds(PyObject* obj, double* out) {
  double t = PyFloat_AsDouble(obj);
  if (t == -1.0 && PyErr_Occurred()) return false;
  if (!check_timeout(t)) return false;
  *out = t;
  return true;
}

bool check_timeout(double t) {
  if (std::isnan(t)) {
    PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
    return false;
  }
  if (t > g_timeout_max) {
    PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
    return false;
  }
  return true;
}

PyObject* g_cancelled = nullptr;

std::stop_source& signal_source() {
  static std::stop_source source;  // the main thread's only
  return source;
}

Wait cond_wait(weft::Lock& mutex, weft::Condition& cond, const Deadline& deadline,
               const std::stop_token* cancel) {
  if (deadline.expired()) return Wait::kTimedOut;
  auto wait = [&cond](auto&&... args) { return cond.wait(args...); };
  // The condition's wait takes the mutex again whatever ends it.
  switch (attempt_wait(
      cancel, [&](const std::stop_token* stop) { return call_wait(wait, deadline, stop); })) {
    case Attempt::kOk:
      return Wait::kWoken;
    case Attempt::kFailed:
      if (!in_main_thread()) return Wait::kTimedOut;
      break;  // a handler scheduled without a signal (_thread.interrupt_main) runs now
    case Attempt::kCancelled:
      mutex.release();
      raise_cancelled();
      return Wait::kError;
    case Attempt::kError:
      mutex.release();
      return Wait::kError;
    case Attempt::kInterrupted:
      break;
  }
  // Rule 2: no handler runs under the mutex (it may put into this very queue).
  mutex.release();
  if (PyErr_CheckSignals() < 0) return Wait::kError;
  lock_mutex(mutex);
  return deadline.expired() ? Wait::kTimedOut : Wait::kWoken;
}

namespace {

int module_exec(PyObject* m) {
  auto* st = static_cast<ModuleState*>(PyModule_GetState(m));
  std::memset(st, 0, sizeof *st);

  PyObject* thread = PyImport_ImportModule("_thread");
  if (!thread) return -1;
  PyObject* tmax = PyObject_GetAttrString(thread, "TIMEOUT_MAX");
  Py_DECREF(thread);
  if (!tmax) return -1;
  g_timeout_max = PyFloat_AsDouble(tmax);
  if (PyModule_AddObjectRef(m, "TIMEOUT_MAX", tmax) < 0) {
    Py_DECREF(tmax);
    return -1;
  }
  Py_DECREF(tmax);

  PyObject* threading = PyImport_ImportModule("threading");
  if (!threading) return -1;
  PyObject* mt = PyObject_CallMethod(threading, "main_thread", nullptr);
  PyObject* ident = mt ? PyObject_GetAttrString(mt, "ident") : nullptr;
  Py_XDECREF(mt);
  if (!ident) {
    Py_DECREF(threading);
    return -1;
  }
  g_main_thread_ident = PyLong_AsUnsignedLong(ident);
  Py_DECREF(ident);
  st->broken_barrier = PyObject_GetAttrString(threading, "BrokenBarrierError");
  Py_DECREF(threading);
  if (!st->broken_barrier) return -1;

  PyObject* queue = PyImport_ImportModule("queue");
  if (!queue) return -1;
  st->empty = PyObject_GetAttrString(queue, "Empty");
  st->full = PyObject_GetAttrString(queue, "Full");
  if (PyObject_HasAttrString(queue, "ShutDown")) {
    st->shutdown = PyObject_GetAttrString(queue, "ShutDown");
  } else {
    st->shutdown = PyErr_NewExceptionWithDoc(
        "weft.ShutDown", "Raised when put/get is called on a queue that has been shut down.",
        PyExc_Exception, nullptr);
  }
  Py_DECREF(queue);
  if (!st->empty || !st->full || !st->shutdown) return -1;
  if (PyModule_AddObjectRef(m, "Empty", st->empty) < 0 ||
      PyModule_AddObjectRef(m, "Full", st->full) < 0 ||
      PyModule_AddObjectRef(m, "ShutDown", st->shutdown) < 0 ||
      PyModule_AddObjectRef(m, "BrokenBarrierError", st->broken_barrier) < 0) {
    return -1;
  }

  struct {
    PyObject** slot;
    const char* text;
  } strings[] = {{&st->str_put, "_put"},
                 {&st->str_get, "_get"},
                 {&st->str_qsize, "_qsize"},
                 {&st->str_init, "_init"},
                 {&st->str_acquire, "acquire"},
                 {&st->str_release, "release"},
                 {&st->str_release_save, "_release_save"},
                 {&st->str_acquire_restore, "_acquire_restore"},
                 {&st->str_is_owned, "_is_owned"}};
  for (auto& s : strings) {
    *s.slot = PyUnicode_InternFromString(s.text);
    if (!*s.slot) return -1;
  }

  if (add_sync_types(m, st) < 0) return -1;
  if (add_queue_types(m, st) < 0) return -1;
  if (add_cancel_types(m, st) < 0) return -1;
  g_cancelled = st->cancelled;
  return 0;
}

ModuleState* mstate(PyObject* m) {
  return static_cast<ModuleState*>(PyModule_GetState(m));
}

// One object a line: clang-format 14 does not settle on a layout for this list.
// clang-format off
#define WEFT_STATE_OBJECTS(X) \
  X(lock_type) \
  X(rlock_type) \
  X(condition_type) \
  X(semaphore_type) \
  X(bounded_semaphore_type) \
  X(event_type) \
  X(barrier_type) \
  X(queue_type) \
  X(lifo_queue_type) \
  X(priority_queue_type) \
  X(simple_queue_type) \
  X(empty) \
  X(full) \
  X(shutdown) \
  X(broken_barrier) \
  X(cancel_token_type) \
  X(cancelled) \
  X(str_put) \
  X(str_get) \
  X(str_qsize) \
  X(str_init) \
  X(str_acquire) \
  X(str_release) \
  X(str_release_save) \
  X(str_acquire_restore) \
  X(str_is_owned) \
  X(base_put) \
  X(base_get) \
  X(base_qsize) \
  X(base_init)
// clang-format on

int module_traverse(PyObject* m, visitproc visit, void* arg) {
  ModuleState* st = mstate(m);
#define X(name) Py_VISIT(st->name);
  WEFT_STATE_OBJECTS(X)
#undef X
  return 0;
}

int module_clear(PyObject* m) {
  ModuleState* st = mstate(m);
#define X(name) Py_CLEAR(st->name);
  WEFT_STATE_OBJECTS(X)
#undef X
  return 0;
}

void module_free(void* m) {
  module_clear(static_cast<PyObject*>(m));
}

PyModuleDef_Slot module_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(module_exec)},
#ifdef Py_mod_gil
                                   {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
                                   {0, nullptr}};

}  // namespace

PyModuleDef g_module_def = {
    PyModuleDef_HEAD_INIT,
    "weft._weft",
    "weft's synchronization primitives and queues for Python (see the weft package).",
    sizeof(ModuleState),
    nullptr,
    module_slots,
    module_traverse,
    module_clear,
    module_free,
};

}  // namespace weftpy

PyMODINIT_FUNC PyInit__weft(void) {
  return PyModuleDef_Init(&weftpy::g_module_def);
}
