"""Publishing events: CloudEvents headers, trace context, acks=all, awaited acknowledgements."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.cloudevents_attributes import (
    CLOUDEVENTS_EVENT_TYPE,
)
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_MESSAGE_ID,
)
from opentelemetry.util.types import AttributeValue

from libs.common import metrics
from libs.common.events import Event, encode
from libs.common.kafka.nudge import Nudger
from libs.common.settings import Settings
from libs.common.tracing import SEND, inject, messaging_span

_tracer = trace.get_tracer("switchboard.kafka")


class Outgoing(NamedTuple):
    """An event to publish: where, under which key (the conversation's thread key); its send
    span continues ``trace`` (by default the current context) and carries ``attributes``
    beside the messaging ones."""

    topic: str
    key: str
    event: Event
    trace: otel_context.Context | None = None
    attributes: Mapping[str, AttributeValue] | None = None


def create_producer(settings: Settings, *, client_id: str) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas; idempotence only where the broker has it."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        # Routed events are 1-2 KB: at the 16 KiB default a batch filled every ten records and
        # each further send waited for it to drain (a third of the router's throughput).
        max_batch_size=512 * 1024,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


class EventProducer:
    """Publishes events and returns only once Kafka has acknowledged every one of them; with a
    :class:`Nudger`, then announces the topics to dozing consumers."""

    def __init__(self, producer: AIOKafkaProducer, nudger: Nudger | None = None) -> None:
        self._producer = producer
        self._nudger = nudger

    @property
    def kafka(self) -> AIOKafkaProducer:
        return self._producer

    async def publish(
        self, outgoing: Iterable[Outgoing], extra_headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Send all, then await all acknowledgements; any failure raises after the rest settle."""
        futures: list[tuple[Outgoing, asyncio.Future[object]]] = []
        for item in outgoing:
            value, headers = encode(item.event)
            headers.extend(extra_headers)
            with messaging_span(
                _tracer,
                SEND,
                item.topic,
                {
                    MESSAGING_MESSAGE_ID: item.event.id,
                    MESSAGING_KAFKA_MESSAGE_KEY: item.key,
                    CLOUDEVENTS_EVENT_TYPE: item.event.type,
                    **(item.attributes or {}),
                },
                context=item.trace,
            ):
                inject(headers)
                try:
                    future = await self._producer.send(
                        item.topic, value=value, key=item.key.encode(), headers=headers
                    )
                except Exception:  # refused before sending (too large, buffer full)
                    await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
                    raise
            futures.append((item, future))
        if not futures:
            return
        results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        published: Counter[tuple[str, str]] = Counter()
        failed: BaseException | None = None
        for (item, _), result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                failed = result
                break
            published[item.topic, item.event.type] += 1
        for (topic, event_type), count in published.items():  # one update per series
            metrics.events_published.labels(topic, event_type).inc(count)
        if failed is not None:
            raise failed
        if self._nudger is not None:
            self._nudger.published({item.topic for item, _ in futures})
