"""WhatsApp's 24-hour customer-service window, through the deliverer, real Redis and the Twilio
sandbox (which enforces the same rule on its own clock, failing free-form sends with 63016).

Time is passed in: the customer's message is recorded at ``AT``; outbound's clock and the
sandbox's are moved together, so "25 hours later" takes no waiting.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.common.events import Event, OutboundCommand, OutboundReceipt, event_id
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.contracts import optout, whatsapp
from services.outbound.deliver import Deliverer
from services.outbound.senders.base import OutgoingMessage
from services.outbound.senders.whatsapp import TwilioWhatsApp
from services.outbound.whatsapp_window import CustomerServiceWindow
from tests.integration.outbound.conftest import DelivererParts
from tests.support.harness import OUR_NUMBER, Isolation, TwilioFake

CUSTOMER = "+14155550123"
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
UPDATE_DE = "HX" + "d" * 32
CONFIG = f"""
queues: {{desk: {{}}}}
rules: []
templates:
  ack:
    whatsapp: {{en: "Thanks! Your reference is {{{{ reference }}}}."}}
whatsapp:
  templates:
    status_update:
      content_sid: {{en: HX{"e" * 32}, de: {UPDATE_DE}}}
      variables: [reference]
"""


class Clocks:
    """Outbound's clock and the sandbox's, moved together by the test."""

    def __init__(self, twilio: TwilioFake) -> None:
        self.now = AT
        twilio.sandbox.clock = lambda: self.now

    def __call__(self) -> datetime:
        return self.now


Make = Callable[[], Awaitable[tuple[Deliverer, TwilioWhatsApp]]]


@pytest.fixture
def make(deliverer_parts: DelivererParts, clocks: Clocks) -> Make:
    deliverer_parts.config.write_text(CONFIG)
    redis, keys = deliverer_parts.redis, deliverer_parts.keys

    async def build() -> tuple[Deliverer, TwilioWhatsApp]:
        sender = TwilioWhatsApp(deliverer_parts.twilio_sms())

        optouts = ScriptBatcher(redis)

        async def opted_out(command: OutboundCommand) -> bool:
            ours = whatsapp.optout_address(command.sender or OUR_NUMBER)
            return await optout.is_opted_out(optouts, keys, ours, command.recipient)

        deliverer = deliverer_parts.deliverer(
            {"whatsapp": sender},
            sms_opted_out=opted_out,
            whatsapp_window=CustomerServiceWindow(redis, keys, OUR_NUMBER, clocks),
        )
        return deliverer, sender

    return build


@pytest.fixture
def clocks(twilio: TwilioFake) -> Clocks:
    return Clocks(twilio)


def consumed(kind: str, command_id: str, **fields: Any) -> Consumed:
    command = OutboundCommand(
        command_id=command_id,
        kind=kind,  # type: ignore[arg-type]
        channel="whatsapp",
        conversation_id="conv-1",
        reference="SB-7K3Q9",
        recipient=CUSTOMER,
        sender=OUR_NUMBER,
        params={"reference": "SB-7K3Q9", **fields.pop("params", {})},
        **fields,
    )
    thread = f"whatsapp:{OUR_NUMBER}:{CUSTOMER}"
    event = Event(id=event_id(command_id), source="/test", subject=thread, time=AT, data=command)
    return Consumed(event=event, topic="commands", partition=0, offset=0, key=thread)


async def receipt(deliverer: Deliverer, command: Consumed) -> OutboundReceipt:
    [data] = [
        o.event.data
        for o in await deliverer.handle(command)
        if isinstance(o.event.data, OutboundReceipt)
    ]
    return data


async def customer_writes(redis: Redis, isolation: Isolation, twilio: TwilioFake) -> None:
    """The customer's message as both sides see it: ingest's record and Twilio's."""
    keys = Keys(isolation.key_prefix)
    await whatsapp.record_inbound(redis, keys, OUR_NUMBER, CUSTOMER, AT)
    twilio.sandbox.whatsapp_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="Hi")


async def test_inside_the_window_messages_go_free_form(
    make: Make, redis: Redis, isolation: Isolation, twilio: TwilioFake, clocks: Clocks
) -> None:
    await customer_writes(redis, isolation, twilio)
    deliverer, _ = await make()
    clocks.now = AT + timedelta(hours=23)
    assert (await receipt(deliverer, consumed("auto_ack", "ack-1", template="ack"))).status == (
        "sent"
    )
    [message] = twilio.sandbox.messages
    assert (message["to"], message["from"]) == (f"whatsapp:{CUSTOMER}", f"whatsapp:{OUR_NUMBER}")
    assert message["body"] == "Thanks! Your reference is SB-7K3Q9."
    assert (message["status"], message["content_sid"]) == ("queued", None)


async def test_after_the_window_a_template_or_nothing(
    make: Make, redis: Redis, isolation: Isolation, twilio: TwilioFake, clocks: Clocks
) -> None:
    await customer_writes(redis, isolation, twilio)
    deliverer, _ = await make()
    clocks.now = AT + timedelta(hours=25)

    update = consumed("status_update", "upd-1", template="status-update", params={"language": "de"})
    assert (await receipt(deliverer, update)).status == "sent"
    [message] = twilio.sandbox.messages
    assert message["content_sid"] == UPDATE_DE
    assert json.loads(message["content_variables"]) == {"1": "SB-7K3Q9"}
    assert (message["status"], message["body"]) == ("queued", "")

    reply = consumed("agent_reply", "reply-1", text="Your parcel left the depot.")
    refused = await receipt(deliverer, reply)
    assert refused.status == "window_closed"
    assert "24-hour" in (refused.error or "")
    assert twilio.sandbox.requests == 1  # nothing sent for the reply
    assert await receipt(deliverer, reply) == refused  # redelivered: the same answer

    ack = consumed("auto_ack", "ack-2", template="ack")  # no template for acknowledgements
    assert (await receipt(deliverer, ack)).status == "window_closed"
    assert twilio.sandbox.requests == 1


async def test_whatsapp_stop_is_honoured(
    make: Make, redis: Redis, isolation: Isolation, twilio: TwilioFake
) -> None:
    await customer_writes(redis, isolation, twilio)
    keys = Keys(isolation.key_prefix)
    ours = whatsapp.optout_address(OUR_NUMBER)
    await optout.record(redis, keys, ours, CUSTOMER, "opt-out", "STOP", AT)
    deliverer, _ = await make()
    reply = consumed("agent_reply", "reply-2", text="Hello again")
    assert (await receipt(deliverer, reply)).status == "suppressed"
    assert twilio.sandbox.requests == 0


async def test_the_sandbox_fails_a_free_form_send_after_the_window_with_63016(
    make: Make, twilio: TwilioFake, clocks: Clocks
) -> None:
    twilio.sandbox.whatsapp_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="Hi")
    _, sender = await make()
    clocks.now = AT + timedelta(hours=24, seconds=1)
    message = OutgoingMessage(
        command_id="raw-1",
        recipient=CUSTOMER,
        sender=OUR_NUMBER,
        subject=None,
        text="Are you still there?",
        in_reply_to=None,
    )
    await sender.send(message)  # Twilio takes it, then reports it failed
    [sent] = twilio.sandbox.messages
    assert (sent["status"], sent["error_code"]) == ("failed", 63016)
