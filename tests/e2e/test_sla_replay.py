"""Traffic with pauses, transfers, reopenings, follow-ups and a reload runs through the router
and the SLA service; then every deadline the SLA service emitted is recomputed from the event
log by a separate minimal calculator (below, sharing no code with libs/domain/calendar.py or
deadlines.py) and must agree to the microsecond.

Time enters the services through their own clocks: every input is stamped when it is sent,
and the windows are seconds long. The two calendars are open on alternate UTC minutes (desk
on even ones, night on odd ones), so windows cross closed time and land on closing instants
within seconds, and a transfer moves a clock into the other calendar.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libs.common.events import (
    AgentAction,
    AgentActionKind,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    MessageReceived,
    SlaEvent,
    event_id,
)
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from tests.support.harness import Isolation, Launch
from tests.support.kafka import Collected, collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e

US = 1_000_000
MINUTE = 60 * US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- the configuration ------------------------------------------------------------------------

POLICIES = {  # policy -> metric -> (window in seconds, counted in business hours)
    "chat": {"first_response": (8, True), "next_response": (6, True), "resolution": (12, True)},
    "slow": {"first_response": (3600, False), "next_response": (3600, False)},
    "quick": {"next_response": (5, False)},
}
RELOADED_RESOLUTION = 20
NEXT_RESPONSE_RULES = {"escalate": "quick"}  # rule -> its next_response_policy
QUEUE_CALENDARS = {"desk": "even", "night": "odd"}


def minutes(parity: int) -> str:
    """Every day open on the UTC minutes of one parity: 720 one-minute intervals."""
    spans = ", ".join(
        f'"{m // 60:02d}:{m % 60:02d}-{(m + 1) // 60:02d}:{(m + 1) % 60:02d}"'
        for m in range(parity, 1440, 2)
    )
    days = ", ".join(
        f"{day}: [{spans}]" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    return f"{{timezone: UTC, hours: {{{days}}}}}"


def config_text(resolution_seconds: int) -> str:
    def clock(metric: str, seconds: int, business: bool) -> str:
        warn = {"first_response": ", warn_before: [3s]", "resolution": ", warn_before: [0.5]"}
        return (
            f"    {metric}: {{within: {seconds}s, business_hours: {str(business).lower()}"
            f"{warn.get(metric, '') if business else ''}}}\n"
        )

    policies = ""
    for name, clocks in POLICIES.items():
        policies += f"  {name}:\n"
        for metric, (seconds, business) in clocks.items():
            if (name, metric) == ("chat", "resolution"):
                seconds = resolution_seconds
            policies += clock(metric, seconds, business)
    return (
        "version: 1\n"
        f"calendars:\n  even: {minutes(0)}\n  odd: {minutes(1)}\n"
        "queues:\n  desk: {calendar: even}\n  night: {calendar: odd}\n"
        f"sla_policies:\n{policies}"
        "rules:\n"
        "  - name: escalate\n"
        "    when: {keywords: [escalate]}\n"
        "    then: {queue: desk, sla_policy: slow, next_response_policy: quick}\n"
        "  - name: urgent\n"
        "    when: {keywords: [urgent]}\n"
        "    then: {queue: desk, sla_policy: slow}\n"
        "  - name: sms\n"
        "    when: {channel: [sms]}\n"
        "    then: {queue: desk, sla_policy: chat}\n"
        "  - name: everything-else\n"
        "    then: {queue: desk, sla_policy: slow}\n"
    )


# --- the minimal calculator -------------------------------------------------------------------


def us(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def instant(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def is_open(calendar: str | None, t: int) -> bool:
    return calendar is None or (t // MINUTE) % 2 == (0 if calendar == "even" else 1)


def add(calendar: str | None, start: int, left: int) -> int:
    """``left`` of open time after ``start``, a minute at a time."""
    t = start
    while left > 0:
        minute_end = (t // MINUTE + 1) * MINUTE
        if is_open(calendar, t):
            if left <= minute_end - t:
                return t + left
            left -= minute_end - t
        t = minute_end
    return t


def between(calendar: str | None, start: int, end: int) -> int:
    counted, t = 0, start
    while t < end:
        step_end = min((t // MINUTE + 1) * MINUTE, end)
        counted += step_end - t if is_open(calendar, t) else 0
        t = step_end
    return counted


def due(calendar: str | None, start: int, left: int) -> int:
    """The deadline: exact when nothing closed lies in between, else the next whole minute."""
    end = add(calendar, start, max(left, 0))
    if end - start <= left or end % MINUTE == 0:
        return end
    return (end // MINUTE + 1) * MINUTE


@dataclass
class OracleClock:
    policy: str
    calendar: str | None
    within: int
    segment_start: int
    used: int = 0
    paused: bool = False

    def deadline(self, at: int) -> int:
        start = at if self.paused else self.segment_start
        return due(self.calendar, start, self.within - self.used)

    def count_until(self, at: int) -> None:
        if not self.paused:
            self.used += between(self.calendar, self.segment_start, at)
        self.segment_start = at


def clock_for(policy: str, metric: str, queue: str, at: int) -> OracleClock | None:
    window = POLICIES[policy].get(metric)
    if window is None:
        return None
    seconds, business = window
    calendar = QUEUE_CALENDARS[queue] if business else None
    return OracleClock(policy, calendar, seconds * US, at)


Report = tuple[str, str, str, int]  # conversation, metric, kind, instant (us)


@dataclass
class Oracle:
    """Replays the log: what each input should have made the SLA service report."""

    clocks: dict[tuple[str, str], OracleClock] = field(default_factory=dict)
    reports: dict[Report, int] = field(default_factory=dict)  # -> deadline
    running: dict[tuple[str, str], list[tuple[int, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (from, to, deadline) of each running stretch of each clock
    resolution_window: int = POLICIES["chat"]["resolution"][0] * US
    policy_of: dict[str, str] = field(default_factory=dict)  # conversation -> its own policy
    answered: dict[str, bool] = field(default_factory=dict)

    def _report(self, conversation: str, metric: str, kind: str, at: int) -> None:
        clock = self.clocks[(conversation, metric)]
        self.reports[(conversation, metric, kind, at)] = clock.deadline(at)

    def _stretch(self, conversation: str, metric: str, at: int) -> None:
        """Close the clock's running stretch at ``at`` (it paused, moved or finished)."""
        clock = self.clocks.get((conversation, metric))
        if clock is not None and not clock.paused:
            self.running[(conversation, metric)].append(
                (clock.segment_start, at, clock.deadline(at))
            )

    def _start(self, conversation: str, metric: str, policy: str, queue: str, at: int) -> None:
        clock = clock_for(policy, metric, queue, at)
        if clock is None:
            return
        if (policy, metric) == ("chat", "resolution"):
            clock.within = self.resolution_window
        self.clocks[(conversation, metric)] = clock
        self._report(conversation, metric, "started", at)

    def _finish(self, conversation: str, metric: str, kind: str, at: int) -> None:
        self._report(conversation, metric, kind, at)
        self._stretch(conversation, metric, at)
        del self.clocks[(conversation, metric)]

    def routed(self, routed: ConversationRouted) -> None:
        c, at = routed.conversation_id, us(routed.received_at)
        assert routed.sla_policy is not None
        if routed.is_new:
            for metric in ("first_response", "resolution"):
                self._start(c, metric, routed.sla_policy, routed.queue, at)
            self.policy_of[c] = routed.sla_policy
            return
        own = self.policy_of[c]
        resolution = self.clocks.get((c, "resolution"))
        if routed.reopened:
            self._start(c, "resolution", own, routed.queue, at)
        elif resolution is not None and resolution.paused:
            resolution.paused, resolution.segment_start = False, at
            self._report(c, "resolution", "resumed", at)
        if (self.answered.get(c) or routed.reopened) and (c, "next_response") not in self.clocks:
            policy = NEXT_RESPONSE_RULES.get(routed.explanation.rule, own)
            self._start(c, "next_response", policy, routed.queue, at)

    def action(self, action: AgentAction) -> None:
        c, at = action.conversation_id, us(action.at)
        if action.kind == "reached":  # answered: met without a send receipt
            for metric in ("first_response", "next_response"):
                if (c, metric) in self.clocks:
                    self.answered[c] = True
                    self._finish(c, metric, "met", at)
                    return
        elif action.kind == "resolve":
            for metric in ("first_response", "next_response", "resolution"):
                if (c, metric) in self.clocks:
                    kind = "met" if metric == "resolution" else "cancelled"
                    self._finish(c, metric, kind, at)
        elif action.kind == "waiting":
            clock = self.clocks[(c, "resolution")]
            self._stretch(c, "resolution", at)
            clock.count_until(at)
            clock.paused = True
            self._report(c, "resolution", "paused", at)
        elif action.kind == "transfer":
            assert action.queue is not None
            for (conversation, metric), clock in self.clocks.items():
                if conversation == c:
                    self._stretch(c, metric, at)
                    clock.count_until(at)
                    window = POLICIES[clock.policy][metric]
                    clock.calendar = QUEUE_CALENDARS[action.queue] if window[1] else None
                    self._report(c, metric, "recomputed", at)

    def reloaded(self, conversation: str, at: int) -> None:
        """The reload recomputed this conversation's chat resolution clock at ``at``."""
        clock = self.clocks[(conversation, "resolution")]
        self._stretch(conversation, "resolution", at)
        clock.count_until(at)
        clock.within = RELOADED_RESOLUTION * US
        self._report(conversation, "resolution", "recomputed", at)


