// weft/python.hpp: C++ access to Python-visible weft queues, from any thread.
//
// For a C++ program that embeds Python, or a C++ extension module, that wants C++ threads
// to hand items to Python code through a weft.Queue (LifoQueue, PriorityQueue, SimpleQueue,
// or any object with queue.Queue's put/get) and to take items from it.
//
//     #include <weft/python.hpp>            // include dirs: weft.get_include(), Python's
//     namespace wp = weft::python;
//
//     wp::Queue jobs(wp::Ref::borrow(queue_object));   // with the GIL held
//     std::thread producer([jobs] {                     // any thread, GIL not held
//       for (long i = 0; i < n; ++i)
//         jobs.put_with([i] { return PyLong_FromLong(i); });   // built under the GIL
//       jobs.put(wp::Ref::borrow(Py_None));
//     });
//     // ... and a C++ consumer:
//     wp::Ref item = jobs.get();                        // blocks with the GIL released
//
// GIL: every member takes the GIL itself (PyGILState_Ensure, so it works in threads Python
// never saw and in threads that already hold it) and a blocking put/get releases it while
// it waits, as the Python methods do: a C++ thread blocked on a full queue never stops
// Python threads. Only the calling thread's Python state is used; no call may be made after
// the interpreter has been finalized (join your threads before Py_Finalize / module unload).
//
// References: Ref owns one strong reference; copying it adds one, destroying it drops one
// (taking the GIL to do so). put() takes the item by value, so the queue ends up with its
// own reference and the caller's Ref drops its own: no leak, no double release. get()
// returns the reference the queue gave up.
//
// Errors: queue.Empty, queue.Full and weft.ShutDown become weft::Empty, weft::Full and
// weft::ShutDown (weft/errors.hpp), as in weft's C++ queues; any other Python exception
// (a KeyboardInterrupt, a failing __lt__ ...) becomes weft::python::Error, which carries the
// exception and can hand it back to Python (Error::restore()). After any exception the
// queue is as the Python call left it (nothing lost: a failed put did not put).
#pragma once

#include <Python.h>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "weft/errors.hpp"

namespace weft::python {

// Holds the GIL for its lifetime, whatever the thread (re-entrant).
class Gil {
 public:
  Gil() : state_(PyGILState_Ensure()) {}
  ~Gil() { PyGILState_Release(state_); }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  PyGILState_STATE state_;
};

// One owned strong reference (or none). Usable without the GIL: it takes it when it must.
// operator=(Ref) is the copy and the move assignment both (copy and swap).
class Ref {  // NOLINT(cppcoreguidelines-special-member-functions)
 public:
  Ref() noexcept = default;
  // Takes over a new reference (the result of most C API calls); nullptr stays empty.
  static Ref steal(PyObject* p) noexcept { return Ref(p); }
  // Adds a reference to a borrowed one. Needs the GIL (as any Py_INCREF).
  static Ref borrow(PyObject* p) noexcept {
    Py_XINCREF(p);
    return Ref(p);
  }
  Ref(const Ref& o) : p_(o.p_) {
    if (p_) {
      Gil g;
      Py_INCREF(p_);
    }
  }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() { reset(); }

  void reset() {
    if (PyObject* p = std::exchange(p_, nullptr)) {
      Gil g;
      Py_DECREF(p);
    }
  }
  PyObject* get() const noexcept { return p_; }
  // Gives up ownership: the caller now owns the reference.
  PyObject* release() noexcept { return std::exchange(p_, nullptr); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  explicit Ref(PyObject* p) noexcept : p_(p) {}
  PyObject* p_ = nullptr;
};

// A Python exception caught in C++: what() is "<Type>: <message>".
class Error : public std::runtime_error {
 public:
  // With the GIL held and an exception set: takes it.
  static Error fetch() {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    std::string text = "unknown Python error";
    if (value) {
      if (PyObject* s = PyObject_Str(value)) {
        const char* name = reinterpret_cast<PyTypeObject*>(type)->tp_name;
        const char* msg = PyUnicode_AsUTF8(s);
        text = std::string(name) + ": " + (msg ? msg : "?");
        Py_DECREF(s);
      }
      PyErr_Clear();
    }
    return Error(text, Ref::steal(type), Ref::steal(value), Ref::steal(tb));
  }
  // Sets the exception again in the calling thread (e.g. before an extension function
  // returns nullptr to Python). Takes the GIL.
  void restore() {
    Gil g;
    PyErr_Restore(type_.release(), value_.release(), tb_.release());
  }
  const Ref& value() const noexcept { return value_; }

