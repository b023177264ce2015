"""Fetch nudges: a wake-up call on Redis pub/sub for brokers that answer a waiting fetch late.

The embedded broker (Tansu) holds a fetch for its whole ``fetch_max_wait_ms`` even when records
arrive meanwhile, so a consumer either waits long (latency) or polls often (idle CPU on two
cores). With ``SWITCHBOARD_FETCH_NUDGE`` a producer announces, after Kafka acknowledged a
publish, the topics it wrote to on one channel per topic; a consumer with nothing to do pauses
its partitions (no fetch at all) and resumes them when it hears of one of its topics, then
fetches with a short wait until the traffic stops. A nudge is only a hint: the consumer also
fetches every ``SWITCHBOARD_FETCH_IDLE_POLL_MS``, which bounds the wait for a record whose nudge
was lost (Redis down, a producer without nudges). Apache Kafka answers a waiting fetch as soon
as ``fetch_min_bytes`` are there and needs none of this.

A consumer subscribes to its own topics' channels, so it never takes another topic's nudge.
Under steady traffic the nudges buy nothing (every consumer is awake) and cost a ``PUBLISH`` per
produced batch: there the pipeline uses more CPU nudged than polling with the same short wait
(README, "Fetching from the embedded broker"); they are for a stack that is often idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common.logs import get_logger
from libs.common.pubsub import follow
from libs.common.redis_client import publish_each

log = get_logger(__name__)


def channel(key_prefix: str, topic: str) -> str:
    """The pub/sub channel that announces new records on ``topic``."""
    return f"{key_prefix}nudge:{topic}"


class Nudger:
    """Announces the topics a producer wrote to; a burst of publishes within one Redis round
    trip becomes one ``PUBLISH`` per topic, so the nudges cost little under load."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self._pending: set[str] = set()
        self._sending: asyncio.Task[None] | None = None

    def published(self, topics: Iterable[str]) -> None:
        """Announce ``topics`` soon (never blocks the publisher, never raises)."""
        self._pending.update(topics)
        if self._pending and (self._sending is None or self._sending.done()):
            self._sending = asyncio.create_task(self._send())

    async def flushed(self) -> None:
        """Until every announcement asked for so far was sent (or given up)."""
        while self._sending is not None and not self._sending.done():
            await asyncio.wait([self._sending])

    async def _send(self) -> None:
        while self._pending:
            topics, self._pending = sorted(self._pending), set()
            try:
                channels = [channel(self._key_prefix, topic) for topic in topics]
                await publish_each(self._redis, channels, b"")
            except (RedisError, OSError) as exc:  # a hint: the idle poll still finds the records
                log.warning("fetch nudge not sent", error=repr(exc), topics=topics)


async def listen(
    redis: Redis, key_prefix: str, topics: Iterable[str], on_nudge: Callable[[], None]
) -> None:
    """Call ``on_nudge`` for every announcement of ``topics``, and after every (re)subscription
    (what was announced while unsubscribed is lost), until cancelled."""
    channels = sorted({channel(key_prefix, topic) for topic in topics})
    await follow(redis, channels=channels, subscribed=on_nudge, message=lambda *_: on_nudge())
