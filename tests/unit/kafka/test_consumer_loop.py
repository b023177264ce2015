"""The consumer loop's hardest branches, driven through fakes of the consumer, producer and Redis.

The fake consumer hands out queued records (none from a paused partition), keeps every pause,
resume and commit, and fires rebalances through the listener the loop subscribes with. The clock
stands still unless a test moves it, so only forced commits (revoke, shutdown) ever happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis.exceptions
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from libs.common.events import AgentAction, Event, InvalidEvent, encode, event_id
from libs.common.kafka.consumer import (
    DEADLETTER_COPY_BYTES,
    CircuitOpen,
    Consumed,
    ConsumerLoop,
    ConsumerPolicy,
    Handler,
    Prepare,
)
from libs.common.kafka.producer import EventProducer, Outgoing
from tests.support.kafka import wait_until

TOPIC = "in"
OUT = "out"
DLQ = "dead"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SETTLE = 30.0  # a deadline, not a wait: in memory it holds in milliseconds, but CI is busy


def action(n: int, key: str, text: str | None = None) -> Event:
    data = AgentAction(
        action_id=f"a{n}", kind="note", conversation_id=key, agent="test", text=text, at=AT
    )
    return Event(id=event_id("unit", str(n)), source="/test", subject=key, time=AT, data=data)


def record(tp: TopicPartition, offset: int, key: str, text: str | None = None) -> ConsumerRecord:
    value, headers = encode(action(offset, key, text))
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=headers,
    )


class FakeConsumer:
    """aiokafka's consumer as the loop uses it, over records a test queues."""

    def __init__(self, *partitions: TopicPartition) -> None:
        self.partitions = set(partitions)
        self.queued: dict[TopicPartition, deque[ConsumerRecord]] = defaultdict(deque)
        self.paused: set[TopicPartition] = set()
        self.calls: list[tuple[str, TopicPartition]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener: ConsumerRebalanceListener = None
        self._arrived = asyncio.Event()
        self.joinable = asyncio.Event()
        self.joinable.set()
        self.stopped = False
        self.leavable = asyncio.Event()
        self.leavable.set()

    def add(self, *records: ConsumerRecord) -> None:
        for r in records:
            self.queued[TopicPartition(r.topic, r.partition)].append(r)
        self._arrived.set()

    async def revoke(self, *partitions: TopicPartition) -> None:
        self.partitions -= set(partitions)
        await self.listener.on_partitions_revoked(set(partitions))

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None:
        self.listener = listener

    async def start(self) -> None:
        await self.joinable.wait()
        await self.listener.on_partitions_assigned(set(self.partitions))

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        batch: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in sorted(self.partitions - self.paused):
            queue = self.queued[tp]
            while queue and sum(map(len, batch.values())) < max_records:
                batch.setdefault(tp, []).append(queue.popleft())
        if not batch:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):  # short, so stop() is noticed soon
                await asyncio.wait_for(self._arrived.wait(), min(timeout_ms, 20) / 1000)
        return batch

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)
        self.calls.extend(("pause", tp) for tp in partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)
        self.calls.extend(("resume", tp) for tp in partitions)
        self._arrived.set()

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def highwater(self, partition: TopicPartition) -> int | None:
        return None

    async def stop(self) -> None:
        self.stopped = True
        await self.leavable.wait()


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class FakeKafkaProducer:
    """aiokafka's producer as :class:`EventProducer` and the loop use it; like aiokafka, it
    refuses a record over ``max_request_size`` with ``MessageSizeTooLargeError``."""

    def __init__(self, max_request_size: int = 1024 * 1024) -> None:
        self.max_request_size = max_request_size
        self.sent: list[Sent] = []

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(f"The message is {size} bytes when serialized")
        self.sent.append(Sent(topic, key, value, dict(headers)))
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def send_and_wait(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        await (await self.send(topic, value=value, key=key, headers=headers))


class FakeRedis:
    """The attempt counter's transaction (INCR, EXPIRE) over a dict; each of the first
    ``unreachable`` transactions fails as it does while Redis is gone."""

    def __init__(self, unreachable: int = 0) -> None:
        self.counts: Counter[str] = Counter()
        self.unreachable = unreachable

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self._redis = redis
        self._incremented: list[str] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        pass

    def incr(self, key: str) -> None:
        self._incremented.append(key)

    def expire(self, key: str, seconds: int) -> None:
        pass

    async def execute(self) -> list[Any]:
        if self._redis.unreachable:
            self._redis.unreachable -= 1
            raise redis.exceptions.ConnectionError("redis gone")
        counts = self._redis.counts
        for key in self._incremented:
            counts[key] += 1
        return [counts[key] for key in self._incremented] + [True]


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_loop(
    consumer: FakeConsumer,
    producer: FakeKafkaProducer,
    handler: Handler,
    *,
    group: str = "g",
    clock: Clock | None = None,
    prepare: Prepare | None = None,
    redis_fake: FakeRedis | None = None,
    **policy: Any,
) -> ConsumerLoop:
    defaults: dict[str, Any] = {"retry_backoff": 0.001, "retry_backoff_max": 0.002}
    return ConsumerLoop(
        consumer=consumer,
        policy=ConsumerPolicy(
            group_id=group, topics=(TOPIC,), deadletter_topic=DLQ, **(defaults | policy)
        ),
        handler=handler,
        prepare=prepare,
        producer=EventProducer(producer),
        redis=cast(Redis, redis_fake or FakeRedis()),
        key_prefix="t:",
        clock=clock or Clock(),
    )


@contextlib.asynccontextmanager
async def running(loop: ConsumerLoop) -> AsyncIterator[asyncio.Task[None]]:
    """The loop's ``run()`` as a task, stopped and awaited (its error kept) when the block ends."""
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        loop.stop()
        await asyncio.gather(task, return_exceptions=True)


def text_of(consumed: Consumed) -> str | None:
    assert isinstance(consumed.event.data, AgentAction)
    return consumed.event.data.text


# --- the five branches --------------------------------------------------------------------


async def test_breaker_opens_when_most_recent_records_were_dead_lettered() -> None:
    async def reject(consumed: Consumed) -> Sequence[Outgoing]:
        raise InvalidEvent("bad deploy")

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n}") for n in range(20)))
    loop = make_loop(consumer, producer, reject, breaker_window=10)
    async with running(loop) as task:
        await wait_until(task.done, timeout=SETTLE, message="the loop to stop")
    with pytest.raises(CircuitOpen):
        task.result()
    assert 10 <= len(producer.to(DLQ)) <= 20


