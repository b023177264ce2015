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
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace

from libs.common import metrics
from libs.common.backoff import Backoff
from libs.common.clock import Clock as WallClock
from libs.common.clock import system_clock
from libs.common.config import LiveConfig
from libs.common.events import Event
from libs.common.kafka.consumer import INFRASTRUCTURE_ERRORS
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.logs import get_logger
from libs.common.topics import Topics
from libs.common.tracing import context_from_traceparent, links_to
from services.sla import followups
from services.sla.clocks import Clock, ClockStore, ConversationLocks
from services.sla.contacts import Contact, ContactStore
from services.sla.lifecycle import next_point_ms, point_ms, sla_event
from services.sla.runtime import SlaRuntime
from services.sla.steps import SURVEY, Step
from services.sla.timers import Claimed, TimerStore

log = get_logger(__name__)
_tracer = trace.get_tracer("switchboard.sla")
CLAIM_BATCH = 1000
IDLE_WAIT = 60.0
PUBLISH_BACKOFF = Backoff(base=0.2, cap=5.0)  # jittered: replicas recover from one outage
FOLLOW_UP_KINDS = frozenset({"status_update", "survey"})


class _Fired(NamedTuple):
    """One output of a fired timer, with what its span and metrics say about it."""

    clock: Clock
    kind: str  # an SLA event kind, or a follow-up command kind
    due: datetime
    outgoing: Outgoing


_DuePoints = tuple[Clock | None, list[tuple[Step, datetime]]]


def _follow_up(steps: list[tuple[Step, datetime]]) -> bool:
    return any(step.follow_up for step, _ in steps)


