"""SLA timers under crashes and rebalances: every due warning and breach exactly once by id,
none for clocks met in time."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta

import pytest

from libs.common.events import (
    ConversationRouted,
    CustomerIdentity,
    Event,
    OutboundReceipt,
    RoutingExplanation,
    SlaEvent,
    event_id,
)
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from tests.support.deadline import patience
from tests.support.harness import FIXTURES, Isolation, Launch
from tests.support.kafka import Collected, collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e


DRILL_WAIT = 120
"""Seconds each stage of the ten-thousand-clock drill may take before ``patience`` stretches
it: one SLA worker works through 10,000 routed events first, 50 s for the whole drill alone on
a quiet machine and 240 s under the whole suite on a slow day (2026-12-03: four workers on two
cores, the worker's process on about a tenth of a core); the stages wait on conditions, and a
deadline only bounds a hang."""


def routed_event(n: int, at: datetime, topic: str) -> Outgoing:
    conversation = f"conv-{n:05d}"
    data = ConversationRouted(
        conversation_id=conversation,
        reference=f"SB-{n:05d}",
        thread_key=f"t:{conversation}",
        channel="chat",
        queue="desk",
        priority=3,
        sla_policy="fast",
        issue_type="unknown",
        is_new=True,
        message_id=f"m-{n}",
        customer=CustomerIdentity(),
        text="hello",
        received_at=at,
        explanation=RoutingExplanation(
            rule="all", conditions=(), issue_type="unknown", confidence=0.0
        ),
    )
    event = Event(
        id=event_id("routed", conversation),
        source="/test",
        subject=data.thread_key,
        time=at,
        data=data,
    )
    return Outgoing(topic, data.thread_key, event)


def reply_sent_event(n: int, at: datetime, topic: str) -> Outgoing:
    """Outbound's receipt for an agent's reply that the provider accepted: what meets a clock."""
    conversation = f"conv-{n:05d}"
    data = OutboundReceipt(
        command_id=f"reply-{n}",
        conversation_id=conversation,
        channel="sms",
        status="sent",
        kind="agent_reply",
    )
    event = Event(
        id=event_id("reply", conversation),
        source="/test",
        subject=f"t:{conversation}",
        time=at,
        data=data,
    )
    return Outgoing(topic, f"t:{conversation}", event)


def expected_id(n: int, step: str) -> str:
    return event_id(f"conv-{n:05d}", "first_response", "1", step)


def sla_ids(seen: Collected, kind: str) -> list[str]:
    return [
        e.id for e in seen.of_type(SlaEvent) if isinstance(e.data, SlaEvent) and e.data.kind == kind
    ]


def answered_before(seen: Collected, answered: range, step: str) -> set[str]:
    """The ``step`` events of answered clocks that fell due before their answer was recorded.

    On a loaded machine feeding 10,000 clocks can take longer than the 20 s to a warning, so an
    answered clock may rightly warn first; it must never warn (or breach) after it was met."""
    first_seen: dict[str, int] = {}
    for position, event in enumerate(seen.events):
        first_seen.setdefault(event.id, position)
    early: set[str] = set()
    for n in answered:
        step_id, met_id = expected_id(n, step), expected_id(n, "met")
        if step_id in first_seen:
            assert first_seen[step_id] < first_seen[met_id], f"{step} after met: conv-{n:05d}"
            early.add(step_id)
    return early


async def feed(stack: DevStack, outgoing: list[Outgoing]) -> None:
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
    )
    await kafka.start()
    try:
        for start in range(0, len(outgoing), 2000):
            await EventProducer(kafka).publish(outgoing[start : start + 2000])
    finally:
        await kafka.stop()


@pytest.mark.timeout(patience(7 * DRILL_WAIT))  # the stages' deadlines, not a limit of its own
async def test_ten_thousand_clocks_survive_two_sigkills(
    stack: DevStack, isolation: Isolation, service_env: dict[str, str], launch: Launch
) -> None:
    clocks, met = 10_000, range(0, 10_000, 10)  # every tenth clock is answered in time
    env = {**service_env, "SWITCHBOARD_CONFIG": str(FIXTURES / "config" / "sla-fast.yaml")}
    [sla] = await launch(["sla"], env)
    # How long a killed worker stays down: past its Kafka session, as a crashed pod does until
    # it is restarted. A replacement started at once joined a group that still counted the dead
    # member, and the embedded broker sometimes never rebalanced when that member expired: the
    # replacement fired only some partitions' timers (a fresh-clone CI run, seven minutes after
    # the restart: 1,115 of 9,000 warnings sent, the worker idle).
    down = int(env["SWITCHBOARD_SESSION_TIMEOUT_MS"]) / 1000 + 1
    t0 = datetime.now(UTC)
    topics = isolation.topics
    async with collect(stack.broker.bootstrap_servers, topics.sla_events) as seen:
        await feed(
            stack,
            [
                routed_event(n, t0 + timedelta(seconds=3 * n / clocks), topics.routed)
                for n in range(clocks)
            ],
        )
        started = {expected_id(n, "started") for n in met}
        await wait_until(
            lambda: started <= set(sla_ids(seen, "started")),
            timeout=DRILL_WAIT,
            message="the clocks to be answered have started",
        )
        await feed(
            stack,
            [reply_sent_event(n, t0 + timedelta(seconds=1), topics.outbound_status) for n in met],
        )
        answered = {expected_id(n, "met") for n in met}
        await wait_until(
            lambda: answered <= set(sla_ids(seen, "met")),
            timeout=DRILL_WAIT,
            message="the answers recorded before any warning is due",
        )
        await wait_until(
            lambda: bool(sla_ids(seen, "warning")), timeout=DRILL_WAIT, message="the first warning"
        )
        sla.kill()
        await asyncio.sleep(down)
        [sla] = await launch(["sla"], env)
        await wait_until(
            lambda: bool(sla_ids(seen, "breached")), timeout=DRILL_WAIT, message="the first breach"
        )
        sla.kill()
        await asyncio.sleep(down)
        await launch(["sla"], env)
        due = [n for n in range(clocks) if n not in set(met)]
        expected_warnings = {expected_id(n, "warning:0") for n in due}
        expected_breaches = {expected_id(n, "breached:0") for n in due}
        await wait_until(
            lambda: (
                expected_breaches <= set(sla_ids(seen, "breached"))
                and expected_warnings <= set(sla_ids(seen, "warning"))
            ),
            timeout=2 * DRILL_WAIT,
            message="every warning and breach",
        )
    warnings, breaches = sla_ids(seen, "warning"), sla_ids(seen, "breached")
    assert set(warnings) - expected_warnings == answered_before(seen, met, "warning:0")
    assert set(breaches) - expected_breaches == answered_before(seen, met, "breached:0")
    by_id = {e.id: e for e in seen.of_type(SlaEvent)}
    sample = by_id[expected_id(due[0], "breached:0")].data
    assert isinstance(sample, SlaEvent)
    assert sample.deadline == t0 + timedelta(seconds=40 + 3 * due[0] / clocks)
    assert sample.remaining_seconds == 0


async def test_survivor_takes_over_the_partitions_and_their_timers(
    stack: DevStack, isolation: Isolation, service_env: dict[str, str], launch: Launch
) -> None:
    env = {**service_env, "SWITCHBOARD_CONFIG": str(FIXTURES / "config" / "sla-fast.yaml")}
    first, second = await launch(["sla", "sla"], env)
    t0 = datetime.now(UTC)
    topics = isolation.topics
    async with collect(stack.broker.bootstrap_servers, topics.sla_events) as seen:
        await feed(stack, [routed_event(n, t0, topics.routed) for n in range(200)])
        await wait_until(
            lambda: len(sla_ids(seen, "started")) >= 200, timeout=60, message="every clock started"
        )
        first.signal(signal.SIGTERM)
        await asyncio.to_thread(first.stop)
        breaches = {expected_id(n, "breached:0") for n in range(200)}
        await wait_until(
            lambda: breaches <= set(sla_ids(seen, "breached")),
            timeout=90,
            message="the survivor's breaches",
        )
    assert sorted(sla_ids(seen, "breached")) == sorted(breaches)
    assert second.process is not None
    assert second.process.poll() is None
