-- release: ARGV[6] host id. Ends this worker's claim on the host now if it holds no
-- leases of it ('released'), or with the ack of the last of them ('deferred');
-- 'none' when it holds no claim.
local h = ARGV[6]
if redis.call('HGET', hk(h), 'o') ~= W then return 'none' end
if redis.call('EXISTS', lk(W, h)) == 1 then
  redis.call('HSET', hk(h), 'rp', '1')
  return 'deferred'
end
drop_claim(h, W)
place_touched()
return 'released'
