"""The compact stored clock: what goes in comes back, and the open counts follow the clocks."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from libs.common.events import SlaMetric
from services.sla.clocks import Clock
from tests.integration.sla.conftest import LA, Keeper, action, routed

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def stored(keeper: Keeper, conversation: str, metric: SlaMetric) -> Clock:
    clock = await keeper.clock(conversation, metric)
    assert clock is not None
    return clock


async def test_a_clock_reads_back_as_it_was_written(keeper: Keeper) -> None:
    await keeper.feed(routed("s1", datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=LA)))
    clock = await stored(keeper, "s1", "resolution")
    with_trace = msgspec.structs.replace(clock, traceparent=TRACEPARENT)
    async with keeper.clocks.transaction() as pipe:
        await keeper.clocks.stage(pipe, with_trace)
        await pipe.execute()
    assert await stored(keeper, "s1", "resolution") == with_trace
    assert with_trace.started_at == datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=LA)
    assert with_trace.warnings == ((0, datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=LA)),)


async def test_open_counts_follow_transfers_redeliveries_and_closing(keeper: Keeper) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    first = routed("s2", start)
    await keeper.feed(first)
    await keeper.feed(first)  # redelivered: the same two clocks, counted once
    assert await keeper.clocks.open_counts(["la-desk", "berlin-desk"]) == {
        "la-desk": 2,
        "berlin-desk": 0,
    }
    await keeper.feed(action("s2", "transfer", start + timedelta(minutes=5), queue="berlin-desk"))
    assert await keeper.clocks.open_counts(["la-desk", "berlin-desk"]) == {
        "la-desk": 0,
        "berlin-desk": 2,
    }
    await keeper.reply("s2", start + timedelta(minutes=10))
    assert await keeper.clocks.open_counts(["berlin-desk"]) == {"berlin-desk": 1}
    met = await stored(keeper, "s2", "first_response")
    assert met.status == "met"  # kept (30 days) so a later message starts a next response
    await keeper.feed(action("s2", "resolve", start + timedelta(minutes=20)))
    assert await keeper.clocks.open_counts(["berlin-desk"]) == {"berlin-desk": 0}
