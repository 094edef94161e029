// python/src/sync.cpp: weft.Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event,
// Barrier: threading's primitives (Python 3.13 semantics) on weft's.
#include <atomic>
#include <climits>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <vector>

#include <weft/event.hpp>
#include <weft/semaphore.hpp>

#include "common.hpp"

namespace weftpy {
namespace {

#define FASTCALL_KW(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))
using FastKw = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);

// "<module>.<qualname>" of an object's type, for reprs (threading's format).
PyObject* type_label(PyObject* self) {
  PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(self));
  PyObject* mod = PyObject_GetAttrString(type, "__module__");
  if (!mod) return nullptr;
  PyObject* qual = PyType_GetQualName(Py_TYPE(self));
  if (!qual) {
    Py_DECREF(mod);
    return nullptr;
  }
  PyObject* r = PyUnicode_FromFormat("%S.%S", mod, qual);
  Py_DECREF(mod);
  Py_DECREF(qual);
  return r;
}

void dealloc_common(PyObject* self, PyObject** weakreflist) {
  PyTypeObject* tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (*weakreflist) PyObject_ClearWeakRefs(self);
  if (tp->tp_clear) tp->tp_clear(self);
}

int traverse_type_only(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  return 0;
}

// threading.Lock.acquire's arguments: blocking=True, timeout=-1, and weft's cancel=None.
// Sets *deadline, *cancel; *poll when the call must not block. Returns false with an
// exception set.
bool lock_acquire_args(PyObject* self, const char* name, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames, Deadline* deadline, bool* poll,
                       std::optional<std::stop_token>* cancel) {
  static const char* const names[] = {"blocking", "timeout", "cancel"};
  PyObject* a[3];
  if (!parse_args(name, args, nargs, kwnames, names, 3, 0, a)) return false;
  if (a[2] && a[2] != Py_None) {
    ModuleState* st = state_of_type(Py_TYPE(self));
    if (!st || !cancel_arg(st, a[2], cancel)) return false;
  }
  int blocking = 1;
  if (a[0]) {
    blocking = PyObject_IsTrue(a[0]);
    if (blocking < 0) return false;
  }
  double t = -1;
  if (a[1] && a[1] != Py_None) {
    t = PyFloat_AsDouble(a[1]);
    if (t == -1.0 && PyErr_Occurred()) return false;
  }
  if (!blocking && t != -1) {
    PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
    return false;
  }
  if (t < 0 && t != -1) {
    PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
    return false;
  }
  *poll = !blocking;
  *deadline = Deadline::never();
  if (blocking && t != -1) {
    if (!timeout_seconds(a[1], &t)) return false;
    *deadline = Deadline::after(t);
    *poll = t <= 0;
  }
  return true;
}

// Acquires `lock` with the GIL held, by the blocking protocol. 1 acquired, 0 not, -1 error.
int acquire_weft_lock(weft::Lock& lock, const Deadline& deadline, bool poll,
                      const std::stop_token* cancel) {
  if (lock.try_lock()) return 1;
  if (poll) return 0;
  // Wake-up sources: release(); the deadline; signals (main thread); `cancel`.
  return blocking_call(deadline, cancel, [&lock](auto&&... a) { return lock.acquire(a...); });
}

// Acquires with no timeout and no signal checks: for restoring a lock after a wait, which
// must not fail (threading's _acquire_restore cannot be interrupted either).
void acquire_uninterruptible(weft::Lock& lock) {
  lock_mutex(lock);
}

// ============================================================================ Lock

struct LockObject {
  PyObject_HEAD weft::Lock lock;
  PyObject* weakreflist;
};

PyObject* lock_new(PyTypeObject* type, PyObject*, PyObject*) {
  auto* self = reinterpret_cast<LockObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  new (&self->lock) weft::Lock();
  return reinterpret_cast<PyObject*>(self);
}

void lock_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<LockObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  self->lock.~Lock();
  tp->tp_free(op);
  Py_DECREF(tp);
}

PyObject* lock_acquire(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<LockObject*>(op);
  if (nargs == 0 && !kw && self->lock.try_lock()) Py_RETURN_TRUE;  // the fast path
  Deadline deadline;
  bool poll;
  std::optional<std::stop_token> cancel;
  if (!lock_acquire_args(op, "acquire", args, nargs, kw, &deadline, &poll, &cancel)) {
    return nullptr;
  }
  int r = acquire_weft_lock(self->lock, deadline, poll, ptr(cancel));
  if (r < 0) return nullptr;
  return PyBool_FromLong(r);
}

PyObject* lock_release(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<LockObject*>(op);
  // With the GIL, nothing can change the lock between the check and the release but a
  // waiter taking it after a release; without it (free-threaded), two racing release()
  // calls of a held lock may both pass the check, as two racing calls could in any order.
  if (!self->lock.locked()) {
    PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
    return nullptr;
  }
  self->lock.release();
  Py_RETURN_NONE;
}

PyObject* lock_exit(PyObject* op, PyObject* const*, Py_ssize_t) {
  return lock_release(op, nullptr);
}

PyObject* lock_locked(PyObject* op, PyObject*) {
  return PyBool_FromLong(reinterpret_cast<LockObject*>(op)->lock.locked());
}

PyObject* lock_at_fork_reinit(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<LockObject*>(op);
  // After fork() only this thread exists; whoever held or waited for the lock is gone.
  new (&self->lock) weft::Lock();
  Py_RETURN_NONE;
}

PyObject* lock_repr(PyObject* op) {
  auto* self = reinterpret_cast<LockObject*>(op);
  PyObject* label = type_label(op);
  if (!label) return nullptr;
  PyObject* r = PyUnicode_FromFormat("<%s %U object at %p>",
                                     self->lock.locked() ? "locked" : "unlocked", label, op);
  Py_DECREF(label);
  return r;
}

