"""Accepting a message from a provider: publish once, acknowledge only after Kafka did.

Every connector ends here. The event id is deterministic from the provider's message id, so a
provider's redelivery maps to the same id; a Redis marker written *after* Kafka acknowledged
the event lets later redeliveries be answered at once without publishing again. A marker that
says ``pending`` means another delivery of the same message is being published right now.
"""

from __future__ import annotations

import asyncio
import enum

from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.events import Event, MessageReceived, utc_now
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger

log = get_logger(__name__)
PENDING_TTL = 30


class Acceptance(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in-progress"


class Unavailable(Exception):
    """Kafka did not acknowledge in time: tell the provider to retry (SMTP 451, HTTP 503)."""


class Acceptor:
    def __init__(
        self, *, producer: EventProducer, redis: Redis, keys: Keys, topic: str, timeout: float
    ) -> None:
        self._producer = producer
        self._redis = redis
        self._keys = keys
        self._topic = topic
        self._timeout = timeout

    async def accept(self, message: MessageReceived, *, event_id: str, source: str) -> Acceptance:
        """Publish a ``message.received`` event unless this provider message was published."""
        event = Event(
            id=event_id, source=source, subject=message.thread_key, time=utc_now(), data=message
        )
        channel = message.channel
        marker = self._keys.ingest_accepted(event.id)
        try:
            claimed = await self._redis.set(marker, b"pending", nx=True, ex=PENDING_TTL)
            if not claimed:
                state = await self._redis.get(marker)
                if state == b"done":
                    metrics.messages_duplicate.labels(channel).inc()
                    return Acceptance.DUPLICATE
                return Acceptance.IN_PROGRESS
        except RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        try:
            await asyncio.wait_for(
                self._producer.publish([Outgoing(self._topic, message.thread_key, event)]),
                self._timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish failed; provider will retry", error=repr(exc), event_id=event.id)
            await self._redis.delete(marker)
            raise Unavailable(f"kafka: {type(exc).__name__}") from exc
        except BaseException:
            await self._redis.delete(marker)
            raise
        await self._redis.set(marker, b"done", ex=7 * DAY)
        metrics.messages_ingested.labels(channel).inc()
        return Acceptance.ACCEPTED
