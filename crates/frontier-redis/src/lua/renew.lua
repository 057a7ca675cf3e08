-- renew: ARGV[6..] pairs (host id, epoch) this worker believes it holds. Heartbeats
-- the worker, reaps claims that ran out (its own included), and extends each listed
-- claim still held with that epoch. Returns the listed hosts that are lost.
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
return lost
