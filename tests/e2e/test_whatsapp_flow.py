"""WhatsApp end to end: signed Twilio webhooks into ingest, router, SLA and hub as processes,
outbound in this process on a clock the test moves, and the Twilio sandbox enforcing the
24-hour customer-service window on its own clock.

Nothing sleeps through the day: "25 hours later" is the test moving outbound's clock and the
sandbox's together, the only two parts that judge the window.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from libs.common.clock import Clock, system_clock
from libs.common.events import ConversationRouted, OutboundReceipt
from libs.common.service import CLOCK
from libs.common.settings import Settings
from libs.contracts.agent_access import WS_PATH, AgentTokens
from services.outbound.app import build as build_outbound
from tests.conftest import ServeApp
from tests.support.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    OUR_NUMBER,
    Isolation,
    Launch,
    TwilioFake,
)
from tests.support.hub import next_event
from tests.support.kafka import Collected, collect, wait_until
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack, ServiceProcess
from tooling.hubclient import HubClient
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = pytest.mark.e2e
CUSTOMER = "+14155550123"
AGENT_KEY = "e2e-whatsapp-agent-key-0123456789abcdef"
SURVEY_TEMPLATE = "HX" + "5e" * 16
CONFIG = FIXTURES / "config" / "whatsapp.yaml"


class LaterClock:
    """The real time plus an offset the test moves (outbound's clock and the sandbox's)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return system_clock() + self.ahead


@pytest.fixture
async def later(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    twilio: TwilioFake,
    serve_app: ServeApp,
) -> LaterClock:
    """Outbound running here on a clock the test moves; the sandbox follows the same clock."""
    clock = LaterClock()
    twilio.sandbox.clock = clock
    settings = Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
        switchboard_config=CONFIG,
        switchboard_public_url=service_env["SWITCHBOARD_PUBLIC_URL"],
        switchboard_http_host="127.0.0.1",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number=OUR_NUMBER,
        twilio_api_base_url=twilio.url,
    )
    app = build_outbound(settings)
    moved: Clock = clock
    app[CLOCK] = moved
    await serve_app(app)
    return clock


@pytest.fixture
async def services(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    later: LaterClock,
) -> AsyncIterator[tuple[ServiceProcess, Collected]]:
    env = {**service_env, "SWITCHBOARD_CONFIG": str(CONFIG), "AGENT_TOKEN_KEY": AGENT_KEY}
    processes = await launch(["ingest", "router", "sla", "hub"], env)
    hub = next(p for p in processes if p.name == "hub")
    topics = isolation.topics
    async with collect(
        stack.broker.bootstrap_servers, topics.routed, topics.outbound_status
    ) as seen:
        yield hub, seen


async def post_twilio(
    http: aiohttp.ClientSession, env: dict[str, str], form: dict[str, str]
) -> int:
    url = f"{env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
    headers = sign_twilio(url, form, AUTH_TOKEN)
    async with http.post(url, data=encode_form(form), headers=headers) as response:
        await response.read()
        return response.status


def routed_on(seen: Collected, channel: str) -> list[ConversationRouted]:
    return [r for r in seen.data_of(ConversationRouted) if r.channel == channel]


def receipts(seen: Collected, kind: str) -> list[OutboundReceipt]:
    return [r for r in seen.data_of(OutboundReceipt) if r.kind == kind]


def sent_to(twilio: TwilioFake, address: str) -> list[dict[str, Any]]:
    return [m for m in twilio.sandbox.messages if m["to"] == address]


async def test_whatsapp_window_from_webhook_to_console(
    services: tuple[ServiceProcess, Collected],
    service_env: dict[str, str],
    twilio: TwilioFake,
    later: LaterClock,
    http: aiohttp.ClientSession,
) -> None:
    hub, seen = services
    token = AgentTokens(AGENT_KEY).issue("ada", ["desk"])
    async with HubClient(hub.url + WS_PATH, token, session=http) as agent:
        await agent.subscribe(["desk"])
        # The same person on SMS and on WhatsApp is one customer.
        sms = sms_webhook_form(
            sender=CUSTOMER,
            recipient=OUR_NUMBER,
            body="My card was declined",
            account_sid=ACCOUNT_SID,
        )
        assert await post_twilio(http, service_env, sms) == 200
        form = twilio.sandbox.whatsapp_webhook_form(
            sender=CUSTOMER, recipient=OUR_NUMBER, body="Where is my parcel?", profile_name="Ana"
        )
        assert await post_twilio(http, service_env, form) == 200
        await wait_until(lambda: bool(routed_on(seen, "whatsapp")), message="WhatsApp routed")
        await wait_until(lambda: bool(routed_on(seen, "sms")), message="SMS routed")
        [chat] = routed_on(seen, "whatsapp")
        [text] = routed_on(seen, "sms")
        assert chat.queue == "desk"
        assert chat.customer_id is not None
        assert chat.customer_id == text.customer_id
        assert chat.reply_window_closes_at == chat.received_at + timedelta(hours=24)

        # Inside the window the acknowledgement goes free-form.
        customer = f"whatsapp:{CUSTOMER}"
        await wait_until(lambda: bool(sent_to(twilio, customer)), message="the WhatsApp ack")
        [ack] = sent_to(twilio, customer)
        assert chat.reference in ack["body"]
        assert (ack["content_sid"], ack["status"]) == (None, "queued")

        # The customer reads it: Twilio's read receipt reaches the agent.
        assert await twilio.sandbox.report_status(ack["sid"], "read") == 200
        read = await next_event(agent, "delivery", lambda data: data["status"] == "read")
        assert read["conversation_id"] == chat.conversation_id
        assert read["data"]["provider_message_id"] == ack["sid"]

        # 25 hours after the customer's message: a free-form reply is refused, nothing sent.
        later.ahead = timedelta(hours=25)
        await agent.act("reply", chat.conversation_id, text="Your parcel left the depot.")
        await wait_until(lambda: bool(receipts(seen, "agent_reply")), message="the reply's receipt")
        [refused] = receipts(seen, "agent_reply")
        assert refused.status == "window_closed"
        assert sent_to(twilio, customer) == [ack]

        # The survey after the resolution goes out as the approved template.
        await agent.act("resolve", chat.conversation_id)
        await wait_until(
            lambda: len(sent_to(twilio, customer)) == 2, timeout=30, message="the survey"
        )
    survey = sent_to(twilio, customer)[1]
    assert survey["content_sid"] == SURVEY_TEMPLATE
    assert json.loads(survey["content_variables"]) == {"1": chat.reference}
    assert survey["status"] == "queued"
    assert not [m for m in twilio.sandbox.messages if m["error_code"] == 63016]
