// python/src/queues.cpp: weft.Queue, LifoQueue, PriorityQueue (queue.Queue's semantics,
// Python 3.13, including shutdown) and weft.SimpleQueue (queue.SimpleQueue's).
//
// One object layout serves all four. The items live in C++ containers of owned references,
// guarded by `mutex` (a weft::Lock); three weft::Conditions on it play queue.Queue's
// not_empty / not_full / all_tasks_done. A subclass that overrides _put/_get/_qsize/_init is
// detected when an instance is created, and its methods are then called where queue.Queue
// calls them, under the mutex, as there; the base methods work on the C++ containers (so a
// subclass may call Queue._put(self, item)). The blocking protocol is common.hpp's.
#include <deque>
#include <new>
#include <utility>
#include <vector>

#include "common.hpp"
#include "queue_object.hpp"

namespace weftpy {
namespace {

#define FASTCALL_KW(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))

QueueObject* Q(PyObject* op) {
  return reinterpret_cast<QueueObject*>(op);
}

// --- storage: the base _put/_get/_qsize, mutex held (or the caller's responsibility) -----

Py_ssize_t storage_size(QueueObject* q) {
  return q->kind == kFifo || q->kind == kSimple ? static_cast<Py_ssize_t>(q->items.size())
                                                : static_cast<Py_ssize_t>(q->vec.size());
}

// `a < b` by Python's rules, keeping both alive across the call. 1, 0, or -1 (error).
int less_than(PyObject* a, PyObject* b) {
  Py_INCREF(a);
  Py_INCREF(b);
  int r = PyObject_RichCompareBool(a, b, Py_LT);
  Py_DECREF(a);
  Py_DECREF(b);
  return r;
}

bool heap_changed(QueueObject* q, size_t n) {
  if (q->vec.size() == n) return false;
  PyErr_SetString(PyExc_RuntimeError, "PriorityQueue changed size during a comparison");
  return true;
}

// heapq.heappush's algorithm, but every comparison is made before anything moves, so an
// exception from __lt__ leaves the heap as it was.
int heap_push(QueueObject* q, PyObject* item) {
  std::vector<PyObject*>& h = q->vec;
  const size_t n = h.size();
  size_t pos = n;
  while (pos > 0) {
    size_t parent = (pos - 1) >> 1;
    int lt = less_than(item, h[parent]);
    if (lt < 0 || heap_changed(q, n)) return -1;
    if (!lt) break;
    pos = parent;
  }
  h.push_back(nullptr);  // may throw std::bad_alloc: nothing has moved yet
  for (size_t p = n; p > pos;) {
    size_t parent = (p - 1) >> 1;
    h[p] = h[parent];
    p = parent;
  }
  h[pos] = Py_NewRef(item);
  return 0;
}

// heapq.heappop's algorithm (down to a leaf along the smaller children, then up), with the
// comparisons made on the unchanged heap first; returns a new reference or nullptr.
PyObject* heap_pop(QueueObject* q) {
  std::vector<PyObject*>& h = q->vec;
  const size_t n = h.size();
  if (n == 1) {
    PyObject* only = h[0];
    h.pop_back();
    return only;
  }
  const size_t end = n - 1;  // the last item leaves its place and sifts from the root
  PyObject* last = h[end];
  std::vector<size_t> path{0};
  size_t pos = 0, child = 1;
  while (child < end) {
    size_t right = child + 1;
    if (right < end) {
      int lt = less_than(h[child], h[right]);
      if (lt < 0 || heap_changed(q, n)) return nullptr;
      if (!lt) child = right;
    }
    path.push_back(child);
    pos = child;
    child = 2 * pos + 1;
  }
  // After the descent, path[i] holds h[path[i + 1]] and the leaf path.back() is the hole;
  // `last` climbs while it is smaller than what sits above the hole.
  size_t k = path.size() - 1;
  while (k > 0) {
    int lt = less_than(last, h[path[k]]);
    if (lt < 0 || heap_changed(q, n)) return nullptr;
    if (!lt) break;
    --k;
  }
  PyObject* top = h[0];
  for (size_t i = 0; i < k; ++i) h[path[i]] = h[path[i + 1]];
  h[path[k]] = last;
  h.pop_back();
  return top;
}

int storage_put(QueueObject* q, PyObject* item) {
  try {
    switch (q->kind) {
      case kFifo:
      case kSimple:
        q->items.push_back(item);
        break;
      case kLifo:
        q->vec.push_back(item);
        break;
      default:
        return heap_push(q, item);
    }
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
    return -1;
  }
  Py_INCREF(item);
  return 0;
}

// A new reference, or nullptr with IndexError when empty (as deque.popleft / list.pop).
PyObject* storage_get(QueueObject* q) {
  if (storage_size(q) == 0) {
    PyErr_SetString(PyExc_IndexError, "get from an empty queue");
    return nullptr;
  }
  PyObject* item;
  switch (q->kind) {
    case kFifo:
    case kSimple:
      item = q->items.front();
      q->items.pop_front();
      return item;
    case kLifo:
      item = q->vec.back();
      q->vec.pop_back();
      return item;
    default:
      return heap_pop(q);
  }
}

// Moves every stored reference into `out` (to be released after the mutex).
void storage_take_all(QueueObject* q, std::vector<PyObject*>* out) {
  for (PyObject* o : q->items) out->push_back(o);
  for (PyObject* o : q->vec) out->push_back(o);
  q->items.clear();
  q->vec.clear();
}

void release_all(std::vector<PyObject*>& refs) {
  for (PyObject* o : refs) Py_DECREF(o);
  refs.clear();
}

// --- hooks: queue.Queue's _qsize/_put/_get, overridable ---------------------------------

Py_ssize_t q_qsize(QueueObject* q) {
  if (!(q->hooks & kHookQsize)) return storage_size(q);
  PyObject* r = PyObject_CallMethodNoArgs(reinterpret_cast<PyObject*>(q), q->st->str_qsize);
  if (!r) return -1;
  Py_ssize_t n = PyNumber_AsSsize_t(r, PyExc_OverflowError);
  Py_DECREF(r);
  return n;
}

int q_put(QueueObject* q, PyObject* item) {
  if (!(q->hooks & kHookPut)) return storage_put(q, item);
  PyObject* r = PyObject_CallMethodOneArg(reinterpret_cast<PyObject*>(q), q->st->str_put, item);
  if (!r) return -1;
  Py_DECREF(r);
  return 0;
}

PyObject* q_get(QueueObject* q) {
  if (!(q->hooks & kHookGet)) return storage_get(q);
  return PyObject_CallMethodNoArgs(reinterpret_cast<PyObject*>(q), q->st->str_get);
}

// --- object lifetime ---------------------------------------------------------------------

int detect_hooks(PyTypeObject* type, ModuleState* st) {
  if (type == st->queue_type || type == st->lifo_queue_type || type == st->priority_queue_type ||
      type == st->simple_queue_type) {
    return 0;
  }
  struct {
    PyObject* name;
    PyObject* base;
    int bit;
  } hooks[] = {{st->str_put, st->base_put, kHookPut},
               {st->str_get, st->base_get, kHookGet},
               {st->str_qsize, st->base_qsize, kHookQsize},
               {st->str_init, st->base_init, kHookInit}};
  int bits = 0;
  for (auto& h : hooks) {
    PyObject* f = PyObject_GetAttr(reinterpret_cast<PyObject*>(type), h.name);
    if (!f) return -1;
    if (f != h.base) bits |= h.bit;
    Py_DECREF(f);
  }
  return bits;
}

PyObject* queue_new_kind(PyTypeObject* type, int kind) {
  ModuleState* st = state_of_type(type);
  if (!st) return nullptr;
  int hooks = 0;
  if (kind != kSimple) {
    if (PyType_IsSubtype(type, st->priority_queue_type)) {
      kind = kPriority;
    } else if (PyType_IsSubtype(type, st->lifo_queue_type)) {
      kind = kLifo;
    }
    hooks = detect_hooks(type, st);
    if (hooks < 0) return nullptr;
  }
  auto* q = reinterpret_cast<QueueObject*>(type->tp_alloc(type, 0));
  if (!q) return nullptr;
  new (&q->mutex) weft::Lock();
  new (&q->not_empty) weft::Condition(q->mutex);
  new (&q->not_full) weft::Condition(q->mutex);
  new (&q->all_tasks_done) weft::Condition(q->mutex);
  new (&q->items) std::deque<PyObject*>();
  new (&q->vec) std::vector<PyObject*>();
  q->kind = kind;
  q->hooks = hooks;
#ifdef Py_GIL_DISABLED
  q->gil_mode = false;
#else
  q->gil_mode = hooks == 0;
#endif
  q->st = st;
  q->constructed = true;
  return reinterpret_cast<PyObject*>(q);
}

PyObject* queue_new(PyTypeObject* type, PyObject*, PyObject*) {
  return queue_new_kind(type, kFifo);
}

PyObject* simple_queue_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  if ((args && PyTuple_GET_SIZE(args)) || (kwds && PyDict_GET_SIZE(kwds))) {
    PyErr_SetString(PyExc_TypeError, "SimpleQueue() takes no arguments");
    return nullptr;
  }
  return queue_new_kind(type, kSimple);
}

int queue_traverse(PyObject* op, visitproc visit, void* arg) {
  QueueObject* q = Q(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(q->dict);
  if (q->constructed) {
    for (PyObject* o : q->items) Py_VISIT(o);
    for (PyObject* o : q->vec) Py_VISIT(o);
  }
  return 0;
}

int queue_clear(PyObject* op) {
  QueueObject* q = Q(op);
  Py_CLEAR(q->dict);
  if (q->constructed) {
    std::vector<PyObject*> refs;
    storage_take_all(q, &refs);
    release_all(refs);
  }
  return 0;
}

void queue_dealloc(PyObject* op) {
  QueueObject* q = Q(op);
  PyTypeObject* tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  if (q->weakreflist) PyObject_ClearWeakRefs(op);
  queue_clear(op);
  if (q->constructed) {
    q->vec.~vector();
    q->items.~deque();
    q->all_tasks_done.~Condition();
    q->not_full.~Condition();
    q->not_empty.~Condition();
    q->mutex.~Lock();
  }
  tp->tp_free(op);
  Py_DECREF(tp);
}

// Queue.__init__(maxsize=0), as queue.Queue's: resets the counters and calls _init.
int queue_init(PyObject* op, PyObject* args, PyObject* kwds) {
  QueueObject* q = Q(op);
  static const char* kwlist[] = {"maxsize", nullptr};
  Py_ssize_t maxsize = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n", const_cast<char**>(kwlist), &maxsize)) {
    return -1;
  }
  q->maxsize = maxsize;
  q->unfinished = 0;
  q->shutdown = false;
  PyObject* r = PyObject_CallMethod(op, "_init", "n", maxsize);
  if (!r) return -1;
  Py_DECREF(r);
  return 0;
}

// --- the two locking modes (queue_object.hpp) ---------------------------------------------

// Enter / leave the queue's critical section: the mutex in mutex mode; in GIL mode the GIL
// (already held) is the critical section.
void q_enter(QueueObject* q) {
  if (!q->gil_mode) lock_mutex(q->mutex);
}

void q_leave(QueueObject* q) {
  if (!q->gil_mode) q->mutex.release();
}

// Wakes up to n threads waiting on `c`. Called inside the critical section, last.
void q_notify(QueueObject* q, weft::Condition& c, int waiting, std::size_t n) {
  if (!q->gil_mode) {
    c.notify(n);
  } else if (waiting > 0) {
    lock_mutex(q->mutex);
    c.notify(n);
    q->mutex.release();
  }
}

// Waits inside the critical section until notified, `ready()`, the deadline or (main thread)
// a slice. GIL mode: the mutex is taken, `ready()` re-checked under it (a notifier needs the
// mutex, so none can slip between this check and the wait), and the waiter counted. Returns
// as cond_wait; kError leaves the critical section (mutex mode: mutex released).
template <class Ready>
Wait q_wait(QueueObject* q, weft::Condition& c, int* waiting, const Deadline& deadline,
            const std::stop_token* cancel, Ready ready) {
  if (!q->gil_mode) return cond_wait(q->mutex, c, deadline, cancel);
  lock_mutex(q->mutex);
  if (ready()) {
    q->mutex.release();
    return Wait::kWoken;
  }
  ++*waiting;
  Wait r = cond_wait(q->mutex, c, deadline, cancel);
  --*waiting;
  if (r != Wait::kError) q->mutex.release();
  return r;
}

// --- errors (each leaves the critical section first) ----------------------------------

PyObject* unlock_fail(QueueObject* q) {
  q_leave(q);
  return nullptr;
}

PyObject* unlock_raise(QueueObject* q, PyObject* exc) {
  q_leave(q);
  PyErr_SetNone(exc);
  return nullptr;
}

PyObject* negative_timeout() {
  PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
  return nullptr;
}

// block/timeout of put/get/get_many/put_many: *timed false for None.
bool block_timeout(PyObject* block_obj, PyObject* timeout_obj, int* block, bool* timed, double* t) {
  *block = 1;
  if (block_obj) {
    *block = PyObject_IsTrue(block_obj);
    if (*block < 0) return false;
  }
  *timed = timeout_obj && timeout_obj != Py_None;
  *t = 0;
  if (*timed) {
    double v = PyFloat_AsDouble(timeout_obj);
    if (v == -1.0 && PyErr_Occurred()) return false;
    *t = v;
  }
  return true;
}

// Waits, inside the critical section, until there is room for one item (queue.Queue.put's
// loop). Returns true still inside, or false with an exception set, outside.
bool wait_for_room(QueueObject* q, int block, bool timed, double t,
                   const std::stop_token* cancel = nullptr) {
  if (q->shutdown) return unlock_raise(q, q->st->shutdown), false;
  if (q->maxsize <= 0) return true;
  if (!block) {
    Py_ssize_t n = q_qsize(q);
    if (n < 0 && PyErr_Occurred()) return unlock_fail(q), false;
    if (n >= q->maxsize) return unlock_raise(q, q->st->full), false;
    return true;
  }
  Deadline deadline;
  if (timed) {
    if (t < 0) return q_leave(q), negative_timeout(), false;
    if (!check_timeout(t)) return unlock_fail(q), false;
    deadline = Deadline::after(t);
  }
  auto ready = [q] { return q->shutdown || q->maxsize <= 0 || storage_size(q) < q->maxsize; };
  for (;;) {
    Py_ssize_t n = q_qsize(q);
    if (n < 0 && PyErr_Occurred()) return unlock_fail(q), false;
    if (q->maxsize <= 0 || n < q->maxsize) return true;
    if (timed && deadline.expired()) return unlock_raise(q, q->st->full), false;
    // Wake-up sources: a get (not_full), shutdown, a larger maxsize, the deadline, signals,
    // `cancel`.
    if (q_wait(q, q->not_full, &q->waiting_put, deadline, cancel, ready) == Wait::kError) {
      return false;
    }
    if (q->shutdown) return unlock_raise(q, q->st->shutdown), false;
  }
}

// Waits, inside the critical section, until there is an item (queue.Queue.get's loop).
// Same contract.
bool wait_for_item(QueueObject* q, int block, bool timed, double t,
                   const std::stop_token* cancel = nullptr) {
  Py_ssize_t n = q_qsize(q);
  if (n < 0 && PyErr_Occurred()) return unlock_fail(q), false;
  if (q->shutdown && n == 0) return unlock_raise(q, q->st->shutdown), false;
  if (n > 0) return true;
  if (!block) return unlock_raise(q, q->st->empty), false;
  Deadline deadline;
  if (timed) {
    if (t < 0) return q_leave(q), negative_timeout(), false;
    if (!check_timeout(t)) return unlock_fail(q), false;
    deadline = Deadline::after(t);
  }
  auto ready = [q] { return q->shutdown || storage_size(q) > 0; };
  for (;;) {
    if (timed && deadline.expired()) return unlock_raise(q, q->st->empty), false;
    // Wake-up sources: a put (not_empty), shutdown, the deadline, signals (main thread),
    // `cancel`.
    if (q_wait(q, q->not_empty, &q->waiting_get, deadline, cancel, ready) == Wait::kError) {
      return false;
    }
    n = q_qsize(q);
    if (n < 0 && PyErr_Occurred()) return unlock_fail(q), false;
    if (n > 0) return true;
    if (q->shutdown) return unlock_raise(q, q->st->shutdown), false;
  }
}

// --- Queue methods ---------------------------------------------------------------------

// The fast paths of put(item) and get() in GIL mode on a FIFO or LIFO queue: what the full
// paths below do when nothing has to wait, with the checks that cannot apply left out
// (no hooks, so no Python code; the GIL guards the state).
bool fast_kind(QueueObject* q) {
  return q->gil_mode && (q->kind == kFifo || q->kind == kLifo);
}

bool fast_put(QueueObject* q, PyObject* item) {
  if (q->shutdown || (q->maxsize > 0 && storage_size(q) >= q->maxsize)) return false;
  try {
    if (q->kind == kFifo) {
      q->items.push_back(item);
    } else {
      q->vec.push_back(item);
    }
  } catch (const std::bad_alloc&) {
    return false;  // the full path reports it
  }
  Py_INCREF(item);
  ++q->unfinished;
  q_notify(q, q->not_empty, q->waiting_get, 1);
  return true;
}

PyObject* fast_get(QueueObject* q) {
  PyObject* item;
  if (q->kind == kFifo) {
    if (q->items.empty()) return nullptr;
    item = q->items.front();
    q->items.pop_front();
  } else {
    if (q->vec.empty()) return nullptr;
    item = q->vec.back();
    q->vec.pop_back();
  }
  q_notify(q, q->not_full, q->waiting_put, 1);
  return item;
}

PyObject* queue_put(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  if (nargs == 1 && !kw && fast_kind(q) && fast_put(q, args[0])) Py_RETURN_NONE;
  PyObject* a[4] = {nargs > 0 ? args[0] : nullptr, nullptr, nullptr, nullptr};
  if (nargs != 1 || kw) {
    static const char* const names[] = {"item", "block", "timeout", "cancel"};
    if (!parse_args("put", args, nargs, kw, names, 4, 1, a)) return nullptr;
  }
  int block;
  bool timed;
  double t;
  std::optional<std::stop_token> cancel;
  if (!block_timeout(a[1], a[2], &block, &timed, &t) || !cancel_arg(q->st, a[3], &cancel)) {
    return nullptr;
  }
  q_enter(q);
  if (!wait_for_room(q, block, timed, t, ptr(cancel))) return nullptr;
  if (q_put(q, a[0]) < 0) return unlock_fail(q);
  ++q->unfinished;
  q_notify(q, q->not_empty, q->waiting_get, 1);
  q_leave(q);
  Py_RETURN_NONE;
}

PyObject* queue_put_nowait(PyObject* op, PyObject* item) {
  QueueObject* q = Q(op);
  q_enter(q);
  if (!wait_for_room(q, 0, false, 0)) return nullptr;
  if (q_put(q, item) < 0) return unlock_fail(q);
  ++q->unfinished;
  q_notify(q, q->not_empty, q->waiting_get, 1);
  q_leave(q);
  Py_RETURN_NONE;
}

PyObject* queue_get(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  if (nargs == 0 && !kw && fast_kind(q)) {
    if (PyObject* item = fast_get(q)) return item;
  }
  PyObject* a[3] = {nullptr, nullptr, nullptr};
  if (nargs || kw) {
    static const char* const names[] = {"block", "timeout", "cancel"};
    if (!parse_args("get", args, nargs, kw, names, 3, 0, a)) return nullptr;
  }
  int block;
  bool timed;
  double t;
  std::optional<std::stop_token> cancel;
  if (!block_timeout(a[0], a[1], &block, &timed, &t) || !cancel_arg(q->st, a[2], &cancel)) {
    return nullptr;
  }
  q_enter(q);
  if (!wait_for_item(q, block, timed, t, ptr(cancel))) return nullptr;
  PyObject* item = q_get(q);
  if (!item) return unlock_fail(q);
  q_notify(q, q->not_full, q->waiting_put, 1);
  q_leave(q);
  return item;
}

PyObject* queue_get_nowait(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  if (!wait_for_item(q, 0, false, 0)) return nullptr;
  PyObject* item = q_get(q);
  if (!item) return unlock_fail(q);
  q_notify(q, q->not_full, q->waiting_put, 1);
  q_leave(q);
  return item;
}

// get_many(n, block=True, timeout=None): waits as get() does for one item, then takes up to
// n of those present, in get() order; returns a list.
PyObject* queue_get_many(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  static const char* const names[] = {"n", "block", "timeout", "cancel"};
  PyObject* a[4];
  if (!parse_args("get_many", args, nargs, kw, names, 4, 1, a)) return nullptr;
  Py_ssize_t n = PyNumber_AsSsize_t(a[0], PyExc_OverflowError);
  if (n == -1 && PyErr_Occurred()) return nullptr;
  if (n < 1) {
    PyErr_SetString(PyExc_ValueError, "n must be at least 1");
    return nullptr;
  }
  int block;
  bool timed;
  double t;
  std::optional<std::stop_token> cancel;
  if (!block_timeout(a[1], a[2], &block, &timed, &t) || !cancel_arg(q->st, a[3], &cancel)) {
    return nullptr;
  }
  q_enter(q);
  if (!wait_for_item(q, block, timed, t, ptr(cancel))) return nullptr;
  Py_ssize_t avail = q_qsize(q);
  if (avail < 0 && PyErr_Occurred()) return unlock_fail(q);
  Py_ssize_t take = avail < n ? avail : n;
  // Filled in place (no Python allocation between the items' removal and the return but
  // the list itself, made first).
  PyObject* list = PyList_New(take);
  if (!list) return unlock_fail(q);
  Py_ssize_t got = 0;
  for (; got < take; ++got) {
    PyObject* item = q_get(q);
    if (!item) break;
    PyList_SET_ITEM(list, got, item);
  }
  if (got > 0) q_notify(q, q->not_full, q->waiting_put, static_cast<std::size_t>(got));
  q_leave(q);
  if (got < take) {
    // A _get override failed after some items had left the queue: nothing is lost, they
    // travel with the exception, as its `items` attribute.
    PyObject* items = PyList_GetSlice(list, 0, got);
    Py_DECREF(list);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && items) PyObject_SetAttrString(value, "items", items);
    Py_XDECREF(items);
    PyErr_Restore(type, value, tb);
    return nullptr;
  }
  return list;
}

