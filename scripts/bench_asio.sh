#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft::asio against asio::experimental::concurrent_channel (bench/asio_bench.cpp):
# coroutine -> coroutine, thread -> coroutine, coroutine -> thread, on an io_context of one
# and of two threads; throughput and round trip, interleaved rounds, medians and weft's
# advantage per round. Builds build/bench-asio (Release, -O2) with Debian's libasio-dev.
#
# Usage: scripts/bench_asio.sh [--rounds R] [--items N] [--trips M]   (default 5, 200000, 20000)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

weft_ensure_packages release
BDIR="$WEFT_ROOT/build/bench-asio"
GEN="$(weft_generator)"
if [ -f "$BDIR/CMakeCache.txt" ] && ! grep -qx "CMAKE_GENERATOR:INTERNAL=$GEN" "$BDIR/CMakeCache.txt"; then
  rm -rf "$BDIR"
fi
cmake -S "$WEFT_ROOT" -B "$BDIR" -G "$GEN" \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DWEFT_BUILD_BENCHMARKS=ON -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
  -DWEFT_INSTALL=OFF -DWEFT_SANITIZE= -DWEFT_REDIS=OFF -DWEFT_ASIO=ON >/dev/null
cmake --build "$BDIR" -j "$WEFT_JOBS" --target weft_asio_bench >/dev/null

weft_log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; commit $(git rev-parse --short HEAD)"
"$BDIR/bench/weft_asio_bench" "$@"
