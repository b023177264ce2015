-- Places a message in its thread's latest conversation when that is open or resolved within the
-- reopen window (reopening it); a repeat by the same message finds what the first run did.
-- KEYS[1] the conversation hash
-- ARGV[1] now (ms), ARGV[2] reopen window (ms), ARGV[3] inbound event id, ARGV[4] customer id
--   (or '')
-- Returns {'old' | 'reopened', sequence, queue}, or {'expired'} when the message needs a new
-- conversation (resolved too long ago, or gone).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired'} end
local status, resolved_at, reopened_by =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'resolved_at', 'reopened_by'))
local state = 'old'
if status == 'resolved' then
  if tonumber(ARGV[1]) - tonumber(resolved_at or '0') > tonumber(ARGV[2]) then
    return {'expired'}
  end
  redis.call('HSET', KEYS[1], 'status', 'open', 'reopened_at', ARGV[1], 'reopened_by', ARGV[3])
  state = 'reopened'
elseif reopened_by == ARGV[3] then
  state = 'reopened'
end
redis.call('HSET', KEYS[1], 'last_message_at', ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'customer_id', ARGV[4]) end
local sequence, queue = unpack(redis.call('HMGET', KEYS[1], 'sequence', 'queue'))
return {state, sequence, queue}
