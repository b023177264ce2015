"""Fetch nudges against the real broker and Redis: a dozing consumer sends no fetch until a
producer announces its topic (or the idle poll comes round)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis

from libs.common.events import AgentAction
from libs.common.kafka.consumer import Consumed, ConsumerLoop, ConsumerPolicy, create_consumer
from libs.common.kafka.nudge import Nudger, channel, listen
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.pubsub import follow
from libs.common.redis_client import as_text
from libs.common.settings import Settings
from tests.integration.test_consumer_loop import action
from tests.support.harness import Isolation
from tests.support.kafka import wait_until
from tooling.devstack import DevStack

NEVER = 3600.0
"""An idle poll no test lives to see: only a nudge can make these consumers fetch."""


def dozing_loop(
    stack: DevStack,
    isolation: Isolation,
    producer: EventProducer,
    redis: Redis,
    seen: list[str],
    *,
    idle_poll: float,
) -> ConsumerLoop:
    async def handle(consumed: Consumed) -> Sequence[Outgoing]:
        assert isinstance(consumed.event.data, AgentAction)
        seen.append(consumed.event.data.text or "")
        return []

    policy = ConsumerPolicy(
        group_id=f"g-{uuid.uuid4().hex}",
        topics=(isolation.topics.agent_actions,),
        deadletter_topic=isolation.topics.deadletter,
        fetch_max_wait_ms=10,
        nudged=True,
        idle_poll=idle_poll,
        awake_linger=0.05,
        # The embedded broker holds a first join for half the session: 5 s at the default.
        session_timeout_ms=3000,
        heartbeat_interval_ms=600,
    )
    return ConsumerLoop(
        consumer=create_consumer(
            Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), policy
        ),
        policy=policy,
        handler=handle,
        producer=producer,
        redis=redis,
        key_prefix=isolation.key_prefix,
        clock=time.monotonic,
    )


async def running_until_dozing(loop: ConsumerLoop) -> asyncio.Task[None]:
    task = asyncio.create_task(loop.run())
    await wait_until(lambda: loop.dozing, message="the consumer dozing", timeout=60)
    return task


async def test_a_publish_is_announced_on_its_topics_channel(
    isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    topic = isolation.topics.agent_actions
    heard = asyncio.Event()
    subscribed = asyncio.Event()

    def nudged() -> None:
        (heard if subscribed.is_set() else subscribed).set()

    listener = asyncio.create_task(listen(redis, isolation.key_prefix, [topic], nudged))
    try:
        await asyncio.wait_for(subscribed.wait(), 20)  # (re)subscribing nudges once
        nudging = EventProducer(producer.kafka, Nudger(redis, isolation.key_prefix))
        await nudging.publish([Outgoing(topic, "k", action(1, "k"))])
        await asyncio.wait_for(heard.wait(), 20)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_a_listener_hears_only_its_own_topics_channels(
    isolation: Isolation, redis: Redis
) -> None:
    """It subscribes to its topics' channels, so other topics' nudges never reach it (a
    pattern subscription to every topic's channel cost each service a message per nudge)."""
    nudges = 0

    def nudged() -> None:
        nonlocal nudges
        nudges += 1

    listener = asyncio.create_task(
        listen(redis, isolation.key_prefix, [isolation.topics.agent_actions], nudged)
    )
    try:
        await wait_until(lambda: nudges == 1, message="the subscription")
        own, other = (
            channel(isolation.key_prefix, topic)
            for topic in (isolation.topics.agent_actions, isolation.topics.routed)
        )
        subscribers = await redis.pubsub_numsub(own, other)
        assert {as_text(name): count for name, count in subscribers} == {own: 1, other: 0}
        await redis.publish(channel(isolation.key_prefix, isolation.topics.routed), b"")
        await redis.publish(channel(isolation.key_prefix, isolation.topics.agent_actions), b"")
        await wait_until(lambda: nudges >= 2, message="the nudge of its own topic")
        assert nudges == 2, "the routed topic's nudge woke it too"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_a_nudge_makes_a_dozing_consumer_fetch(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    seen: list[str] = []
    loop = dozing_loop(stack, isolation, producer, redis, seen, idle_poll=NEVER)
    task = await running_until_dozing(loop)
    try:
        nudging = EventProducer(producer.kafka, Nudger(redis, isolation.key_prefix))
        key = "conv-1"
        await nudging.publish([Outgoing(isolation.topics.agent_actions, key, action(7, key))])
        await wait_until(lambda: seen == ["7"], message="the nudged record handled", timeout=60)
        await wait_until(lambda: loop.dozing, message="dozing again after the record")
    finally:
        loop.stop()
        await task


async def test_without_a_nudge_the_idle_poll_finds_the_record(
    stack: DevStack, isolation: Isolation, producer: EventProducer, redis: Redis
) -> None:
    seen: list[str] = []
    loop = dozing_loop(stack, isolation, producer, redis, seen, idle_poll=0.5)
    task = await running_until_dozing(loop)
    try:
        key = "conv-2"  # published without a Nudger: the nudge that was lost
        await producer.publish([Outgoing(isolation.topics.agent_actions, key, action(8, key))])
        await wait_until(lambda: seen == ["8"], message="the record found by the idle poll")
    finally:
        loop.stop()
        await task


async def test_a_listener_of_two_topics_hears_each_and_subscribes_once(
    isolation: Isolation, redis: Redis
) -> None:
    """A consumer of several topics holds one subscription to their channels: it is told of
    the (re)subscription once, hears each of its topics and no other (one subscription
    delivers in order, so the last announcement seen means every earlier one was seen)."""
    topic, other, marker = (
        isolation.topics.agent_actions,
        isolation.topics.routed,
        isolation.topics.inbound,
    )
    heard: list[str] = []
    subscriptions = 0

    def subscribed() -> None:
        nonlocal subscriptions
        subscriptions += 1

    listener = asyncio.create_task(
        follow(
            redis,
            channels=[channel(isolation.key_prefix, t) for t in (topic, marker)],
            subscribed=subscribed,
            message=lambda name, _: heard.append(name.removeprefix(isolation.key_prefix)),
        )
    )
    nudger = Nudger(redis, isolation.key_prefix)
    try:
        await wait_until(lambda: subscriptions >= 1, message="the subscription to both")
        for published in (topic, other, marker):
            nudger.published([published])
            await nudger.flushed()
        await wait_until(lambda: f"nudge:{marker}" in heard, message="the marker's nudge")
        assert heard == [f"nudge:{topic}", f"nudge:{marker}"]
        assert subscriptions == 1, "subscribing to two channels is one (re)subscription"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
