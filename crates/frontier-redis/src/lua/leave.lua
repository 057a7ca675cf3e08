-- leave: the worker stops (its store is dropped: nothing of it can ack any more).
-- Every lease it still holds goes back to its queue and its claims end, as the next
-- open of this worker would do, so that other workers take its hosts at once instead
-- of after the ttl; it no longer counts as live for the fairness cap. The engine
-- released the hosts it could with their pace before; one it still holds (its leases
-- were not acked) waits as after a crash (hold_pace).
-- Returns {requeued, quarantined}.
reap()
local requeued, quarantined = give_back()
place_touched()
redis.call('ZADD', WORKERS, S(NOW - TTL - 1), W)
redis.call('HSET', wk(W), 'left', S(NOW))
return { requeued, quarantined }
