"""The timer scheduler keeps a timer announced while it reads a partition's next due time
(the race the fault drills found: such a timer waited for the idle wake-up, a minute)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, cast

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