PyMethodDef lock_methods[] = {
    {"acquire", FASTCALL_KW(lock_acquire), METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1, cancel=None) -> bool"},
    {"acquire_lock", FASTCALL_KW(lock_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"__enter__", FASTCALL_KW(lock_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"release", lock_release, METH_NOARGS, "release(): unlock; RuntimeError if unlocked."},
    {"release_lock", lock_release, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(lock_exit)),
     METH_FASTCALL, nullptr},
    {"locked", lock_locked, METH_NOARGS, "locked() -> bool"},
    {"locked_lock", lock_locked, METH_NOARGS, nullptr},
    {"_at_fork_reinit", lock_at_fork_reinit, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef lock_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LockObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot lock_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(lock_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(lock_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(traverse_type_only)},
    {Py_tp_repr, reinterpret_cast<void*>(lock_repr)},
    {Py_tp_methods, lock_methods},
    {Py_tp_members, lock_members},
    {Py_tp_doc, const_cast<char*>("A primitive lock, as threading.Lock, on weft::Lock.")},
    {0, nullptr}};

PyType_Spec lock_spec = {"weft.Lock", sizeof(LockObject), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
                         lock_slots};

// ============================================================================ RLock

struct RLockObject {
  PyObject_HEAD weft::Lock lock;
  // Written only by the thread that holds `lock`; other threads read it only to compare it
  // with their own id, which they can see only if they wrote it: relaxed is enough.
  std::atomic<unsigned long> owner;
  unsigned long count;  // touched only by the owner
  PyObject* weakreflist;
};

PyObject* rlock_new(PyTypeObject* type, PyObject*, PyObject*) {
  auto* self = reinterpret_cast<RLockObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  new (&self->lock) weft::Lock();
  new (&self->owner) std::atomic<unsigned long>(0);
  self->count = 0;
  return reinterpret_cast<PyObject*>(self);
}

void rlock_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  self->lock.~Lock();
  tp->tp_free(op);
  Py_DECREF(tp);
}

bool rlock_owned(RLockObject* self, unsigned long tid) {
  return self->owner.load(std::memory_order_relaxed) == tid && self->count > 0;
}

void rlock_take(RLockObject* self, unsigned long tid, unsigned long count) {
  self->owner.store(tid, std::memory_order_relaxed);
  self->count = count;
}

PyObject* rlock_acquire(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  unsigned long tid = PyThread_get_thread_ident();
  if (rlock_owned(self, tid)) {
    if (self->count == ULONG_MAX) {
      PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
      return nullptr;
    }
    ++self->count;
    Py_RETURN_TRUE;
  }
  if (nargs == 0 && !kw && self->lock.try_lock()) {
    rlock_take(self, tid, 1);
    Py_RETURN_TRUE;
  }
  Deadline deadline;
  bool poll;
  std::optional<std::stop_token> cancel;
  if (!lock_acquire_args(op, "acquire", args, nargs, kw, &deadline, &poll, &cancel)) {
    return nullptr;
  }
  int r = acquire_weft_lock(self->lock, deadline, poll, ptr(cancel));
  if (r < 0) return nullptr;
  if (r) rlock_take(self, tid, 1);
  return PyBool_FromLong(r);
}

PyObject* rlock_release(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  if (!rlock_owned(self, PyThread_get_thread_ident())) {
    PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
    return nullptr;
  }
  if (--self->count == 0) {
    self->owner.store(0, std::memory_order_relaxed);
    self->lock.release();
  }
  Py_RETURN_NONE;
}

PyObject* rlock_exit(PyObject* op, PyObject* const*, Py_ssize_t) {
  return rlock_release(op, nullptr);
}

// Releases completely; returns (count, owner) for _acquire_restore.
PyObject* rlock_release_save(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  if (!rlock_owned(self, PyThread_get_thread_ident())) {
    PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
    return nullptr;
  }
  unsigned long count = self->count;
  unsigned long owner = self->owner.load(std::memory_order_relaxed);
  self->count = 0;
  self->owner.store(0, std::memory_order_relaxed);
  self->lock.release();
  return Py_BuildValue("(kk)", count, owner);
}

PyObject* rlock_acquire_restore(PyObject* op, PyObject* state) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  unsigned long count, owner;
  if (!PyArg_ParseTuple(state, "kk:_acquire_restore", &count, &owner)) return nullptr;
  acquire_uninterruptible(self->lock);
  rlock_take(self, owner, count);
  Py_RETURN_NONE;
}

PyObject* rlock_is_owned(PyObject* op, PyObject*) {
  return PyBool_FromLong(
      rlock_owned(reinterpret_cast<RLockObject*>(op), PyThread_get_thread_ident()));
}

PyObject* rlock_recursion_count(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  return PyLong_FromUnsignedLong(rlock_owned(self, PyThread_get_thread_ident()) ? self->count : 0);
}

PyObject* rlock_locked(PyObject* op, PyObject*) {
  return PyBool_FromLong(reinterpret_cast<RLockObject*>(op)->lock.locked());
}

PyObject* rlock_at_fork_reinit(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  new (&self->lock) weft::Lock();
  self->owner.store(0, std::memory_order_relaxed);
  self->count = 0;
  Py_RETURN_NONE;
}

PyObject* rlock_repr(PyObject* op) {
  auto* self = reinterpret_cast<RLockObject*>(op);
  PyObject* label = type_label(op);
  if (!label) return nullptr;
  bool locked = self->lock.locked();
  unsigned long owner = self->owner.load(std::memory_order_relaxed);
  PyObject* r = PyUnicode_FromFormat("<%s %U object owner=%lu count=%lu at %p>",
                                     locked ? "locked" : "unlocked", label, locked ? owner : 0UL,
                                     locked ? self->count : 0UL, op);
  Py_DECREF(label);
  return r;
}

PyMethodDef rlock_methods[] = {
    {"acquire", FASTCALL_KW(rlock_acquire), METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1, cancel=None) -> bool"},
    {"__enter__", FASTCALL_KW(rlock_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"release", rlock_release, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(rlock_exit)),
     METH_FASTCALL, nullptr},
    {"locked", rlock_locked, METH_NOARGS, nullptr},
    {"_release_save", rlock_release_save, METH_NOARGS, nullptr},
    {"_acquire_restore", rlock_acquire_restore, METH_O, nullptr},
    {"_is_owned", rlock_is_owned, METH_NOARGS, nullptr},
    {"_recursion_count", rlock_recursion_count, METH_NOARGS, nullptr},
    {"_at_fork_reinit", rlock_at_fork_reinit, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef rlock_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(RLockObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot rlock_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(rlock_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(rlock_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(traverse_type_only)},
    {Py_tp_repr, reinterpret_cast<void*>(rlock_repr)},
    {Py_tp_methods, rlock_methods},
    {Py_tp_members, rlock_members},
    {Py_tp_doc, const_cast<char*>("A reentrant lock, as threading.RLock.")},
    {0, nullptr}};

PyType_Spec rlock_spec = {"weft.RLock", sizeof(RLockObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                          rlock_slots};

// ============================================================================ Condition

// One thread in Condition.wait(), on its stack. notify() unlinks it under list_lock and
// sets `ev` afterwards; the waiter, finding itself unlinked, waits for `ev` before its frame
// ends, so set() never touches a dead Event (weft::Event lets a woken waiter destroy it).
struct CondWaiter {
  weft::Event ev;
  CondWaiter* prev = nullptr;
  CondWaiter* next = nullptr;
  bool linked = false;
};

enum LockKind { kGeneric = 0, kWeftLock = 1, kWeftRLock = 2 };

struct ConditionObject {
  PyObject_HEAD PyObject* lock;
  int kind;
  bool has_release_save, has_acquire_restore, has_is_owned;
  ModuleState* st;
  // list_lock guards head/tail/nwaiters and every waiter's links; held for pointer updates
  // only, never across a Python call or a wait, so taking it with the GIL cannot deadlock.
  weft::Lock list_lock;
  CondWaiter* head;
  CondWaiter* tail;
  Py_ssize_t nwaiters;
  PyObject* weakreflist;
};

PyObject* condition_new(PyTypeObject* type, PyObject*, PyObject*) {
  auto* self = reinterpret_cast<ConditionObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  new (&self->list_lock) weft::Lock();
  self->st = state_of_type(type);
  if (!self->st) {
    Py_DECREF(self);
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(self);
}

int condition_init(PyObject* op, PyObject* args, PyObject* kwds) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  static const char* kwlist[] = {"lock", nullptr};
  PyObject* lock = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Condition", const_cast<char**>(kwlist), &lock)) {
    return -1;
  }
  ModuleState* st = self->st;
  if (lock == Py_None) {
    lock = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(st->rlock_type));
    if (!lock) return -1;
  } else {
    Py_INCREF(lock);
  }
  Py_XSETREF(self->lock, lock);
  if (Py_IS_TYPE(lock, st->lock_type)) {
    self->kind = kWeftLock;
  } else if (Py_IS_TYPE(lock, st->rlock_type)) {
    self->kind = kWeftRLock;
  } else {
    self->kind = kGeneric;
    self->has_release_save = PyObject_HasAttr(lock, st->str_release_save);
    self->has_acquire_restore = PyObject_HasAttr(lock, st->str_acquire_restore);
    self->has_is_owned = PyObject_HasAttr(lock, st->str_is_owned);
  }
  return 0;
}

int condition_traverse(PyObject* op, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(reinterpret_cast<ConditionObject*>(op)->lock);
  return 0;
}

int condition_clear(PyObject* op) {
  Py_CLEAR(reinterpret_cast<ConditionObject*>(op)->lock);
  return 0;
}

void condition_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  self->list_lock.~Lock();
  tp->tp_free(op);
  Py_DECREF(tp);
}

bool condition_ready(ConditionObject* self) {
  if (self->lock) return true;
  PyErr_SetString(PyExc_RuntimeError, "Condition.__init__() was not called");
  return false;
}

// Calls lock.<name>(*args) on a lock of any type.
PyObject* call_lock_method(ConditionObject* self, PyObject* name, PyObject* const* args,
                           Py_ssize_t nargs, PyObject* kwnames) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  std::vector<PyObject*> stack(static_cast<size_t>(nargs + nkw + 1));
  stack[0] = self->lock;
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) stack[static_cast<size_t>(i + 1)] = args[i];
  return PyObject_VectorcallMethod(name, stack.data(), static_cast<size_t>(nargs + 1), kwnames);
}

