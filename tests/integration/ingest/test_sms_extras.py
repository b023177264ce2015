"""SMS status callbacks and consent keywords, through the ingest app to the real broker and Redis.

The ingest app runs in this process; requests are signed the way Twilio signs them, over the
public URL ingest is configured with (not the loopback address the test posts to).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.common.events import DeliveryReport, MessageReceived, event_id
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.contracts.optout import classify, is_opted_out
from services.ingest.app import build
from services.ingest.sms import signature_valid
from tests.integration.ingest.conftest import PUBLIC_URL, ingest_settings
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.kafka import collect, wait_until
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack
from tooling.sandbox.twilio import sms_webhook_form

ServeApp = Callable[[web.Application], Awaitable[str]]
CUSTOMER = "+14155550123"
SID = "SM" + "a" * 32


@pytest.fixture
async def ingest(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> str:
    return await serve_app(build(ingest_settings(stack, isolation)))


async def post(
    http: aiohttp.ClientSession, base: str, path: str, form: dict[str, str], token: str = AUTH_TOKEN
) -> int:
    headers = sign_twilio(PUBLIC_URL + path, form, token)
    async with http.post(base + path, data=encode_form(form), headers=headers) as response:
        await response.read()
        return response.status


def status_form(status: str, sid: str = SID, error_code: str | None = None) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "1" * 32,
        "From": OUR_NUMBER,
        "To": CUSTOMER,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        form["ErrorCode"] = error_code
    return form


async def test_status_callbacks_are_recorded_and_published(
    stack: DevStack,
    isolation: Isolation,
    redis: Redis,
    ingest: str,
    http: aiohttp.ClientSession,
) -> None:
    path = "/v1/sms/twilio/status"
    failed_sid = "SM" + "b" * 32
    async with collect(stack.broker.bootstrap_servers, isolation.topics.outbound_status) as seen:
        assert await post(http, ingest, path, status_form("sent")) == 200
        assert await post(http, ingest, path, status_form("delivered")) == 200
        assert await post(http, ingest, path, status_form("sent")) == 200  # late: dropped
        assert (
            await post(http, ingest, path, status_form("undelivered", failed_sid, "30003")) == 200
        )
        assert await post(http, ingest, path, status_form("delivered"), token="forged") == 403
        assert await post(http, ingest, path, status_form("delivered", "SM<script>")) == 400
        assert await post(http, ingest, path, status_form("delivered" * 9)) == 400
        await wait_until(lambda: len(seen.events) >= 3, message="three delivery reports")

    reports = [(e, e.data) for e in seen.events if isinstance(e.data, DeliveryReport)]
    assert len(reports) == 3
    by_status = {(data.provider_message_id, data.status): (e, data) for e, data in reports}
    assert set(by_status) == {(SID, "sent"), (SID, "delivered"), (failed_sid, "undelivered")}
    delivered, report = by_status[(SID, "delivered")]
    assert delivered.id == event_id("sms", "twilio", "status", SID, "delivered")
    assert delivered.subject == SID
    assert report.channel == "sms"
    assert report.provider == "twilio"
    assert report.provider_status == "delivered"
    assert report.error_code is None
    assert by_status[(failed_sid, "undelivered")][1].error_code == "30003"
    assert {r.key for r in seen.records} == {SID.encode(), failed_sid.encode()}

    keys = Keys(isolation.key_prefix)
    stored = await redis.hgetall(keys.sms_status(SID))
    assert stored[b"status"] == b"delivered"
    assert stored[b"error_code"] == b""
    assert 0 < await redis.ttl(keys.sms_status(SID)) <= 7 * 86_400
    assert (await redis.hgetall(keys.sms_status(failed_sid)))[b"error_code"] == b"30003"


async def test_stop_opts_out_start_opts_back_in_and_a_late_retry_changes_nothing(
    stack: DevStack,
    isolation: Isolation,
    redis: Redis,
    ingest: str,
    http: aiohttp.ClientSession,
) -> None:
    keys, optouts = Keys(isolation.key_prefix), ScriptBatcher(redis)
    path = "/v1/sms/twilio"
    stop = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body=" Stop! ")
    start = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="START")
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        assert not await is_opted_out(optouts, keys, OUR_NUMBER, CUSTOMER)
        assert await post(http, ingest, path, stop) == 200
        assert await is_opted_out(optouts, keys, OUR_NUMBER, CUSTOMER)
        assert await post(http, ingest, path, start) == 200
        assert not await is_opted_out(optouts, keys, OUR_NUMBER, CUSTOMER)
        assert await post(http, ingest, path, stop) == 200  # Twilio retrying the old STOP
        assert not await is_opted_out(optouts, keys, OUR_NUMBER, CUSTOMER)
        await wait_until(lambda: len(seen.events) >= 2, message="both keyword messages")

    messages = {m.provider_message_id: m for m in seen.data_of(MessageReceived)}
    assert len(seen.events) == 2
    assert messages[stop["MessageSid"]].automated == "opt-out"
    assert messages[stop["MessageSid"]].text == " Stop! "  # published as received
    assert messages[start["MessageSid"]].automated == "opt-in"


async def test_help_is_marked_and_a_sentence_with_stop_is_a_message(
    stack: DevStack,
    isolation: Isolation,
    redis: Redis,
    ingest: str,
    http: aiohttp.ClientSession,
) -> None:
    keys = Keys(isolation.key_prefix)
    help_form = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="help")
    sentence = sms_webhook_form(
        sender=CUSTOMER, recipient=OUR_NUMBER, body="stop sending me the wrong size"
    )
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        assert await post(http, ingest, "/v1/sms/twilio", help_form) == 200
        assert await post(http, ingest, "/v1/sms/twilio", sentence) == 200
        await wait_until(lambda: len(seen.events) >= 2, message="both messages")
    messages = {m.provider_message_id: m for m in seen.data_of(MessageReceived)}
    assert messages[help_form["MessageSid"]].automated == "help"
    assert messages[sentence["MessageSid"]].automated is None
    assert not await is_opted_out(ScriptBatcher(redis), keys, OUR_NUMBER, CUSTOMER)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", ("opt-out", "STOP")),
        ("stopall", ("opt-out", "STOPALL")),
        ("  Unsubscribe.\n", ("opt-out", "UNSUBSCRIBE")),
        ("cancel", ("opt-out", "CANCEL")),
        ("End", ("opt-out", "END")),
        ("QUIT!", ("opt-out", "QUIT")),
        ("start", ("opt-in", "START")),
        ("Yes", ("opt-in", "YES")),
        ("UNSTOP", ("opt-in", "UNSTOP")),
        ("HELP", ("help", "HELP")),
        ("info", ("help", "INFO")),
        ("stop it", None),
        ("STOPPED", None),
        ("", None),
        ("yes " * 20, None),
    ],
)
def test_keywords_are_whole_messages(body: str, expected: tuple[str, str] | None) -> None:
    assert classify(body) == expected


def test_an_empty_token_or_missing_signature_never_validates() -> None:
    url = "https://ingest.switchboard.example/v1/sms/twilio"
    assert not signature_valid(url, [], "2jmc6+EOG/xxSWSFe5XdXYtmGGA=", "")
    assert not signature_valid(url, [("Body", "hi")], None, AUTH_TOKEN)
    assert not signature_valid(url, [("Body", "hi")], "\udcff", AUTH_TOKEN)
