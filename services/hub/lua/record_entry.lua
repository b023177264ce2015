-- One transcript entry, atomically: its place in the conversation's order, its body, the
-- delivery state of an outbound message, the transcript's expiry, and the oldest entries
-- (with their delivery states) dropped past the cap (see services/hub/transcript.py).
-- KEYS[1] the order (sorted set: entry id -> ms), KEYS[2] the entries (hash: entry id -> JSON,
--   delivery prefix .. entry id -> delivery state), one conversation's, in its slot
-- ARGV[1] entry id, ARGV[2] its ms, ARGV[3] its JSON, ARGV[4] '1': replaces what is there
--   (an agent's action), '0': written only where nothing is (a receipt's copy of a message),
--   ARGV[5] TTL seconds, ARGV[6] most entries kept, ARGV[7] delivery prefix, ARGV[8] the
--   delivery state to set, or ''
-- Returns how many entries were dropped.
local id, delivery = ARGV[1], ARGV[7]
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[2], id, ARGV[3])
else
  redis.call('ZADD', KEYS[1], 'NX', ARGV[2], id)
  redis.call('HSETNX', KEYS[2], id, ARGV[3])
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[2], delivery .. id, ARGV[8])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if over <= 0 then
  return 0
end
local dropped = redis.call('ZPOPMIN', KEYS[1], over)
for i = 1, #dropped, 2 do
  redis.call('HDEL', KEYS[2], dropped[i], delivery .. dropped[i])
end
return over
