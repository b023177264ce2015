"""SIGKILL the router mid-stream: every message still ends up routed exactly once in effect."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.common.events import (
    ConversationRouted,
    CustomerIdentity,
    Event,
    MessageReceived,
    event_id,
)
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.settings import Settings
from tests.support.harness import Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e
MESSAGES = 1000


def inbound(n: int, topic: str) -> Outgoing:
    sid = f"SM{n:032d}"
    thread = f"sms:+15005550006:+1415555{n % 50:04d}"
    message = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id=sid,
        thread_key=thread,
        customer=CustomerIdentity(phone=f"+1415555{n % 50:04d}"),
        recipient="+15005550006",
        text=f"message {n}",
        received_at=datetime.now(UTC),
    )
    event = Event(
        id=event_id("sms", "twilio", sid),
        source="/test",
        subject=thread,
        time=datetime.now(UTC),
        data=message,
    )
    return Outgoing(topic, thread, event)


async def test_router_killed_mid_stream_routes_every_message_once_in_effect(
    stack: DevStack, isolation: Isolation, service_env: dict[str, str], launch: Launch
) -> None:
    [router] = await launch(["router"], service_env)
    settings = Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers)
    kafka = create_producer(settings, client_id="test-feeder")
    await kafka.start()
    try:
        producer = EventProducer(kafka)
        sent = [inbound(n, isolation.topics.inbound) for n in range(MESSAGES)]
        before, after = sent[: MESSAGES // 2], sent[MESSAGES // 2 :]
        async with collect(stack.broker.bootstrap_servers, isolation.topics.routed) as seen:

            def routed_ids() -> set[str]:
                return {r.message_id for r in seen.data_of(ConversationRouted)}

            # Killed once some of the first half is routed; the second half is published after
            # the kill, so the next router has the killed one's uncommitted work and more.
            await producer.publish(before)
            await wait_until(lambda: len(routed_ids()) >= MESSAGES // 10, message="some routing")
            router.kill()
            await producer.publish(after)
            await launch(["router"], service_env)
            await wait_until(
                lambda: len(routed_ids()) >= MESSAGES, timeout=60, message="every message routed"
            )
        expected = {o.event.id for o in sent}
        assert routed_ids() == expected
        by_message: dict[str, set[str]] = {}
        for event in seen.of_type(ConversationRouted):
            assert isinstance(event.data, ConversationRouted)
            by_message.setdefault(event.data.message_id, set()).add(event.id)
        routed = seen.data_of(ConversationRouted)
        assert all(len(ids) == 1 for ids in by_message.values()), "a redelivery changed an id"
        conversations = {r.thread_key: r.conversation_id for r in routed if r.is_new}
        assert len(conversations) == 50
        assert all(r.conversation_id == conversations[r.thread_key] for r in routed)
    finally:
        await kafka.stop()
