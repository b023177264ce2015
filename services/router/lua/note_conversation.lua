-- Notes a conversation in its customer's capped history and open conversations (repeatable).
-- KEYS[1] the customer's history, KEYS[2] the customer's open conversations
-- ARGV[1] conversation id, ARGV[2] now (ms), ARGV[3] queue, ARGV[4] history length
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. '|' .. ARGV[2])
return 1