def _in_trace(fired: _Fired, traces: dict[str | None, otel_context.Context]) -> Outgoing:
    """A fired timer's event, sent in its clock's trace (``traces``: the clocks' rebuilt
    contexts, by stored traceparent): its send span is the timer's one span, with what it
    fired beside the messaging attributes."""
    clock = fired.clock
    return fired.outgoing._replace(
        trace=traces[clock.traceparent],
        attributes={
            "switchboard.conversation_id": clock.conversation_id,
            "switchboard.queue": clock.queue,
            "switchboard.channel": clock.channel,
            "switchboard.sla.metric": clock.metric,
            "switchboard.sla.kind": fired.kind,
        },
    )


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class TimerScheduler:
    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        timers: TimerStore,
        clocks: ClockStore,
        contacts: ContactStore,
        locks: ConversationLocks,
        producer: EventProducer,
        topics: Topics,
        clock: WallClock = system_clock,
    ) -> None:
        self._clock = clock
        self._live = live
        self._timers = timers
        self._clocks = clocks
        self._contacts = contacts
        self._locks = locks
        self._producer = producer
        self._topics = topics
        self._next_due: dict[int, int | None] = {}
        self._announced: dict[int, int] = {}
        """Per partition, the earliest timer announced since a read of its next due time
        began (see :meth:`_refresh`)."""
        self._refreshing = asyncio.Lock()
        self._wake = asyncio.Event()

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._next_due)

    def scheduled(self, partition: int, due_ms: int) -> None:
        """A timer was added; wake up if it is earlier than anything we wait for."""
        announced = self._announced.get(partition)
        if announced is None or due_ms < announced:
            self._announced[partition] = due_ms
        if partition not in self._next_due:
            return
        current = self._next_due[partition]
        if current is None or due_ms < current:
            self._next_due[partition] = due_ms
            self._wake.set()

    async def assign(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            await self._refresh(partition, assigning=True)
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
                await asyncio.sleep(PUBLISH_BACKOFF.delay(failures))
                try:
                    await self.assign(list(self._next_due))  # republish what stayed claimed
                    failures = 0
                except INFRASTRUCTURE_ERRORS:
                    continue

    async def _run_until_failure(self) -> None:
        while True:
            now_ms = point_ms(self._clock())
            due = [p for p, at in self._next_due.items() if at is not None and at <= now_ms]
            if due:
                await self._fire_each(due, now_ms)
                continue
            upcoming = [at for at in self._next_due.values() if at is not None]
            wait = (min(upcoming) - now_ms) / 1000 if upcoming else IDLE_WAIT
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, IDLE_WAIT))

    async def _fire_each(self, partitions: list[int], now_ms: int) -> None:
        """Fire the due partitions side by side, so that one builds its events while another
        waits for Redis or Kafka (one at a time, the worker sat idle a fifth of a burst). A
        conversation's clocks all live in one partition, so the tasks share no lock, and each
        partition's batches keep their order. The first failure cancels the others (what they
        claimed stays claimed, for the republish that follows) and is raised as it is."""
        if len(partitions) == 1:
            await self._fire(partitions[0], now_ms)
            return
        try:
            async with asyncio.TaskGroup() as group:
                for partition in partitions:
                    group.create_task(self._fire(partition, now_ms))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _fire(self, partition: int, now_ms: int) -> None:
        claimed = await self._timers.claim_due(partition, now_ms, CLAIM_BATCH)
        if claimed:
            await self._publish(partition, claimed)
        await self._refresh(partition)

    async def _refresh(self, partition: int, *, assigning: bool = False) -> None:
        """Read when the partition's next timer is due. A timer added while the read is under
        way may be missing from its answer, and overwriting the earlier time it announced
        would leave it unfired until the next wake-up; so the earliest announced meanwhile
        counts too."""
        async with self._refreshing:  # one read at a time: each sees every announcement
            self._announced.pop(partition, None)
            due = await self._timers.next_due_ms(partition)
            announced = self._announced.pop(partition, None)
        if announced is not None and (due is None or announced < due):
            due = announced
        if assigning or partition in self._next_due:  # not revoked meanwhile
            self._next_due[partition] = due

    async def _publish(self, partition: int, claimed: list[Claimed]) -> None:
        """Publish the events of claimed timers in one batch, then release the claims (each
        timer goes back in at its clock's next point). The batch's conversations stay locked
        until then, so the keeper never changes a clock between its reading and its event."""
        async with self._locks.hold_all(t.conversation_id for t, _ in claimed):
            due = await self._due_points(partition, claimed)
            contacts = await self._contacts.get_many(
                sorted({c.conversation_id for c, steps in due if c and _follow_up(steps)})
            )
            fired: list[_Fired] = []
            following: list[int | None] = []
            for (timer, due_ms), (clock, steps) in zip(claimed, due, strict=True):
                if clock is None:
                    following.append(None)  # met, paused, recomputed or reopened meanwhile
                    continue
                for step, at in steps:
                    fired += self._fire_step(clock, step, at, contacts.get(clock.conversation_id))
                running = timer.metric != "survey"
                following.append(next_point_ms(clock, due_ms) if running else None)
            traces = {  # each clock's trace rebuilt once, for the batch's links and its event
                traceparent: context_from_traceparent(traceparent)
                for traceparent in dict.fromkeys(item.clock.traceparent for item in fired)
            }
            with _tracer.start_as_current_span(
                "sla timers due",
                context=otel_context.Context(),  # its own trace, linked to each clock's
                links=links_to(traces.values()),
                attributes={
                    "switchboard.sla.partition": partition,
                    "switchboard.sla.events": len(fired),
                },
            ):
                await self._producer.publish(_in_trace(item, traces) for item in fired)
            await self._timers.release(
                partition, zip((t for t, _ in claimed), following, strict=True)
            )
        now = self._clock()
        followups_sent: Counter[str] = Counter()
        events: Counter[tuple[str, str, str]] = Counter()
        for item in fired:
            metrics.sla_timer_lag_seconds.observe(max((now - item.due).total_seconds(), 0.0))
            if item.kind in FOLLOW_UP_KINDS:
                followups_sent[item.kind] += 1
            else:
                events[item.kind, item.clock.metric, item.clock.queue] += 1
        for kind, count in followups_sent.items():  # one update per series, not per event
            metrics.outbound_followups.labels(kind).inc(count)
        for labels, count in events.items():
            metrics.sla_events.labels(*labels).inc(count)

    async def _due_points(self, partition: int, claimed: list[Claimed]) -> list[_DuePoints]:
        """For each timer claimed in ``partition``, its clock (None when the timer is stale)
        and the steps of that clock due at the claimed time."""
        open_clocks = iter(
            await self._clocks.get_open_many(
                partition,
                [(t.conversation_id, t.metric) for t, _ in claimed if t.metric != "survey"],
            )
        )
        found: list[_DuePoints] = []
        for timer, due_ms in claimed:
            if timer.metric == "survey":
                resolution = await self._clocks.get(partition, timer.conversation_id, "resolution")
                if (
                    resolution is None
                    or resolution.status != "met"
                    or resolution.generation != timer.generation
                ):
                    found.append((None, []))
                else:
                    found.append((resolution, [(SURVEY, _instant(due_ms))]))
                continue
            clock = next(open_clocks)
            if clock is None or clock.generation != timer.generation or clock.status != "running":
                found.append((None, []))
            else:
                found.append(
                    (clock, [(s, at) for s, at in clock.points() if point_ms(at) == due_ms])
                )
        return found

    def _fire_step(
        self, clock: Clock, step: Step, due: datetime, contact: Contact | None
    ) -> list[_Fired]:
        """What one due step publishes: an SLA event, or a follow-up command to the customer
        (none without a contact, nor a status update after an agent's recent reply)."""
        if step.follow_up:
            if contact is None:
                log.info(
                    "no contact for a follow-up; not sent",
                    conversation_id=clock.conversation_id,
                    step=str(step),
                )
                return []
            if step == SURVEY:
                surveys = self._live.current.config.surveys
                if surveys is None or contact.channel not in surveys.channels:
                    return []  # surveys were turned off since the resolution
                event = followups.survey(clock, due, contact, surveys.kind_for(clock.queue))
                return [_Fired(clock, "survey", due, self._command(event))]
            if followups.replied_since_update(clock, due, contact):
                return []
            event = followups.status_update(clock, step, due, contact)
            return [_Fired(clock, "status_update", due, self._command(event))]
        kind = step.event_kind
        calendar = self._live.current.calendar(clock.calendar)
        event = sla_event(clock, step, at=due, calendar=calendar)
        return [
            _Fired(clock, kind, due, Outgoing(self._topics.sla_events, clock.thread_key, event))
        ]

    def _command(self, event: Event) -> Outgoing:
        return Outgoing(self._topics.outbound_commands, event.subject, event)
