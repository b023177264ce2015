"""Routing: classify each inbound message, decide its queue, place it in a conversation, and
explain; apply agents' resolutions and transfers to the conversation state.

Output ids derive from the input event id and every input to a decision comes from the event
itself (the received time, not the wall clock), so a redelivery yields the same events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.events import (
    AgentAction,
    ConversationRouted,
    Event,
    EventData,
    IncidentDetected,
    InvalidEvent,
    MessageReceived,
    RoutingExplanation,
    SurveyAnswered,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.common.topics import Topics
from libs.common.tracing import annotate
from libs.domain.text import normalise_text
from services.router.acknowledgement import acknowledgement
from services.router.conversation_state import ConversationRecords, ConversationStore
from services.router.customer_profiles import CustomerStore, Profile, tier_for
from services.router.incidents import IncidentDetector, IncidentVerdict, incident_key
from services.router.issue_types import Classification
from services.router.prepared import ClassifiedText, Prepared, PreparedClassifications
from services.router.rules import Decision, MessageFacts
from services.router.runtime import RouterRuntime

SOURCE = "/router"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the configuration alone says about a message (no state): replay compares these."""

    classification: Classification
    decision: Decision


def classified_text(message: MessageReceived) -> ClassifiedText:
    """What the issue-type classifier reads of a message: subject and text, and the language."""
    return f"{message.subject or ''}\n{message.text}", message.language


def decide(
    runtime: RouterRuntime,
    message: MessageReceived,
    tier: str | None,
    classification: Classification | None = None,
) -> Verdict:
    """Classify and apply the rules; pure, so replay can run it under another configuration.

    ``classification`` is the message's, when its batch was classified together under this
    ``runtime`` already (it is the same as what classifying it here gives)."""
    text, language = classified_text(message)
    if classification is None:
        classification = runtime.by_language.classify(text, language)
    facts = MessageFacts(
        channel=message.channel,
        issue_type=classification.issue_type,
        impact=classification.impact,
        tier=tier,
        language=message.language,
        sender=(message.customer.email or message.customer.phone)
        if message.customer.verified
        else None,
        folded_text=normalise_text(text),
    )
    return Verdict(classification, runtime.table.decide(facts, message.received_at))


def _next_response_note(runtime: RouterRuntime, rule: str) -> str:
    """Which policy the SLA service holds this follow-up's next response to (the rules ran as
    if the message were new; their policy is not the conversation's)."""
    named = runtime.config.next_response_policy(rule)
    if named is not None:
        return f"next response held to {named}: rule {rule} names it"
    return "next response held to the conversation's own SLA policy"


