#!/usr/bin/env bash
# weft::redis against the physical limit of this machine, in one run (docs/redis.md, Figures):
#
#   bash scripts/bench_redis.sh [--items N] [--rounds R] [--samples S]
#
# Installs redis-server and libhiredis-dev when missing, builds bench/redis_bench.cpp in
# build/bench-redis (Release, -O2), starts a private redis-server on a unix socket (no
# persistence: the limit of the engine, not of the disk), runs redis-benchmark's LPUSH and
# RPOP (1 client, and 50 clients) and then weft_redis_bench (a bare hiredis LPUSH + BRPOP
# loop, weft's queue single-item and batched; throughput, server time per item (INFO
# commandstats) and latency), and stops the server.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

weft_ensure_packages release
BDIR="$WEFT_ROOT/build/bench-redis"
weft_build_bench bench-redis weft_redis_bench

dir="$(mktemp -d /tmp/weft-redis-bench-XXXXXX)"
sock="$dir/redis.sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" --save '' \
  --appendonly no --daemonize no --logfile "$dir/redis.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
weft_wait_redis "$sock"

weft_log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; $(redis-server --version | cut -d' ' -f3)"
echo "redis-benchmark -s SOCK -t lpush,rpop -n 200000 -q, 1 client and 50 clients:"
redis-benchmark -s "$sock" -t lpush,rpop -n 200000 -c 1 -q | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/  c=1   /'
redis-benchmark -s "$sock" -t lpush,rpop -n 200000 -c 50 -q | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/  c=50  /'
echo
"$BDIR/bench/weft_redis_bench" --socket "$sock" "$@"
weft_log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