// put_many(items, block=True, timeout=None): puts each item in order, waiting for room as
// put() does. If it fails part-way (Full, ShutDown, a timeout, a signal), the exception's
// `count` attribute is the number of items that were put.
PyObject* queue_put_many(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  static const char* const names[] = {"items", "block", "timeout", "cancel"};
  PyObject* a[4];
  if (!parse_args("put_many", args, nargs, kw, names, 4, 1, a)) return nullptr;
  int block;
  bool timed;
  double t;
  std::optional<std::stop_token> cancel;
  if (!block_timeout(a[1], a[2], &block, &timed, &t) || !cancel_arg(q->st, a[3], &cancel)) {
    return nullptr;
  }
  PyObject* seq = PySequence_Fast(a[0], "put_many() needs an iterable");
  if (!seq) return nullptr;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  Deadline deadline = timed && t >= 0 ? Deadline::after(t) : Deadline::never();
  Py_ssize_t done = 0;
  bool ok = true;
  q_enter(q);
  for (; done < n; ++done) {
    double left = t;
    if (timed && t >= 0 && !deadline.forever) {
      left = std::chrono::duration<double>(deadline.remaining()).count();
    }
    if (!wait_for_room(q, block, timed, left, ptr(cancel))) {
      ok = false;
      break;
    }
    if (q_put(q, items[done]) < 0) {
      q_leave(q);
      ok = false;
      break;
    }
    ++q->unfinished;
    q_notify(q, q->not_empty, q->waiting_get, 1);
  }
  if (ok) q_leave(q);
  Py_DECREF(seq);
  if (!ok) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value) {
      PyObject* c = PyLong_FromSsize_t(done);
      if (c) PyObject_SetAttrString(value, "count", c);
      Py_XDECREF(c);
    }
    PyErr_Restore(type, value, tb);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* queue_task_done(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  Py_ssize_t unfinished = q->unfinished - 1;
  if (unfinished < 0) {
    q_leave(q);
    PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
    return nullptr;
  }
  q->unfinished = unfinished;
  if (unfinished == 0) q_notify(q, q->all_tasks_done, q->waiting_join, PY_SSIZE_T_MAX);
  q_leave(q);
  Py_RETURN_NONE;
}

