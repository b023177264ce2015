-- Appends an event to a queue's stream once per event id, then trims the stream by length
-- (in batches) and by age, remembering the last id trimmed so readers know what they missed.
-- KEYS[1] the queue's stream, KEYS[2] the event's seen marker, KEYS[3] the trimmed marker
-- ARGV[1] payload, ARGV[2] max length, ARGV[3] trim batch, ARGV[4] min id (ms),
--   ARGV[5] marker TTL (s)
-- Returns the entry id (the existing one when the event was appended before).
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('SET', KEYS[2], id, 'EX', ARGV[5])
local function trim_through(last)
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  local previous = redis.call('GET', KEYS[3])
  local pms, pseq = string.match(previous or '0-0', '^(%d+)-(%d+)$')
  if tonumber(ms) > tonumber(pms) or (ms == pms and tonumber(seq) > tonumber(pseq)) then
    redis.call('SET', KEYS[3], last)
  end
end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess >= tonumber(ARGV[3]) then
  local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
  trim_through(head[#head][1])
end
-- Age: only when the oldest entry is past it (XREVRANGE from an id older than every entry
-- walks the whole stream on Redis 7.0: milliseconds per append at 10,000 entries).
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if first[1] and tonumber(string.match(first[1][1], '^(%d+)-')) < tonumber(ARGV[4]) then
  local old = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[4] .. '-0', '-', 'COUNT', 1)
  if old[1] then trim_through(old[1][1]) end
end
return id
