#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft::asio against asio::experimental::concurrent_channel (bench/asio_bench.cpp):
# coroutine -> coroutine, thread -> coroutine, coroutine -> thread, on an io_context of one
# and of two threads; throughput and round trip, interleaved rounds, medians and weft's
# advantage per round. Builds build/bench-asio (Release, -O2) with Debian's libasio-dev.
#
# Usage: scripts/bench_asio.sh [--rounds R] [--items N] [--trips M]   (default 5, 200000, 20000)
#        scripts/bench_asio.sh --callgrind
#   instructions per item (per round trip) of each side, one io thread, under callgrind:
#   (Ir(2N) - Ir(N)) / N of two runs of a row, which cancels the setup. Repeatable where
#   wall time on a loaded machine is not; it counts work, not waiting or cache misses.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

weft_ensure_packages release
BDIR="$WEFT_ROOT/build/bench-asio"
weft_build_bench bench-asio weft_asio_bench -DWEFT_REDIS=OFF -DWEFT_ASIO=ON

weft_log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; commit $(git rev-parse --short HEAD)"
if [ "${1:-}" != --callgrind ]; then
  exec "$BDIR/bench/weft_asio_bench" "$@"
fi
command -v valgrind >/dev/null 2>&1 || weft_die "--callgrind needs valgrind"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
ir() {  # ir <args...>: the instructions callgrind counted
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$BDIR/bench/weft_asio_bench" \
    --rounds 1 "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : //p' | tr -d ,
}
printf '| %-46s | %12s | %12s | %s |\n' "row, 1 io thread (callgrind)" weft channel "weft/channel"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..48})" "$(printf -- '-%.0s' {1..14})" \
  "$(printf -- '-%.0s' {1..14})" "--------------"
for row in "coroutine -> coroutine" "thread -> coroutine" "coroutine -> thread" \
  "round trip, coroutine <-> coroutine" "round trip, thread <-> coroutine"; do
  case "$row" in
    round*) flag=--trips n=2000 unit="Ir/trip" ;;
    *) flag=--items n=5000 unit="Ir/item" ;;
  esac
  declare -A per=()
  for c in weft channel; do
    a="$(ir "$flag" "$n" --only "$row, 1 io thread" --contender "$c")"
    b="$(ir "$flag" "$((2 * n))" --only "$row, 1 io thread" --contender "$c")"
    per[$c]=$(((b - a) / n))
  done
  printf '| %-46s | %12s | %12s | %s |\n' "$row [$unit]" "${per[weft]}" "${per[channel]}" \
    "$(awk -v w="${per[weft]}" -v c="${per[channel]}" 'BEGIN { printf "%.2f", w / c }')"
done
