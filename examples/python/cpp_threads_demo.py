"""C++ threads and Python threads sharing weft queues (examples/python/cpp_threads.cpp).

    PYTHONPATH=build/release/python/3.13 python3.13 examples/python/cpp_threads_demo.py

1. A C++ producer feeds two Python consumers through a bounded weft.Queue (it blocks while
   the queue is full, with the GIL released, so the consumers run).
2. Two Python producers feed a C++ consumer through a weft.SimpleQueue.
3. A C++ thread on a PriorityQueue whose items cannot be compared: the Python error
   reaches join() as a TypeError; the queue keeps what it had.
Checks every sum and that no reference was leaked (sys.getrefcount of a shared object).
"""

import sys
import threading

import weft
import weft_cpp_threads as cpp

N = 50_000

# 1. C++ -> Python
q = weft.Queue(64)
sums = [0, 0]


def python_consumer(k):
    while (item := q.get()) is not None:
        sums[k] += item


consumers = [threading.Thread(target=python_consumer, args=(k,)) for k in range(2)]
for t in consumers:
    t.start()
cpp.produce(q, N, 2)  # two sentinels, one per consumer
for t in consumers:
    t.join()
assert cpp.join() == []
assert sum(sums) == N * (N - 1) // 2, sums
print(f"C++ producer -> 2 Python consumers: {N} items, sums {sums}")

# 2. Python -> C++
s = weft.SimpleQueue()
shared = int("700001")  # neither cached nor immortal: its refcount is observable
before = sys.getrefcount(shared)
cpp.consume(s)
producers = [threading.Thread(target=lambda: [s.put(shared) for _ in range(N)]) for _ in range(2)]
for t in producers:
    t.start()
for t in producers:
    t.join()
s.put(None)
(total,) = cpp.join()
assert total == 2 * N * shared, total
assert sys.getrefcount(shared) == before, "a reference was leaked or dropped twice"
print(f"2 Python producers -> C++ consumer: sum {total}, refcounts balanced")

# 3. A Python error inside a C++ thread
p = weft.PriorityQueue()
p.put(1)
cpp.produce(p, 0)  # puts None: None < 1 raises TypeError inside the C++ thread
try:
    cpp.join()
except TypeError as e:
    print(f"C++ thread's error raised in Python: TypeError: {e}")
else:
    raise AssertionError("expected TypeError")
assert p.qsize() == 1 and p.get() == 1
print("ok")