PyObject* condition_acquire(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  switch (self->kind) {
    case kWeftLock:
      return lock_acquire(self->lock, args, nargs, kw);
    case kWeftRLock:
      return rlock_acquire(self->lock, args, nargs, kw);
    default:
      return call_lock_method(self, self->st->str_acquire, args, nargs, kw);
  }
}

PyObject* condition_release(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  switch (self->kind) {
    case kWeftLock:
      return lock_release(self->lock, nullptr);
    case kWeftRLock:
      return rlock_release(self->lock, nullptr);
    default:
      return PyObject_CallMethodNoArgs(self->lock, self->st->str_release);
  }
}

PyObject* condition_exit(PyObject* op, PyObject* const*, Py_ssize_t) {
  return condition_release(op, nullptr);
}

// 1 owned, 0 not, -1 error.
int condition_is_owned_impl(ConditionObject* self) {
  switch (self->kind) {
    case kWeftLock:
      return reinterpret_cast<LockObject*>(self->lock)->lock.locked();
    case kWeftRLock:
      return rlock_owned(reinterpret_cast<RLockObject*>(self->lock), PyThread_get_thread_ident());
    default:
      break;
  }
  if (self->has_is_owned) {
    PyObject* r = PyObject_CallMethodNoArgs(self->lock, self->st->str_is_owned);
    if (!r) return -1;
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
  }
  // threading.Condition's fallback for a lock without _is_owned.
  PyObject* r = PyObject_CallMethod(self->lock, "acquire", "O", Py_False);
  if (!r) return -1;
  int got = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (got < 0) return -1;
  if (got) {
    r = PyObject_CallMethodNoArgs(self->lock, self->st->str_release);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
  }
  return 1;
}

PyObject* condition_is_owned(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  int r = condition_is_owned_impl(self);
  return r < 0 ? nullptr : PyBool_FromLong(r);
}

// The state a wait saves and restores. For a weft.RLock: the count and owner; for a lock
// with _release_save: what it returned; else nothing.
struct SavedLock {
  unsigned long count = 0, owner = 0;
  PyObject* obj = nullptr;
};

bool condition_release_save_impl(ConditionObject* self, SavedLock* saved) {
  switch (self->kind) {
    case kWeftLock: {
      auto* l = reinterpret_cast<LockObject*>(self->lock);
      l->lock.release();
      return true;
    }
    case kWeftRLock: {
      auto* l = reinterpret_cast<RLockObject*>(self->lock);
      saved->count = l->count;
      saved->owner = l->owner.load(std::memory_order_relaxed);
      l->count = 0;
      l->owner.store(0, std::memory_order_relaxed);
      l->lock.release();
      return true;
    }
    default:
      break;
  }
  PyObject* name = self->has_release_save ? self->st->str_release_save : self->st->str_release;
  saved->obj = PyObject_CallMethodNoArgs(self->lock, name);
  return saved->obj != nullptr;
}

