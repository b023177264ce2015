"""The whole ingest app in this process, every HTTP connector on, for hostile and duplicate input.

Requests are signed over the public URL ingest is configured with (as Twilio and X see it),
not the loopback address the tests post to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from libs.common.events import Event, decode
from libs.common.keys import Keys
from libs.common.settings import Settings
from services.ingest.app import build
from tests.support.deadline import patience
from tests.support.harness import AUTH_TOKEN, Isolation
from tooling.devstack import DevStack, free_port

ServeApp = Callable[..., Awaitable[str]]
PUBLIC_URL = "https://ingest.switchboard.example"
X_SECRET = "x-test-consumer-secret"
X_USER_ID = "1600000000000000001"
CHAT_KEY = "chat-test-key-0123456789abcdef0123456789"
SURVEY_LINK_KEY = "survey-link-test-key-0123456789abcdef"


@dataclass(frozen=True)
class Ingest:
    url: str
    keys: Keys
    bootstrap: str


def ingest_settings(stack: DevStack, isolation: Isolation, **overrides: Any) -> Settings:
    """Ingest's settings with every HTTP connector on, on this test's broker, Redis and prefixes;
    ``overrides`` add or change settings (limits, SMTP recipients, the Twilio account)."""
    settings: dict[str, Any] = dict(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
        switchboard_public_url=PUBLIC_URL,
        switchboard_http_host="127.0.0.1",
        switchboard_smtp_port=free_port(),  # SMTP starts with the app; never a shared port
        twilio_auth_token=AUTH_TOKEN,
        x_consumer_secret=X_SECRET,
        x_user_id=X_USER_ID,
        chat_session_key=CHAT_KEY,
        survey_link_key=SURVEY_LINK_KEY,
    )
    return Settings(**(settings | overrides))


@pytest.fixture
async def ingest_app(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> Ingest:
    url = await serve_app(build(ingest_settings(stack, isolation)))
    return Ingest(url, Keys(isolation.key_prefix), stack.broker.bootstrap_servers)


async def read_all(bootstrap: str, topic: str, timeout: float = 20.0) -> list[Event]:
    """Every event on ``topic`` now, read up to each partition's end offset.

    Call it once every publish was acknowledged: the end offsets are then final, so the list is
    exactly what the topic holds (no waiting for a count that more records could exceed). No
    consumer group, so no rebalance to wait for.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster metadata partitions_for_topic reads
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"{topic} has no partitions"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[Event] = []
        deadline = asyncio.get_running_loop().time() + patience(timeout)
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                assert asyncio.get_running_loop().time() < deadline, f"reading {topic} timed out"
                batch = await consumer.getmany(partition, timeout_ms=100)
                events += [decode(r.value, r.headers) for rs in batch.values() for r in rs]
        return events
    finally:
        await consumer.stop()


async def snapshot(redis: Redis, keys: Keys) -> dict[bytes, object]:
    """Every key under this test's prefix with its value (strings and hashes; else the type)."""
    state: dict[bytes, object] = {}
    async for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        kind = await redis.type(key)
        if kind == b"string":
            state[key] = await redis.get(key)
        elif kind == b"hash":
            state[key] = await redis.hgetall(key)
        else:
            state[key] = kind
    return state
