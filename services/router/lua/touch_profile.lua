-- Records what a message says of its customer (repeatable: the message's own time and fields).
-- KEYS[1] the profile, KEYS[2] its open conversations
-- ARGV[1] now (ms), ARGV[2] display name (or ''), then field/value pairs (identities, tier)
-- Returns {tier or '', the open conversations (field/value pairs)}.
redis.call('HSETNX', KEYS[1], 'first_seen', ARGV[1])
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], 'name', ARGV[2]) end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return {redis.call('HGET', KEYS[1], 'tier') or '', redis.call('HGETALL', KEYS[2])}
