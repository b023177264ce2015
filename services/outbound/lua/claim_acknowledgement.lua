-- Counts an automatic acknowledgement against its address: one per conversation and kind,
-- and at most a cap per hour; the same command asking again is told ok.
-- KEYS[1] the address's acknowledgement of this kind in the conversation (a command id)
-- KEYS[2] the address's acknowledgements this hour (a set of command ids)
-- ARGV[1] command id, ARGV[2] hourly cap, ARGV[3] TTL (s) of KEYS[1], ARGV[4] TTL (s) of KEYS[2]
-- Returns 'ok', 'conversation' or 'hour'.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return 'ok' end
if holder then return 'conversation' end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 'hour' end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 'ok'
