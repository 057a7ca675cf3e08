-- enqueue: ARGV[6] op id, ARGV[7] the op and ack last seen stored ("op:seq"), ARGV[8]
-- n, then n triples (fingerprint, host key, record).
-- Returns {'ok', new}; a retry of the same op returns the first answer; {'lost',
-- reason} when the server lost this worker's writes.
local op = ARGV[6]
local done = last_op(op)
if done then return { 'ok', num(done) } end
local why = rewound(ARGV[7])
if why then return { 'lost', why } end
local fresh = {}
local n = 0
local j = 9
for _ = 1, tonumber(ARGV[8]) do
  if add_url(ARGV[j], ARGV[j + 1], ARGV[j + 2], fresh) then n = n + 1 end
  j = j + 3
end
place_touched()
store_op(op, S(n))
return { 'ok', n }
