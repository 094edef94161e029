#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs a program with --trace FILE and checks the trace it writes (weft's flight recorder,
Chrome trace-event JSON):

  - the file is valid JSON with a traceEvents list;
  - every thread with events has a track named by a thread_name metadata event, and the
    names given with --expect-thread are among them;
  - on every track, wait slices (B/E) are balanced and never nested;
  - every wake flow ends ("f", binding point "e") inside a wait slice of its own track and
    starts ("s") on another thread's track, at a notifier slice;
  - at least --min-flows flows, and an event whose name contains each --expect-name.

Usage: check_trace.py [--expect-thread NAME]... [--expect-name TEXT]... [--min-flows N]
                      -- PROGRAM [ARG]...
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def fail(msg):
    print("check_trace: FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def check(events, expect_threads, expect_names, min_flows):
    names = {}
    by_tid = {}
    for e in events:
        for key in ("ph", "pid", "tid"):
            if key not in e:
                fail(f"event without {key}: {e}")
        if e["ph"] == "M":
            if e.get("name") == "thread_name":
                names[e["tid"]] = e["args"]["name"]
            continue
        if "ts" not in e:
            fail(f"event without ts: {e}")
        by_tid.setdefault(e["tid"], []).append(e)
    for tid in by_tid:
        if not names.get(tid):
            fail(f"thread {tid} has events but no named track")
    for want in expect_threads:
        if want not in names.values():
            fail(f"no track named {want!r} (tracks: {sorted(names.values())})")

    slices = {}  # tid -> [(begin, end, name)]
    for tid, evs in by_tid.items():
        open_slice = None
        for e in evs:  # in the order written, which is each thread's order
            if e["ph"] == "B":
                if open_slice is not None:
                    fail(f"thread {tid}: a wait begins inside another: {e}")
                if not e["name"].startswith("wait "):
                    fail(f"thread {tid}: a slice that is not a wait: {e}")
                open_slice = e
            elif e["ph"] == "E":
                if open_slice is None:
                    fail(f"thread {tid}: an end without a begin: {e}")
                if e["ts"] < open_slice["ts"]:
                    fail(f"thread {tid}: a wait ends before it begins: {e}")
                slices.setdefault(tid, []).append((open_slice["ts"], e["ts"], open_slice["name"]))
                open_slice = None
        if open_slice is not None:
            slices.setdefault(tid, []).append((open_slice["ts"], float("inf"), open_slice["name"]))

    starts = {e["id"]: e for evs in by_tid.values() for e in evs if e["ph"] == "s"}
    notifier_at = {(e["tid"], e["ts"]) for evs in by_tid.values() for e in evs if e["ph"] == "X"}
    flows = 0
    for tid, evs in by_tid.items():
        for e in evs:
            if e["ph"] != "f":
                continue
            flows += 1
            if e.get("bp") != "e":
                fail(f"a flow end not bound to its enclosing slice: {e}")
            if not any(b <= e["ts"] <= end for b, end, _ in slices.get(tid, [])):
                fail(f"thread {tid}: a wake's flow does not end at a wait: {e}")
            s = starts.get(e["id"])
            if s is None:
                fail(f"a wake's flow has no start: {e}")
            if s["tid"] == tid:
                fail(f"a flow from a thread to itself: {e}")
            if (s["tid"], s["ts"]) not in notifier_at:
                fail(f"a flow that does not start at a notifier: {s}")
    if flows < min_flows:
        fail(f"{flows} wake flows, expected at least {min_flows}")
    all_names = [e.get("name", "") for evs in by_tid.values() for e in evs]
    for want in expect_names:
        if not any(want in n for n in all_names):
            fail(f"no event named with {want!r}")
    return flows, len(by_tid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect-thread", action="append", default=[])
    ap.add_argument("--expect-name", action="append", default=[])
    ap.add_argument("--min-flows", type=int, default=1)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        fail("no program to run")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        run = subprocess.run(command + ["--trace", path], timeout=240)
        if run.returncode != 0:
            fail(f"{command[0]} exited with {run.returncode}")
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"the trace is not valid JSON: {e}")
    events = doc.get("traceEvents") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        fail("no traceEvents list")
    flows, tracks = check(events, args.expect_thread, args.expect_name, args.min_flows)
    print(f"check_trace: ok: {len(events)} events, {tracks} tracks, {flows} wake flows")


if __name__ == "__main__":
    main()