PyObject* queue_join(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  std::optional<std::stop_token> cancel;
  if (nargs || kw) {
    static const char* const names[] = {"cancel"};
    PyObject* a[1];
    if (!parse_args("join", args, nargs, kw, names, 1, 0, a) || !cancel_arg(q->st, a[0], &cancel)) {
      return nullptr;
    }
  }
  q_enter(q);
  auto ready = [q] { return q->unfinished == 0; };
  // Wake-up sources: the task_done() that reaches zero, shutdown(immediate=True), signals,
  // `cancel`.
  while (q->unfinished) {
    if (q_wait(q, q->all_tasks_done, &q->waiting_join, Deadline::never(), ptr(cancel), ready) ==
        Wait::kError) {
      return nullptr;
    }
  }
  q_leave(q);
  Py_RETURN_NONE;
}

PyObject* queue_qsize(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  Py_ssize_t n = q_qsize(q);
  q_leave(q);
  if (n < 0 && PyErr_Occurred()) return nullptr;
  return PyLong_FromSsize_t(n);
}

PyObject* queue_empty(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  Py_ssize_t n = q_qsize(q);
  q_leave(q);
  if (n < 0 && PyErr_Occurred()) return nullptr;
  return PyBool_FromLong(n == 0);
}

PyObject* queue_full(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  Py_ssize_t n = q_qsize(q);
  Py_ssize_t max = q->maxsize;
  q_leave(q);
  if (n < 0 && PyErr_Occurred()) return nullptr;
  return PyBool_FromLong(0 < max && max <= n);
}

