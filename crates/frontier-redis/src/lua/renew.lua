-- renew: ARGV[6..] pairs (host id, epoch) this worker believes it holds. Heartbeats
-- the worker, reaps claims that ran out (its own included), and extends each listed
-- claim still held with that epoch. Returns {the listed hosts that are lost, the
-- hosts to hand over}: when this worker holds more than the fairness cap allows now
-- (workers joined since it claimed them), those past the cap with the most queued
-- URLs, which it gives up once their leases are in.
redis.call('ZADD', WORKERS, S(NOW), W)
-- Workers silent for 100 ttls are long gone (their own hashes stay: a worker of that
-- name may come back).
redis.call('ZREMRANGEBYSCORE', WORKERS, '-inf', S(NOW - 100 * TTL))
reap()
local lost = {}
for i = 6, #ARGV, 2 do
  local h, e = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', hk(h), 'o', 'e')
  if f[1] == W and f[2] == e then
    redis.call('ZADD', CLAIMS, S(NOW + TTL), h)
  else
    lost[#lost + 1] = h
  end
end
place_touched()
local mine = redis.call('SMEMBERS', wck(W))
local over = #mine - fair_cap()
local give = {}
if over > 0 then
  local by = {}
  for _, h in ipairs(mine) do by[#by + 1] = { h, num(redis.call('HGET', hk(h), 'q')) } end
  table.sort(by, function(x, y) return x[2] > y[2] end)
  for i = 1, over do give[i] = by[i][1] end
end
return { lost, give }