async def test_breaker_stays_closed_while_most_records_succeed() -> None:
    handled: list[int] = []

    async def reject_some(consumed: Consumed) -> Sequence[Outgoing]:
        if consumed.offset % 5 == 0:  # dead letters finish last, so keep them few in any window
            raise InvalidEvent("bad record")
        handled.append(consumed.offset)
        return []

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n}") for n in range(20)))
    loop = make_loop(consumer, producer, reject_some, breaker_window=10)
    async with running(loop) as task:
        await wait_until(
            lambda: len(producer.to(DLQ)) == 4 and len(handled) == 16,
            timeout=SETTLE,
            message="every record finished",
        )
        assert not task.done()


async def test_a_partition_pauses_at_max_in_flight_and_resumes_as_work_finishes() -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def hold(consumed: Consumed) -> Sequence[Outgoing]:
        started.append(consumed.offset)
        await release.wait()
        return []

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n}") for n in range(10)))
    loop = make_loop(consumer, producer, hold, max_in_flight=4, max_records=4)
    async with running(loop):
        await wait_until(lambda: P0 in consumer.paused, timeout=SETTLE, message="a pause")
        assert len(consumer.queued[P0]) == 6  # the rest waits in Kafka, not in the loop
        release.set()
        await wait_until(lambda: len(started) == 10, timeout=SETTLE, message="all ten records")
    assert ("resume", P0) in consumer.calls


async def test_records_of_one_key_run_in_offset_order_while_other_keys_overlap() -> None:
    order: dict[str, list[int]] = defaultdict(list)
    running_now = most_at_once = 0

    async def later_finishes_sooner(consumed: Consumed) -> Sequence[Outgoing]:
        nonlocal running_now, most_at_once
        running_now += 1
        most_at_once = max(most_at_once, running_now)
        for _ in range(40 - consumed.offset):  # without key order, later offsets would win
            await asyncio.sleep(0)
        order[consumed.key].append(consumed.offset)
        running_now -= 1
        return []

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n % 3}") for n in range(30)))
    loop = make_loop(consumer, producer, later_finishes_sooner)
    async with running(loop):
        await wait_until(
            lambda: sum(map(len, order.values())) == 30, timeout=SETTLE, message="all records"
        )
    for key, offsets in order.items():
        assert offsets == sorted(offsets), key
    assert most_at_once > 1, "records of different keys should overlap"


