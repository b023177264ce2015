-- Finds the customer behind a message's identities, merging the profiles they point to
-- (the oldest survives), and records the identities and what the message says of them.
-- KEYS[1..n-1] identity index keys, KEYS[n] the profile key prefix
-- ARGV[1] candidate customer id, ARGV[2] now (ms), ARGV[3] display name, then identity
--   field/value pairs
-- Returns {customer id, tier or '', the customer's open conversations (field/value pairs)}.
local prefix = KEYS[#KEYS]
local function resolve(id)
  for _ = 1, 8 do
    local next_id = redis.call('HGET', prefix .. id, 'merged_into')
    if not next_id then return id end
    id = next_id
  end
  return id
end
local found = {}
for i = 1, #KEYS - 1 do
  local id = redis.call('GET', KEYS[i])
  if id then found[#found + 1] = resolve(id) end
end
local id = ARGV[1]
if #found > 0 then
  local best_seen = nil
  for _, candidate in ipairs(found) do
    local seen = tonumber(redis.call('HGET', prefix .. candidate, 'first_seen') or '0')
    if best_seen == nil or seen < best_seen or (seen == best_seen and candidate < id) then
      id, best_seen = candidate, seen
    end
  end
  for _, other in ipairs(found) do
    if other ~= id then
      local fields = redis.call('HGETALL', prefix .. other)
      for j = 1, #fields, 2 do
        if redis.call('HEXISTS', prefix .. id, fields[j]) == 0 and fields[j] ~= 'merged_into' then
          redis.call('HSET', prefix .. id, fields[j], fields[j + 1])
        end
      end
      local open = redis.call('HGETALL', prefix .. other .. ':open')
      for j = 1, #open, 2 do redis.call('HSET', prefix .. id .. ':open', open[j], open[j + 1]) end
      redis.call('ZUNIONSTORE', prefix .. id .. ':history', 2, prefix .. id .. ':history',
                 prefix .. other .. ':history', 'AGGREGATE', 'MIN')
      redis.call('DEL', prefix .. other .. ':open', prefix .. other .. ':history')
      redis.call('HSET', prefix .. other, 'merged_into', id)
    end
  end
end
local key = prefix .. id
redis.call('HSETNX', key, 'first_seen', ARGV[2])
redis.call('HSET', key, 'last_seen', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSETNX', key, 'name', ARGV[3]) end
for i = 4, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
for i = 1, #KEYS - 1 do redis.call('SET', KEYS[i], id) end
return {id, redis.call('HGET', key, 'tier') or '', redis.call('HGETALL', key .. ':open')}
