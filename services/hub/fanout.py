"""The fan-out: Kafka events of conversations, SLA clocks, receipts, incidents and agent
actions, appended to the streams of the queues they concern.

It runs as one consumer group shared by every hub replica, so each record is fanned out once
(and at most once more on redelivery, which the streams' markers absorb). Every replica's
sockets then read the streams (:mod:`services.hub.feeds`), whichever replica appended.
Snapshot state is changed *before* the append, so a snapshot taken after an entry was
appended already reflects it. Changes that matter to push assignment (a conversation opened,
claimed, resolved or transferred) are told to the assigner, which wakes the queue's pass.
SLA clocks met, warned and breached and survey answers are counted in the queue's figures of
the day (:mod:`services.hub.figures`); an answer is then a ``survey`` entry of the queue's
stream, so supervisors' sockets on every replica hear that the figures changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from libs.common import metrics
from libs.common.events import (
    AgentAction,
    ConversationRouted,
    DeliveryReport,
    Event,
    EventData,
    IncidentDetected,
    OutboundReceipt,
    SlaEvent,
    SurveyAnswered,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.tracing import annotate
from services.hub import transcript
from services.hub.actions import command_id
from services.hub.assignment import Assigner
from services.hub.figures import Figures
from services.hub.incidents import Incidents
from services.hub.open_conversations import OpenConversations
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts

RUNNING: Final = frozenset({"started", "warning", "breached", "resumed", "recomputed"})
"""SLA event kinds after which the clock's deadline still counts for the queue's order."""


class StreamPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a stream entry holds; the ``event`` frame is this plus ``queue`` and ``id``."""

    kind: str
    event_id: str
    event_type: str
    time: datetime
    conversation_id: str | None
    data: EventData
    conversation: dict[str, Any] | None = None
    """On ``transferred_in``: the conversation as a snapshot lists it (the new queue's agents
    may never have seen it)."""


_encode = msgspec.json.Encoder().encode


class FanOut:
    def __init__(
        self,
        streams: QueueStreams,
        conversations: OpenConversations,
        assigner: Assigner,
        transcripts: Transcripts,
        figures: Figures,
        incidents: Incidents,
    ) -> None:
        self._streams = streams
        self._conversations = conversations
        self._assigner = assigner
        self._transcripts = transcripts
        self._figures = figures
        self._incidents = incidents

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        event = consumed.event
        data = event.data
        if isinstance(data, ConversationRouted):
            await self._transcripts.record(data.conversation_id, transcript.inbound(data))
            group, _ = await self._settle(data.conversation_id, data.queue)
            await self._conversations.opened(data, group)
            if data.incident_id is not None:
                await self._incidents.linked(
                    data.incident_id, data.conversation_id, data.queue, data.received_at
                )
            self._assigner.wake(data.queue)
            await self._append(data.queue, "routed", event, data.conversation_id)
        elif isinstance(data, SlaEvent):
            due = data.deadline if data.kind in RUNNING else None
            await self._transcripts.record(data.conversation_id, transcript.clock(event, data))
            await self._conversations.deadline(
                data.conversation_id, data.queue, data.metric, due, data.kind
            )
            await self._figures.clock(data, event.time)
            if data.metric == "first_response" and data.kind in ("warning", "breached"):
                self._assigner.wake(data.queue)  # the floor of its relaxation ladder
            await self._append(data.queue, "sla", event, data.conversation_id)
        elif isinstance(data, OutboundReceipt):
            await self._transcripts.delivered(data.conversation_id, event, data)
            queue = await self._conversations.queue_of(data.conversation_id)
            if queue is not None:
                await self._append(queue, "receipt", event, data.conversation_id)
        elif isinstance(data, DeliveryReport) and data.conversation_id is not None:
            queue = await self._conversations.queue_of(data.conversation_id)
            if queue is not None:  # delivered, read (WhatsApp), failed: shown on the message
                await self._append(queue, "delivery", event, data.conversation_id)
        elif isinstance(data, IncidentDetected):
            queue = data.queue or await self._conversations.queue_of(data.first_conversation_id)
            if queue is not None:
                await self._incidents.detected(data, queue)
                await self._append(queue, "incident", event, data.first_conversation_id)
        elif isinstance(data, AgentAction):
            await self._action(event, data)
        elif isinstance(data, SurveyAnswered):
            queue = await self._conversations.queue_of(data.conversation_id)
            if queue is not None:
                await self._figures.answer(queue, data)
                await self._append(queue, "survey", event, data.conversation_id)
        return []  # delivery reports naming no conversation and other types concern no queue

    async def _action(self, event: Event, action: AgentAction) -> None:
        conversation = action.conversation_id
        reply = command_id(action.action_id) if action.kind == "reply" else None
        await self._transcripts.record(conversation, transcript.agent_entry(action, reply))
        if action.issue_type is not None:  # a change of issue type, or a transfer naming one
            await self._conversations.retyped(conversation, action.issue_type)
        if action.kind == "transfer" and action.queue is not None:
            group, relocated_from = await self._settle(conversation, action.queue, withdraw=True)
            left = await self._conversations.moved(conversation, action.queue, group)
            left = relocated_from or left
            self._assigner.wake(action.queue)
            if left is not None and left != action.queue:
                await self._append(left, "transferred_out", event, conversation)
            [summary] = await self._conversations.summaries([conversation])
            await self._append(action.queue, "transferred_in", event, conversation, summary)
            return
        if action.kind == "resolve":
            queue = await self._conversations.closed(
                conversation
            ) or await self._conversations.queue_of(conversation)
            await self._assigner.dropped(conversation)
        else:
            if action.kind == "claim":
                await self._assigner.claimed(conversation, action.agent, action.at)
            queue = await self._conversations.queue_of(conversation)
        if queue is not None:
            await self._append(queue, "action", event, conversation)

    async def _settle(
        self, conversation_id: str, queue: str, *, withdraw: bool = False
    ) -> tuple[str, str | None]:
        """The assignment group of ``queue``, where the conversation's summary is moved first
        when another group holds it (its offer or assignment there withdrawn, as it is always
        with ``withdraw``: a transfer); and the queue it left by that move."""
        conversations = self._conversations
        group = conversations.groups.of_queue(queue)
        held = await conversations.locate(conversation_id, queue)
        if withdraw or held != group:
            await self._assigner.dropped(conversation_id, held)
        if held == group:
            return group, None
        return group, await conversations.relocate(conversation_id, held, group, queue)

    async def _append(
        self,
        queue: str,
        kind: str,
        event: Event,
        conversation_id: str | None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        payload = StreamPayload(
            kind=kind,
            event_id=event.id,
            event_type=event.type,
            time=event.time,
            conversation_id=conversation_id,
            data=event.data,
            conversation=summary,
        )
        annotate(conversation_id=conversation_id, queue=queue, hub_event=kind)
        await self._streams.append(queue, f"{event.id}/{kind}", _encode(payload))
        metrics.hub_events_fanned_out.labels(kind).inc()
