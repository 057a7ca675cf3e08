-- enqueue: ARGV[6] op id, ARGV[7] n, then n triples (fingerprint, host key, record).
-- Returns {'ok', new}; a retry of the same op returns the first answer.
local op = ARGV[6]
local done = last_op(op)
if done then return { 'ok', num(done) } end
local fresh = {}
local n = 0
local j = 8
for _ = 1, tonumber(ARGV[7]) do
  if add_url(ARGV[j], ARGV[j + 1], ARGV[j + 2], fresh) then n = n + 1 end
  j = j + 3
end
place_touched()
store_op(op, S(n))
return { 'ok', n }
