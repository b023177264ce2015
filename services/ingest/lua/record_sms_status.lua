-- Records a Twilio status callback unless a later status is already stored (callbacks
-- arrive out of order).
-- KEYS[1] the message's status hash
-- ARGV[1] status, ARGV[2] rank, ARGV[3] provider status, ARGV[4] error code, ARGV[5] time,
--   ARGV[6] TTL (s)
-- Returns 1 when the callback is at least as far along as the one stored (and is now stored).
local stored = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
if tonumber(ARGV[2]) < stored then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2], 'provider_status', ARGV[3],
  'error_code', ARGV[4], 'at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
