"""A reloaded configuration that changes a policy recomputes the open clocks it touches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from libs.common.clock import fixed_clock
from libs.common.events import Event, SlaEvent, event_id
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from services.sla.clocks import Clock
from services.sla.lifecycle import point_ms
from services.sla.timers import TimerId
from tests.integration.sla.conftest import CONFIG, MakeKeeper, routed
from tests.support.harness import Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack

PLAIN = "plain:\n    first_response: {within: 10m, business_hours: false, warn_before: [2m]}"


def with_plain(tmp_path: Path, policy: str) -> Path:
    """A copy of the SLA test configuration whose ``plain`` policy reads ``policy``."""
    path = tmp_path / "sla.yaml"
    text = CONFIG.read_text()
    assert PLAIN in text
    path.write_text(text.replace(PLAIN, f"plain:\n    first_response: {policy}"))
    return path


def step_id(conversation: str, generation: int, step: str) -> str:
    return event_id(conversation, "first_response", str(generation), step)


async def test_a_longer_window_moves_open_clocks_and_leaves_breached_ones(
    make_keeper: MakeKeeper, tmp_path: Path
) -> None:
    config = with_plain(tmp_path, "{within: 10m, business_hours: false, warn_before: [2m]}")
    keeper = make_keeper(config)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    for name, minutes_ago in (("fresh", 1), ("warned", 9), ("late", 11)):
        await keeper.feed(routed(name, now - timedelta(minutes=minutes_ago), policy="plain"))
    await keeper.feed(routed("standard", now))  # its policy does not change

    previous = keeper.live.current
    # 30 minutes, warned when 5 minutes are used: already past for "warned" (9 minutes used)
    with_plain(tmp_path, "{within: 30m, business_hours: false, warn_before: [25m]}   # longer")
    assert await keeper.live.reload_if_changed()
    events = await keeper.reconfigure(previous, frozenset({3}), fixed_clock(now))

    by_conversation = {e.data.conversation_id: e for e in events if isinstance(e.data, SlaEvent)}
    assert set(by_conversation) == {"fresh", "warned"}  # "late" has breached: it stays so
    fresh = by_conversation["fresh"]
    assert fresh.id == step_id("fresh", 2, "recomputed")
    assert isinstance(fresh.data, SlaEvent)
    assert fresh.data.kind == "recomputed"
    assert fresh.data.deadline == now + timedelta(minutes=29)
    assert fresh.data.explanation.startswith("1m of 30m already used; 29m in plain time")
    warned = by_conversation["warned"].data
    assert isinstance(warned, SlaEvent)
    assert warned.deadline == now + timedelta(minutes=21)

    # each clock has one timer, moved to its new next point; the old generation's are gone
    claimed = await keeper.timers.claim_due(3, point_ms(now + timedelta(days=2)), 100)
    assert {t for t in claimed if t[0].conversation_id != "standard"} == set(
        [
            (TimerId("fresh", "first_response", 2), point_ms(now + timedelta(minutes=4))),
            (TimerId("warned", "first_response", 2), point_ms(now + timedelta(minutes=21))),
            (TimerId("late", "first_response", 1), point_ms(now - timedelta(minutes=3))),
        ]
    )
    late = await keeper.clock("late", "first_response")
    assert late is not None
    assert late.generation == 1
    assert late.deadline == now - timedelta(minutes=1)

    # recomputing again against the same change finds nothing left to do
    assert await keeper.reconfigure(previous, frozenset({3}), fixed_clock(now)) == []


async def test_a_pass_whose_events_kafka_did_not_take_leaves_its_clocks_to_the_next(
    make_keeper: MakeKeeper, tmp_path: Path
) -> None:
    """The clocks are written after their ``recomputed`` events are out: a pass cut short by
    the broker (or a crash) changes nothing, and the next pass recomputes them."""
    keeper = make_keeper(with_plain(tmp_path, "{within: 10m, business_hours: false}"))
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    await keeper.feed(routed("cut", now - timedelta(minutes=1), policy="plain"))
    previous = keeper.live.current
    with_plain(tmp_path, "{within: 30m, business_hours: false}")
    assert await keeper.live.reload_if_changed()

    keeper.unreachable = True
    with pytest.raises(KafkaConnectionError):
        await keeper.reconfigure(previous, frozenset({3}), fixed_clock(now))
    clock = await keeper.clock("cut", "first_response")
    assert clock is not None
    assert (clock.generation, clock.deadline) == (1, now + timedelta(minutes=9))

    keeper.unreachable = False
    [event] = await keeper.reconfigure(previous, frozenset({3}), fixed_clock(now))
    assert event.id == step_id("cut", 2, "recomputed")
    clock = await keeper.clock("cut", "first_response")
    assert clock is not None
    assert (clock.generation, clock.deadline) == (2, now + timedelta(minutes=29))


async def test_a_clock_that_breached_while_the_pass_was_under_way_stays_breached(
    make_keeper: MakeKeeper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass reads the time when it reaches each clock: one instant read at its start
    would recompute a clock whose breach the scheduler fired meanwhile, dating the
    ``recomputed`` event before that breach and breaching the clock a second time."""
    keeper = make_keeper(with_plain(tmp_path, "{within: 10m, business_hours: false}"))
    started = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    await keeper.feed(routed("due", started, policy="plain"))  # its deadline: started + 10m
    previous = keeper.live.current
    with_plain(tmp_path, "{within: 20m, business_hours: false}")
    assert await keeper.live.reload_if_changed()

    wall = [started + timedelta(minutes=10) - timedelta(seconds=1)]  # 1 s before the deadline
    scan = keeper.clocks.open_clocks

    async def slow_scan() -> AsyncIterator[Clock]:
        async for clock in scan():
            wall[0] += timedelta(seconds=2)  # the scan took 2 s: the deadline has passed
            yield clock

    monkeypatch.setattr(keeper.clocks, "open_clocks", slow_scan)
    assert await keeper.reconfigure(previous, frozenset({3}), lambda: wall[0]) == []
    due = await keeper.clock("due", "first_response")
    assert due is not None
    assert (due.generation, due.deadline) == (1, started + timedelta(minutes=10))


