-- The last step of a placement: the thread names its conversation and the message its outcome,
-- together, so a message with a marker was placed completely.
-- KEYS[1] the thread map, KEYS[2] the message's seen marker
-- ARGV[1] conversation id, ARGV[2] 'new' | 'old' | 'reopened', ARGV[3] marker TTL (s)
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
