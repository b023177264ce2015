"""Conversation state in Redis: thread key -> open conversation with its reference and queue.

One Lua script places an inbound message atomically and idempotently: the result for an
inbound event id is remembered, so a redelivered message gets the same conversation, the same
reference and the same ``is_new`` flag, whatever happened in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from libs.common.events import event_id
from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text
from libs.domain.references import reference_for

SEEN_TTL = 7 * DAY
HISTORY_LIMIT = 50
"""Conversations kept in a customer's contact history."""

# KEYS: seen, thread map, sequence, conversation-prefix, customer key (or "")
# ARGV: candidate conversation id, queue if new, now (ms), reopen window (ms), channel,
#       thread key, seen TTL, customer id (or ""), history length
_PLACE = """
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
"""


@dataclass(frozen=True, slots=True)
class Placement:
    conversation_id: str
    reference: str
    queue: str
    state: str  # "new", "reopened" or "old"

    @property
    def is_new(self) -> bool:
        return self.state == "new"


class ConversationStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: ScriptBatcher) -> None:
        self._redis = redis
        self._keys = keys
        self._place = redis.register_script(_PLACE)
        self._scripts = scripts

    async def place(
        self,
        *,
        inbound_event_id: str,
        thread_key: str,
        channel: str,
        queue_if_new: str,
        now: datetime,
        reopen_window_seconds: float,
        customer_id: str | None = None,
    ) -> Placement:
        """Attach a message to its thread's open conversation, or open one, and (with a
        customer) add it to the customer's history and open conversations: one round trip."""
        result = await self._scripts.call(
            self._place,
            keys=[
                self._keys.router_seen(inbound_event_id),
                self._keys.conversation_by_thread(thread_key),
                self._keys.conversation_sequence(),
                self._keys.conversation(""),
                self._keys.customer(customer_id) if customer_id else "",
            ],
            args=[
                event_id(inbound_event_id, "conversation"),
                queue_if_new,
                int(now.timestamp() * 1000),
                int(reopen_window_seconds * 1000),
                channel,
                thread_key,
                SEEN_TTL,
                customer_id or "",
                HISTORY_LIMIT,
            ],
        )
        conversation_id, sequence, queue, state = (v.decode() for v in result)
        return Placement(
            conversation_id=conversation_id,
            reference=reference_for(int(sequence)),
            queue=queue,
            state=state,
        )


# KEYS: conversation hash; ARGV: score. Only an existing conversation gets one.
_RECORD_CSAT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'csat', ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    reference: str
    queue: str
    status: str
    thread_key: str
    channel: str
    customer_id: str | None


class ConversationRecords:
    """Reads and agent-driven changes of conversations (placement is :class:`ConversationStore`)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._record_csat = redis.register_script(_RECORD_CSAT)

    async def get(self, conversation_id: str) -> Conversation | None:
        raw = await self._redis.hgetall(self._keys.conversation(conversation_id))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return Conversation(
            conversation_id=conversation_id,
            reference=reference_for(int(fields["sequence"])),
            queue=fields["queue"],
            status=fields["status"],
            thread_key=fields["thread_key"],
            channel=fields["channel"],
            customer_id=fields.get("customer_id") or None,
        )

    async def id_by_thread(self, thread_key: str) -> str | None:
        """The id of the thread's latest conversation, if it has one."""
        found = await self._redis.get(self._keys.conversation_by_thread(thread_key))
        return as_text(found) if found is not None else None

    async def resolve(self, conversation_id: str, at: datetime) -> None:
        await self._redis.hset(
            self._keys.conversation(conversation_id),
            mapping={"status": "resolved", "resolved_at": int(at.timestamp() * 1000)},
        )

    async def record_csat(self, conversation_id: str, score: int) -> bool:
        """Store the customer's CSAT score (field ``csat``); False when there is no such
        conversation (nothing is written then)."""
        written = await self._record_csat(
            keys=[self._keys.conversation(conversation_id)], args=[score]
        )
        return bool(written)

    async def transfer(self, conversation_id: str, queue: str) -> None:
        await self._redis.hset(self._keys.conversation(conversation_id), "queue", queue)
