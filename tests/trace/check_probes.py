#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks that a binary carries weft's USDT probes: its .note.stapsdt section (as
`readelf -n` prints it) has a note with provider "weft" for each expected name, then runs
the binary (which must exit 0).

Usage: check_probes.py BINARY NAME...
"""
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, expected = sys.argv[1], set(sys.argv[2:])
    notes = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True, check=True)
    found, provider = set(), None
    for line in notes.stdout.splitlines():
        line = line.strip()
        if line.startswith("Provider:"):
            provider = line.split(":", 1)[1].strip()
        elif line.startswith("Name:") and provider == "weft":
            found.add(line.split(":", 1)[1].strip())
    missing = sorted(expected - found)
    if missing:
        sys.exit(f"check_probes: FAILED: {binary} lacks the weft probes {missing} "
                 f"(has {sorted(found)})")
    run = subprocess.run([binary], timeout=120)
    if run.returncode != 0:
        sys.exit(f"check_probes: FAILED: {binary} exited with {run.returncode}")
    print(f"check_probes: ok: weft probes {sorted(found)}")


if __name__ == "__main__":
    main()
