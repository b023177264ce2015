-- Moves a mailbox's UID checkpoint forward, only within one UIDVALIDITY (a new UIDVALIDITY
-- starts it again).
-- KEYS[1] the checkpoint hash
-- ARGV[1] uidvalidity, ARGV[2] uid
-- Returns 1 when moved, 0 when the checkpoint was already there or further.
local validity = redis.call('HGET', KEYS[1], 'uidvalidity')
local uid = tonumber(redis.call('HGET', KEYS[1], 'uid') or '0')
if validity == ARGV[1] and uid >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'uidvalidity', ARGV[1], 'uid', ARGV[2])
return 1
