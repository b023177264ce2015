"""SLA clock state: one record per conversation and metric, in Redis.

A clock counts business (or plain) time in segments: ``used`` is what earlier segments spent
(before a pause, or before a transfer changed the calendar) and ``segment_start`` is where the
current one began. ``generation`` grows whenever the deadline is recomputed, so timers of an
older computation are recognised and dropped.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Literal

import msgspec
from redis.asyncio import Redis

from libs.common.calendar import BusinessCalendar
from libs.common.events import Channel, SlaMetric
from libs.common.keys import DAY, Keys

CLOCK_TTL = 30 * DAY

ClockStatus = Literal["running", "paused", "met", "cancelled"]


class Clock(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: str
    reference: str
    queue: str
    channel: Channel
    thread_key: str
    partition: int
    policy: str
    metric: SlaMetric
    generation: int
    status: ClockStatus
    started_at: datetime
    segment_start: datetime
    used_seconds: float
    deadline: datetime
    warnings: tuple[tuple[int, datetime], ...]
    business_hours: bool
    calendar: str | None
    explanation: str
    traceparent: str | None

    @property
    def used(self) -> timedelta:
        return timedelta(seconds=self.used_seconds)

    def spent(self, at: datetime, calendar: BusinessCalendar | None) -> timedelta:
        """Time this clock has counted up to ``at`` (business time when it counts that)."""
        if self.status != "running":
            return self.used
        if self.business_hours and calendar is not None:
            return self.used + calendar.between(self.segment_start, at)
        return self.used + (at - self.segment_start)

    def remaining(self, at: datetime, calendar: BusinessCalendar | None) -> timedelta:
        """Time left before the deadline, counted the way the clock counts (negative after)."""
        if self.business_hours and calendar is not None:
            return calendar.between(at, self.deadline)
        return self.deadline - at


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Clock)


class ClockStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, conversation_id: str, metric: str) -> Clock | None:
        raw = await self._redis.get(self._keys.sla_clock(conversation_id, metric))
        return _decoder.decode(raw) if raw is not None else None

    async def put(self, clock: Clock, *, previous_queue: str | None = None) -> None:
        """Store the clock and keep the per-queue set of open clocks in step with it."""
        member = f"{clock.conversation_id}|{clock.metric}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(
                self._keys.sla_clock(clock.conversation_id, clock.metric),
                _encoder.encode(clock),
                ex=CLOCK_TTL,
            )
            if previous_queue is not None and previous_queue != clock.queue:
                pipe.srem(self._keys.sla_open(previous_queue), member)
            if clock.status in ("running", "paused"):
                pipe.sadd(self._keys.sla_open(clock.queue), member)
            else:
                pipe.srem(self._keys.sla_open(clock.queue), member)
            await pipe.execute()

    async def open_counts(self, queues: Iterable[str]) -> dict[str, int]:
        names = list(queues)
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in names:
                pipe.scard(self._keys.sla_open(queue))
            counts = await pipe.execute()
        return {queue: int(count) for queue, count in zip(names, counts, strict=True)}


class ConversationLocks:
    """One lock per conversation in this process, so the consumer's changes and the timer
    scheduler's firing of the same clock never interleave (a partition has one owner)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        async with lock:
            yield
