"""Replay known traffic from a topic under a changed configuration: exactly the expected diffs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from libs.common.config import load_config
from libs.common.events import CustomerIdentity, Event, MessageReceived, event_id
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from services.router.replay import compare, format_report, read_inbound
from services.router.runtime import RouterRuntime
from tests.support.harness import Isolation
from tooling.devstack import DevStack

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "routing.yaml"
OPEN = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("America/Los_Angeles"))

TRAFFIC = [
    ("sms", "+14155550401", "I was charged twice"),  # deep-chat-sms -> payments, fast
    ("sms", "+14155550402", "can I get my money back"),  # refund-keyword -> orders
    ("sms", "+14155550403", "please refund this"),  # refund-keyword -> orders
    ("sms", "+14155550404", "hello"),  # everything-else -> general
    ("sms", "+14155550199", "hello"),  # vip -> vip, fast
]


def message(n: int, phone: str, text: str) -> MessageReceived:
    return MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id=f"SM-replay-{n}",
        thread_key=f"sms:+15005550006:{phone}",
        customer=CustomerIdentity(phone=phone),
        text=text,
        received_at=OPEN + timedelta(minutes=n),
    )


async def test_replay_shows_exactly_the_changed_decisions(
    stack: DevStack, isolation: Isolation, tmp_path: Path
) -> None:
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
    )
    await kafka.start()
    try:
        sent = [message(n, phone, text) for n, (_, phone, text) in enumerate(TRAFFIC)]
        await EventProducer(kafka).publish(
            Outgoing(
                isolation.topics.inbound,
                m.thread_key,
                Event(
                    id=event_id("replay", m.provider_message_id),
                    source="/test",
                    subject=m.thread_key,
                    time=m.received_at,
                    data=m,
                ),
            )
            for m in sent
        )
    finally:
        await kafka.stop()

    proposed = tmp_path / "proposed.yaml"
    text = CONFIG.read_text()
    text = text.replace(
        'when: {keywords: ["refund", "money back"]}\n    then: {queue: orders, sla_policy: slow}',
        'when: {keywords: ["refund", "money back"]}\n    then: {queue: payments, sla_policy: slow}',
    ).replace("first_response: {within: 5m}", "first_response: {within: 15m}")
    proposed.write_text(text)
    before = RouterRuntime.build(load_config(CONFIG), CONFIG)
    after = RouterRuntime.build(load_config(proposed), proposed)

    messages = await read_inbound(stack.broker.bootstrap_servers, isolation.topics.inbound)
    assert sorted(m.provider_message_id for m in messages) == sorted(
        m.provider_message_id for m in sent
    )
    report = compare(messages, before, after)
    assert report.messages == 5
    assert report.rerouted == 2
    assert report.deadlines_moved == 2  # the two on the "fast" policy (payments and vip)
    assert report.queues_before == {"payments": 1, "orders": 2, "general": 1, "vip": 1}
    assert report.queues_after == {"payments": 3, "general": 1, "vip": 1}
    changed = {d.message.provider_message_id: (d.before, d.after) for d in report.differences}
    assert set(changed) == {"SM-replay-0", "SM-replay-1", "SM-replay-2", "SM-replay-4"}
    before_0, after_0 = changed["SM-replay-0"]
    assert before_0.queue == after_0.queue == "payments"
    assert after_0.deadline is not None
    assert before_0.deadline is not None
    assert after_0.deadline - before_0.deadline == timedelta(minutes=10)
    rendered = format_report(report)
    assert "5 messages replayed: 2 to another queue, 4 decided differently" in rendered
    assert "orders                          2        0       -2" in rendered

    window = await read_inbound(
        stack.broker.bootstrap_servers,
        isolation.topics.inbound,
        since=OPEN + timedelta(minutes=1),
        until=OPEN + timedelta(minutes=3),
    )
    assert sorted(m.provider_message_id for m in window) == ["SM-replay-1", "SM-replay-2"]
