#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Callgrind instructions per item of weft_bench workloads: the repeatable figures that
docs/benchmarks.md quotes beside wall time (valgrind counts the same instructions on a busy
machine as on a quiet one; only the measured region counts, between the bench's
CALLGRIND_START/STOP_INSTRUMENTATION).

    python3 bench/instructions.py build/bench/bench/weft_bench spsc:200000 lock:200000
    WEFT_BENCH_DIAGNOSTICS=1 python3 bench/instructions.py BIN lock:200000 event_rt:20000

Each argument after the binary is WORKLOAD:N (`weft_bench list` names the workloads; N items
or round trips); without any, a default set runs. --contender picks another contender than
weft. scripts/bench.sh builds build/bench/bench/weft_bench. Prints one line per workload:
"<workload>: <instructions per item> instr/item (n=<N>)".
"""
import argparse
import os
import subprocess
import sys
import tempfile

DEFAULT = ["spsc:200000", "mpmc:200000", "event_set_clear:200000", "event_is_set:200000",
           "event_wait_set:200000", "cond_notify_idle:200000", "lock:200000", "fanin:100000",
           "pingpong:20000", "event_rt:20000", "cond_rt:20000"]


def instructions(binary, workload, contender, n, outdir):
    """Total instructions of the measured region of one run."""
    out = os.path.join(outdir, f"{workload}.{contender}.out")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           binary, "run", workload, contender, "--n", str(n)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{workload}: exit {p.returncode}: {p.stderr[-1000:]}")
    with open(out) as f:
        for line in f:
            if line.startswith("totals:"):  # ("summary:" counts from the start: 0 here)
                return int(line.split()[1])
    raise RuntimeError(f"{workload}: no totals in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", help="weft_bench")
    ap.add_argument("specs", nargs="*", default=DEFAULT, help="WORKLOAD:N")
    ap.add_argument("--contender", default="weft")
    args = ap.parse_intermixed_args()  # --contender before or after the specs
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.specs:
            workload, _, count = spec.partition(":")
            n = int(count or 100000)
            try:
                total = instructions(args.binary, workload, args.contender, n, tmp)
            except RuntimeError as e:
                print(e, file=sys.stderr)
                status = 1
                continue
            print(f"{workload}: {total / n:.1f} instr/item (n={n})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
