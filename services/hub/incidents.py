"""Incidents as the agents see them: state a console opened later still finds, and one answer
for every customer caught in one.

The fan-out records an incident when the router's ``incident.detected`` arrives and links a
conversation when a routed message carries ``incident_id``. The router publishes the message
that opened the incident before announcing it, so a link may come before its record: both are
kept independently. A queue lists an incident while one of its open conversations is linked to
it, and a snapshot carries that list.

``answer_incident`` sends the ``status-update`` template to the customer of each open linked
conversation in the agent's queues, with a note of who sent it, and acknowledges after Kafka
did. A command's id derives from the incident and the conversation, and the action
publisher's ``pending``/``done`` marker of that id is taken before publishing, so a repeat
(another click, another agent, a resend after a reconnect) sends no customer the update twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.config import STATUS_UPDATE_TEMPLATE, Config
from libs.common.events import AgentAction, Event, IncidentDetected, OutboundCommand, event_id
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.redis_client import as_text, get_many, transaction
from libs.common.topics import Topics
from libs.contracts.agent_access import AgentClaims
from services.hub import protocol
from services.hub.actions import DONE_TTL, PENDING_TTL, SOURCE, Rejected
from services.hub.groups import AssignmentGroups
from services.hub.open_conversations import Conversation, OpenConversations

log = get_logger(__name__)
KEEP: Final = 30 * DAY
LISTED: Final = 50
"""Incidents of one queue a snapshot lists at most (the most recently active first)."""
KIND: Final = "answer_incident"


def status_update_id(incident_id: str, conversation_id: str) -> str:
    """The command that gives one conversation's customer the incident's status update."""
    return event_id(incident_id, conversation_id, "status_update")


def status_update_channels(config: Config) -> frozenset[str]:
    """The channels the ``status-update`` template has a text for: only those are answered."""
    return frozenset(config.templates.get(STATUS_UPDATE_TEMPLATE, {}))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Incidents:
    """What the fan-out records and snapshots list (keys: ``hub:incident*`` in keys.py)."""

    def __init__(self, redis: Redis, keys: Keys, groups: AssignmentGroups) -> None:
        self._redis = redis
        self._keys = keys
        self._groups = groups

    async def detected(self, incident: IncidentDetected, queue: str) -> None:
        """The router detected ``incident``; ``queue`` is where its first conversation is.
        The record and the queue's list are in different slots: each write repeats harmlessly."""
        key = self._keys.hub_incident(incident.incident_id)
        async with transaction(self._redis) as pipe:
            pipe.hset(
                key,
                mapping={
                    "key": incident.key,
                    "issue_type": incident.issue_type,
                    "customers": incident.customers,
                    "window_seconds": incident.window_seconds,
                    "detected_at": _ms(incident.detected_at),
                    "queue": queue,
                },
            )
            pipe.expire(key, KEEP)
            await pipe.execute()
        async with transaction(self._redis) as pipe:
            self._list(pipe, queue, incident.incident_id, incident.detected_at)
            await pipe.execute()

    async def linked(
        self, incident_id: str, conversation_id: str, queue: str, at: datetime
    ) -> None:
        """A message of ``conversation_id`` (in ``queue``, received ``at``) is part of it."""
        key = self._keys.hub_incident_linked(self._groups.of_queue(queue), incident_id)
        async with transaction(self._redis) as pipe:
            pipe.sadd(key, conversation_id)
            pipe.expire(key, KEEP)
            self._list(pipe, queue, incident_id, at)
            await pipe.execute()

    def _list(self, pipe: Pipeline, queue: str, incident_id: str, at: datetime) -> None:
        listed = self._keys.hub_incidents(self._groups.of_queue(queue), queue)
        pipe.zadd(listed, {incident_id: _ms(at)}, gt=True)
        pipe.zremrangebyscore(listed, "-inf", _ms(at) - KEEP * 1000)

    async def open_in(self, queue: str) -> list[dict[str, Any]]:
        """The queue's incidents that still have an open linked conversation in it, most
        recently active first, each with those conversations (soonest breach first)."""
        group = self._groups.of_queue(queue)
        newest: Any = await self._redis.zrevrange(
            self._keys.hub_incidents(group, queue), 0, LISTED - 1
        )
        ids = [as_text(member) for member in newest]
        async with self._redis.pipeline(transaction=False) as pipe:
            for incident_id in ids:
                pipe.hgetall(self._keys.hub_incident(incident_id))
                pipe.zinter(
                    [
                        self._keys.hub_open(group, queue),
                        self._keys.hub_incident_linked(group, incident_id),
                    ]
                )
            replies = await pipe.execute()
        listed = []
        for incident_id, raw, members in zip(ids, replies[::2], replies[1::2], strict=True):
            conversations = [as_text(member) for member in members]
            if conversations:
                record = {as_text(k): as_text(v) for k, v in raw.items()}
                listed.append(_shown(incident_id, record, conversations))
        return listed

    async def open_linked(self, incident_id: str, queues: frozenset[str]) -> list[str] | None:
        """The open conversations of ``queues`` linked to the incident (None: no such
        incident)."""
        keys, groups = self._keys, self._groups
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.hub_incident(incident_id))
            for queue in sorted(queues):
                group = groups.of_queue(queue)
                pipe.exists(keys.hub_incident_linked(group, incident_id))
                pipe.zinter(
                    [keys.hub_open(group, queue), keys.hub_incident_linked(group, incident_id)]
                )
            recorded, *replies = await pipe.execute()
        known = recorded or any(replies[::2])
        per_queue = replies[1::2]
        if not known:
            return None
        return list(dict.fromkeys(as_text(member) for members in per_queue for member in members))


