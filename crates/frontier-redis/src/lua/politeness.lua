-- set_politeness: ARGV[6] host id, ARGV[7..11] next allowed, retry-after, backoff
-- level, consecutive failures, adaptive millirate. Moves the host in the ready index.
-- Returns 1, or 0 for an unknown host.
local h = ARGV[6]
if redis.call('HEXISTS', hk(h), 'k') == 0 then return 0 end
redis.call('HSET', hk(h), 'pn', ARGV[7], 'pr', ARGV[8], 'pb', ARGV[9], 'pc', ARGV[10], 'pa', ARGV[11])
TOUCHED[h] = true
place_touched()
return 1
