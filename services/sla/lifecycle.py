"""Driving SLA clocks from the event stream: a routed conversation starts its clocks.

Every output id derives from the clock (conversation, metric, generation) and the step, so a
redelivered input re-emits the same events and re-adds the same timers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.deadlines import compute_deadline
from libs.common.events import (
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
from libs.common.tracing import current_traceparent
from services.sla.clocks import Clock, ClockStore
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerId, TimerStore

SOURCE = "/sla"
TimersScheduled = Callable[[int, int], None]
"""Tells the scheduler that a partition got a timer due at some time (ms)."""

METRICS: tuple[SlaMetric, ...] = ("first_response", "resolution")
"""Clocks a new conversation starts (next response starts when a customer writes again)."""


def sla_event(clock: Clock, kind: SlaEventKind, *, at: datetime, step: str) -> Event:
    """The event for one step of one clock; its id is fixed by the clock and the step."""
    remaining = (clock.deadline - at).total_seconds()
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
        for index, at in enumerate(clock.warnings)
    ]
    timers.append(
        (
            TimerId(clock.conversation_id, clock.metric, clock.generation, "breached", 0),
            int(clock.deadline.timestamp() * 1000),
        )
    )
    return timers


class ClockKeeper:
    """Consumes routed conversations (and later agent actions) and keeps the clocks."""

    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        clocks: ClockStore,
        timers: TimerStore,
        topics: Topics,
        on_scheduled: TimersScheduled,
    ) -> None:
        self._live = live
        self._clocks = clocks
        self._timers = timers
        self._topics = topics
        self._on_scheduled = on_scheduled

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        data = consumed.event.data
        if isinstance(data, ConversationRouted):
            return await self._routed(consumed, data)
        return []

    async def _routed(self, consumed: Consumed, routed: ConversationRouted) -> list[Outgoing]:
        if not routed.is_new or routed.sla_policy is None:
            return []
        runtime = self._live.current
        policy = runtime.config.sla_policies.get(routed.sla_policy)
        if policy is None:
            return []
        calendar_name = runtime.config.policy_calendar(routed.sla_policy, routed.queue)
        calendar = runtime.calendars.get(calendar_name) if calendar_name else None
        outputs = []
        for metric in METRICS:
            clock_policy = getattr(policy, metric)
            if clock_policy is None:
                continue
            deadline = compute_deadline(clock_policy, routed.received_at, calendar)
            clock = Clock(
                conversation_id=routed.conversation_id,
                reference=routed.reference,
                queue=routed.queue,
                thread_key=routed.thread_key,
                partition=consumed.partition,
                policy=routed.sla_policy,
                metric=metric,
                generation=1,
                status="running",
                started_at=deadline.start,
                deadline=deadline.due,
                warnings=deadline.warnings,
                business_hours=deadline.business_hours,
                calendar=calendar_name if deadline.business_hours else None,
                explanation=deadline.explanation,
                traceparent=current_traceparent(),
            )
            await self._clocks.put(clock)
            timers = timers_of(clock)
            await self._timers.schedule(consumed.partition, timers)
            self._on_scheduled(consumed.partition, min(due for _, due in timers))
            event = sla_event(clock, "started", at=routed.received_at, step="started")
            outputs.append(Outgoing(self._topics.sla_events, routed.thread_key, event))
            metrics.sla_events.labels("started", metric, routed.queue).inc()
        return outputs
