"""Driving a ClockKeeper against real Redis, with a configuration file of the test's choice."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiokafka.errors import KafkaConnectionError
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import (
    AgentAction,
    AgentActionKind,
    CommandKind,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    OutboundReceipt,
    ReceiptStatus,
    RoutingExplanation,
    SlaEvent,
    SlaMetric,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.keys import Keys
from libs.common.topics import Topics
from services.sla.clocks import Clock, ClockStore, ConversationLocks
from services.sla.contacts import ContactStore
from services.sla.lifecycle import ClockKeeper, TimersScheduled
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerStore
from tests.support.harness import Isolation

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "sla.yaml"
PARTITION = 3
"""The partition every record fed to a test's keeper arrives on."""
LA = ZoneInfo("America/Los_Angeles")
_numbers = itertools.count()


class Keeper:
    """A ClockKeeper fed by hand. What it publishes is kept here instead of going to Kafka;
    while ``unreachable`` is set, publishing fails as it does when the broker is gone."""

    def __init__(
        self,
        *,
        live: LiveConfig[SlaRuntime],
        clocks: ClockStore,
        timers: TimerStore,
        contacts: ContactStore,
        locks: ConversationLocks,
        topics: Topics,
        on_scheduled: TimersScheduled | None = None,
    ) -> None:
        self.clocks, self.timers, self.live = clocks, timers, live
        self.scheduled: list[tuple[int, int]] = []
        self.published: list[Outgoing] = []
        self.unreachable = False
        self.keeper = ClockKeeper(
            live=live,
            clocks=clocks,
            timers=timers,
            contacts=contacts,
            locks=locks,
            topics=topics,
            on_scheduled=on_scheduled or self._note_scheduled,
            publish=self._publish,
        )

    def _note_scheduled(self, partition: int, due: int) -> None:
        self.scheduled.append((partition, due))

    async def _publish(self, events: Sequence[Outgoing]) -> None:
        if self.unreachable:
            raise KafkaConnectionError("the broker is unreachable")
        self.published += events

    async def feed(
        self,
        data: EventData,
        subject: str = "t",
        at: datetime | None = None,
        partition: int = PARTITION,
    ) -> list[SlaEvent]:
        """Hand the keeper one event stamped ``at`` (a receipt's instant is its event time), as
        a record of ``partition``; returns the SLA events it published."""
        return await self.deliver(record(data, subject, at, partition))

    async def reconfigure(
        self, previous: SlaRuntime, partitions: frozenset[int], now: Callable[[], datetime]
    ) -> list[Event]:
        """Recompute after a reload; returns the events the pass published."""
        before = len(self.published)
        await self.keeper.reconfigure(previous, partitions, now)
        return [o.event for o in self.published[before:]]

    async def deliver(self, consumed: Consumed) -> list[SlaEvent]:
        """Hand the keeper a record (again, for a redelivery); returns what it published."""
        before = len(self.published)
        await self.keeper.handle(consumed)
        fresh = self.published[before:]
        return [o.event.data for o in fresh if isinstance(o.event.data, SlaEvent)]

    async def clock(self, conversation: str, metric: SlaMetric) -> Clock | None:
        """The conversation's stored clock of ``metric``, open or closed."""
        return await self.clocks.get(PARTITION, conversation, metric)

    async def reply(
        self, conversation: str, at: datetime, status: ReceiptStatus = "sent"
    ) -> list[SlaEvent]:
        """An agent's reply at ``at`` and outbound's receipt for it, as the stream brings them."""
        events = await self.feed(action(conversation, "reply", at))
        return events + await self.feed(receipt(conversation, status), at=at)


MakeKeeper = Callable[[Path], Keeper]


@pytest.fixture
def make_keeper(redis: Redis, isolation: Isolation) -> MakeKeeper:
    """A keeper on the test's keys and topics, reading the given configuration file."""

    def make(config: Path) -> Keeper:
        keys = Keys(isolation.key_prefix)
        return Keeper(
            live=LiveConfig(config, SlaRuntime.build),
            clocks=ClockStore(redis, keys),
            timers=TimerStore(redis, keys),
            contacts=ContactStore(redis, keys),
            locks=ConversationLocks(),
            topics=isolation.topics,
        )

    return make


@pytest.fixture
def keeper(make_keeper: MakeKeeper) -> Keeper:
    return make_keeper(CONFIG)


def record(
    data: EventData,
    subject: str = "t",
    at: datetime | None = None,
    partition: int = PARTITION,
) -> Consumed:
    """One event stamped ``at`` as a record of ``partition``."""
    number = next(_numbers)
    event = Event(
        id=event_id("sla-test", str(number)),
        source="/test",
        subject=subject,
        time=at or datetime.now(LA),
        data=data,
    )
    return Consumed(event=event, topic="t", partition=partition, offset=number, key=subject)


def routed(
    conversation: str,
    at: datetime,
    *,
    queue: str = "la-desk",
    is_new: bool = True,
    reopened: bool = False,
    policy: str = "standard",
) -> ConversationRouted:
    return ConversationRouted(
        conversation_id=conversation,
        reference="SB-TEST1",
        thread_key=f"sms:{conversation}",
        channel="sms",
        queue=queue,
        priority=2,
        sla_policy=policy,
        issue_type="unknown",
        is_new=is_new,
        reopened=reopened,
        message_id=f"m-{next(_numbers)}",
        customer=CustomerIdentity(phone="+14155550100"),
        text="hi",
        received_at=at,
        explanation=RoutingExplanation(
            rule="all", conditions=(), issue_type="unknown", confidence=0.0
        ),
    )


def action(
    conversation: str, kind: AgentActionKind, at: datetime, queue: str | None = None
) -> AgentAction:
    return AgentAction(
        action_id=f"a-{next(_numbers)}",
        kind=kind,
        conversation_id=conversation,
        agent="maria",
        queue=queue,
        at=at,
    )


def receipt(
    conversation: str, status: ReceiptStatus = "sent", kind: CommandKind = "agent_reply"
) -> OutboundReceipt:
    return OutboundReceipt(
        command_id=f"cmd-{next(_numbers)}",
        conversation_id=conversation,
        channel="sms",
        status=status,
        kind=kind,
        error=None if status in ("sent", "delivered") else "the customer opted out of SMS (STOP)",
    )


def kinds(events: list[SlaEvent]) -> list[tuple[str, str]]:
    return [(e.metric, e.kind) for e in events]