def replay(log: list[Event], reloads: list[tuple[str, int]], reload_at: int | None) -> Oracle:
    """Feed the oracle the log's inputs in time order; the reload's recomputations come in at
    the instant the service reports for them."""
    oracle = Oracle()
    inputs: list[tuple[int, int, object]] = []
    for order, event in enumerate(log):
        if isinstance(event.data, ConversationRouted):
            inputs.append((us(event.data.received_at), order, event.data))
        elif isinstance(event.data, AgentAction):
            inputs.append((us(event.data.at), order, event.data))
    for conversation, at in reloads:
        inputs.append((at, -1, conversation))
    for at, _, item in sorted(inputs, key=lambda i: (i[0], i[1])):
        if reload_at is not None and at >= reload_at:
            oracle.resolution_window = RELOADED_RESOLUTION * US
        if isinstance(item, ConversationRouted):
            oracle.routed(item)
        elif isinstance(item, AgentAction):
            oracle.action(item)
        else:
            assert isinstance(item, str)
            oracle.reloaded(item, at)
    # clocks still running at the end run on
    for (conversation, metric), clock in oracle.clocks.items():
        if not clock.paused:
            stretch = (clock.segment_start, 2**62, clock.deadline(clock.segment_start))
            oracle.running[(conversation, metric)].append(stretch)
    return oracle


