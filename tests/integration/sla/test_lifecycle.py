"""Every SLA clock transition against real Redis, with business-hours calendars."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.common.events import Event
from libs.common.kafka.consumer import Consumed
from tests.integration.sla.conftest import (
    CONFIG,
    LA,
    Keeper,
    MakeKeeper,
    action,
    kinds,
    receipt,
    record,
    routed,
)

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

BERLIN = ZoneInfo("Europe/Berlin")
_numbers = itertools.count()


async def test_start_and_meet_first_response_then_next_response(keeper: Keeper) -> None:
    friday = datetime(2026, 11, 20, 16, 30, tzinfo=LA)
    started = await keeper.feed(routed("c1", friday))
    assert kinds(started) == [("first_response", "started"), ("resolution", "started")]
    first = started[0]
    assert first.deadline == datetime(2026, 11, 23, 9, 30, tzinfo=LA)  # Friday 16:30 + 1h
    assert "closed periods skipped" in first.explanation
    assert first.remaining_seconds == 3600
    assert await keeper.timers.size(3) == 2  # one timer per clock, at its next point

    replied = await keeper.reply("c1", datetime(2026, 11, 23, 9, 10, tzinfo=LA))
    assert kinds(replied) == [("first_response", "met")]
    assert replied[0].remaining_seconds == 20 * 60
    assert await keeper.timers.size(3) == 1  # the resolution clock's

    again = await keeper.feed(routed("c1", datetime(2026, 11, 23, 10, 0, tzinfo=LA), is_new=False))
    assert kinds(again) == [("next_response", "started")]
    assert again[0].deadline == datetime(2026, 11, 23, 10, 30, tzinfo=LA)
    # an agent reply now meets the next response, not the (met) first response
    assert kinds(await keeper.reply("c1", datetime(2026, 11, 23, 10, 5, tzinfo=LA))) == [
        ("next_response", "met")
    ]


async def test_pause_and_resume_across_a_closed_period(keeper: Keeper) -> None:
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c2", monday))
    paused = await keeper.feed(action("c2", "waiting", datetime(2026, 11, 23, 15, 0, tzinfo=LA)))
    assert kinds(paused) == [("resolution", "paused")]
    clock = await keeper.clock("c2", "resolution")
    assert clock is not None
    assert clock.used == timedelta(hours=6)
    # the customer answers in the evening: 2h of business time left, counted from Tuesday 09:00
    resumed = await keeper.feed(
        routed("c2", datetime(2026, 11, 23, 20, 0, tzinfo=LA), is_new=False)
    )
    assert ("resolution", "resumed") in kinds(resumed)
    assert "6h of 8h already used" in resumed[-1].explanation
    clock = await keeper.clock("c2", "resolution")
    assert clock is not None
    assert clock.deadline == datetime(2026, 11, 24, 11, 0, tzinfo=LA)
    assert clock.generation == 2
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
    first = await keeper.clock("c5", "first_response")
    assert first is not None
    assert first.queue == "berlin-desk"
    assert first.used == timedelta(minutes=20)
    # 40 minutes left, counted in Berlin's hours from Tuesday 09:00 Berlin time
    assert first.deadline == datetime(2026, 11, 24, 9, 40, tzinfo=BERLIN)
    assert first.generation == 2


async def test_reply_in_the_same_second_as_the_breach_records_the_breach(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c6", start))
    late = await keeper.reply("c6", start + timedelta(hours=1))
    # The warning fell due before the reply too: recorded with the breach, under the timers' ids.
    assert kinds(late) == [
        ("first_response", "warning"),
        ("first_response", "breached"),
        ("first_response", "met"),
    ]
    assert late[1].remaining_seconds == 0


async def test_resolve_meets_resolution_and_cancels_the_response_clocks(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c7", start))
    done = await keeper.feed(action("c7", "resolve", start + timedelta(minutes=30)))
    assert sorted(kinds(done)) == [("first_response", "cancelled"), ("resolution", "met")]
    assert await keeper.timers.size(3) == 0
    assert await keeper.reply("c7", start + timedelta(minutes=40)) == []


async def test_reopening_restarts_resolution_and_starts_a_next_response(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("c8", start))
    await keeper.feed(action("c8", "resolve", start + timedelta(minutes=30)))
    reopened = await keeper.feed(
        routed("c8", start + timedelta(hours=2), is_new=False, reopened=True)
    )
    assert kinds(reopened) == [("resolution", "started"), ("next_response", "started")]
    resolution = await keeper.clock("c8", "resolution")
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
    assert await keeper.timers.size(3) == 1  # re-adding the same timer changes nothing


async def test_a_first_record_read_again_after_the_answer_leaves_the_clock_met(
    keeper: Keeper,
) -> None:
    """A restarted worker reads again the records since its last commit (every few seconds), so
    a conversation's first record can come back after its answer."""
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    first = record(routed("c10", start), at=start)
    started = await keeper.deliver(first)
    await keeper.reply("c10", start + timedelta(minutes=5))
    timers = await keeper.timers.size(3)

    again = await keeper.deliver(first)
    assert kinds(again) == kinds(started)  # said again
    answered = await keeper.clock("c10", "first_response")
    assert answered is not None
    assert answered.status == "met"
    assert await keeper.timers.size(3) == timers  # no timer to warn or breach it again


async def test_clocks_live_with_their_partition_and_the_next_owner_finds_them(
    keeper: Keeper, make_keeper: MakeKeeper
) -> None:
    """A clock, its timer and its open count are kept under the partition its records arrive
    on; a worker given that partition after a rebalance finds them, and the open counts are
    summed over the partitions."""
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    await keeper.feed(routed("p3", start), partition=3)
    await keeper.feed(routed("p5", start), partition=5)
    assert (await keeper.timers.size(3), await keeper.timers.size(5)) == (2, 2)
    assert await keeper.clocks.get(3, "p5", "first_response") is None
    assert await keeper.clocks.open_counts(["la-desk"]) == {"la-desk": 4}

    successor = make_keeper(CONFIG)  # another worker, assigned partition 5
    met = await successor.feed(receipt("p5"), at=start + timedelta(minutes=5), partition=5)
    assert kinds(met) == [("first_response", "met")]
    assert (await successor.timers.size(3), await successor.timers.size(5)) == (2, 1)
    assert await successor.clocks.open_counts(["la-desk"]) == {"la-desk": 3}
