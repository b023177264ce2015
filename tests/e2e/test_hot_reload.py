"""The running router picks up a valid configuration change for the next message and keeps
routing on the old one when the new file is invalid."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

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
from tests.support.harness import FIXTURES, Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e


def log_has(path: Path, event: str) -> bool:
    if not path.exists():
        return False
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("event") == event:
                return True
        except json.JSONDecodeError:
            continue
    return False


def inbound(n: int, topic: str) -> Outgoing:
    phone = f"+1415555{n:04d}"
    message = MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id=f"SM-reload-{n}",
        thread_key=f"sms:+15005550006:{phone}",
        customer=CustomerIdentity(phone=phone),
        text="hello",
        received_at=datetime.now(UTC),
    )
    event = Event(
        id=event_id("reload", str(n)),
        source="/test",
        subject=message.thread_key,
        time=message.received_at,
        data=message,
    )
    return Outgoing(topic, message.thread_key, event)


async def test_valid_change_applies_to_the_next_message_invalid_change_is_refused(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "live.yaml"
    original = (FIXTURES / "config" / "spine.yaml").read_text()
    config.write_text(original)
    await launch(["router"], {**service_env, "SWITCHBOARD_CONFIG": str(config)})
    log = tmp_path / "router.log"
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
    )
    await kafka.start()
    producer = EventProducer(kafka)
    try:
        async with collect(stack.broker.bootstrap_servers, isolation.topics.routed) as seen:

            def queue_of(n: int) -> str | None:
                for routed in seen.data_of(ConversationRouted):
                    if routed.message_id == event_id("reload", str(n)):
                        return routed.queue
                return None

            await producer.publish([inbound(1, isolation.topics.inbound)])
            await wait_until(lambda: queue_of(1) is not None, message="first message routed")
            assert queue_of(1) == "sms-desk"

            config.write_text(
                original.replace("then: {queue: sms-desk,", "then: {queue: email-desk,")
            )
            await wait_until(lambda: log_has(log, "configuration reloaded"), message="reload")
            await producer.publish([inbound(2, isolation.topics.inbound)])
            await wait_until(lambda: queue_of(2) is not None, message="second message routed")
            assert queue_of(2) == "email-desk"

            config.write_text(original.replace("then: {queue: sms-desk,", "then: {queue: nowhere,"))
            await wait_until(
                lambda: log_has(log, "configuration change refused; keeping the running one"),
                message="the invalid change refused",
            )
            await producer.publish([inbound(3, isolation.topics.inbound)])
            await wait_until(lambda: queue_of(3) is not None, message="third message routed")
            assert queue_of(3) == "email-desk"
    finally:
        await kafka.stop()
