-- Records a survey score (CSAT or NPS) on its conversation; only an existing conversation gets one.
-- KEYS[1] the conversation hash
-- ARGV[1] the survey's kind, the field it is kept in: csat or nps
-- ARGV[2] score
-- Returns 1 when recorded, 0 when there is no such conversation.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
