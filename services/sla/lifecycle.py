"""Driving SLA clocks from the event stream.

- A new conversation starts its first-response and resolution clocks.
- A response clock (the first response, or later the next response) is met only when the
  customer was reached: by the send receipt of an agent's reply (the provider accepted it; met
  at the instant the reply was commanded, the receipt's event time), or by an agent's
  ``reached`` action (answered outside Switchboard, e.g. by phone). The agent's ``reply``
  action alone meets nothing: a reply suppressed (the customer sent STOP), failed or lost
  leaves the clock running, and the console shows it was not sent. Automatic messages
  (acknowledgements, status updates) never meet anything.
- A customer writing again after an agent answered starts a next-response clock; writing while
  the conversation waits on them resumes the resolution clock; a reopened conversation restarts
  its resolution clock and starts a next response. Both follow the conversation's own policy
  (the one its first response was held to), not the one the rules give the new message, unless
  the matched rule names a ``next_response_policy``; the started event's explanation says which.
- Waiting-on-customer pauses the resolution clock; resolving meets it and cancels the rest. A
  paused clock spends nothing: met while paused, it reports the time used before the pause, and
  points that would have fallen after the pause are neither warned nor breached.
- A transfer recomputes every open clock with the new queue's calendar; so does a reloaded
  configuration that changed a clock's policy or calendar (a clock already breached stays as
  it is, and warning points already passed are not scheduled again).

Customer follow-ups (:mod:`services.sla.followups`): a resolution clock whose policy has
``update_customer`` points carries their instants and fires them like warnings; meeting the
resolution clock schedules the survey timer (when ``surveys`` is configured for the channel)
in the same transaction, and replacing that met clock (a reopening) cancels it. Where to send
them is kept from routed conversations and agents' replies (:mod:`services.sla.contacts`).

Every output id derives from the clock (conversation, metric, generation) and the step, and
every instant comes from the input event, so a redelivered input re-emits the same events and
re-adds the same timers. That holds only if the redelivery finds the clocks as the first
delivery did, so an input's events are published before its clock writes, which follow in one
transaction once Kafka acknowledged them (:meth:`ClockKeeper._apply`). A clock met after its
deadline, before its breach timer fired, still records the breach (with the id the timer
would have used).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
from redis.asyncio.client import Pipeline

from libs.common import metrics
from libs.common.config import ClockPolicy, LiveConfig
from libs.common.events import (
    AgentAction,
    Channel,
    ConversationRouted,
    Event,
    OutboundReceipt,
    ReceiptStatus,
    SlaEvent,
    SlaEventKind,
    SlaMetric,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.logs import get_logger
from libs.common.topics import Topics
from libs.common.tracing import annotate, current_traceparent
from libs.domain.calendar import BusinessCalendar
from libs.domain.deadlines import compute_deadline
from services.sla.clocks import Clock, ClockStatus, ClockStore, ConversationLocks
from services.sla.contacts import ContactStore
from services.sla.runtime import SlaRuntime
from services.sla.steps import BREACH, Step, StepKind
from services.sla.timers import TimerId, TimerStore

log = get_logger(__name__)
SOURCE = "/sla"
RECOMPUTE_BATCH = 500
TimersScheduled = Callable[[int, int], None]
"""Tells the scheduler that a partition got a timer due at some time (ms)."""
Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
"""Sends events to Kafka and returns once every one was acknowledged."""

ALL_METRICS: tuple[SlaMetric, ...] = ("first_response", "next_response", "resolution")
RESPONSE_METRICS: tuple[SlaMetric, ...] = ("first_response", "next_response")
NEW_CONVERSATION_METRICS: tuple[SlaMetric, ...] = ("first_response", "resolution")
REACHED: frozenset[ReceiptStatus] = frozenset({"sent", "delivered"})
"""Receipts that say the provider accepted the message: only these meet a response clock."""


def sla_event(
    clock: Clock,
    step: Step,
    *,
    at: datetime,
    calendar: BusinessCalendar | None,
    note: str | None = None,
) -> Event:
    """The event for one step of one clock; its id is fixed by the clock and the step. A
    ``note`` goes in front of the explanation."""
    explanation = clock.explanation(calendar)
    return Event(
        id=event_id(clock.conversation_id, clock.metric, str(clock.generation), str(step)),
        source=SOURCE,
        subject=clock.thread_key,
        time=at,
        data=SlaEvent(
            kind=step.event_kind,
            conversation_id=clock.conversation_id,
            reference=clock.reference,
            queue=clock.queue,
            policy=clock.policy,
            metric=clock.metric,
            started_at=clock.started_at,
            deadline=clock.deadline_at(at, calendar),
            remaining_seconds=clock.remaining(at, calendar).total_seconds(),
            business_hours=clock.business_hours,
            explanation=f"{note}; {explanation}" if note else explanation,
        ),
    )


def new_clock(
    runtime: SlaRuntime,
    routed: ConversationRouted,
    partition: int,
    metric: SlaMetric,
    at: datetime,
    generation: int,
    policy_name: str | None = None,
) -> Clock | None:
    """A running clock for ``metric`` of a routed conversation, under ``policy_name`` (by
    default the one the message was routed with); None when that policy has no such clock."""
    policy_name = policy_name or routed.sla_policy
    if policy_name is None:
        return None
    policy = runtime.clock_policy(policy_name, metric)
    if policy is None:
        return None
    calendar_name = runtime.config.policy_calendar(policy_name, routed.queue)
    calendar = runtime.calendar(calendar_name)
    deadline = compute_deadline(policy, at, calendar)
    return Clock(
        conversation_id=routed.conversation_id,
        reference=routed.reference,
        queue=routed.queue,
        channel=routed.channel,
        thread_key=routed.thread_key,
        partition=partition,
        policy=policy_name,
        metric=metric,
        generation=generation,
        status="running",
        started_at=at,
        segment_start=at,
        used_seconds=0.0,
        within_seconds=policy.within.total_seconds(),
        deadline=deadline.due,
        warnings=deadline.warnings,
        business_hours=deadline.business_hours,
        calendar=calendar_name if deadline.business_hours else None,
        traceparent=current_traceparent(),
        updates=update_points(policy, at, calendar),
    )


def update_points(
    policy: ClockPolicy,
    start: datetime,
    calendar: BusinessCalendar | None,
    used: timedelta = timedelta(0),
) -> tuple[tuple[int, datetime], ...]:
    """The instants of a window's status updates: its ``update_customer`` points, placed
    exactly as warnings are (same syntax, same business-hours counting, passed ones dropped)."""
    if not policy.update_customer:
        return ()
    as_warnings = policy.model_copy(update={"warn_before": policy.update_customer})
    return compute_deadline(as_warnings, start, calendar, used=used).warnings


def timer_of(clock: Clock) -> TimerId:
    return TimerId(clock.conversation_id, clock.metric, clock.generation)


def survey_timer_of(resolution: Clock) -> TimerId:
    """The survey timer that follows a generation of a resolution clock."""
    return TimerId(resolution.conversation_id, "survey", resolution.generation)


def point_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def next_point_ms(clock: Clock, after_ms: int | None = None) -> int | None:
    """Due time (ms) of the clock's first point after ``after_ms`` (its first point if None)."""
    dues = sorted(point_ms(at) for _, at in clock.points())
    return next((due for due in dues if after_ms is None or due > after_ms), None)


