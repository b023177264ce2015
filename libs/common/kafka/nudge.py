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

Under steady traffic every consumer is awake anyway, and a nudge per publish would only cost
CPU (a ``PUBLISH`` per batch in the producer, a message per nudge in every listener: with
nudges the whole pipeline used more CPU and had a longer tail than polling with the same wait).
So a producer announces a topic again only once half an awake spell has passed since it last
did (:meth:`Nudger.published`), and a consumer hears only its own topics' channels.
"""

from __future__ import annotations

import asyncio
import time
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


def awake_linger_for(fetch_max_wait_ms: int) -> float:
    """Seconds a nudged consumer keeps fetching after its last records or nudge: three fetch
    waits and 20 ms, so a fetch sent before a nudged record was written is followed by one
    sent after."""
    return (3 * fetch_max_wait_ms + 20) / 1000


class Nudger:
    """Announces the topics a producer wrote to; a burst of publishes within one Redis round
    trip becomes one ``PUBLISH`` per topic, and a topic announced less than ``repeat_after``
    seconds ago (``clock``: monotonic) is not announced again.

    Every consumer that heard an announcement keeps fetching for its awake spell
    (:func:`awake_linger_for` its fetch wait) from when it heard it, which is after the
    announcement was sent. With ``repeat_after`` half a spell, a record acknowledged within
    ``repeat_after`` of a sent announcement still has half a spell (more than a fetch wait) in
    which those consumers send a fetch that finds it."""

    def __init__(
        self,
        redis: Redis,
        key_prefix: str,
        *,
        repeat_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self._repeat_after = repeat_after
        self._clock = clock
        self._announced: dict[str, float] = {}
        """When the last announcement of each topic was sent (it was then sent successfully)."""
        self._pending: set[str] = set()
        self._sending: asyncio.Task[None] | None = None

    def published(self, topics: Iterable[str]) -> None:
        """Announce ``topics`` soon, those not announced within ``repeat_after`` (never blocks
        the publisher, never raises)."""
        now = self._clock()
        self._pending.update(
            topic
            for topic in topics
            if topic not in self._announced or now - self._announced[topic] >= self._repeat_after
        )
        if self._pending and (self._sending is None or self._sending.done()):
            self._sending = asyncio.create_task(self._send())

    async def flushed(self) -> None:
        """Until every announcement asked for so far was sent (or given up)."""
        while self._sending is not None and not self._sending.done():
            await asyncio.wait([self._sending])

    async def _send(self) -> None:
        while self._pending:
            topics, self._pending = sorted(self._pending), set()
            sent_at = self._clock()
            try:
                channels = [channel(self._key_prefix, topic) for topic in topics]
                await publish_each(self._redis, channels, b"")
            except (RedisError, OSError) as exc:  # a hint: the idle poll still finds the records
                log.warning("fetch nudge not sent", error=repr(exc), topics=topics)
            else:
                self._announced.update(dict.fromkeys(topics, sent_at))


async def listen(
    redis: Redis, key_prefix: str, topics: Iterable[str], on_nudge: Callable[[], None]
) -> None:
    """Call ``on_nudge`` for every announcement of ``topics``, and after every (re)subscription
    (what was announced while unsubscribed is lost), until cancelled."""
    channels = sorted({channel(key_prefix, topic) for topic in topics})
    await follow(redis, channels=channels, subscribed=on_nudge, message=lambda *_: on_nudge())
