"""The SLA timer store: per-partition sorted sets in Redis, claimed atomically.

A timer is a member of ``sla:due:{partition}`` scored by its due time in milliseconds; the
member itself names the clock and the point (``{conversation}|{metric}|{generation}|{kind}|{n}``),
so nothing else is stored per timer. Claiming moves due members into ``sla:claimed:{partition}``
in one Lua call; a member leaves that hash only after its event was acknowledged by Kafka.
A worker that crashes in between leaves the claim behind, and whoever owns the partition next
publishes it again under the same deterministic event id: nothing lost, nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from libs.common.keys import Keys

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HSET', KEYS[2], member, ARGV[1])
end
return due
"""


@dataclass(frozen=True, slots=True)
class TimerId:
    conversation_id: str
    metric: str
    generation: int
    kind: str  # "warning" or "breached"
    index: int

    def encode(self) -> str:
        return f"{self.conversation_id}|{self.metric}|{self.generation}|{self.kind}|{self.index}"

    @classmethod
    def decode(cls, raw: bytes | str) -> TimerId:
        text = raw.decode() if isinstance(raw, bytes) else raw
        conversation_id, metric, generation, kind, index = text.split("|")
        return cls(conversation_id, metric, int(generation), kind, int(index))


class TimerStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(_CLAIM)

    async def schedule(self, partition: int, timers: Iterable[tuple[TimerId, int]]) -> None:
        """Add timers (id, due ms); adding the same timer again changes nothing."""
        mapping = {timer.encode(): due_ms for timer, due_ms in timers}
        if mapping:
            await self._redis.zadd(self._keys.sla_due(partition), mapping)

    async def cancel(self, partition: int, timers: Iterable[TimerId]) -> None:
        members = [t.encode() for t in timers]
        if members:
            await self._redis.zrem(self._keys.sla_due(partition), *members)

    async def claim_due(self, partition: int, now_ms: int, limit: int) -> list[TimerId]:
        members = await self._claim(
            keys=[self._keys.sla_due(partition), self._keys.sla_claimed(partition)],
            args=[now_ms, limit],
        )
        return [TimerId.decode(m) for m in members]

    async def claimed(self, partition: int) -> list[TimerId]:
        """Timers claimed but not yet published (a previous owner stopped in between)."""
        members = await self._redis.hkeys(self._keys.sla_claimed(partition))
        return [TimerId.decode(m) for m in members]

    async def release(self, partition: int, timers: Iterable[TimerId]) -> None:
        members = [t.encode() for t in timers]
        if members:
            await self._redis.hdel(self._keys.sla_claimed(partition), *members)

    async def next_due_ms(self, partition: int) -> int | None:
        first = await self._redis.zrange(self._keys.sla_due(partition), 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def size(self, partition: int) -> int:
        return int(await self._redis.zcard(self._keys.sla_due(partition)))
