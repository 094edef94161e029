// src/redis/scripts.hpp: the Lua scripts behind weft::redis queues (docs/redis.md, "Design").
//
// Every script is the common prelude followed by its body. Arguments: KEYS[1] = the queue's
// meta hash (declares the slot); ARGV[1] = key prefix "weft:{name}:", ARGV[2] = session id,
// ARGV[3] = lease in ms; the body's own arguments follow from ARGV[4].
//
// The prelude only defines; each body does what it needs. Slow paths (a caller about to
// wait, shutdown, stat, the heartbeat) run recover() and normalize() in full; the hot paths
// (a put, a get that finds an item, an ack) touch only the tokens their change can make
// useful: a put tops up the getters' tokens, a get the putters', an ack that finishes the
// last task the joiners'. A token list left longer than normalize() would make it costs a
// spurious wake-up at most (the woken caller's script normalizes); one left shorter could
// lose a wake-up, and no path leaves one shorter. A put leaves the joiners' token alone:
// a joiner it wakes for nothing finds unfinished tasks in its script, which normalizes.
//
// The unfinished tasks (put, neither acknowledged nor dropped) are the payloads in `items`:
// their count is HLEN, with no counter to keep in step.
//
// Items: member m = the put's sequence number, 16 digits, so that equal scores sort in put
// order; score 0 (FIFO), -m (LIFO) or the priority (kept in `score`). A receipt is
// m .. '@' .. the session that got it.
#pragma once

