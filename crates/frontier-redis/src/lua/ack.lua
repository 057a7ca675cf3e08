-- ack: ARGV[6] ack seq, ARGV[7] the op last seen stored, ARGV[8] the number of
-- records the acks wrote, ARGV[9] na, then na quintuples (fingerprint, host id, claim
-- epoch, outcome 'd'/'f'/'r', reason); then nl and nl triples (fingerprint, host key,
-- record) of discovered links; then nc and nc pairs (sink, checkpoint).
--
-- Everything is checked before the first write; on any failure nothing is applied and
-- the answer is {'lost', reason}. Otherwise {'ok', new fingerprints (concatenated),
-- hosts whose claim ended, records written, URLs leased} (the last two by every
-- worker). A retry of the stored seq answers {'retry', new fingerprints, {}, ...}
-- without applying anything again.
local w = wk(W)
local seq = tonumber(ARGV[6])
local stored = num(redis.call('HGET', w, 'seq'))
if stored == seq then
  local pg, l = tally()
  return { 'retry', redis.call('HGET', w, 'af') or '', {}, pg, l }
end
if stored ~= seq - 1 then
  return { 'lost', 'the store holds ack ' .. S(stored) .. ' of this worker and this is ack ' .. S(seq)
    .. ' (the server lost acks it had answered, or another process uses this worker name)' }
end
local why = rewound(ARGV[7] .. ':' .. S(seq - 1))
if why then return { 'lost', why } end
local na = tonumber(ARGV[9])
local acks = {}
local twice = {}
local j = 10
for _ = 1, na do
  local fp, h, epoch = ARGV[j], ARGV[j + 1], tonumber(ARGV[j + 2])
  if twice[fp] then return { 'lost', 'a lease of host ' .. h .. ' is acked twice in one call' } end
  twice[fp] = true
  local v = redis.call('HGET', lk(W, h), fp)
  if not v then
    return { 'lost', 'a lease of host ' .. h .. ' is no longer held (its claim ran out and the URL went back to the queue)' }
  end
  local _, le = struct.unpack('>dd', v)
  local hf = redis.call('HMGET', hk(h), 'o', 'e')
  local exp = redis.call('ZSCORE', CLAIMS, h)
  if hf[1] ~= W or num(hf[2]) ~= epoch or le ~= epoch or not exp or tonumber(exp) <= NOW then
    return { 'lost', 'the claim on host ' .. h .. ' (epoch ' .. S(epoch) .. ') is no longer held' }
  end
  acks[#acks + 1] = { fp, h, ARGV[j + 3], v:sub(17) }
  j = j + 5
end
-- Outcomes: the lease goes, the URL is done, failed, or back at the end of its class.
for _, a in ipairs(acks) do
  local fp, h, outcome, r = a[1], a[2], a[3], a[4]
  redis.call('HDEL', lk(W, h), fp)
  local att = rec_att(r)
  local st = 0
  if outcome == 'd' then
    st = 2
  elseif outcome == 'f' or att >= MAXATT then
    st = 3
  end
  seen_set(fp, st, att)
  count(h, 1, st)
  if st == 0 then push(h, r) end
end
-- A release asked for while leases were out happens with the last of them.
for _, a in ipairs(acks) do
  local h = a[2]
  if redis.call('HEXISTS', hk(h), 'rp') == 1 and redis.call('EXISTS', lk(W, h)) == 0 then
    drop_claim(h, W)
  end
end
local fresh = {}
local new = {}
local nl = tonumber(ARGV[j])
j = j + 1
for _ = 1, nl do
  if add_url(ARGV[j], ARGV[j + 1], ARGV[j + 2], fresh) then new[#new + 1] = ARGV[j] end
  j = j + 3
end
local nc = tonumber(ARGV[j])
j = j + 1
for _ = 1, nc do
  redis.call('HSET', w, 'c:' .. ARGV[j], ARGV[j + 1])
  j = j + 2
end
place_touched()
local released, listed = {}, {}
for _, a in ipairs(acks) do
  local h = a[2]
  if not listed[h] and redis.call('HGET', hk(h), 'o') ~= W then
    listed[h] = true
    released[#released + 1] = h
  end
end
local af = table.concat(new)
redis.call('HSET', w, 'seq', S(seq), 'af', af)
local records = tonumber(ARGV[8])
if records > 0 then redis.call('HINCRBY', COUNTS, PAGES, S(records)) end
-- For status: this worker's records, its last ack, and its rate over two windows of
-- at least 10 s each (records 'rn' since 'rt'; the window before, 'pn' since 'pt').
local rf = redis.call('HMGET', w, 'rn', 'rt')
local rn, rt = num(rf[1]) + records, num(rf[2])
if rt == 0 then rt = NOW end
if NOW - rt >= 10000 then
  redis.call('HSET', w, 'pn', S(rn), 'pt', S(rt), 'rn', '0', 'rt', S(NOW))
else
  redis.call('HSET', w, 'rn', S(rn), 'rt', S(rt))
end
redis.call('HINCRBY', w, 'n', S(records))
redis.call('HSET', w, 'at', S(NOW))
local pg, l = tally()
return { 'ok', af, released, pg, l }
