"""WhatsApp through Twilio's webhook, into the ingest app, the real broker and Redis.

Requests are signed the way Twilio signs them, over the public URL ingest is configured with.
The ingest clock is fixed, so the customer-service window it records is exact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.common.clock import fixed_clock
from libs.common.events import DeliveryReport, MessageReceived
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.common.service import CLOCK
from libs.contracts import optout, whatsapp
from services.ingest.app import build
from services.ingest.sms import LOCATION_TYPE
from tests.integration.ingest.conftest import PUBLIC_URL, ingest_settings
from tests.support.harness import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.kafka import collect, wait_until
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack
from tooling.sandbox.twilio import whatsapp_form

ServeApp = Callable[[web.Application], Awaitable[str]]
CUSTOMER = "+14155550123"
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
PATH = "/v1/sms/twilio"


@pytest.fixture
async def ingest(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> str:
    app = build(ingest_settings(stack, isolation, twilio_account_sid=ACCOUNT_SID))
    app[CLOCK] = fixed_clock(AT)
    return await serve_app(app)


async def post(http: aiohttp.ClientSession, base: str, path: str, form: dict[str, str]) -> int:
    headers = sign_twilio(PUBLIC_URL + path, form, AUTH_TOKEN)
    async with http.post(base + path, data=encode_form(form), headers=headers) as response:
        await response.read()
        return response.status


def form(body: str, sid: str, **extra: str) -> dict[str, str]:
    return {
        **whatsapp_form(
            sender=CUSTOMER,
            recipient=OUR_NUMBER,
            body=body,
            profile_name="Ana",
            sid=sid,
            account_sid=ACCOUNT_SID,
        ),
        **extra,
    }


async def test_a_whatsapp_message_is_its_own_channel_and_opens_the_window(
    stack: DevStack, isolation: Isolation, redis: Redis, ingest: str, http: aiohttp.ClientSession
) -> None:
    keys = Keys(isolation.key_prefix)
    text = form("Where is my order?", "SM" + "1" * 32)
    location = form(
        "",
        "SM" + "2" * 32,
        Latitude="52.52",
        Longitude="13.405",
        Label="Pickup point",
    )
    button = form("", "SM" + "3" * 32, ButtonText="Talk to an agent", ButtonPayload="agent")
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        for sent in (text, location, button):
            assert await post(http, ingest, PATH, sent) == 200
        await wait_until(lambda: len(seen.events) == 3, message="three WhatsApp messages")

    first, shared, pressed = seen.data_of(MessageReceived)
    assert first.channel == "whatsapp"
    assert first.thread_key == f"whatsapp:{OUR_NUMBER}:{CUSTOMER}"
    assert (first.customer.phone, first.customer.display_name) == (CUSTOMER, "Ana")
    assert first.recipient == OUR_NUMBER
    [place] = shared.attachments
    assert (place.content_type, place.url, place.name) == (
        LOCATION_TYPE,
        "geo:52.52,13.405",
        "Pickup point",
    )
    assert pressed.text == "Talk to an agent"
    # The window runs from the latest message, to the millisecond.
    latest = pressed.received_at
    opened = latest.replace(microsecond=latest.microsecond // 1000 * 1000)
    assert await whatsapp.last_inbound(redis, keys, OUR_NUMBER, CUSTOMER) == opened


async def test_read_receipts_name_the_conversation_and_stop_is_whatsapp_only(
    stack: DevStack, isolation: Isolation, redis: Redis, ingest: str, http: aiohttp.ClientSession
) -> None:
    keys = Keys(isolation.key_prefix)
    sid = "SM" + "4" * 32
    status_path = "/v1/sms/twilio/status?conversation=conv-7"
    read = {
        "AccountSid": ACCOUNT_SID,
        "From": whatsapp.address(OUR_NUMBER),
        "To": whatsapp.address(CUSTOMER),
        "MessageSid": sid,
        "MessageStatus": "read",
        "ChannelPrefix": "whatsapp",
    }
    async with collect(stack.broker.bootstrap_servers, isolation.topics.outbound_status) as seen:
        assert await post(http, ingest, status_path, read) == 200
        await wait_until(lambda: len(seen.events) == 1, message="the read receipt")
    [report] = seen.data_of(DeliveryReport)
    assert (report.channel, report.status, report.conversation_id) == ("whatsapp", "read", "conv-7")

    assert await post(http, ingest, PATH, form("STOP", "SM" + "5" * 32)) == 200
    ours, optouts = whatsapp.optout_address(OUR_NUMBER), ScriptBatcher(redis)
    assert await optout.is_opted_out(optouts, keys, ours, CUSTOMER)
    assert not await optout.is_opted_out(optouts, keys, OUR_NUMBER, CUSTOMER)  # SMS still open
