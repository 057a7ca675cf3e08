-- The prelude of every script: the key layout, the clock, and the helpers that keep
-- the counters, the ready index and the claims consistent. See src/scripts.rs for the
-- layout and the invariants.
--
-- KEYS[1]: the crawl's key prefix, "trawl:{crawl}:".
-- ARGV[1..5]: worker name, clock offset (ms, for tests), claim ttl (ms), max
-- attempts, and the seen set's layout "buckets:cap". Each script's own arguments
-- start at ARGV[6].
--
-- Every number handed to redis.call goes through S(): Lua's own number-to-string
-- conversion is not exact for large integers (queue scores reach 2^52).

local P = KEYS[1]
local W = ARGV[1]
local TTL = tonumber(ARGV[3])
local MAXATT = tonumber(ARGV[4])
local NB, CAP = string.match(ARGV[5], '^(%d+):(%d+)$')
NB, CAP = tonumber(NB), tonumber(CAP)

local function S(n) return string.format('%.0f', n) end
-- A reply field as a number: a missing field (false) is 0.
local function num(x) if x then return tonumber(x) or 0 end return 0 end

-- The server's clock in ms, plus the offset tests use to age claims.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
end
local NOW = clock()

local function hk(h) return P .. 'h:' .. h end
local function qk(h) return P .. 'q:' .. h end
local function lk(w, h) return P .. 'l:' .. w .. ':' .. h end
local function wk(w) return P .. 'w:' .. w end
local function wck(w) return P .. 'wc:' .. w end
-- The ready index: 'open' or 'timed', global (o == '') or of the worker o.
local function ixk(kind, o)
  if o == '' then return P .. kind end
  return P .. kind .. ':' .. o
end
local CLAIMS = P .. 'claims'
local COUNTS = P .. 'counts'
local ACTIVE = P .. 'active'
local HOSTIDS = P .. 'hostids'
local META = P .. 'meta'
local WORKERS = P .. 'workers'

-- Hosts whose counts, claim or politeness this script changed: place_touched() puts
-- each where it belongs in the ready index before the script returns.
local TOUCHED = {}

-- The seen set: bucket from the fingerprint's top 32 bits, field its low 8 bytes,
-- value attempts * 4 + state. A bucket is a chain of hashes of at most CAP fields
-- each (so that each stays listpack-encoded): 's:{b}', then 's:{b}:1', ... A level
-- is created only once the one before it is full, and fields are never deleted, so a
-- lookup goes down the chain only past full levels.
--
-- Returns the key that holds the fingerprint (and true), or the key a new one goes
-- to (and false), and the field.
local function seen_find(fp)
  local hi = struct.unpack('>I4', fp)
  local base = P .. 's:' .. S(hi % NB)
  local f = fp:sub(9, 16)
  local key, level = base, 0
  while true do
    if redis.call('HEXISTS', key, f) == 1 then return key, true, f end
    if redis.call('HLEN', key) < CAP then return key, false, f end
    level = level + 1
    key = base .. ':' .. level
  end
end
local function seen_set(fp, state, attempts)
  local key, _, f = seen_find(fp)
  redis.call('HSET', key, f, S(attempts * 4 + state))
end

-- Counter fields by state: 0 queued, 1 leased, 2 done, 3 failed.
local ST = { [0] = 'q', [1] = 'l', [2] = 'd', [3] = 'f' }
local function count(h, from, to, n)
  n = n or 1
  if from then
    redis.call('HINCRBY', COUNTS, ST[from], -n)
    redis.call('HINCRBY', hk(h), ST[from], -n)
  end
  if to then
    redis.call('HINCRBY', COUNTS, ST[to], n)
    redis.call('HINCRBY', hk(h), ST[to], n)
  end
  TOUCHED[h] = true
end

-- A URL record (src/codec.rs): fp 16, priority 1, depth 2, attempts 4, url length 4,
-- url, data.
local function rec_fp(r) return r:sub(1, 16) end
local function rec_att(r)
  local a = struct.unpack('>I4', r, 20)
  return a
end
local function rec_with_att(r, a) return r:sub(1, 19) .. struct.pack('>I4', a) .. r:sub(24) end

