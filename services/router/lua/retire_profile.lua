-- After its contents were folded into the survivor: a merged profile points there.
-- KEYS[1] the profile, KEYS[2] its open conversations, KEYS[3] its history
-- ARGV[1] the survivor's id
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'merged_into', ARGV[1])
return 1