async def test_clocks_of_partitions_owned_elsewhere_are_left_to_their_owner(
    make_keeper: MakeKeeper, tmp_path: Path
) -> None:
    keeper = make_keeper(with_plain(tmp_path, "{within: 10m, business_hours: false}"))
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    await keeper.feed(routed("elsewhere", now, policy="plain"))  # partition 3
    previous = keeper.live.current
    with_plain(tmp_path, "{within: 20m, business_hours: false}")
    assert await keeper.live.reload_if_changed()
    assert await keeper.reconfigure(previous, frozenset({0, 1}), fixed_clock(now)) == []


async def test_the_service_recomputes_on_reload_and_fires_at_the_new_deadline(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    tmp_path: Path,
) -> None:
    config = with_plain(tmp_path, "{within: 10m, business_hours: false, warn_before: [2m]}")
    await launch(["sla"], {**service_env, "SWITCHBOARD_CONFIG": str(config)})
    topics = isolation.topics
    started_at = datetime.now(UTC) - timedelta(minutes=5)
    data = routed("reloaded", started_at, policy="plain")
    async with collect(stack.broker.bootstrap_servers, topics.sla_events) as seen:
        kafka = create_producer(
            Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
        )
        await kafka.start()
        try:
            await EventProducer(kafka).publish(
                [
                    Outgoing(
                        topics.routed,
                        data.thread_key,
                        Event(
                            id=event_id("reload-test", data.conversation_id),
                            source="/test",
                            subject=data.thread_key,
                            time=started_at,
                            data=data,
                        ),
                    )
                ]
            )
        finally:
            await kafka.stop()

        def ids() -> set[str]:
            return {e.id for e in seen.of_type(SlaEvent)}

        await wait_until(
            lambda: step_id("reloaded", 1, "started") in ids(),
            timeout=60,
            message="the clock started (its deadline 5 minutes away)",
        )
        # the window shrinks to 2 minutes, of which 5 are already used: breached right away
        with_plain(tmp_path, "{within: 2m, business_hours: false}")
        await wait_until(
            lambda: {step_id("reloaded", 2, s) for s in ("recomputed", "breached:0")} <= ids(),
            timeout=60,
            message="the recomputed event and the breach at the new deadline",
        )
    events = {e.id: e.data for e in seen.of_type(SlaEvent) if isinstance(e.data, SlaEvent)}
    recomputed = events[step_id("reloaded", 2, "recomputed")]
    breached = events[step_id("reloaded", 2, "breached:0")]
    assert recomputed.kind == "recomputed"
    assert "of 2m already used" in recomputed.explanation
    assert breached.deadline == recomputed.deadline
    assert breached.deadline < started_at + timedelta(minutes=10)
    assert step_id("reloaded", 1, "warning:0") not in events