def _shown(incident_id: str, record: dict[str, str], conversations: list[str]) -> dict[str, Any]:
    """An incident as a snapshot lists it (fields null while only its links are known)."""
    detected = record.get("detected_at")
    return {
        "incident_id": incident_id,
        "issue_type": record.get("issue_type"),
        "customers": int(record["customers"]) if "customers" in record else None,
        "window_seconds": float(record["window_seconds"]) if "window_seconds" in record else None,
        "detected_at": (
            datetime.fromtimestamp(int(detected) / 1000, UTC).isoformat() if detected else None
        ),
        "queue": record.get("queue"),
        "conversations": conversations,
    }


class IncidentAnswers:
    """Answers ``answer_incident``: one status update per open linked conversation."""

    def __init__(
        self,
        *,
        incidents: Incidents,
        conversations: OpenConversations,
        producer: EventProducer,
        redis: Redis,
        keys: Keys,
        topics: Topics,
        template_channels: Callable[[], frozenset[str]],
        timeout: float,
        clock: Clock,
    ) -> None:
        self._incidents = incidents
        self._conversations = conversations
        self._producer = producer
        self._redis = redis
        self._keys = keys
        self._topics = topics
        self._template_channels = template_channels
        self._timeout = timeout
        self._clock = clock

    async def answer(self, agent: AgentClaims, request: protocol.AnswerIncident) -> str:
        """The ``ack`` (with how many customers were answered now and before) or ``error``."""
        try:
            answered, before = await self._answer(agent, request.incident_id)
        except Rejected as exc:
            metrics.hub_actions.labels(KIND, "retry" if exc.retry else "rejected").inc()
            return protocol.error(exc.code, exc.message, request.id, retry=exc.retry)
        except RedisError as exc:
            log.warning("incident not answered", error=repr(exc), incident_id=request.incident_id)
            metrics.hub_actions.labels(KIND, "retry").inc()
            return protocol.error("unavailable", "try again", request.id, retry=True)
        metrics.hub_actions.labels(KIND, "published" if answered else "duplicate").inc()
        return protocol.frame(
            "ack",
            id=request.id,
            action_id=None,
            command_id=None,
            incident_id=request.incident_id,
            answered=answered,
            already_answered=before,
        )

    async def _answer(self, agent: AgentClaims, incident_id: str) -> tuple[int, int]:
        linked = await self._incidents.open_linked(incident_id, agent.queues)
        if linked is None:
            raise Rejected("unknown_incident", "no such incident")
        channels = self._template_channels()
        targets = []
        for conversation_id in linked:
            conversation = await self._conversations.get(conversation_id)
            if (
                conversation is not None
                and conversation.status != "resolved"
                and conversation.queue in agent.queues
                and conversation.channel in channels
                and conversation.reference is not None
                and conversation.reply_to is not None
            ):
                targets.append(conversation)
        mine, before = await self._take(incident_id, targets)
        if not mine:
            return 0, before
        now = self._clock()
        outgoing = [
            record
            for conversation in mine
            for record in self._records(incident_id, conversation, agent.agent, now)
        ]
        markers = [self._marker(incident_id, c) for c in mine]
        try:
            await asyncio.wait_for(self._producer.publish(outgoing), self._timeout)
        except (KafkaError, RedisError, TimeoutError) as exc:
            log.warning("incident answer not published", error=repr(exc), incident_id=incident_id)
            await self._redis.delete(*markers)
            raise Rejected("unavailable", "try again", retry=True) from exc
        except BaseException:
            await self._redis.delete(*markers)
            raise
        async with self._redis.pipeline(transaction=False) as pipe:
            for marker in markers:
                pipe.set(marker, b"done", ex=DONE_TTL)
            await pipe.execute()
        return len(mine), before

    def _marker(self, incident_id: str, conversation: Conversation) -> str:
        return self._keys.hub_action(status_update_id(incident_id, conversation.conversation_id))

    async def _take(
        self, incident_id: str, targets: list[Conversation]
    ) -> tuple[list[Conversation], int]:
        """Mark the targets nobody answered yet as being answered here: those, and how many
        were answered before. Some being answered elsewhere right now: retry later."""
        markers = [self._marker(incident_id, c) for c in targets]
        async with self._redis.pipeline(transaction=False) as pipe:
            for marker in markers:
                pipe.set(marker, b"pending", nx=True, ex=PENDING_TTL)
            taken = await pipe.execute()
        mine = [c for c, ok in zip(targets, taken, strict=True) if ok]
        others = [m for m, ok in zip(markers, taken, strict=True) if not ok]
        states = await get_many(self._redis, others) if others else []
        if any(state != b"done" for state in states):
            if mine:
                await self._redis.delete(*(self._marker(incident_id, c) for c in mine))
            raise Rejected("in_progress", "this incident is being answered", retry=True)
        return mine, len(others)

    def _records(
        self, incident_id: str, conversation: Conversation, agent: str, now: datetime
    ) -> list[Outgoing]:
        """The status update, and the note that says who sent it, keyed by the thread."""
        the_id = status_update_id(incident_id, conversation.conversation_id)
        reference = conversation.reference or ""
        command = OutboundCommand(
            command_id=the_id,
            kind="status_update",
            channel=conversation.channel,  # type: ignore[arg-type]
            conversation_id=conversation.conversation_id,
            reference=reference,
            recipient=conversation.reply_to or "",
            sender=conversation.reply_from,
            template=STATUS_UPDATE_TEMPLATE,
            params={"reference": reference, "queue": conversation.queue},
            in_reply_to=conversation.in_reply_to,
        )
        note_id = event_id(the_id, "note")
        note = AgentAction(
            action_id=note_id,
            kind="note",
            conversation_id=conversation.conversation_id,
            agent=agent,
            text=f"Status update sent to every customer of incident {incident_id}",
            at=now,
        )
        key = conversation.thread_key
        return [
            Outgoing(self._topics.outbound_commands, key, _event(the_id, key, command, now)),
            Outgoing(self._topics.agent_actions, key, _event(note_id, key, note, now)),
        ]


def _event(the_id: str, subject: str, data: AgentAction | OutboundCommand, at: datetime) -> Event:
    return Event(id=the_id, source=SOURCE, subject=subject, time=at, data=data)
