-- Keeps a conversation's summary and its place in the queue's open set (scored by its
-- earliest deadline) and in the assigner's waiting set (open, neither assigned nor offered).
-- KEYS[1] the conversation's summary hash
-- ARGV[1] op, ARGV[2] open-set key prefix, ARGV[3] TTL (s), ARGV[4] no-deadline score,
--   ARGV[5] conversation id, ARGV[6] waiting-set key prefix, then per op from ARGV[7]:
--   open -> field/value pairs (with 'queue'); deadline -> metric, ms or '', the clock's
--   latest SLA event kind; close -> nothing; move -> new queue; retype -> new issue type;
--   forget -> nothing (it moved to another assignment group: out of this one's sets, no summary)
-- Returns the queue the conversation was in ('' if none).
local function score()
  local fields = redis.call('HGETALL', KEYS[1])
  local best = nil
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 9) == 'deadline:' then
      local v = tonumber(fields[i + 1])
      if best == nil or v < best then best = v end
    end
  end
  return best or tonumber(ARGV[4])
end
local op, prefix, id, waiting = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local previous = redis.call('HGET', KEYS[1], 'queue') or ''
local function leave(queue)
  redis.call('ZREM', prefix .. queue, id)
  redis.call('ZREM', waiting .. queue, id)
end
local function enter(queue)
  local s = score()
  redis.call('ZADD', prefix .. queue, s, id)
  if redis.call('HEXISTS', KEYS[1], 'assignee') == 0
      and redis.call('HEXISTS', KEYS[1], 'offer') == 0 then
    redis.call('ZADD', waiting .. queue, s, id)
  end
end
if op == 'open' then
  local queue = ''
  for i = 7, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    if ARGV[i] == 'queue' then queue = ARGV[i + 1] end
  end
  if previous ~= '' and previous ~= queue then leave(previous) end
  enter(queue)
elseif op == 'deadline' then
  if ARGV[8] == '' then
    redis.call('HDEL', KEYS[1], 'deadline:' .. ARGV[7])
  else
    redis.call('HSET', KEYS[1], 'deadline:' .. ARGV[7], ARGV[8])
  end
  redis.call('HSET', KEYS[1], 'clock:' .. ARGV[7], ARGV[9])
  if previous ~= '' then
    redis.call('ZADD', prefix .. previous, 'XX', score(), id)
    redis.call('ZADD', waiting .. previous, 'XX', score(), id)
  end
elseif op == 'close' then
  if previous ~= '' then leave(previous) end
  redis.call('HSET', KEYS[1], 'status', 'resolved')
elseif op == 'move' then
  if previous ~= '' then leave(previous) end
  redis.call('HSET', KEYS[1], 'queue', ARGV[7], 'status', 'open')
  enter(ARGV[7])
elseif op == 'retype' then
  if previous ~= '' then redis.call('HSET', KEYS[1], 'issue_type', ARGV[7]) end
elseif op == 'forget' then
  if previous ~= '' then leave(previous) end
  redis.call('DEL', KEYS[1])
  return previous
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return previous