def stuck_at(tp: TopicPartition, offset: int) -> tuple[Handler, list[int]]:
    """A handler that never finishes one record, and the offsets it finished."""
    finished: list[int] = []

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        if (consumed.partition, consumed.offset) == (tp.partition, offset):
            await asyncio.Event().wait()
        finished.append(consumed.offset)
        return []

    return handle, finished


async def test_revoke_commits_the_highest_contiguous_finished_offset_of_revoked_partitions() -> (
    None
):
    handle, finished = stuck_at(P0, 2)
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()
    consumer.add(*(record(tp, n, f"{tp.partition}-{n}") for tp in (P0, P1) for n in range(5)))
    loop = make_loop(consumer, producer, handle, drain_timeout=0.05)
    async with running(loop):
        await wait_until(lambda: len(finished) == 9, timeout=SETTLE, message="nine records")
        assert consumer.commits == []  # the clock stands still: nothing but a forced commit
        await consumer.revoke(P0)
        assert consumer.commits == [{P0: 2}]  # 0 and 1 finished; 2 never did, so neither 3, 4
        assert loop.assignment == {P1}


async def test_shutdown_commits_the_highest_contiguous_finished_offset() -> None:
    handle, finished = stuck_at(P0, 2)
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()
    consumer.add(*(record(tp, n, f"{tp.partition}-{n}") for tp in (P0, P1) for n in range(5)))
    loop = make_loop(consumer, producer, handle, drain_timeout=0.05)
    async with running(loop) as task:
        await wait_until(lambda: len(finished) == 9, timeout=SETTLE, message="nine records")
        assert consumer.commits == []
        loop.stop()
        await task
    assert consumer.commits == [{P0: 2, P1: 5}]


async def test_a_stop_while_the_group_join_hangs_leaves_without_waiting_for_it() -> None:
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.joinable.clear()  # the rebalance never completes
    loop = make_loop(consumer, producer, stuck_at(P0, 0)[0], drain_timeout=0.05)
    task = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.listener is not None, timeout=SETTLE, message="subscribed")
    loop.stop()
    await asyncio.wait_for(task, SETTLE)
    assert consumer.stopped
    assert not loop.running
    assert consumer.commits == []


async def test_a_group_leave_that_hangs_is_given_up_after_the_commit() -> None:
    handle, finished = stuck_at(P0, 2)
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(*(record(P0, n, f"k{n}") for n in range(3)))
    consumer.leavable.clear()  # the coordinator never lets go (a rebalance that never ends)
    loop = make_loop(consumer, producer, handle, drain_timeout=0.05, leave_timeout=0.2)
    async with running(loop) as task:
        await wait_until(lambda: len(finished) == 2, timeout=SETTLE, message="two records")
        loop.stop()
        await asyncio.wait_for(task, SETTLE)
    assert consumer.stopped
    assert consumer.commits == [{P0: 2}]


async def test_an_infrastructure_error_is_retried_past_max_attempts_and_never_dead_lettered() -> (
    None
):
    failures = [
        redis.exceptions.ConnectionError("redis gone"),
        KafkaConnectionError("broker gone"),
    ] * 3
    handled: list[int] = []

    async def flaky(consumed: Consumed) -> Sequence[Outgoing]:
        if failures:
            raise failures.pop()
        handled.append(consumed.offset)
        return []

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 0, "k"))
    loop = make_loop(consumer, producer, flaky, max_attempts=2)
    async with running(loop) as task:
        await wait_until(lambda: handled == [0], timeout=SETTLE, message="the record handled")
    task.result()
    assert producer.to(DLQ) == []
    assert consumer.commits == [{P0: 1}]


async def test_a_failure_whose_attempt_cannot_be_counted_is_waited_out_not_fatal() -> None:
    """The attempts are counted in Redis: Redis gone while a record fails is an infrastructure
    error like any other, and the loop goes on."""
    failed: list[int] = []
    handled: list[int] = []

    async def fails_once(consumed: Consumed) -> Sequence[Outgoing]:
        if not failed:
            failed.append(consumed.offset)
            raise ValueError("a bug, or a state the handler did not expect")
        handled.append(consumed.offset)
        return []

    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(record(P0, 0, "k"))
    loop = make_loop(consumer, producer, fails_once, redis_fake=FakeRedis(unreachable=2))
    async with running(loop) as task:
        await wait_until(
            lambda: handled == [0] or task.done(), timeout=SETTLE, message="the record handled"
        )
        assert not task.done()  # the loop runs on
    task.result()
    assert producer.to(DLQ) == []


