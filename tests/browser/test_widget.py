"""The chat widget in a real browser: Debian's Chromium, driven by Playwright, against the
services as separate processes (ingest, router for the acknowledgement, outbound)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import async_playwright, expect

from libs.common.clock import system_clock
from libs.common.events import (
    ConversationRouted,
    Event,
    MessageReceived,
    OutboundCommand,
    encode,
    event_id,
)
from tests.browser.conftest import ARGS, ARTIFACTS, ROOT, UI_TIMEOUT_MS
from tests.support.harness import Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack

pytestmark = pytest.mark.e2e
KEY = "browser-chat-session-key-0123456789abcdef"


async def test_visitor_chats_in_the_demo_page_and_sees_the_ack_and_an_agent_reply(
    chromium: Path,
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    tmp_path: Path,
) -> None:
    env = {
        **service_env,
        "CHAT_SESSION_KEY": KEY,
        "SWITCHBOARD_CONFIG": str(ROOT / "config" / "store.yaml"),
    }
    [ingest, *_] = await launch(["ingest", "router", "outbound"], env)
    topics = isolation.topics
    async with (
        collect(stack.broker.bootstrap_servers, topics.inbound, topics.routed) as seen,
        async_playwright() as playwright,
    ):
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=chromium,
            headless=True,
            args=ARGS,
            viewport={"width": 1100, "height": 720},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            await page.goto(f"{ingest.url}/chat/demo")
            await expect(page.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
            await page.get_by_text("Your name and email").click()
            await page.get_by_placeholder("Name").fill("Ada Lovelace")
            await page.get_by_placeholder("Email").fill("ada@example.org")
            await page.get_by_placeholder("Type a message").fill("I was charged twice for my order")
            await page.get_by_role("button", name="Send").click()
            mine = page.locator(".msg.me")
            await expect(mine).to_contain_text("Sent \u2713", timeout=UI_TIMEOUT_MS)

            await wait_until(lambda: bool(seen.of_type(ConversationRouted)), message="routing")
            [inbound] = [e.data for e in seen.events if isinstance(e.data, MessageReceived)]
            [routed] = [e.data for e in seen.events if isinstance(e.data, ConversationRouted)]
            visitor = await page.evaluate(
                "JSON.parse(localStorage.getItem('switchboard-chat:' + location.origin)).visitorId"
            )
            assert inbound.channel == "chat"
            assert inbound.provider == "widget"
            assert inbound.thread_key == f"chat:{visitor}"
            assert inbound.text == "I was charged twice for my order"
            assert inbound.customer.display_name == "Ada Lovelace"
            assert inbound.customer.email == "ada@example.org"

            # The router's acknowledgement, through outbound's chat sender, with the reference.
            agent = page.locator(".msg.agent")
            await expect(agent.first).to_contain_text(routed.reference, timeout=UI_TIMEOUT_MS)

            reply = "Hi Ada, I'm Sam. I've refunded the second charge; you'll see it in 3-5 days."
            bootstrap = stack.broker.bootstrap_servers
            await send_reply(bootstrap, topics.outbound_commands, visitor, reply, n=1)
            await expect(agent.last).to_contain_text(reply, timeout=UI_TIMEOUT_MS)
            replies = await agent.count()

            # A reload keeps the conversation (localStorage) and fetches only newer replies.
            await page.reload()
            await expect(page.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
            later = "Is there anything else I can help with?"
            await send_reply(bootstrap, topics.outbound_commands, visitor, later, n=2)
            await expect(agent.last).to_contain_text(later, timeout=UI_TIMEOUT_MS)
            assert await agent.count() == replies + 1
            assert await page.locator(".msg.me").count() == 1
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "chat-widget.png")
        finally:
            await context.close()


async def send_reply(bootstrap: str, topic: str, visitor: str, text: str, *, n: int) -> None:
    """An agent's reply as the hub will put it on the commands topic."""
    command = OutboundCommand(
        command_id=event_id("browser-test", visitor, str(n)),
        kind="agent_reply",
        channel="chat",
        conversation_id="from-the-hub",
        reference="",
        recipient=f"chat:{visitor}",
        text=text,
    )
    event = Event(
        id=command.command_id,
        source="/test/hub",
        subject=command.recipient,
        time=system_clock(),
        data=command,
    )
    value, headers = encode(event)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=value, key=command.recipient.encode(), headers=headers
        )
    finally:
        await producer.stop()
