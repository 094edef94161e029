#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft's benchmarks against its peers, in one command:
#
#   bash scripts/bench.sh            full run (5 interleaved rounds + callgrind), < 10 minutes
#   bash scripts/bench.sh --quick    smoke run (2 short rounds, little callgrind), ~1 minute
#   bash scripts/bench.sh --scale    how cost grows (bench/scale.py: threads, item size,
#                                    capacity, memory) instead of the suite; --scale --quick
#                                    is its smoke run
#
# Then the Python package against the standard library (bench/python_bench.py: weft.Queue vs
# queue.Queue, SimpleQueue, threading's Event/Lock/RLock/Condition; interleaved rounds,
# medians, ratios; callgrind instruction counts of the single-thread operations) for each
# interpreter the package is built for (the pyenv 3.11 and 3.13, see python/CMakeLists.txt);
# about 5 minutes each, 1 with --quick (no callgrind). WEFT_BENCH_PYTHON=0 skips it.
#
# Installs what is missing with apt-get (the peers' Debian packages, valgrind, matplotlib),
# builds weft and bench/ in build/bench (Release, -O2, no -march=native: portable code), runs
# bench/run.py, prints the result table, and writes the plots to docs/img/. Other arguments
# go to bench/run.py (e.g. --rounds 7, --only spsc,mpmc, --no-callgrind, --update-docs to
# replace the generated section of docs/benchmarks.md). See bench/README.md.
#
# Wall-time results need a quiet machine: the script prints the load average first and warns
# when it is 1.0 or more.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

case "${1:-}" in
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

# --scale: bench/scale.py instead of the suite, without the Python package.
scale=0
if [ "${1:-}" = --scale ]; then
  scale=1
  shift
  export WEFT_BENCH_PYTHON=0
fi

# --- packages ------------------------------------------------------------------------------
BENCH_PACKAGES=(
  cmake g++ valgrind python3 python3-matplotlib
  libconcurrentqueue-dev      # moodycamel::BlockingConcurrentQueue
  libreaderwriterqueue-dev    # moodycamel::BlockingReaderWriterCircularBuffer
  libtbb-dev                  # tbb::concurrent_bounded_queue
  libboost-thread-dev         # boost::sync_bounded_queue, boost::sync_queue
  libatomic-queue-dev         # atomic_queue
  libabsl-dev                 # absl::Mutex, absl::CondVar, absl::Notification
)
missing=()
for p in "${BENCH_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || weft_die "missing packages (${missing[*]}) and no apt-get"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    weft_log "apt-get update (no package lists yet)"
    "${as_root[@]}" apt-get update -q
  fi
  weft_log "apt-get install ${missing[*]}"
  if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    weft_log "install failed; apt-get update and retry"
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

# matplotlib comes from Debian, so the runner uses Debian's python3.
RUN_PY=/usr/bin/python3
[ -x "$RUN_PY" ] || RUN_PY="$(command -v python3)"

# --- build -----------------------------------------------------------------------------------
BDIR="$WEFT_ROOT/build/bench"
GEN="$(weft_generator)"
if [ -f "$BDIR/CMakeCache.txt" ] && ! grep -qx "CMAKE_GENERATOR:INTERNAL=$GEN" "$BDIR/CMakeCache.txt"; then
  rm -rf "$BDIR"
fi
weft_log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
start=$SECONDS
cmake -S "$WEFT_ROOT" -B "$BDIR" -G "$GEN" \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -g -DNDEBUG" \
  -DWEFT_BUILD_BENCHMARKS=ON -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
  -DWEFT_INSTALL=OFF -DWEFT_SANITIZE= "-DWEFT_PYTHON=${WEFT_BENCH_PYTHON:-1}" >/dev/null
py_targets=()
if [ "${WEFT_BENCH_PYTHON:-1}" != 0 ]; then
  mapfile -t py_targets < <(sed -n 's/^WEFT_PY_TARGETS:INTERNAL=//p' "$BDIR/CMakeCache.txt" | tr ';' '\n')
fi
cmake --build "$BDIR" -j "$WEFT_JOBS" --target weft_bench "${py_targets[@]}"
weft_log "built build/bench/bench/weft_bench in $((SECONDS - start)) s"

load1="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load1" 'BEGIN { exit !(l >= 1.0) }'; then
  weft_log "WARNING: load average $load1 >= 1.0: other work is running, wall-time numbers will be noisy"
fi

if [ "$scale" = 1 ]; then
  exec "$RUN_PY" "$WEFT_ROOT/bench/scale.py" --bin "$BDIR/bench/weft_bench" "$@"
fi
"$RUN_PY" "$WEFT_ROOT/bench/run.py" --bin "$BDIR/bench/weft_bench" "$@"

# --- the Python package --------------------------------------------------------------------
[ "${WEFT_BENCH_PYTHON:-1}" != 0 ] || exit 0
quick=(--callgrind)
for a in "$@"; do [ "$a" != --quick ] || quick=(--quick); done
mkdir -p "$BDIR/results"
sed -n 's/^WEFT_PY_VERSIONS:INTERNAL=//p' "$BDIR/CMakeCache.txt" | tr ';' '\n' |
  while IFS='|' read -r ver py pkgdir; do
    [ -n "$ver" ] || continue
    echo
    "$RUN_PY" "$WEFT_ROOT/bench/python_bench.py" --python "$py" --pythonpath "$(dirname "$pkgdir")" \
      --json "$BDIR/results/python-$ver.json" "${quick[@]}"
  done
