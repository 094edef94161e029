// examples/python/cpp_threads.cpp: a C++ extension whose threads feed Python consumers and
// drain Python producers through weft queues (weft/python.hpp). Built per interpreter as
// the module `weft_cpp_threads` beside the weft package; cpp_threads_demo.py drives it.
//
//   produce(queue, n, sentinels=1)  a C++ thread puts 0..n-1, then `sentinels` Nones
//   consume(queue)                  a C++ thread gets ints until None; their sum is kept
//   join()                          joins every thread started (GIL released), returns the
//                                   consumers' sums in start order; a C++ thread's Python
//                                   error is raised here
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <weft/python.hpp>

namespace {

namespace wp = weft::python;

struct Worker {
  std::thread thread;
  bool consumer = false;
  long long sum = 0;
  std::optional<wp::Error> error;
};

std::mutex g_workers_mutex;
std::vector<Worker*> g_workers;  // owned; deleted by join()

// Starts `body(queue, w)` on a new C++ thread that owns a handle to the Python queue `q`.
template <class Body>
PyObject* start(PyObject* q, bool consumer, Body body) {
  try {
    wp::Queue queue(wp::Ref::borrow(q));
    auto* w = new Worker;
    w->consumer = consumer;
    w->thread = std::thread([queue, w, body] {
      try {
        body(queue, w);
      } catch (wp::Error& e) {
        w->error = std::move(e);
      } catch (const std::exception& e) {  // weft::Full, weft::ShutDown ...
        wp::Gil g;
        PyErr_SetString(PyExc_RuntimeError, e.what());
        w->error = wp::Error::fetch();
      }
    });
    std::lock_guard lock(g_workers_mutex);
    g_workers.push_back(w);
  } catch (wp::Error& e) {
    e.restore();
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* produce(PyObject*, PyObject* args) {
  PyObject* q;
  long n;
  long sentinels = 1;
  if (!PyArg_ParseTuple(args, "Ol|l:produce", &q, &n, &sentinels)) return nullptr;
  return start(q, false, [n, sentinels](const wp::Queue& queue, Worker*) {
    for (long i = 0; i < n; ++i) queue.put_with([i] { return PyLong_FromLong(i); });
    for (long i = 0; i < sentinels; ++i) {
      wp::Gil g;  // Ref::borrow needs the GIL (an INCREF)
      queue.put(wp::Ref::borrow(Py_None));
    }
  });
}

PyObject* consume(PyObject*, PyObject* args) {
  PyObject* q;
  if (!PyArg_ParseTuple(args, "O:consume", &q)) return nullptr;
  return start(q, true, [](const wp::Queue& queue, Worker* w) {
    for (;;) {
      wp::Ref item = queue.get();
      wp::Gil g;
      if (item.get() == Py_None) break;
      w->sum += PyLong_AsLongLong(item.get());
      if (PyErr_Occurred()) throw wp::Error::fetch();
    }
  });
}

PyObject* join(PyObject*, PyObject*) {
  std::vector<Worker*> workers;
  {
    std::lock_guard lock(g_workers_mutex);
    workers.swap(g_workers);
  }
  Py_BEGIN_ALLOW_THREADS for (Worker* w : workers) w->thread.join();
  Py_END_ALLOW_THREADS PyObject* sums = PyList_New(0);
  std::optional<wp::Error> first_error;
  for (Worker* w : workers) {
    if (w->error && !first_error) first_error = std::move(w->error);
    if (w->consumer && sums) {
      PyObject* v = PyLong_FromLongLong(w->sum);
      if (!v || PyList_Append(sums, v) < 0) Py_CLEAR(sums);
      Py_XDECREF(v);
    }
    delete w;
  }
  if (first_error) {
    Py_XDECREF(sums);
    first_error->restore();
    return nullptr;
  }
  return sums;
}

PyMethodDef methods[] = {{"produce", produce, METH_VARARGS, "produce(queue, n, sentinels=1)"},
                         {"consume", consume, METH_VARARGS, "consume(queue)"},
                         {"join", join, METH_NOARGS, "join() -> list of the consumers' sums"},
                         {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT,
                          "weft_cpp_threads",
                          "C++ threads on weft queues (weft/python.hpp example).",
                          -1,
                          methods,
                          nullptr,
                          nullptr,
                          nullptr,
                          nullptr};

}  // namespace

PyMODINIT_FUNC PyInit_weft_cpp_threads(void) {
  return PyModule_Create(&module_def);
}
