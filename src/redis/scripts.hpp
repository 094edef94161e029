// src/redis/scripts.hpp: the Redis function library behind weft::redis queues
// (docs/redis.md, "Design").
//
// One library of Redis 7 functions, loaded with FUNCTION LOAD and run with FCALL. Its helpers
// are made once, when the library is loaded, not on every call as an EVAL script's would be.
// The library's name and its functions' carry the protocol version and a hash of this text
// (library_version()), so that clients of different weft builds sharing a server each run
// their own: `weft_p<protocol>_<hash>` (library_name()) with functions
// `weft_p<protocol>_<hash>_<name>`. The client that loads the library deletes those of
// older protocols (Client, load_library()): their clients are refused by every queue of
// this protocol, and a client still running one loads its own again when it finds it gone.
//
// Arguments of every function: keys[1] = the queue's meta hash "weft:{name}:meta" (declares
// the slot; the other keys' prefix is taken from it); args[1] = session id, args[2] = the
// queue's settings, as the client checked them against the queue's at init: its kind, 'f'
// (FIFO), 'l' (LIFO) or 'p' (priority), then maxsize, a space and the queue's generation
// ("f0 9c1e...", "p1000 07ab..."); the function's own arguments follow from args[3].
//
// The generation is a random id the client that makes the queue writes into meta at init.
// Every function but init refuses a call whose generation is not the queue's (a queue
// destroyed, or destroyed and made again, perhaps with other settings) with an error
// "WEFTGONE ...", before it writes anything: a client is bound to the one queue it opened;
// its kind, maxsize, receipts and put records mean nothing to another queue of the same
// name. The slow paths compare the generation with meta's (check()); the hot paths prove
// it with what they read anyway (a functions' writes are not undone by an error, so the
// proof comes before the first write that depends on the settings):
// - a put's HINCRBY of the sequence number, kept in meta's field "seq:<generation>": a
//   put of another generation finds no such field (HINCRBY returns 1; init starts it at 1)
//   and removes the field it made;
// - a get: the session is in `clients` (ZRANK), or it held an item it acknowledges: a
//   session is registered only by init or after check(), and `clients` and `held:*` go
//   with the queue (destroy()), so a session found there is one of this generation.
//
// Each call starts with begin(), which sets the library's per-call state (the locals below,
// reset on every call: Redis runs one function at a time). The shutdown state `sd` is read
// only by the paths that need it (shut()): a put learns it from the sequence number its
// HINCRBY returns (shutdown adds SD_MARK to it), and a get that finds an item needs it not.
//
// Slow paths (a caller about to wait, shutdown, stat, the heartbeat) run recover() and
// normalize() in full; the hot paths (a put, a get that finds an item, an ack) touch only the
// tokens their change can make useful: a put tops up the getters' tokens, a get the
// putters', an ack that finishes the last task the joiners'. A token list left longer than
// normalize() would make it costs a spurious wake-up at most (the woken caller's function
// normalizes); one left shorter could lose a wake-up, and no path leaves one shorter. A put
// leaves the joiners' token alone: a joiner it wakes for nothing finds unfinished tasks in
// its function, which normalizes.
//
// The unfinished tasks (put, neither acknowledged nor dropped) are the payloads in `items`:
// their count is HLEN, with no counter to keep in step.
//
// Items: member m = the put's sequence number, 16 digits, so that equal scores sort in put
// order; score 0 (FIFO), -m (LIFO) or the priority (kept in `score`). A receipt is
// m .. '@' .. the session that got it.
//
// Arguments of redis.call are strings where they can be: Redis 7.0 formats a Lua number with
// snprintf("%.17g").
#pragma once

#include <cstdint>
#include <string>

