-- open: registers the worker and recovers a restart of it: every lease it still
-- holds goes back to its queue (in lease order, attempts kept; those that used up
-- their attempts are failed as quarantined) and its claims end. A host whose claim
-- had not run out yet is not fetched again before it would have: the earlier run
-- may have started a request just before it stopped, and the pace it kept for the
-- host went with it (it started a request only while its claim lasted past the
-- request's end, so by then a timeout and the claim's margin have passed since).
-- Returns {requeued, quarantined, ack seq, op id}.
redis.call('ZADD', WORKERS, S(NOW), W)
reap()
local requeued, quarantined = give_back()
place_touched()
local w = wk(W)
redis.call('HDEL', w, 'or', 'oh')
-- For status: whether the worker is live is judged against its own ttl.
redis.call('HSET', w, 'ttl', S(TTL))
redis.call('HDEL', w, 'left')
local f = redis.call('HMGET', w, 'seq', 'op')
return { requeued, quarantined, num(f[1]), num(f[2]) }
