-- A send about to reach the provider: marked in flight, its attempt counted, atomically (see
-- services/outbound/sends.py).
-- KEYS[1] the command's send record (hash)
-- ARGV[1] TTL seconds
-- Returns the attempt number.
redis.call('HSET', KEYS[1], 'state', 'in_flight')
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return attempts
