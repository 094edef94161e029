# SPDX-License-Identifier: MIT
"""Python's threading and queue modules on weft's workloads: the API weft copies, as a peer.

    python3.X bench/py_bench.py <workload> <kind> [--n N]

prints one JSON line shaped like weft_bench's. Workloads and kinds:

    spsc, mpmc, unbounded, pingpong      queue (queue.Queue), simple (queue.SimpleQueue)
    event_rt, event_is_set, event_wait_set, event_set_clear     event (threading.Event)
    cond_notify_idle, cond_rt            condition (threading.Condition(), an RLock inside)
    lock                                 lock (threading.Lock), rlock (threading.RLock)

Every queue run checks the count, sum and sum of squares of what arrived and exits with
status 2 otherwise. Single-thread operations are timed on the thread's CPU clock, like
weft_bench's.
"""

import json
import queue
import sys
import threading
import time

MASK = (1 << 64) - 1


def fail(msg):
    print(f"py_bench: CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(2)


def check_items(count, total, sumsq, n):
    want_sum = n * (n + 1) // 2
    want_sq = (n * (n + 1) * (2 * n + 1) // 6) & MASK
    if count != n or total != want_sum or sumsq != want_sq:
        fail(f"expected {n} items (sum {want_sum}), got {count} (sum {total})")


def items_of(n, p, producers):
    return (n - p - 1) // producers + 1 if p < n else 0


def quota_of(n, c, consumers):
    return n // consumers + (1 if c < n % consumers else 0)


def make_queue(kind, capacity):
    if kind == "queue":
        return queue.Queue(capacity)
    if kind == "simple":
        if capacity:
            return None  # SimpleQueue is unbounded only
        return queue.SimpleQueue()
    fail(f"unknown queue kind {kind}")


class Gate:
    """Workers wait here; the coordinator opens it and starts the clock."""

    def __init__(self, workers):
        self.workers = workers
        self.ready = threading.Semaphore(0)
        self.go = threading.Event()
        self.t0 = 0.0

    def arrive_and_wait(self):
        self.ready.release()
        self.go.wait()

    def open(self):
        for _ in range(self.workers):
            self.ready.acquire()
        self.t0 = time.perf_counter()
        self.go.set()

    def close(self):
        return time.perf_counter() - self.t0


def run_mpmc(kind, n, producers, consumers, capacity):
    q = make_queue(kind, capacity)
    if q is None:
        fail(f"{kind} cannot be bounded")
    gate = Gate(producers + consumers)
    tallies = [None] * consumers

    def produce(p):
        count = items_of(n, p, producers)
        put = q.put
        gate.arrive_and_wait()
        v = p + 1
        for _ in range(count):
            put(v)
            v += producers

    def consume(c):
        quota = quota_of(n, c, consumers)
        get = q.get
        total = 0
        sq = 0
        gate.arrive_and_wait()
        for _ in range(quota):
            v = get()
            total += v
            sq += v * v
        tallies[c] = (quota, total, sq)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in threads:
        t.start()
    gate.open()
    for t in threads:
        t.join()
    s = gate.close()
    check_items(sum(t[0] for t in tallies), sum(t[1] for t in tallies),
                sum(t[2] for t in tallies) & MASK, n)
    return {"unit": "Mitems/s", "value": n / s / 1e6, "n": n, "seconds": s}


# As weft_bench's latency_quantiles(): every 1 % up to 90 %, then finer into the tail.
QUANTILES = ([i / 100 for i in range(90)] + [i / 1000 for i in range(900, 990, 5)]
             + [i / 10000 for i in range(9900, 9990, 10)] + [0.999, 0.9995, 0.9999, 1.0])


def latency(samples_ns, seconds):
    samples_ns.sort()
    last = len(samples_ns) - 1

    def at(q):
        return samples_ns[int(q * last + 0.5)] / 1000.0

    extra = {"p50_us": at(0.5), "p90_us": at(0.9), "p99_us": at(0.99), "p999_us": at(0.999),
             "min_us": at(0.0), "max_us": at(1.0)}
    return {"unit": "us", "value": at(0.5), "n": len(samples_ns), "seconds": seconds,
            "extra": extra, "quantiles_us": [x for q in QUANTILES for x in (q, at(q))]}


def run_round_trip(trips, make_pair, drive, echo_step):
    """Times each of `trips` round trips on the driver's side."""
    a, b = make_pair()
    gate = Gate(2)
    samples = [0] * trips

    def echo():
        gate.arrive_and_wait()
        for _ in range(trips):
            echo_step(a, b)

    def driver():
        gate.arrive_and_wait()
        clock = time.perf_counter_ns
        for i in range(trips):
            t0 = clock()
            drive(a, b, i + 1)
            samples[i] = clock() - t0

    threads = [threading.Thread(target=echo), threading.Thread(target=driver)]
    for t in threads:
        t.start()
    gate.open()
    for t in threads:
        t.join()
    return latency(samples, gate.close())


def run_pingpong(kind, trips):
    capacity = 16 if kind == "queue" else 0

    def drive(ping, pong, i):
        ping.put(i)
        back = pong.get()
        if back != i:
            fail(f"ping-pong: sent {i}, got back {back}")

    def echo_step(ping, pong):
        pong.put(ping.get())

    return run_round_trip(trips, lambda: (make_queue(kind, capacity), make_queue(kind, capacity)),
                          drive, echo_step)


def run_event_rt(trips):
    def drive(ping, pong, _):
        ping.set()
        pong.wait()
        pong.clear()

    def echo_step(ping, pong):
        ping.wait()
        ping.clear()
        pong.set()

    return run_round_trip(trips, lambda: (threading.Event(), threading.Event()), drive, echo_step)


def run_cond_rt(trips):
    """A turn variable under the condition's lock; the echo thread keeps the lock between
    trips, waiting (which releases it)."""
    cond = threading.Condition()
    turn = [0]
    gate = Gate(2)
    samples = [0] * trips

    def echo():
        gate.arrive_and_wait()
        with cond:
            for _ in range(trips):
                while turn[0] != 1:
                    cond.wait()
                turn[0] = 0
                cond.notify()

    def driver():
        gate.arrive_and_wait()
        clock = time.perf_counter_ns
        for i in range(trips):
            t0 = clock()
            with cond:
                turn[0] = 1
                cond.notify()
                while turn[0] != 0:
                    cond.wait()
            samples[i] = clock() - t0

    threads = [threading.Thread(target=echo), threading.Thread(target=driver)]
    for t in threads:
        t.start()
    gate.open()
    for t in threads:
        t.join()
    return latency(samples, gate.close())


def per_op(n, seconds):
    return {"unit": "ns/op", "value": seconds * 1e9 / n, "n": n, "seconds": seconds}


def run_micro(workload, n):
    if workload == "event_is_set":
        e = threading.Event()
        e.set()
        is_set = e.is_set
        t0 = time.thread_time()
        seen = 0
        for _ in range(n):
            if is_set():
                seen += 1
        s = time.thread_time() - t0
        if seen != n:
            fail("is_set")
        return per_op(n, s)
    if workload == "event_wait_set":
        e = threading.Event()
        e.set()
        wait = e.wait
        t0 = time.thread_time()
        for _ in range(n):
            wait()
        return per_op(n, time.thread_time() - t0)
    if workload == "event_set_clear":
        e = threading.Event()
        set_, clear = e.set, e.clear
        t0 = time.thread_time()
        for _ in range(n):
            set_()
            clear()
        s = time.thread_time() - t0
        if e.is_set():
            fail("set+clear")
        return per_op(n, s)
    if workload == "cond_notify_idle":
        c = threading.Condition()
        notify = c.notify
        with c:
            t0 = time.thread_time()
            for _ in range(n):
                notify()
            s = time.thread_time() - t0
        return per_op(n, s)
    fail(f"unknown micro workload {workload}")


def run_lock(kind, n):
    lock = threading.Lock() if kind == "lock" else threading.RLock()
    acquire, release = lock.acquire, lock.release
    guarded = 0
    t0 = time.thread_time()
    for _ in range(n):
        acquire()
        guarded += 1
        release()
    s = time.thread_time() - t0
    if guarded != n:
        fail("lock")
    return per_op(n, s)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    workload, kind = argv[1], argv[2]
    n = 20000
    if len(argv) == 5 and argv[3] == "--n":
        n = int(argv[4])
    elif len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 64
    # Python's default switch interval (5 ms) is part of what a Python program gets: keep it.
    if workload == "spsc":
        r = run_mpmc(kind, n, 1, 1, 1024 if kind == "queue" else 0)
    elif workload == "mpmc":
        r = run_mpmc(kind, n, 4, 4, 1024)
    elif workload == "unbounded":
        r = run_mpmc(kind, n, 2, 2, 0)
    elif workload == "pingpong":
        r = run_pingpong(kind, n)
    elif workload == "event_rt":
        r = run_event_rt(n)
    elif workload == "cond_rt":
        r = run_cond_rt(n)
    elif workload == "lock":
        r = run_lock(kind, n)
    else:
        r = run_micro(workload, n)
    out = {"workload": workload, "contender": kind, "extra": {}, "quantiles_us": []}
    out.update(r)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
