-- Moves the mentions checkpoint forward only (compared by length, then digits: no floats,
-- which would round ids above 2**53); two pollers racing cannot move it back.
-- KEYS[1] the checkpoint
-- ARGV[1] candidate tweet id
-- Returns 1 when moved, 0 otherwise.
local current = redis.call('GET', KEYS[1])
local new = ARGV[1]
if current and (#current > #new or (#current == #new and current >= new)) then return 0 end
redis.call('SET', KEYS[1], new)
return 1
