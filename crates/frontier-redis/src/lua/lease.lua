-- lease: ARGV[6] op id, ARGV[7] the op and ack last seen stored ("op:seq"), ARGV[8]
-- host id, ARGV[9] max, ARGV[10] the page limit shared by every worker ('' for none).
-- Claims the host for this worker if it is unclaimed (or its claim ran out) and the
-- fairness cap allows, then pops up to max records, and no more than the page limit
-- less the records written and the URLs leased, by every worker. Returns {'ok',
-- epoch, records written, URLs leased, records...}, or {'other'} (another worker
-- holds the host), {'cap'} (this worker holds its share of hosts), {'empty'}
-- (nothing queued, or unknown host), {'limit', records written, URLs leased} (no room
-- under the page limit), {'lost', reason} (the server lost this worker's writes).
-- A retry of the same op returns the same leases.
local op, h, max = ARGV[6], ARGV[8], tonumber(ARGV[9])
local limit = tonumber(ARGV[10])
local w = wk(W)
local done = last_op(op)
if done then
  local pg, l = tally()
  local out = { 'ok', (struct.unpack('>d', done)), pg, l }
  local lh = redis.call('HGET', w, 'oh')
  for i = 9, #done, 16 do
    local v = redis.call('HGET', lk(W, lh), done:sub(i, i + 15))
    if v then out[#out + 1] = v:sub(17) end
  end
  return out
end
local why = rewound(ARGV[7])
if why then return { 'lost', why } end
reap()
local hf = redis.call('HMGET', hk(h), 'k', 'q', 'e')
if not hf[1] then return { 'empty' } end
local o = reap_host(h)
if o ~= '' and o ~= W then
  place_touched()
  return { 'other' }
end
if num(hf[2]) == 0 or max <= 0 then
  place_touched()
  return { 'empty' }
end
if limit then
  local pg, l = tally()
  local room = limit - pg - l
  if room <= 0 then
    place_touched()
    return { 'limit', pg, l }
  end
  if room < max then max = room end
end
local epoch
if o == '' then
  if redis.call('SCARD', wck(W)) >= fair_cap() then
    place_touched()
    return { 'cap' }
  end
  epoch = redis.call('HINCRBY', hk(h), 'e', 1)
  redis.call('HSET', hk(h), 'o', W)
  redis.call('ZADD', CLAIMS, S(NOW + TTL), h)
  redis.call('SADD', wck(W), h)
  TOUCHED[h] = true
else
  -- Leasing again cancels a deferred release.
  epoch = num(redis.call('HGET', hk(h), 'e'))
  redis.call('HDEL', hk(h), 'rp')
end
local popped = redis.call('ZPOPMIN', qk(h), S(max))
local k = #popped / 2
local seq = redis.call('HINCRBY', w, 'ls', k) - k
local fps, recs = {}, {}
for i = 1, #popped, 2 do
  local r = popped[i]
  local a = rec_att(r) + 1
  r = rec_with_att(r, a)
  seq = seq + 1
  redis.call('HSET', lk(W, h), rec_fp(r), struct.pack('>dd', seq, epoch) .. r)
  seen_set(rec_fp(r), 1, a)
  recs[#recs + 1] = r
  fps[#fps + 1] = rec_fp(r)
end
count(h, 0, 1, k)
place_touched()
local pg, l = tally()
local out = { 'ok', epoch, pg, l }
for _, r in ipairs(recs) do out[#out + 1] = r end
store_op(op, struct.pack('>d', epoch) .. table.concat(fps))
redis.call('HSET', w, 'oh', h)
return out
