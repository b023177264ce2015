"""SLA clock state: one record per conversation and metric, in Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from redis.asyncio import Redis

from libs.common.events import SlaMetric
from libs.common.keys import DAY, Keys

CLOCK_TTL = 30 * DAY

ClockStatus = Literal["running", "paused", "met", "breached", "cancelled"]


class Clock(msgspec.Struct, frozen=True, kw_only=True):
    """A running (or finished) promise. ``generation`` grows whenever the deadline is
    recomputed, so timers of an older computation are recognised and dropped."""

    conversation_id: str
    reference: str
    queue: str
    thread_key: str
    partition: int
    policy: str
    metric: SlaMetric
    generation: int
    status: ClockStatus
    started_at: datetime
    deadline: datetime
    warnings: tuple[datetime, ...]
    business_hours: bool
    calendar: str | None
    explanation: str
    traceparent: str | None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Clock)


class ClockStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, conversation_id: str, metric: str) -> Clock | None:
        raw = await self._redis.get(self._keys.sla_clock(conversation_id, metric))
        return _decoder.decode(raw) if raw is not None else None

    async def put(self, clock: Clock) -> None:
        await self._redis.set(
            self._keys.sla_clock(clock.conversation_id, clock.metric),
            _encoder.encode(clock),
            ex=CLOCK_TTL,
        )
