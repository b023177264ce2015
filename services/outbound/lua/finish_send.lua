-- A send's outcome, with its expiry (a record that never began, a suppressed command, expires
-- too), atomically (see services/outbound/sends.py).
-- KEYS[1] the command's send record (hash)
-- ARGV[1] state, ARGV[2] provider message id, ARGV[3] error, ARGV[4] text sent ('' for none),
--   ARGV[5] TTL seconds
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'provider_id', ARGV[2], 'error', ARGV[3],
  'text', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