PyObject* queue_shutdown(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  static const char* const names[] = {"immediate"};
  PyObject* a[1];
  if (!parse_args("shutdown", args, nargs, kw, names, 1, 0, a)) return nullptr;
  int immediate = a[0] ? PyObject_IsTrue(a[0]) : 0;
  if (immediate < 0) return nullptr;
  std::vector<PyObject*> dropped;
  bool ok = true;
  q_enter(q);
  q->shutdown = true;
  if (immediate) {
    for (;;) {
      Py_ssize_t n = q_qsize(q);
      if (n < 0 && PyErr_Occurred()) {
        ok = false;
        break;
      }
      if (n == 0) break;
      PyObject* item = q_get(q);
      if (!item) {
        ok = false;
        break;
      }
      dropped.push_back(item);
      if (q->unfinished > 0) --q->unfinished;
    }
  }
  // Everybody re-checks: getters and putters raise ShutDown, joiners see the count.
  if (!q->gil_mode) {
    q->all_tasks_done.notify_all();
    q->not_empty.notify_all();
    q->not_full.notify_all();
  } else {
    lock_mutex(q->mutex);
    q->all_tasks_done.notify_all();
    q->not_empty.notify_all();
    q->not_full.notify_all();
    q->mutex.release();
  }
  q_leave(q);
  release_all(dropped);  // rule 2: a __del__ may use the queue
  if (!ok) return nullptr;
  Py_RETURN_NONE;
}

