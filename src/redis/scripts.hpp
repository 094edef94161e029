// src/redis/scripts.hpp: the Lua scripts behind weft::redis queues (docs/redis.md, "Design").
//
// Every script is the common prelude followed by its body. Arguments: KEYS[1] = the queue's
// meta hash (declares the slot); ARGV[1] = key prefix "weft:{name}:", ARGV[2] = session id,
// ARGV[3] = lease in ms; the body's own arguments follow from ARGV[4].
//
// The prelude reads the server's clock, recovers dead sessions and renews the caller's own
// lease. Every body ends with normalize(), which sets the wake-token lists from the state the
// script leaves (docs/redis.md, "Waking").
#pragma once

namespace weft::redis::detail::lua {

inline constexpr const char* kPrelude = R"LUA(
local P = ARGV[1]
local C = ARGV[2]
local LEASE = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local K_META = KEYS[1]
local K_READY = P .. 'ready'
local K_ITEMS = P .. 'items'
local K_SCORE = P .. 'score'
local K_OWNER = P .. 'owner'
local K_CLIENTS = P .. 'clients'
local K_GT = P .. 'gtok'
local K_PT = P .. 'ptok'
local K_JT = P .. 'jtok'
local TOKENS = 64
local function held(c) return P .. 'held:' .. c end
local function grec(c) return P .. 'gr:' .. c end
local meta = redis.call('HMGET', K_META, 'maxsize', 'sd', 'uf', 'kind')
local maxsize = tonumber(meta[1]) or 0
local sd = tonumber(meta[2]) or 0
local kind = meta[4]

local function requeue(m)
  local s = redis.call('HGET', K_SCORE, m)
  redis.call('HDEL', K_OWNER, m)
  if not s then return end
  if sd == 2 then
    redis.call('HDEL', K_ITEMS, m)
    redis.call('HDEL', K_SCORE, m)
    redis.call('HINCRBY', K_META, 'uf', -1)
  else
    redis.call('ZADD', K_READY, s, m)
  end
end

local function forget(c)
  for _, m in ipairs(redis.call('SMEMBERS', held(c))) do requeue(m) end
  redis.call('DEL', held(c), grec(c))
  redis.call('ZREM', K_CLIENTS, c)
end

local dead = redis.call('ZRANGEBYSCORE', K_CLIENTS, '-inf', now, 'LIMIT', 0, 32)
for _, d in ipairs(dead) do
  if d ~= C then forget(d) end
end
if C ~= '' and kind then
  -- Renew; a session that had expired was forgotten above (its items requeued) and
  -- starts afresh here.
  if redis.call('ZADD', K_CLIENTS, now + LEASE, C) == 1 then
    redis.call('DEL', held(C), grec(C))
  end
end

local function adjust(k, want)
  local have = redis.call('LLEN', k)
  if have < want then
    local add = {}
    for i = have + 1, want do add[#add + 1] = '1' end
    redis.call('RPUSH', k, unpack(add))
  elseif have > want then
    if want == 0 then redis.call('DEL', k) else redis.call('LTRIM', k, 0, want - 1) end
  end
end

local function normalize()
  if not kind then return 0, 0 end
  local ready = redis.call('ZCARD', K_READY)
  if sd > 0 then adjust(K_GT, TOKENS) else adjust(K_GT, math.min(ready, TOKENS)) end
  if maxsize > 0 then
    if sd > 0 then adjust(K_PT, TOKENS)
    else adjust(K_PT, math.min(math.max(maxsize - ready, 0), TOKENS)) end
  end
  local uf = tonumber(redis.call('HGET', K_META, 'uf')) or 0
  if uf == 0 then adjust(K_JT, 1) else adjust(K_JT, 0) end
  return ready, uf
end

-- Milliseconds until the server's state can change by itself: the earliest session expiry.
local function wake_in()
  local e = redis.call('ZRANGE', K_CLIENTS, 0, 0, 'WITHSCORES')
  if #e == 0 then return -1 end
  return math.max(tonumber(e[2]) - now, 0) + 1
end
)LUA";

// init: ARGV[4] = kind ("fifo", "lifo", "priority"), ARGV[5] = maxsize.
// Returns {kind, maxsize} as stored (the first client's).
inline constexpr const char* kInit = R"LUA(
redis.call('HSETNX', K_META, 'kind', ARGV[4])
redis.call('HSETNX', K_META, 'maxsize', ARGV[5])
redis.call('HSETNX', K_META, 'sd', 0)
redis.call('HSETNX', K_META, 'uf', 0)
redis.call('HSETNX', K_META, 'seq', 0)
local v = redis.call('HMGET', K_META, 'kind', 'maxsize')
normalize()
return v
)LUA";

// put: ARGV[4] = dedupe window ms, then (put id, payload, priority) triples.
// Returns {'OK', n} when all n were put (or had been, by an earlier attempt with the same
// ids), {'S'} when shut down, {'F', wake_in, n} when full after n of them.
inline constexpr const char* kPut = R"LUA(
local window = tonumber(ARGV[4])
if sd > 0 then normalize() return {'S'} end
local n = 0
local i = 5
while i <= #ARGV do
  local pid = P .. 'pid:' .. ARGV[i]
  if not redis.call('GET', pid) then
    if maxsize > 0 and redis.call('ZCARD', K_READY) >= maxsize then
      normalize()
      return {'F', wake_in(), n}
    end
    local seq = redis.call('HINCRBY', K_META, 'seq', 1)
    local m = string.format('%016d', seq)
    local s
    if kind == 'lifo' then s = -seq elseif kind == 'priority' then s = ARGV[i + 2] else s = 0 end
    redis.call('ZADD', K_READY, s, m)
    redis.call('HSET', K_ITEMS, m, ARGV[i + 1])
    redis.call('HSET', K_SCORE, m, s)
    redis.call('HINCRBY', K_META, 'uf', 1)
    redis.call('SET', pid, m, 'PX', window)
  end
  n = n + 1
  i = i + 3
