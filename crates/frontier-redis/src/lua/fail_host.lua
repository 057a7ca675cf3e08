-- fail_host: ARGV[6] op id, ARGV[7] the op and ack last seen stored ("op:seq"),
-- ARGV[8] host id. Fails every queued URL of the host.
-- Returns {'ok', the number failed}; a retry of the same op returns the first
-- answer; {'lost', reason} when the server lost this worker's writes.
local op, h = ARGV[6], ARGV[8]
local done = last_op(op)
if done then return { 'ok', num(done) } end
local why = rewound(ARGV[7])
if why then return { 'lost', why } end
local all = redis.call('ZRANGE', qk(h), 0, -1)
for _, r in ipairs(all) do seen_set(rec_fp(r), 3, rec_att(r)) end
if #all > 0 then
  redis.call('DEL', qk(h))
  count(h, 0, 3, #all)
end
place_touched()
store_op(op, S(#all))
return { 'ok', #all }
