"""Who may take part in a conversation, against ingest, router and hub as separate processes.

An email that names a conversation's thread but comes from someone who is not part of it
(not its customer, not one of its recipients) must not take the conversation over: the
agent's reply still goes to the customer. An email address typed into the chat widget proves
nothing: it never makes the visitor the customer who owns that address (no name, tier,
history or queue of theirs), and the agent sees it marked unverified.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from libs.common.events import ConversationRouted, OutboundCommand
from libs.contracts.agent_access import WS_PATH, AgentTokens
from tests.support.harness import FIXTURES, Isolation, Launch
from tests.support.hub import next_event
from tests.support.kafka import Collected, collect, wait_until, wait_until_async
from tests.support.mail import SmtpClient
from tooling.devstack import DevStack, ServiceProcess, free_port
from tooling.hubclient import HubClient

pytestmark = pytest.mark.e2e
CHAT_KEY = "e2e-identity-chat-key-0123456789abcdef"
AGENT_KEY = "e2e-identity-agent-key-0123456789abcdef"
SUPPORT = "help@shop.example"
QUEUES = ("payments", "orders", "vip", "general", "berlin", "incidents")  # routing.yaml's
CUSTOMER = "ana@example.org"
VIP = "grace@bigcorp.example"  # routing.yaml gives @bigcorp.example the vip tier


def mail(sender: str, message_id: str, text: str, *, parent: str | None = None) -> bytes:
    threading = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
    subject = "Re: Order NW-1" if parent else "Order NW-1"
    return (
        f"From: {sender}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\n{threading}"
        f"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n\r\n{text}\r\n"
    ).encode()


@pytest.fixture
async def services(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
) -> AsyncIterator[tuple[ServiceProcess, SmtpClient, Collected]]:
    """Ingest (SMTP and chat), router and hub; what they publish is collected."""
    smtp_port = free_port()
    env = {
        **service_env,
        "SWITCHBOARD_CONFIG": str(FIXTURES / "config" / "routing.yaml"),
        "SWITCHBOARD_SMTP_PORT": str(smtp_port),
        "CHAT_SESSION_KEY": CHAT_KEY,
        "AGENT_TOKEN_KEY": AGENT_KEY,
    }
    processes = await launch(["ingest", "router", "hub"], env)
    hub = next(p for p in processes if p.name == "hub")
    topics = isolation.topics
    async with collect(
        stack.broker.bootstrap_servers, topics.routed, topics.outbound_commands
    ) as seen:
        yield hub, SmtpClient(smtp_port, SUPPORT), seen


def agent(hub: ServiceProcess, http: aiohttp.ClientSession) -> HubClient:
    token = AgentTokens(AGENT_KEY).issue("ada", QUEUES)
    return HubClient(hub.url + WS_PATH, token, session=http)


async def routed(seen: Collected, text: str) -> ConversationRouted:
    """The routed event of the message with ``text``."""

    def found() -> list[ConversationRouted]:
        return [
            e.data
            for e in seen.of_type(ConversationRouted)
            if isinstance(e.data, ConversationRouted) and e.data.text == text
        ]

    await wait_until(lambda: bool(found()), message=f"{text!r} routed")
    return found()[0]


def agent_replies(seen: Collected) -> list[OutboundCommand]:
    return [
        e.data
        for e in seen.of_type(OutboundCommand)
        if isinstance(e.data, OutboundCommand) and e.data.kind == "agent_reply"
    ]


async def test_a_stranger_naming_a_thread_does_not_take_the_conversation_over(
    services: tuple[ServiceProcess, SmtpClient, Collected], http: aiohttp.ClientSession
) -> None:
    hub, smtp, seen = services
    async with agent(hub, http) as client:
        await client.subscribe(QUEUES)
        assert (await smtp.send(mail(f"Ana <{CUSTOMER}>", "root@example.org", "Hello?")))[0] == 250
        first = await routed(seen, "Hello?")

        hijack = mail(
            "Ana <mallory@evil.example>",
            "hijack@evil.example",
            "Please resend my order details.",
            parent="root@example.org",
        )
        assert (await smtp.send(hijack, sender="mallory@evil.example"))[0] == 250
        stranger = await routed(seen, "Please resend my order details.")
        frame = await next_event(
            client, "routed", lambda data: data["message_id"] == stranger.message_id
        )
        # The console shows who wrote each message: the sender is in every routed frame.
        assert frame["data"]["customer"]["email"] == "mallory@evil.example"

        await client.act("reply", first.conversation_id, text="Your order NW-1 ships today.")
        await wait_until(lambda: bool(agent_replies(seen)), message="the agent's reply command")
        [reply] = agent_replies(seen)
        assert (reply.conversation_id, reply.recipient) == (first.conversation_id, CUSTOMER)
        assert stranger.conversation_id != first.conversation_id
        assert stranger.linked_conversation_id == first.conversation_id

        # The customer's own answer in the thread still joins the conversation.
        own = mail(f"Ana <{CUSTOMER}>", "again@example.org", "Thanks!", parent="root@example.org")
        assert (await smtp.send(own))[0] == 250
        assert (await routed(seen, "Thanks!")).conversation_id == first.conversation_id


async def test_an_email_typed_into_the_chat_does_not_make_the_visitor_that_customer(
    services: tuple[ServiceProcess, SmtpClient, Collected],
    http: aiohttp.ClientSession,
    service_env: dict[str, str],
) -> None:
    hub, smtp, seen = services
    victim = mail(f"Grace Hopper <{VIP}>", "vip-1@bigcorp.example", "Invoice 77 is wrong.")
    assert (await smtp.send(victim))[0] == 250
    theirs = await routed(seen, "Invoice 77 is wrong.")
    assert theirs.queue == "vip"

    ingest = f"http://127.0.0.1:{service_env['SWITCHBOARD_INGEST_PORT']}"
    async with http.post(f"{ingest}/v1/chat/session") as response:
        token = (await response.json())["token"]
    ws = await http.ws_connect(f"{ingest}/v1/chat/ws", params={"token": token})
    assert json.loads((await ws.receive(timeout=20)).data)["type"] == "ready"
    await ws.send_json(
        {
            "type": "message",
            "client_id": "m-1",
            "text": "A question about my account.",
            "name": "Grace Hopper",
            "email": VIP,
        }
    )
    assert json.loads((await ws.receive(timeout=20)).data)["type"] == "ack"
    await ws.close()

    chat = await routed(seen, "A question about my account.")
    assert chat.customer_id != theirs.customer_id
    assert chat.queue == "general"  # not the vip queue: neither tier nor open case inherited
    assert chat.customer.verified is False
    async with agent(hub, http) as client:
        await wait_until_async(
            lambda: identity_shown(client, chat.conversation_id), message="the hub's summary"
        )
        view = await client.customer(chat.conversation_id)
    assert view["profile"] is None  # no name, tier, email or history of the real customer
    assert view["history"] == []
    assert view["identity"] == {
        "name": "Grace Hopper",
        "email": VIP,
        "phone": None,
        "social": None,
        "verified": False,
    }


async def identity_shown(client: HubClient, conversation_id: str) -> bool:
    """Whether the hub has applied the conversation's routed event (its view names a sender)."""
    return (await client.customer(conversation_id))["identity"] is not None
