-- Stores a clock, open in its bucket's hash or closed under its own key, and keeps the
-- per-queue count of open clocks in step (the replaced record's queue is its first element).
-- KEYS[1] the open-clocks hash, KEYS[2] the closed-clock key, KEYS[3] the open counts
-- ARGV[1] field, ARGV[2] record (msgpack), ARGV[3] queue of the clock when it is open
--   ('' when closed), ARGV[4] closed TTL (s)
-- Returns nothing.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HINCRBY', KEYS[3], cmsgpack.unpack(old)[1], -1)
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('DEL', KEYS[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
end
