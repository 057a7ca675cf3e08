-- ready_hosts: every host with queued URLs that this worker may lease (unclaimed or
-- its own), as a flat list of (host id, earliest time).
local out = {}
for _, o in ipairs({ '', W }) do
  for _, h in ipairs(redis.call('ZRANGE', ixk('open', o), 0, -1)) do
    local f = redis.call('HMGET', hk(h), 'pn', 'pr')
    out[#out + 1] = h
    out[#out + 1] = S(math.max(num(f[1]), num(f[2])))
  end
  local t = redis.call('ZRANGE', ixk('timed', o), 0, -1, 'WITHSCORES')
  for i = 1, #t, 2 do
    out[#out + 1] = t[i]
    out[#out + 1] = S(tonumber(t[i + 1]))
  end
end
return out
