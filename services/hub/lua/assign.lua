-- Every change to push assignment, atomically: presence, leases, offers, claims and a
-- queue's assignment pass (see services/hub/assignment.py).
-- KEYS[1] the round-robin sequence (unused here: it routes the call to the {hub} slot);
--   every other key is a prefix in ARGV joined here with an agent, queue, offer or
--   conversation id, all in that slot (see libs/common/keys.py)
-- ARGV[1] op (presence, alive, accept, decline, claimed, dropped, pass), ARGV[2] now (ms),
--   ARGV[3..12] key prefixes: agent, agents, assigned, offer, offers, waiting, conversation,
--   open, declined, then the round-robin sequence key; ARGV[13..] the op's arguments
--   (named at each op below)
-- Returns {status, detail, offers made, agents to wake, queues to wake, next due ms or '',
--   offers accepted, declined, expired, withdrawn, more waiting, agents online, relaxation
--   steps not yet told of ('{conversation} {step}', ms taken, ...)}.
-- pass also takes KEYS[2]: the queue's unmet set, rewritten by every pass, and KEYS[3]: the
--   queue's ladder steps taken and not yet told of, which the caller removes once it has
--   recorded them (so a step is told of even when the pass that took it failed after it).
local op, now = ARGV[1], tonumber(ARGV[2])
local P_AGENT, P_AGENTS, P_ASSIGNED, P_OFFER, P_OFFERS = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local P_WAITING, P_CONV, P_OPEN, P_DECLINED, RR = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local A = 13
local OFFER_TTL, AGENT_TTL = 86400, 7 * 86400
local status, detail, made, next_ms, more, online = 'ok', '', {}, nil, 0, 0
local relaxed = {}
local woken_agents, woken_queues, seen_agents, seen_queues = {}, {}, {}, {}
local ended = {accepted = 0, declined = 0, expired = 0, withdrawn = 0}