// Reacquires; keeps an exception that is already set (a signal handler's) in place.
bool condition_acquire_restore_impl(ConditionObject* self, SavedLock* saved) {
  switch (self->kind) {
    case kWeftLock:
      acquire_uninterruptible(reinterpret_cast<LockObject*>(self->lock)->lock);
      return true;
    case kWeftRLock: {
      auto* l = reinterpret_cast<RLockObject*>(self->lock);
      acquire_uninterruptible(l->lock);
      rlock_take(l, saved->owner, saved->count);
      return true;
    }
    default:
      break;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject* r = self->has_acquire_restore
                    ? PyObject_CallMethodOneArg(self->lock, self->st->str_acquire_restore,
                                                saved->obj ? saved->obj : Py_None)
                    : PyObject_CallMethodNoArgs(self->lock, self->st->str_acquire);
  Py_CLEAR(saved->obj);
  Py_XDECREF(r);
  if (type) {
    if (!r) PyErr_Clear();  // the first exception wins
    PyErr_Restore(type, value, tb);
  }
  return r != nullptr;
}

void waiter_link(ConditionObject* self, CondWaiter* w) {
  self->list_lock.lock();
  w->prev = self->tail;
  w->next = nullptr;
  if (self->tail) {
    self->tail->next = w;
  } else {
    self->head = w;
  }
  self->tail = w;
  w->linked = true;
  ++self->nwaiters;
  self->list_lock.unlock();
}

// With list_lock held.
void waiter_unlink_locked(ConditionObject* self, CondWaiter* w) {
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    self->head = w->next;
  }
  if (w->next) {
    w->next->prev = w->prev;
  } else {
    self->tail = w->prev;
  }
  w->linked = false;
  --self->nwaiters;
}

// Returns true if `w` was still linked (it was not notified) and unlinks it.
bool waiter_withdraw(ConditionObject* self, CondWaiter* w) {
  self->list_lock.lock();
  bool linked = w->linked;
  if (linked) waiter_unlink_locked(self, w);
  self->list_lock.unlock();
  return linked;
}

void notify_n(ConditionObject* self, Py_ssize_t n) {
  CondWaiter* local[8];
  std::vector<CondWaiter*> many;
  Py_ssize_t k = 0;
  self->list_lock.lock();
  while (k < n && self->head) {
    CondWaiter* w = self->head;
    waiter_unlink_locked(self, w);
    if (k < 8) {
      local[k] = w;
    } else {
      many.push_back(w);
    }
    ++k;
  }
  self->list_lock.unlock();
  // Wake after unlinking: each waiter stays alive until its Event is set (see CondWaiter).
  for (Py_ssize_t i = 0; i < k && i < 8; ++i) local[i]->ev.set();
  for (CondWaiter* w : many) w->ev.set();
}

// wait(timeout): has_timeout=false waits forever. Returns a new bool or nullptr.
PyObject* condition_wait_impl(ConditionObject* self, bool has_timeout, double timeout,
                              const std::stop_token* cancel) {
  int owned = condition_is_owned_impl(self);
  if (owned < 0) return nullptr;
  if (!owned) {
    PyErr_SetString(PyExc_RuntimeError, "cannot wait on un-acquired lock");
    return nullptr;
  }
  Deadline deadline = has_timeout ? Deadline::after(timeout) : Deadline::never();
  CondWaiter w;
  waiter_link(self, &w);
  SavedLock saved;
  if (!condition_release_save_impl(self, &saved)) {
    waiter_withdraw(self, &w);
    return nullptr;
  }
  int r;
  if (w.ev.is_set()) {
    r = 1;
  } else if (has_timeout && timeout <= 0) {
    r = 0;
  } else {
    // Wake-up sources: notify() setting w.ev; the deadline; signals (main thread); `cancel`.
    r = blocking_call(deadline, cancel, [&w](auto&&... a) { return w.ev.wait(a...); });
  }
  bool notified = !waiter_withdraw(self, &w);
  if (notified && r != 1) {
    // A notify() unlinked us and is about to set (or is setting) w.ev: wait for it, briefly.
    Py_BEGIN_ALLOW_THREADS w.ev.wait();
    Py_END_ALLOW_THREADS
  }
  // Interrupted (a signal handler's exception, Cancelled): hand the wake-up on, lose nothing.
  if (r < 0 && notified) notify_n(self, 1);
  bool restored = condition_acquire_restore_impl(self, &saved);
  if (r < 0 || !restored) return nullptr;
  return PyBool_FromLong(notified);
}

bool optional_timeout(PyObject* obj, bool* has, double* t) {
  *has = obj && obj != Py_None;
  if (*has && !timeout_seconds(obj, t)) return false;
  return true;
}

PyObject* condition_wait(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  static const char* const names[] = {"timeout", "cancel"};
  PyObject* a[2];
  if (!condition_ready(self) || !parse_args("wait", args, nargs, kw, names, 2, 0, a)) {
    return nullptr;
  }
  bool has;
  double t = 0;
  std::optional<std::stop_token> cancel;
  if (!optional_timeout(a[0], &has, &t) || !cancel_arg(self->st, a[1], &cancel)) return nullptr;
  return condition_wait_impl(self, has, t, ptr(cancel));
}

PyObject* condition_wait_for(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  static const char* const names[] = {"predicate", "timeout", "cancel"};
  PyObject* a[3];
  if (!condition_ready(self) || !parse_args("wait_for", args, nargs, kw, names, 3, 1, a)) {
    return nullptr;
  }
  bool has;
  double t = 0;
  std::optional<std::stop_token> cancel;
  if (!optional_timeout(a[1], &has, &t) || !cancel_arg(self->st, a[2], &cancel)) return nullptr;
  Deadline deadline = has ? Deadline::after(t) : Deadline::never();
  PyObject* result = PyObject_CallNoArgs(a[0]);
  bool first = true;
  while (result) {
    int ok = PyObject_IsTrue(result);
    if (ok < 0) {
      Py_CLEAR(result);
      break;
    }
    if (ok) break;
    double wait_t = t;
    if (has && !first) {
      wait_t = std::chrono::duration<double>(deadline.at - Clock::now()).count();
      if (wait_t <= 0) break;
    }
    first = false;
    PyObject* w = condition_wait_impl(self, has, wait_t, ptr(cancel));
    if (!w) {
      Py_CLEAR(result);
      break;
    }
    Py_DECREF(w);
    Py_SETREF(result, PyObject_CallNoArgs(a[0]));
  }
  return result;
}

