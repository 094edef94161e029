#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Renders a weft trace (the Chrome trace-event JSON of weft::diagnostics::write_trace, or of
an example run with --trace FILE) as a timeline PNG: one row per thread, named as in the
trace; a bar per wait (how it ended: woken, timed out, cancelled); a tick per traced
operation (put, get, set, acquire, release; a notifier's slice is named by the wait it
ended); an arrow from each notifier to the wait it ended.

    python3 scripts/trace_timeline.py TRACE.json OUT.png [--title T] [--no-locks]

Needs matplotlib (Debian: apt-get install python3-matplotlib, then run it with
/usr/bin/python3); installs nothing. The same file opens in ui.perfetto.dev or
chrome://tracing.
"""
import argparse
import json
import sys

END_COLORS = {"wake": "#4c78a8", "timeout": "#f58518", "cancel": "#b279a2"}


def load(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    names, by_tid = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
        elif e.get("ph") != "M":
            by_tid.setdefault(e["tid"], []).append(e)
    return names, by_tid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("png")
    ap.add_argument("--title", default=None)
    ap.add_argument("--all", action="store_true",
                    help="start at the first event of any thread (default: where every "
                         "thread with a full ring has events)")
    ap.add_argument("--full-ring", type=int, default=300, help=argparse.SUPPRESS)
    ap.add_argument("--no-locks", action="store_true",
                    help="leave out Lock/RLock acquire and release ticks")
    args = ap.parse_args()
    try:
        import matplotlib
    except ImportError:
        sys.exit("trace_timeline.py needs matplotlib: apt-get install python3-matplotlib, "
                 "then run it with /usr/bin/python3")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, by_tid = load(args.trace)
    if not by_tid:
        sys.exit(f"{args.trace}: no events")
    # Each thread keeps its own last events: a busy thread's ring covers less time than a
    # quiet one's. By default the picture starts where every full ring has data.
    full = [evs for evs in by_tid.values() if len(evs) >= args.full_ring]
    t0 = max((min(e["ts"] for e in evs) for evs in full), default=None)
    if t0 is None or args.all:
        t0 = min(e["ts"] for evs in by_tid.values() for e in evs)
    for tid in list(by_tid):
        kept, open_begin = [], None
        for e in by_tid[tid]:
            if e["ts"] >= t0:
                if open_begin is not None and not kept:
                    kept.append(dict(open_begin, ts=t0))  # a wait that began before t0
                kept.append(e)
            elif e["ph"] == "B":
                open_begin = e
            elif e["ph"] == "E":
                open_begin = None
        if not kept and open_begin is not None:
            kept.append(dict(open_begin, ts=t0))
        if kept:
            by_tid[tid] = kept
        else:
            del by_tid[tid]
    ms = lambda ts: (ts - t0) / 1000.0  # trace timestamps are microseconds
    # Rows top to bottom in the order of each thread's first event.
    tids = sorted(by_tid, key=lambda t: min(e["ts"] for e in by_tid[t]))
    row = {tid: len(tids) - 1 - i for i, tid in enumerate(tids)}

    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.75 * len(tids)), dpi=100)
    starts, ends = {}, {}
    labelled = set()
    for tid, evs in by_tid.items():
        y = row[tid]
        begin = None
        for e in evs:
            ph, x = e["ph"], ms(e["ts"])
            if ph == "B":
                begin = e
            elif ph == "E" and begin is not None:
                how = e.get("args", {}).get("end", "wake")
                label = f"wait ({'woken' if how == 'wake' else how})"
                ax.barh(y, x - ms(begin["ts"]), left=ms(begin["ts"]), height=0.5,
                        color=END_COLORS.get(how, "#888"), alpha=0.85,
                        label=None if label in labelled else label)
                labelled.add(label)
                begin = None
            elif ph == "f":
                ends[e["id"]] = (x, y)
            elif ph == "s":
                starts[e["id"]] = (x, y)
            elif ph in ("X", "i"):
                name = e.get("name", "")
                is_lock = name.startswith(("acquire Lock", "release Lock", "acquire RLock",
                                           "release RLock"))
                if is_lock and args.no_locks:
                    continue
                kind = "lock" if is_lock else ("notify" if ph == "X" else "op")
                color = {"lock": "#999999", "notify": "#e45756", "op": "#54a24b"}[kind]
                label = {"lock": "Lock acquire/release", "notify": "notifier (put/get/set...)",
                         "op": "put/get/set after a wait"}[kind]
                ax.plot([x, x], [y - 0.32, y + 0.32], color=color, lw=1.2,
                        label=None if label in labelled else label)
                labelled.add(label)
        if begin is not None:  # a wait still open when the trace was written
            last = max(ms(e["ts"]) for evs2 in by_tid.values() for e in evs2)
            ax.barh(y, last - ms(begin["ts"]), left=ms(begin["ts"]), height=0.5,
                    color="#bbbbbb", hatch="//", label=None if "open" in labelled else
                    "wait (still blocked)")
            labelled.add("open")
    for fid, (x1, y1) in ends.items():
        if fid in starts:
            x0, y0 = starts[fid]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color="#e45756", lw=0.9))
    ax.set_yticks([row[t] for t in tids])
    ax.set_yticklabels([names.get(t, f"thread {t}") for t in tids])
    ax.set_ylim(-0.7, len(tids) - 0.3)
    ax.set_xlabel("time (ms)")
    ax.set_title(args.title or args.trace, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.subplots_adjust(bottom=fig.subplotpars.bottom + 0.3 / fig.get_figheight())
    fig.legend(loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.savefig(args.png)
    print(f"wrote {args.png}: {len(tids)} threads, {len(ends)} wake arrows")


if __name__ == "__main__":
    main()