 private:
  Error(const std::string& what, Ref type, Ref value, Ref tb)
      : std::runtime_error(what),
        type_(std::move(type)),
        value_(std::move(value)),
        tb_(std::move(tb)) {}
  Ref type_, value_, tb_;
};

// A Python queue, seen from C++. Copyable (copies share the queue); any thread.
class Queue {
 public:
  // `queue`: a weft.Queue/LifoQueue/PriorityQueue/SimpleQueue (or any object with
  // queue.Queue's put/get). Needs the GIL (it imports weft to learn its exceptions).
  explicit Queue(Ref queue) : q_(std::move(queue)) {
    Ref weft = Ref::steal(PyImport_ImportModule("weft"));
    if (!weft) throw Error::fetch();
    empty_ = Ref::steal(PyObject_GetAttrString(weft.get(), "Empty"));
    full_ = Ref::steal(PyObject_GetAttrString(weft.get(), "Full"));
    shutdown_ = Ref::steal(PyObject_GetAttrString(weft.get(), "ShutDown"));
    if (!empty_ || !full_ || !shutdown_) throw Error::fetch();
  }

  // put(item, block=True, timeout=None); timeout in seconds (nullopt: forever). Throws
  // weft::Full (timeout), weft::ShutDown, or Error.
  void put(const Ref& item, std::optional<double> timeout = std::nullopt) const {
    Gil g;
    call_put(item, true, timeout);
  }
  // put with the item made under the GIL by `make()` (returns a new reference or nullptr
  // with a Python exception set), e.g. [&] { return PyUnicode_FromString(s.c_str()); }.
  template <class Make>
  void put_with(Make&& make, std::optional<double> timeout = std::nullopt) const {
    Gil g;
    Ref item = Ref::steal(std::forward<Make>(make)());
    if (!item) throw Error::fetch();
    call_put(item, true, timeout);
  }
  // put(item, block=False): false (and the item still yours) when the queue is full.
  bool try_put(const Ref& item) const {
    Gil g;
    try {
      call_put(item, false, std::nullopt);
      return true;
    } catch (const weft::Full&) {
      return false;
    }
  }

  // get(block=True, timeout=None): the item, owned. Throws weft::Empty (timeout),
  // weft::ShutDown, or Error.
  Ref get(std::optional<double> timeout = std::nullopt) const {
    Gil g;
    return call_get(true, timeout);
  }
  // get(block=False): nullopt when empty.
  std::optional<Ref> try_get() const {
    Gil g;
    try {
      return call_get(false, std::nullopt);
    } catch (const weft::Empty&) {
      return std::nullopt;
    }
  }

  void task_done() const { call_method0("task_done"); }
  void join() const { call_method0("join"); }
  void shutdown(bool immediate = false) const {
    Gil g;
    Ref r =
        Ref::steal(PyObject_CallMethod(q_.get(), "shutdown", "O", immediate ? Py_True : Py_False));
    if (!r) raise();
  }
  long qsize() const {
    Gil g;
    Ref r = Ref::steal(PyObject_CallMethod(q_.get(), "qsize", nullptr));
    if (!r) raise();
    long n = PyLong_AsLong(r.get());
    if (n == -1 && PyErr_Occurred()) raise();
    return n;
  }
  const Ref& object() const noexcept { return q_; }

 private:
  // GIL held. Converts the pending Python exception.
  std::exception_ptr translate_ptr() const {
    if (PyErr_ExceptionMatches(empty_.get())) {
      PyErr_Clear();
      return std::make_exception_ptr(weft::Empty());
    }
    if (PyErr_ExceptionMatches(full_.get())) {
      PyErr_Clear();
      return std::make_exception_ptr(weft::Full());
    }
    if (PyErr_ExceptionMatches(shutdown_.get())) {
      PyErr_Clear();
      return std::make_exception_ptr(weft::ShutDown());
    }
    return std::make_exception_ptr(Error::fetch());
  }
  // GIL held, a Python exception set: throws its C++ counterpart.
  [[noreturn]] void raise() const { std::rethrow_exception(translate_ptr()); }

  static Ref timeout_obj(std::optional<double> timeout) {
    return timeout ? Ref::steal(PyFloat_FromDouble(*timeout)) : Ref::borrow(Py_None);
  }

  void call_put(const Ref& item, bool block, std::optional<double> timeout) const {
    Ref t = timeout_obj(timeout);
    if (!t) throw Error::fetch();
    Ref r = Ref::steal(PyObject_CallMethod(q_.get(), "put", "OOO", item.get(),
                                           block ? Py_True : Py_False, t.get()));
    if (!r) raise();
  }
  Ref call_get(bool block, std::optional<double> timeout) const {
    Ref t = timeout_obj(timeout);
    if (!t) throw Error::fetch();
    Ref r =
        Ref::steal(PyObject_CallMethod(q_.get(), "get", "OO", block ? Py_True : Py_False, t.get()));
    if (!r) raise();
    return r;
  }
  void call_method0(const char* name) const {
    Gil g;
    Ref r = Ref::steal(PyObject_CallMethod(q_.get(), name, nullptr));
    if (!r) raise();
  }

  Ref q_, empty_, full_, shutdown_;
};

}  // namespace weft::python