PyObject* condition_notify(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  static const char* const names[] = {"n"};
  PyObject* a[1];
  if (!condition_ready(self) || !parse_args("notify", args, nargs, kw, names, 1, 0, a)) {
    return nullptr;
  }
  Py_ssize_t n = 1;
  if (a[0]) {
    n = PyNumber_AsSsize_t(a[0], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    if (n < 0) {
      PyErr_SetString(PyExc_ValueError, "n must be a non-negative integer");
      return nullptr;
    }
  }
  int owned = condition_is_owned_impl(self);
  if (owned < 0) return nullptr;
  if (!owned) {
    PyErr_SetString(PyExc_RuntimeError, "cannot notify on un-acquired lock");
    return nullptr;
  }
  notify_n(self, n);
  Py_RETURN_NONE;
}

PyObject* condition_notify_all(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  int owned = condition_is_owned_impl(self);
  if (owned < 0) return nullptr;
  if (!owned) {
    PyErr_SetString(PyExc_RuntimeError, "cannot notify on un-acquired lock");
    return nullptr;
  }
  notify_n(self, PY_SSIZE_T_MAX);
  Py_RETURN_NONE;
}

PyObject* condition_release_save(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  if (self->kind == kWeftRLock) return rlock_release_save(self->lock, nullptr);
  SavedLock saved;
  if (self->kind == kWeftLock) {
    if (!reinterpret_cast<LockObject*>(self->lock)->lock.locked()) {
      PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
      return nullptr;
    }
    condition_release_save_impl(self, &saved);
    Py_RETURN_NONE;
  }
  if (!condition_release_save_impl(self, &saved)) return nullptr;
  return saved.obj;
}

PyObject* condition_acquire_restore(PyObject* op, PyObject* state) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  if (!condition_ready(self)) return nullptr;
  if (self->kind == kWeftRLock) return rlock_acquire_restore(self->lock, state);
  SavedLock saved;
  Py_INCREF(state);
  saved.obj = state;
  if (!condition_acquire_restore_impl(self, &saved)) return nullptr;
  Py_RETURN_NONE;
}

PyObject* condition_repr(PyObject* op) {
  auto* self = reinterpret_cast<ConditionObject*>(op);
  self->list_lock.lock();
  Py_ssize_t n = self->nwaiters;
  self->list_lock.unlock();
  return PyUnicode_FromFormat("<Condition(%R, %zd)>", self->lock ? self->lock : Py_None, n);
}

