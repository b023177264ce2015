-- Claims due timers: moves them from the partition's due set to its claimed hash (with
-- their due time), so a worker that dies before releasing them leaves them to its successor.
-- KEYS[1] the partition's due sorted set, KEYS[2] the partition's claimed hash
-- ARGV[1] now (ms), ARGV[2] most timers to claim
-- Returns the claimed timers and their due times, alternating.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('HSET', KEYS[2], due[i], due[i + 1])
end
return due
