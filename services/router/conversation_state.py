"""Conversation state in Redis: thread key -> open conversation with its reference and queue.

One Lua script places an inbound message atomically and idempotently: the result for an
inbound event id is remembered, so a redelivered message gets the same conversation, the same
reference and the same ``is_new`` flag, whatever happened in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from libs.common.events import SurveyKind, event_id
from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script
from libs.domain.references import reference_for

SEEN_TTL = 7 * DAY
HISTORY_LIMIT = 50
"""Conversations kept in a customer's contact history."""


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
        self._place = redis.register_script(load_script("services.router", "place_message.lua"))
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
                self._keys.customer(customer_id or ""),
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
        self._record_survey = redis.register_script(
            load_script("services.router", "record_csat.lua")
        )

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

    async def record_survey(self, conversation_id: str, kind: SurveyKind, score: int) -> bool:
        """Store the customer's survey score (field ``csat`` or ``nps``); False when there is
        no such conversation (nothing is written then)."""
        written = await self._record_survey(
            keys=[self._keys.conversation(conversation_id)], args=[kind, score]
        )
        return bool(written)

    async def transfer(self, conversation_id: str, queue: str) -> None:
        await self._redis.hset(self._keys.conversation(conversation_id), "queue", queue)
