"""The fault drills' audit: read every topic from the start and check the delivery guarantees.

A :class:`TopicLog` reads all seven topics with one group-less consumer for the whole run (no
group: nothing to rebalance, nothing committed). At a :class:`Checkpoint` the audit waits, with
a deadline, until everything caused before the checkpoint has been processed, reads up to the
topics' end offsets, and reports :class:`Findings`: counts, and problems, each a stable text so
the problems new at a checkpoint can be blamed on the drill just before it. The guarantees:

- every inbound message ingest acknowledged has one ``MessageReceived`` event id (none: lost;
  several: a duplicate in effect), and every such event one ``ConversationRouted`` id;
- every started SLA clock has each point that fell due before the checkpoint (warnings, the
  breach) unless an answer came first; ids are fixed by clock and step, so "once in effect" is
  one id per step;
- every outbound command has one final receipt (one receipt id, one status), and the Twilio
  sandbox accepted at most one message per SMS command: every message it accepted is the one a
  ``sent`` receipt names, or the single cut-off call of a command whose receipt says
  ``unknown`` (outbound was killed inside the provider call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.events import (
    ConversationRouted,
    Event,
    InvalidEvent,
    MessageReceived,
    OutboundCommand,
    OutboundReceipt,
    SlaEvent,
    decode,
    event_id,
)
from libs.common.topics import Topics
from tests.support.deadline import patience

FINAL_RECEIPTS = frozenset({"sent", "delivered", "failed", "dead-lettered", "suppressed"})
CUT_OFF = "unknown"
"""The receipt of a command whose provider call a crash interrupted: final, never resent."""
MAX_GENERATION = 8
RECEIPT_GRACE = 10.0
"""Seconds a message the provider accepted may take to be named by its receipt."""


def provider_key(channel: str, provider_id: str) -> str:
    """How an acknowledged message is named in the ledger and found on the inbound topic."""
    return f"{channel}:{provider_id.strip('<>')}"


@dataclass
class Ledger:
    """What the outside world was told: messages ingest acknowledged, by provider id."""

    accepted: dict[str, datetime] = field(default_factory=dict)
    """:func:`provider_key` -> when ingest acknowledged it."""
    retries: Counter[str] = field(default_factory=Counter)
    """Channel -> deliveries ingest refused (5xx, 4xx SMTP, chat ``retry``) and were retried."""

    def accept(self, channel: str, provider_id: str, at: datetime) -> None:
        self.accepted.setdefault(provider_key(channel, provider_id), at)


class TopicLog:
    """Every decoded event of every topic, read from the start by one group-less consumer."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.events: dict[str, list[Event]] = {name: [] for name in topics.all()}
        self.undecodable = 0
        self._next: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            *topics.all(),
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _pump(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for partition, records in batch.items():
                for record in records:
                    try:
                        self.events[partition.topic].append(decode(record.value, record.headers))
                    except InvalidEvent:
                        self.undecodable += 1
                    self._next[partition] = record.offset + 1

    async def catch_up(self, timeout: float) -> bool:
        """Whether everything on the topics right now was read within ``timeout`` seconds."""
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics.all()
            for p in self._consumer.partitions_for_topic(topic) or ()
        ]
        ends = await self._consumer.end_offsets(partitions)
        return await settle(
            lambda: all(self._next.get(tp, 0) >= end for tp, end in ends.items()), timeout
        )

    def of(self, topic: str, data_type: type) -> list[Event]:
        return [e for e in self.events[topic] if isinstance(e.data, data_type)]


@contextlib.asynccontextmanager
async def topic_log(bootstrap: str, topics: Topics) -> AsyncIterator[TopicLog]:
    """A :class:`TopicLog` reading while the block runs."""
    log = TopicLog(bootstrap, topics)
    await log.start()
    try:
        yield log
    finally:
        await log.stop()


async def settle(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False): the audit
    reports what is still missing instead of failing on the first condition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience(timeout)
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclass(frozen=True)
class Checkpoint:
    """The moment an audit judges: what was acknowledged and commanded by then."""

    name: str
    at: datetime
    accepted: frozenset[str]
    commands: frozenset[str]


