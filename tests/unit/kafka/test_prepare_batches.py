"""The consumer loop's batch hook: ``prepare`` sees each partition's fetched records before any
of them is handled, and is only advisory, so its failure never costs a record.

Driven through the consumer-loop fakes (tests/unit/kafka/test_consumer_loop.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from tests.support.kafka import wait_until
from tests.support.tracing import span_exporter
from tests.unit.kafka.test_consumer_loop import (
    DLQ,
    P0,
    P1,
    SETTLE,
    TOPIC,
    FakeConsumer,
    FakeKafkaProducer,
    make_loop,
    record,
    running,
)

Batch = list[tuple[int, int]]
"""(partition, offset) of each record a ``prepare`` call saw."""


class Recorder:
    """A handler and a ``prepare`` that note what they saw, and when."""

    def __init__(self, *, fail_prepare: BaseException | None = None) -> None:
        self.batches: list[Batch] = []
        self.handled_before: list[set[tuple[int, int]]] = []
        self.handled: list[tuple[int, int]] = []
        self._fail = fail_prepare

    async def prepare(self, batch: Sequence[Consumed]) -> None:
        self.batches.append([(c.partition, c.offset) for c in batch])
        for _ in range(3):  # let any record already scheduled run, so "before" means before
            await asyncio.sleep(0)
        self.handled_before.append(set(self.handled))
        if self._fail is not None:
            raise self._fail

    async def handle(self, consumed: Consumed) -> Sequence[Outgoing]:
        self.handled.append((consumed.partition, consumed.offset))
        return []


async def test_prepare_sees_each_partitions_fetch_in_offset_order_before_any_is_handled() -> None:
    seen = Recorder()
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n % 2}") for n in range(5)))
    consumer.add(*(record(P1, n, f"j{n}") for n in range(3)))
    loop = make_loop(consumer, producer, seen.handle, prepare=seen.prepare)
    async with running(loop):
        await wait_until(lambda: len(seen.handled) == 8, timeout=SETTLE, message="first fetch")
        consumer.add(record(P0, 5, "k1"), record(P0, 6, "k0"))  # a second fetch
        await wait_until(lambda: len(seen.handled) == 10, timeout=SETTLE, message="second")

    assert seen.batches == [
        [(0, n) for n in range(5)],
        [(1, n) for n in range(3)],
        [(0, 5), (0, 6)],
    ]
    for batch, handled_before in zip(seen.batches, seen.handled_before, strict=True):
        assert not handled_before & set(batch), "a record was handled before its prepare"
    assert consumer.commits == [{P0: 7, P1: 3}]


@pytest.mark.parametrize("error", [RuntimeError("model broke"), ConnectionError("redis gone")])
async def test_a_failing_prepare_loses_nothing_and_dead_letters_nothing(
    error: BaseException,
) -> None:
    seen = Recorder(fail_prepare=error)
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()
    consumer.add(*(record(tp, n, f"{tp.partition}-{n % 3}") for tp in (P0, P1) for n in range(6)))
    loop = make_loop(consumer, producer, seen.handle, prepare=seen.prepare)
    async with running(loop) as task:
        await wait_until(lambda: len(seen.handled) == 12, timeout=SETTLE, message="every record")
        assert not task.done()

    assert len(seen.batches) == 2
    assert sorted(seen.handled) == [(tp.partition, n) for tp in (P0, P1) for n in range(6)]
    assert producer.to(DLQ) == []
    assert consumer.commits == [{P0: 6, P1: 6}]


async def test_a_record_that_does_not_decode_is_left_out_of_the_batch_and_dead_lettered() -> None:
    seen = Recorder()
    broken = dataclasses.replace(record(P0, 1, "k"), value=b"not an event")
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 0, "k"), broken, record(P0, 2, "k"))
    loop = make_loop(consumer, producer, seen.handle, prepare=seen.prepare)
    async with running(loop):
        await wait_until(lambda: len(seen.handled) == 2, timeout=SETTLE, message="two records")

    assert seen.batches == [[(0, 0), (0, 2)]]
    [dead] = producer.to(DLQ)
    assert dead.headers["dlq_original_offset"] == b"1"
    assert consumer.commits == [{P0: 3}]


async def test_records_of_a_partition_revoked_while_preparing_are_left_to_the_new_owner() -> None:
    seen = Recorder()
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()

    async def revoking_prepare(batch: Sequence[Consumed]) -> None:
        await seen.prepare(batch)
        if batch[0].partition == 0:
            await consumer.revoke(P0)

    consumer.add(*(record(tp, n, f"{tp.partition}-{n}") for tp in (P0, P1) for n in range(3)))
    loop = make_loop(consumer, producer, seen.handle, prepare=revoking_prepare)
    async with running(loop):
        await wait_until(lambda: len(seen.handled) == 3, timeout=SETTLE, message="P1's records")

    assert sorted(seen.handled) == [(1, 0), (1, 1), (1, 2)]
    assert consumer.commits == [{P1: 3}]


async def test_prepare_is_a_span_linked_to_each_records_trace_and_marks_its_failure() -> None:
    spans: InMemorySpanExporter = span_exporter()
    spans.clear()
    seen = Recorder(fail_prepare=RuntimeError("model broke"))
    traces = [0xA0 + n for n in range(3)]
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(traced(record(P0, n, f"k{n}"), traces[n]) for n in range(3)))
    loop = make_loop(consumer, producer, seen.handle, group="prep", prepare=seen.prepare)
    async with running(loop):
        await wait_until(lambda: len(seen.handled) == 3, timeout=SETTLE, message="all three")

    [prepare] = [s for s in spans.get_finished_spans() if s.name == f"prepare {TOPIC}"]
    assert dict(prepare.attributes or {}) == {
        "messaging.destination.partition.id": "0",
        "messaging.consumer.group.name": "prep",
        "messaging.batch.message_count": 3,
        "error.type": "RuntimeError",
    }
    assert prepare.status.status_code is StatusCode.ERROR
    assert prepare.parent is None
    assert [link.context.trace_id for link in prepare.links] == traces
    processes = [s for s in spans.get_finished_spans() if s.name == f"process {TOPIC}"]
    assert sorted(p.context.trace_id for p in processes) == traces  # each in its own trace
    spans.clear()


def traced(consumer_record: ConsumerRecord, trace_id: int) -> ConsumerRecord:
    """The record as produced under trace ``trace_id``."""
    traceparent = f"00-{trace_id:032x}-{trace_id:016x}-01".encode()
    headers = [*consumer_record.headers, ("traceparent", traceparent)]
    return dataclasses.replace(consumer_record, headers=headers)
