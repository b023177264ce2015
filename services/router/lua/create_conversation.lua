-- Creates a conversation once (a repeat keeps what the first run wrote) and notes the message.
-- KEYS[1] the conversation hash
-- ARGV[1] sequence, ARGV[2] queue, ARGV[3] now (ms), ARGV[4] channel, ARGV[5] thread key,
--   ARGV[6] customer id (or '')
-- Returns {sequence, queue}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'sequence', ARGV[1], 'queue', ARGV[2], 'status', 'open',
             'opened_at', ARGV[3], 'channel', ARGV[4], 'thread_key', ARGV[5])
end
redis.call('HSET', KEYS[1], 'last_message_at', ARGV[3])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'customer_id', ARGV[6]) end
return redis.call('HMGET', KEYS[1], 'sequence', 'queue')