PyMethodDef condition_methods[] = {
    {"acquire", FASTCALL_KW(condition_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"__enter__", FASTCALL_KW(condition_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"release", condition_release, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(condition_exit)),
     METH_FASTCALL, nullptr},
    {"wait", FASTCALL_KW(condition_wait), METH_FASTCALL | METH_KEYWORDS,
     "wait(timeout=None, cancel=None) -> bool: True unless the timeout expired"},
    {"wait_for", FASTCALL_KW(condition_wait_for), METH_FASTCALL | METH_KEYWORDS,
     "wait_for(predicate, timeout=None, cancel=None): the predicate's last result"},
    {"notify", FASTCALL_KW(condition_notify), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"notify_all", condition_notify_all, METH_NOARGS, nullptr},
    {"notifyAll", condition_notify_all, METH_NOARGS, nullptr},
    {"_is_owned", condition_is_owned, METH_NOARGS, nullptr},
    {"_release_save", condition_release_save, METH_NOARGS, nullptr},
    {"_acquire_restore", condition_acquire_restore, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef condition_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ConditionObject, weakreflist), READONLY, nullptr},
    {"_lock", T_OBJECT, offsetof(ConditionObject, lock), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot condition_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(condition_new)},
    {Py_tp_init, reinterpret_cast<void*>(condition_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(condition_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(condition_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(condition_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(condition_repr)},
    {Py_tp_methods, condition_methods},
    {Py_tp_members, condition_members},
    {Py_tp_doc, const_cast<char*>("A condition variable, as threading.Condition.")},
    {0, nullptr}};

PyType_Spec condition_spec = {"weft.Condition", sizeof(ConditionObject), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                              condition_slots};

// ============================================================================ Semaphore

struct SemaphoreObject {
  PyObject_HEAD alignas(
      weft::BoundedSemaphore) unsigned char storage[sizeof(weft::BoundedSemaphore)];
  Py_ssize_t initial;
  bool bounded;
  bool constructed;
  PyObject* weakreflist;
  weft::Semaphore& sem() { return *std::launder(reinterpret_cast<weft::Semaphore*>(storage)); }
};

PyObject* semaphore_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  static const char* kwlist[] = {"value", nullptr};
  Py_ssize_t value = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n", const_cast<char**>(kwlist), &value)) {
    return nullptr;
  }
  if (value < 0) {
    PyErr_SetString(PyExc_ValueError, "semaphore initial value must be >= 0");
    return nullptr;
  }
  ModuleState* st = state_of_type(type);
  if (!st) return nullptr;
  auto* self = reinterpret_cast<SemaphoreObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  self->bounded = PyType_IsSubtype(type, st->bounded_semaphore_type);
  self->initial = value;
  try {
    if (self->bounded) {
      new (self->storage) weft::BoundedSemaphore(static_cast<std::size_t>(value));
    } else {
      new (self->storage) weft::Semaphore(static_cast<std::size_t>(value));
    }
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
    Py_DECREF(self);
    return nullptr;
  }
  self->constructed = true;
  return reinterpret_cast<PyObject*>(self);
}

void semaphore_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<SemaphoreObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  if (self->constructed) self->sem().~Semaphore();
  tp->tp_free(op);
  Py_DECREF(tp);
}

PyObject* semaphore_acquire(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<SemaphoreObject*>(op);
  if (nargs == 0 && !kw && self->sem().acquire(false)) Py_RETURN_TRUE;  // the fast path
  static const char* const names[] = {"blocking", "timeout", "cancel"};
  PyObject* a[3];
  if (!parse_args("acquire", args, nargs, kw, names, 3, 0, a)) return nullptr;
  std::optional<std::stop_token> cancel;
  if (a[2] && a[2] != Py_None) {
    ModuleState* st = state_of_type(Py_TYPE(op));
    if (!st || !cancel_arg(st, a[2], &cancel)) return nullptr;
  }
  int blocking = 1;
  if (a[0]) {
    blocking = PyObject_IsTrue(a[0]);
    if (blocking < 0) return nullptr;
  }
  bool has;
  double t = 0;
  if (!blocking && a[1] && a[1] != Py_None) {
    PyErr_SetString(PyExc_ValueError, "can't specify timeout for non-blocking acquire");
    return nullptr;
  }
  if (!optional_timeout(a[1], &has, &t)) return nullptr;
  weft::Semaphore& sem = self->sem();
  if (sem.acquire(false)) Py_RETURN_TRUE;
  if (!blocking || (has && t <= 0)) Py_RETURN_FALSE;
  // Wake-up sources: release(); the deadline; signals (main thread); `cancel`.
  int r = blocking_call(has ? Deadline::after(t) : Deadline::never(), ptr(cancel),
                        [&sem](auto&&... a) { return sem.acquire(a...); });
  if (r < 0) return nullptr;
  return PyBool_FromLong(r);
}

PyObject* semaphore_release(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<SemaphoreObject*>(op);
  Py_ssize_t n = 1;
  if (nargs || kw) {
    static const char* const names[] = {"n"};
    PyObject* a[1];
    if (!parse_args("release", args, nargs, kw, names, 1, 0, a)) return nullptr;
    if (a[0]) {
      n = PyNumber_AsSsize_t(a[0], PyExc_OverflowError);
      if (n == -1 && PyErr_Occurred()) return nullptr;
    }
  }
  if (n < 1) {
    PyErr_SetString(PyExc_ValueError, "n must be one or more");
    return nullptr;
  }
  try {
    self->sem().release(static_cast<std::size_t>(n));
  } catch (const std::logic_error&) {
    PyErr_SetString(PyExc_ValueError, "Semaphore released too many times");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* semaphore_exit(PyObject* op, PyObject* const*, Py_ssize_t) {
  return semaphore_release(op, nullptr, 0, nullptr);
}

PyObject* semaphore_repr(PyObject* op) {
  auto* self = reinterpret_cast<SemaphoreObject*>(op);
  PyObject* label = type_label(op);
  if (!label) return nullptr;
  PyObject* r = self->bounded
                    ? PyUnicode_FromFormat("<%U at %p: value=%zu/%zd>", label, op,
                                           self->sem().value(), self->initial)
                    : PyUnicode_FromFormat("<%U at %p: value=%zu>", label, op, self->sem().value());
  Py_DECREF(label);
  return r;
}

PyObject* semaphore_get_value(PyObject* op, void*) {
  return PyLong_FromSize_t(reinterpret_cast<SemaphoreObject*>(op)->sem().value());
}

PyMethodDef semaphore_methods[] = {
    {"acquire", FASTCALL_KW(semaphore_acquire), METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=None, cancel=None) -> bool"},
    {"__enter__", FASTCALL_KW(semaphore_acquire), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"release", FASTCALL_KW(semaphore_release), METH_FASTCALL | METH_KEYWORDS, "release(n=1)"},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(semaphore_exit)),
     METH_FASTCALL, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef semaphore_getset[] = {
    {"_value", semaphore_get_value, nullptr, "the current count (read-only)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef semaphore_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SemaphoreObject, weakreflist), READONLY, nullptr},
    {"_initial_value", T_PYSSIZET, offsetof(SemaphoreObject, initial), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot semaphore_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(semaphore_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(semaphore_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(traverse_type_only)},
    {Py_tp_repr, reinterpret_cast<void*>(semaphore_repr)},
    {Py_tp_methods, semaphore_methods},
    {Py_tp_members, semaphore_members},
    {Py_tp_getset, semaphore_getset},
    {Py_tp_doc, const_cast<char*>("A counting semaphore, as threading.Semaphore.")},
    {0, nullptr}};

PyType_Spec semaphore_spec = {"weft.Semaphore", sizeof(SemaphoreObject), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                              semaphore_slots};

PyType_Slot bounded_semaphore_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void*>(traverse_type_only)},
    {Py_tp_doc, const_cast<char*>("A semaphore that refuses to be released past its initial "
                                  "value, as threading.BoundedSemaphore.")},
    {0, nullptr}};

PyType_Spec bounded_semaphore_spec = {"weft.BoundedSemaphore", sizeof(SemaphoreObject), 0,
                                      Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                                      bounded_semaphore_slots};

// ============================================================================ Event

struct EventObject {
  PyObject_HEAD weft::Event ev;
  // How many set() calls have raised the flag, counted after each: a main-thread wait that a
  // signal took out of ev's wait list while it ran the handlers learns from it that the event
  // was set meanwhile, even if it was cleared again (event_wait).
  std::atomic<std::uint64_t> sets;
  PyObject* weakreflist;
};

PyObject* event_new(PyTypeObject* type, PyObject*, PyObject*) {
  auto* self = reinterpret_cast<EventObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  new (&self->ev) weft::Event();
  new (&self->sets) std::atomic<std::uint64_t>(0);
  return reinterpret_cast<PyObject*>(self);
}

void event_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<EventObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  self->ev.~Event();
  tp->tp_free(op);
  Py_DECREF(tp);
}

PyObject* event_is_set(PyObject* op, PyObject*) {
  return PyBool_FromLong(reinterpret_cast<EventObject*>(op)->ev.is_set());
}

PyObject* event_set(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<EventObject*>(op);
  self->ev.set();
  // After the flag is up, so that a wait that sees the count move may return true. seq_cst,
  // with the waiter's loads: see event_wait.
  self->sets.fetch_add(1, std::memory_order_seq_cst);
  Py_RETURN_NONE;
}

PyObject* event_clear(PyObject* op, PyObject*) {
  reinterpret_cast<EventObject*>(op)->ev.clear();
  Py_RETURN_NONE;
}

PyObject* event_wait(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<EventObject*>(op);
  if (self->ev.is_set()) Py_RETURN_TRUE;
  static const char* const names[] = {"timeout", "cancel"};
  PyObject* a[2];
  if (!parse_args("wait", args, nargs, kw, names, 2, 0, a)) return nullptr;
  bool has;
  double t = 0;
  if (!optional_timeout(a[0], &has, &t)) return nullptr;
  std::optional<std::stop_token> cancel;
  if (a[1] && a[1] != Py_None) {
    ModuleState* st = state_of_type(Py_TYPE(op));
    if (!st || !cancel_arg(st, a[1], &cancel)) return nullptr;
  }
  if (has && t <= 0) Py_RETURN_FALSE;
  weft::Event& ev = self->ev;
  const Deadline deadline = has ? Deadline::after(t) : Deadline::never();
  // In the main thread a signal takes the wait out of ev's list while the handlers run (rule
  // 3), and a set() that comes and is undone by a clear() then, or that found the wait
  // already leaving, claims nobody. threading.Event.wait returns True for such a set (its
  // waiter stays in the Condition's list throughout), and so does this one: set() counts
  // after raising the flag, and a count that moved since `seen` (taken before the flag was
  // last found clear) means a set() came during the wait. Other threads are never taken
  // out of the list.
  const std::uint64_t seen = self->sets.load(std::memory_order_seq_cst);
  if (ev.is_set()) Py_RETURN_TRUE;
  auto moved = [self, seen] { return self->sets.load(std::memory_order_seq_cst) != seen; };
  auto wait = [&ev](auto&&... x) { return ev.wait(x...); };
  // Wake-up sources: set(); the deadline; signals (main thread); `cancel`.
  for (;;) {
    switch (attempt_wait(ptr(cancel), [&](const std::stop_token* stop) {
      return call_wait(wait, deadline, stop);
    })) {
      case Attempt::kOk:
        Py_RETURN_TRUE;
      case Attempt::kCancelled:
        raise_cancelled();
        return nullptr;
      case Attempt::kError:
        return nullptr;
      case Attempt::kInterrupted:
        if (PyErr_CheckSignals() < 0) return nullptr;
        if (moved()) Py_RETURN_TRUE;
        break;  // again, toward the same deadline
      case Attempt::kFailed:
        if (moved()) Py_RETURN_TRUE;
        if (!deadline.expired()) break;
        // A handler scheduled without a signal (_thread.interrupt_main) runs now, as after
        // threading's wait, and its exception wins over the timeout.
        if (in_main_thread() && PyErr_CheckSignals() < 0) return nullptr;
        Py_RETURN_FALSE;
    }
  }
}

PyObject* event_at_fork_reinit(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<EventObject*>(op);
  bool was_set = self->ev.is_set();
  new (&self->ev) weft::Event();
  if (was_set) self->ev.set();
  Py_RETURN_NONE;
}

PyObject* event_repr(PyObject* op) {
  PyObject* label = type_label(op);
  if (!label) return nullptr;
  PyObject* r =
      PyUnicode_FromFormat("<%U at %p: %s>", label, op,
                           reinterpret_cast<EventObject*>(op)->ev.is_set() ? "set" : "unset");
  Py_DECREF(label);
  return r;
}

PyMethodDef event_methods[] = {
    {"is_set", event_is_set, METH_NOARGS, nullptr},
    {"isSet", event_is_set, METH_NOARGS, nullptr},
    {"set", event_set, METH_NOARGS, nullptr},
    {"clear", event_clear, METH_NOARGS, nullptr},
    {"wait", FASTCALL_KW(event_wait), METH_FASTCALL | METH_KEYWORDS,
     "wait(timeout=None, cancel=None) -> bool: True if the event is set"},
    {"_at_fork_reinit", event_at_fork_reinit, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef event_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(EventObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot event_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(event_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(event_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(traverse_type_only)},
    {Py_tp_repr, reinterpret_cast<void*>(event_repr)},
    {Py_tp_methods, event_methods},
    {Py_tp_members, event_members},
    {Py_tp_doc, const_cast<char*>("An event flag, as threading.Event, on weft::Event.")},
    {0, nullptr}};

PyType_Spec event_spec = {"weft.Event", sizeof(EventObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                          event_slots};

// ============================================================================ Barrier

// threading.Barrier's state machine on a weft Lock and Condition.
enum BarrierState { kFilling = 0, kDraining = 1, kResetting = -1, kBroken = -2 };

struct BarrierObject {
  PyObject_HEAD weft::Lock mutex;
  weft::Condition cond;  // on mutex
  PyObject* action;
  PyObject* timeout;  // default timeout, or None
  Py_ssize_t parties;
  Py_ssize_t count;  // threads inside wait(), under mutex
  std::atomic<int> state;
  ModuleState* st;
  PyObject* weakreflist;
};

PyObject* barrier_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  static const char* kwlist[] = {"parties", "action", "timeout", nullptr};
  Py_ssize_t parties;
  PyObject* action = Py_None;
  PyObject* timeout = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|OO:Barrier", const_cast<char**>(kwlist), &parties,
                                   &action, &timeout)) {
    return nullptr;
  }
  if (parties < 1) {
    PyErr_SetString(PyExc_ValueError, "parties must be > 0");
    return nullptr;
  }
  ModuleState* st = state_of_type(type);
  if (!st) return nullptr;
  auto* self = reinterpret_cast<BarrierObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  new (&self->mutex) weft::Lock();
  new (&self->cond) weft::Condition(self->mutex);
  new (&self->state) std::atomic<int>(kFilling);
  self->st = st;
  self->parties = parties;
  self->action = action == Py_None ? nullptr : Py_NewRef(action);
  self->timeout = Py_NewRef(timeout);
  return reinterpret_cast<PyObject*>(self);
}

int barrier_traverse(PyObject* op, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->action);
  Py_VISIT(self->timeout);
  return 0;
}

int barrier_clear(PyObject* op) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  Py_CLEAR(self->action);
  Py_CLEAR(self->timeout);
  return 0;
}

void barrier_dealloc(PyObject* op) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  PyTypeObject* tp = Py_TYPE(op);
  dealloc_common(op, &self->weakreflist);
  self->cond.~Condition();
  self->mutex.~Lock();
  tp->tp_free(op);
  Py_DECREF(tp);
}

int bstate(BarrierObject* self) {
  return self->state.load(std::memory_order_relaxed);
}
void set_bstate(BarrierObject* self, int s) {
  self->state.store(s, std::memory_order_relaxed);
}

void barrier_break_locked(BarrierObject* self) {
  set_bstate(self, kBroken);
  self->cond.notify_all();
}

PyObject* barrier_wait(PyObject* op, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  static const char* const names[] = {"timeout", "cancel"};
  PyObject* a[2];
  if (!parse_args("wait", args, nargs, kw, names, 2, 0, a)) return nullptr;
  PyObject* tobj = (a[0] && a[0] != Py_None) ? a[0] : self->timeout;
  bool has;
  double t = 0;
  std::optional<std::stop_token> cancel;
  if (!optional_timeout(tobj, &has, &t) || !cancel_arg(self->st, a[1], &cancel)) return nullptr;
  const std::stop_token* stop = ptr(cancel);

  lock_mutex(self->mutex);
  // Block while the barrier drains or resets.
  while (bstate(self) == kDraining || bstate(self) == kResetting) {
    if (cond_wait(self->mutex, self->cond, Deadline::never(), stop) == Wait::kError) return nullptr;
  }
  if (bstate(self) < 0) {
    self->mutex.release();
    PyErr_SetNone(self->st->broken_barrier);
    return nullptr;
  }
  Py_ssize_t index = self->count++;
  bool ok = true;
  if (index + 1 == self->parties) {
    if (self->action) {
      PyObject* r = PyObject_CallNoArgs(self->action);
      if (!r) {
        barrier_break_locked(self);
        ok = false;
      }
      Py_XDECREF(r);
    }
    if (ok) {
      set_bstate(self, kDraining);
      self->cond.notify_all();
    }
  } else {
    Deadline deadline = has ? Deadline::after(t) : Deadline::never();
    // Wake-up sources: the last party's notify_all, reset(), abort(), the deadline, signals,
    // `cancel`.
    while (bstate(self) == kFilling) {
      if (deadline.expired()) break;
      if (cond_wait(self->mutex, self->cond, deadline, stop) == Wait::kError) {
        // A signal handler raised or the wait was cancelled: leave as threading's finally
        // does for an exception.
        lock_mutex(self->mutex);
        ok = false;
        break;
      }
    }
    if (ok && bstate(self) == kFilling) {
      barrier_break_locked(self);  // timed out
      PyErr_SetNone(self->st->broken_barrier);
      ok = false;
    } else if (ok && bstate(self) < 0) {
      PyErr_SetNone(self->st->broken_barrier);
      ok = false;
    }
  }
  // threading's finally: leave; the last one out of a draining/resetting barrier refills it.
  if (--self->count == 0 && (bstate(self) == kDraining || bstate(self) == kResetting)) {
    set_bstate(self, kFilling);
    self->cond.notify_all();
  }
  self->mutex.release();
  return ok ? PyLong_FromSsize_t(index) : nullptr;
}

PyObject* barrier_reset(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  lock_mutex(self->mutex);
  if (self->count > 0) {
    if (bstate(self) == kFilling || bstate(self) == kBroken) set_bstate(self, kResetting);
  } else {
    set_bstate(self, kFilling);
  }
  self->cond.notify_all();
  self->mutex.release();
  Py_RETURN_NONE;
}

PyObject* barrier_abort(PyObject* op, PyObject*) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  lock_mutex(self->mutex);
  barrier_break_locked(self);
  self->mutex.release();
  Py_RETURN_NONE;
}

