-- fail_host: ARGV[6] op id, ARGV[7] host id. Fails every queued URL of the host.
-- Returns the number failed; a retry of the same op returns the first answer.
local op, h = ARGV[6], ARGV[7]
local done = last_op(op)
if done then return num(done) end
local all = redis.call('ZRANGE', qk(h), 0, -1)
for _, r in ipairs(all) do seen_set(rec_fp(r), 3, rec_att(r)) end
if #all > 0 then
  redis.call('DEL', qk(h))
  count(h, 0, 3, #all)
end
place_touched()
store_op(op, S(#all))
return #all
