"""The hub with the real services as separate processes: an SMS reaches the agent's socket as
the router routed it, and the agent's reply reaches the customer through outbound."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from libs.contracts.agent_access import WS_PATH, AgentTokens
from tests.support.deadline import patience
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Launch, TwilioFake
from tests.support.kafka import wait_until
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import SERVICES
from tooling.hubclient import HubClient
from tooling.sandbox.twilio import sms_webhook_form

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]  # also on a Redis Cluster
KEY = "hub-spine-key-0123456789abcdef0123456789"
CUSTOMER = "+14155550199"


async def next_event(
    client: HubClient, backlog: list[dict[str, Any]], event_kind: str, **data: Any
) -> dict[str, Any]:
    """The first event of ``event_kind`` whose data has the given fields, read before (kept in
    ``backlog``: events of different topics, such as ``routed`` and the ``sla`` clock it
    started, arrive in either order) or next."""

    def matches(message: dict[str, Any]) -> bool:
        return message.get("kind") == event_kind and all(
            message["data"].get(k) == v for k, v in data.items()
        )

    for message in backlog:
        if matches(message):
            backlog.remove(message)
            return message
    while True:
        try:
            message = await client.next(timeout=patience(60))
        except TimeoutError:
            seen = [(m["kind"], m["data"].get("kind")) for m in backlog]
            raise AssertionError(f"no {event_kind} event with {data}; saw {seen}") from None
        if message["type"] != "event":
            continue
        if matches(message):
            return message
        backlog.append(message)


async def test_an_sms_reaches_the_agent_and_the_agents_reply_reaches_the_customer(
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    http: aiohttp.ClientSession,
) -> None:
    env = {**service_env, "AGENT_TOKEN_KEY": KEY}
    *_, hub = await launch((*SERVICES, "hub"), env)
    token = AgentTokens(KEY).issue("ada", ["sms-desk"])
    async with HubClient(hub.url + WS_PATH, token, session=http, token_in_query=True) as agent:
        await agent.subscribe(["sms-desk"])
        # Events after the snapshot are sent as events; earlier ones are in the snapshot.
        assert (await agent.next())["type"] == "snapshot"
        form = sms_webhook_form(sender=CUSTOMER, recipient=OUR_NUMBER, body="Where is my parcel?")
        url = f"{env['SWITCHBOARD_PUBLIC_URL']}/v1/sms/twilio"
        headers = sign_twilio(url, form, AUTH_TOKEN)
        async with http.post(url, data=encode_form(form), headers=headers) as response:
            assert response.status == 200
        backlog: list[dict[str, Any]] = []
        routed = await next_event(agent, backlog, "routed", text="Where is my parcel?")
        conversation = routed["conversation_id"]
        started = await next_event(agent, backlog, "sla", kind="started")
        assert started["conversation_id"] == conversation
        view = await agent.customer(conversation)  # the router's profile and history
        assert view["profile"]["phone"] == CUSTOMER
        assert [h["reference"] for h in view["history"]] == [routed["data"]["reference"]]
        await wait_until(lambda: len(twilio.sandbox.messages) == 1, message="the auto-ack")
        await agent.act("claim", conversation)
        ack = await agent.act("reply", conversation, text="It left the depot this morning.")
        receipt = await next_event(agent, backlog, "receipt", command_id=ack["command_id"])
        assert receipt["data"]["status"] == "sent"
        reply = twilio.sandbox.messages[-1]
        assert reply["to"] == CUSTOMER
        assert reply["body"] == "It left the depot this morning."
        await agent.act("resolve", conversation)
        resolved = await next_event(agent, backlog, "action", kind="resolve")
        assert resolved["conversation_id"] == conversation
