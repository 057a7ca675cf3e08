-- set_politeness: ARGV[6] host id, ARGV[7..11] next allowed, retry-after, backoff
-- level, consecutive failures, adaptive millirate. Moves the host in the ready index.
--
-- The two times only move forward: a write with an earlier one keeps the stored one.
-- A worker's commit stage and its scheduler letting the host go each read the pace
-- and write it back, in either order, and neither may undo the other's wait (a lost
-- Retry-After would let the next owner in early). Any worker may push them forward:
-- a Retry-After is the server's answer, whoever asked. The rest of the state (backoff,
-- failures, adaptive rate) is written only by the worker that claims the host, or
-- while no one does (a worker that lost its claim must not overwrite what the new
-- owner keeps). Returns 1, 2 when only the times were taken (another worker claims
-- the host), or 0 for an unknown host.
local h = ARGV[6]
local f = redis.call('HMGET', hk(h), 'k', 'o', 'pn', 'pr')
if not f[1] then return 0 end
local pn = S(math.max(num(f[3]), tonumber(ARGV[7])))
local pr = S(math.max(num(f[4]), tonumber(ARGV[8])))
local reply = 1
if f[2] and f[2] ~= '' and f[2] ~= W then
  redis.call('HSET', hk(h), 'pn', pn, 'pr', pr)
  reply = 2
else
  redis.call('HSET', hk(h), 'pn', pn, 'pr', pr, 'pb', ARGV[9], 'pc', ARGV[10], 'pa', ARGV[11])
end
TOUCHED[h] = true
place_touched()
return reply