PyObject* barrier_parties(PyObject* op, void*) {
  return PyLong_FromSsize_t(reinterpret_cast<BarrierObject*>(op)->parties);
}

Py_ssize_t barrier_n_waiting_value(BarrierObject* self) {
  // As threading's: read without the lock.
  return bstate(self) == kFilling ? self->count : 0;
}

PyObject* barrier_n_waiting(PyObject* op, void*) {
  return PyLong_FromSsize_t(barrier_n_waiting_value(reinterpret_cast<BarrierObject*>(op)));
}

PyObject* barrier_broken(PyObject* op, void*) {
  return PyBool_FromLong(bstate(reinterpret_cast<BarrierObject*>(op)) == kBroken);
}

PyObject* barrier_repr(PyObject* op) {
  auto* self = reinterpret_cast<BarrierObject*>(op);
  PyObject* label = type_label(op);
  if (!label) return nullptr;
  PyObject* r = bstate(self) == kBroken
                    ? PyUnicode_FromFormat("<%U at %p: broken>", label, op)
                    : PyUnicode_FromFormat("<%U at %p: waiters=%zd/%zd>", label, op,
                                           barrier_n_waiting_value(self), self->parties);
  Py_DECREF(label);
  return r;
}

PyMethodDef barrier_methods[] = {{"wait", FASTCALL_KW(barrier_wait), METH_FASTCALL | METH_KEYWORDS,
                                  "wait(timeout=None, cancel=None) -> int: the arrival index"},
                                 {"reset", barrier_reset, METH_NOARGS, nullptr},
                                 {"abort", barrier_abort, METH_NOARGS, nullptr},
                                 {nullptr, nullptr, 0, nullptr}};