async def stage_clock(
    pipe: Pipeline,
    clocks: ClockStore,
    timers: TimerStore,
    clock: Clock,
    *,
    replaces: Clock | None = None,
) -> int | None:
    """Queue storing a clock, dropping the timer of the state it replaces and adding its own;
    in a transaction the three happen together. Returns the new timer's due time (ms)."""
    if replaces is not None and replaces.status == "running":
        timers.stage_cancel(pipe, replaces.partition, timer_of(replaces))
    if replaces is not None and replaces.metric == "resolution" and replaces.status == "met":
        timers.stage_cancel(pipe, replaces.partition, survey_timer_of(replaces))  # reopened
    await clocks.stage(pipe, clock)
    due = next_point_ms(clock) if clock.status == "running" else None
    if due is not None:
        timers.stage_schedule(pipe, clock.partition, timer_of(clock), due)
    return due


@dataclass
class _Changes:
    """The clock writes of one input, staged on one transaction, and the timers they add."""

    pipe: Pipeline
    woken: list[tuple[int, int]] = field(default_factory=list)


class ClockKeeper:
    """Consumes routed conversations and agent actions and keeps the clocks."""

    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        clocks: ClockStore,
        timers: TimerStore,
        contacts: ContactStore,
        locks: ConversationLocks,
        topics: Topics,
        on_scheduled: TimersScheduled,
        publish: Publish,
    ) -> None:
        self._live = live
        self._clocks = clocks
        self._timers = timers
        self._contacts = contacts
        self._locks = locks
        self._topics = topics
        self._on_scheduled = on_scheduled
        self._publish = publish

    async def handle(self, consumed: Consumed) -> list[Outgoing]:
        """Apply one input. Its events are published here (see :meth:`_apply`), so nothing is
        left for the consumer loop to publish."""
        data = consumed.event.data
        if isinstance(data, ConversationRouted | AgentAction):
            annotate(conversation_id=data.conversation_id)
        if isinstance(data, ConversationRouted):
            annotate(channel=data.channel, queue=data.queue, rule=data.explanation.rule)
            routed = data
            await self._apply(
                [routed.conversation_id], lambda changes: self._routed(changes, consumed, routed)
            )
        elif isinstance(data, AgentAction):
            action = data
            await self._apply(
                [action.conversation_id],
                lambda changes: self._action(changes, action, consumed.partition),
            )
        elif isinstance(data, OutboundReceipt) and data.kind == "agent_reply":
            annotate(conversation_id=data.conversation_id)
            if data.status not in REACHED:
                log.info(
                    "agent reply not sent; its response clock keeps running",
                    conversation_id=data.conversation_id,
                    command_id=data.command_id,
                    status=data.status,
                    error=data.error,
                )
                return []
            receipt = data

            async def answered(changes: _Changes) -> list[Outgoing]:
                clocks = await self._load(consumed.partition, receipt.conversation_id)
                return await self._meet_response(changes, clocks, consumed.event.time)

            await self._apply([receipt.conversation_id], answered)
        return []

    async def _apply(
        self,
        conversation_ids: Iterable[str],
        transition: Callable[[_Changes], Awaitable[list[Outgoing]]],
    ) -> None:
        """Run ``transition`` under the conversations' locks, publish its events, then write
        its clocks in one transaction. A worker that dies between the two leaves the clocks as
        the input found them, so its redelivery publishes the same events again (same ids).
        Writing first would lose them: the redelivery would find its clock already met (or
        paused, or restarted) and have nothing to say."""
        async with self._locks.hold_all(conversation_ids), self._clocks.transaction() as pipe:
            changes = _Changes(pipe)
            events = await transition(changes)
            await self._publish(events)
            await pipe.execute()
        self._wake(changes.woken)

    # --- inputs -----------------------------------------------------------------------------

    async def _routed(
        self, changes: _Changes, consumed: Consumed, routed: ConversationRouted
    ) -> list[Outgoing]:
        at = routed.received_at
        out: list[Outgoing] = []
        if self._follows_up(routed.sla_policy, routed.channel):
            await self._contacts.record_routed(routed)
        if routed.is_new:
            return out + await self._start_new(changes, routed, consumed.partition, at)
        clocks = await self._load(consumed.partition, routed.conversation_id)
        resolution = clocks.get("resolution")
        if routed.reopened:
            if resolution is not None:
                out += await self._start(
                    changes,
                    routed,
                    consumed.partition,
                    "resolution",
                    at,
                    generation=resolution.generation + 1,
                    replaces=resolution,
                    policy=resolution.policy,
                )
        elif resolution is not None and resolution.status == "paused":
            out += await self._resume(changes, resolution, at)
        first, following = clocks.get("first_response"), clocks.get("next_response")
        answered = first is not None and first.status == "met"
        waiting = following is not None and following.status == "running"
        if (answered or routed.reopened) and not waiting:
            generation = following.generation + 1 if following else 1
            own = first or resolution
            policy, note = self._next_response_policy(routed, own.policy if own else None)
            out += await self._start(
                changes,
                routed,
                consumed.partition,
                "next_response",
                at,
                generation=generation,
                replaces=following,
                policy=policy,
                note=note,
            )
        return out

    def _next_response_policy(
        self, routed: ConversationRouted, own: str | None
    ) -> tuple[str | None, str]:
        """The policy a next response is held to, and the words that say why. The rules ran
        again on the follow-up as if it were a new message, so the policy they picked is not
        the conversation's: a next response is held to the conversation's own policy (the one
        its first response was held to) unless the matched rule names another explicitly
        (``next_response_policy``)."""
        rule = routed.explanation.rule
        named = self._live.current.config.next_response_policy(rule)
        if named is not None:
            return named, f"policy {named}: rule {rule} names it for next responses"
        if own is not None:
            return own, f"policy {own}: the conversation's own, as for its first response"
        return routed.sla_policy, f"policy {routed.sla_policy}: rule {rule}'s"

    async def reconfigure(
        self, previous: SlaRuntime, partitions: frozenset[int], now: Callable[[], datetime]
    ) -> None:
        """Recompute the open clocks of ``partitions`` after the configuration changed from
        ``previous``: those whose policy or calendar changed get a new generation (their timers
        moved with them) and a ``recomputed`` event. Already breached clocks are left alone; a
        clock whose deadline comes out the same (it was recomputed already, or the change did
        not touch it) gets nothing.

        The pass goes in batches of one partition's clocks, each applied as an input is (its
        events published, then its clocks written), so a pass cut short leaves the rest to the
        next pass and never a clock recomputed without its event. A batch is recomputed at
        ``now()`` read once its conversations are locked, not at one instant for the whole
        pass: the pass takes time, and a timer the scheduler fired meanwhile (under the same
        lock) is then behind that instant, so a clock it breached stays breached and no
        ``recomputed`` event is dated before an event already out."""
        runtime = self._live.current
        batch: list[Clock] = []
        async for stored in self._clocks.open_clocks():
            if stored.partition not in partitions:
                continue
            if not runtime.affects(previous, stored.policy, stored.metric, stored.queue):
                continue
            if batch and (stored.partition != batch[0].partition or len(batch) >= RECOMPUTE_BATCH):
                await self._recompute_batch(batch, previous, now)
                batch = []
            batch.append(stored)
        if batch:
            await self._recompute_batch(batch, previous, now)

    async def _recompute_batch(
        self, batch: list[Clock], previous: SlaRuntime, now: Callable[[], datetime]
    ) -> None:
        async def recompute(changes: _Changes) -> list[Outgoing]:
            at = now()
            out: list[Outgoing] = []
            for stored in batch:
                clock = await self._clocks.get_open(
                    stored.partition, stored.conversation_id, stored.metric
                )
                if clock is not None and not _breached(clock, at):
                    out += await self._recompute_changed(changes, clock, at, previous)
            return out

        await self._apply([c.conversation_id for c in batch], recompute)

    def _wake(self, woken: list[tuple[int, int]]) -> None:
        """Tell the scheduler of timers written once their events are out, so a ``started``
        or ``recomputed`` event goes out before anything fired at its new points."""
        for partition, due in woken:
            self._on_scheduled(partition, due)

    async def _action(
        self, changes: _Changes, action: AgentAction, partition: int
    ) -> list[Outgoing]:
        clocks = await self._load(partition, action.conversation_id)
        at = action.at
        match action.kind:
            case "reply":  # met by its send receipt, if it goes out
                if any(self._follows_up(c.policy, c.channel) for c in clocks.values()):
                    await self._contacts.record_reply(action.conversation_id, at)
                return []
            case "reached":
                return await self._meet_response(changes, clocks, at)
            case "resolve":
                out: list[Outgoing] = []
                for clock in clocks.values():
                    if clock.status not in ("running", "paused"):
                        continue
                    if clock.metric == "resolution":
                        out += await self._meet(changes, clock, at)
                    else:
                        out += await self._finish(changes, clock, "cancelled", at)
                return out
            case "waiting":
                resolution = clocks.get("resolution")
                if resolution is not None and resolution.status == "running":
                    return await self._pause(changes, resolution, at)
                return []
            case "transfer" if action.queue is not None:
                out = []
                for clock in clocks.values():
                    if clock.status in ("running", "paused") and clock.queue != action.queue:
                        out += await self._transfer(changes, clock, action.queue, at)
                return out
            case _:
                return []

    async def _meet_response(
        self, changes: _Changes, clocks: dict[SlaMetric, Clock], at: datetime
    ) -> list[Outgoing]:
        """Meet the running response clock (first response, else next response), if any."""
        for metric in RESPONSE_METRICS:
            clock = clocks.get(metric)
            if clock is not None and clock.status == "running":
                return await self._meet(changes, clock, at)
        return []

    # --- transitions ------------------------------------------------------------------------

    async def _start(
        self,
        changes: _Changes,
        routed: ConversationRouted,
        partition: int,
        metric: SlaMetric,
        at: datetime,
        *,
        generation: int,
        replaces: Clock | None = None,
        policy: str | None = None,
        note: str | None = None,
    ) -> list[Outgoing]:
        clock = new_clock(self._live.current, routed, partition, metric, at, generation, policy)
        if clock is None:
            return []
        await self._save(changes, clock, replaces=replaces)
        return [self._emit(clock, Step(StepKind.STARTED), at, note)]

    async def _start_new(
        self, changes: _Changes, routed: ConversationRouted, partition: int, at: datetime
    ) -> list[Outgoing]:
        """A new conversation's clocks (first response and resolution), staged after one read
        of what is stored already.

        A record read again (a restarted worker reads from its last commit, which lags what it
        applied) finds the clocks stored and perhaps met or paused since: it says ``started``
        again (the same events) and leaves them as they are, where writing them afresh would
        restart a clock already answered and fire its warnings and breach after the answer."""
        runtime = self._live.current
        clocks = [
            clock
            for metric in NEW_CONVERSATION_METRICS
            if (clock := new_clock(runtime, routed, partition, metric, at, 1)) is not None
        ]
        if not clocks:
            return []
        stored = await self._clocks.get_all(
            partition, routed.conversation_id, NEW_CONVERSATION_METRICS
        )
        for clock in clocks:
            if clock.metric not in stored:
                await self._save(changes, clock, replaces=None)
        return [self._emit(clock, Step(StepKind.STARTED), at) for clock in clocks]

    async def _meet(self, changes: _Changes, clock: Clock, at: datetime) -> list[Outgoing]:
        # Warnings that fell due before the answer but whose timer has not fired yet (the
        # worker was down or behind and read the answer first): recorded now, under the ids
        # the timer would have used, so a due point is never skipped. A paused clock spent
        # nothing since its pause: only points due before the pause count.
        counted_until = at if clock.status == "running" else clock.segment_start
        out = [
            self._emit(clock, step, due)
            for step, due in clock.points()
            if step.kind is StepKind.WARNING and due <= counted_until
        ]
        if counted_until >= clock.deadline:
            # Late, and the breach timer may not have fired yet: record the breach anyway,
            # under the id the timer would have used.
            out.append(self._emit(clock, BREACH, clock.deadline))
        calendar = self._live.current.calendar(clock.calendar)
        metrics.sla_response_seconds.labels(
            clock.metric, clock.queue, clock.channel, clock.policy
        ).observe(clock.spent(at, calendar).total_seconds())
        survey_at = self._survey_due(clock, at)
        return out + await self._finish(changes, clock, "met", at, survey_at=survey_at)

    async def _finish(
        self,
        changes: _Changes,
        clock: Clock,
        kind: SlaEventKind,
        at: datetime,
        *,
        survey_at: int | None = None,
    ) -> list[Outgoing]:
        status = "met" if kind == "met" else "cancelled"
        finished = msgspec.structs.replace(_counted(clock, at, self._live.current), status=status)
        await self._save(changes, finished, replaces=clock, survey_at=survey_at)
        # Reported as it stood when it was met: a clock met while paused reports the time it
        # used before the pause, not a deadline that stopped meaning anything at the pause.
        return [self._emit(clock, Step(StepKind(kind)), at)]

    def _follows_up(self, policy: str | None, channel: Channel) -> bool:
        """Whether conversations of this policy and channel can get a status update or a
        survey (only those keep a contact): both follow a resolution clock."""
        resolution = self._live.current.clock_policy(policy, "resolution") if policy else None
        if resolution is None:
            return False
        surveys = self._live.current.config.surveys
        return bool(resolution.update_customer) or (
            surveys is not None and channel in surveys.channels
        )

    def _survey_due(self, clock: Clock, at: datetime) -> int | None:
        """When the survey after this clock is met goes out (ms), if one does."""
        surveys = self._live.current.config.surveys
        if clock.metric != "resolution" or surveys is None or clock.channel not in surveys.channels:
            return None
        return point_ms(at + surveys.after)

    async def _pause(self, changes: _Changes, clock: Clock, at: datetime) -> list[Outgoing]:
        paused = msgspec.structs.replace(
            _counted(clock, at, self._live.current), status="paused", segment_start=at
        )
        await self._save(changes, paused, replaces=clock)
        return [self._emit(paused, Step(StepKind.PAUSED), at)]

    async def _resume(self, changes: _Changes, clock: Clock, at: datetime) -> list[Outgoing]:
        resumed = self._recompute(clock, at, queue=clock.queue, status="running")
        await self._save(changes, resumed, replaces=clock)
        return [self._emit(resumed, Step(StepKind.RESUMED), at)]

    async def _transfer(
        self, changes: _Changes, clock: Clock, queue: str, at: datetime
    ) -> list[Outgoing]:
        counted = _counted(clock, at, self._live.current)
        moved = self._recompute(counted, at, queue=queue, status=clock.status)
        await self._save(changes, moved, replaces=clock)
        return [self._emit(moved, Step(StepKind.RECOMPUTED), at)]

    async def _recompute_changed(
        self, changes: _Changes, clock: Clock, at: datetime, previous: SlaRuntime
    ) -> list[Outgoing]:
        """Recompute with the current configuration, counting the time spent so far with the
        previous one; nothing when the deadline and warnings come out as they are."""
        runtime = self._live.current
        if not runtime.knows(clock.policy, clock.metric, clock.queue):
            log.warning(
                "open clock's policy or queue is gone from the configuration; left as it is",
                conversation_id=clock.conversation_id,
                policy=clock.policy,
                queue=clock.queue,
            )
            return []
        changed = self._recompute(
            _counted(clock, at, previous), at, queue=clock.queue, status=clock.status
        )
        if _schedule_of(changed, at) == _schedule_of(clock, at):
            return []
        await self._save(changes, changed, replaces=clock)
        return [self._emit(changed, Step(StepKind.RECOMPUTED), at)]

    def _recompute(self, clock: Clock, at: datetime, *, queue: str, status: ClockStatus) -> Clock:
        """A new generation of the clock counting from ``at`` with what it has used so far."""
        runtime = self._live.current
        policy = runtime.clock_policy(clock.policy, clock.metric)
        assert policy is not None  # a clock exists only for a metric its policy defines
        calendar_name = runtime.config.policy_calendar(clock.policy, queue)
        calendar = runtime.calendar(calendar_name)
        deadline = compute_deadline(policy, at, calendar, used=clock.used)
        return msgspec.structs.replace(
            clock,
            queue=queue,
            generation=clock.generation + 1,
            status=status,
            segment_start=at,
            within_seconds=policy.within.total_seconds(),
            deadline=deadline.due,
            warnings=deadline.warnings,
            business_hours=deadline.business_hours,
            calendar=calendar_name if deadline.business_hours else None,
            updates=update_points(policy, at, calendar, clock.used),
        )

    # --- plumbing ---------------------------------------------------------------------------

    async def _load(self, partition: int, conversation_id: str) -> dict[SlaMetric, Clock]:
        """The conversation's clocks, found by the partition its records arrive on."""
        return await self._clocks.get_all(partition, conversation_id, ALL_METRICS)

    async def _save(
        self,
        changes: _Changes,
        clock: Clock,
        *,
        replaces: Clock | None,
        survey_at: int | None = None,
    ) -> None:
        """Stage storing the clock and moving its timer (and adding the survey timer due at
        ``survey_at``); the scheduler hears of the timers once they are written."""
        due = await stage_clock(changes.pipe, self._clocks, self._timers, clock, replaces=replaces)
        if survey_at is not None:
            self._timers.stage_schedule(
                changes.pipe, clock.partition, survey_timer_of(clock), survey_at
            )
        changes.woken += [(clock.partition, at) for at in (due, survey_at) if at is not None]

    def _emit(self, clock: Clock, step: Step, at: datetime, note: str | None = None) -> Outgoing:
        calendar = self._live.current.calendar(clock.calendar)
        metrics.sla_events.labels(step.event_kind, clock.metric, clock.queue).inc()
        event = sla_event(clock, step, at=at, calendar=calendar, note=note)
        return Outgoing(self._topics.sla_events, clock.thread_key, event)


