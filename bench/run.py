#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""weft's benchmark runner: interleaved rounds, medians, per-round ratios, callgrind
instruction counts, CPU of blocked threads, a table and PNG plots.

    bench/run.py --bin build/bench/bench/weft_bench [--quick] [--rounds N] [--update-docs]

scripts/bench.sh builds weft_bench and calls this; see bench/README.md for what each workload
does and docs/benchmarks.md for the results.

Method (wall time on a shared 2-core machine is noisy and often bimodal):
  * one process per trial (weft_bench or bench/py_bench.py), so trials share nothing;
  * a calibration pass picks, per contender, the item count that makes a trial last about
    --trial-seconds; it also serves as a warm-up and is not reported;
  * then R rounds; in each round every workload runs all its contenders back to back
    (A B C ..., the order rotated every round), so that contenders of one workload are
    measured close together in time and a slow phase of the machine hits all of them;
  * reported: the median over rounds with min..max, and "weft advantage": for each round, the
    ratio weft/peer of throughput (or peer/weft of time), its median and min..max over rounds;
    >1 means weft did better in that round;
  * callgrind: total instructions of the measured region (CALLGRIND_START/STOP around it)
    divided by the number of items, repeated to show that it is stable;
  * every queue trial checks count and checksum of what arrived; a failed check aborts the
    whole run (exit status 2).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY_BENCH = os.path.join(HERE, "py_bench.py")


# ---------------------------------------------------------------------------------------------
# Contenders and workloads
# ---------------------------------------------------------------------------------------------

class Contender:
    """One thing measured in a workload. `runner` is "cxx" (weft_bench) or a Python key."""

    def __init__(self, cid, label, runner="cxx", kind=None, spins=False, family="peer"):
        self.cid = cid            # weft_bench contender id, or py_bench kind
        self.label = label
        self.runner = runner
        self.kind = kind or cid
        self.spins = spins
        self.family = family      # "weft", "peer", or "python"

    @property
    def key(self):
        return f"{self.runner}:{self.cid}"


def W(cid, label):
    return Contender(cid, label, family="weft")


def P(cid, label, spins=False):
    return Contender(cid, label, spins=spins)


def PY(ver, kind, label):
    return Contender(kind, f"Python {ver} {label}", runner=f"py{ver}", family="python")


class Workload:
    def __init__(self, wid, title, contenders, reference="weft", n0=20000, py_n0=5000,
                 min_n=1000, max_n=50_000_000, ratio_header=None, relative=False):
        self.wid = wid
        # relative: the ratio column is contender/reference (a cost, 1.0 = the same), not the
        # reference's advantage over the contender.
        self.relative = relative
        self.ratio_header = ratio_header or (
            "weft advantage per round: median (min .. max)" if reference == "weft" else
            f"{reference} advantage per round: median (min .. max)")
        self.title = title
        self.contenders = contenders
        self.reference = reference  # the contender the advantage column compares against
        self.n0 = n0
        self.py_n0 = py_n0
        self.min_n = min_n
        self.max_n = max_n


def py_queue(kinds=("queue", "simple")):
    out = []
    for ver in ("3.11", "3.13"):
        for k in kinds:
            out.append(PY(ver, k, "queue.Queue" if k == "queue" else "queue.SimpleQueue"))
    return out


def py_single(kind, label):
    return [PY("3.11", kind, label), PY("3.13", kind, label)]


SPIN = "atomic_queue (spins)"
# bench/event_table.cpp: a prototype, not a peer (waiters in a global table keyed by address).
TABLE = "prototype: flag in the Event, waiters in a 256-bucket address-keyed table"
TABLE_1 = "the same prototype with 1 bucket (every Event collides)"


