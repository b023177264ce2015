"""The shared consumer loop against the real broker and Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from libs.common.events import AgentAction, Event, InvalidEvent, event_id
from libs.common.kafka.consumer import Consumed, ConsumerLoop, ConsumerPolicy, create_consumer
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.settings import Settings
from tests.support.harness import Isolation
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack


def action(n: int, key: str) -> Event:
    data = AgentAction(
        action_id=f"a{n}",
        kind="note",
        conversation_id=key,
        agent="test",
        text=str(n),
        at=datetime.now(UTC),
    )
    return Event(
        id=event_id("test", str(n)), source="/test", subject=key, time=datetime.now(UTC), data=data
    )


def make_loop(
    stack: DevStack,
    isolation: Isolation,
    producer: EventProducer,
    redis: Redis,
    handler: object,
    *,
    group: str,
    max_attempts: int = 3,
) -> ConsumerLoop:
    policy = ConsumerPolicy(
        group_id=group,
        topics=(isolation.topics.agent_actions,),
        deadletter_topic=isolation.topics.deadletter,
        max_in_flight=16,
        max_attempts=max_attempts,
        retry_backoff=0.01,
        retry_backoff_max=0.05,
        commit_interval=0.2,
        # The embedded broker holds a first join for half the session: 5 s at the default.
        session_timeout_ms=3000,
        heartbeat_interval_ms=600,
    )
    settings = Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers)
    return ConsumerLoop(
        consumer=create_consumer(settings, policy),
        policy=policy,
        handler=handler,  # type: ignore[arg-type]
        producer=producer,
        redis=redis,
        key_prefix=isolation.key_prefix,
        clock=time.monotonic,
    )


async def test_records_of_one_key_run_in_order_while_keys_run_concurrently(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    order: dict[str, list[int]] = defaultdict(list)
    running = 0
    most_at_once = 0

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(random.random() / 500)  # uneven work, so keys interleave
        running -= 1
        assert isinstance(consumed.event.data, AgentAction)
        order[consumed.key].append(int(consumed.event.data.text or "0"))
        echo = action(int(consumed.event.data.text or "0") + 10_000, consumed.key)
        return [Outgoing(isolation.topics.sla_events, consumed.key, echo)]

    keys = [f"conv-{k}" for k in range(12)]
    sent = [
        Outgoing(isolation.topics.agent_actions, keys[n % 12], action(n, keys[n % 12]))
        for n in range(600)
    ]
    await producer.publish(sent)
    loop = make_loop(stack, isolation, producer, redis, handle, group=f"g-{uuid.uuid4().hex}")
    task = asyncio.create_task(loop.run())
    async with collect(stack.broker.bootstrap_servers, isolation.topics.sla_events) as out:
        await wait_until(lambda: len(out.events) >= 600, message="every output")
    loop.stop()
    await task
    for key in keys:
        assert order[key] == sorted(order[key])
        assert len(order[key]) == 50
    assert most_at_once > 1, "records of different keys should overlap"


async def test_poison_record_is_dead_lettered_after_its_attempts_and_the_rest_flows(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    tries: dict[str, int] = defaultdict(int)

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        tries[consumed.event.id] += 1
        if consumed.key == "poison":
            raise ValueError("cannot handle this one")
        if consumed.key == "invalid":
            raise InvalidEvent("never valid")
        return []

    good = [action(n, f"ok-{n}") for n in range(20)]
    poison, invalid = action(100, "poison"), action(101, "invalid")
    await producer.publish(
        [
            Outgoing(isolation.topics.agent_actions, e.subject, e)
            for e in [*good[:10], poison, invalid, *good[10:]]
        ]
    )
    await producer.kafka.send_and_wait(
        isolation.topics.agent_actions,
        b"not json",
        key=b"junk",
        headers=[("ce_specversion", b"1.0")],
    )
    group = f"g-{uuid.uuid4().hex}"
    loop = make_loop(stack, isolation, producer, redis, handle, group=group)
    task = asyncio.create_task(loop.run())
    async with collect(stack.broker.bootstrap_servers, isolation.topics.deadletter) as dead:
        await wait_until(lambda: len(dead.records) >= 3, message="three dead letters")
        await wait_until(lambda: all(tries[e.id] == 1 for e in good), message="good records")
    loop.stop()
    await task

    by_key = {r.key: dict(r.headers) for r in dead.records}
    assert set(by_key) == {b"poison", b"invalid", b"junk"}
    assert by_key[b"poison"]["dlq_attempts"] == b"3"
    assert by_key[b"poison"]["dlq_error"] == b"ValueError: cannot handle this one"
    assert by_key[b"poison"]["dlq_original_topic"] == isolation.topics.agent_actions.encode()
    assert by_key[b"invalid"]["dlq_attempts"] == b"1"
    assert b"missing headers" in by_key[b"junk"]["dlq_error"]
    assert tries[poison.id] == 3
    assert tries[invalid.id] == 1


async def test_graceful_stop_commits_everything_finished(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    handled: list[str] = []

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        handled.append(consumed.event.id)
        return []

    await producer.publish(
        [Outgoing(isolation.topics.agent_actions, f"k{n}", action(n, f"k{n}")) for n in range(200)]
    )
    group = f"g-{uuid.uuid4().hex}"
    loop = make_loop(stack, isolation, producer, redis, handle, group=group)
    task = asyncio.create_task(loop.run())
    await wait_until(lambda: len(handled) >= 200, message="all handled")
    loop.stop()
    await task

    # The high watermark as a fetch reports it (the embedded broker's ListOffsets answers the
    # last batch's base offset instead).
    probe = AIOKafkaConsumer(
        bootstrap_servers=stack.broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await probe.start()
    try:
        partitions = [
            TopicPartition(isolation.topics.agent_actions, p)
            for p in probe.partitions_for_topic(isolation.topics.agent_actions) or ()
        ]
        committed = {tp: await probe.committed(tp) for tp in partitions}
        probe.assign(partitions)
        await probe.seek_to_beginning(*partitions)
        fetched = 0
        while fetched < 200:
            batch = await probe.getmany(timeout_ms=1000)
            fetched += sum(len(records) for records in batch.values())
        ends = {tp: probe.highwater(tp) for tp in partitions}
    finally:
        await probe.stop()
    assert committed == ends


async def test_an_output_too_large_to_publish_is_dead_lettered_and_its_key_moves_on(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    handled: list[int] = []

    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        assert isinstance(consumed.event.data, AgentAction)
        n = int(consumed.event.data.text or "0")
        handled.append(n)
        echo = action(n + 10_000, consumed.key)
        if n == 1:  # routed output over the producer's 1 MiB request limit
            data = msgspec.structs.replace(echo.data, text="x" * 2 * 1024 * 1024)
            echo = msgspec.structs.replace(echo, data=data)
        return [Outgoing(isolation.topics.sla_events, consumed.key, echo)]

    await producer.publish(
        [Outgoing(isolation.topics.agent_actions, "conv", action(n, "conv")) for n in (1, 2)]
    )
    loop = make_loop(stack, isolation, producer, redis, handle, group=f"g-{uuid.uuid4().hex}")
    task = asyncio.create_task(loop.run())
    topics = (isolation.topics.agent_actions, isolation.topics.deadletter)
    async with (
        collect(stack.broker.bootstrap_servers, *topics) as read,
        collect(stack.broker.bootstrap_servers, isolation.topics.sla_events) as out,
    ):
        await wait_until(lambda: len(out.events) >= 1, message="the next record's output")
        await wait_until(lambda: len(read.records) >= 3, message="the dead letter")
    loop.stop()
    await task

    assert handled == [1, 2]
    assert [e.id for e in out.events] == [action(10_002, "conv").id]
    original = next(r for r in read.records if r.topic == topics[0] and r.offset == 0)
    [dead] = [r for r in read.records if r.topic == topics[1]]
    headers = dict(dead.headers)
    assert headers["dlq_error"].startswith(b"MessageSizeTooLargeError")
    assert headers["dlq_original_offset"] == b"0"
    assert headers["dlq_original_topic"] == isolation.topics.agent_actions.encode()
    assert headers["dlq_attempts"] == b"1"
    size = (
        len(original.key) + len(original.value) + sum(len(k) + len(v) for k, v in original.headers)
    )
    assert headers["dlq_original_size"] == str(size).encode()
    assert headers["dlq_truncated"] == b"false"
    assert dead.value == original.value
