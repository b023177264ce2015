-- Folds another profile into this one: the fields it lacks, the other's open conversations and
-- history (the earlier first contact wins). Repeating it changes nothing.
-- KEYS[1] the profile, KEYS[2] its open conversations, KEYS[3] its history
-- ARGV[1] number of field/value pairs n, then n pairs of the other's profile, then
--   m = ARGV[2n+2] pairs of its open conversations, then member/score pairs of its history
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  if ARGV[i] ~= 'merged_into' then redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
local opened = tonumber(ARGV[i])
i = i + 1
for _ = 1, opened do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  local current = redis.call('ZSCORE', KEYS[3], ARGV[i])
  if not current or tonumber(ARGV[i + 1]) < tonumber(current) then
    redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
  end
  i = i + 2
end
return 1