namespace weft::redis::detail::lua {

inline constexpr const char* kPrelude = R"LUA(
local P = ARGV[1]
local C = ARGV[2]
local K_META = KEYS[1]
local meta = redis.call('HMGET', K_META, 'maxsize', 'sd', 'kind')
local maxsize = tonumber(meta[1]) or 0
local sd = tonumber(meta[2]) or 0
local kind = meta[3]
local TOKENS = 64

-- List k holds `have` tokens: pushes more until it holds `want`.
local function push_tokens(k, have, want)
  if have < want then
    local add = {}
    for i = have + 1, want do add[#add + 1] = '1' end
    redis.call('RPUSH', k, unpack(add))
  end
end

-- Tops token list k up to min(n, TOKENS), n = |ready| (`room` nil) or room - |ready|;
-- |ready| is counted only when the list is short, and only when `ready` is not given.
local function top_up_lazy(k, ready, room)
  local have = redis.call('LLEN', k)
  if have >= TOKENS then return end
  local n = ready or redis.call('ZCARD', P .. 'ready')
  if room then n = math.max(room - n, 0) end
  push_tokens(k, have, math.min(n, TOKENS))
end

-- The helpers of the slow paths (a caller about to wait, recovery, normalization, the lease
-- clock), made by lib() on the first call and returned as one table. A put or a get that
-- finds what it came for makes none: every closure a script makes costs the server
-- instructions on every run, in proportion to what it closes over. make_lib closes over
-- three constants; it takes kind, maxsize and sd as they are when lib() is first called
-- (init and shutdown set theirs first).
local function make_lib(kind, maxsize, sd, push_tokens)
local H = {}
local LEASE = tonumber(ARGV[3])
local K_READY = P .. 'ready'
local K_ITEMS = P .. 'items'
local K_SCORE = P .. 'score'
local K_CLIENTS = P .. 'clients'
local K_GT = P .. 'gtok'
local K_PT = P .. 'ptok'
local K_JT = P .. 'jtok'
H.K_READY, H.K_ITEMS, H.K_SCORE, H.K_CLIENTS = K_READY, K_ITEMS, K_SCORE, K_CLIENTS
H.K_GT, H.K_PT, H.K_JT = K_GT, K_PT, K_JT
local function held(c) return P .. 'held:' .. c end
local function pr(c) return P .. 'pr:' .. c end
H.held, H.pr = held, pr

function H.split(receipt)
  return string.match(receipt, '^(%d+)@(.*)$')
end

local now_ms = nil
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end

-- One DEL per key: in a slot being migrated, a command on several keys fails when some of
-- them are missing (TRYAGAIN, "non local key" inside a script), a command on one does not.
local function del(...)
  for _, k in ipairs({...}) do redis.call('DEL', k) end
end
H.del = del

local function score_of(m)
  if kind == 'priority' then return redis.call('HGET', K_SCORE, m) end
  if redis.call('HEXISTS', K_ITEMS, m) == 0 then return false end
  if kind == 'lifo' then return -tonumber(m) end
  return 0
end
H.score_of = score_of

local function drop(m)
  redis.call('HDEL', K_ITEMS, m)
  if kind == 'priority' then redis.call('HDEL', K_SCORE, m) end
end
H.drop = drop

-- An item a dead or releasing session held goes back to `ready` (after shutdown(true): it
-- is dropped and counted as done).
local function requeue(m)
  local s = score_of(m)
  if not s then return end
  if sd == 2 then
    drop(m)
  else
    redis.call('ZADD', K_READY, s, m)
  end
end
H.requeue = requeue

local function forget(c)
  for _, m in ipairs(redis.call('HKEYS', held(c))) do requeue(m) end
  del(held(c))
  redis.call('ZREM', K_CLIENTS, c)
end
H.forget = forget

-- The items session c holds from its get `tag` ("<slot> <request id>"), in the order that
-- get returned them (by score, then member).
function H.leased_by(c, tag)
  local all = redis.call('HGETALL', held(c))
  local ms = {}
  for i = 1, #all, 2 do
    if all[i + 1] == tag then ms[#ms + 1] = all[i] end
  end
  if #ms > 1 then
    local sc = {}
    for _, m in ipairs(ms) do sc[m] = tonumber(score_of(m)) or 0 end
    table.sort(ms, function(a, b)
      if sc[a] ~= sc[b] then return sc[a] < sc[b] end
      return a < b
    end)
  end
  return ms
end

-- Sessions whose lease expired (server clock) lose what they hold.
function H.recover()
  local dead = redis.call('ZRANGEBYSCORE', K_CLIENTS, '-inf', now(), 'LIMIT', 0, 32)
  for _, d in ipairs(dead) do
    if d ~= C then forget(d) end
  end
end

-- Renews the caller's lease. A session that was forgotten starts afresh.
function H.register()
  if C == '' or not kind then return end
  if redis.call('ZADD', K_CLIENTS, now() + LEASE, C) == 1 then
    del(held(C))
  end
end

local function top_up(k, want)
  local have = redis.call('LLEN', k)
  push_tokens(k, have, want)
  return have
end
H.top_up = top_up

local function adjust(k, want)
  local have = top_up(k, want)
  if have > want then
    if want == 0 then redis.call('DEL', k) else redis.call('LTRIM', k, 0, want - 1) end
  end
end

-- Sets every token list from the state: getters' = min(ready, 64), putters' =
-- min(room, 64) (64 each once shut down), joiners' = 1 exactly when no task is unfinished.
-- The unfinished tasks are the items put and not acknowledged (nor dropped): the payloads.
function H.normalize()
  if not kind then return 0, 0 end
  local ready = redis.call('ZCARD', K_READY)
  if sd > 0 then adjust(K_GT, TOKENS) else adjust(K_GT, math.min(ready, TOKENS)) end
  if maxsize > 0 then
    if sd > 0 then adjust(K_PT, TOKENS)
    else adjust(K_PT, math.min(math.max(maxsize - ready, 0), TOKENS)) end
  end
  local uf = redis.call('HLEN', K_ITEMS)
  if uf == 0 then adjust(K_JT, 1) else adjust(K_JT, 0) end
  return ready, uf
end

-- Milliseconds until the server's state can change by itself: the earliest lease expiry.
function H.wake_in()
  local e = redis.call('ZRANGE', K_CLIENTS, 0, 0, 'WITHSCORES')
  if #e == 0 then return -1 end
  return math.max(tonumber(e[2]) - now(), 0) + 1
end

return H
end

local H = nil
local function lib()
  if not H then H = make_lib(kind, maxsize, sd, push_tokens) end
  return H
end

-- Acknowledges the receipts ARGV[i0..]: returns how many were still unacknowledged (now
-- done). Idempotent: a receipt already acknowledged counts 0.
local function ack_from(i0)
  if i0 > #ARGV then return 0 end
  local K_ITEMS = P .. 'items'
  local n = 0
  local was_ready = false
  for i = i0, #ARGV do
    local m, o = string.match(ARGV[i], '^(%d+)@(.*)$')
    if m then
      local was_held = redis.call('HDEL', P .. 'held:' .. o, m) == 1
      if redis.call('HDEL', K_ITEMS, m) == 1 then
        n = n + 1
        if kind == 'priority' then redis.call('HDEL', P .. 'score', m) end
        -- Not held by the receipt's session: it may be back in the queue (lease expired).
        if not was_held and redis.call('ZREM', P .. 'ready', m) == 1 then was_ready = true end
      end
    end
  end
  if n > 0 and redis.call('HLEN', K_ITEMS) == 0 then
    local k = P .. 'jtok'
    push_tokens(k, redis.call('LLEN', k), 1)
  end
  if was_ready then lib().normalize() end
  return n
end
)LUA";

// init: ARGV[4] = kind ("fifo", "lifo", "priority"), ARGV[5] = maxsize.
// Returns {kind, maxsize} as stored (the first client's).
inline constexpr const char* kInit = R"LUA(
redis.call('HSETNX', K_META, 'kind', ARGV[4])
redis.call('HSETNX', K_META, 'maxsize', ARGV[5])
redis.call('HSETNX', K_META, 'sd', 0)
redis.call('HSETNX', K_META, 'seq', 0)
local v = redis.call('HMGET', K_META, 'kind', 'maxsize')
kind = v[1]
maxsize = tonumber(v[2])
local h = lib()
h.recover()
h.register()
h.normalize()
return v
)LUA";

// put: ARGV[4] = dedupe window ms, ARGV[5] = '1' when the caller was woken by a putters'
// token (it passes the wake-up on while room is left: a list holds at most 64 tokens, and
// more putters may wait), ARGV[6] = connection slot, ARGV[7] = put request id, ARGV[8] =
// the index in that request of the first item below, with an 'r' in front when the
// attempt before may have run (its reply lost), then (payload, priority) pairs.
// Returns {'OK', n} when all n were put (or had been, by an earlier attempt of the same
// request), {'S'} when shut down, {'F', wake_in, n} when full after n of them.
// Idempotent retry: `pr:<session>` keeps, per connection slot, the slot's last put request
// that got items in: "<request id>" when all of them are in, "<request id> <count>" when
// the first count are. Only a retry reads it: a slot carries one request at a time, so its
// last one is the only one a retry can be of. The hash expires `window` after the
// session's last heartbeat.
// Arguments of redis.call are strings where they can be: Redis 7.0 formats a Lua number
// with snprintf("%.17g").
inline constexpr const char* kPut = R"LUA(
local window = ARGV[4]
local woken = ARGV[5] == '1'
local slot, preq, at = ARGV[6], ARGV[7], ARGV[8]
if sd > 0 then
  lib().normalize()
  return {'S'}
end
local K_PR = P .. 'pr:' .. C
local had = 0
if string.byte(at) == 114 then  -- 'r'
  at = string.sub(at, 2)
  local rec = redis.call('HGET', K_PR, slot)
  if rec == preq then had = math.huge
  elseif rec and string.sub(rec, 1, #preq + 1) == preq .. ' ' then
    had = tonumber(string.sub(rec, #preq + 2))
  end
end
local idx = tonumber(at)
local first = idx
local K_READY = P .. 'ready'
local K_ITEMS = P .. 'items'
local n = 0
local ready = nil
local full = false
if maxsize > 0 then ready = redis.call('ZCARD', K_READY) end
for i = 9, #ARGV, 2 do
  if idx >= had then
    if maxsize > 0 and ready >= maxsize then
      full = true
      break
    end
    local m = string.format('%016d', redis.call('HINCRBY', K_META, 'seq', '1'))
    local s = '0'
    if kind == 'lifo' then s = '-' .. m
    elseif kind == 'priority' then
      s = ARGV[i + 1]
      redis.call('HSET', P .. 'score', m, s)
    end
    redis.call('ZADD', K_READY, s, m)
    redis.call('HSET', K_ITEMS, m, ARGV[i])
    if ready then ready = ready + 1 end
  end
  n = n + 1
  idx = idx + 1
end
-- The request's items before idx are in: recorded when this run added some.
if idx > math.max(first, had) then
  local v = preq
  if full then v = preq .. ' ' .. idx end
  if redis.call('HSET', K_PR, slot, v) == 1 then redis.call('PEXPIRE', K_PR, window) end
end
if full then
  local h = lib()
  h.recover()
  h.normalize()
  return {'F', h.wake_in(), n}
end
top_up_lazy(P .. 'gtok', ready, nil)
if woken and maxsize > 0 then top_up_lazy(P .. 'ptok', ready, maxsize) end
return {'OK', n}
)LUA";

// get: ARGV[4] = connection slot, ARGV[5] = request id, ARGV[6] = at most this many items,
// ARGV[7] = '0' on the request's first attempt (nothing to replay), otherwise the items the
// session holds from this request are looked up; ARGV[8] = '1'
// when the caller was woken by a getters' token (it passes the wake-up on while items are
// left: a list holds at most 64 tokens, and more getters may wait); ARGV[9..] = receipts to
// acknowledge first, as `ack` does (the client's pending task_done()s).
// Returns {'OK', receipt1, payload1, score1, ...}, {'S'} when shut down and empty,
// {'E', wake_in} when empty. A retry of a get that leased items returns them again: each
// leased item is recorded in `held:<session>` with the get that leased it, "<slot> <request
// id>" (one HSET per item, the lease and the replay record in one).
inline constexpr const char* kGet = R"LUA(
local slot, req, want = ARGV[4], ARGV[5], ARGV[6]
ack_from(9)
local K_READY = P .. 'ready'
local K_ITEMS = P .. 'items'
local HELD = P .. 'held:' .. C
local tag = slot .. ' ' .. req
local out = {'OK'}
if ARGV[7] ~= '0' then
  local h = lib()
  local ms = h.leased_by(C, tag)
  if #ms > 0 then
    for _, w in ipairs(ms) do
      out[#out + 1] = w .. '@' .. C
      out[#out + 1] = redis.call('HGET', K_ITEMS, w)
      out[#out + 1] = h.score_of(w)
    end
    return out
  end
end
local got = redis.call('ZPOPMIN', K_READY, want)
local recovered = false
if #got == 0 then
  -- Before deciding to wait: items of dead sessions come back first.
  lib().recover()
  recovered = true
  got = redis.call('ZPOPMIN', K_READY, want)
end
if #got == 0 then
  lib().normalize()
  if sd > 0 then return {'S'} end
  return {'E', lib().wake_in()}
end
-- Leased only by a live session (one that recovery forgot registers again). ZRANK, not
-- ZSCORE: an integer reply, where a score is formatted with snprintf and parsed back.
if not redis.call('ZRANK', P .. 'clients', C) then lib().register() end
for i = 1, #got, 2 do
  local m = got[i]
  redis.call('HSET', HELD, m, tag)
  out[#out + 1] = m .. '@' .. C
  out[#out + 1] = redis.call('HGET', K_ITEMS, m)
  out[#out + 1] = got[i + 1]
end
if ARGV[8] == '1' then top_up_lazy(P .. 'gtok', nil, nil) end
if recovered then
  lib().normalize()  -- what recover() put back may be for other waiters too
elseif maxsize > 0 then
  if sd > 0 then lib().top_up(P .. 'ptok', TOKENS)
  else top_up_lazy(P .. 'ptok', nil, maxsize) end
end
return out
)LUA";

// ack: ARGV[4..] = receipts. Returns how many were still unacknowledged (now done).
inline constexpr const char* kAck = R"LUA(
return ack_from(4)
)LUA";

// release: ARGV[4..] = receipts of items this session holds: back to the queue.
inline constexpr const char* kRelease = R"LUA(
local h = lib()
for i = 4, #ARGV do
  local m, o = h.split(ARGV[i])
  if m and o == C and redis.call('HDEL', h.held(C), m) == 1 then h.requeue(m) end
end
h.normalize()
return 1
)LUA";

// join: returns {uf, wake_in}.
inline constexpr const char* kJoin = R"LUA(
local h = lib()
h.recover()
local ready, uf = h.normalize()
return {uf, h.wake_in()}
)LUA";

// stat: returns {ready, uf, sd, leased, maxsize, sessions}.
inline constexpr const char* kStat = R"LUA(
local h = lib()
h.recover()
local ready, uf = h.normalize()
return {ready, uf, sd, uf - ready, maxsize, redis.call('ZCARD', h.K_CLIENTS)}
)LUA";

// shutdown: ARGV[4] = '1' for immediate. Returns the payloads removed, in get order.
inline constexpr const char* kShutdown = R"LUA(
local imm = ARGV[4] == '1'
local want = imm and 2 or 1
if sd < want then sd = want redis.call('HSET', K_META, 'sd', sd) end
local h = lib()
local out = {}
if imm then
  local all = redis.call('ZRANGE', h.K_READY, 0, -1)
  for _, m in ipairs(all) do
    out[#out + 1] = redis.call('HGET', h.K_ITEMS, m)
    h.drop(m)
  end
  redis.call('DEL', h.K_READY)
end
h.recover()
h.normalize()
return out
)LUA";

// renew (heartbeat): ARGV[4] = dedupe window ms (the session's put records live that long
// after its last heartbeat), ARGV[5..] = (slot, request id) pairs of gets whose caller
// gave up: their items go back to the queue. Returns 1.
inline constexpr const char* kRenew = R"LUA(
local h = lib()
h.recover()
h.register()
redis.call('PEXPIRE', h.pr(C), ARGV[4])
for i = 5, #ARGV, 2 do
  for _, m in ipairs(h.leased_by(C, ARGV[i] .. ' ' .. ARGV[i + 1])) do
    redis.call('HDEL', h.held(C), m)
    h.requeue(m)
  end
end
h.normalize()
return 1
)LUA";

// leave: the session ends; its unacknowledged items go back to the queue, its put records
// go (no put of its can be retried any more).
inline constexpr const char* kLeave = R"LUA(
local h = lib()
h.forget(C)
redis.call('DEL', h.pr(C))
h.normalize()
return 1
)LUA";

// destroy: deletes every key of the queue (sessions' keys included). Returns 1.
inline constexpr const char* kDestroy = R"LUA(
local h = lib()
for _, c in ipairs(redis.call('ZRANGE', h.K_CLIENTS, 0, -1)) do
  h.del(h.held(c), h.pr(c))
end
h.del(K_META, h.K_READY, h.K_ITEMS, h.K_SCORE, h.K_CLIENTS, h.K_GT, h.K_PT, h.K_JT)
return 1
)LUA";

}  // namespace weft::redis::detail::lua
