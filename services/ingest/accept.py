"""Accepting a message from a provider: publish once, acknowledge only after Kafka did.

Every connector ends here. The event id is deterministic from the provider's message id, so a
provider's redelivery maps to the same id; a Redis marker written *after* Kafka acknowledged
the event lets later redeliveries be answered at once without publishing again. A marker that
says ``pending`` means another delivery of the same message is being published right now:
this one waits (up to the publish timeout) for that outcome, so a provider's retry racing its
original delivery is answered with the same success, not with an error it would act on.

A reply on an SMS or chat thread with a pending CSAT survey whose whole text is a score 1-5
(:mod:`libs.contracts.surveys`) is published as ``survey.answered`` instead of a message, under the
id of the survey's answer: the first answer counts and a repeat is a duplicate.

Every message leaves with its language (:func:`with_language`): the one its connector was told
(X's ``lang``), else the one detected from its text, with the channel's hint (an email's
``Content-Language``, the chat widget's browser language) deciding when the text cannot.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime

import msgspec
from aiokafka.errors import KafkaError
from opentelemetry import trace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock, system_clock
from libs.common.events import Channel, Event, MessageReceived, SurveyAnswered
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.redis_client import ScriptBatcher
from libs.contracts.surveys import (
    SCORE_REPLY_CHANNELS,
    PendingSurveys,
    answer_id,
    could_be_score,
    parse_score,
)
from libs.domain.language import detect_language

log = get_logger(__name__)
_tracer = trace.get_tracer("switchboard.ingest")
PENDING_TTL = 30
PENDING_POLL = 0.02


class Acceptance(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in-progress"


class Unavailable(Exception):
    """Kafka did not acknowledge in time: tell the provider to retry (SMTP 451, HTTP 503)."""


def with_language(message: MessageReceived, hint: str | None = None) -> MessageReceived:
    """``message`` with its language: kept when its connector set it, else detected from its
    subject and text, ``hint`` (a language tag) deciding when the text cannot (None: unsure)."""
    if message.language is not None:
        return message
    text = "\n".join(part for part in (message.subject, message.text) if part)
    return msgspec.structs.replace(message, language=detect_language(text, hint))


class Acceptor:
    def __init__(
        self,
        *,
        producer: EventProducer,
        redis: Redis,
        keys: Keys,
        topic: str,
        timeout: float,
        surveys: PendingSurveys | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._producer = producer
        self._clock = clock
        # Concurrent requests' marker commands in the same moment go as one pipeline.
        self._markers = ScriptBatcher(redis)
        self._keys = keys
        self._topic = topic
        self._timeout = timeout
        self._surveys = surveys

    def now(self) -> datetime:
        """When a message arrives: ingest's one clock, which every connector stamps with."""
        return self._clock()

    async def accept(
        self,
        message: MessageReceived,
        *,
        event_id: str,
        source: str,
        language_hint: str | None = None,
    ) -> Acceptance:
        """Publish a ``message.received`` event unless this provider message was published;
        ``language_hint`` is the channel's language tag for it (see :func:`with_language`)."""
        message = with_language(message, language_hint)
        with _tracer.start_as_current_span(
            "ingest accept",
            kind=trace.SpanKind.SERVER,
            attributes={
                "switchboard.channel": message.channel,
                "switchboard.provider": message.provider,
                "switchboard.thread_key": message.thread_key,
                "messaging.message.id": event_id,
            },
        ):
            event = Event(
                id=event_id,
                source=source,
                subject=message.thread_key,
                time=self.now(),
                data=message,
            )
            answer = await self._survey_answer(message, event)
            outcome = await self.publish_once(answer or event, message.channel)
            if outcome is Acceptance.ACCEPTED and answer is None:
                metrics.messages_ingested.labels(message.channel).inc()
            return outcome

    async def _survey_answer(self, message: MessageReceived, received: Event) -> Event | None:
        """The survey answer this message is, if it is one (see the module's docstring)."""
        if (
            self._surveys is None
            or message.channel not in SCORE_REPLY_CHANNELS
            or message.automated is not None
            or message.attachments
        ):
            return None
        if not could_be_score(message.text):
            return None
        try:
            pending = await self._surveys.get(message.thread_key)
        except RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        score = None if pending is None else parse_score(message.text, pending.kind)
        if pending is None or score is None:
            return None
        answer = SurveyAnswered(
            conversation_id=pending.conversation_id,
            channel=message.channel,
            score=score,
            kind=pending.kind,
            command_id=pending.command_id,
            answered_at=message.received_at,
            thread_key=message.thread_key,
        )
        return Event(
            id=answer_id(pending.command_id),
            source=received.source,
            subject=message.thread_key,
            time=received.time,
            data=answer,
        )

    async def publish_once(self, event: Event, channel: Channel) -> Acceptance:
        """Publish ``event`` (keyed by its subject, the thread key) unless an event with its id
        was published already; :class:`Unavailable` when Kafka or Redis is not there."""
        marker = self._keys.ingest_accepted(event.id)
        claim = await self._claim(marker)
        if claim is not Acceptance.ACCEPTED:
            if claim is Acceptance.DUPLICATE:
                metrics.messages_duplicate.labels(channel).inc()
            return claim
        try:
            await asyncio.wait_for(
                self._producer.publish([Outgoing(self._topic, event.subject, event)]),
                self._timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish failed; provider will retry", error=repr(exc), event_id=event.id)
            await self._markers.command("DEL", marker)
            raise Unavailable(f"kafka: {type(exc).__name__}") from exc
        except BaseException:
            await self._markers.command("DEL", marker)
            raise
        try:
            await self._markers.command("SET", marker, b"done", "EX", 7 * DAY)
        except RedisError as exc:
            # On Kafka, but unmarked: the provider's retry publishes the same id again, which
            # consumers drop. Better than an error the provider cannot tell from a loss.
            raise Unavailable(f"redis: {exc}") from exc
        if isinstance(event.data, SurveyAnswered):
            metrics.survey_answers.labels(channel, str(event.data.score)).inc()
        return Acceptance.ACCEPTED

    async def _claim(self, marker: str) -> Acceptance:
        """``ACCEPTED`` once this delivery holds the marker, else what the other one achieved.

        While another delivery holds it (``pending``), wait for it to finish (``done``:
        ``DUPLICATE``) or give up (marker gone: claim it here); ``IN_PROGRESS`` only if it
        is still pending after the publish timeout (its process may have died mid-publish).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            while not await self._markers.command(
                "SET", marker, b"pending", "NX", "EX", PENDING_TTL
            ):
                state = await self._markers.command("GET", marker)
                if state == b"done":
                    return Acceptance.DUPLICATE
                if state is None:
                    continue  # the other delivery failed and let go: try to claim it again
                if loop.time() >= deadline:
                    return Acceptance.IN_PROGRESS
                await asyncio.sleep(PENDING_POLL)
        except RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return Acceptance.ACCEPTED
