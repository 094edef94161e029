#!/usr/bin/env bash
# `pip install .` of weft's Python package, offline: a fresh venv of the given interpreter,
# pip install --no-index (no setuptools or wheel in it; the in-tree PEP 517 backend drives
# CMake), then a smoke test of the installed package from outside the source tree.
#
#   tests/python/pip_install_test.sh <python> <source root> <work dir>
set -euo pipefail
py="$1" root="$2" work="$3"
rm -rf "$work"
mkdir -p "$work"
"$py" -m venv "$work/venv"
if "$work/venv/bin/python" -c 'import setuptools' 2>/dev/null; then
  echo "note: this venv has setuptools; the backend does not use it"
fi
"$work/venv/bin/python" -m pip install --no-index --no-cache-dir "$root"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import os, sys, threading, weft
assert "site-packages" in weft.__file__, weft.__file__
q = weft.Queue(4)
t = threading.Thread(target=lambda: [q.put(i) for i in range(100)])
t.start()
got = [q.get() for _ in range(100)]
t.join()
assert got == list(range(100)), got
assert os.path.isfile(os.path.join(weft.get_include(), "weft", "python.hpp"))
print(f"pip install . OK on Python {sys.version.split()[0]}: {weft.__file__}")
PY
rm -rf "$work"
