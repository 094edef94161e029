#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plots of bench/scale.py's results as plain SVG files (no plotting library needed).

    python3 bench/scale_plot.py build/bench/results/scale.json docs/img

Writes scale_threads.svg, scale_bytes.svg and scale_capacity.svg: for each sweep, three
panels (throughput, median latency, p99 latency) over the swept quantity, both axes log
scale, one line per contender (the median over rounds; throughput also shows min .. max as a
vertical bar), and scale_memory.svg (memory per queued item and per blocked thread).
"""

import json
import math
import os
import sys

WEFT_COLORS = ["#d62728", "#7f0000", "#ff9896"]
PEER_COLORS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2"]

PANEL_W, PANEL_H = 300, 230
MARGIN_L, MARGIN_T, GAP = 62, 66, 70


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def short(v):
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if v >= div and v % div == 0:
            return f"{v // div}{unit}"
    return str(v)


def num(v):
    if v >= 1000:
        return f"{v:.0f}"
    return f"{v:g}"


def styles(contenders):
    out, kw, kp = {}, 0, 0
    for c in contenders:
        if c["family"] == "weft":
            out[c["id"]] = (WEFT_COLORS[kw % len(WEFT_COLORS)], 2.4 if kw == 0 else 1.8,
                            "" if kw == 0 else "6,3")
            kw += 1
        else:
            out[c["id"]] = (PEER_COLORS[kp % len(PEER_COLORS)], 1.3, "")
            kp += 1
    return out


class Panel:
    """One log-log panel at (x0, y0) of the figure."""

    def __init__(self, x0, y0, points, values, title, ylabel):
        self.x0, self.y0 = x0, y0
        self.lx = [math.log2(p) for p in points]
        vals = [v for v in values if v and v > 0]
        lo, hi = (min(vals), max(vals)) if vals else (1, 10)
        self.dlo = math.floor(math.log10(lo))
        self.dhi = max(math.ceil(math.log10(hi)), self.dlo + 1)
        self.points, self.title, self.ylabel = points, title, ylabel

    def x(self, p):
        a, b = self.lx[0], self.lx[-1]
        f = 0.5 if b == a else (math.log2(p) - a) / (b - a)
        return self.x0 + 12 + f * (PANEL_W - 24)

    def y(self, v):
        f = (math.log10(v) - self.dlo) / (self.dhi - self.dlo)
        return self.y0 + PANEL_H - f * PANEL_H

    def frame(self, xlabel):
        s = [f'<rect x="{self.x0}" y="{self.y0}" width="{PANEL_W}" height="{PANEL_H}" '
             f'fill="none" stroke="#444"/>',
             f'<text x="{self.x0}" y="{self.y0 - 8}" font-size="12" font-weight="bold">'
             f'{esc(self.title)}</text>']
        for d in range(self.dlo, self.dhi + 1):
            y = self.y(10 ** d)
            s.append(f'<line x1="{self.x0}" x2="{self.x0 + PANEL_W}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ccc"/>')
            s.append(f'<text x="{self.x0 - 5}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{num(10.0 ** d)}</text>')
            for m in range(2, 10):
                if d < self.dhi:
                    ym = self.y(m * 10 ** d)
                    s.append(f'<line x1="{self.x0}" x2="{self.x0 + 4}" y1="{ym:.1f}" '
                             f'y2="{ym:.1f}" stroke="#888"/>')
        for p in self.points:
            x = self.x(p)
            s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.y0}" '
                     f'y2="{self.y0 + PANEL_H}" stroke="#eee"/>')
            s.append(f'<text x="{x:.1f}" y="{self.y0 + PANEL_H + 14}" font-size="10" '
                     f'text-anchor="middle">{short(p)}</text>')
        s.append(f'<text x="{self.x0 + PANEL_W / 2}" y="{self.y0 + PANEL_H + 30}" '
                 f'font-size="11" text-anchor="middle">{esc(xlabel)}</text>')
        s.append(f'<text transform="translate({self.x0 - 44},{self.y0 + PANEL_H / 2}) '
                 f'rotate(-90)" font-size="11" text-anchor="middle">{esc(self.ylabel)}</text>')
        return s

    def line(self, pts, color, width, dash, bars=None, shift=0.0):
        """A contender's line; `bars` (point, low, high) are drawn `shift` pixels aside."""
        s = []
        pts = [(p, v) for p, v in pts if v and v > 0]
        if bars:
            for p, lo, hi in bars:
                if lo and hi and lo > 0:
                    x = self.x(p) + shift
                    s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" '
                             f'y1="{self.y(lo):.1f}" y2="{self.y(hi):.1f}" stroke="{color}" '
                             f'stroke-width="1" opacity="0.6"/>')
        if len(pts) > 1:
            d = " ".join(f"{self.x(p):.1f},{self.y(v):.1f}" for p, v in pts)
            s.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                     f'stroke-width="{width}"' + (f' stroke-dasharray="{dash}"' if dash else "")
                     + "/>")
        for p, v in pts:
            s.append(f'<circle cx="{self.x(p):.1f}" cy="{self.y(v):.1f}" r="2.6" fill="{color}"/>')
        return s