def _counted(clock: Clock, at: datetime, runtime: SlaRuntime) -> Clock:
    """The clock with the time it spent up to ``at`` moved into ``used`` (as counted by the
    calendar of ``runtime``), ready to be recomputed from ``at``."""
    if clock.status != "running":
        return clock
    spent = clock.spent(at, runtime.calendar(clock.calendar))
    return msgspec.structs.replace(clock, used_seconds=spent.total_seconds())


def _schedule_of(clock: Clock, at: datetime) -> tuple[object, ...]:
    """What a recomputation can change, as seen from ``at`` (passed warnings are history; a
    paused clock has no schedule until it resumes, only its window and calendar)."""
    if clock.status == "paused":
        return clock.within_seconds, clock.calendar
    upcoming = tuple(w for w in clock.warnings if w[1] > at)
    updates = tuple(u for u in clock.updates if u[1] > at)
    return clock.deadline, upcoming, updates, clock.within_seconds, clock.calendar


def _breached(clock: Clock, at: datetime) -> bool:
    """Whether the clock has used its whole window (a breach stays a breach)."""
    if clock.status == "running":
        return clock.deadline <= at
    return clock.used >= clock.within


__all__ = [
    "Channel",
    "ClockKeeper",
    "new_clock",
    "sla_event",
    "stage_clock",
    "survey_timer_of",
    "timer_of",
]
