-- ready_scan: ARGV[6] after ('' for none), ARGV[7] now (ms, the caller's clock),
-- ARGV[8] max. Reaps claims that ran out, moves the hosts whose time has come from
-- the timed to the open index (the global one and this worker's), and returns
-- {hosts, ready, next ('' for none)}: up to max hosts of both open indexes in id
-- order after `after`, wrapping around.
reap()
place_touched()
local now = ARGV[7]
local function advance(o)
  local t = ixk('timed', o)
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', t, '-inf', now)) do
    redis.call('ZREM', t, h)
    redis.call('ZADD', ixk('open', o), h, h)
    redis.call('HSET', hk(h), 'ra', '0')
  end
end
advance('')
advance(W)
local max = tonumber(ARGV[8])
local from = 0
if ARGV[6] ~= '' then from = tonumber(ARGV[6]) + 1 end
local g, m = ixk('open', ''), ixk('open', W)
local out = {}
-- Appends up to n hosts of both indexes with ids in [lo, hi), in id order.
local function take(lo, hi, n)
  local a = redis.call('ZRANGEBYSCORE', g, lo, hi, 'LIMIT', 0, S(n))
  local b = redis.call('ZRANGEBYSCORE', m, lo, hi, 'LIMIT', 0, S(n))
  local i, k = 1, 1
  while n > 0 and (i <= #a or k <= #b) do
    if k > #b or (i <= #a and tonumber(a[i]) < tonumber(b[k])) then
      out[#out + 1] = a[i]
      i = i + 1
    else
      out[#out + 1] = b[k]
      k = k + 1
    end
    n = n - 1
  end
end
take(S(from), '+inf', max)
if #out < max and from > 0 then take('-inf', '(' .. S(from), max - #out) end
local ready = redis.call('ZCARD', g) + redis.call('ZCARD', m)
local next = false
for _, o in ipairs({ '', W }) do
  local t = redis.call('ZRANGE', ixk('timed', o), 0, 0, 'WITHSCORES')
  if t[2] and (not next or tonumber(t[2]) < next) then next = tonumber(t[2]) end
end
if next then next = S(next) else next = '' end
return { out, ready, next }
