"""The SLA timer store: per-partition sorted sets in Redis, claimed atomically.

A running clock has one member in ``sla:due:{sla:<partition>}``, scored by the due time (ms)
of its next point (a warning, or the breach); the member names the clock and its generation
(``{conversation}|{metric code}{generation}``), so nothing else is stored per timer and a clock
with a warning and a breach costs one entry, not two. Claiming moves due members into
``sla:claimed:{sla:<partition>}`` with the due time they were claimed for, in one Lua call; a
member leaves that hash only after the events of that point were acknowledged by Kafka, and in
the same transaction goes back into the sorted set at its next point, if it has one. A worker
that crashes in between leaves the claim behind, and whoever owns the partition next publishes
it again under the same deterministic event ids: nothing lost, nothing new.

A resolved conversation's CSAT survey is a timer of the same kind (metric code ``s``, the
generation of the resolution clock it follows), so it is owned, claimed and handed over with
its partition like every clock timer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from libs.common.events import SlaMetric
from libs.common.keys import Keys
from libs.common.redis_client import load_script, transaction
from services.sla.clocks import METRIC_CODES

TimerKind = SlaMetric | Literal["survey"]
_CODES = cast(dict[TimerKind, str], {**METRIC_CODES, "survey": "s"})
_KINDS: dict[str, TimerKind] = {code: kind for kind, code in _CODES.items()}


@dataclass(frozen=True, slots=True)
class TimerId:
    """The timer of one generation of one clock (or the survey after a resolution)."""

    conversation_id: str
    metric: TimerKind
    generation: int

    def encode(self) -> str:
        return f"{self.conversation_id}|{_CODES[self.metric]}{self.generation}"

    @classmethod
    def decode(cls, raw: bytes | str) -> TimerId:
        text = raw.decode() if isinstance(raw, bytes) else raw
        conversation_id, _, tail = text.rpartition("|")
        return cls(conversation_id, _KINDS[tail[0]], int(tail[1:]))


Claimed = tuple[TimerId, int]
"""A claimed timer and the due time (ms) of the point it was claimed for."""


class TimerStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(load_script("services.sla", "claim_timers.lua"))

    def stage_schedule(self, pipe: Pipeline, partition: int, timer: TimerId, due_ms: int) -> None:
        """Queue adding (or moving) a timer; adding the same timer again changes nothing."""
        pipe.zadd(self._keys.sla_due(partition), {timer.encode(): due_ms})

    def stage_cancel(self, pipe: Pipeline, partition: int, timer: TimerId) -> None:
        pipe.zrem(self._keys.sla_due(partition), timer.encode())

    async def claim_due(self, partition: int, now_ms: int, limit: int) -> list[Claimed]:
        flat = await self._claim(
            keys=[self._keys.sla_due(partition), self._keys.sla_claimed(partition)],
            args=[now_ms, limit],
        )
        return [
            (TimerId.decode(m), int(float(s))) for m, s in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def claimed(self, partition: int) -> list[Claimed]:
        """Timers claimed but not yet published (a previous owner stopped in between)."""
        found = await self._redis.hgetall(self._keys.sla_claimed(partition))
        return [(TimerId.decode(m), int(float(s))) for m, s in found.items()]

    async def release(self, partition: int, done: Iterable[tuple[TimerId, int | None]]) -> None:
        """Drop published claims, putting each timer back at its next point (if it has one)."""
        pairs = list(done)
        if not pairs:
            return
        async with transaction(self._redis) as pipe:
            pipe.hdel(self._keys.sla_claimed(partition), *(t.encode() for t, _ in pairs))
            following = {t.encode(): due for t, due in pairs if due is not None}
            if following:
                pipe.zadd(self._keys.sla_due(partition), following)
            await pipe.execute()

    async def next_due_ms(self, partition: int) -> int | None:
        first = await self._redis.zrange(self._keys.sla_due(partition), 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def size(self, partition: int) -> int:
        """Timers waiting in the partition (one per running clock)."""
        return int(await self._redis.zcard(self._keys.sla_due(partition)))
