"""Each conversation's transcript: everything that happened in it, kept by the fan-out from
the events it already reads, so a console opened later (or reloaded) shows the whole
conversation, not only what arrived while it was open.

Entries are customer messages (channel, sender, subject, and why the message was routed where
it was), messages sent to the customer (acknowledgements, agent replies, status updates,
surveys) with their delivery state, notes, other agent actions and SLA events. Each entry has
an id derived from the event that caused it, so a redelivered event rewrites the same entry.
An agent reply is written from the agent's action (who, what) and from its receipt (delivery
state), whichever comes first; the action's entry wins, the receipt's state is kept apart.
Entries are ordered by their own time (a message by when it was received), newest 1,000 kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from redis.asyncio import Redis

from libs.common.events import (
    AgentAction,
    ConversationRouted,
    CustomerIdentity,
    Event,
    OutboundReceipt,
    Requirements,
    SlaEvent,
)
from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script

TRANSCRIPT_TTL: Final = 30 * DAY
MAX_ENTRIES: Final = 1000
DELIVERY: Final = "delivery:"
PENDING: Final = "pending"
"""The delivery state of an outbound message no receipt has answered yet."""

EntryKind = Literal["inbound", "outbound", "note", "action", "sla", "assignment"]


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    """Why a customer message went where it went."""

    queue: str
    priority: int
    rule: str
    conditions: tuple[str, ...]
    issue_type: str
    confidence: float
    notes: tuple[str, ...] = ()
    sla_policy: str | None = None
    requires: Requirements | None = None


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of a transcript, as the ``transcript`` frame lists it."""

    id: str
    kind: EntryKind
    at: datetime
    channel: str | None = None
    text: str | None = None
    subject: str | None = None
    sender: CustomerIdentity | None = None
    routing: Routing | None = None
    agent: str | None = None
    action_id: str | None = None
    command_id: str | None = None
    command_kind: str | None = None
    delivery: str | None = None
    action: str | None = None
    queue: str | None = None
    metric: str | None = None
    sla: str | None = None
    deadline: datetime | None = None
    issue_type: str | None = None
    previous_issue_type: str | None = None
    step: int | None = None


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def outbound_entry_id(command_id: str) -> str:
    return f"out:{command_id}"


def inbound_entry_id(message_id: str) -> str:
    return f"in:{message_id}"


def inbound(routed: ConversationRouted) -> Entry:
    return Entry(
        id=inbound_entry_id(routed.message_id),
        kind="inbound",
        at=routed.received_at,
        channel=routed.channel,
        text=routed.text,
        subject=routed.subject,
        sender=routed.customer,
        routing=Routing(
            queue=routed.queue,
            priority=routed.priority,
            rule=routed.explanation.rule,
            conditions=routed.explanation.conditions,
            issue_type=routed.explanation.issue_type,
            confidence=routed.explanation.confidence,
            notes=routed.explanation.notes,
            sla_policy=routed.sla_policy,
            requires=routed.requires,
        ),
    )


def relaxed(queue: str, step: int, text: str, at: datetime) -> Entry:
    """Push assignment moved the conversation to ``step`` of its queue's relaxation ladder."""
    return Entry(
        id=f"relax:{step}:{_ms(at)}", kind="assignment", at=at, queue=queue, step=step, text=text
    )


def clock(event: Event, sla: SlaEvent) -> Entry:
    return Entry(
        id=f"sla:{event.id}",
        kind="sla",
        at=event.time,
        queue=sla.queue,
        metric=sla.metric,
        sla=sla.kind,
        deadline=sla.deadline,
    )


