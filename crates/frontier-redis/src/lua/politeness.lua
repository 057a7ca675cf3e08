-- set_politeness: ARGV[6] host id, ARGV[7..11] next allowed, retry-after, backoff
-- level, consecutive failures, adaptive millirate. Moves the host in the ready index.
-- Returns 1, or 0 for an unknown host or one another worker claims (a worker that
-- lost its claim must not overwrite the pace its new owner keeps).
local h = ARGV[6]
local f = redis.call('HMGET', hk(h), 'k', 'o')
if not f[1] then return 0 end
if f[2] and f[2] ~= '' and f[2] ~= W then return 0 end
redis.call('HSET', hk(h), 'pn', ARGV[7], 'pr', ARGV[8], 'pb', ARGV[9], 'pc', ARGV[10], 'pa', ARGV[11])
TOUCHED[h] = true
place_touched()
return 1