end
normalize()
return {'OK', n}
)LUA";

// get: ARGV[4] = connection slot, ARGV[5] = request id, ARGV[6] = at most this many items.
// Returns {'OK', m1, payload1, score1, ...}, {'S'} when shut down and empty, {'E', wake_in}
// when empty. A retry with the request id of the slot's last get returns that get's items.
inline constexpr const char* kGet = R"LUA(
local slot, req, want = ARGV[4], ARGV[5], tonumber(ARGV[6])
local out = {'OK'}
local rec = redis.call('HGET', grec(C), slot)
if rec then
  local first = true
  local same = false
  for w in string.gmatch(rec, '%S+') do
    if first then same = (w == req) first = false
    elseif same and redis.call('SISMEMBER', held(C), w) == 1 then
      out[#out + 1] = w
      out[#out + 1] = redis.call('HGET', K_ITEMS, w)
      out[#out + 1] = redis.call('HGET', K_SCORE, w)
    end
  end
  if same then return out end
end
local got = redis.call('ZPOPMIN', K_READY, want)
if #got == 0 then
  redis.call('HDEL', grec(C), slot)
  normalize()
  if sd > 0 then return {'S'} end
  return {'E', wake_in()}
end
local names = {req}
for i = 1, #got, 2 do
  local m = got[i]
  redis.call('SADD', held(C), m)
  redis.call('HSET', K_OWNER, m, C)
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', K_ITEMS, m)
  out[#out + 1] = got[i + 1]
  names[#names + 1] = m
end
redis.call('HSET', grec(C), slot, table.concat(names, ' '))
normalize()
return out
)LUA";

// ack: ARGV[4..] = receipts. Returns how many were still unacknowledged (now done).
inline constexpr const char* kAck = R"LUA(
local n = 0
for i = 4, #ARGV do
  local m = ARGV[i]
  if redis.call('HDEL', K_ITEMS, m) == 1 then
    n = n + 1
    redis.call('ZREM', K_READY, m)
    redis.call('HDEL', K_SCORE, m)
    local o = redis.call('HGET', K_OWNER, m)
    if o then
      redis.call('SREM', held(o), m)
      redis.call('HDEL', K_OWNER, m)
    end
  end
end
if n > 0 then redis.call('HINCRBY', K_META, 'uf', -n) end
normalize()
return n
)LUA";

// join: returns {uf, wake_in}.
inline constexpr const char* kJoin = R"LUA(
local ready, uf = normalize()
return {uf, wake_in()}
)LUA";

// stat: returns {ready, uf, sd, leased, maxsize, sessions}.
inline constexpr const char* kStat = R"LUA(
local ready, uf = normalize()
return {ready, uf, sd, redis.call('HLEN', K_OWNER), maxsize, redis.call('ZCARD', K_CLIENTS)}
)LUA";

// shutdown: ARGV[4] = '1' for immediate. Returns the payloads removed, in get order.
inline constexpr const char* kShutdown = R"LUA(
local imm = ARGV[4] == '1'
local want = imm and 2 or 1
if sd < want then sd = want redis.call('HSET', K_META, 'sd', sd) end
local out = {}
if imm then
  local all = redis.call('ZRANGE', K_READY, 0, -1)
  for _, m in ipairs(all) do
    out[#out + 1] = redis.call('HGET', K_ITEMS, m)
    redis.call('HDEL', K_ITEMS, m)
    redis.call('HDEL', K_SCORE, m)
  end
  redis.call('DEL', K_READY)
  if #all > 0 then redis.call('HINCRBY', K_META, 'uf', -#all) end
end
normalize()
return out
)LUA";

// renew (heartbeat): ARGV[4..] = (slot, request id) pairs of gets whose caller gave up:
// their items go back to the queue. Returns 1.
inline constexpr const char* kRenew = R"LUA(
for i = 4, #ARGV, 2 do
  local rec = redis.call('HGET', grec(C), ARGV[i])
  if rec then
    local first = true
    local same = false
    for w in string.gmatch(rec, '%S+') do
      if first then same = (w == ARGV[i + 1]) first = false
      elseif same and redis.call('SREM', held(C), w) == 1 then requeue(w) end
    end
    if same then redis.call('HDEL', grec(C), ARGV[i]) end
  end
end
normalize()
return 1
)LUA";

// leave: the session ends; its unacknowledged items go back to the queue.
inline constexpr const char* kLeave = R"LUA(
forget(C)
normalize()
return 1
)LUA";

// destroy: deletes every key of the queue (sessions' keys included). Returns 1.
inline constexpr const char* kDestroy = R"LUA(
for _, c in ipairs(redis.call('ZRANGE', K_CLIENTS, 0, -1)) do
  redis.call('DEL', held(c), grec(c))
end
redis.call('DEL', K_META, K_READY, K_ITEMS, K_SCORE, K_OWNER, K_CLIENTS, K_GT, K_PT, K_JT)
return 1
)LUA";

}  // namespace weft::redis::detail::lua
