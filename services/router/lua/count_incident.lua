-- Counts a message in its issue's sliding window and opens an incident when the count
-- reaches the threshold (one at a time per issue, held for the cool-down).
-- KEYS[1] the window's sorted set, KEYS[2] the active incident key
-- ARGV[1] member, ARGV[2] now (ms), ARGV[3] window (ms), ARGV[4] threshold,
--   ARGV[5] candidate incident id, ARGV[6] cool-down (ms)
-- Returns {incident id or '', count in the window, 1 when the candidate is the incident}.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local count = redis.call('ZCARD', KEYS[1])
local active = redis.call('GET', KEYS[2])
if active then return {active, count, active == ARGV[5] and 1 or 0} end
if count >= tonumber(ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
  return {ARGV[5], count, 1}
end
return {'', count, 0}
