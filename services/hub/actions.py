"""Agent actions: validated, authorised, published to Kafka, and only then acknowledged.

An action's event id derives from the agent and the client's id, so a resent action is the
same event. A Redis marker written *after* Kafka acknowledged it answers later resends with
the same ack and no second publish; a ``pending`` marker means the same action is being
published right now (another tab) and the client should try again. A reply is also an
``agent_reply`` outbound command addressed from the conversation, as the router addresses
its acknowledgements. Records are keyed by the conversation's thread key, like every topic.

A ``change_issue_type`` (and a transfer) is a correction of the router: its event carries the
issue type the conversation had, the one the agent gives it (a configured type), and the id
of the customer message that type was given to, never the message's text (the classifier's
tools fetch it from the transcript, see ``switchboard corrections export``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final

from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.events import AgentAction, Event, OutboundCommand, event_id
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.topics import Topics
from libs.contracts.agent_access import AgentClaims
from services.hub import protocol
from services.hub.open_conversations import Conversation, OpenConversations

log = get_logger(__name__)
SOURCE: Final = "/hub"
PENDING_TTL: Final = 30
DONE_TTL: Final = 7 * DAY
NEEDS_TEXT: Final = frozenset({"reply", "note"})


class Rejected(Exception):
    def __init__(self, code: str, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry = retry


def action_id(agent: str, client_id: str) -> str:
    return event_id("hub", "action", agent, client_id)


def command_id(action: str) -> str:
    return event_id(action, "agent_reply")


class ActionPublisher:
    def __init__(
        self,
        *,
        producer: EventProducer,
        redis: Redis,
        keys: Keys,
        topics: Topics,
        conversations: OpenConversations,
        known_queues: Callable[[], frozenset[str]],
        known_issue_types: Callable[[], frozenset[str]],
        timeout: float,
        clock: Clock,
    ) -> None:
        self._producer = producer
        self._clock = clock
        self._redis = redis
        self._keys = keys
        self._topics = topics
        self._conversations = conversations
        self._known_queues = known_queues
        self._known_issue_types = known_issue_types
        self._timeout = timeout

    def issue_types(self) -> frozenset[str]:
        """The issue types an agent may give a conversation: the configuration's."""
        return self._known_issue_types()

    async def perform(self, agent: AgentClaims, action: protocol.Action) -> str:
        """The ``ack`` or ``error`` frame for one action."""
        try:
            frame = await self._perform(agent, action)
        except Rejected as exc:
            metrics.hub_actions.labels(action.kind, "retry" if exc.retry else "rejected").inc()
            return protocol.error(exc.code, exc.message, action.id, retry=exc.retry)
        return frame

    async def _perform(self, agent: AgentClaims, action: protocol.Action) -> str:
        self._validate(action)
        the_id = action_id(agent.agent, action.id)
        ack = protocol.frame(
            "ack",
            id=action.id,
            action_id=the_id,
            command_id=command_id(the_id) if action.kind == "reply" else None,
        )
        marker = self._keys.hub_action(the_id)
        try:
            if not await self._redis.set(marker, b"pending", nx=True, ex=PENDING_TTL):
                if await self._redis.get(marker) == b"done":
                    metrics.hub_actions.labels(action.kind, "duplicate").inc()
                    return ack
                raise Rejected("in_progress", "this action is being published", retry=True)
        except RedisError as exc:
            raise Rejected("unavailable", "try again", retry=True) from exc
        try:
            outgoing = await self._build(agent, action, the_id)
            await asyncio.wait_for(self._producer.publish(outgoing), self._timeout)
        except Rejected:
            await self._redis.delete(marker)
            raise
        except (KafkaError, RedisError, TimeoutError) as exc:
            log.warning("agent action not published", error=repr(exc), action_id=the_id)
            await self._redis.delete(marker)
            raise Rejected("unavailable", "try again", retry=True) from exc
        except BaseException:
            await self._redis.delete(marker)
            raise
        await self._redis.set(marker, b"done", ex=DONE_TTL)
        metrics.hub_actions.labels(action.kind, "published").inc()
        return ack

    def _validate(self, action: protocol.Action) -> None:
        if action.kind in NEEDS_TEXT and not (action.text or "").strip():
            raise Rejected("text_required", f"{action.kind} needs a text")
        if action.kind == "transfer":
            if action.queue is None:
                raise Rejected("queue_required", "transfer needs a queue")
            if action.queue not in self._known_queues():
                raise Rejected("unknown_queue", f"no queue {action.queue!r}")
        if action.kind == "change_issue_type" and action.issue_type is None:
            raise Rejected("issue_type_required", "change_issue_type needs an issue_type")
        if action.issue_type is not None:
            if action.kind not in ("change_issue_type", "transfer"):
                raise Rejected("invalid_frame", f"{action.kind} takes no issue_type")
            if action.issue_type not in self._known_issue_types():
                raise Rejected("unknown_issue_type", f"no issue type {action.issue_type!r}")

    async def _build(
        self, agent: AgentClaims, action: protocol.Action, the_id: str
    ) -> list[Outgoing]:
        conversation = await self._conversations.get(action.conversation_id)
        if conversation is None:
            raise Rejected("unknown_conversation", "no such conversation")
        if conversation.queue not in agent.queues:
            raise Rejected("forbidden", "the conversation is in a queue your token does not allow")
        corrects = action.kind in ("change_issue_type", "transfer")
        if action.kind == "change_issue_type":
            if conversation.message_id is None:
                raise Rejected(
                    "not_classified",
                    "the hub has not seen this conversation's message yet",
                    retry=True,
                )
            if action.issue_type == conversation.issue_type:
                raise Rejected("unchanged", f"the conversation is {action.issue_type} already")
        now = self._clock()
        data = AgentAction(
            action_id=the_id,
            kind=action.kind,
            conversation_id=conversation.conversation_id,
            agent=agent.agent,
            text=action.text,
            queue=action.queue if action.kind == "transfer" else None,
            at=now,
            issue_type=action.issue_type,
            previous_issue_type=conversation.issue_type if corrects else None,
            message_id=conversation.message_id if corrects else None,
        )
        key = conversation.thread_key
        outgoing = [Outgoing(self._topics.agent_actions, key, self._event(the_id, key, data, now))]
        if action.kind == "reply":
            command = self._reply(conversation, command_id(the_id), action.text or "")
            outgoing.append(
                Outgoing(
                    self._topics.outbound_commands,
                    key,
                    self._event(command.command_id, key, command, now),
                )
            )
        return outgoing

    @staticmethod
    def _reply(conversation: Conversation, the_id: str, text: str) -> OutboundCommand:
        if conversation.reference is None or conversation.reply_to is None:
            raise Rejected(
                "not_answerable", "the hub does not know how to reach this customer yet", retry=True
            )
        return OutboundCommand(
            command_id=the_id,
            kind="agent_reply",
            channel=conversation.channel,  # type: ignore[arg-type]
            conversation_id=conversation.conversation_id,
            reference=conversation.reference,
            recipient=conversation.reply_to,
            sender=conversation.reply_from,
            text=text,
            in_reply_to=conversation.in_reply_to,
        )

    @staticmethod
    def _event(
        the_id: str, subject: str, data: AgentAction | OutboundCommand, at: datetime
    ) -> Event:
        return Event(id=the_id, source=SOURCE, subject=subject, time=at, data=data)
