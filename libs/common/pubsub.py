"""Redis subscriptions held for a process, and guards for loops that await Redis.

Ingest's chat sockets and the hub's agent sockets are woken the same way: whichever replica
made a change publishes on the recipient's channel, every replica holds one pattern
subscription and wakes only its own sockets. A notice is only a hint (the woken socket reads
the state from Redis), so a lost one costs latency, and after every (re)subscription all
local sockets are woken once to catch up on what was published while it was down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from libs.common.backoff import Backoff
from libs.common.logs import get_logger
from libs.common.redis_client import as_text

log = get_logger(__name__)
POLL_SECONDS: Final = 5.0  # bounded reads, so the connection's health checks run when quiet
RESUBSCRIBE_BACKOFF: Final = Backoff(base=0.4, cap=10.0)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py swallowed (it can, mid-command or while it
    reconnects), so the task that was cancelled does stop instead of looping on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(slots=True)
class FailureStreak:
    """Failures in a row of one socket's Redis reads. Counting one first re-raises a
    cancellation redis-py turned into the RedisError being handled, and after ``limit`` in a
    row the caller gives up (closes its socket) instead of polling Redis forever."""

    limit: int
    count: int = 0

    def succeeded(self) -> None:
        self.count = 0

    def failed(self) -> bool:
        """Count a failure; whether the streak has reached the limit."""
        raise_if_cancelled()
        self.count += 1
        return self.count >= self.limit


async def follow(
    redis: Redis,
    *,
    pattern: str | None = None,
    channels: Sequence[str] = (),
    subscribed: Callable[[], None],
    message: Callable[[str, str], None],
    lost: Callable[[], None] = lambda: None,
) -> None:
    """Hold a subscription to ``pattern`` or to ``channels`` until cancelled: ``subscribed()``
    after every (re)subscription, ``message(channel, data)`` for each message, ``lost()``
    whenever the subscription ends (a Redis failure: it resubscribes after a jittered
    back-off)."""
    if (pattern is None) == (not channels):
        raise ValueError("follow either a pattern or channels")
    # A subscription is confirmed once per pattern or channel, with the count it makes.
    confirmed, delivered = ("psubscribe", "pmessage") if pattern else ("subscribe", "message")
    count = 1 if pattern else len(set(channels))
    failures = 0
    while True:
        pubsub = redis.pubsub()
        try:
            if isinstance(redis, RedisCluster):  # its pub/sub needs the slot map loaded first
                await redis.initialize()
            if pattern is not None:
                await pubsub.psubscribe(pattern)
            else:
                await pubsub.subscribe(*channels)
            raise_if_cancelled()
            while True:
                received = await pubsub.get_message(timeout=POLL_SECONDS)
                raise_if_cancelled()
                failures = 0
                if received is None:
                    continue
                kind, channel, data = (received.get(k) for k in ("type", "channel", "data"))
                if kind == confirmed and data == count:
                    subscribed()
                elif (
                    kind == delivered
                    and isinstance(channel, bytes | str)
                    and isinstance(data, bytes | str)
                ):
                    message(as_text(channel), as_text(data))
        except RedisError as exc:
            raise_if_cancelled()
            failures += 1
            log.warning(
                "subscription lost; resubscribing",
                pattern=pattern,
                channels=len(channels),
                error=repr(exc),
            )
            await asyncio.sleep(RESUBSCRIBE_BACKOFF.delay(failures))
        finally:
            lost()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