PyGetSetDef barrier_getset[] = {{"parties", barrier_parties, nullptr, nullptr, nullptr},
                                {"n_waiting", barrier_n_waiting, nullptr, nullptr, nullptr},
                                {"broken", barrier_broken, nullptr, nullptr, nullptr},
                                {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef barrier_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(BarrierObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot barrier_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(barrier_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(barrier_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(barrier_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(barrier_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(barrier_repr)},
    {Py_tp_methods, barrier_methods},
    {Py_tp_getset, barrier_getset},
    {Py_tp_members, barrier_members},
    {Py_tp_doc, const_cast<char*>("A barrier for a fixed number of threads, as "
                                  "threading.Barrier.")},
    {0, nullptr}};

PyType_Spec barrier_spec = {"weft.Barrier", sizeof(BarrierObject), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                            barrier_slots};

int add_type(PyObject* m, PyType_Spec* spec, PyObject* base, PyTypeObject** out) {
  PyObject* t = PyType_FromModuleAndSpec(m, spec, base);
  if (!t) return -1;
  *out = reinterpret_cast<PyTypeObject*>(t);
  return PyModule_AddType(m, *out);
}

}  // namespace

int add_sync_types(PyObject* m, ModuleState* st) {
  if (add_type(m, &lock_spec, nullptr, &st->lock_type) < 0 ||
      add_type(m, &rlock_spec, nullptr, &st->rlock_type) < 0 ||
      add_type(m, &condition_spec, nullptr, &st->condition_type) < 0 ||
      add_type(m, &semaphore_spec, nullptr, &st->semaphore_type) < 0 ||
      add_type(m, &bounded_semaphore_spec, reinterpret_cast<PyObject*>(st->semaphore_type),
               &st->bounded_semaphore_type) < 0 ||
      add_type(m, &event_spec, nullptr, &st->event_type) < 0 ||
      add_type(m, &barrier_spec, nullptr, &st->barrier_type) < 0) {
    return -1;
  }
  return 0;
}

}  // namespace weftpy