# --- the traffic ------------------------------------------------------------------------------

_numbers = itertools.count()


def now() -> datetime:
    return datetime.now(UTC)


def message(name: str, text: str) -> MessageReceived:
    phone = f"+1415{abs(hash(name)) % 10**7:07d}"
    return MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id=f"SM-{name}-{next(_numbers)}",
        thread_key=f"sms:+15005550006:{phone}",
        customer=CustomerIdentity(phone=phone),
        text=text,
        received_at=now(),
    )


def action(conversation: str, kind: AgentActionKind, queue: str | None = None) -> AgentAction:
    return AgentAction(
        action_id=f"a-{next(_numbers)}",
        kind=kind,
        conversation_id=conversation,
        agent="maria",
        queue=queue,
        at=now(),
    )


class Traffic:
    def __init__(self, producer: EventProducer, isolation: Isolation, seen: Collected) -> None:
        self.producer, self.topics, self.seen = producer, isolation.topics, seen
        self.threads: dict[str, str] = {}  # name -> thread key
        self.conversations: dict[str, str] = {}  # name -> conversation id

    async def send(self, name: str, data: EventData) -> None:
        topic = self.topics.agent_actions
        if isinstance(data, MessageReceived):
            self.threads.setdefault(name, data.thread_key)
            topic = self.topics.inbound
        key = self.threads[name]
        event = Event(
            id=event_id("replay", str(next(_numbers))),
            source="/test",
            subject=key,
            time=now(),
            data=data,
        )
        await self.producer.publish([Outgoing(topic, key, event)])

    async def write(self, name: str, text: str = "hello") -> None:
        await self.send(name, message(name, text))

    async def act(self, name: str, kind: AgentActionKind, queue: str | None = None) -> None:
        await self.send(name, action(self.conversations[name], kind, queue))

    def sla(self, name: str) -> Iterator[SlaEvent]:
        conversation = self.conversations.get(name)
        for event in self.seen.of_type(SlaEvent):
            assert isinstance(event.data, SlaEvent)
            if event.data.conversation_id == conversation:
                yield event.data

    async def reported(self, name: str, metric: str, kind: str, count: int = 1) -> None:
        def enough() -> bool:
            if name not in self.conversations:
                for event in self.seen.of_type(ConversationRouted):
                    assert isinstance(event.data, ConversationRouted)
                    if event.data.thread_key == self.threads[name]:
                        self.conversations[name] = event.data.conversation_id
            found = [e for e in self.sla(name) if (e.metric, e.kind) == (metric, kind)]
            return len(found) >= count

        await wait_until(enough, timeout=20, message=f"{name}: {metric} {kind}")