local function wake_agent(agent)
  if not seen_agents[agent] then
    seen_agents[agent] = true
    woken_agents[#woken_agents + 1] = agent
  end
end
local function wake_queue(queue)
  if not seen_queues[queue] then
    seen_queues[queue] = true
    woken_queues[#woken_queues + 1] = queue
  end
end
local function each_queue(agent, fn)
  for queue in string.gmatch(redis.call('HGET', P_AGENT .. agent, 'queues') or '', '%S+') do
    fn(queue)
  end
end

-- Ends an outstanding offer with state; returns its conversation and agent (nil if it was
-- not outstanding). An accepted offer stays on the agent as an assignment.
local function end_offer(offer_id, state)
  local key = P_OFFER .. offer_id
  local o = redis.call('HMGET', key, 'conversation', 'agent', 'queue', 'state', 'channel')
  if not o[1] or o[4] ~= 'offered' then return nil, nil end
  redis.call('HSET', key, 'state', state)
  redis.call('ZREM', P_OFFERS .. o[3], offer_id)
  if redis.call('HGET', P_CONV .. o[1], 'offer') == offer_id then
    redis.call('HDEL', P_CONV .. o[1], 'offer')
  end
  if state == 'accepted' then
    redis.call('HSET', P_ASSIGNED .. o[2], o[1], o[5] .. '|')
    redis.call('HSET', P_CONV .. o[1], 'assignee', o[2])
  else
    redis.call('HDEL', P_ASSIGNED .. o[2], o[1])
  end
  ended[state] = ended[state] + 1
  wake_agent(o[2])
  wake_queue(o[3])
  return o[1], o[2]
end

-- An open conversation that nobody holds goes back to its queue's waiting set.
local function requeue(conv)
  local c = redis.call('HMGET', P_CONV .. conv, 'queue', 'status', 'assignee', 'offer')
  if not c[1] or c[2] ~= 'open' or c[3] or c[4] then return end
  local score = redis.call('ZSCORE', P_OPEN .. c[1], conv)
  if score then
    redis.call('ZADD', P_WAITING .. c[1], score, conv)
    wake_queue(c[1])
  end
end

local function unassign(agent, conv)
  redis.call('HDEL', P_ASSIGNED .. agent, conv)
  if redis.call('HGET', P_CONV .. conv, 'assignee') == agent then
    redis.call('HDEL', P_CONV .. conv, 'assignee')
  end
  wake_agent(agent)
end

local function decline(conv, agent, ttl_ms)
  redis.call('SADD', P_DECLINED .. conv, agent)
  redis.call('PEXPIRE', P_DECLINED .. conv, ttl_ms)
end

-- The agent leaves its queues; what it held or was offered goes back to them.
local function go_offline(agent, reason)
  local key = P_AGENT .. agent
  each_queue(agent, function(queue) redis.call('SREM', P_AGENTS .. queue, agent) end)
  redis.call('HSET', key, 'status', 'offline', 'reason', reason, 'offline_at', now)
  redis.call('HDEL', key, 'detached')
  local held = redis.call('HGETALL', P_ASSIGNED .. agent)
  for i = 1, #held, 2 do
    local conv, offer_id = held[i], string.match(held[i + 1], '|(.*)$')
    if offer_id ~= '' then
      end_offer(offer_id, 'withdrawn')
      redis.call('HDEL', P_ASSIGNED .. agent, conv)
    else
      unassign(agent, conv)
    end
    requeue(conv)
  end
  wake_agent(agent)
end

local function earliest(ms)
  if next_ms == nil or ms < next_ms then next_ms = ms end
end

-- A set of the space-separated words of text.
local function word_set(text)
  local set = {}
  for word in string.gmatch(text or '', '%S+') do set[word] = true end
  return set
end

if op == 'presence' then
  -- agent, status, lease end (ms), queues, skills, languages (each space-separated), then
  -- channel, capacity pairs
  local agent, presence, queues = ARGV[A], ARGV[A + 1], ARGV[A + 3]
  local key = P_AGENT .. agent
  if presence == 'offline' then
    go_offline(agent, 'presence')
  else
    each_queue(agent, function(queue) redis.call('SREM', P_AGENTS .. queue, agent) end)
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, 4) == 'cap:' then redis.call('HDEL', key, field) end
    end
    redis.call('HSET', key, 'status', presence, 'reason', '', 'queues', queues,
      'alive_until', ARGV[A + 2], 'misses', 0, 'skills', ARGV[A + 4], 'languages', ARGV[A + 5])
    redis.call('HDEL', key, 'detached')
    for i = A + 6, #ARGV, 2 do redis.call('HSET', key, 'cap:' .. ARGV[i], ARGV[i + 1]) end
    for queue in string.gmatch(queues, '%S+') do
      redis.call('SADD', P_AGENTS .. queue, agent)
      wake_queue(queue)
    end
    wake_agent(agent)
  end
  redis.call('EXPIRE', key, AGENT_TTL)
elseif op == 'alive' then
  -- agent, lease end (ms), '1' when its last socket here closed (else '')
  local agent, key = ARGV[A], P_AGENT .. ARGV[A]
  local presence = redis.call('HGET', key, 'status')
  if presence and presence ~= 'offline' then
    redis.call('HSET', key, 'alive_until', ARGV[A + 1])
    if ARGV[A + 2] == '1' then
      redis.call('HSET', key, 'detached', 1)
      each_queue(agent, wake_queue)
    else
      redis.call('HDEL', key, 'detached')
    end
  end
elseif op == 'accept' or op == 'decline' then
  -- agent, offer id, declined mark TTL (ms)
  local agent, offer_id = ARGV[A], ARGV[A + 1]
  local o = redis.call('HMGET', P_OFFER .. offer_id, 'conversation', 'agent', 'state', 'expires',
    'queue')
  if not o[1] or o[2] ~= agent then
    status = 'unknown_offer'
  elseif o[3] == 'accepted' and op == 'accept' then
    detail = o[1]
  elseif o[3] ~= 'offered' or tonumber(o[4]) <= now then
    status, detail = 'offer_gone', o[3] == 'offered' and 'expired' or o[3]
    wake_queue(o[5])
  else
    end_offer(offer_id, op == 'accept' and 'accepted' or 'declined')
    redis.call('HSET', P_AGENT .. agent, 'misses', 0)
    if op == 'decline' then
      decline(o[1], agent, ARGV[A + 2])
      requeue(o[1])
    end
    detail = o[1]
  end
elseif op == 'claimed' then
  -- conversation, agent, summary TTL (s), time of the claim (ms): the agent claimed it (an
  -- accepted offer or not). A claim made before the agent went offline reaches us after
  -- going offline returned what it held: it stays returned, not assigned to someone away.
  local conv, agent = ARGV[A], ARGV[A + 1]
  local key = P_CONV .. conv
  local a = redis.call('HMGET', P_AGENT .. agent, 'status', 'offline_at')
  if a[1] == 'offline' and tonumber(ARGV[A + 3]) < (tonumber(a[2]) or 0) then
    requeue(conv)
  else
    local c = redis.call('HMGET', key, 'assignee', 'offer', 'channel', 'status', 'queue')
    if c[2] then
      local to = redis.call('HGET', P_OFFER .. c[2], 'agent')
      end_offer(c[2], to == agent and 'accepted' or 'withdrawn')
    end
    if c[1] and c[1] ~= agent then unassign(c[1], conv) end
    redis.call('HSET', key, 'assignee', agent)
    redis.call('EXPIRE', key, ARGV[A + 2])
    if c[4] == 'open' then
      redis.call('HSET', P_ASSIGNED .. agent, conv, (c[3] or '') .. '|')
      redis.call('ZREM', P_WAITING .. c[5], conv)
      wake_agent(agent)
    end
  end
elseif op == 'dropped' then
  -- conversation: resolved or transferred, so nobody here holds it any more
  local conv = ARGV[A]
  local c = redis.call('HMGET', P_CONV .. conv, 'assignee', 'offer')
  if c[2] then end_offer(c[2], 'withdrawn') end
  if c[1] then
    unassign(c[1], conv)
    each_queue(c[1], wake_queue)  -- its capacity is free again
  end
elseif op == 'pass' then
  -- queue, offer ms, misses limit, declined mark TTL (ms), scan limit, reach, the queue's
  -- ladder, then fresh offer ids. The pass considers the scan limit's number of waiting
  -- conversations, walking past (up to reach in all) those whose requirements in force no
  -- online agent meets, so they do not hold back the ones behind them. The ladder is space-separated steps '{after ms}:{dropped}', dropped
  -- being 1 (skills), 2 (the language) or 3 (both), in order of after; a conversation whose
  -- first-response clock warned drops both (step #ladder + 1) whatever the ladder says.
  local queue, offer_ms, misses = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
  local declined_ms, scan, reach = ARGV[A + 3], tonumber(ARGV[A + 4]), tonumber(ARGV[A + 5])
  local fresh = A + 7
  local ladder = {}
  for after, dropped in string.gmatch(ARGV[A + 6], '(%d+):(%d)') do
    ladder[#ladder + 1] = {after = tonumber(after), dropped = tonumber(dropped)}
  end
  for _, offer_id in ipairs(redis.call('ZRANGEBYSCORE', P_OFFERS .. queue, '-inf', now)) do
    local conv, agent = end_offer(offer_id, 'expired')
    redis.call('ZREM', P_OFFERS .. queue, offer_id)
    if conv then
      decline(conv, agent, declined_ms)
      requeue(conv)
      if redis.call('HINCRBY', P_AGENT .. agent, 'misses', 1) >= misses then
        go_offline(agent, 'unresponsive')
      end
    end
  end
  local candidates = {}
  for _, agent in ipairs(redis.call('SMEMBERS', P_AGENTS .. queue)) do
    local key = P_AGENT .. agent
    local a = redis.call('HMGET', key, 'status', 'alive_until', 'detached', 'rr')
    if not a[1] or a[1] == 'offline' or (tonumber(a[2]) or 0) <= now then
      redis.call('SREM', P_AGENTS .. queue, agent)
      go_offline(agent, 'disconnected')
    else
      if a[3] then earliest(tonumber(a[2])) end
      if a[1] == 'online' then
        local c = {agent = agent, rr = tonumber(a[4]) or 0, cap = {}, load = {},
          skills = {}, languages = {}}
        local fields = redis.call('HGETALL', key)
        for i = 1, #fields, 2 do
          local field = fields[i]
          if string.sub(field, 1, 4) == 'cap:' then
            c.cap[string.sub(field, 5)] = tonumber(fields[i + 1])
          elseif field == 'skills' then
            c.skills = word_set(fields[i + 1])
          elseif field == 'languages' then
            c.languages = word_set(fields[i + 1])
          end
        end
        for _, held in ipairs(redis.call('HVALS', P_ASSIGNED .. agent)) do
          local channel = string.match(held, '^([^|]*)')
          c.load[channel] = (c.load[channel] or 0) + 1
        end
        candidates[#candidates + 1] = c
      end
    end
  end
  online = #candidates

  -- Which of a conversation's requirements the agent meets, as bits: 1 the skills (every
  -- one), 2 the language; a requirement the conversation does not have counts as met.
  local function meets(c, skills, language)
    local met = (language == '' or c.languages[language]) and 2 or 0
    for _, skill in ipairs(skills) do
      if not c.skills[skill] then return met end
    end
    return met + 1
  end

  redis.call('DEL', KEYS[2])
  local n, considered = fresh, 0
  local nobody = {}  -- requirements in force that no online agent meets (this pass)
  if online == 0 then reach = scan end
  for _, conv in ipairs(redis.call('ZRANGE', P_WAITING .. queue, 0, reach - 1)) do
    if n > #ARGV then
      more = 1
      break
    end
    if considered >= scan then break end
    local key = P_CONV .. conv
    local f = redis.call('HMGET', key, 'channel', 'req_skills', 'req_language', 'waiting_from',
      'step', 'clock:first_response')
    local channel, language = f[1] or '', f[3] or ''
    local skills, step, dropped, due = {}, 0, 0, nil
    for skill in string.gmatch(f[2] or '', '%S+') do skills[#skills + 1] = skill end
    local since = tonumber(f[4])
    if #skills > 0 or language ~= '' then
      if not since then
        since = now
        redis.call('HSET', key, 'waiting_from', now)
      end
      for i, s in ipairs(ladder) do
        if now - since < s.after then
          due = since + s.after
          break
        end
        step, dropped = i, s.dropped
      end
      if f[6] == 'warning' or f[6] == 'breached' then
        step, dropped, due = #ladder + 1, 3, nil
      end
      if step ~= (tonumber(f[5]) or 0) then
        redis.call('HSET', key, 'step', step)
        redis.call('HSET', KEYS[3], conv .. ' ' .. step, now)
      end
    end
    -- An agent is eligible when it meets every requirement the ladder has not dropped; among
    -- the eligible with free capacity: the one meeting the most of the original ones, then
    -- the most free capacity on the channel, then the least recently offered.
    local wanted = table.concat(skills, ' ') .. '|' .. language .. '|' .. dropped
    local best, best_met, best_free, anyone = nil, 0, 0, false
    if not nobody[wanted] then
      considered = considered + 1
      for _, c in ipairs(candidates) do
        local met = meets(c, skills, language)
        if bit.band(bit.bor(met, dropped), 3) == 3 then
          anyone = true
          local free = (c.cap[channel] or 0) - (c.load[channel] or 0)
          if free > 0 and (best == nil or met > best_met
                or (met == best_met and (free > best_free
                  or (free == best_free and c.rr < best.rr))))
              and redis.call('SISMEMBER', P_DECLINED .. conv, c.agent) == 0 then
            best, best_met, best_free = c, met, free
          end
        end
      end
      if not anyone then nobody[wanted] = true end
    end
    if best then
      local offer_id, expires = ARGV[n], now + offer_ms
      n = n + 1
      best.rr = redis.call('INCR', RR)
      redis.call('HSET', P_OFFER .. offer_id, 'conversation', conv, 'agent', best.agent,
        'queue', queue, 'channel', channel, 'expires', expires, 'state', 'offered',
        'seq', best.rr)
      redis.call('EXPIRE', P_OFFER .. offer_id, OFFER_TTL)
      redis.call('ZADD', P_OFFERS .. queue, expires, offer_id)
      redis.call('HSET', P_ASSIGNED .. best.agent, conv, channel .. '|' .. offer_id)
      redis.call('HSET', key, 'offer', offer_id)
      redis.call('ZREM', P_WAITING .. queue, conv)
      best.load[channel] = (best.load[channel] or 0) + 1
      redis.call('HSET', P_AGENT .. best.agent, 'rr', best.rr)
      made[#made + 1] = offer_id
      wake_agent(best.agent)
    else
      if due then earliest(due) end
      if not anyone and (#skills > 0 or language ~= '') then
        redis.call('ZADD', KEYS[2], since, conv)
      end
    end
  end
  local first = redis.call('ZRANGE', P_OFFERS .. queue, 0, 0, 'WITHSCORES')
  if first[2] then earliest(tonumber(first[2])) end
  relaxed = redis.call('HGETALL', KEYS[3])
end
return {status, detail, made, woken_agents, woken_queues,
  next_ms and string.format('%d', next_ms) or '', ended.accepted, ended.declined,
  ended.expired, ended.withdrawn, more, online, relaxed}
