-- Records a survey score on its conversation; only an existing conversation gets one.
-- KEYS[1] the conversation hash
-- ARGV[1] score
-- Returns 1 when recorded, 0 when there is no such conversation.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'csat', ARGV[1])
return 1
