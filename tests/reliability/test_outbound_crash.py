"""SIGKILL the outbound worker three times mid-stream: no SMS goes out twice, and every command
still ends with exactly one final receipt (``unknown`` for a send cut off mid-call)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from libs.common.events import Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from tests.support.harness import OUR_NUMBER, Isolation, Launch, TwilioFake
from tests.support.kafka import Collected, collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e
COMMANDS = 2000
KILL_AFTER = (300, 800, 1300)  # receipts seen before each SIGKILL


def command(n: int, topic: str) -> Outgoing:
    customer = f"+1415555{n % 100:04d}"
    thread = f"sms:{OUR_NUMBER}:{customer}"
    data = OutboundCommand(
        command_id=f"cmd-{n:05d}",
        kind="agent_reply",
        channel="sms",
        conversation_id=f"conv-{n % 100}",
        reference=f"SB-{n % 100}",
        recipient=customer,
        text=f"Your parcel is on its way (cmd-{n:05d})",
    )
    event = Event(
        id=event_id("test", data.command_id),
        source="/test",
        subject=thread,
        time=datetime.now(UTC),
        data=data,
    )
    return Outgoing(topic, thread, event)


def receipts(seen: Collected) -> list[tuple[str, OutboundReceipt]]:
    return [(e.id, e.data) for e in seen.events if isinstance(e.data, OutboundReceipt)]


async def test_outbound_killed_three_times_sends_each_command_at_most_once(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
) -> None:
    [worker] = await launch(["outbound"], service_env)
    settings = Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers)
    kafka = create_producer(settings, client_id="test-feeder")
    await kafka.start()
    try:
        sent = [command(n, isolation.topics.outbound_commands) for n in range(COMMANDS)]
        async with collect(
            stack.broker.bootstrap_servers, isolation.topics.outbound_status
        ) as seen:
            await EventProducer(kafka).publish(sent)

            def finished() -> set[str]:
                return {r.command_id for _, r in receipts(seen)}

            def at_least(count: int) -> Callable[[], bool]:
                return lambda: len(finished()) >= count

            for threshold in KILL_AFTER:
                await wait_until(at_least(threshold), timeout=60, message=f"{threshold} receipts")
                worker.kill()
                assert len(finished()) < COMMANDS, "the worker finished before it was killed"
                [worker] = await launch(["outbound"], service_env)
            await wait_until(at_least(COMMANDS), timeout=60, message="every receipt")
    finally:
        await kafka.stop()

    assert finished() == {f"cmd-{n:05d}" for n in range(COMMANDS)}
    bodies = Counter(m["body"] for m in twilio.sandbox.messages)
    assert bodies, "nothing reached the provider"
    assert max(bodies.values()) == 1, [b for b, c in bodies.items() if c > 1][:5]

    # One final receipt per command: redeliveries repeat the same event, never a new answer.
    final: dict[str, set[tuple[str, str]]] = {}
    for receipt_id, receipt in receipts(seen):
        final.setdefault(receipt.command_id, set()).add((receipt_id, receipt.status))
    assert all(len(answers) == 1 for answers in final.values())
    status = {cid: next(iter(answers))[1] for cid, answers in final.items()}
    assert set(status.values()) <= {"sent", "unknown"}
    received = {body.rpartition("(")[2].rstrip(")") for body in bodies}
    assert {cid for cid, s in status.items() if s == "sent"} <= received
    assert received <= set(status)  # nothing went out that was not a command
