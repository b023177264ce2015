"""Firing SLA timers of the partitions this worker owns, at their due time.

The scheduler sleeps until the earliest due time among its partitions (kept in memory, read
from Redis on assignment and after each firing) or until told of an earlier timer, so a
million waiting timers cost nothing while they wait. Ownership follows the consumer's
partition assignment: on assignment it first republishes whatever a previous owner claimed
but did not publish; on revocation it stops firing that partition at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from opentelemetry import trace

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.events import SlaEventKind
from libs.common.kafka.consumer import INFRASTRUCTURE_ERRORS
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.logs import get_logger
from libs.common.topics import Topics
from libs.common.tracing import attached, context_from_traceparent
from services.sla.clocks import ClockStore, ConversationLocks
from services.sla.lifecycle import sla_event
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerId, TimerStore

log = get_logger(__name__)
_tracer = trace.get_tracer("switchboard.sla")
CLAIM_BATCH = 1000
IDLE_WAIT = 60.0


class TimerScheduler:
    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        timers: TimerStore,
        clocks: ClockStore,
        locks: ConversationLocks,
        producer: EventProducer,
        topics: Topics,
    ) -> None:
        self._live = live
        self._timers = timers
        self._clocks = clocks
        self._locks = locks
        self._producer = producer
        self._topics = topics
        self._next_due: dict[int, int | None] = {}
        self._wake = asyncio.Event()

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._next_due)

    def scheduled(self, partition: int, due_ms: int) -> None:
        """A timer was added; wake up if it is earlier than anything we wait for."""
        if partition not in self._next_due:
            return
        current = self._next_due[partition]
        if current is None or due_ms < current:
            self._next_due[partition] = due_ms
            self._wake.set()

    async def assign(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._next_due[partition] = await self._timers.next_due_ms(partition)
            leftovers = await self._timers.claimed(partition)
            if leftovers:
                log.info(
                    "republishing timers claimed by a previous owner",
                    partition=partition,
                    count=len(leftovers),
                )
                await self._publish(partition, leftovers)
        self._wake.set()

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._next_due.pop(partition, None)

    async def run(self) -> None:
        """Fire due timers until cancelled; an unavailable broker or Redis is waited out."""
        failures = 0
        while True:
            try:
                await self._run_until_failure()
            except INFRASTRUCTURE_ERRORS as exc:
                failures += 1
                log.warning("timer publishing failed; retrying", error=repr(exc))
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                try:
                    await self.assign(list(self._next_due))  # republish what stayed claimed
                    failures = 0
                except INFRASTRUCTURE_ERRORS:
                    continue

    async def _run_until_failure(self) -> None:
        while True:
            now_ms = int(time.time() * 1000)
            due = [p for p, at in self._next_due.items() if at is not None and at <= now_ms]
            for partition in due:
                await self._fire(partition, now_ms)
            if due:
                continue
            upcoming = [at for at in self._next_due.values() if at is not None]
            wait = (min(upcoming) - now_ms) / 1000 if upcoming else IDLE_WAIT
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, IDLE_WAIT))

    async def _fire(self, partition: int, now_ms: int) -> None:
        claimed = await self._timers.claim_due(partition, now_ms, CLAIM_BATCH)
        if claimed:
            await self._publish(partition, claimed)
        if partition in self._next_due:
            self._next_due[partition] = await self._timers.next_due_ms(partition)

    async def _publish(self, partition: int, timers: list[TimerId]) -> None:
        """Publish the events of claimed timers, then release the claims."""
        await asyncio.gather(*(self._publish_one(t) for t in timers))
        await self._timers.release(partition, timers)

    async def _publish_one(self, timer: TimerId) -> None:
        async with self._locks.hold(timer.conversation_id):
            clock = await self._clocks.get(timer.conversation_id, timer.metric)
            if clock is None or clock.generation != timer.generation or clock.status != "running":
                return  # met, paused, recomputed or expired meanwhile: this timer no longer applies
            if timer.kind == "breached":
                kind: SlaEventKind = "breached"
                due = clock.deadline
            else:
                kind = "warning"
                found = [at for index, at in clock.warnings if index == timer.index]
                if not found:
                    return
                due = found[0]
            calendar = self._live.current.calendar(clock.calendar)
            remaining = clock.remaining(due, calendar).total_seconds()
            event = sla_event(
                clock, kind, at=due, step=f"{timer.kind}:{timer.index}", remaining=remaining
            )
            with (
                attached(context_from_traceparent(clock.traceparent)),
                _tracer.start_as_current_span(
                    "sla timer fire",
                    attributes={
                        "switchboard.conversation_id": clock.conversation_id,
                        "switchboard.queue": clock.queue,
                        "switchboard.channel": clock.channel,
                        "switchboard.sla.metric": clock.metric,
                        "switchboard.sla.kind": kind,
                    },
                ),
            ):
                await self._producer.publish(
                    [Outgoing(self._topics.sla_events, clock.thread_key, event)]
                )
        lag = datetime.now(UTC) - due
        metrics.sla_timer_lag_seconds.observe(max(lag.total_seconds(), 0.0))
        metrics.sla_events.labels(kind, clock.metric, clock.queue).inc()
