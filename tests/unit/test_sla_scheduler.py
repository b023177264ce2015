"""The timer scheduler keeps a timer announced while it reads a partition's next due time
(the race the fault drills found: such a timer waited for the idle wake-up, a minute), and
fires partitions due together side by side without letting one's outage end the worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, cast

import redis.exceptions

from services.sla.scheduler import TimerScheduler
from services.sla.timers import Claimed
from tests.support.kafka import wait_until


class SlowTimers:
    """A timer store whose reads of the next due time wait until released; no timers are
    stored, so only an announcement can make the scheduler claim."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self.claims: list[int] = []

    async def next_due_ms(self, partition: int) -> int | None:
        self.reading.set()
        await self.release.wait()
        return None

    async def claimed(self, partition: int) -> list[Claimed]:
        return []

    async def claim_due(self, partition: int, now_ms: int, limit: int) -> list[Claimed]:
        self.claims.append(partition)
        return []


def scheduler(timers: SlowTimers) -> TimerScheduler:
    unused = cast(Any, None)  # nothing is due, so nothing is read, locked or published
    return TimerScheduler(
        live=unused,
        timers=cast(Any, timers),
        clocks=unused,
        contacts=unused,
        locks=unused,
        producer=unused,
        topics=unused,
    )


async def test_a_timer_announced_during_the_assignment_read_is_fired() -> None:
    timers = SlowTimers()
    subject = scheduler(timers)
    assigning = asyncio.create_task(subject.assign([3]))
    await timers.reading.wait()
    subject.scheduled(3, int(time.time() * 1000))  # written to Redis after the read began
    timers.release.set()
    await assigning
    running = asyncio.create_task(subject.run())
    try:
        await wait_until(lambda: 3 in timers.claims, timeout=5, message="the timer claimed")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_timer_announced_while_refreshing_after_a_firing_is_fired() -> None:
    timers = SlowTimers()
    timers.release.set()
    subject = scheduler(timers)
    await subject.assign([1])
    subject.scheduled(1, int(time.time() * 1000))  # due now: the next pass fires partition 1
    timers.release.clear()
    timers.reading.clear()
    running = asyncio.create_task(subject.run())
    try:
        await timers.reading.wait()  # fired (nothing claimed), now reading the next due time
        subject.scheduled(1, int(time.time() * 1000))  # a new timer, written meanwhile
        timers.release.set()
        await wait_until(lambda: len(timers.claims) >= 2, timeout=5, message="claimed again")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


class OnceUnavailableTimers:
    """Partitions 1 and 2 each have a timer due now until claimed; claiming partition 1 first
    finds Redis unavailable. Every read yields, as a real one does."""

    def __init__(self) -> None:
        self.claims: list[tuple[int, bool]] = []  # (partition, whether it succeeded)

    def fired(self, partition: int) -> bool:
        return (partition, True) in self.claims

    async def next_due_ms(self, partition: int) -> int | None:
        await asyncio.sleep(0)
        return None if self.fired(partition) else 0

    async def claimed(self, partition: int) -> list[Claimed]:
        return []

    async def claim_due(self, partition: int, now_ms: int, limit: int) -> list[Claimed]:
        await asyncio.sleep(0)
        failing = partition == 1 and not self.claims.count((1, False))
        self.claims.append((partition, not failing))
        if failing:
            raise redis.exceptions.ConnectionError("Redis is restarting")
        return []


async def test_an_outage_while_partitions_fire_side_by_side_is_waited_out() -> None:
    timers = OnceUnavailableTimers()
    subject = scheduler(cast(Any, timers))
    await subject.assign([1, 2])
    running = asyncio.create_task(subject.run())
    try:
        await wait_until(
            lambda: timers.fired(1) and timers.fired(2), timeout=10, message="both fired"
        )
        assert not running.done()  # the failure was retried, not raised out of the worker
        assert timers.claims.count((1, False)) == 1
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
