"""The consumer loop's spans and lag series, as the OpenTelemetry messaging conventions say.

Spans are read from an in-memory exporter and checked exactly: ``process {topic}`` for a
record, ``send {topic}`` for each event published while handling it (a child of the process
span), an error status on the process span of a dead-lettered record. The lag gauge has a
series per owned partition, and loses it when the partition is revoked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from aiokafka import TopicPartition
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from libs.common.events import InvalidEvent
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from tests.support.kafka import wait_until
from tests.support.tracing import span_exporter
from tests.unit.kafka.test_consumer_loop import (
    DLQ,
    OUT,
    P0,
    P1,
    SETTLE,
    TOPIC,
    Clock,
    FakeConsumer,
    FakeKafkaProducer,
    action,
    make_loop,
    record,
    running,
)

GROUP = "telemetry"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_record_is_a_process_span_and_what_it_publishes_send_spans_below_it(
    spans: InMemorySpanExporter,
) -> None:
    published = action(100, "k-1")

    async def forward(consumed: Consumed) -> Sequence[Outgoing]:
        return [Outgoing(OUT, "k-1", published)]

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 7, "k-1"))
    async with running(make_loop(consumer, producer, forward, group=GROUP)):
        await wait_until(lambda: bool(named(spans, f"process {TOPIC}")), timeout=SETTLE)

    [process] = named(spans, f"process {TOPIC}")
    assert process.kind is SpanKind.CONSUMER
    assert process.status.status_code is StatusCode.UNSET
    assert dict(process.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": TOPIC,
        "messaging.destination.partition.id": "0",
        "messaging.consumer.group.name": GROUP,
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "k-1",
        "messaging.message.id": action(7, "k-1").id,
        "cloudevents.event_type": "com.switchboard.agent.action.v1",
    }
    [send] = named(spans, f"send {OUT}")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent == process.context
    assert dict(send.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": OUT,
        "messaging.kafka.message.key": "k-1",
        "messaging.message.id": published.id,
        "cloudevents.event_type": "com.switchboard.agent.action.v1",
    }


async def test_a_dead_lettered_record_leaves_an_error_status_and_a_send_to_the_dlq(
    spans: InMemorySpanExporter,
) -> None:
    async def reject(consumed: Consumed) -> Sequence[Outgoing]:
        raise InvalidEvent("no such conversation")

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 3, "k-2"))
    async with running(make_loop(consumer, producer, reject, group=GROUP)):
        await wait_until(lambda: bool(named(spans, f"process {TOPIC}")), timeout=SETTLE)

    [process] = named(spans, f"process {TOPIC}")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "dead-lettered: InvalidEvent: no such conversation"
    assert (process.attributes or {})["error.type"] == "InvalidEvent"
    [send] = named(spans, f"send {DLQ}")
    assert send.parent == process.context
    assert dict(send.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": DLQ,
        "messaging.kafka.message.key": "k-2",
    }


class EndsAt(FakeConsumer):
    """A consumer whose partitions all end at ``end`` (their high-water mark)."""

    def __init__(self, end: int, *partitions: TopicPartition) -> None:
        super().__init__(*partitions)
        self.end = end

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.end


def lag(partition: TopicPartition) -> float | None:
    labels = {"group": GROUP, "topic": partition.topic, "partition": str(partition.partition)}
    return REGISTRY.get_sample_value("switchboard_consumer_lag_records", labels)


async def test_a_revoked_partition_loses_its_lag_series() -> None:
    handled: list[int] = []

    async def done(consumed: Consumed) -> Sequence[Outgoing]:
        handled.append(consumed.offset)
        return []

    consumer, producer, clock = EndsAt(10, P0, P1), FakeKafkaProducer(), Clock()
    consumer.add(record(P0, 0, "a"), record(P1, 0, "b"), record(P1, 1, "c"))
    async with running(make_loop(consumer, producer, done, group=GROUP, clock=clock)):
        await wait_until(lambda: len(handled) == 3, timeout=SETTLE, message="every record")
        clock.now += 60  # the next turn of the loop commits, and measures lag
        await wait_until(
            lambda: (lag(P0), lag(P1)) == (9, 8), timeout=SETTLE, message="lag of both"
        )
        await consumer.revoke(P1)
        assert lag(P1) is None
        assert lag(P0) == 9
