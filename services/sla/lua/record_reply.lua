-- Records when an agent last replied; only a conversation with a contact records replies,
-- and a redelivered older reply never moves the time back.
-- KEYS[1] the contact hash
-- ARGV[1] reply time (ms), ARGV[2] TTL (s)
-- Returns 1 when the conversation has a contact, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local stored = tonumber(redis.call('HGET', KEYS[1], 'agent_reply') or '0')
if tonumber(ARGV[1]) > stored then
  redis.call('HSET', KEYS[1], 'agent_reply', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