# --- size errors and stalls ---------------------------------------------------------------


async def test_an_output_too_large_to_publish_is_dead_lettered_and_the_key_moves_on() -> None:
    async def echo(consumed: Consumed) -> Sequence[Outgoing]:
        text = "x" * 2 * 1024 * 1024 if text_of(consumed) == "big" else "small"
        return [Outgoing(OUT, consumed.key, action(consumed.offset + 100, consumed.key, text))]

    big, after = record(P0, 0, "k", "big"), record(P0, 1, "k", "after")
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(big, after)
    loop = make_loop(consumer, producer, echo)
    async with running(loop):
        await wait_until(lambda: len(producer.to(OUT)) == 1, timeout=SETTLE, message="output")
    assert consumer.commits == [{P0: 2}]
    [dead] = producer.to(DLQ)
    assert dead.headers["dlq_error"].startswith(b"MessageSizeTooLargeError")
    assert dead.headers["dlq_original_offset"] == b"0"
    assert dead.headers["dlq_attempts"] == b"1"
    assert dead.headers["dlq_truncated"] == b"false"
    assert (dead.key, dead.value) == (big.key, big.value)


async def test_a_record_over_the_limit_is_dead_lettered_as_a_bounded_copy_unhandled() -> None:
    handled: list[int] = []

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        handled.append(consumed.offset)
        return []

    huge = record(P0, 0, "k", "x" * 3 * 1024 * 1024)
    consumer, producer = FakeConsumer(P0), FakeKafkaProducer()
    consumer.add(huge, record(P0, 1, "k"))
    loop = make_loop(consumer, producer, handle)
    async with running(loop):
        await wait_until(lambda: handled == [1], timeout=SETTLE, message="the next record")
    [dead] = producer.to(DLQ)
    size = len(huge.key) + len(huge.value) + sum(len(n) + len(v) for n, v in huge.headers)
    assert dead.headers["dlq_original_size"] == str(size).encode()
    assert dead.headers["dlq_truncated"] == b"true"
    assert dead.headers["dlq_original_partition"] == b"0"
    assert b"over the 1048576 bytes" in dead.headers["dlq_error"]
    assert dead.value == huge.value[:DEADLETTER_COPY_BYTES]
    assert dead.headers["ce_id"] == dict(huge.headers)["ce_id"]


def stalled_gauge(group: str) -> float | None:
    return REGISTRY.get_sample_value("switchboard_consumer_stalled_partitions", {"group": group})


async def test_a_partition_whose_work_does_not_advance_is_reported_stalled() -> None:
    gates: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
    started: list[str] = []

    async def held(consumed: Consumed) -> Sequence[Outgoing]:
        started.append(consumed.key)
        await gates[consumed.key].wait()
        return []

    clock, group = Clock(), "g-stall"
    consumer, producer = FakeConsumer(P0, P1), FakeKafkaProducer()
    consumer.add(record(P0, 0, "a"))
    loop = make_loop(consumer, producer, held, group=group, clock=clock, stall_seconds=30)
    async with running(loop):
        await wait_until(lambda: started == ["a"], timeout=SETTLE, message="a started")
        clock.now = 30.0
        assert loop.stalled() == frozenset()
        clock.now = 31.0
        assert loop.stalled() == {P0}  # P1 has no work: idle is not stalled
        await wait_until(lambda: stalled_gauge(group) == 1, timeout=SETTLE, message="gauge 1")

        gates["a"].set()
        await wait_until(lambda: not loop.stalled(), timeout=SETTLE, message="P0 advanced")
        await wait_until(lambda: stalled_gauge(group) == 0, timeout=SETTLE, message="gauge 0")

        clock.now = 1000.0  # work arriving after a long idle spell starts a fresh count
        consumer.add(record(P1, 0, "b"))
        await wait_until(lambda: "b" in started, timeout=SETTLE, message="b started")
        assert loop.stalled() == frozenset()
        clock.now = 1031.0
        assert loop.stalled() == {P1}
        gates["b"].set()
