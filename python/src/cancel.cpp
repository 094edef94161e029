// python/src/cancel.cpp: weft.CancelToken and weft.Cancelled, the Python face of weft's
// std::stop_token cancellation. Every blocking call takes `cancel=token`; token.cancel() ends
// the calls that wait with it (and makes later ones that would have to wait fail at once)
// with weft.Cancelled, having changed nothing (common.hpp, rule 4).
#include <new>
#include <stop_token>

#include "common.hpp"

namespace weftpy {
namespace {

struct CancelTokenObject {
  PyObject_HEAD std::stop_source source;
  PyObject* weakreflist;
};

CancelTokenObject* T(PyObject* op) {
  return reinterpret_cast<CancelTokenObject*>(op);
}

PyObject* token_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  if ((args && PyTuple_GET_SIZE(args)) || (kwds && PyDict_GET_SIZE(kwds))) {
    PyErr_SetString(PyExc_TypeError, "CancelToken() takes no arguments");
    return nullptr;
  }
  auto* self = reinterpret_cast<CancelTokenObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  try {
    new (&self->source) std::stop_source();  // allocates the shared stop state
  } catch (const std::bad_alloc&) {
    new (&self->source) std::stop_source(std::nostopstate);
    Py_DECREF(self);
    return PyErr_NoMemory();
  }
  return reinterpret_cast<PyObject*>(self);
}

int token_traverse(PyObject* op, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(op));
  return 0;
}

void token_dealloc(PyObject* op) {
  PyTypeObject* tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  if (T(op)->weakreflist) PyObject_ClearWeakRefs(op);
  T(op)->source.~stop_source();
  tp->tp_free(op);
  Py_DECREF(tp);
}

// cancel(): ends every call waiting with this token (each raises Cancelled). The waits'
// stop callbacks run here, in this thread; they only decide and wake the waiters.
PyObject* token_cancel(PyObject* op, PyObject*) {
  T(op)->source.request_stop();
  Py_RETURN_NONE;
}

PyObject* token_cancelled(PyObject* op, void*) {
  return PyBool_FromLong(T(op)->source.stop_requested());
}

PyObject* token_repr(PyObject* op) {
  PyObject* qual = PyType_GetQualName(Py_TYPE(op));
  if (!qual) return nullptr;
  PyObject* r = PyUnicode_FromFormat("<weft.%U at %p: %s>", qual, op,
                                     T(op)->source.stop_requested() ? "cancelled" : "active");
  Py_DECREF(qual);
  return r;
}

PyMethodDef token_methods[] = {
    {"cancel", token_cancel, METH_NOARGS,
     "cancel(): every call waiting with this token, and every later one that would have to "
     "wait, raises weft.Cancelled. Idempotent; a token cannot be reset."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef token_getset[] = {
    {"cancelled", token_cancelled, nullptr, "True once cancel() was called", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef token_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CancelTokenObject, weakreflist), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot token_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(token_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(token_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(token_traverse)},
    {Py_tp_repr, reinterpret_cast<void*>(token_repr)},
    {Py_tp_methods, token_methods},
    {Py_tp_getset, token_getset},
    {Py_tp_members, token_members},
    {Py_tp_doc, const_cast<char*>("CancelToken(): pass it as cancel= to blocking calls; "
                                  "cancel() makes them raise weft.Cancelled.")},
    {0, nullptr}};

PyType_Spec token_spec = {"weft.CancelToken", sizeof(CancelTokenObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
                          token_slots};

}  // namespace

bool cancel_arg(ModuleState* st, PyObject* obj, std::optional<std::stop_token>* token) {
  if (!obj || obj == Py_None) return true;
  if (!PyObject_TypeCheck(obj, st->cancel_token_type)) {
    PyErr_Format(PyExc_TypeError, "cancel must be a weft.CancelToken or None, not %.200s",
                 Py_TYPE(obj)->tp_name);
    return false;
  }
  token->emplace(cancel_token_of(obj));
  return true;
}

std::stop_token cancel_token_of(PyObject* token) {
  return T(token)->source.get_token();
}

int add_cancel_types(PyObject* m, ModuleState* st) {
  PyObject* t = PyType_FromModuleAndSpec(m, &token_spec, nullptr);
  if (!t) return -1;
  st->cancel_token_type = reinterpret_cast<PyTypeObject*>(t);
  if (PyModule_AddType(m, st->cancel_token_type) < 0) return -1;
  st->cancelled = PyErr_NewExceptionWithDoc(
      "weft.Cancelled", "Raised by a blocking call whose CancelToken was cancelled.",
      PyExc_Exception, nullptr);
  if (!st->cancelled) return -1;
  return PyModule_AddObjectRef(m, "Cancelled", st->cancelled);
}

}  // namespace weftpy