def legend(x, y, items, cols):
    s, colw = [], 330
    for i, (label, (color, width, dash)) in enumerate(items):
        cx, cy = x + (i % cols) * colw, y + (i // cols) * 16
        s.append(f'<line x1="{cx}" x2="{cx + 24}" y1="{cy}" y2="{cy}" stroke="{color}" '
                 f'stroke-width="{width}"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        s.append(f'<text x="{cx + 30}" y="{cy + 4}" font-size="11">{esc(label)}</text>')
    return s


def svg(width, height, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


def sweep_figure(data, sweep, path):
    sw = data["sweeps"][sweep]
    points = sw["points"]
    contenders = [c for c in data["contenders"] if c["id"] in sw["summary"]]
    st = styles(contenders)
    metrics = [("throughput", "throughput", "M items/s"),
               ("p50_us", "median latency", "us, put -> get"),
               ("p99_us", "p99 latency", "us, put -> get")]
    body = [f'<text x="{MARGIN_L}" y="22" font-size="14" font-weight="bold">'
            f'{esc(sw["title"])}</text>',
            f'<text x="{MARGIN_L}" y="38" font-size="11" fill="#555">{esc(data["meta"]["caption"])}'
            f'</text>']
    for k, (key, title, unit) in enumerate(metrics):
        vals = []
        for c in contenders:
            for p in points:
                s = sw["summary"][c["id"]].get(str(p))
                if s:
                    vals += [s.get(key), s.get(key + "_min"), s.get(key + "_max")]
        panel = Panel(MARGIN_L + k * (PANEL_W + GAP), MARGIN_T, points, vals, title, unit)
        body += panel.frame(sw["xlabel"])
        for i, c in enumerate(contenders):
            summ = sw["summary"][c["id"]]
            pts = [(p, (summ.get(str(p)) or {}).get(key)) for p in points]
            bars = None
            if key == "throughput":
                bars = [(p, (summ.get(str(p)) or {}).get(key + "_min"),
                         (summ.get(str(p)) or {}).get(key + "_max")) for p in points]
            body += panel.line(pts, *st[c["id"]], bars=bars,
                               shift=2.5 * (i - (len(contenders) - 1) / 2))
    ly = MARGIN_T + PANEL_H + 52
    body += legend(MARGIN_L, ly, [(c["label"], st[c["id"]]) for c in contenders], 3)
    width = MARGIN_L + 3 * PANEL_W + 2 * GAP + 20
    height = ly + 16 * ((len(contenders) + 2) // 3) + 10
    with open(path, "w") as f:
        f.write(svg(width, height, body))


def memory_figure(data, path):
    """Two horizontal bar panels: heap per queued item, and resident bytes per blocked thread."""
    mem = data.get("memory_summary", {})
    contenders = [c for c in data["contenders"] if c["id"] in mem]
    if not contenders:
        return False
    st = styles(contenders)
    panels = [("item", "bytes per queued item: the largest of heap per item, heap per slot "
               "(allocated up front) and resident per item",
               lambda m: max(m.get("item_heap", 0), m.get("slot_heap", 0), m.get("item_rss", 0))),
              ("blocked", "bytes per thread blocked in get(), beyond a bare futex wait: the "
               "larger of heap and resident",
               lambda m: max(m.get("blocked_heap", 0), m.get("blocked_rss", 0), 0)),
              ("stack", "stack bytes of a thread blocked in get(), beyond a bare futex wait",
               lambda m: max(m.get("blocked_stack", 0) - m.get("futex_stack", 0), 0))]
    rowh, labelw, barw = 18, 330, 330
    body = [f'<text x="10" y="22" font-size="14" font-weight="bold">Memory</text>',
            f'<text x="10" y="38" font-size="11" fill="#555">{esc(data["meta"]["caption"])}</text>']
    y = 60
    for key, title, f in panels:
        body.append(f'<text x="10" y="{y}" font-size="12" font-weight="bold">{esc(title)}</text>')
        y += 8
        vals = [f(mem[c["id"]]) for c in contenders]
        top = max(vals + [1])
        for c, v in zip(contenders, vals):
            color = st[c["id"]][0]
            body.append(f'<text x="{labelw}" y="{y + 13}" font-size="11" text-anchor="end">'
                        f'{esc(c["label"])}</text>')
            w = barw * v / top
            body.append(f'<rect x="{labelw + 6}" y="{y + 3}" width="{w:.1f}" height="{rowh - 5}" '
                        f'fill="{color}"/>')
            text = f"{v:.0f}" if v >= 100 else f"{v:.3g}"
            body.append(f'<text x="{labelw + 10 + w:.1f}" y="{y + 13}" font-size="11">'
                        f'{text}</text>')
            y += rowh
        y += 24
    with open(path, "w") as f_out:
        f_out.write(svg(labelw + barw + 120, y, body))
    return True


def plot_all(data, imgdir):
    os.makedirs(imgdir, exist_ok=True)
    written = []
    for sweep in data["sweeps"]:
        path = os.path.join(imgdir, f"scale_{sweep}.svg")
        sweep_figure(data, sweep, path)
        written.append(path)
    path = os.path.join(imgdir, "scale_memory.svg")
    if memory_figure(data, path):
        written.append(path)
    return written


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scale_plot.py <scale.json> <image directory>")
    with open(sys.argv[1]) as f:
        data = json.load(f)
    for p in plot_all(data, sys.argv[2]):
        print(p)


if __name__ == "__main__":
    main()
