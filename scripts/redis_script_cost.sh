#!/usr/bin/env bash
# Server instructions per command of weft::redis's hot paths, counted by callgrind on a
# private redis-server (counts, not times: the same on a loaded machine; docs/redis.md,
# "Where the server's time goes"):
#
#   bash scripts/redis_script_cost.sh [N]      (N commands per measurement, default 500)
#
# Prints, per command: PING, LPUSH, RPOP, an empty EVALSHA script and an empty function (the
# floors), weft's put, get and get carrying one acknowledgement (the consumer loop's call),
# and the cost of each redis.call the hot paths make (ten in one function, minus the empty
# function, over ten). The library is read from src/redis/scripts.hpp. Needs valgrind,
# redis-server, redis-benchmark, python3.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"
N="${1:-500}"

dir="$(mktemp -d /tmp/weft-redis-cost-XXXXXX)"
S="$dir/redis.sock"
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" redis-server --port 0 \
  --unixsocket "$S" --unixsocketperm 700 --dir "$dir" --save '' --appendonly no \
  --hz 1 --enable-debug-command local --logfile "$dir/redis.log" >"$dir/valgrind.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
weft_wait_redis "$S" 600  # valgrind starts slowly

# The library with version "c": functions weft_c_put, weft_c_get ...
python3 - "$dir" <<'EOF'
import re, sys
src = open('src/redis/scripts.hpp').read()
lib = re.search(r'inline constexpr const char\* kLibrary = R"LUA\((.*?)\)LUA";', src, re.S).group(1)
open(f'{sys.argv[1]}/lib.lua', 'w').write(lib.replace('@V@', 'c'))
EOF

cli() { redis-cli -s "$S" "$@"; }
# The server's timer (hz 1) and its sampling of keys with an expiry (the put records') run by
# the clock, not per command: off, so that the counts do not depend on how long a run takes.
cli DEBUG SET-ACTIVE-EXPIRE 0 >/dev/null
# Instructions of the server per command while `$@` runs N times (commands from stdin when
# the first argument is "-": one command per line, sent one at a time like a client does).
count() {
  callgrind_control -z "$server" >/dev/null 2>&1
  if [ "$1" = - ]; then redis-cli -s "$S" >/dev/null; else
    redis-benchmark -s "$S" -n "$N" -c 1 -r 1000000000 -q "$@" >/dev/null 2>&1; fi
  rm -f "$dir"/cg.out.*
  callgrind_control -d "$server" >/dev/null 2>&1
  local f
  f="$(ls -t "$dir"/cg.out* | head -1)"
  echo $(($(awk '/^(summary|totals):/ {print $2; exit}' "$f") / N))
}
cli FUNCTION LOAD REPLACE "$(cat "$dir/lib.lua")" >/dev/null
# Settings "f0 g1": FIFO, unbounded, the queue's generation g1 (init writes it).
A=(1 'weft:{b}:meta' sessA 'f0 g1')
AQ="1 weft:{b}:meta sessA \"f0 g1\""  # the same, quoted for redis-cli's stdin
fresh() { cli FLUSHALL >/dev/null; cli FCALL weft_c_init "${A[@]}" 30000 g1 >/dev/null; }
row() { printf '| %s | %s |\n' "$1" "$2"; }
empty=$(cli SCRIPT LOAD "return 1")
cli FUNCTION LOAD REPLACE "#!lua name=cost_empty
redis.register_function('cost_empty', function(keys, args) return 1 end)" >/dev/null

echo "| command (redis-benchmark, 1 client, $N each) | server instructions |"
echo "|---|---:|"
fresh
row "PING" "$(count PING)"
row "LPUSH" "$(count LPUSH bare payload12345678)"
row "RPOP" "$(count RPOP bare)"
row "EVALSHA of \`return 1\` with put's 6 arguments" \
  "$(count EVALSHA "$empty" "${A[@]}" "0 s1 p__rand_int__" payload12345678)"
row "FCALL of an empty function with put's 6 arguments" \
  "$(count FCALL cost_empty "${A[@]}" "0 s1 p__rand_int__" payload12345678)"
row "weft put" "$(count FCALL weft_c_put "${A[@]}" "0 s1 p__rand_int__" payload12345678)"
row "weft get" "$(count FCALL weft_c_get "${A[@]}" "1 30000 s1 r__rand_int__")"
# A get that carries the acknowledgement of the previous item, one at a time as a consumer
# sends it, less a PING sent the same way (the round trip's own cost).
fresh
for i in $(seq 1 $((N + 1))); do echo "FCALL weft_c_put $AQ \"0 s1 p$i\" x"; done | cli >/dev/null
cli FCALL weft_c_get "${A[@]}" "1 30000 s1 r0" >/dev/null
acked=$(for i in $(seq 1 "$N"); do printf 'FCALL weft_c_get %s "1 30000 s1 r%d" %016d\n' "$AQ" "$i" "$i"; done | count -)
ping=$(for _ in $(seq 1 "$N"); do echo PING; done | count -)
row "weft get + the previous item's ack" "$((acked - ping))"

echo
echo "| redis.call in a function (x10, less the empty function, /10) | server instructions |"
echo "|---|---:|"
fresh
cli ZADD 'weft:{b}:clients' 9999999999999 sessA >/dev/null
base=$(count FCALL cost_empty "${A[@]}")
call() {
  cli FUNCTION LOAD REPLACE "#!lua name=cost_call
redis.register_function('cost_call', function(keys, args) for i = 1, 10 do $2 end return 1 end)" >/dev/null
  row "$1" "$((($(count FCALL cost_call "${A[@]}") - base) / 10))"
}
m="string.format('%016d', math.random(1000000000))"
call "HGET meta sd (slow paths only)" "redis.call('HGET', keys[1], 'sd')"
call "HGET pr (put: idempotent retry; a retry only)" "redis.call('HGET', 'weft:{b}:pr:sessA', 's1')"
call "HSET pr (put: idempotent retry)" "redis.call('HSET', 'weft:{b}:pr:sessA', 's1', 'p1 1')"
call "HINCRBY meta seq (put: order, and shutdown)" "redis.call('HINCRBY', keys[1], 'seq', '1')"
call "ZADD ready (put)" "redis.call('ZADD', 'weft:{b}:ready', 0, $m)"
call "HSET items (put: payload)" "redis.call('HSET', 'weft:{b}:items', $m, 'payload12345678')"
call "LLEN gtok (put: wake-ups)" "redis.call('LLEN', 'weft:{b}:gtok')"
call "ZPOPMIN ready (get)" "redis.call('ZPOPMIN', 'weft:{b}:ready', 1)"
call "ZRANK clients (get: lease)" "redis.call('ZRANK', 'weft:{b}:clients', 'sessA')"
call "HSET held (get: lease and replay record)" "redis.call('HSET', 'weft:{b}:held:sessA', $m, 's1 r1')"
call "HGET items (get: payload)" "redis.call('HGET', 'weft:{b}:items', '0000000000000001')"
call "HDEL held (ack: lease)" "redis.call('HDEL', 'weft:{b}:held:sessA', '0000000000000001')"
call "HDEL items (ack)" "redis.call('HDEL', 'weft:{b}:items', '0000000000000001')"
call "HLEN items (ack: join)" "redis.call('HLEN', 'weft:{b}:items')"