async def test_every_emitted_deadline_agrees_with_a_replay_of_the_log(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "replay.yaml"
    config.write_text(config_text(POLICIES["chat"]["resolution"][0]))
    await launch(["router", "sla"], {**service_env, "SWITCHBOARD_CONFIG": str(config)})
    topics = isolation.topics
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="replay"
    )
    await kafka.start()
    bootstrap = stack.broker.bootstrap_servers
    try:
        async with collect(
            bootstrap, topics.routed, topics.agent_actions, topics.sla_events
        ) as seen:
            traffic = Traffic(EventProducer(kafka), isolation, seen)
            names = [
                "pause-resolve",
                "pause-resume",
                "own",
                "override",
                "moved",
                "reopen",
                "reload",
            ]
            for name in names:
                await traffic.write(name)
            for name in names:
                await traffic.reported(name, "resolution", "started")

            for name in ("pause-resolve", "pause-resume", "reload"):
                await traffic.act(name, "waiting")
            for name in ("own", "override"):
                await traffic.act(name, "reached")
            await traffic.act("moved", "transfer", queue="night")
            await traffic.act("reopen", "resolve")
            await traffic.reported("pause-resolve", "resolution", "paused")
            await traffic.reported("pause-resume", "resolution", "paused")
            await traffic.reported("reload", "resolution", "paused")
            await traffic.reported("own", "first_response", "met")
            await traffic.reported("override", "first_response", "met")
            await traffic.reported("moved", "resolution", "recomputed")
            await traffic.reported("reopen", "resolution", "met")

            await traffic.act("pause-resolve", "resolve")
            await traffic.write("pause-resume", "here is the order number")
            await traffic.write("own", "urgent: any news on this?")
            await traffic.write("override", "please escalate")
            await traffic.write("reopen", "urgent: it broke again")
            await traffic.reported("pause-resolve", "resolution", "met")
            await traffic.reported("pause-resume", "resolution", "resumed")
            await traffic.reported("own", "next_response", "started")
            await traffic.reported("override", "next_response", "started")
            await traffic.reported("reopen", "resolution", "started", count=2)

            config.write_text(config_text(RELOADED_RESOLUTION) + "# reloaded\n")
            await traffic.reported("reload", "resolution", "recomputed")
            await traffic.write("reload", "back again")
            await traffic.reported("reload", "resolution", "resumed")
            await traffic.reported("override", "next_response", "breached")  # 5 s, plain time
    finally:
        await kafka.stop()

    log = [e for e in seen.events if isinstance(e.data, ConversationRouted | AgentAction)]
    emitted = [e for e in seen.events if isinstance(e.data, SlaEvent)]
    actions = {us(e.data.at) for e in log if isinstance(e.data, AgentAction)}
    reloads = [  # recomputed at no agent's action: by the reload
        (e.data.conversation_id, us(e.time))
        for e in emitted
        if isinstance(e.data, SlaEvent)
        and e.data.kind == "recomputed"
        and us(e.time) not in actions
    ]
    assert traffic.conversations["reload"] in {c for c, _ in reloads}
    reload_at = min((at for _, at in reloads), default=None)
    oracle = replay(log, reloads, reload_at)

    checked = 0
    for event in emitted:
        sla = event.data
        assert isinstance(sla, SlaEvent)
        at, deadline = us(event.time), us(sla.deadline)
        if sla.kind in ("warning", "breached"):
            stretches = oracle.running[(sla.conversation_id, sla.metric)]
            holding = [s for s in stretches if s[0] <= at <= s[1]]
            assert holding, f"{sla.kind} of a clock not running at {event.time}: {sla}"
            assert deadline == holding[-1][2], sla
            if sla.kind == "breached":
                assert at == deadline, sla
        else:
            expected = oracle.reports[(sla.conversation_id, sla.metric, sla.kind, at)]
            assert deadline == expected, (sla, instant(expected))
        checked += 1
    kinds = {e.data.kind for e in emitted if isinstance(e.data, SlaEvent)}
    assert {"started", "paused", "resumed", "met", "cancelled", "recomputed", "breached"} <= kinds
    assert checked == len(emitted)
    policies = {
        (e.data.conversation_id, e.data.metric): e.data.policy
        for e in emitted
        if isinstance(e.data, SlaEvent) and e.data.kind == "started"
    }
    assert policies[(traffic.conversations["own"], "next_response")] == "chat"
    assert policies[(traffic.conversations["override"], "next_response")] == "quick"
    assert policies[(traffic.conversations["reopen"], "next_response")] == "chat"
