#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""How a queue's cost grows: weft's queues beside the peers as the number of producers and
consumers, the item size and the capacity grow; and what a queue, a queued item and a thread
blocked in get() cost in memory.

    bash scripts/bench.sh --scale [--quick]          (installs, builds, then runs this)
    python3 bench/scale.py --bin build/bench/bench/weft_bench [--quick] [--rounds N]
        [--update-docs]

Each sweep point is one weft_bench workload (bench/scale_workloads.hpp says what each
measures). The method is run.py's: one process per trial, a calibration pass (also the
warm-up), then interleaved rounds (every contender of a point back to back, the order
rotated each round), medians with min .. max. Writes scale.json and scale.md (in --out,
default build/bench/results/) and the SVG plots (bench/scale_plot.py) into --img;
--update-docs also puts scale.md's tables between the scale markers of docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as suite  # noqa: E402  (bench/run.py: Runner, calibrate, Workload, Contender)
import scale_plot  # noqa: E402

ROOT = os.path.dirname(HERE)

CONTENDERS = [
    {"id": "weft", "label": "weft::Queue (ring)", "family": "weft"},
    {"id": "weft_unbounded", "label": "weft::Queue, unbounded (segment list)", "family": "weft"},
    {"id": "weft_simple", "label": "weft::SimpleQueue", "family": "weft", "memory_only": True},
    {"id": "mc_bcq", "label": "moodycamel BlockingConcurrentQueue (unbounded)", "family": "peer"},
    {"id": "absl", "label": "absl::Mutex + CondVar + deque", "family": "peer"},
    {"id": "boost", "label": "boost::sync_bounded_queue", "family": "peer"},
    {"id": "tbb", "label": "tbb::concurrent_bounded_queue", "family": "peer"},
    {"id": "std", "label": "std::mutex + condition_variable + deque", "family": "peer"},
]

SWEEPS = {
    "threads": {"title": "Producers and consumers (P = C), capacity 1024, 8-byte items",
                "xlabel": "producers = consumers (2x threads on the machine's cores)",
                "points": [1, 2, 4, 8, 16], "workload": "scale_threads_{}"},
    "bytes": {"title": "Item size, 2 producers -> 2 consumers, capacity 1024",
              "xlabel": "item size, bytes", "points": [8, 64, 512, 4096],
              "workload": "scale_bytes_{}"},
    "capacity": {"title": "Capacity, 2 producers -> 2 consumers, 8-byte items (bounded queues)",
                 "xlabel": "capacity", "points": [1, 16, 256, 4096, 65536, 1048576],
                 "workload": "scale_capacity_{}"},
}

MEMORY_FIELDS = [
    ("empty_heap", "empty queue, capacity 1024: heap"),
    ("slot_heap", "per slot of capacity: heap"),
    ("item_heap", "per queued item: heap"),
    ("item_rss", "per queued item: resident"),
    ("blocked_heap", "per blocked get(): heap"),
    ("blocked_rss", "per blocked get(): resident"),
    ("blocked_stack", "blocked get(): stack depth"),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def commit():
    try:
        h = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
        # Dirty if what is built or runs differs from the commit (docs do not count).
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                                "--", "include", "src", "bench", "CMakeLists.txt"],
                               capture_output=True, text=True).stdout.strip()
        return h + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def summarize(trials):
    ok = [t for t in trials if t]
    if not ok:
        return None
    s = {}
    tp = [t["value"] for t in ok]
    s["throughput"], s["throughput_min"], s["throughput_max"] = (
        statistics.median(tp), min(tp), max(tp))
    for key in ("p50_us", "p99_us", "p999_us", "max_us"):
        vals = [t["extra"][key] for t in ok if key in t.get("extra", {})]
        if vals:
            s[key], s[key + "_min"], s[key + "_max"] = statistics.median(vals), min(vals), max(vals)
    s["rounds"] = len(ok)
    return s