def agent_entry(action: AgentAction, reply_command_id: str | None) -> Entry:
    """A reply (an outbound message naming its command), a note, or another action."""
    if reply_command_id is not None:
        return Entry(
            id=outbound_entry_id(reply_command_id),
            kind="outbound",
            at=action.at,
            text=action.text,
            agent=action.agent,
            action_id=action.action_id,
            command_id=reply_command_id,
            command_kind="agent_reply",
        )
    if action.kind == "note":
        return Entry(
            id=f"note:{action.action_id}",
            kind="note",
            at=action.at,
            text=action.text,
            agent=action.agent,
            action_id=action.action_id,
        )
    return Entry(
        id=f"action:{action.action_id}",
        kind="action",
        at=action.at,
        agent=action.agent,
        action_id=action.action_id,
        action=action.kind,
        queue=action.queue,
        issue_type=action.issue_type,
        previous_issue_type=action.previous_issue_type,
    )


def sent(event: Event, receipt: OutboundReceipt) -> Entry:
    return Entry(
        id=outbound_entry_id(receipt.command_id),
        kind="outbound",
        at=event.time,
        channel=receipt.channel,
        text=receipt.text,
        command_id=receipt.command_id,
        command_kind=receipt.kind,
    )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Entry).decode


class Transcripts:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        scripts: ScriptBatcher | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._max_entries = max_entries
        self._scripts = ScriptBatcher(redis) if scripts is None else scripts
        self._record = redis.register_script(load_script("services.hub", "record_entry.lua"))

    async def record(
        self,
        conversation_id: str,
        entry: Entry,
        *,
        authoritative: bool = True,
        delivery: str | None = None,
    ) -> None:
        """Write an entry (one script call, batched with the other handlers'); one that is not
        ``authoritative`` (an outbound message seen only through its receipt) never replaces
        what an agent's action wrote. ``delivery`` sets the message's delivery state."""
        await self._scripts.call(
            self._record,
            [
                self._keys.hub_transcript(conversation_id),
                self._keys.hub_transcript_entries(conversation_id),
            ],
            [
                entry.id,
                _ms(entry.at),
                _encode(entry),
                int(authoritative),
                TRANSCRIPT_TTL,
                self._max_entries,
                DELIVERY,
                delivery or "",
            ],
        )

    async def delivered(self, conversation_id: str, event: Event, receipt: OutboundReceipt) -> None:
        """A receipt: the message's delivery state, and the message itself when no agent
        action wrote it (acknowledgements, status updates, surveys)."""
        await self.record(
            conversation_id, sent(event, receipt), authoritative=False, delivery=receipt.status
        )

    async def message_text(self, conversation_id: str, message_id: str) -> str | None:
        """A customer message as the router classified it (subject, then text), while the
        transcript keeps it; None after that."""
        raw: Any = await self._redis.hget(
            self._keys.hub_transcript_entries(conversation_id), inbound_entry_id(message_id)
        )
        if raw is None:
            return None
        entry = _decode(raw)
        return f"{entry.subject}\n{entry.text or ''}" if entry.subject else entry.text

    async def page(
        self, conversation_id: str, before: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` entries older than the entry ``before`` (None: the newest), oldest
        first, and whether older ones remain."""
        order = self._keys.hub_transcript(conversation_id)
        start = 0
        if before is not None:
            rank: Any = await self._redis.zrevrank(order, before)
            if rank is None:
                return [], False
            start = int(rank) + 1
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(order, start, start + limit - 1)
            pipe.zcard(order)
            members, total = await pipe.execute()
        ids = [as_text(member) for member in reversed(members)]
        if not ids:
            return [], False
        raws: Any = await self._redis.hmget(
            self._keys.hub_transcript_entries(conversation_id),
            [*ids, *(DELIVERY + i for i in ids)],
        )
        entries = []
        for raw, delivery in zip(raws[: len(ids)], raws[len(ids) :], strict=True):
            if raw is None:  # trimmed while being read
                continue
            entry = _decode(raw)
            if entry.kind == "outbound":
                entry = msgspec.structs.replace(
                    entry, delivery=as_text(delivery) if delivery else PENDING
                )
            entries.append(msgspec.to_builtins(entry))
        return entries, start + limit < int(total)
