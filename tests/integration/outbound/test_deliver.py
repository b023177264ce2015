"""The deliverer against real Redis and the Twilio sandbox: suppression, rate limits, permanent
errors and the retry budget, each ending in exactly one final receipt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.events import Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.kafka.producer import Outgoing
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.contracts import optout
from services.outbound.acknowledgements import AcknowledgementLimits
from services.outbound.deliver import Deliverer
from tests.integration.outbound.conftest import DelivererParts
from tests.support.harness import OUR_NUMBER, Isolation, TwilioFake
from tooling.sandbox.twilio import ScriptedFailure

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

CUSTOMER = "+14155550123"
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = """
queues: {desk: {}}
rules: []
templates:
  ack:
    sms: {en: "Thanks! Your reference is {{ reference }}."}
"""

MakeDeliverer = Callable[..., Awaitable[tuple[Deliverer, list[float]]]]


@pytest.fixture
def make_deliverer(deliverer_parts: DelivererParts) -> MakeDeliverer:
    deliverer_parts.config.write_text(CONFIG)
    redis, keys = deliverer_parts.redis, deliverer_parts.keys

    async def make(max_attempts: int = 5) -> tuple[Deliverer, list[float]]:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        optouts = ScriptBatcher(redis)

        async def opted_out(command: OutboundCommand) -> bool:
            return await optout.is_opted_out(optouts, keys, OUR_NUMBER, command.recipient)

        deliverer = deliverer_parts.deliverer(
            {"sms": deliverer_parts.twilio_sms()},
            sms_opted_out=opted_out,
            acknowledgements=AcknowledgementLimits(redis, keys),
            max_attempts=max_attempts,
            sleep=sleep,
            jitter=lambda _low, high: high,  # the top of each back-off window
        )
        return deliverer, slept

    return make


def consumed(at: datetime = AT, **fields: Any) -> Consumed:
    data: dict[str, Any] = {
        "command_id": "cmd-1",
        "kind": "auto_ack",
        "channel": "sms",
        "conversation_id": "conv-1",
        "reference": "SB-7K3Q9",
        "recipient": CUSTOMER,
        "template": "ack",
        "params": {"reference": "SB-7K3Q9"},
        **fields,
    }
    command = OutboundCommand(**data)
    thread = f"sms:{OUR_NUMBER}:{CUSTOMER}"
    event = Event(
        id=event_id(command.command_id),
        source="/test",
        subject=thread,
        time=at,
        data=command,
    )
    return Consumed(event=event, topic="commands", partition=0, offset=0, key=thread)


def receipt_of(outputs: list[Outgoing]) -> OutboundReceipt:
    [data] = [o.event.data for o in outputs if isinstance(o.event.data, OutboundReceipt)]
    return data


async def test_opted_out_customer_gets_no_sms_and_the_decision_sticks(
    make_deliverer: MakeDeliverer, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> None:
    keys = Keys(isolation.key_prefix)
    now = datetime.now(UTC)
    await optout.record(redis, keys, OUR_NUMBER, CUSTOMER, "opt-out", "STOP", now)
    deliverer, _ = await make_deliverer()
    first = await deliverer.handle(consumed())
    assert receipt_of(first).status == "suppressed"
    assert twilio.sandbox.requests == 0
    # START after the decision: a redelivered command still gets the same single answer
    await optout.record(redis, keys, OUR_NUMBER, CUSTOMER, "opt-in", "START", now)
    again = await deliverer.handle(consumed())
    assert [o.event for o in again] == [o.event for o in first]
    assert twilio.sandbox.requests == 0


async def test_replies_to_automated_messages_and_social_auto_acks_are_not_sent(
    make_deliverer: MakeDeliverer, twilio: TwilioFake
) -> None:
    deliverer, _ = await make_deliverer()
    looped = await deliverer.handle(consumed(params={"automated": "auto-reply"}))
    assert receipt_of(looped).status == "suppressed"
    social = await deliverer.handle(
        consumed(command_id="cmd-2", channel="social", recipient="x:123")
    )
    assert receipt_of(social).status == "suppressed"
    assert "social_auto_reply" in (receipt_of(social).error or "")
    assert twilio.sandbox.requests == 0


async def test_rate_limited_send_waits_as_asked_then_goes_out_once(
    make_deliverer: MakeDeliverer, twilio: TwilioFake
) -> None:
    twilio.sandbox.failures.append(ScriptedFailure(429, 3, retry_after=7))
    deliverer, slept = await make_deliverer()
    receipt = receipt_of(await deliverer.handle(consumed()))
    assert slept == [7.0, 7.0, 7.0]  # Retry-After beats the shorter back-off (0.5, 1, 2)
    assert (receipt.status, receipt.attempts) == ("sent", 4)
    [message] = twilio.sandbox.messages
    assert receipt.provider_message_id == message["sid"]
    assert message["body"] == "Thanks! Your reference is SB-7K3Q9."
    assert twilio.sandbox.requests == 4


async def test_server_errors_back_off_exponentially(
    make_deliverer: MakeDeliverer, twilio: TwilioFake
) -> None:
    twilio.sandbox.failures.append(ScriptedFailure(503, 3))
    deliverer, slept = await make_deliverer()
    assert receipt_of(await deliverer.handle(consumed())).status == "sent"
    assert slept == [0.5, 1.0, 2.0]


async def test_permanent_error_is_one_call_and_one_failed_receipt(
    make_deliverer: MakeDeliverer, twilio: TwilioFake
) -> None:
    twilio.sandbox.failures.append(ScriptedFailure(400, 1))
    deliverer, slept = await make_deliverer()
    outputs = await deliverer.handle(consumed())
    receipt = receipt_of(outputs)
    assert (receipt.status, receipt.attempts) == ("failed", 1)
    assert "21211" in (receipt.error or "")
    assert len(outputs) == 1
    assert slept == []
    assert twilio.sandbox.requests == 1
    assert await deliverer.handle(consumed()) == outputs  # redelivered: no second call
    assert twilio.sandbox.requests == 1


async def test_spent_retry_budget_dead_letters_the_command_once(
    make_deliverer: MakeDeliverer, twilio: TwilioFake, isolation: Isolation
) -> None:
    twilio.sandbox.failures.append(ScriptedFailure(503, 10))
    deliverer, slept = await make_deliverer(max_attempts=3)
    command = consumed()
    outputs = await deliverer.handle(command)
    dead, receipt = outputs
    assert dead.topic == isolation.topics.deadletter
    assert dead.event == command.event
    assert receipt.topic == isolation.topics.outbound_status
    assert receipt_of(outputs).status == "dead-lettered"
    assert receipt_of(outputs).attempts == 3
    assert len(slept) == 2
    assert twilio.sandbox.requests == 3
    assert await deliverer.handle(command) == outputs
    assert twilio.sandbox.requests == 3


async def test_an_auto_responder_gets_one_acknowledgement_per_conversation_and_five_an_hour(
    make_deliverer: MakeDeliverer, twilio: TwilioFake
) -> None:
    """Issue 16: an auto-responder, or a forged sender opening a conversation per message, got
    one automatic acknowledgement per message."""
    deliverer, _ = await make_deliverer()

    async def status(at: datetime = AT, **fields: Any) -> str:
        return receipt_of(await deliverer.handle(consumed(at, **fields))).status

    first = await deliverer.handle(consumed(command_id="loop-0"))
    assert receipt_of(first).status == "sent"
    assert [await status(command_id=f"loop-{i}") for i in (1, 2)] == ["suppressed"] * 2
    assert await status(command_id="late-0", kind="after_hours") == "sent"  # another kind
    flood = [
        await status(command_id=f"new-{i}", conversation_id=f"conv-new-{i}") for i in range(10)
    ]
    assert flood == ["sent"] * 3 + ["suppressed"] * 7  # five an hour, two already sent
    next_hour = AT + timedelta(hours=1)
    assert await status(next_hour, command_id="next-0", conversation_id="conv-next") == "sent"
    assert await status(command_id="other", recipient="+14155550999") == "sent"  # per address
    assert await deliverer.handle(consumed(command_id="loop-0")) == first  # redelivered
    assert len(twilio.sandbox.messages) == 7
