"""Every SLA clock transition against real Redis, with business-hours calendars."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import (
    AgentAction,
    AgentActionKind,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    RoutingExplanation,
    SlaEvent,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.keys import Keys
from services.sla.clocks import ClockStore, ConversationLocks
from services.sla.lifecycle import ClockKeeper
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerStore
from tests.support.harness import Isolation

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "sla.yaml"
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
_numbers = itertools.count()


class Keeper:
    def __init__(self, keeper: ClockKeeper, clocks: ClockStore, timers: TimerStore) -> None:
        self.keeper, self.clocks, self.timers = keeper, clocks, timers
        self.scheduled: list[tuple[int, int]] = []

    async def feed(self, data: EventData, subject: str = "t") -> list[SlaEvent]:
        number = next(_numbers)
        event = Event(
            id=event_id("sla-test", str(number)),
            source="/test",
            subject=subject,
            time=datetime.now(LA),
            data=data,
        )
        outputs: Sequence[Outgoing] = await self.keeper.handle(
            Consumed(event=event, topic="t", partition=3, offset=number, key=subject)
        )
        return [o.event.data for o in outputs if isinstance(o.event.data, SlaEvent)]


@pytest.fixture
async def keeper(redis: Redis, isolation: Isolation) -> Keeper:
    keys = Keys(isolation.key_prefix)
    clocks, timers = ClockStore(redis, keys), TimerStore(redis, keys)
    scheduled: list[tuple[int, int]] = []
    keeper = ClockKeeper(
        live=LiveConfig(CONFIG, SlaRuntime.build),
        clocks=clocks,
        timers=timers,
        locks=ConversationLocks(),
        topics=isolation.topics,
        on_scheduled=lambda partition, due: scheduled.append((partition, due)),
    )
    wrapper = Keeper(keeper, clocks, timers)
    wrapper.scheduled = scheduled
    return wrapper


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


def kinds(events: list[SlaEvent]) -> list[tuple[str, str]]:
    return [(e.metric, e.kind) for e in events]


async def test_start_and_meet_first_response_then_next_response(keeper: Keeper) -> None:
    friday = datetime(2026, 11, 20, 16, 30, tzinfo=LA)
    started = await keeper.feed(routed("c1", friday))
    assert kinds(started) == [("first_response", "started"), ("resolution", "started")]
    first = started[0]
    assert first.deadline == datetime(2026, 11, 23, 9, 30, tzinfo=LA)  # Friday 16:30 + 1h
    assert "closed periods skipped" in first.explanation
    assert first.remaining_seconds == 3600
    assert await keeper.timers.size(3) == 4  # warning + breach for each clock

    replied = await keeper.feed(action("c1", "reply", datetime(2026, 11, 23, 9, 10, tzinfo=LA)))
    assert kinds(replied) == [("first_response", "met")]
    assert replied[0].remaining_seconds == 20 * 60
    assert await keeper.timers.size(3) == 2  # the resolution clock's

    again = await keeper.feed(routed("c1", datetime(2026, 11, 23, 10, 0, tzinfo=LA), is_new=False))
    assert kinds(again) == [("next_response", "started")]
    assert again[0].deadline == datetime(2026, 11, 23, 10, 30, tzinfo=LA)
    # an agent reply now meets the next response, not the (met) first response
    assert kinds(
        await keeper.feed(action("c1", "reply", datetime(2026, 11, 23, 10, 5, tzinfo=LA)))
    ) == [("next_response", "met")]


async def test_pause_and_resume_across_a_closed_period(keeper: Keeper) -> None:
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c2", monday))
    paused = await keeper.feed(action("c2", "waiting", datetime(2026, 11, 23, 15, 0, tzinfo=LA)))
    assert kinds(paused) == [("resolution", "paused")]
    clock = await keeper.clocks.get("c2", "resolution")
    assert clock is not None
    assert clock.used == timedelta(hours=6)
    # the customer answers in the evening: 2h of business time left, counted from Tuesday 09:00
    resumed = await keeper.feed(
        routed("c2", datetime(2026, 11, 23, 20, 0, tzinfo=LA), is_new=False)
    )
    assert ("resolution", "resumed") in kinds(resumed)
    clock = await keeper.clocks.get("c2", "resolution")
    assert clock is not None
    assert clock.deadline == datetime(2026, 11, 24, 11, 0, tzinfo=LA)
    assert clock.generation == 2
    assert "6h of 8h already used" in clock.explanation
    # the 0.75 warning (at 6h) had already passed before the pause: not scheduled again
    assert clock.warnings == ()


async def test_deadline_landing_on_a_holiday_moves_past_it(keeper: Keeper) -> None:
    wednesday = datetime(2026, 11, 25, 16, 30, tzinfo=LA)  # Thanksgiving is Thursday
    [first, _] = await keeper.feed(routed("c3", wednesday))
    assert first.deadline == datetime(2026, 11, 27, 9, 30, tzinfo=LA)


async def test_business_hours_across_the_dst_change(keeper: Keeper) -> None:
    saturday = datetime(2026, 10, 31, 12, 0, tzinfo=LA)  # PDT; Monday is PST
    [first, _] = await keeper.feed(routed("c4", saturday))
    assert first.deadline == datetime(2026, 11, 2, 10, 0, tzinfo=LA)
    assert first.deadline.astimezone(ZoneInfo("UTC")).hour == 18  # 10:00 PST, not PDT


async def test_transfer_to_a_queue_with_another_calendar_recomputes(keeper: Keeper) -> None:
    # Monday 09:00 in LA is 18:00 in Berlin, which has closed for the day
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c5", start))
    moved = await keeper.feed(
        action("c5", "transfer", datetime(2026, 11, 23, 9, 20, tzinfo=LA), queue="berlin-desk")
    )
    assert kinds(moved) == [("first_response", "recomputed"), ("resolution", "recomputed")]
    first = await keeper.clocks.get("c5", "first_response")
    assert first is not None
    assert first.queue == "berlin-desk"
    assert first.used == timedelta(minutes=20)
    # 40 minutes left, counted in Berlin's hours from Tuesday 09:00 Berlin time
    assert first.deadline == datetime(2026, 11, 24, 9, 40, tzinfo=BERLIN)
    assert first.generation == 2


async def test_reply_in_the_same_second_as_the_breach_records_the_breach(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c6", start))
    late = await keeper.feed(action("c6", "reply", start + timedelta(hours=1)))
    assert kinds(late) == [("first_response", "breached"), ("first_response", "met")]
    assert late[1].remaining_seconds == 0


async def test_resolve_meets_resolution_and_cancels_the_response_clocks(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c7", start))
    done = await keeper.feed(action("c7", "resolve", start + timedelta(minutes=30)))
    assert sorted(kinds(done)) == [("first_response", "cancelled"), ("resolution", "met")]
    assert await keeper.timers.size(3) == 0
    assert await keeper.feed(action("c7", "reply", start + timedelta(minutes=40))) == []


async def test_reopening_restarts_resolution_and_starts_a_next_response(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c8", start))
    await keeper.feed(action("c8", "resolve", start + timedelta(minutes=30)))
    reopened = await keeper.feed(
        routed("c8", start + timedelta(hours=2), is_new=False, reopened=True)
    )
    assert kinds(reopened) == [("resolution", "started"), ("next_response", "started")]
    resolution = await keeper.clocks.get("c8", "resolution")
    assert resolution is not None
    assert resolution.generation == 2
    assert resolution.started_at == start + timedelta(hours=2)


async def test_redelivered_input_gives_the_same_event_ids(keeper: Keeper) -> None:
    message = routed("c9", datetime(2026, 11, 23, 9, 0, tzinfo=LA), policy="plain")
    number = next(_numbers)
    event = Event(id="same", source="/t", subject="s", time=message.received_at, data=message)
    consumed = Consumed(event=event, topic="t", partition=3, offset=number, key="s")
    first = [o.event.id for o in await keeper.keeper.handle(consumed)]
    again = [o.event.id for o in await keeper.keeper.handle(consumed)]
    assert first == again
    assert await keeper.timers.size(3) == 2  # re-adding the same timers changes nothing
