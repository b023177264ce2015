-- Places a message in its conversation: the one it was placed in before (redelivery), the
-- open or recently resolved one of its thread (reopened), or a new one with the next sequence.
-- KEYS[1] the message's seen marker, KEYS[2] the thread map, KEYS[3] the sequence,
--   KEYS[4] the conversation key prefix, KEYS[5] the customer key (unused
--   without a customer)
-- ARGV[1] candidate conversation id, ARGV[2] queue if new, ARGV[3] now (ms),
--   ARGV[4] reopen window (ms), ARGV[5] channel, ARGV[6] thread key, ARGV[7] seen TTL (s),
--   ARGV[8] customer id (or ''), ARGV[9] history length
-- Returns {conversation id, sequence, queue, 'new' | 'old' | 'reopened'}.
local function record_customer(id, queue)
  if ARGV[8] == '' then return end
  redis.call('HSET', KEYS[4] .. id, 'customer_id', ARGV[8])
  redis.call('ZADD', KEYS[5] .. ':history', 'NX', ARGV[3], id)
  redis.call('ZREMRANGEBYRANK', KEYS[5] .. ':history', 0, -tonumber(ARGV[9]) - 1)
  redis.call('HSET', KEYS[5] .. ':open', id, queue .. '|' .. ARGV[3])
end
local seen = redis.call('GET', KEYS[1])
if seen then
  local id, flag = string.match(seen, '^(.*)|(%a+)$')
  local conv = KEYS[4] .. id
  local queue = redis.call('HGET', conv, 'queue')
  record_customer(id, queue)
  return {id, redis.call('HGET', conv, 'sequence'), queue, flag}
end
local id = redis.call('GET', KEYS[2])
local flag = 'old'
if id then
  local conv = KEYS[4] .. id
  local status = redis.call('HGET', conv, 'status')
  if status == 'resolved' then
    local resolved_at = tonumber(redis.call('HGET', conv, 'resolved_at') or '0')
    if tonumber(ARGV[3]) - resolved_at > tonumber(ARGV[4]) then
      id = nil
    else
      redis.call('HSET', conv, 'status', 'open', 'reopened_at', ARGV[3])
      flag = 'reopened'
    end
  end
end
if not id then
  id = ARGV[1]
  flag = 'new'
  local sequence = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[4] .. id, 'sequence', sequence, 'queue', ARGV[2], 'status', 'open',
             'opened_at', ARGV[3], 'channel', ARGV[5], 'thread_key', ARGV[6])
  redis.call('SET', KEYS[2], id)
end
redis.call('HSET', KEYS[4] .. id, 'last_message_at', ARGV[3])
redis.call('SET', KEYS[1], id .. '|' .. flag, 'EX', ARGV[7])
local conv = KEYS[4] .. id
local queue = redis.call('HGET', conv, 'queue')
record_customer(id, queue)
return {id, redis.call('HGET', conv, 'sequence'), queue, flag}