-- Appends a record to its host's queue: ordered by class, then depth, then a per-host
-- sequence number (first in, first out).
local function push(h, r)
  local s = redis.call('HINCRBY', hk(h), 's', 1)
  local depth = struct.unpack('>I2', r, 18)
  local score = r:byte(17) * 1125899906842624 + depth * 17179869184 + s
  redis.call('ZADD', qk(h), S(score), r)
end

-- The id of a host key, created (numbered from 0, as sled does) when new.
local function host_id(key)
  local id = redis.call('HGET', HOSTIDS, key)
  if id then return id end
  id = S(redis.call('HINCRBY', META, 'next_host', 1) - 1)
  redis.call('HSET', HOSTIDS, key, id)
  redis.call('HSET', hk(id), 'k', key)
  return id
end

-- Adds a URL unless it was seen (or is in `fresh`, this script's earlier additions).
local function add_url(fp, key, r, fresh)
  if fresh[fp] then return false end
  local b, known, f = seen_find(fp)
  if known then return false end
  fresh[fp] = true
  local h = host_id(key)
  redis.call('HSET', b, f, '0')
  push(h, r)
  count(h, nil, 0)
  return true
end

-- Ends the claim of worker o on host h (the caller has dealt with its leases).
local function drop_claim(h, o)
  redis.call('HDEL', hk(h), 'o', 'rp')
  redis.call('ZREM', CLAIMS, h)
  redis.call('SREM', wck(o), h)
  TOUCHED[h] = true
end

-- Puts worker w's leases of host h back in the queue in lease order, attempts kept;
-- those that used up MAXATT are failed instead (quarantined). Returns both numbers.
local function return_leases(w, h)
  local all = redis.call('HGETALL', lk(w, h))
  local items = {}
  for i = 1, #all, 2 do
    local v = all[i + 1]
    local seq = struct.unpack('>d', v)
    items[#items + 1] = { seq, v:sub(17) }
  end
  table.sort(items, function(a, b) return a[1] < b[1] end)
  local requeued, quarantined = 0, 0
  for _, it in ipairs(items) do
    local r = it[2]
    local a = rec_att(r)
    if a >= MAXATT then
      seen_set(rec_fp(r), 3, a)
      count(h, 1, 3)
      quarantined = quarantined + 1
    else
      seen_set(rec_fp(r), 0, a)
      count(h, 1, 0)
      push(h, r)
      requeued = requeued + 1
    end
  end
  redis.call('DEL', lk(w, h))
  return requeued, quarantined
end

-- Reaps host h's claim if it has run out: its owner's leases go back to the queue.
-- Returns the owner left ('' for none).
local function reap_host(h)
  local o = redis.call('HGET', hk(h), 'o')
  if not o then
    redis.call('ZREM', CLAIMS, h)
    return ''
  end
  local exp = redis.call('ZSCORE', CLAIMS, h)
  if exp and tonumber(exp) > NOW then return o end
  return_leases(o, h)
  drop_claim(h, o)
  return ''
end

-- Reaps claims that have run out, the oldest first, a bounded number per call.
local function reap()
  local due = redis.call('ZRANGEBYSCORE', CLAIMS, '-inf', S(NOW), 'LIMIT', 0, 64)
  for _, h in ipairs(due) do reap_host(h) end
end

-- Puts host h where its counts, claim and politeness say: in the active set while it
-- has queued or leased URLs (a claim on a host with neither is dropped), and, while
-- it has queued URLs, in the open (time 0 or passed) or timed index of its owner, or
-- in the global one when unclaimed. Fields ix and ra say where it is now.
local function place(h)
  local f = redis.call('HMGET', hk(h), 'q', 'l', 'o', 'ix', 'ra', 'pn', 'pr')
  local q, l = num(f[1]), num(f[2])
  local o = f[3] or ''
  if q + l == 0 then
    redis.call('SREM', ACTIVE, h)
    if o ~= '' then
      drop_claim(h, o)
      o = ''
    end
  else
    redis.call('SADD', ACTIVE, h)
  end
  local want = false
  if q > 0 then want = S(math.max(num(f[6]), num(f[7]))) end
  local cur_ix, cur_ra = f[4] or '', f[5]
  if cur_ra == want and (not want or cur_ix == o) then return end
  if cur_ra then
    if cur_ra == '0' then
      redis.call('ZREM', ixk('open', cur_ix), h)
    else
      redis.call('ZREM', ixk('timed', cur_ix), h)
    end
  end
  if want then
    if want == '0' then
      redis.call('ZADD', ixk('open', o), h, h)
    else
      redis.call('ZADD', ixk('timed', o), want, h)
    end
    redis.call('HSET', hk(h), 'ix', o, 'ra', want)
  else
    redis.call('HDEL', hk(h), 'ix', 'ra')
  end
end

local function place_touched()
  local hs = {}
  for h in pairs(TOUCHED) do hs[#hs + 1] = h end
  for _, h in ipairs(hs) do place(h) end
  TOUCHED = {}
end

-- The answer of this worker's last op if `op` is its id (a retry after a lost reply).
local function last_op(op)
  local f = redis.call('HMGET', wk(W), 'op', 'or')
  if f[1] == op then return f[2] or '' end
  return false
end
local function store_op(op, result)
  redis.call('HSET', wk(W), 'op', op, 'or', result)
end
-- Writes the server lost: this worker's op ids and ack numbers reach the server in
-- order, and `seen` ("op:seq") is the last of each that this process saw stored. The
-- worker's hash holding others means the server lost writes it had answered (it was
-- restarted from an AOF written with appendfsync everysec, or from an older copy), or
-- another process uses this worker's name. Returns the reason, or nil.
local function rewound(seen)
  local op, seq = string.match(seen, '^(%d+):(%d+)$')
  local f = redis.call('HMGET', wk(W), 'op', 'seq')
  if num(f[1]) == tonumber(op) and num(f[2]) == tonumber(seq) then return nil end
  return 'the store holds op ' .. S(num(f[1])) .. ' and ack ' .. S(num(f[2]))
    .. ' of this worker, which saw op ' .. op .. ' and ack ' .. seq
    .. ' stored (the server lost writes it had answered, or another process uses this worker name)'
end
-- The most hosts a worker may claim: ceil(H / W) + 1, H the hosts with queued or
-- leased URLs and W the live workers (a heartbeat within the ttl).
local function fair_cap()
  local hosts = redis.call('SCARD', ACTIVE)
  local workers = redis.call('ZCOUNT', WORKERS, S(NOW - TTL), '+inf')
  if workers < 1 then workers = 1 end
  return math.ceil(hosts / workers) + 1
end
-- A host this worker still claims as it stops or restarts: the run that held it may
-- have started a request just before, and the pace it kept went with it. It started a
-- request only while its claim lasted past the request's end, so the claim's expiry
-- is a safe next allowed time (a timeout and the claim's margin after any request).
-- Not for a host whose release is pending: the worker stored its pace as it let go,
-- and started nothing since (leasing again cancels the release).
local function hold_pace(h)
  if redis.call('HEXISTS', hk(h), 'rp') == 1 then return end
  local exp = redis.call('ZSCORE', CLAIMS, h)
  if exp and redis.call('HGET', hk(h), 'o') == W
      and tonumber(exp) > num(redis.call('HGET', hk(h), 'pn')) then
    redis.call('HSET', hk(h), 'pn', S(tonumber(exp)))
  end
end
-- Ends every claim of this worker as it stops or restarts: its leases go back to their
-- queues (hold_pace keeps each host's pace). Returns the URLs requeued and quarantined.
local function give_back()
  local requeued, quarantined = 0, 0
  for _, h in ipairs(redis.call('SMEMBERS', wck(W))) do
    local a, b = return_leases(W, h)
    requeued = requeued + a
    quarantined = quarantined + b
    hold_pace(h)
    drop_claim(h, W)
  end
  return requeued, quarantined
end
-- Records written by every worker: the count a shared page limit is held to.
local PAGES = 'pg'
-- The records written and the URLs leased, by every worker.
local function tally()
  local c = redis.call('HMGET', COUNTS, PAGES, 'l')
  return num(c[1]), num(c[2])
end

