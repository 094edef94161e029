#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What weft's diagnostics cost in wall time (docs/benchmarks.md, "Diagnostics"): runs
weft_bench's `lock` (uncontended Lock acquire + release, ns per pair) and `event_rt` (an
Event ping-pong between two threads: two blocking waits per round trip, median us per
round trip) with diagnostics off (compiled in, not enabled), on (enable(): records, Lock
holders, deadlock detection) and tracing (enable() + start_tracing()), in interleaved
rounds (off, on, tracing, off, ...), and prints the median of each over the rounds.

    python3 bench/diag_cost.py build/bench/bench/weft_bench [--rounds 7]

Wall time needs a quiet machine; the callgrind instruction counts of the same workloads
(WEFT_BENCH_DIAGNOSTICS=0/1/2 with bench/instructions.py) are the repeatable view.
"""
import argparse
import json
import os
import statistics
import subprocess

MODES = [("off", "0"), ("on", "1"), ("tracing", "2")]
WORKLOADS = [("lock", 2_000_000), ("event_rt", 20_000)]


def run(binary, workload, n, mode):
    env = dict(os.environ, WEFT_BENCH_DIAGNOSTICS=mode)
    out = subprocess.run([binary, "run", workload, "weft", "--n", str(n)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["value"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    results = {(w, m): [] for w, _ in WORKLOADS for m, _ in MODES}
    for _ in range(args.rounds):
        for w, n in WORKLOADS:
            for m, v in MODES:
                results[(w, m)].append(run(args.binary, w, n, v))
    print(f"medians of {args.rounds} interleaved rounds (load average "
          f"{os.getloadavg()[0]:.1f} at the end)")
    print("| workload | off | on | tracing |")
    print("|---|---:|---:|---:|")
    for w, _ in WORKLOADS:
        unit = "ns per acquire + release" if w == "lock" else "us per round trip (2 waits)"
        cells = [f"{statistics.median(results[(w, m)]):.2f}" for m, _ in MODES]
        print(f"| {w} ({unit}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