namespace weft::redis::detail::lua {

// The protocol version (PROTO in kLibrary): every client of one queue must speak the same.
// Raised whenever the keys' layout or meaning changes.
inline constexpr const char* kProtocol = "3";

// "@V@" stands for "p<kProtocol>_<library_version()>", "@P@" for kProtocol
// (library_source()).
inline constexpr const char* kLibrary = R"LUA(#!lua name=weft_@V@
local TOKENS = 64
-- The protocol version: the layout of the queue's keys and what the functions expect of
-- them. Stored in meta by the client that makes the queue; init refuses any other.
local PROTO = '@P@'
-- Added to `seq` by shutdown: a put's HINCRBY of `seq` returns at least this once the queue
-- is shut down. 2^52: sequence numbers stay below it, exact in a Lua number and 16 digits.
local SD_MARK = 4503599627370496
local SD_MARK_S = '4503599627370496'
local FIFO, LIFO, PRIO = 102, 108, 112  -- string.byte of 'f', 'l', 'p'

-- The standard functions the library calls, as locals: a global's lookup costs a function
-- call ~300 instructions more. Bound at the first call (bind()): the globals are not
-- reachable while the library loads.
local r_call, s_byte, s_find, s_format, s_match, s_sub, m_floor, m_max, m_min, t_sort
local to_num, to_str, i_pairs, t_unpack
local function bind()
  r_call, s_byte, s_find, s_format = redis.call, string.byte, string.find, string.format
  s_match, s_sub, m_floor, m_max, m_min = string.match, string.sub, math.floor, math.max, math.min
  t_sort, to_num, to_str, i_pairs, t_unpack = table.sort, tonumber, tostring, ipairs, unpack
end

-- Per call (begin()).
local K_META, P, C, kind, maxsize, LEASE, G, SEQ
local GTOK, PTOK, JTOK  -- the token lists of generation G (set_gen())
local proven  -- the caller's generation is the queue's
local sd, gone, now_ms  -- read when first needed (shut(), now())

local function refuse()
  error({err = 'WEFTGONE the queue was destroyed or made again since this client opened it'})
end

-- Refuses the call (an error reply; the caller has written nothing yet) unless the queue's
-- generation is the caller's.
local function check()
  if not proven then
    if r_call('HGET', K_META, 'gen') ~= G then refuse() end
    proven = true
  end
end

-- The caller's generation and the keys named by it: the sequence number's field and the
-- token lists (a client of an older generation, still blocked on its own list, takes no
-- token of this one).
local function set_gen(g)
  G, SEQ = g, 'seq:' .. g
  GTOK, PTOK, JTOK = P .. 'gtok:' .. g, P .. 'ptok:' .. g, P .. 'jtok:' .. g
end

-- Sets the per-call state from the arguments, and checks the generation unless `lazy`
-- (init: none yet; put and get: proven on the way, see above).
local function begin(keys, args, lazy)
  if not r_call then bind() end
  K_META = keys[1]
  P = s_sub(K_META, 1, -5)  -- "weft:{name}:meta" -> "weft:{name}:"
  C = args[1]
  local s = args[2]
  kind = s_byte(s)
  local sp = s_find(s, ' ', 2, true)
  maxsize = to_num(s_sub(s, 2, (sp or 0) - 1)) or 0
  set_gen(s_sub(s, (sp or #s) + 1))
  LEASE, sd, gone, now_ms, proven = nil, nil, nil, nil, false
  if not lazy then check() end
end

-- The shutdown state: 0 open, 1 shut down, 2 shut down immediately. `gone`: the queue has
-- no meta (never made, or destroyed): the slow paths then make no key.
local function shut()
  if sd == nil then
    local v = r_call('HGET', K_META, 'sd')
    gone = not v
    sd = to_num(v) or 0
  end
  return sd
end

-- Marks `seq` as shut down (once): every later put's HINCRBY returns SD_MARK or more.
local function mark_seq()
  if (to_num(r_call('HGET', K_META, SEQ)) or 0) < SD_MARK then
    r_call('HINCRBY', K_META, SEQ, SD_MARK_S)
  end
end

local function now()
  if not now_ms then
    local t = r_call('TIME')
    now_ms = to_num(t[1]) * 1000 + m_floor(to_num(t[2]) / 1000)
  end
  return now_ms
end

local function held(c) return P .. 'held:' .. c end
local function pr(c) return P .. 'pr:' .. c end

-- A receipt "<16-digit member>@<session>": member, session (nil when malformed). A client
-- sends the receipts of its own session as the member alone.
local function split(receipt)
  if #receipt == 16 then return receipt, C end
  if s_byte(receipt, 17) ~= 64 then return nil end  -- '@'
  return s_sub(receipt, 1, 16), s_sub(receipt, 18)
end

-- List k holds `have` tokens: pushes more until it holds `want`.
local function push_tokens(k, have, want)
  if have < want then
    local add = {}
    for i = have + 1, want do add[#add + 1] = '1' end
    r_call('RPUSH', k, t_unpack(add))
  end
end

-- Tops token list k up to min(n, TOKENS), n = |ready| (`room` nil) or room - |ready|;
-- |ready| is counted only when the list is short, and only when `ready` is not given.
local function top_up_lazy(k, ready, room)
  local have = r_call('LLEN', k)
  if have >= TOKENS then return end
  local n = ready or r_call('ZCARD', P .. 'ready')
  if room then n = m_max(room - n, 0) end
  push_tokens(k, have, m_min(n, TOKENS))
end

local function top_up(k, want)
  local have = r_call('LLEN', k)
  push_tokens(k, have, want)
  return have
end

local function adjust(k, want)
  local have = top_up(k, want)
  if have > want then
    if want == 0 then r_call('DEL', k) else r_call('LTRIM', k, 0, want - 1) end
  end
end

-- One DEL per key: in a slot being migrated, a command on several keys fails when some of
-- them are missing (TRYAGAIN, "non local key" inside a function), a command on one does not.
local function del(...)
  for _, k in i_pairs({...}) do r_call('DEL', k) end
end

local function score_of(m)
  if kind == PRIO then return r_call('HGET', P .. 'score', m) end
  if r_call('HEXISTS', P .. 'items', m) == 0 then return false end
  if kind == LIFO then return -to_num(m) end
  return 0
end

local function drop(m)
  r_call('HDEL', P .. 'items', m)
  if kind == PRIO then r_call('HDEL', P .. 'score', m) end
end

-- An item a dead or releasing session held goes back to `ready` (after shutdown(true): it
-- is dropped and counted as done).
local function requeue(m)
  local s = score_of(m)
  if not s then return end
  if shut() == 2 then
    drop(m)
  else
    r_call('ZADD', P .. 'ready', s, m)
  end
end

local function forget(c)
  for _, m in i_pairs(r_call('HKEYS', held(c))) do requeue(m) end
  del(held(c))
  r_call('ZREM', P .. 'clients', c)
end

-- The items session c holds from its get `tag` ("<slot> <request id>"), in the order that
-- get returned them (by score, then member).
local function leased_by(c, tag)
  local all = r_call('HGETALL', held(c))
  local ms = {}
  for i = 1, #all, 2 do
    if all[i + 1] == tag then ms[#ms + 1] = all[i] end
  end
  if #ms > 1 then
    local sc = {}
    for _, m in i_pairs(ms) do sc[m] = to_num(score_of(m)) or 0 end
    t_sort(ms, function(a, b)
      if sc[a] ~= sc[b] then return sc[a] < sc[b] end
      return a < b
    end)
  end
  return ms
end

-- Sessions whose lease expired (server clock) lose what they hold.
local function recover()
  local dead = r_call('ZRANGEBYSCORE', P .. 'clients', '-inf', now(), 'LIMIT', 0, 32)
  for _, d in i_pairs(dead) do
    if d ~= C then forget(d) end
  end
end

-- Renews the caller's lease (LEASE ms from now). A session that was forgotten starts afresh.
local function register()
  shut()
  if C == '' or gone then return end
  if r_call('ZADD', P .. 'clients', now() + to_num(LEASE), C) == 1 then
    del(held(C))
  end
end

-- Sets every token list from the state: getters' = min(ready, 64), putters' =
-- min(room, 64) (64 each once shut down), joiners' = 1 exactly when no task is unfinished.
-- The unfinished tasks are the items put and not acknowledged (nor dropped): the payloads.
local function normalize()
  local s = shut()
  if gone then return 0, 0 end
  local ready = r_call('ZCARD', P .. 'ready')
  if s > 0 then adjust(GTOK, TOKENS) else adjust(GTOK, m_min(ready, TOKENS)) end
  if maxsize > 0 then
    if s > 0 then adjust(PTOK, TOKENS)
    else adjust(PTOK, m_min(m_max(maxsize - ready, 0), TOKENS)) end
  end
  local uf = r_call('HLEN', P .. 'items')
  if uf == 0 then adjust(JTOK, 1) else adjust(JTOK, 0) end
  return ready, uf
end

-- Milliseconds until the server's state can change by itself: the earliest lease expiry.
local function wake_in()
  local e = r_call('ZRANGE', P .. 'clients', 0, 0, 'WITHSCORES')
  if #e == 0 then return -1 end
  return m_max(to_num(e[2]) - now(), 0) + 1
end

-- After acknowledgements: the joiners' token when no task is left.
local function join_token()
  if r_call('HLEN', P .. 'items') == 0 then
    local k = JTOK
    push_tokens(k, r_call('LLEN', k), 1)
  end
end

-- Acknowledges the receipts args[i0..]; returns how many were still unacknowledged (now
-- done) and whether the caller's session held one of them (then it is in `clients`: a
-- session's `held` hash exists only while it is registered). Idempotent: a receipt
-- already acknowledged counts 0. Unless `defer_join`, tops the joiners' token up when no
-- task is left; with it, the caller does (a get that leases an item knows some are left).
local function ack_from(args, i0, defer_join)
  if i0 > #args then return 0, false end
  local K_ITEMS = P .. 'items'
  local n = 0
  local mine = false
  local was_ready = false
  for i = i0, #args do
    local m, o = split(args[i])
    if m then
      local was_held = r_call('HDEL', held(o), m) == 1
      if was_held and o == C then
        mine = true
        proven = true
      end
      -- Held: the receipt is of this queue (held:* go with it). Not held: it may be of
      -- another, whose member means another item here.
      if not was_held then check() end
      if r_call('HDEL', K_ITEMS, m) == 1 then
        n = n + 1
        if kind == PRIO then r_call('HDEL', P .. 'score', m) end
        -- Not held by the receipt's session: it may be back in the queue (lease expired).
        if not was_held and r_call('ZREM', P .. 'ready', m) == 1 then was_ready = true end
      end
    end
  end
  if was_ready then
    normalize()
  elseif n > 0 and not defer_join then
    join_token()
  end
  return n, mine
end

-- init: args[2] = the settings without a generation, args[3] = lease ms, args[4] = a new
-- random generation. Stores the settings unless the queue has its own (the first client's),
-- with the protocol version (PROTO) and the generation of the client that makes the queue.
-- Returns {kind, maxsize, protocol, generation} as stored ("fifo", "lifo", "priority";
-- protocol '' for a queue made by a build that stored none); when the protocol is not
-- PROTO, the caller is not registered and nothing else changes.
local function init(keys, args)
  begin(keys, args, true)
  LEASE = to_num(args[3])
  local names = {[FIFO] = 'fifo', [LIFO] = 'lifo', [PRIO] = 'priority'}
  if r_call('HSETNX', K_META, 'kind', names[kind]) == 1 then
    r_call('HSET', K_META, 'proto', PROTO, 'gen', args[4])
  end
  local proto = r_call('HGET', K_META, 'proto') or ''
  if proto ~= PROTO then
    local v = r_call('HMGET', K_META, 'kind', 'maxsize')
    return {v[1] or '', v[2] or '', proto, ''}
  end
  -- The client's decimal text, not tostring(maxsize): Lua formats a number with "%.14g",
  -- 1e+14 for 10^14.
  r_call('HSETNX', K_META, 'maxsize', s_match(args[2], '^.(%d+)'))
  r_call('HSETNX', K_META, 'sd', '0')
  local v = r_call('HMGET', K_META, 'kind', 'maxsize', 'proto', 'gen')
  set_gen(v[4])
  proven = true
  r_call('HSETNX', K_META, SEQ, '1')  -- 1: see put
  kind = s_byte(v[1])
  maxsize = to_num(v[2]) or 0  -- not a number: the client refuses what it reads
  -- The mark follows `sd`, also for a queue whose `sd` was written without it.
  if shut() > 0 then mark_seq() end
  recover()
  register()
  normalize()
  return v
end

-- put: args[3] = "<flags><index> <connection slot> <put request id>": flags 'r' when the
-- attempt before may have run (its reply lost), 'w' when the caller was woken by a putters'
-- token (it passes the wake-up on while room is left: a list holds at most 64 tokens, and
-- more putters may wait); index: that of the first item below in the request. Then the
-- payloads from args[4], each followed by its priority for a priority queue. (One argument
-- for four: each argument of an FCALL costs the server more than the match that splits
-- them.)
-- Returns n when all n were put (or had been, by an earlier attempt of the same request),
-- {'S'} when shut down, {'F', wake_in, n} when full after n of them.
-- Idempotent retry: `pr:<session>` keeps, per connection slot, the slot's last put request
-- that got items in: "<request id>" when all of them are in, "<request id> <count>" when
-- the first count are. Only a retry reads it: a slot carries one request at a time, so its
-- last one is the only one a retry can be of. The hash expires the client's dedupe window
-- after the session's last heartbeat (renew); a put that makes it sets an hour, the default
-- window, until then (a hash that has an expiry keeps it).
local function put(keys, args)
  begin(keys, args, true)
  local flags, at, slot, preq = s_match(args[3], '^(%a*)(%d+) (%S+) (%S+)$')
  local retry = flags ~= '' and s_find(flags, 'r', 1, true)
  local woken = flags ~= '' and s_find(flags, 'w', 1, true)
  local K_PR = pr(C)
  local had = 0
  if retry then
    local rec = r_call('HGET', K_PR, slot)
    if rec == preq then had = math.huge
    elseif rec and s_sub(rec, 1, #preq + 1) == preq .. ' ' then
      had = to_num(s_sub(rec, #preq + 2))
    end
  end
  local idx = to_num(at)
  local first = idx
  local K_READY = P .. 'ready'
  local K_ITEMS = P .. 'items'
  local n = 0
  local ready = nil
  local full, closed = false, false
  if maxsize > 0 then ready = r_call('ZCARD', K_READY) end
  local step = kind == PRIO and 2 or 1
  for i = 4, #args, step do
    if idx >= had then
      if maxsize > 0 and ready >= maxsize then
        full = true
        break
      end
      local q = r_call('HINCRBY', K_META, SEQ, '1')
      if q == 1 then
        -- No such field: this is not the caller's queue. Nothing else was written.
        r_call('HDEL', K_META, SEQ)
        refuse()
      end
      proven = true
      if q >= SD_MARK then
        closed = true
        break
      end
      local m = s_format('%016d', q)
      local s = '0'
      if kind == LIFO then s = '-' .. m
      elseif kind == PRIO then
        s = args[i + 1]
        r_call('HSET', P .. 'score', m, s)
      end
      r_call('ZADD', K_READY, s, m)
      r_call('HSET', K_ITEMS, m, args[i])
      if ready then ready = ready + 1 end
    end
    n = n + 1
    idx = idx + 1
  end
  check()  -- when no item was added: before the writes below
  if closed or (full and shut() > 0) then
    normalize()
    return {'S'}
  end
  -- The request's items before idx are in: recorded when this run added some.
  if idx > m_max(first, had) then
    local v = preq
    if full then v = preq .. ' ' .. idx end
    -- NX: a hash the heartbeat gave the client's window keeps it.
    if r_call('HSET', K_PR, slot, v) == 1 then r_call('PEXPIRE', K_PR, '3600000', 'NX') end
  end
  if full then
    recover()
    normalize()
    return {'F', wake_in(), n}
  end
  top_up_lazy(GTOK, ready, nil)
  if woken and maxsize > 0 then top_up_lazy(PTOK, ready, maxsize) end
  return n
end

-- get: args[3] = "<flags><count> <lease ms> <connection slot> <request id>": flags 'r' when
-- the request may have run before (its reply lost: the items the session holds from this
-- request are returned again), 'w' when the caller was woken by a getters' token (it
-- passes the wake-up on while items are left: a list holds at most 64 tokens, and more
-- getters may wait); count: at most this many items. The slot and request id are the
-- request's tag. args[4..] = receipts to acknowledge first, as `ack` does (the client's
-- pending task_done()s).
-- Returns {'OK', member1, payload1, score1, ...} (a receipt is member@session),
-- {'S'} when shut down and empty, {'E', wake_in} when empty. Each leased item is recorded
-- in `held:<session>` with the tag of the get that leased it (one HSET per item, the lease
-- and the replay record in one).
local function get(keys, args)
  begin(keys, args, true)
  local flags, want, lease, tag = s_match(args[3], '^(%a*)(%d+) (%d+) (.+)$')
  LEASE = lease
  local retry = flags ~= '' and s_find(flags, 'r', 1, true)
  local woken = flags ~= '' and s_find(flags, 'w', 1, true)
  -- An item leased below leaves a task unfinished: the joiners' token waits for that.
  local acked, mine = ack_from(args, 4, true)
  local K_READY = P .. 'ready'
  local K_ITEMS = P .. 'items'
  local out = {'OK'}
  -- Leased only by a live session (one that recovery forgot registers again), of this
  -- generation: a session in `clients` is (see check()). ZRANK, not ZSCORE: an integer
  -- reply, where a score is formatted with snprintf and parsed back. Not needed when the
  -- session held an item it acknowledged above.
  local registered = mine or r_call('ZRANK', P .. 'clients', C)
  if not registered then check() end
  if retry then
    if acked > 0 then join_token() end
    local ms = leased_by(C, tag)
    if #ms > 0 then
      for _, w in i_pairs(ms) do
        out[#out + 1] = w
        out[#out + 1] = r_call('HGET', K_ITEMS, w)
        out[#out + 1] = score_of(w)
      end
      return out
    end
  end
  local got = r_call('ZPOPMIN', K_READY, want)
  local recovered = false
  if #got == 0 then
    -- Before deciding to wait: items of dead sessions come back first.
    recover()
    recovered = true
    got = r_call('ZPOPMIN', K_READY, want)
  end
  if #got == 0 then
    normalize()  -- the joiners' token too, for what was acknowledged above
    if shut() > 0 then return {'S'} end
    return {'E', wake_in()}
  end
  if not registered then register() end
  local HELD = held(C)
  for i = 1, #got, 2 do
    local m = got[i]
    r_call('HSET', HELD, m, tag)
    out[#out + 1] = m
    out[#out + 1] = r_call('HGET', K_ITEMS, m)
    out[#out + 1] = got[i + 1]
  end
  if woken then top_up_lazy(GTOK, nil, nil) end
  if recovered then
    normalize()  -- what recover() put back may be for other waiters too
  elseif maxsize > 0 then
    -- After a shutdown too: the putters it woke each normalize (64 tokens) in their put.
    top_up_lazy(PTOK, nil, maxsize)
  end
  return out
end

-- ack: args[3..] = receipts. Returns how many were still unacknowledged (now done).
local function ack(keys, args)
  begin(keys, args)
  return ack_from(args, 3)
end

-- release: args[3..] = receipts of items this session holds: back to the queue.
local function release(keys, args)
  begin(keys, args)
  for i = 3, #args do
    local m, o = split(args[i])
    if m and o == C and r_call('HDEL', held(C), m) == 1 then requeue(m) end
  end
  normalize()
  return 1
end

-- join: returns {uf, wake_in}.
local function join(keys, args)
  begin(keys, args)
  recover()
  local _, uf = normalize()
  return {uf, wake_in()}
end

-- stat: returns {ready, uf, sd, leased, maxsize, sessions}.
local function stat(keys, args)
  begin(keys, args)
  recover()
  local ready, uf = normalize()
  -- maxsize as stored (decimal text): a Lua number above 2^53 is not exact.
  local max = r_call('HGET', K_META, 'maxsize')
  return {ready, uf, shut(), uf - ready, max, r_call('ZCARD', P .. 'clients')}
end

-- shutdown: args[3] = "<flags><immediate> <request id> <keep ms>": immediate '1' or '0';
-- flags 'r' when the attempt before may have run (its reply lost). Returns the payloads
-- removed, in get order.
-- Idempotent retry: only one immediate shutdown of a queue can remove items (after it
-- nothing can be ready: puts are refused, a dead session's items are dropped). It records
-- them in the list `sdo`: "<session> <request id>", then the payloads; the list expires
-- `keep` ms later (longer than the client retries), or goes when that session leaves. A
-- retry of that request returns them again (one LRANGE). A retry that finds no record of
-- its own runs again, and removes nothing: its first run, if it ran, removed nothing.
local function shutdown(keys, args)
  begin(keys, args)
  local flags, what, id, keep = s_match(args[3], '^(%a*)(%d) (%S+) (%d+)$')
  local imm = what == '1'
  local K_SDO = P .. 'sdo'
  if imm and flags ~= '' and r_call('LINDEX', K_SDO, 0) == C .. ' ' .. id then
    return r_call('LRANGE', K_SDO, 1, -1)
  end
  local want = imm and 2 or 1
  if shut() < want then
    sd = want
    r_call('HSET', K_META, 'sd', to_str(want))
  end
  mark_seq()
  local out = {}
  if imm then
    local K_READY = P .. 'ready'
    for _, m in i_pairs(r_call('ZRANGE', K_READY, 0, -1)) do
      out[#out + 1] = r_call('HGET', P .. 'items', m)
      drop(m)
    end
    r_call('DEL', K_READY)
    if #out > 0 then
      r_call('RPUSH', K_SDO, C .. ' ' .. id)
      -- 1000 at a time: unpack() of a long table exceeds Lua's stack.
      for i = 1, #out, 1000 do r_call('RPUSH', K_SDO, t_unpack(out, i, m_min(i + 999, #out))) end
      r_call('PEXPIRE', K_SDO, keep)
    end
  end
  recover()
  normalize()
  return out
end

-- renew (heartbeat): args[3] = lease ms, args[4] = dedupe window ms (the session's put
-- records live that long after its last heartbeat), args[5..] = tags of gets whose caller
-- gave up: their items go back to the queue. Returns 1.
local function renew(keys, args)
  begin(keys, args)
  LEASE = to_num(args[3])
  recover()
  register()
  r_call('PEXPIRE', pr(C), args[4])
  for i = 5, #args do
    for _, m in i_pairs(leased_by(C, args[i])) do
      r_call('HDEL', held(C), m)
      requeue(m)
    end
  end
  normalize()
  return 1
end

-- leave: the session ends; its unacknowledged items go back to the queue, its put records
-- go (no put of its can be retried any more).
local function leave(keys, args)
  begin(keys, args)
  forget(C)
  del(pr(C))
  local K_SDO = P .. 'sdo'
  local owner = r_call('LINDEX', K_SDO, 0)
  if owner and s_sub(owner, 1, #C + 1) == C .. ' ' then del(K_SDO) end
  normalize()
  return 1
end

-- destroy: deletes every key of the queue (sessions' keys included), meta last: a destroy
-- cut short leaves meta, and the next destroy finishes it. Refused when meta holds another
-- generation; without meta (a destroy whose reply was lost, retried; one cut short before
-- meta went) it deletes what is left and succeeds. Returns 1.
local function destroy(keys, args)
  begin(keys, args, true)
  local g = r_call('HGET', K_META, 'gen')
  if g and g ~= G then refuse() end
  for _, c in i_pairs(r_call('ZRANGE', P .. 'clients', 0, -1)) do
    del(held(c), pr(c))
  end
  del(P .. 'ready', P .. 'items', P .. 'score', P .. 'clients', GTOK, PTOK, JTOK, P .. 'sdo',
      K_META)
  return 1
end

local F = 'weft_@V@_'
-- Every function but put may run when the server is out of memory (maxmemory reached under
-- noeviction): they remove, read or renew what exists, so that consumers can drain a full
-- server (a lease renewed, a session registered, a get's record of what it leased: a few
-- bytes each). Redis refuses a put there with an -OOM error (the client's OutOfMemory).
local function fn(name, callback, flags)
  redis.register_function{function_name = F .. name, callback = callback, flags = flags}
end
local OOM_OK = {'allow-oom'}
fn('init', init, OOM_OK)
fn('put', put, {})
fn('get', get, OOM_OK)
fn('ack', ack, OOM_OK)
fn('release', release, OOM_OK)
fn('join', join, OOM_OK)
fn('stat', stat, OOM_OK)
fn('shutdown', shutdown, OOM_OK)
fn('renew', renew, OOM_OK)
fn('leave', leave, OOM_OK)
fn('destroy', destroy, OOM_OK)
)LUA";

// The library's text version: 16 hex digits of the FNV-1a hash of kLibrary.
inline std::string library_version() {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char* p = kLibrary; *p != '\0'; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string v(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) v[static_cast<std::size_t>(i)] = kHex[h & 15];
  return v;
}

// The library's name: "weft_p<protocol>_<text version>".
inline std::string library_name() {
  return std::string("weft_p") + kProtocol + "_" + library_version();
}

// The text FUNCTION LOAD takes: kLibrary with its version filled in.
inline std::string library_source() {
  const std::string v = std::string("p") + kProtocol + "_" + library_version();
  std::string s = kLibrary;
  for (std::size_t at = s.find("@V@"); at != std::string::npos; at = s.find("@V@", at))
    s.replace(at, 3, v);
  s.replace(s.find("@P@"), 3, kProtocol);
  return s;
}

// The name FCALL takes for the library's function `name` ("put", "get" ...).
inline std::string function_name(const char* name) {
  return library_name() + "_" + name;
}

}  // namespace weft::redis::detail::lua
