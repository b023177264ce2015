"""Reading topics in tests: collect decoded records and wait on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from libs.common.events import Event, EventData, decode
from tests.support.deadline import patience

D = TypeVar("D", bound=EventData)


@dataclass
class Collected:
    records: list[ConsumerRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def of_type(self, data_type: type) -> list[Event]:
        return [e for e in self.events if isinstance(e.data, data_type)]

    def data_of(self, data_type: type[D]) -> list[D]:
        """The payloads of one event type, typed (``of_type`` keeps the envelopes)."""
        return [e.data for e in self.events if isinstance(e.data, data_type)]


async def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float = 20.0,
    message: str | Callable[[], str] = "condition",
) -> None:
    """Poll a condition until it holds; fail with ``message`` (a callable: what it says at
    that moment) after ``patience(timeout)`` seconds."""
    loop = asyncio.get_running_loop()
    started, timeout = loop.time(), patience(timeout)
    while not predicate():
        if loop.time() - started > timeout:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {said}")
        await asyncio.sleep(_poll_interval(loop.time() - started))


async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, message: str = "condition"
) -> None:
    """:func:`wait_until` for a condition that has to ask something (Redis, a socket)."""
    loop = asyncio.get_running_loop()
    started, timeout = loop.time(), patience(timeout)
    while not await predicate():
        if loop.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(_poll_interval(loop.time() - started))


def _poll_interval(waited: float) -> float:
    """20 ms at first, then a tenth of the time waited so far (at most half a second): a long
    wait on a condition that scans thousands of events must not take the CPU from the
    services it waits for."""
    return min(0.5, max(0.02, waited / 10))


@contextlib.asynccontextmanager
async def collect(bootstrap: str, *topics: str) -> AsyncIterator[Collected]:
    """Consume ``topics`` from the beginning in the background while the block runs (no
    group: nothing to join or rebalance, nothing committed)."""
    collected = Collected()
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    collected.records.append(record)
                    with contextlib.suppress(Exception):
                        collected.events.append(decode(record.value, record.headers))

    task = asyncio.create_task(pump())
    try:
        yield collected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
