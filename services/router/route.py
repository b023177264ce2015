"""Routing one inbound message: classify, decide, place in a conversation, explain.

Output ids derive from the inbound event id and every input to the decision comes from the
event itself (the received time, not the wall clock), so a redelivery yields the same events.
"""

from __future__ import annotations

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.deadlines import compute_deadline, describe_promise
from libs.common.events import (
    CommandKind,
    ConversationRouted,
    Event,
    InvalidEvent,
    MessageReceived,
    OutboundCommand,
    RoutingExplanation,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.text import normalise_text
from libs.common.topics import Topics
from services.router.conversations import ConversationStore, Placement
from services.router.rules import Decision, MessageFacts
from services.router.runtime import RouterRuntime

SOURCE = "/router"


class Router:
    def __init__(
        self,
        *,
        live: LiveConfig[RouterRuntime],
        conversations: ConversationStore,
        topics: Topics,
    ) -> None:
        self._live = live
        self._conversations = conversations
        self._topics = topics

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        message = consumed.event.data
        if not isinstance(message, MessageReceived):
            raise InvalidEvent(f"router expects message.received, got {consumed.event.type}")
        runtime = self._live.current
        with metrics.routing_seconds.time():
            text = f"{message.subject or ''}\n{message.text}"
            classification = runtime.classifier.classify(text)
            facts = MessageFacts(
                channel=message.channel,
                issue_type=classification.issue_type,
                impact=classification.impact,
                tier=None,
                language=message.language,
                sender=message.customer.email or message.customer.phone,
                folded_text=normalise_text(text),
            )
            decision = runtime.table.decide(facts, message.received_at)
        placement = await self._conversations.place(
            inbound_event_id=consumed.event.id,
            thread_key=message.thread_key,
            channel=message.channel,
            queue_if_new=decision.queue,
            now=message.received_at,
            reopen_window_seconds=runtime.config.conversations.reopen_window.total_seconds(),
        )
        routed = ConversationRouted(
            conversation_id=placement.conversation_id,
            reference=placement.reference,
            thread_key=message.thread_key,
            channel=message.channel,
            queue=placement.queue,
            priority=classification.priority or decision.priority,
            sla_policy=decision.sla_policy,
            issue_type=classification.issue_type,
            tags=decision.tags,
            is_new=placement.is_new,
            message_id=consumed.event.id,
            customer=message.customer,
            text=message.text,
            received_at=message.received_at,
            explanation=RoutingExplanation(
                rule=decision.rule,
                conditions=decision.conditions,
                issue_type=classification.issue_type,
                confidence=classification.confidence,
                notes=(
                    *decision.notes,
                    *(
                        [f"returning to the open conversation in {placement.queue}"]
                        if not placement.is_new
                        else []
                    ),
                ),
            ),
        )
        metrics.conversations_routed.labels(placement.queue, message.channel).inc()
        event = self._event(consumed, "routed", routed)
        outputs = [Outgoing(self._topics.routed, message.thread_key, event)]
        if placement.is_new and message.automated is None:
            outputs += [
                Outgoing(self._topics.outbound_commands, message.thread_key, command)
                for command in self._acknowledgements(
                    consumed, message, decision, placement, runtime
                )
            ]
        return outputs

    def _event(
        self, consumed: Consumed, step: str, data: ConversationRouted | OutboundCommand
    ) -> Event:
        return Event(
            id=event_id(consumed.event.id, step),
            source=SOURCE,
            subject=consumed.event.subject,
            time=consumed.event.time,
            data=data,
        )

    def _acknowledgements(
        self,
        consumed: Consumed,
        message: MessageReceived,
        decision: Decision,
        placement: Placement,
        runtime: RouterRuntime,
    ) -> list[Event]:
        """The automatic acknowledgement (and after-hours notice) of a new conversation."""
        config = runtime.config
        params = {"reference": placement.reference, "queue": placement.queue}
        if decision.sla_policy is not None:
            clock = config.sla_policies[decision.sla_policy].first_response
            calendar_name = config.policy_calendar(decision.sla_policy, placement.queue)
            calendar = runtime.calendars.get(calendar_name) if calendar_name else None
            if clock is not None:
                deadline = compute_deadline(clock, message.received_at, calendar)
                params["deadline"] = deadline.due.isoformat()
                params["promise"] = describe_promise(deadline, message.received_at, calendar)
        recipient = _reply_address(message)
        events = []
        wanted: tuple[tuple[CommandKind, str | None], ...] = (
            ("auto_ack", decision.auto_reply),
            ("after_hours", decision.after_hours_notify),
        )
        for kind, template in wanted:
            if template is None or recipient is None:
                continue
            command = OutboundCommand(
                command_id=event_id(consumed.event.id, kind),
                kind=kind,
                channel=message.channel,
                conversation_id=placement.conversation_id,
                reference=placement.reference,
                recipient=recipient,
                sender=message.recipient,
                template=template,
                params=params,
                in_reply_to=message.provider_message_id,
            )
            events.append(self._event(consumed, kind, command))
        return events


def _reply_address(message: MessageReceived) -> str | None:
    """Where an answer goes on the message's own channel."""
    match message.channel:
        case "sms":
            return message.customer.phone
        case "email":
            return message.customer.email
        case "social":
            return message.customer.social_id
        case "chat":
            return message.thread_key