// The base hooks: no locking (queue.Queue's run under its mutex; so do these when put/get
// call them).
PyObject* queue_base_put(PyObject* op, PyObject* item) {
  if (storage_put(Q(op), item) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyObject* queue_base_get(PyObject* op, PyObject*) {
  return storage_get(Q(op));
}

PyObject* queue_base_qsize(PyObject* op, PyObject*) {
  return PyLong_FromSsize_t(storage_size(Q(op)));
}

PyObject* queue_base_init(PyObject* op, PyObject*) {
  std::vector<PyObject*> refs;
  storage_take_all(Q(op), &refs);
  release_all(refs);
  Py_RETURN_NONE;
}

// A counter attribute's new value; false with an exception set.
bool counter_value(PyObject* value, const char* name, Py_ssize_t* out) {
  if (!value) {
    PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
    return false;
  }
  *out = PyNumber_AsSsize_t(value, PyExc_OverflowError);
  return !(*out == -1 && PyErr_Occurred());
}

PyObject* queue_get_maxsize(PyObject* op, void*) {
  return PyLong_FromSsize_t(Q(op)->maxsize);
}

int queue_set_maxsize(PyObject* op, PyObject* value, void*) {
  Py_ssize_t v;
  if (!counter_value(value, "maxsize", &v)) return -1;
  QueueObject* q = Q(op);
  q_enter(q);
  q->maxsize = v;
  q_notify(q, q->not_full, q->waiting_put, PY_SSIZE_T_MAX);  // a larger bound may make room
  q_leave(q);
  return 0;
}

PyObject* queue_get_unfinished(PyObject* op, void*) {
  return PyLong_FromSsize_t(Q(op)->unfinished);
}

int queue_set_unfinished(PyObject* op, PyObject* value, void*) {
  Py_ssize_t v;
  if (!counter_value(value, "unfinished_tasks", &v)) return -1;
  QueueObject* q = Q(op);
  q_enter(q);
  q->unfinished = v;
  if (v <= 0) q_notify(q, q->all_tasks_done, q->waiting_join, PY_SSIZE_T_MAX);
  q_leave(q);
  return 0;
}

PyObject* queue_get_is_shutdown(PyObject* op, void*) {
  return PyBool_FromLong(Q(op)->shutdown);
}

int queue_set_is_shutdown(PyObject* op, PyObject* value, void*) {
  if (!value) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete is_shutdown");
    return -1;
  }
  int b = PyObject_IsTrue(value);
  if (b < 0) return -1;
  QueueObject* q = Q(op);
  q_enter(q);
  q->shutdown = b;
  q_leave(q);
  return 0;
}

PyMethodDef queue_methods[] = {
    {"put", FASTCALL_KW(queue_put), METH_FASTCALL | METH_KEYWORDS,
     "put(item, block=True, timeout=None, cancel=None)"},
    {"put_nowait", queue_put_nowait, METH_O, "put_nowait(item): put(item, block=False)"},
    {"get", FASTCALL_KW(queue_get), METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None, cancel=None) -> item"},
    {"get_nowait", queue_get_nowait, METH_NOARGS, "get_nowait(): get(block=False)"},
    {"get_many", FASTCALL_KW(queue_get_many), METH_FASTCALL | METH_KEYWORDS,
     "get_many(n, block=True, timeout=None, cancel=None) -> list of 1..n items"},
    {"put_many", FASTCALL_KW(queue_put_many), METH_FASTCALL | METH_KEYWORDS,
     "put_many(items, block=True, timeout=None, cancel=None)"},
    {"task_done", queue_task_done, METH_NOARGS, nullptr},
    {"join", FASTCALL_KW(queue_join), METH_FASTCALL | METH_KEYWORDS, "join(cancel=None)"},
    {"qsize", queue_qsize, METH_NOARGS, nullptr},
    {"empty", queue_empty, METH_NOARGS, nullptr},
    {"full", queue_full, METH_NOARGS, nullptr},
    {"shutdown", FASTCALL_KW(queue_shutdown), METH_FASTCALL | METH_KEYWORDS,
     "shutdown(immediate=False)"},
    {"_put", queue_base_put, METH_O, nullptr},
    {"_get", queue_base_get, METH_NOARGS, nullptr},
    {"_qsize", queue_base_qsize, METH_NOARGS, nullptr},
    {"_init", queue_base_init, METH_O, nullptr},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef queue_getset[] = {
    {"maxsize", queue_get_maxsize, queue_set_maxsize, nullptr, nullptr},
    {"unfinished_tasks", queue_get_unfinished, queue_set_unfinished, nullptr, nullptr},
    {"is_shutdown", queue_get_is_shutdown, queue_set_is_shutdown, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef queue_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(QueueObject, weakreflist), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(QueueObject, dict), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot queue_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(queue_new)},
    {Py_tp_init, reinterpret_cast<void*>(queue_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(queue_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(queue_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(queue_clear)},
    {Py_tp_methods, queue_methods},
    {Py_tp_getset, queue_getset},
    {Py_tp_members, queue_members},
    {Py_tp_doc, const_cast<char*>("Queue(maxsize=0): a FIFO queue, as queue.Queue.")},
    {0, nullptr}};

PyType_Spec queue_spec = {"weft.Queue", sizeof(QueueObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                          queue_slots};

PyType_Slot lifo_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void*>(queue_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(queue_clear)},
    {Py_tp_doc, const_cast<char*>("LifoQueue(maxsize=0): a LIFO queue, as queue.LifoQueue.")},
    {0, nullptr}};
PyType_Spec lifo_spec = {"weft.LifoQueue", sizeof(QueueObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE, lifo_slots};

PyType_Slot priority_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void*>(queue_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(queue_clear)},
    {Py_tp_doc, const_cast<char*>("PriorityQueue(maxsize=0): lowest first (by <), as "
                                  "queue.PriorityQueue.")},
    {0, nullptr}};
PyType_Spec priority_spec = {"weft.PriorityQueue", sizeof(QueueObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                             priority_slots};

// --- SimpleQueue ---------------------------------------------------------------------------

// put never blocks; the arguments exist for compatibility with Queue.put.
PyObject* simple_put(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  QueueObject* q = Q(op);
  PyObject* item = nargs > 0 ? args[0] : nullptr;
  if (nargs != 1 || kw) {
    static const char* const names[] = {"item", "block", "timeout"};
    PyObject* a[3];
    if (!parse_args("put", args, nargs, kw, names, 3, 1, a)) return nullptr;
    item = a[0];
  }
  q_enter(q);
  try {
    q->items.push_back(item);
  } catch (const std::bad_alloc&) {
    q_leave(q);
    return PyErr_NoMemory();
  }
  Py_INCREF(item);
  q_notify(q, q->not_empty, q->waiting_get, 1);
  q_leave(q);
  Py_RETURN_NONE;
}

PyObject* simple_put_nowait(PyObject* op, PyObject* item) {
  PyObject* args[1] = {item};
  return simple_put(op, args, 1, nullptr);
}

PyObject* simple_get_impl(QueueObject* q, int block, bool timed, double t,
                          const std::stop_token* cancel) {
  Deadline deadline;
  if (block && timed) {
    if (t < 0) return negative_timeout();
    if (!check_timeout(t)) return nullptr;
    deadline = Deadline::after(t);
  }
  q_enter(q);
  auto ready = [q] { return !q->items.empty(); };
  while (q->items.empty()) {
    if (!block || (timed && deadline.expired())) return unlock_raise(q, q->st->empty);
    // Wake-up sources: a put (not_empty), the deadline, signals (main thread), `cancel`.
    if (q_wait(q, q->not_empty, &q->waiting_get, deadline, cancel, ready) == Wait::kError) {
      return nullptr;
    }
  }
  PyObject* item = q->items.front();
  q->items.pop_front();
  q_leave(q);
  return item;
}

PyObject* simple_get(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  if (nargs == 0 && !kw) return simple_get_impl(Q(op), 1, false, 0, nullptr);  // get()
  PyObject* a[3];
  static const char* const names[] = {"block", "timeout", "cancel"};
  if (!parse_args("get", args, nargs, kw, names, 3, 0, a)) return nullptr;
  int block;
  bool timed;
  double t;
  std::optional<std::stop_token> cancel;
  if (!block_timeout(a[0], a[1], &block, &timed, &t) || !cancel_arg(Q(op)->st, a[2], &cancel)) {
    return nullptr;
  }
  return simple_get_impl(Q(op), block, timed, t, ptr(cancel));
}

PyObject* simple_get_nowait(PyObject* op, PyObject*) {
  return simple_get_impl(Q(op), 0, false, 0, nullptr);
}

PyObject* simple_empty(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  bool e = q->items.empty();
  q_leave(q);
  return PyBool_FromLong(e);
}

PyObject* simple_qsize(PyObject* op, PyObject*) {
  QueueObject* q = Q(op);
  q_enter(q);
  size_t n = q->items.size();
  q_leave(q);
  return PyLong_FromSize_t(n);
}

PyMethodDef simple_methods[] = {
    {"put", FASTCALL_KW(simple_put), METH_FASTCALL | METH_KEYWORDS,
     "put(item, block=True, timeout=None): never blocks"},
    {"put_nowait", simple_put_nowait, METH_O, nullptr},
    {"get", FASTCALL_KW(simple_get), METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None, cancel=None) -> item"},
    {"get_nowait", simple_get_nowait, METH_NOARGS, nullptr},
    {"empty", simple_empty, METH_NOARGS, nullptr},
    {"qsize", simple_qsize, METH_NOARGS, nullptr},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot simple_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(simple_queue_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(queue_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(queue_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(queue_clear)},
    {Py_tp_methods, simple_methods},
    {Py_tp_members, queue_members},
    {Py_tp_doc, const_cast<char*>("SimpleQueue(): an unbounded FIFO queue, as "
                                  "queue.SimpleQueue; put() is re-entrant.")},
    {0, nullptr}};

PyType_Spec simple_spec = {"weft.SimpleQueue", sizeof(QueueObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                           simple_slots};

int add_queue_type(PyObject* m, PyType_Spec* spec, PyTypeObject* base, PyTypeObject** out) {
  PyObject* t = PyType_FromModuleAndSpec(m, spec, reinterpret_cast<PyObject*>(base));
  if (!t) return -1;
  *out = reinterpret_cast<PyTypeObject*>(t);
  return PyModule_AddType(m, *out);
}

}  // namespace

int add_queue_types(PyObject* m, ModuleState* st) {
  if (add_queue_type(m, &queue_spec, nullptr, &st->queue_type) < 0 ||
      add_queue_type(m, &lifo_spec, st->queue_type, &st->lifo_queue_type) < 0 ||
      add_queue_type(m, &priority_spec, st->queue_type, &st->priority_queue_type) < 0 ||
      add_queue_type(m, &simple_spec, nullptr, &st->simple_queue_type) < 0) {
    return -1;
  }
  PyObject* qt = reinterpret_cast<PyObject*>(st->queue_type);
  st->base_put = PyObject_GetAttr(qt, st->str_put);
  st->base_get = PyObject_GetAttr(qt, st->str_get);
  st->base_qsize = PyObject_GetAttr(qt, st->str_qsize);
  st->base_init = PyObject_GetAttr(qt, st->str_init);
  if (!st->base_put || !st->base_get || !st->base_qsize || !st->base_init) return -1;
  return 0;
}

}  // namespace weftpy
