"""Providers redeliver: many deliveries of one provider message id give exactly one event.

Each delivery is a real HTTP request to the ingest app, signed as the provider signs it, with
many in flight at once (as a provider's retries race its original delivery and each other).
Every one must be answered with success, since a provider that keeps getting errors for a
message it already delivered retries it, fails over, or alerts its owner.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from libs.common.events import MessageReceived, event_id
from services.ingest.sms import PATH as SMS_PATH
from services.ingest.x.webhook import PATH as X_PATH
from tests.integration.ingest.conftest import (
    PUBLIC_URL,
    X_SECRET,
    X_USER_ID,
    Ingest,
    read_all,
)
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.webhooks import encode_form, sign_twilio, sign_x
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.slow

IN_FLIGHT = 100
CUSTOMER_X_ID = "1700000000000000007"


async def deliver_many(url: str, body: bytes, headers: dict[str, str], times: int) -> list[int]:
    """POST the same request ``times`` times, at most ``IN_FLIGHT`` at once; the statuses."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def once() -> int:
            async with slots, http.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(once() for _ in range(times))))


async def assert_one_event(ingest: Ingest, topic: str, expected_id: str, provider_id: str) -> None:
    """Exactly one record on ``topic``, and it is the event of ``provider_id``."""
    [event] = await read_all(ingest.bootstrap, topic)
    assert event.id == expected_id
    assert isinstance(event.data, MessageReceived)
    assert event.data.provider_message_id == provider_id


async def test_ten_thousand_deliveries_of_one_twilio_sms_give_one_event(
    isolation: Isolation, ingest_app: Ingest
) -> None:
    form = sms_webhook_form(sender="+14155550123", recipient=OUR_NUMBER, body="where is my order")
    headers = sign_twilio(PUBLIC_URL + SMS_PATH, form, AUTH_TOKEN)
    body = encode_form(form).encode()
    statuses = await deliver_many(ingest_app.url + SMS_PATH, body, headers, 10_000)
    assert {status: statuses.count(status) for status in set(statuses)} == {200: 10_000}
    await assert_one_event(
        ingest_app,
        isolation.topics.inbound,
        event_id("sms", "twilio", form["MessageSid"]),
        form["MessageSid"],
    )


async def test_a_thousand_deliveries_of_one_x_direct_message_give_one_event(
    isolation: Isolation, ingest_app: Ingest
) -> None:
    dm_id = "1900000000000000101"
    body = json.dumps(
        {
            "for_user_id": X_USER_ID,
            "direct_message_events": [
                {
                    "type": "message_create",
                    "id": dm_id,
                    "created_timestamp": "1795599015123",
                    "message_create": {
                        "target": {"recipient_id": X_USER_ID},
                        "sender_id": CUSTOMER_X_ID,
                        "message_data": {"text": "my order 5521 is late"},
                    },
                }
            ],
        }
    ).encode()
    statuses = await deliver_many(ingest_app.url + X_PATH, body, sign_x(body, X_SECRET), 1_000)
    assert {status: statuses.count(status) for status in set(statuses)} == {200: 1_000}
    await assert_one_event(
        ingest_app, isolation.topics.inbound, event_id("social", "x", "dm", dm_id), dm_id
    )
