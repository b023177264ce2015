"""Driving SLA clocks from the event stream.

- A new conversation starts its first-response and resolution clocks.
- An agent's reply meets the first response (or, later, the next response); an automatic
  acknowledgement is an outbound command, not an agent action, so it never meets anything.
- A customer writing again after an agent answered starts a next-response clock; writing while
  the conversation waits on them resumes the resolution clock; a reopened conversation restarts
  its resolution clock and starts a next response.
- Waiting-on-customer pauses the resolution clock; resolving meets it and cancels the rest.
- A transfer recomputes every open clock with the new queue's calendar.

Every output id derives from the clock (conversation, metric, generation) and the step, and
every instant comes from the input event, so a redelivered input re-emits the same events and
re-adds the same timers. A clock met after its deadline, before its breach timer fired, still
records the breach (with the id the timer would have used).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.deadlines import compute_deadline
from libs.common.events import (
    AgentAction,
    Channel,
    ConversationRouted,
    Event,
    SlaEvent,
    SlaEventKind,
    SlaMetric,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.topics import Topics
from libs.common.tracing import annotate, current_traceparent
from services.sla.clocks import Clock, ClockStatus, ClockStore, ConversationLocks
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerId, TimerStore

SOURCE = "/sla"
TimersScheduled = Callable[[int, int], None]
"""Tells the scheduler that a partition got a timer due at some time (ms)."""

ALL_METRICS: tuple[SlaMetric, ...] = ("first_response", "next_response", "resolution")


def sla_event(
    clock: Clock, kind: SlaEventKind, *, at: datetime, step: str, remaining: float
) -> Event:
    """The event for one step of one clock; its id is fixed by the clock and the step."""
    return Event(
        id=event_id(clock.conversation_id, clock.metric, str(clock.generation), step),
        source=SOURCE,
        subject=clock.thread_key,
        time=at,
        data=SlaEvent(
            kind=kind,
            conversation_id=clock.conversation_id,
            reference=clock.reference,
            queue=clock.queue,
            policy=clock.policy,
            metric=clock.metric,
            started_at=clock.started_at,
            deadline=clock.deadline,
            remaining_seconds=remaining,
            business_hours=clock.business_hours,
            explanation=clock.explanation,
        ),
    )


def timers_of(clock: Clock) -> list[tuple[TimerId, int]]:
    """The warning timers and the breach timer of a clock, with due times in ms."""
    timers = [
        (
            TimerId(clock.conversation_id, clock.metric, clock.generation, "warning", index),
            int(at.timestamp() * 1000),
        )
        for index, at in clock.warnings
    ]
    timers.append(
        (
            TimerId(clock.conversation_id, clock.metric, clock.generation, "breached", 0),
            int(clock.deadline.timestamp() * 1000),
        )
    )
    return timers


class ClockKeeper:
    """Consumes routed conversations and agent actions and keeps the clocks."""

    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        clocks: ClockStore,
        timers: TimerStore,
        locks: ConversationLocks,
        topics: Topics,
        on_scheduled: TimersScheduled,
    ) -> None:
        self._live = live
        self._clocks = clocks
        self._timers = timers
        self._locks = locks
        self._topics = topics
        self._on_scheduled = on_scheduled

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        data = consumed.event.data
        if isinstance(data, ConversationRouted | AgentAction):
            annotate(conversation_id=data.conversation_id)
        if isinstance(data, ConversationRouted):
            annotate(channel=data.channel, queue=data.queue, rule=data.explanation.rule)
            async with self._locks.hold(data.conversation_id):
                return await self._routed(consumed, data)
        if isinstance(data, AgentAction):
            async with self._locks.hold(data.conversation_id):
                return await self._action(data)
        return []

    # --- inputs -----------------------------------------------------------------------------

    async def _routed(self, consumed: Consumed, routed: ConversationRouted) -> list[Outgoing]:
        at = routed.received_at
        out: list[Outgoing] = []
        if routed.is_new:
            for metric in ("first_response", "resolution"):
                out += await self._start(routed, consumed.partition, metric, at, generation=1)
            return out
        clocks = await self._load(routed.conversation_id)
        resolution = clocks.get("resolution")
        if routed.reopened:
            if resolution is not None:
                out += await self._start(
                    routed,
                    consumed.partition,
                    "resolution",
                    at,
                    generation=resolution.generation + 1,
                )
        elif resolution is not None and resolution.status == "paused":
            out += await self._resume(resolution, at)
        first, following = clocks.get("first_response"), clocks.get("next_response")
        answered = first is not None and first.status == "met"
        waiting = following is not None and following.status == "running"
        if (answered or routed.reopened) and not waiting:
            generation = following.generation + 1 if following else 1
            out += await self._start(
                routed, consumed.partition, "next_response", at, generation=generation
            )
        return out

    async def _action(self, action: AgentAction) -> list[Outgoing]:
        clocks = await self._load(action.conversation_id)
        at = action.at
        match action.kind:
            case "reply":
                for metric in ("first_response", "next_response"):
                    clock = clocks.get(metric)
                    if clock is not None and clock.status == "running":
                        return await self._meet(clock, at)
                return []
            case "resolve":
                out: list[Outgoing] = []
                for clock in clocks.values():
                    if clock.status not in ("running", "paused"):
                        continue
                    if clock.metric == "resolution":
                        out += await self._meet(clock, at)
                    else:
                        out += await self._finish(clock, "cancelled", at)
                return out
            case "waiting":
                resolution = clocks.get("resolution")
                if resolution is not None and resolution.status == "running":
                    return await self._pause(resolution, at)
                return []
            case "transfer" if action.queue is not None:
                out = []
                for clock in clocks.values():
                    if clock.status in ("running", "paused") and clock.queue != action.queue:
                        out += await self._transfer(clock, action.queue, at)
                return out
            case _:
                return []

    # --- transitions ------------------------------------------------------------------------

    async def _start(
        self,
        routed: ConversationRouted,
        partition: int,
        metric: SlaMetric,
        at: datetime,
        *,
        generation: int,
    ) -> list[Outgoing]:
        runtime = self._live.current
        if routed.sla_policy is None:
            return []
        policy = runtime.clock_policy(routed.sla_policy, metric)
        if policy is None:
            return []
        calendar_name = runtime.config.policy_calendar(routed.sla_policy, routed.queue)
        deadline = compute_deadline(policy, at, runtime.calendar(calendar_name))
        clock = Clock(
            conversation_id=routed.conversation_id,
            reference=routed.reference,
            queue=routed.queue,
            channel=routed.channel,
            thread_key=routed.thread_key,
            partition=partition,
            policy=routed.sla_policy,
            metric=metric,
            generation=generation,
            status="running",
            started_at=at,
            segment_start=at,
            used_seconds=0.0,
            deadline=deadline.due,
            warnings=deadline.warnings,
            business_hours=deadline.business_hours,
            calendar=calendar_name if deadline.business_hours else None,
            explanation=deadline.explanation,
            traceparent=current_traceparent(),
        )
        await self._clocks.put(clock)
        await self._schedule(clock)
        return [self._emit(clock, "started", at, "started")]

    async def _meet(self, clock: Clock, at: datetime) -> list[Outgoing]:
        out = []
        if at >= clock.deadline:
            # Late, and the breach timer may not have fired yet: record the breach anyway,
            # under the id the timer would have used.
            out.append(self._emit(clock, "breached", clock.deadline, "breached:0"))
        calendar = self._live.current.calendar(clock.calendar)
        metrics.sla_response_seconds.labels(
            clock.metric, clock.queue, clock.channel, clock.policy
        ).observe(clock.spent(at, calendar).total_seconds())
        return out + await self._finish(clock, "met", at)

    async def _finish(self, clock: Clock, kind: SlaEventKind, at: datetime) -> list[Outgoing]:
        status = "met" if kind == "met" else "cancelled"
        await self._timers.cancel(clock.partition, (t for t, _ in timers_of(clock)))
        finished = msgspec.structs.replace(clock, status=status)
        await self._clocks.put(finished)
        return [self._emit(finished, kind, at, kind)]

    async def _pause(self, clock: Clock, at: datetime) -> list[Outgoing]:
        calendar = self._live.current.calendar(clock.calendar)
        await self._timers.cancel(clock.partition, (t for t, _ in timers_of(clock)))
        paused = msgspec.structs.replace(
            clock, status="paused", used_seconds=clock.spent(at, calendar).total_seconds()
        )
        await self._clocks.put(paused)
        return [self._emit(paused, "paused", at, "paused")]

    async def _resume(self, clock: Clock, at: datetime) -> list[Outgoing]:
        resumed = self._recompute(clock, at, queue=clock.queue, status="running")
        await self._clocks.put(resumed)
        await self._schedule(resumed)
        return [self._emit(resumed, "resumed", at, "resumed")]

    async def _transfer(self, clock: Clock, queue: str, at: datetime) -> list[Outgoing]:
        if clock.status == "running":
            calendar = self._live.current.calendar(clock.calendar)
            clock = msgspec.structs.replace(
                clock, used_seconds=clock.spent(at, calendar).total_seconds()
            )
            await self._timers.cancel(clock.partition, (t for t, _ in timers_of(clock)))
        moved = self._recompute(clock, at, queue=queue, status=clock.status)
        await self._clocks.put(moved, previous_queue=clock.queue)
        if moved.status == "running":
            await self._schedule(moved)
        return [self._emit(moved, "recomputed", at, "recomputed")]

    def _recompute(self, clock: Clock, at: datetime, *, queue: str, status: ClockStatus) -> Clock:
        """A new generation of the clock counting from ``at`` with what it has used so far."""
        runtime = self._live.current
        policy = runtime.clock_policy(clock.policy, clock.metric)
        assert policy is not None  # a clock exists only for a metric its policy defines
        calendar_name = runtime.config.policy_calendar(clock.policy, queue)
        deadline = compute_deadline(policy, at, runtime.calendar(calendar_name), used=clock.used)
        return msgspec.structs.replace(
            clock,
            queue=queue,
            generation=clock.generation + 1,
            status=status,
            segment_start=at,
            deadline=deadline.due,
            warnings=deadline.warnings,
            business_hours=deadline.business_hours,
            calendar=calendar_name if deadline.business_hours else None,
            explanation=deadline.explanation,
        )

    # --- plumbing ---------------------------------------------------------------------------

    async def _load(self, conversation_id: str) -> dict[str, Clock]:
        found: dict[str, Clock] = {}
        for metric in ALL_METRICS:
            clock = await self._clocks.get(conversation_id, metric)
            if clock is not None:
                found[metric] = clock
        return found

    async def _schedule(self, clock: Clock) -> None:
        timers = timers_of(clock)
        await self._timers.schedule(clock.partition, timers)
        self._on_scheduled(clock.partition, min(due for _, due in timers))

    def _emit(self, clock: Clock, kind: SlaEventKind, at: datetime, step: str) -> Outgoing:
        calendar = self._live.current.calendar(clock.calendar)
        remaining = clock.remaining(at, calendar).total_seconds()
        metrics.sla_events.labels(kind, clock.metric, clock.queue).inc()
        event = sla_event(clock, kind, at=at, step=step, remaining=remaining)
        return Outgoing(self._topics.sla_events, clock.thread_key, event)


__all__ = ["Channel", "ClockKeeper", "sla_event", "timers_of"]