@dataclass
class Findings:
    checkpoint: Checkpoint
    settled: bool
    counts: dict[str, int]
    problems: list[str]

    def summary(self, new: Iterable[str] = ()) -> str:
        shown = list(new)
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        text = f"{self.checkpoint.name}: {counts}"
        if not self.settled:
            text += " (did not settle before the deadline)"
        if shown:
            text += f"\n    {len(shown)} new problems: " + "; ".join(shown[:8])
        return text


@dataclass(frozen=True)
class _Clock:
    conversation_id: str
    metric: str
    generation: int
    policy: str
    deadline: datetime


class Audit:
    """The checks over a :class:`TopicLog`; ``warnings`` is each SLA policy's ``warn_before``
    per metric, so the audit knows every point a clock has."""

    def __init__(
        self,
        log: TopicLog,
        ledger: Ledger,
        warnings: Mapping[tuple[str, str], Sequence[timedelta]],
        provider_messages: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self._log = log
        self._ledger = ledger
        self._warnings = warnings
        self._provider_messages = provider_messages

    def checkpoint(self, name: str, at: datetime) -> Checkpoint:
        topic = self._log.topics.outbound_commands
        commands = [e.data for e in self._log.of(topic, OutboundCommand)]
        return Checkpoint(
            name,
            at,
            frozenset(k for k, t in self._ledger.accepted.items() if t <= at),
            frozenset(c.command_id for c in commands if isinstance(c, OutboundCommand)),
        )

    async def judge(self, checkpoint: Checkpoint, timeout: float = 40.0) -> Findings:
        """Wait until the work caused before ``checkpoint`` is done (or ``timeout``), read to
        the end of every topic, and check."""
        settled = await settle(lambda: not self._pending(checkpoint), timeout)
        # Traffic goes on while we judge: what the provider accepted is taken before the topics
        # are read, and a message it accepted just before has its receipt a moment later.
        accepted = self._provider_messages()
        await self._log.catch_up(timeout=20.0)
        await settle(lambda: not self._unclaimed(accepted), RECEIPT_GRACE)
        counts: dict[str, int] = {}
        problems = [
            *self._inbound(checkpoint, counts),
            *self._sla(checkpoint, counts),
            *self._outbound(checkpoint, counts, accepted),
        ]
        counts["deadletter records"] = len(self._log.events[self._log.topics.deadletter])
        return Findings(checkpoint, settled, counts, problems)

    # --- what is still being worked on ------------------------------------------------------

    def _pending(self, checkpoint: Checkpoint) -> bool:
        received = self._received()
        if not checkpoint.accepted <= received.keys():
            return True
        routed = self._routed()
        if any(i not in routed for key in checkpoint.accepted for i in received[key]):
            return True
        if not checkpoint.commands <= self._receipts().keys():
            return True
        return bool(self._missing_points(checkpoint.at) or self._unclocked(checkpoint))

    # --- inbound and routing ----------------------------------------------------------------

    def _received(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for event in self._log.of(self._log.topics.inbound, MessageReceived):
            data = event.data
            assert isinstance(data, MessageReceived)
            found[provider_key(data.channel, data.provider_message_id)].add(event.id)
        return found

    def _routed(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for event in self._log.of(self._log.topics.routed, ConversationRouted):
            assert isinstance(event.data, ConversationRouted)
            found[event.data.message_id].add(event.id)
        return found

    def _inbound(self, checkpoint: Checkpoint, counts: dict[str, int]) -> list[str]:
        received, routed = self._received(), self._routed()
        problems = [f"lost inbound {key}" for key in checkpoint.accepted if key not in received]
        problems += [
            f"inbound {key} published as {len(ids)} events"
            for key, ids in received.items()
            if len(ids) > 1
        ]
        inbound_ids = {i for key in checkpoint.accepted for i in received.get(key, ())}
        problems += [f"inbound event {i} never routed" for i in inbound_ids if i not in routed]
        problems += [
            f"inbound event {i} routed as {len(ids)} events"
            for i, ids in routed.items()
            if len(ids) > 1
        ]
        counts["acknowledged"] = len(checkpoint.accepted)
        counts["inbound events"] = len(received)
        counts["routed"] = len(routed)
        counts["ingest refusals retried"] = sum(self._ledger.retries.values())
        return problems

    # --- SLA --------------------------------------------------------------------------------

    def _clocks(self) -> tuple[list[_Clock], dict[str, datetime], set[str]]:
        """Started clocks, when each step id was reached (``met``: the answer's time), and
        every SLA event id seen."""
        started: list[_Clock] = []
        seen: dict[str, datetime] = {}
        for event in self._log.of(self._log.topics.sla_events, SlaEvent):
            data = event.data
            assert isinstance(data, SlaEvent)
            seen.setdefault(event.id, event.time)
            if data.kind != "started":
                continue
            generation = next(
                (
                    g
                    for g in range(1, MAX_GENERATION)
                    if event_id(data.conversation_id, data.metric, str(g), "started") == event.id
                ),
                0,
            )
            started.append(
                _Clock(data.conversation_id, data.metric, generation, data.policy, data.deadline)
            )
        return list({c: None for c in started}), seen, set(seen)

    def _unclocked(self, checkpoint: Checkpoint) -> set[str]:
        """New conversations of messages acknowledged by ``checkpoint`` with an SLA policy but
        no first-response clock."""
        received = self._received()
        inbound = {i for key in checkpoint.accepted for i in received.get(key, ())}
        opened = {
            e.data.conversation_id
            for e in self._log.of(self._log.topics.routed, ConversationRouted)
            if isinstance(e.data, ConversationRouted)
            and e.data.is_new
            and e.data.sla_policy
            and e.data.message_id in inbound
        }
        clocks, _, _ = self._clocks()
        return opened - {c.conversation_id for c in clocks if c.metric == "first_response"}

    def _points(self, clock: _Clock) -> list[tuple[str, datetime]]:
        befores = self._warnings.get((clock.policy, clock.metric), ())
        points = [(f"warning:{i}", clock.deadline - b) for i, b in enumerate(befores)]
        return [*points, ("breached:0", clock.deadline)]

    def _step_id(self, clock: _Clock, step: str) -> str:
        return event_id(clock.conversation_id, clock.metric, str(clock.generation), step)

    def _missing_points(self, until: datetime) -> list[str]:
        clocks, seen, _ = self._clocks()
        missing = []
        for clock in clocks:
            met_at = seen.get(self._step_id(clock, "met"))
            for step, due in self._points(clock):
                answered_first = met_at is not None and met_at < due
                if due <= until and not answered_first and self._step_id(clock, step) not in seen:
                    missing.append(f"sla {clock.conversation_id} {clock.metric} {step} missing")
        return missing

    def _sla(self, checkpoint: Checkpoint, counts: dict[str, int]) -> list[str]:
        clocks, seen, _ = self._clocks()
        problems = self._missing_points(checkpoint.at)
        problems += [
            f"sla clock of {c.conversation_id} has no generation"
            for c in clocks
            if not c.generation
        ]
        kinds: Counter[str] = Counter()
        late = 0
        for clock in clocks:
            met_at = seen.get(self._step_id(clock, "met"))
            kinds["met"] += met_at is not None
            for step, due in self._points(clock):
                if self._step_id(clock, step) in seen:
                    kinds[step.partition(":")[0]] += 1
                    # A point fired although the answer came first: the SLA worker read the
                    # answer after the timer fired (it was down or behind). Counted, not
                    # wrong: the id is still the one the point has, so at most once.
                    late += met_at is not None and met_at < due
        problems += [
            f"conversation {c} has no first-response clock" for c in self._unclocked(checkpoint)
        ]
        counts["clocks"] = len(clocks)
        counts.update({f"sla {kind}": n for kind, n in sorted(kinds.items())})
        counts["sla points after an earlier answer"] = late
        return problems

    # --- outbound ---------------------------------------------------------------------------

    def _receipts(self) -> dict[str, set[tuple[str, str]]]:
        found: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for event in self._log.of(self._log.topics.outbound_status, OutboundReceipt):
            assert isinstance(event.data, OutboundReceipt)
            found[event.data.command_id].add((event.id, event.data.status))
        return found

    def _commands(self) -> dict[str, OutboundCommand]:
        commands: dict[str, OutboundCommand] = {}
        for event in self._log.of(self._log.topics.outbound_commands, OutboundCommand):
            assert isinstance(event.data, OutboundCommand)
            commands.setdefault(event.data.command_id, event.data)
        return commands

    def _sms_claims(self, commands: dict[str, OutboundCommand]) -> tuple[dict[str, str], list[str]]:
        """Provider ids that ``sent`` receipts name (-> command), and the recipients of SMS
        commands cut off mid-call (each may account for one accepted message)."""
        sent_ids: dict[str, str] = {}
        cut_off: list[str] = []
        for event in self._log.of(self._log.topics.outbound_status, OutboundReceipt):
            receipt = event.data
            assert isinstance(receipt, OutboundReceipt)
            command = commands.get(receipt.command_id)
            if command is None or command.channel != "sms":
                continue
            if receipt.status == "sent" and receipt.provider_message_id:
                sent_ids[receipt.provider_message_id] = receipt.command_id
            elif receipt.status == CUT_OFF:
                cut_off.append(command.recipient)
        return sent_ids, cut_off

    def _unclaimed(self, accepted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Messages the provider accepted that no receipt accounts for."""
        sent_ids, cut_off = self._sms_claims(self._commands())
        unclaimed = Counter(cut_off)
        found = []
        for message in accepted:
            if str(message["sid"]) in sent_ids:
                continue
            if unclaimed[str(message["to"])] > 0:
                unclaimed[str(message["to"])] -= 1  # the call a crash cut off
            else:
                found.append(message)
        return found

    def _outbound(
        self, checkpoint: Checkpoint, counts: dict[str, int], accepted: list[dict[str, Any]]
    ) -> list[str]:
        receipts = self._receipts()
        commands = self._commands()
        problems = [f"command {c} has no receipt" for c in checkpoint.commands if c not in receipts]
        statuses: Counter[str] = Counter()
        for command_id, answers in receipts.items():
            if len(answers) > 1:
                problems.append(f"command {command_id} has {len(answers)} receipts: {answers}")
            for _, status in answers:
                statuses[status] += 1
                if status not in FINAL_RECEIPTS | {CUT_OFF}:
                    problems.append(f"command {command_id} ended {status}")
            if command_id not in commands:
                problems.append(f"receipt for {command_id}, which was never commanded")
        retried = sum(
            isinstance(e.data, OutboundReceipt) and e.data.attempts > 1 and e.data.status == "sent"
            for e in self._log.of(self._log.topics.outbound_status, OutboundReceipt)
        )
        sent_ids, _ = self._sms_claims(commands)
        by_sid = {str(m["sid"]) for m in self._provider_messages()}
        problems += [
            f"command {c} sent as {sid}, which twilio never accepted"
            for sid, c in sent_ids.items()
            if sid not in by_sid
        ]
        for message in self._unclaimed(accepted):
            to = str(message["to"])
            around = [
                (c, status)
                for c, answers in receipts.items()
                if c in commands and commands[c].recipient == to
                for _, status in answers
            ]
            problems.append(
                f"twilio accepted {message['sid']} to {to} for no command (at "
                f"{message['date_created']}: {str(message['body'])[:60]!r}; receipts to {to}: "
                f"{around})"
            )
        counts["commands"] = len(commands)
        counts.update({f"receipts {s}": n for s, n in sorted(statuses.items())})
        counts["sent after retries"] = retried
        counts["twilio accepted"] = len(accepted)
        return problems
