"""Crash injection for operations made of several Redis steps: count a component's Redis
calls, and raise before call ``k`` (issue 22's repeat-after-a-crash tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from libs.common.redis_client import ScriptBatcher


class Crash(Exception):
    """The injected crash: the component dies before this Redis call is sent."""


@dataclass
class CallCounter:
    """Counts a component's Redis calls and raises :class:`Crash` before call ``crash_at``."""

    crash_at: int | None = None
    calls: int = 0

    def step(self) -> None:
        if self.crash_at is not None and self.calls == self.crash_at:
            self.crash_at = None  # one crash; the redelivery runs through
            raise Crash(f"crash before call {self.calls}")
        self.calls += 1


class CountedScripts(ScriptBatcher):
    def __init__(self, redis: Redis, counter: CallCounter) -> None:
        super().__init__(redis)
        self._counter = counter

    async def call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        self._counter.step()
        return await super().call(script, keys, args)

    async def command(self, *args: Any) -> Any:
        self._counter.step()
        return await super().command(*args)