def unbounded_contenders():
    return [
        W("weft", "weft::Queue (unbounded: segment list)"),
        W("weft_simple", "weft::SimpleQueue"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue"),
        P("boost", "boost::sync_queue"),
        P("tbb", "tbb::concurrent_bounded_queue (unbounded)"),
        P("absl", "absl::Mutex + CondVar + deque"),
        P("std", "std::mutex + condition_variable + deque (hand-written)"),
    ]


WORKLOADS = [
    Workload("spsc", "SPSC, bounded 1024: 1 producer -> 1 consumer [M items/s]", [
        W("weft", "weft::Queue"),
        P("mc_rwcb", "moodycamel BlockingReaderWriterCircularBuffer"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue (unbounded)"),
        P("boost", "boost::sync_bounded_queue"),
        P("tbb", "tbb::concurrent_bounded_queue"),
        P("absl", "absl::Mutex + CondVar + deque"),
        P("std", "std::mutex + condition_variable + deque (hand-written)"),
        P("atomicq", SPIN, spins=True),
    ] + py_queue(), n0=200000),
    Workload("mpmc", "MPMC, bounded 1024: 4 producers -> 4 consumers, 8 threads on 2 cores [M items/s]", [
        W("weft", "weft::Queue"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue (unbounded)"),
        P("boost", "boost::sync_bounded_queue"),
        P("tbb", "tbb::concurrent_bounded_queue"),
        P("absl", "absl::Mutex + CondVar + deque"),
        P("std", "std::mutex + condition_variable + deque (hand-written)"),
        P("atomicq", SPIN, spins=True),
    ] + py_queue(("queue",)), n0=100000),
    Workload("unbounded_spsc", "SPSC, unbounded: 1 producer -> 1 consumer [M items/s]",
             unbounded_contenders(), n0=200000),
    Workload("unbounded", "MPMC, unbounded: 2 producers -> 2 consumers [M items/s]",
             unbounded_contenders() + py_queue(), n0=100000),
    Workload("unbounded_mpmc", "MPMC, unbounded: 4 producers -> 4 consumers, 8 threads on 2 cores [M items/s]",
             unbounded_contenders(), n0=100000),
    Workload("batch", "Batches of 64, bounded 1024: 1 producer -> 1 consumer, put_many/get_many [M items/s]", [
        W("weft", "weft::Queue put_many / get_many"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue enqueue_bulk / wait_dequeue_bulk (unbounded)"),
    ], n0=1000000),
    Workload("batch_mpmc", "Batches of 64, bounded 1024: 2 producers -> 2 consumers [M items/s]", [
        W("weft", "weft::Queue put_many / get_many"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue enqueue_bulk / wait_dequeue_bulk (unbounded)"),
    ], n0=1000000),
    Workload("batch_unbounded", "Batches of 64, unbounded: 1 producer -> 1 consumer, put_many/get_many [M items/s]", [
        W("weft", "weft::Queue (unbounded: segment list) put_many / get_many"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue enqueue_bulk / wait_dequeue_bulk"),
    ], n0=1000000),
    Workload("batch_unbounded_mpmc", "Batches of 64, unbounded: 2 producers -> 2 consumers [M items/s]", [
        W("weft", "weft::Queue (unbounded: segment list) put_many / get_many"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue enqueue_bulk / wait_dequeue_bulk"),
    ], n0=1000000),
    Workload("pingpong", "Ping-pong round trip through two queues of capacity 16 [us, median]", [
        W("weft", "weft::Queue"),
        P("mc_rwcb", "moodycamel BlockingReaderWriterCircularBuffer"),
        P("mc_bcq", "moodycamel BlockingConcurrentQueue (unbounded)"),
        P("boost", "boost::sync_bounded_queue"),
        P("tbb", "tbb::concurrent_bounded_queue"),
        P("absl", "absl::Mutex + CondVar + deque"),
        P("std", "std::mutex + condition_variable + deque (hand-written)"),
        P("atomicq", SPIN, spins=True),
    ] + py_queue(), n0=2000, py_n0=1000, min_n=500, max_n=200000),
    Workload("fanin", "Select fan-in: 4 producers, each into its own queue (1024) -> 1 consumer [M items/s]", [
        W("weft_select", "weft::select over 4 weft::Queue"),
        P("std_select", "4 deques under one std::mutex + condition_variable (hand-written)"),
        W("weft", "no select: one shared weft::Queue (baseline)"),
        P("mc_bcq", "no select: one shared moodycamel BlockingConcurrentQueue"),
    ], reference="weft_select", n0=100000,
        ratio_header="weft::select advantage per round: median (min .. max)"),
    Workload("idle_select", "Idle select costs the producers nothing: SPSC weft::Queue(1024) while a 3rd thread ... [M items/s]", [
        W("none", "... does not exist"),
        W("weft_select", "... is parked in weft::select over 4 other, empty queues"),
        P("polling", "... polls those 4 queues with try_get() + yield (select without select)"),
    ], reference="none", n0=200000, relative=True,
        ratio_header="throughput relative to no 3rd thread, per round: median (min .. max)"),
    Workload("event_rt", "Event round trip: set -> wait -> clear, and back [us, median]", [
        W("weft", "weft::Event"),
        P("atomic_wait", "std::atomic<bool>::wait/notify_all (C++20 atomic wait)"),
        P("table", TABLE),
        P("table_1", TABLE_1),
        P("absl", "absl::Notification (one-shot: a fresh pair per trip)"),
        P("std", "bool + std::mutex + condition_variable (hand-written)"),
    ] + py_single("event", "threading.Event"), n0=2000, py_n0=1000, min_n=500, max_n=200000),
    Workload("event_is_set", "Event.is_set() on a set event [ns]", [
        W("weft", "weft::Event"),
        P("atomic_wait", "std::atomic<bool> load"),
        P("absl", "absl::Notification::HasBeenNotified"),
        P("std", "bool + std::mutex (hand-written)"),
    ] + py_single("event", "threading.Event"), n0=1_000_000, py_n0=100000, max_n=500_000_000),
    Workload("event_wait_set", "Event.wait() on a set event [ns]", [
        W("weft", "weft::Event"),
        P("atomic_wait", "std::atomic<bool>::wait"),
        P("absl", "absl::Notification::WaitForNotification"),
        P("std", "bool + std::mutex + condition_variable (hand-written)"),
    ] + py_single("event", "threading.Event"), n0=1_000_000, py_n0=100000, max_n=500_000_000),
    Workload("event_set_clear", "Event.set() + clear(), nobody waiting [ns per pair]", [
        W("weft", "weft::Event"),
        P("atomic_wait", "std::atomic<bool> store + notify_all, store"),
        P("table", TABLE),
        P("table_1", TABLE_1),
        P("std", "bool + std::mutex + condition_variable (hand-written)"),
    ] + py_single("event", "threading.Event"), n0=1_000_000, py_n0=100000, max_n=500_000_000),
    Workload("cond_notify_idle", "Condition.notify() with nobody waiting, lock held [ns]", [
        W("weft", "weft::Condition(weft::Lock)"),
        W("weft_rlock", "weft::Condition() (owns an RLock, as Python's)"),
        P("absl", "absl::CondVar::Signal"),
        P("std", "std::condition_variable::notify_one"),
    ] + py_single("condition", "threading.Condition"), n0=1_000_000, py_n0=100000, max_n=500_000_000),
    Workload("cond_rt", "Condition round trip: notify with a waiter, and back [us, median]", [
        W("weft", "weft::Condition(weft::Lock)"),
        W("weft_rlock", "weft::Condition() (owns an RLock)"),
        P("absl", "absl::Mutex + CondVar"),
        P("std", "std::mutex + condition_variable"),
    ] + py_single("condition", "threading.Condition"), n0=2000, py_n0=1000, min_n=500, max_n=200000),
    Workload("lock", "Uncontended acquire + release [ns per pair]", [
        W("weft", "weft::Lock"),
        W("weft_rlock", "weft::RLock"),
        P("std", "std::mutex"),
        P("absl", "absl::Mutex"),
    ] + py_single("lock", "threading.Lock") + py_single("rlock", "threading.RLock"),
        n0=1_000_000, py_n0=100000, max_n=500_000_000),
]

CALLGRIND = {
    # workload -> contenders measured under callgrind
    "spsc": ["weft", "mc_rwcb", "mc_bcq", "boost", "tbb", "absl", "std", "atomicq"],
    "mpmc": ["weft", "mc_bcq", "boost", "tbb", "absl", "std", "atomicq"],
    "batch": ["weft", "mc_bcq"],
    "batch_unbounded": ["weft", "mc_bcq"],
    "unbounded_spsc": ["weft", "mc_bcq", "boost", "tbb", "absl", "std"],
    "unbounded": ["weft", "mc_bcq", "boost", "tbb", "absl", "std"],
    "unbounded_mpmc": ["weft", "mc_bcq", "boost", "tbb", "absl", "std"],
}


# ---------------------------------------------------------------------------------------------
# Running trials
# ---------------------------------------------------------------------------------------------

class TrialError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def find_pythons():
    """Python 3.11 (the system's) and 3.13 (pyenv's), as the issue names them."""
    cands = {
        "3.11": ["/usr/bin/python3.11", shutil.which("python3.11")],
        "3.13": ["/root/.pyenv/versions/3.13.0/bin/python3.13", shutil.which("python3.13")],
    }
    found = {}
    for ver, paths in cands.items():
        for p in paths:
            if p and os.path.exists(p):
                try:
                    v = subprocess.run([p, "-c", "import platform; print(platform.python_version())"],
                                       capture_output=True, text=True, timeout=30).stdout.strip()
                except (OSError, subprocess.SubprocessError):
                    continue
                if v.startswith(ver):
                    found[ver] = (p, v)
                    break
    return found


class Runner:
    def __init__(self, args):
        self.bin = args.bin
        self.timeout = args.trial_timeout
        self.pythons = find_pythons()
        self.available = set()
        out = subprocess.run([self.bin, "list"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            w, c = line.split()
            self.available.add((w, c))

    def has(self, w, c):
        if c.runner == "cxx":
            return (w.wid, c.cid) in self.available
        return c.runner[2:] in self.pythons

    def command(self, w, c, n):
        if c.runner == "cxx":
            return [self.bin, "run", w.wid, c.cid, "--n", str(n)]
        py = self.pythons[c.runner[2:]][0]
        return [py, PY_BENCH, w.wid, c.kind, "--n", str(n)]

    def trial(self, w, c, n):
        cmd = self.command(w, c, n)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TrialError(f"timed out after {self.timeout} s: {' '.join(cmd)}")
        if p.returncode == 2:
            log(p.stderr)
            log(f"FATAL: a correctness check failed: {' '.join(cmd)}")
            sys.exit(2)
        if p.returncode != 0:
            raise TrialError(f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])


def calibrate(runner, w, c, target):
    """The item count for a trial of about `target` seconds (measured seconds, or CPU
    seconds for the single-thread workloads)."""
    n = w.py_n0 if c.runner != "cxx" else w.n0
    for _ in range(4):
        r = runner.trial(w, c, n)
        s = max(r["seconds"], 1e-6)
        if s >= target / 4 or n >= w.max_n:
            break
        n = min(w.max_n, n * 8)
    n = int(n * target / s)
    return max(w.min_n, min(w.max_n, n))


def better(unit):
    return "higher" if unit == "Mitems/s" else "lower"


def advantage(weft_value, peer_value, unit):
    if not weft_value or not peer_value:
        return None
    return weft_value / peer_value if better(unit) == "higher" else peer_value / weft_value


# ---------------------------------------------------------------------------------------------
# callgrind and blocked-thread CPU
# ---------------------------------------------------------------------------------------------

def callgrind_count(runner, workload, contender, n, outdir, tag):
    out = os.path.join(outdir, f"{workload}.{contender}.{tag}.out")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           runner.bin, "run", workload, contender, "--n", str(n)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600, runner.timeout))
    if p.returncode == 2:
        log(p.stderr)
        sys.exit(2)
    if p.returncode != 0:
        raise TrialError(f"callgrind exit {p.returncode}: {p.stderr[-2000:]}")
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    if total is None:
        raise TrialError(f"no totals in {out}")
    return total, out


def annotate(outfile, dest):
    """callgrind_annotate's per-function profile (exclusive), kept as evidence."""
    try:
        p = subprocess.run(["callgrind_annotate", "--threshold=99.5", outfile],
                           capture_output=True, text=True, timeout=120)
        with open(dest, "w") as f:
            f.write(p.stdout)
    except (OSError, subprocess.SubprocessError) as e:
        log(f"callgrind_annotate failed: {e}")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "Mitems/s":
        return f"{v:.3g}" if v < 10 else f"{v:.1f}"
    if unit == "us":
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_ratio(r):
    if r is None:
        return "n/a"
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def summarize(results, w, c):
    rs = results.get(w.wid, {}).get(c.key)
    if not rs:
        return None
    vals = [r["value"] for r in rs if r is not None]
    if not vals:
        return None
    s = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
         "unit": rs[0]["unit"], "rounds": vals}
    p99 = [r["extra"]["p99_us"] for r in rs if r is not None and "p99_us" in r.get("extra", {})]
    if p99:
        s["p99_median"] = statistics.median(p99)
        s["p99_min"] = min(p99)
        s["p99_max"] = max(p99)
    return s


def ratios(results, w, c):
    ref = next((x for x in w.contenders if x.cid == w.reference and x.runner == "cxx"), None)
    if ref is None or ref is c or (w.reference == "weft" and c.family == "weft"):
        return None
    a = results.get(w.wid, {}).get(ref.key, [])
    b = results.get(w.wid, {}).get(c.key, [])
    out = []
    for ra, rb in zip(a, b):
        if ra is None or rb is None:
            continue
        if w.relative:
            out.append(advantage(rb["value"], ra["value"], ra["unit"]))
        else:
            out.append(advantage(ra["value"], rb["value"], ra["unit"]))
    return [x for x in out if x is not None] or None


def git_commit():
    """The source tree's commit (short hash, "+changes" when it differs from it), or "unknown"."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def render(results, runner, meta, callgrind, blocked, targets):
    L = []
    L.append(f"Run: {meta['date']}, commit {meta.get('commit', 'unknown')}, "
             f"{meta['rounds']} rounds{' (quick)' if meta['quick'] else ''}, "
             f"load average before/after: {meta['load_before']} / {meta['load_after']}, "
             f"{meta['cpu']}, {meta['ncpu']} CPUs")
    L.append("")
    for w in WORKLOADS:
        if w.wid not in results:
            continue
        rows = []
        for c in w.contenders:
            if not runner.has(w, c):
                continue
            s = summarize(results, w, c)
            if s is None:
                rows.append((c, None, None))
                continue
            rows.append((c, s, ratios(results, w, c)))
        if not rows:
            continue
        unit = next((s["unit"] for _, s, _ in rows if s), "")
        latency = unit == "us"
        L.append(f"### {w.title}")
        L.append("")
        head = "| contender | median | min .. max |"
        sep = "|---|---:|---:|"
        if latency:
            head += " p99 (median of rounds) |"
            sep += "---:|"
        head += f" {w.ratio_header} |"
        sep += "---:|"
        L.append(head)
        L.append(sep)
        for c, s, rt in rows:
            name = f"**{c.label}**" if c.cid == w.reference and c.runner == "cxx" else c.label
            if s is None:
                L.append(f"| {name} | failed | | {'|' if latency else ''}")
                continue
            line = f"| {name} | {fmt(s['median'], unit)} | {fmt(s['min'], unit)} .. {fmt(s['max'], unit)} |"
            if latency:
                line += f" {fmt(s.get('p99_median'), unit)} |"
            if rt:
                line += f" {fmt_ratio(statistics.median(rt))} ({fmt_ratio(min(rt))} .. {fmt_ratio(max(rt))}) |"
            else:
                line += " |"
            L.append(line)
        L.append("")

    if callgrind:
        L.append("### callgrind: instructions per item (measured region only)")
        L.append("")
        L.append("| workload | contender | instr/item, each run | spread |")
        L.append("|---|---|---:|---:|")
        for (wid, cid), runs in callgrind.items():
            w = next(x for x in WORKLOADS if x.wid == wid)
            c = next(x for x in w.contenders if x.cid == cid and x.runner == "cxx")
            if isinstance(runs, str):
                L.append(f"| {wid} | {c.label} | {runs} | |")
                continue
            per = [r for r in runs]
            spread = (max(per) - min(per)) / min(per) * 100 if len(per) > 1 else 0
            name = f"**{c.label}**" if c.family == "weft" else c.label
            L.append(f"| {wid} | {name} | {', '.join(f'{x:.1f}' for x in per)} | {spread:.1f} % |")
        L.append("")

    if blocked:
        L.append("### CPU burned by a thread blocked for one second (getrusage RUSAGE_THREAD)")
        L.append("")
        L.append("| blocked in | CPU us, each run | wall ms |")
        L.append("|---|---:|---:|")
        names = sorted({k.split(" | ")[0] for k in blocked[0]["extra"]})
        for name in names:
            cpu = [b["extra"].get(f"{name} | cpu_us") for b in blocked]
            wall = [b["extra"].get(f"{name} | wall_ms") for b in blocked]
            L.append(f"| {name} | {', '.join(f'{x:.0f}' for x in cpu)} | {', '.join(f'{x:.0f}' for x in wall)} |")
        L.append("")

    if targets:
        L.append("### Targets")
        L.append("")
        L.append("| target | measured | met? |")
        L.append("|---|---|---|")
        for t, m, ok in targets:
            L.append(f"| {t} | {m} | {'met' if ok else '**MISSED**' if ok is not None else 'n/a'} |")
        L.append("")
    return "\n".join(L)


def check_targets(results, callgrind, blocked, runner):
    T = []

    def wl(wid):
        return next(w for w in WORKLOADS if w.wid == wid)

    def med(wid, key):
        s = summarize(results, wl(wid), next(c for c in wl(wid).contenders if c.key == key))
        return s

    def cg(wid, cid):
        runs = callgrind.get((wid, cid))
        return statistics.median(runs) if runs and not isinstance(runs, str) else None

    for wid, limit, peers in (("spsc", 90, ("mc_rwcb", "boost", "std")), ("mpmc", 120, ("boost", "std"))):
        v = cg(wid, "weft")
        if v is not None:
            others = ", ".join(f"{p} {cg(wid, p):.0f}" for p in peers if cg(wid, p) is not None)
            T.append((f"{wid.upper()} callgrind instr/item <= {limit}", f"weft {v:.1f} ({others})", v <= limit))

    # MPMC oversubscribed wall throughput: >= best peer in every round, >= 3x hand-written.
    w = wl("mpmc")
    weft_rounds = results.get("mpmc", {}).get("cxx:weft", [])
    if weft_rounds:
        worst_margin = None
        worst_margin_spin = None
        for i, rw in enumerate(weft_rounds):
            best = best_spin = 0
            for c in w.contenders:
                if c.family == "weft":
                    continue
                rs = results["mpmc"].get(c.key, [])
                if i < len(rs) and rs[i] is not None:
                    best_spin = max(best_spin, rs[i]["value"])
                    if not c.spins:
                        best = max(best, rs[i]["value"])
            if rw is not None and best:
                m = rw["value"] / best
                worst_margin = m if worst_margin is None else min(worst_margin, m)
                m2 = rw["value"] / best_spin
                worst_margin_spin = m2 if worst_margin_spin is None else min(worst_margin_spin, m2)
        if worst_margin is not None:
            T.append(("MPMC 4P/4C wall throughput >= best peer in every round",
                      f"weft / best peer, worst round: {worst_margin:.2f} "
                      f"(including the spinning atomic_queue: {worst_margin_spin:.2f})", worst_margin >= 1.0))
        rt = ratios(results, w, next(c for c in w.contenders if c.cid == "std"))
        if rt:
            T.append(("MPMC 4P/4C wall throughput >= 3x hand-written",
                      f"median {statistics.median(rt):.2f}x (min {min(rt):.2f}x)", statistics.median(rt) >= 3.0))

    for wid, limit in (("event_is_set", 1.0), ("event_wait_set", 3.0), ("event_set_clear", 5.0)):
        s = med(wid, "cxx:weft")
        h = med(wid, "cxx:std")
        if s:
            T.append((f"Event {wid[6:]} <= {limit:g} ns",
                      f"{s['median']:.2f} ns (hand-written {h['median']:.1f} ns)" if h else f"{s['median']:.2f} ns",
                      s["median"] <= limit))

    w = wl("event_rt")
    s = med("event_rt", "cxx:weft")
    if s:
        best = None
        for c in w.contenders:
            if c.family == "weft":
                continue
            cs = summarize(results, w, c)
            if cs and (best is None or cs["median"] < best[1]):
                best = (c.label, cs["median"])
        if best:
            T.append(("Event round trip <= best peer (median)",
                      f"weft {s['median']:.2f} us, best peer {best[0]} {best[1]:.2f} us", s["median"] <= best[1]))

    s = med("spsc", "cxx:weft")
    for ver in ("3.11", "3.13"):
        pq = med("spsc", f"py{ver}:queue")
        if s and pq:
            T.append((f"weft SPSC >= 50x Python {ver} queue.Queue",
                      f"{s['median'] / pq['median']:.0f}x (weft {s['median']:.1f}, Python {pq['median']:.3f} M items/s)",
                      s["median"] / pq["median"] >= 50))

    if blocked:
        worst = max(v for b in blocked for k, v in b["extra"].items()
                    if k.startswith("weft") and k.endswith("cpu_us"))
        T.append(("blocked get / Event.wait / Semaphore.acquire burn ~no CPU (< 1 ms per s)",
                  f"worst weft probe: {worst:.0f} us CPU per ~1 s blocked", worst < 1000))
    return T


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

def plots(results, runner, imgdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        log("matplotlib not available: no plots")
        return []
    os.makedirs(imgdir, exist_ok=True)
    written = []
    weft_red = "#d62728"
    family_color = {"weft": weft_red, "peer": "#1f77b4", "python": "#8c8c8c"}
    plain = FuncFormatter(lambda v, _: f"{v:g}")

    # Throughput per workload: median with min..max whiskers, log scale.
    tp = [w for w in WORKLOADS if w.wid in ("spsc", "mpmc", "unbounded", "fanin", "idle_select")
          and w.wid in results]
    if tp:
        fig, axes = plt.subplots(len(tp), 1, figsize=(11, 2.9 * len(tp) + 1.2), squeeze=False)
        for ax, w in zip(axes[:, 0], tp):
            rows = [(c, summarize(results, w, c)) for c in w.contenders if runner.has(w, c)]
            rows = [(c, s) for c, s in rows if s][::-1]
            y = list(range(len(rows)))
            med = [s["median"] for _, s in rows]
            lo = [s["median"] - s["min"] for _, s in rows]
            hi = [s["max"] - s["median"] for _, s in rows]
            ax.barh(y, med, xerr=[lo, hi], color=[family_color[c.family] for c, _ in rows],
                    error_kw={"ecolor": "black", "capsize": 3, "lw": 1}, height=0.7)
            ax.set_yticks(y)
            ax.set_yticklabels([c.label for c, _ in rows], fontsize=8)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            top = max(s["max"] for _, s in rows)
            ax.set_xlim(min(s["min"] for _, s in rows) / 1.5, top * 3)
            ax.set_title(w.title.replace(" [M items/s]", ""), fontsize=9, loc="left")
            ax.grid(axis="x", which="both", alpha=0.3)
            for yi, (_, s) in zip(y, rows):
                ax.text(s["max"] * 1.08, yi, f"{s['median']:.3g}", va="center", fontsize=8)
        axes[-1, 0].set_xlabel("M items/s, log scale (bar: median over rounds; whiskers: min .. max)")
        fig.tight_layout()
        path = os.path.join(imgdir, "throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # Latency distributions: the round with the median p50, as percentile vs round-trip time,
    # with the y axis stretched towards the tail (-log10(1 - q): 90, 99, 99.9 equally spaced).
    import math
    cmap = plt.get_cmap("tab10")
    peer_colors = [cmap(i) for i in range(10) if i != 3]  # tab10's red is weft's
    for wid, name in (("pingpong", "pingpong_latency.png"), ("event_rt", "event_latency.png"),
                      ("cond_rt", "condition_latency.png")):
        if wid not in results:
            continue
        w = next(x for x in WORKLOADS if x.wid == wid)
        fig, ax = plt.subplots(figsize=(11, 5.5))
        k = 0
        kw = 0
        for c in w.contenders:
            rs = [r for r in results[wid].get(c.key, []) if r and r.get("quantiles_us")]
            if not rs:
                continue
            rs.sort(key=lambda r: r["value"])
            r = rs[len(rs) // 2]
            flat = r["quantiles_us"]
            pts = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2) if flat[i] < 0.99995]
            ys = [-math.log10(1 - q) for q, _ in pts]
            xs = [v for _, v in pts]
            style = ":" if c.family == "python" else "--" if c.spins else "-"
            if c.family == "weft":
                # weft's first variant solid red, a second one dashed dark red.
                color, lw = (weft_red, 2.6) if kw == 0 else ("#7f0000", 2.0)
                style = "-" if kw == 0 else "--"
                kw += 1
            else:
                color, lw = peer_colors[k % len(peer_colors)], 1.3
                k += 1
            ax.plot(xs, ys, style, lw=lw, color=color,
                    label=f"{c.label}: p50 {r['extra']['p50_us']:.3g}, p99 {r['extra']['p99_us']:.3g} us")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.set_xlabel("round-trip time, us (log scale)")
        ticks = [0, 0.5, 0.9, 0.99, 0.999, 0.9999]
        ax.set_yticks([-math.log10(1 - q) for q in ticks])
        ax.set_yticklabels(["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
        ax.set_ylabel("percentile of round trips")
        ax.grid(which="both", alpha=0.3)
        ax.set_title(w.title.replace(" [us, median]", "") + ": latency distribution (median round)",
                     fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        path = os.path.join(imgdir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------

def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def update_docs(marker, md):
    """Replaces what stands between <!-- MARKER:begin --> and <!-- MARKER:end --> in
    docs/benchmarks.md with `md`."""
    doc = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(doc).read()
    b, e = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if b in text and e in text:
        text = text[:text.index(b) + len(b)] + "\n" + md + "\n" + text[text.index(e):]
        open(doc, "w").write(text)
        log(f"docs/benchmarks.md: {marker} section replaced")
    else:
        log(f"docs/benchmarks.md has no {marker} markers: not updated")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path to weft_bench")
    ap.add_argument("--quick", action="store_true", help="smoke run: short trials, 2 rounds, little callgrind")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--trial-seconds", type=float, default=None)
    ap.add_argument("--trial-timeout", type=float, default=60)
    ap.add_argument("--only", default="", help="comma-separated workload ids")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--out", default=None, help="directory for results.json/.md and callgrind files")
    ap.add_argument("--img", default=os.path.join(ROOT, "docs", "img"))
    ap.add_argument("--update-docs", action="store_true",
                    help="also replace the generated section of docs/benchmarks.md")
    args = ap.parse_args()

    rounds = args.rounds or (2 if args.quick else 5)
    target = args.trial_seconds or (0.04 if args.quick else 0.25)
    outdir = args.out or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.bin))), "results")
    os.makedirs(outdir, exist_ok=True)
    runner = Runner(args)
    only = set(filter(None, args.only.split(",")))
    workloads = [w for w in WORKLOADS if not only or w.wid in only]
    for ver in ("3.11", "3.13"):
        if ver in runner.pythons:
            log(f"Python {ver}: {runner.pythons[ver][0]} ({runner.pythons[ver][1]})")
        else:
            log(f"Python {ver}: NOT FOUND, its contenders are skipped")
    for v, (p, full) in runner.pythons.items():
        for w in WORKLOADS:
            for c in w.contenders:
                if c.runner == f"py{v}":
                    c.label = c.label.replace(f"Python {v} ", f"Python {full} ")

    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": git_commit(),
            "rounds": rounds, "quick": args.quick, "load_before": loadavg(), "cpu": cpu_model(),
            "ncpu": os.cpu_count()}
    t_start = time.time()

    # Calibration (also the warm-up).
    sizes = {}
    for w in workloads:
        for c in w.contenders:
            if not runner.has(w, c):
                continue
            try:
                sizes[(w.wid, c.key)] = calibrate(runner, w, c, target)
            except TrialError as e:
                log(f"calibration failed, {w.wid}/{c.label}: {e}")
    log(f"calibrated in {time.time() - t_start:.0f} s")

    # Interleaved rounds.
    results = {w.wid: {} for w in workloads}
    for r in range(rounds):
        t0 = time.time()
        for w in workloads:
            cs = [c for c in w.contenders if (w.wid, c.key) in sizes]
            k = r % len(cs) if cs else 0
            for c in cs[k:] + cs[:k]:
                try:
                    res = runner.trial(w, c, sizes[(w.wid, c.key)])
                except TrialError as e:
                    log(f"round {r + 1}: {w.wid}/{c.label}: {e}")
                    res = None
                results[w.wid].setdefault(c.key, []).append(res)
        log(f"round {r + 1}/{rounds} done in {time.time() - t0:.0f} s (load {loadavg()})")

    # callgrind.
    callgrind = {}
    if not args.no_callgrind and shutil.which("valgrind"):
        cgdir = os.path.join(outdir, "callgrind")
        os.makedirs(cgdir, exist_ok=True)
        # weft three times, peers twice: enough to show that the counts repeat.
        n = 20000 if args.quick else 100000
        for wid, cids in CALLGRIND.items():
            if only and wid not in only:
                continue
            for cid in (["weft", "std"] if args.quick else cids):
                if (wid, cid) not in runner.available:
                    continue
                runs = []
                reps = 1 if args.quick else 3 if cid == "weft" else 2
                try:
                    for i in range(reps):
                        total, out = callgrind_count(runner, wid, cid, n, cgdir, i)
                        runs.append(total / n)
                        if cid == "weft" and i == 0:
                            annotate(out, os.path.join(cgdir, f"{wid}.weft.annotate.txt"))
                    callgrind[(wid, cid)] = runs
                except (TrialError, subprocess.TimeoutExpired) as e:
                    log(f"callgrind {wid}/{cid}: {e}")
                    callgrind[(wid, cid)] = "failed"
                log(f"callgrind {wid}/{cid}: {callgrind[(wid, cid)]}")

    # CPU of blocked threads.
    blocked = []
    if not only or "blocked_cpu" in only:
        for _ in range(1 if args.quick else 2):
            try:
                blocked.append(runner.trial(Workload("blocked_cpu", "", []), Contender("weft", ""), 1))
            except TrialError as e:
                log(f"blocked_cpu: {e}")

    meta["load_after"] = loadavg()
    meta["minutes"] = round((time.time() - t_start) / 60, 1)
    targets = check_targets(results, callgrind, blocked, runner) if not only else []
    md = render(results, runner, meta, callgrind, blocked, targets)
    md += f"\nTotal run time (without the build): {meta['minutes']} min.\n"

    imgs = plots(results, runner, args.img) if not only else []

    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "sizes": {f"{k[0]} {k[1]}": v for k, v in sizes.items()},
                   "results": results,
                   "callgrind": {f"{k[0]} {k[1]}": v for k, v in callgrind.items()},
                   "blocked": blocked}, f, indent=1)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    print(md)
    for p in imgs:
        log(f"plot: {os.path.relpath(p, ROOT)}")
    log(f"results: {os.path.relpath(os.path.join(outdir, 'results.md'), ROOT)} (and results.json)")

    if args.update_docs:
        update_docs("results", md)


if __name__ == "__main__":
    main()
