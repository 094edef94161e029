"""weft's Python package against the standard library, in one run.

    python3 bench/python_bench.py --pythonpath build/bench/python/3.13 [--python python3.13]
                                  [--rounds 5] [--quick] [--only spsc_bounded,...] [--json FILE]

scripts/bench.sh runs it (after the C++ benchmarks) for every interpreter it built the
package for. Each trial is its own process (`python_bench.py trial <workload> <contender>
--n N`, one JSON line); rounds are interleaved (every contender of every workload once per
round, in a rotated order) and the table shows medians over rounds and weft's ratio to the
standard-library peer of the same workload. Every queue trial checks that what arrived is
exactly what was sent (count and sum) and exits with status 2 otherwise.

Workloads:
  spsc_bounded    1 producer -> 1 consumer, capacity 1024                   Mitems/s
  spsc_unbounded  1 producer -> 1 consumer, unbounded                       Mitems/s
  mpmc            4 producers -> 4 consumers, capacity 1024                 Mitems/s
  batch           spsc_bounded moving lists of 64 (weft: put_many/get_many) Mitems/s
  pingpong        round trip through two queues (capacity 16 / unbounded)   us (median)
  event_rt        round trip through two Events                             us (median)
  cond_rt         round trip through a Condition and a shared counter       us (median)
  lock            `with lock: pass`, uncontended                            ns/op
  rlock           `with rlock: pass`, uncontended                           ns/op
  event_fast      is_set() + wait() on a set Event + set() on a set Event   ns/op
  putget          put(x) then get() in one thread (no waiting)              ns/op

--callgrind adds instruction counts per operation for the single-thread workloads (lock,
rlock, event_fast, putget): valgrind's callgrind runs each trial at two sizes and the
difference is divided by the extra operations, so interpreter start-up and set-up cancel
out. Unlike wall time, these counts do not depend on the machine's load.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# workload -> [(contender, peer?)]; the first contender is the standard library's peer.
WORKLOADS = {
    "spsc_bounded": ["queue.Queue", "weft.Queue"],
    "spsc_unbounded": ["queue.SimpleQueue", "weft.SimpleQueue", "weft.Queue"],
    "mpmc": ["queue.Queue", "weft.Queue"],
    "batch": ["queue.Queue", "weft.Queue"],
    "pingpong": ["queue.Queue", "weft.Queue", "queue.SimpleQueue", "weft.SimpleQueue"],
    "event_rt": ["threading.Event", "weft.Event"],
    "cond_rt": ["threading.Condition", "weft.Condition"],
    "lock": ["threading.Lock", "weft.Lock"],
    "rlock": ["threading.RLock", "weft.RLock"],
    "event_fast": ["threading.Event", "weft.Event"],
    "putget": ["queue.Queue", "weft.Queue", "queue.SimpleQueue", "weft.SimpleQueue"],
}
CALLGRIND_WORKLOADS = ["lock", "rlock", "event_fast", "putget"]
# Higher is better for throughput; lower for time.
HIGHER_IS_BETTER = {"Mitems/s": True, "us": False, "ns/op": False}
# Trial sizes: about 0.2-0.5 s each on a 2-core machine for the slower contender.
DEFAULT_N = {
    "spsc_bounded": 200_000, "spsc_unbounded": 400_000, "mpmc": 100_000, "batch": 400_000,
    "pingpong": 5_000, "event_rt": 5_000, "cond_rt": 5_000, "lock": 400_000, "rlock": 400_000,
    "event_fast": 300_000, "putget": 300_000,
}


# --------------------------------------------------------------------------------- trials

def fail(msg):
    print(f"python_bench: CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(2)


def make(contender, *args):
    import queue
    import threading
    if contender.startswith("weft."):
        import weft
        return getattr(weft, contender[5:])(*args)
    mod, name = contender.split(".")
    return getattr({"queue": queue, "threading": threading}[mod], name)(*args)


def run_threads(targets):
    import threading
    threads = [threading.Thread(target=t) for t in targets]
    start = threading.Barrier(len(threads) + 1)

    def wrap(f):
        def w():
            start.wait()
            f()
        return w

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def trial_queue(contender, n, producers, consumers, capacity, batch=0):
    q = make(contender, capacity) if capacity or contender.endswith(".Queue") else make(contender)
    sums = []

    def produce(p):
        def f():
            put = q.put
            items = range(p, n, producers)
            if batch and hasattr(q, "put_many"):
                for i in range(0, len(items), batch):
                    q.put_many(items[i:i + batch])
            else:
                for v in items:
                    put(v)
        return f

    def consume(c):
        quota = n // consumers + (1 if c < n % consumers else 0)

        def f():
            get = q.get
            total = 0
            got = 0
            if batch and hasattr(q, "get_many"):
                get_many = q.get_many
                while got < quota:
                    chunk = get_many(min(batch, quota - got))
                    got += len(chunk)
                    total += sum(chunk)
            else:
                for _ in range(quota):
                    total += get()
                got = quota
            sums.append((got, total))
        return f

    secs = run_threads([produce(p) for p in range(producers)] +
                       [consume(c) for c in range(consumers)])
    if sum(g for g, _ in sums) != n or sum(t for _, t in sums) != n * (n - 1) // 2:
        fail(f"{contender}: items lost or duplicated")
    return {"unit": "Mitems/s", "value": n / secs / 1e6}


def round_trips(n, step_a, step_b):
    """A does step_a(i) then B's reply arrives; each trip timed on A's side."""
    import threading
    samples = []

    def a():
        pc = time.perf_counter_ns
        for i in range(n):
            t0 = pc()
            step_a(i)
            samples.append(pc() - t0)

    def b():
        for i in range(n):
            step_b(i)

    tb = threading.Thread(target=b)
    tb.start()
    a()
    tb.join()
    samples.sort()
    return {"unit": "us", "value": samples[len(samples) // 2] / 1000.0,
            "p99": samples[int(len(samples) * 0.99)] / 1000.0}


def trial_pingpong(contender, n):
    cap = (16,) if contender.endswith(".Queue") else ()
    q1, q2 = make(contender, *cap), make(contender, *cap)

    def a(i):
        q1.put(i)
        if q2.get() != i:
            fail("pingpong: wrong reply")

    def b(i):
        q2.put(q1.get())

    return round_trips(n, a, b)


def trial_event_rt(contender, n):
    e1, e2 = make(contender), make(contender)

    def a(i):
        e1.set()
        e2.wait()
        e2.clear()

    def b(i):
        e1.wait()
        e1.clear()
        e2.set()

    return round_trips(n, a, b)


def trial_cond_rt(contender, n):
    cond = make(contender)
    state = [0]

    def a(i):
        with cond:
            state[0] = 2 * i + 1
            cond.notify()
            while state[0] != 2 * i + 2:
                cond.wait()

    def b(i):
        with cond:
            while state[0] != 2 * i + 1:
                cond.wait()
            state[0] += 1
            cond.notify()

    return round_trips(n, a, b)


def per_op(n, body):
    t0 = time.perf_counter()
    body(n)
    return {"unit": "ns/op", "value": (time.perf_counter() - t0) / n * 1e9}


def trial_lock(contender, n):
    lock = make(contender)

    def body(n):
        for _ in range(n):
            with lock:
                pass

    return per_op(n, body)


def trial_event_fast(contender, n):
    ev = make(contender)
    ev.set()

    def body(n):
        is_set, wait, set_ = ev.is_set, ev.wait, ev.set
        for _ in range(n):
            is_set()
            wait()
            set_()

    return per_op(n, body)


def trial_putget(contender, n):
    q = make(contender)

    def body(n):
        put, get = q.put, q.get
        for i in range(n):
            put(i)
            get()

    return per_op(n, body)


def trial(workload, contender, n):
    if workload == "spsc_bounded":
        return trial_queue(contender, n, 1, 1, 1024)
    if workload == "spsc_unbounded":
        return trial_queue(contender, n, 1, 1, 0)
    if workload == "mpmc":
        return trial_queue(contender, n, 4, 4, 1024)
    if workload == "batch":
        return trial_queue(contender, n, 1, 1, 1024, batch=64)
    if workload == "pingpong":
        return trial_pingpong(contender, n)
    if workload == "event_rt":
        return trial_event_rt(contender, n)
    if workload == "cond_rt":
        return trial_cond_rt(contender, n)
    if workload in ("lock", "rlock"):
        return trial_lock(contender, n)
    if workload == "event_fast":
        return trial_event_fast(contender, n)
    if workload == "putget":
        return trial_putget(contender, n)
    fail(f"unknown workload {workload}")


# --------------------------------------------------------------------------------- runner

def run_one(py, pythonpath, workload, contender, n):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run([py, os.path.abspath(__file__), "trial", workload, contender,
                          "--n", str(n)], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"trial {workload} {contender} failed (status {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def callgrind_instructions(py, pythonpath, workload, contender, n):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", py,
                          os.path.abspath(__file__), "trial", workload, contender, "--n", str(n)],
                         env=env, capture_output=True, text=True, timeout=900)
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    sys.stderr.write(out.stderr)
    raise SystemExit(f"callgrind {workload} {contender}: no instruction count")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "trial":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("workload")
        ap.add_argument("contender")
        ap.add_argument("--n", type=int, required=True)
        a = ap.parse_args()
        print(json.dumps(trial(a.workload, a.contender, a.n)))
        return 0

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--pythonpath", required=True, help="directory holding the built weft/")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds of small trials")
    ap.add_argument("--only", default="", help="comma-separated workloads")
    ap.add_argument("--json", default="", help="write the medians here")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per operation (valgrind)")
    a = ap.parse_args()
    rounds = 2 if a.quick else a.rounds
    scale = 0.2 if a.quick else 1.0
    names = [w for w in a.only.split(",") if w] or list(WORKLOADS)
    for w in names:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w}; have {', '.join(WORKLOADS)}")

    version = subprocess.run([a.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"weft Python benchmarks: Python {version} ({a.python}), {rounds} interleaved "
          f"rounds, medians; load average {open('/proc/loadavg').read().split()[0]}",
          flush=True)
    results = {w: {c: [] for c in WORKLOADS[w]} for w in names}
    jobs = [(w, c) for w in names for c in WORKLOADS[w]]
    for r in range(rounds):
        k = r % len(jobs)
        for w, c in jobs[k:] + jobs[:k]:
            n = max(1, int(DEFAULT_N[w] * scale))
            results[w][c].append(run_one(a.python, a.pythonpath, w, c, n))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)

    table = {}
    print(f"\n{'workload':<16}{'contender':<22}{'median':>12}  {'unit':<9}{'vs stdlib':>10}")
    for w in names:
        peer = None
        for c in WORKLOADS[w]:
            vals = [x["value"] for x in results[w][c]]
            unit = results[w][c][0]["unit"]
            med = statistics.median(vals)
            if not c.startswith("weft."):
                peer = med
                ratio = ""
            else:
                better = HIGHER_IS_BETTER[unit]
                x = (med / peer) if better else (peer / med)
                ratio = f"{x:.2f}x"
            table.setdefault(w, {})[c] = {"median": med, "unit": unit, "values": vals}
            print(f"{w:<16}{c:<22}{med:>12.3f}  {unit:<9}{ratio:>10}")
    print("(ratio: how many times better weft is than the stdlib peer listed above it;"
          " > 1 is better)")
    counts = {}
    if a.callgrind:
        print(f"\n{'instructions/op':<16}{'contender':<22}{'instr':>12}  {'vs stdlib':>19}")
        for w in [w for w in CALLGRIND_WORKLOADS if w in names]:
            peer = None
            for c in WORKLOADS[w]:
                small = callgrind_instructions(a.python, a.pythonpath, w, c, 20_000)
                big = callgrind_instructions(a.python, a.pythonpath, w, c, 120_000)
                per = (big - small) / 100_000
                counts.setdefault(w, {})[c] = per
                if not c.startswith("weft."):
                    peer = per
                    ratio = ""
                else:
                    ratio = f"{peer / per:.2f}x fewer"
                print(f"{w:<16}{c:<22}{per:>12.0f}  {ratio:>19}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"python": version, "rounds": rounds, "results": table,
                       "instructions_per_op": counts}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
