// python/src/queue_object.hpp: the layout of weft.Queue, LifoQueue, PriorityQueue and
// SimpleQueue objects (queues.cpp). Private to the module: the C++ interop header
// (weft/python.hpp) goes through the Python methods, never through this layout.
#pragma once

#include <deque>
#include <vector>

#include "common.hpp"

namespace weftpy {

enum QueueKind { kFifo = 0, kLifo = 1, kPriority = 2, kSimple = 3 };
enum QueueHook { kHookPut = 1, kHookGet = 2, kHookQsize = 4, kHookInit = 8 };

struct QueueObject {
  PyObject_HEAD weft::Lock mutex;  // guards everything below but st, kind, hooks
  weft::Condition not_empty;       // on mutex: put -> get
  weft::Condition not_full;        // on mutex: get -> put (bounded)
  weft::Condition all_tasks_done;  // on mutex: task_done/shutdown -> join
  std::deque<PyObject*> items;     // owned references: kFifo, kSimple
  std::vector<PyObject*> vec;      // owned references: kLifo (a stack), kPriority (a heap)
  Py_ssize_t maxsize;
  Py_ssize_t unfinished;
  bool shutdown;
  bool constructed;  // the C++ members above exist (tp_new completed)
  // GIL mode (GIL builds, no hooks): the GIL alone guards the items and counters, as it does
  // queue.SimpleQueue's, and `mutex` serves only waits and notifies; the waiting_* counts
  // (GIL-guarded) let a notifier skip the mutex when nobody waits. Mutex mode (free-threaded
  // builds, or a subclass whose hooks run Python code under the lock): `mutex` guards all.
  bool gil_mode;
  int waiting_get, waiting_put, waiting_join;
  int kind;
  int hooks;  // QueueHook bits: methods a subclass overrides
  ModuleState* st;
  PyObject* weakreflist;
  PyObject* dict;
};

}  // namespace weftpy