def render(data):
    L = [f"Run: {data['meta']['caption']}", ""]
    for name, sw in data["sweeps"].items():
        L.append(f"### {sw['title']}")
        L.append("")
        L.append("Throughput, M items/s, median of rounds (median latency put -> get, us)")
        L.append("")
        L.append("| contender | " + " | ".join(scale_plot.short(p) for p in sw["points"]) + " |")
        L.append("|---|" + "---:|" * len(sw["points"]))
        for c in data["contenders"]:
            summ = sw["summary"].get(c["id"])
            if not summ:
                continue
            cells = []
            for p in sw["points"]:
                s = summ.get(str(p))
                cells.append(f"{s['throughput']:.3g} ({s.get('p50_us', 0):.3g})" if s else "")
            L.append(f"| {c['label']} | " + " | ".join(cells) + " |")
        L.append("")
    mem = data.get("memory_summary")
    if mem:
        L.append("### Memory, bytes (median of runs)")
        L.append("")
        L.append("| contender | " + " | ".join(label for _, label in MEMORY_FIELDS) + " |")
        L.append("|---|" + "---:|" * len(MEMORY_FIELDS))
        for c in data["contenders"]:
            m = mem.get(c["id"])
            if m:
                L.append(f"| {c['label']} | " + " | ".join(
                    f"{m[k]:.3g}" if k in m else "" for k, _ in MEMORY_FIELDS) + " |")
        base = [m.get("futex_stack") for m in mem.values() if m.get("futex_stack")]
        if base:
            L.append("")
            L.append(f"A thread blocked in a bare futex wait: stack depth {statistics.median(base):.0f}.")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path to weft_bench")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of short trials")
    ap.add_argument("--rounds", type=int, default=None, help="default 5 (1 with --quick)")
    ap.add_argument("--trial-seconds", type=float, default=None,
                    help="default 0.15 (0.02 with --quick)")
    ap.add_argument("--trial-timeout", type=float, default=60)
    ap.add_argument("--only", default="", help="comma-separated sweeps: threads,bytes,capacity,memory")
    ap.add_argument("--out", default=None, help="directory for scale.json and scale.md")
    ap.add_argument("--img", default=os.path.join(ROOT, "docs", "img"))
    ap.add_argument("--update-docs", action="store_true",
                    help="also replace the tables between the scale markers of docs/benchmarks.md")
    args = ap.parse_args()

    rounds = args.rounds or (1 if args.quick else 5)
    target = args.trial_seconds or (0.02 if args.quick else 0.15)
    outdir = args.out or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.bin))),
                                      "results")
    os.makedirs(outdir, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    runner = suite.Runner(args)
    t_start = time.time()
    load_before = suite.loadavg()

    def contender(c):
        return suite.Contender(c["id"], c["label"], family=c["family"])

    # (sweep, point) -> [Workload, [contenders present]]
    cells = []
    for name, sw in SWEEPS.items():
        if only and name not in only:
            continue
        for p in sw["points"]:
            wid = sw["workload"].format(p)
            # min_n: at least 100 timed items (every 64th) even for a contender that crawls.
            w = suite.Workload(wid, wid, [], n0=10000, min_n=6400, max_n=20_000_000)
            cs = [contender(c) for c in CONTENDERS
                  if not c.get("memory_only") and (wid, c["id"]) in runner.available]
            if cs:
                cells.append((name, p, w, cs))

    sizes = {}
    for name, p, w, cs in cells:
        for c in cs:
            try:
                sizes[(w.wid, c.cid)] = suite.calibrate(runner, w, c, target)
            except suite.TrialError as e:
                log(f"calibration failed, {w.wid}/{c.cid}: {e}")
    log(f"calibrated {len(sizes)} trials in {time.time() - t_start:.0f} s")

    raw = {}
    for r in range(rounds):
        t0 = time.time()
        for name, p, w, cs in cells:
            cs = [c for c in cs if (w.wid, c.cid) in sizes]
            k = r % len(cs) if cs else 0
            for c in cs[k:] + cs[:k]:
                try:
                    res = runner.trial(w, c, sizes[(w.wid, c.cid)])
                except suite.TrialError as e:
                    log(f"round {r + 1}: {w.wid}/{c.cid}: {e}")
                    res = None
                raw.setdefault(name, {}).setdefault(c.cid, {}).setdefault(str(p), []).append(res)
        log(f"round {r + 1}/{rounds} done in {time.time() - t0:.0f} s (load {suite.loadavg()})")

    memory = {}
    if not only or "memory" in only:
        w = suite.Workload("scale_memory", "", [])
        for _ in range(1 if args.quick else 2):
            for c in CONTENDERS:
                if ("scale_memory", c["id"]) not in runner.available:
                    continue
                try:
                    memory.setdefault(c["id"], []).append(runner.trial(w, contender(c), 1))
                except suite.TrialError as e:
                    log(f"memory {c['id']}: {e}")
    memory_summary = {}
    for cid, runs in memory.items():
        keys = set().union(*(r["extra"].keys() for r in runs))
        memory_summary[cid] = {k: statistics.median(r["extra"][k] for r in runs if k in r["extra"])
                               for k in keys}

    minutes = (time.time() - t_start) / 60
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(), "rounds": rounds, "trial_seconds": target, "quick": args.quick,
            "load_before": load_before, "load_after": suite.loadavg(), "cpu": suite.cpu_model(),
            "ncpu": os.cpu_count(), "minutes": round(minutes, 1)}
    meta["caption"] = (f"weft {meta['commit']}, {meta['date']}, {rounds} round(s) of "
                       f"{target:g} s trials{' (quick)' if args.quick else ''}, {meta['cpu']}, "
                       f"{meta['ncpu']} CPUs, load {load_before} -> {meta['load_after']}")
    data = {"meta": meta,
            "contenders": [{k: c[k] for k in ("id", "label", "family")} for c in CONTENDERS],
            "sweeps": {}, "memory": memory, "memory_summary": memory_summary}
    for name, sw in SWEEPS.items():
        if name not in raw:
            continue
        data["sweeps"][name] = {
            "title": sw["title"], "xlabel": sw["xlabel"], "points": sw["points"],
            "sizes": {f"{w.wid} {c.cid}": sizes.get((w.wid, c.cid))
                      for n, _, w, cs in cells if n == name for c in cs},
            "raw": raw[name],
            "summary": {cid: {p: summarize(ts) for p, ts in per.items()}
                        for cid, per in raw[name].items()},
        }
    with open(os.path.join(outdir, "scale.json"), "w") as f:
        json.dump(data, f, indent=1)
    md = render(data) + f"\nTotal run time (without the build): {meta['minutes']} min.\n"
    with open(os.path.join(outdir, "scale.md"), "w") as f:
        f.write(md)
    print(md)
    for p in scale_plot.plot_all(data, args.img):
        log(f"plot: {os.path.relpath(p, ROOT)}")
    log(f"results: {os.path.relpath(os.path.join(outdir, 'scale.json'), ROOT)} (and scale.md)")
    if args.update_docs:
        suite.update_docs("scale", md)


if __name__ == "__main__":
    main()