class Router:
    def __init__(
        self,
        *,
        live: LiveConfig[RouterRuntime],
        conversations: ConversationStore,
        records: ConversationRecords,
        customers: CustomerStore,
        incidents: IncidentDetector,
        topics: Topics,
    ) -> None:
        self._live = live
        self._conversations = conversations
        self._records = records
        self._customers = customers
        self._incidents = incidents
        self._topics = topics
        self._prepared = PreparedClassifications()

    @classmethod
    def on_redis(
        cls,
        redis: Redis,
        keys: Keys,
        *,
        live: LiveConfig[RouterRuntime],
        topics: Topics,
        scripts: ScriptBatcher | None = None,
    ) -> Router:
        """A router whose stores share one Redis, key prefix and script batcher (so
        concurrent records' scripts go out together)."""
        batcher = ScriptBatcher(redis) if scripts is None else scripts
        return cls(
            live=live,
            conversations=ConversationStore(redis, keys, batcher),
            records=ConversationRecords(redis, keys),
            customers=CustomerStore(redis, keys, batcher),
            incidents=IncidentDetector(redis, keys, batcher),
            topics=topics,
        )

    async def prepare(self, batch: Sequence[Consumed]) -> None:
        """Classify the inbound messages of a fetched batch in one call and keep the results
        for :meth:`handle` (the consumer loop's ``prepare`` hook)."""
        runtime = self._live.current
        texts = [
            (consumed.event.id, classified_text(consumed.event.data))
            for consumed in batch
            if isinstance(consumed.event.data, MessageReceived)
        ]
        if not texts:
            return
        started = time.perf_counter()
        classifications = runtime.by_language.classify_many([text for _, text in texts])
        each = (time.perf_counter() - started) / len(texts)
        self._prepared.keep(
            runtime,
            (
                (event_id, Prepared(text, classification, each))
                for (event_id, text), classification in zip(texts, classifications, strict=True)
            ),
        )

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        data = consumed.event.data
        if isinstance(data, MessageReceived):
            return await self._route(consumed, data)
        if isinstance(data, AgentAction):
            return await self._apply(consumed, data)
        if isinstance(data, SurveyAnswered):
            return await self._record_answer(data)
        raise InvalidEvent(f"router does not handle {consumed.event.type}")

    # --- inbound messages -------------------------------------------------------------------

    async def _route(self, consumed: Consumed, message: MessageReceived) -> list[Outgoing]:
        runtime = self._live.current
        config = runtime.config
        configured_tier = tier_for(message.customer, config.customers.tiers)
        profile = await self._customers.identify(
            message.customer, now=message.received_at, tier=configured_tier
        )
        started = time.perf_counter()
        prepared = self._prepared.take(runtime, consumed.event.id, classified_text(message))
        tier = profile.tier if profile else configured_tier
        verdict = decide(runtime, message, tier, prepared.classification if prepared else None)
        metrics.routing_seconds.observe(
            time.perf_counter() - started + (prepared.seconds if prepared else 0.0)
        )
        decision, classification = verdict.decision, verdict.classification
        notes = list(decision.notes)
        queue_if_new = decision.queue
        returning = profile.latest_open_queue() if profile else None
        if returning is not None:
            queue_if_new = returning
            notes.append(f"customer has an open conversation in {returning}: kept together")
        incident = await self._observe_incident(consumed, message, classification, profile)
        if incident is not None and incident.incident_id and config.incidents:
            if config.incidents.queue is not None:
                queue_if_new = config.incidents.queue
            if config.incidents.template is not None:
                # The incident's message is the one the customer gets, not an after-hours notice.
                decision = replace(
                    decision, auto_reply=config.incidents.template, after_hours_notify=None
                )
            notes.append(
                f"linked to incident {incident.incident_id} ({incident.customers} customers)"
            )
        placement = await self._conversations.place(
            inbound_event_id=consumed.event.id,
            thread_key=message.thread_key,
            channel=message.channel,
            queue_if_new=queue_if_new,
            now=message.received_at,
            reopen_window_seconds=config.conversations.reopen_window.total_seconds(),
            customer_id=profile.customer_id if profile else None,
        )
        if not placement.is_new:
            notes.append(f"{placement.state} conversation in {placement.queue}")
            notes.append(_next_response_note(runtime, decision.rule))
        linked = await self._linked_conversation(message)
        if linked is not None:
            notes.append(f"names conversation {linked}, but its sender is not part of it: apart")
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
            reopened=placement.state == "reopened",
            message_id=consumed.event.id,
            customer=message.customer,
            text=message.text,
            received_at=message.received_at,
            explanation=RoutingExplanation(
                rule=decision.rule,
                conditions=decision.conditions,
                issue_type=classification.issue_type,
                confidence=classification.confidence,
                notes=tuple(notes),
            ),
            customer_id=profile.customer_id if profile else None,
            incident_id=incident.incident_id if incident else None,
            provider_message_id=message.provider_message_id,
            our_address=message.recipient,
            automated=message.automated,
            linked_conversation_id=linked,
            subject=message.subject,
            reply_window_closes_at=(
                message.received_at + config.whatsapp.window
                if message.channel == "whatsapp"
                else None
            ),
            requires=decision.requires,
        )
        metrics.conversations_routed.labels(placement.queue, message.channel).inc()
        annotate(
            conversation_id=placement.conversation_id,
            reference=placement.reference,
            channel=message.channel,
            queue=placement.queue,
            rule=decision.rule,
            issue_type=classification.issue_type,
        )
        outputs = [self._out(self._topics.routed, consumed, "routed", routed)]
        if incident is not None and incident.opened_here and incident.incident_id:
            detected = IncidentDetected(
                incident_id=incident.incident_id,
                key=incident.key,
                issue_type=classification.issue_type,
                customers=incident.customers,
                window_seconds=config.incidents.window.total_seconds() if config.incidents else 0,
                detected_at=message.received_at,
                queue=config.incidents.queue if config.incidents else None,
                first_conversation_id=placement.conversation_id,
            )
            outputs.append(self._out(self._topics.routed, consumed, "incident", detected))
        if placement.is_new and message.automated is None:
            command = acknowledgement(
                config, runtime.calendars, message, decision, placement, consumed.event.id
            )
            if command is not None:
                outputs.append(
                    self._out(self._topics.outbound_commands, consumed, command.kind, command)
                )
        return outputs

    async def _linked_conversation(self, message: MessageReceived) -> str | None:
        """The conversation of the thread the message named but may not join."""
        if message.linked_thread_key is None:
            return None
        return await self._records.id_by_thread(message.linked_thread_key)

    async def _observe_incident(
        self,
        consumed: Consumed,
        message: MessageReceived,
        classification: Classification,
        profile: Profile | None,
    ) -> IncidentVerdict | None:
        settings = self._live.current.config.incidents
        if settings is None or message.automated is not None:
            return None
        if (
            settings.issue_types is not None
            and classification.issue_type not in settings.issue_types
        ):
            return None
        return await self._incidents.observe(
            settings,
            key=incident_key(classification.issue_type, normalise_text(message.text)),
            customer=profile.customer_id if profile else message.thread_key,
            inbound_event_id=consumed.event.id,
            at=message.received_at,
        )

    async def _record_answer(self, answer: SurveyAnswered) -> list[Outgoing]:
        """A survey score is conversation state, not a message: recorded, never routed."""
        annotate(conversation_id=answer.conversation_id, channel=answer.channel)
        recorded = await self._records.record_survey(
            answer.conversation_id, answer.kind, answer.score
        )
        conversation = await self._records.get(answer.conversation_id) if recorded else None
        if conversation is None:
            raise InvalidEvent(f"no conversation {answer.conversation_id}")
        metrics.survey_scores.labels(conversation.queue, answer.kind).observe(answer.score)
        return []

    # --- agent actions ----------------------------------------------------------------------

    async def _apply(self, consumed: Consumed, action: AgentAction) -> list[Outgoing]:
        """Resolutions and transfers change the conversation; other actions are not ours."""
        if action.kind not in ("resolve", "transfer"):
            return []
        conversation = await self._records.get(action.conversation_id)
        if conversation is None:
            raise InvalidEvent(f"no conversation {action.conversation_id}")
        if action.kind == "resolve":
            await self._records.resolve(conversation.conversation_id, action.at)
            if conversation.customer_id:
                await self._customers.close_conversation(
                    conversation.customer_id, conversation.conversation_id
                )
            return []
        if action.queue is None or action.queue not in self._live.current.config.queues:
            raise InvalidEvent(f"transfer to unknown queue {action.queue!r}")
        await self._records.transfer(conversation.conversation_id, action.queue)
        if conversation.customer_id:
            await self._customers.move_conversation(
                conversation.customer_id,
                conversation_id=conversation.conversation_id,
                queue=action.queue,
                at=action.at,
            )
        return []

    def _out(self, topic: str, consumed: Consumed, step: str, data: EventData) -> Outgoing:
        event = Event(
            id=event_id(consumed.event.id, step),
            source=SOURCE,
            subject=consumed.event.subject,
            time=consumed.event.time,
            data=data,
        )
        return Outgoing(topic, consumed.key or consumed.event.subject, event)
