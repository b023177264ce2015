"""Conversation state in Redis: thread key -> open conversation with its reference and queue.

Placing a message touches a thread, a conversation, the reference sequence and a customer,
which a Redis Cluster keeps in different slots, so it is a sequence of single-slot steps, each
safe to repeat (see :meth:`ConversationStore.place`). A redelivered message gets the same
conversation, the same reference and the same ``is_new`` flag, whether the first delivery
finished or crashed after any step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from libs.common.events import SurveyKind, event_id
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.redis_client import ScriptBatcher, as_text, load_script
from libs.domain.references import reference_for

log = get_logger(__name__)

SEEN_TTL = 7 * DAY
"""How long a message's outcome, a conversation's reference claim and its number's owner are
kept: redeliveries come sooner."""
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
        self._keys = keys
        self._scripts = scripts
        self._touch = redis.register_script(
            load_script("services.router", "touch_conversation.lua")
        )
        self._claim_reference = redis.register_script(
            load_script("services.router", "claim_reference.lua")
        )
        self._create = redis.register_script(
            load_script("services.router", "create_conversation.lua")
        )
        self._commit = redis.register_script(load_script("services.router", "commit_placement.lua"))
        self._note = redis.register_script(load_script("services.router", "note_conversation.lua"))

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
        customer) add it to the customer's history and open conversations.

        The steps: read the message's seen marker and the thread's conversation; touch (or
        reopen) that conversation, or claim a reference for the conversation named after the
        message and create it; map the thread and write the marker together; note the
        conversation in the customer's profile (on every delivery: repeatable). The marker
        comes after the conversation's steps, so a marked message was placed; every step before
        it is create-once or keyed by the message, so a repeat after a crash arrives at the same
        conversation and reference. The note comes last: the open conversation it adds is what
        the customer's next message is steered by."""
        seen_key = self._keys.router_seen(thread_key, inbound_event_id)
        thread = self._keys.conversation_by_thread(thread_key)
        ms = int(now.timestamp() * 1000)
        seen, current = await self._scripts.command("MGET", seen_key, thread)
        if seen is not None:
            conversation_id, _, state = as_text(seen).rpartition("|")
            sequence, queue = await self._scripts.command(
                "HMGET", self._keys.conversation(conversation_id), "sequence", "queue"
            )
        else:
            touched = []
            if current is not None:
                conversation_id = as_text(current)
                touched = await self._scripts.call(
                    self._touch,
                    keys=[self._keys.conversation(conversation_id)],
                    args=[
                        ms,
                        int(reopen_window_seconds * 1000),
                        inbound_event_id,
                        customer_id or "",
                    ],
                )
            if len(touched) == 3:  # the thread's conversation goes on
                state, sequence, queue = as_text(touched[0]), touched[1], touched[2]
            else:
                conversation_id, state = event_id(inbound_event_id, "conversation"), "new"
                number = await self._reference_number(conversation_id)
                sequence, queue = await self._scripts.call(
                    self._create,
                    keys=[self._keys.conversation(conversation_id)],
                    args=[number, queue_if_new, ms, channel, thread_key, customer_id or ""],
                )
            await self._scripts.call(
                self._commit, keys=[thread, seen_key], args=[conversation_id, state, SEEN_TTL]
            )
        if sequence is None or queue is None:
            raise LookupError(f"conversation {conversation_id} is gone")
        if customer_id:  # last: the open conversation it adds steers the customer's next ones
            await self._scripts.call(
                self._note,
                keys=[
                    self._keys.customer_history(customer_id),
                    self._keys.customer_open(customer_id),
                ],
                args=[conversation_id, ms, as_text(queue), HISTORY_LIMIT],
            )
        return Placement(
            conversation_id=conversation_id,
            reference=reference_for(int(as_text(sequence))),
            queue=as_text(queue),
            state=state,
        )

    async def _reference_number(self, conversation_id: str) -> int:
        """The conversation's sequence number: claimed once, then owned once.

        The sequence and its claims share one slot, so a failover that loses the primary's
        latest writes before its replica has them can set the sequence back, and the next claim
        would repeat a number already given out. The owner marker lives in another slot: a
        number it gives to another conversation is claimed again, the next one along."""
        taken: int | str = ""
        while True:
            number = int(
                await self._scripts.call(
                    self._claim_reference,
                    keys=[
                        self._keys.conversation_sequence(),
                        self._keys.conversation_reference(conversation_id),
                    ],
                    args=[SEEN_TTL, taken],
                )
            )
            owner_key = self._keys.reference_owner(number)
            if await self._scripts.command("SET", owner_key, conversation_id, "NX", "EX", SEEN_TTL):
                return number
            owner = await self._scripts.command("GET", owner_key)
            if owner is None:  # expired in between: the claim gives the same number again
                continue
            if as_text(owner) == conversation_id:  # a repeat
                return number
            log.warning(
                "reference number already given out: the sequence lost increments",
                number=number,
                owner=as_text(owner),
                conversation_id=conversation_id,
            )
            taken = number


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
