-- Gives a conversation its reference number: the next of the sequence the first time, the same
-- one on every repeat (so a crash between this and the conversation's creation wastes none),
-- and the next again when the number it holds turned out to be another conversation's.
-- KEYS[1] the sequence, KEYS[2] the conversation's claim
-- ARGV[1] the claim's TTL (s), ARGV[2] a number the conversation may not keep ('' none)
-- Returns the number.
local claimed = redis.call('GET', KEYS[2])
if claimed and claimed ~= ARGV[2] then return tonumber(claimed) end
local number = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], number, 'EX', ARGV[1])
return number
