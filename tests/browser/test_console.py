"""The agent console in a real browser (Debian's Chromium, driven by Playwright) next to the chat
widget, against the services as separate processes: ingest with chat, router, SLA, outbound
and the hub."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket, expect

from libs.contracts.agent_access import CONSOLE_PATH
from tests.browser.conftest import (
    UI_TIMEOUT_MS,
    StartConsoleStack,
    artifact,
    browser_context,
    open_console,
    open_widget,
)
from tests.support.kafka import wait_until
from tooling.devstack import ServiceProcess

pytestmark = pytest.mark.e2e
CHAT_QUEUE = "chat-desk"
OTHER_QUEUE = "sms-desk"
COUNTDOWN = re.compile(r"^\d+:\d\d$")

# Plain-time clocks (no business hours), so the test means the same at any hour of the day.
CONFIG = {
    "version": 1,
    "queues": {CHAT_QUEUE: {"description": "Chat"}, OTHER_QUEUE: {"description": "SMS"}},
    "sla_policies": {
        "chat-fast": {"first_response": {"within": "10m", "business_hours": False}},
        "blink": {"first_response": {"within": "2s", "business_hours": False}},
    },
    "issue_types": {
        "lost_parcel": {"impact": "deep", "phrases": ["parcel never arrived"]},
        "wrong_item": {"impact": "shallow", "phrases": ["wrong item"]},
    },
    "rules": [
        {
            "name": "lost-parcel",
            "when": {"issue_type": ["lost_parcel"]},
            "then": {"queue": CHAT_QUEUE, "priority": 1, "sla_policy": "blink"},
        },
        {
            "name": "chat",
            "when": {"channel": ["chat"]},
            "then": {"queue": CHAT_QUEUE, "priority": 1, "sla_policy": "chat-fast"},
        },
        {"name": "everything-else", "then": {"queue": OTHER_QUEUE, "priority": 4}},
    ],
}


async def test_a_visitors_chat_reaches_the_console_and_the_agents_reply_reaches_the_widget(
    chromium: Path, console_stack: StartConsoleStack, tmp_path: Path
) -> None:
    stack = await console_stack("console", CONFIG)
    hub = stack.hub
    token = stack.tokens.issue("ada", [CHAT_QUEUE, OTHER_QUEUE])
    async with browser_context(chromium, tmp_path / "profile") as context:
        console = context.pages[0] if context.pages else await context.new_page()
        sent: list[dict[str, Any]] = []
        received: list[dict[str, Any]] = []
        console.on("websocket", lambda ws: record(ws, sent, received))
        await open_console(console, stack.console_url(token))
        await expect(console.locator("#agent")).to_have_text("ada")
        await expect(console.locator("nav h2")).to_have_count(2)
        await connect_with_the_form(await context.new_page(), hub, token)
        widget = await open_widget(await context.new_page(), stack.widget_url)
        await widget.get_by_text("Your name and email").click()
        # Markup in customer text must show as text in the console, never run as markup.
        await widget.get_by_placeholder("Name").fill("Ada <b>Lovelace</b>")
        await widget.get_by_placeholder("Email").fill("ada@example.org")
        question = "I was charged twice for my order <img src=x>"
        await widget.get_by_placeholder("Type a message").fill(question)
        await widget.get_by_role("button", name="Send").click()

        # The conversation appears in its queue, with its customer, text and a countdown.
        conversation = console.locator(f'ul[data-queue="{CHAT_QUEUE}"] li.conv')
        await expect(conversation).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(conversation).to_contain_text(question)
        await expect(conversation).to_contain_text("chat \u00b7 Ada <b>Lovelace</b>")
        await expect(conversation.locator(".ref")).to_have_text(re.compile(r"^SB-"))
        await expect(console.locator(f'ul[data-queue="{OTHER_QUEUE}"] li')).to_have_count(0)
        badge = conversation.locator(".sla")
        await expect(badge).to_have_text(COUNTDOWN, timeout=UI_TIMEOUT_MS)
        shown = await badge.text_content()
        await expect(badge).not_to_have_text(shown or "", timeout=UI_TIMEOUT_MS)  # it ticks
        await expect(badge).to_have_text(COUNTDOWN)
        assert await console.locator("img").count() == 0

        await conversation.click()
        await expect(console.locator(".msg.customer")).to_have_text(re.compile(re.escape(question)))
        # What the visitor typed is an unverified hint, never a customer's profile: no name,
        # tier or history of whoever really owns that address.
        view = console.locator(".customer-view")
        await expect(view.locator(".unverified")).to_have_text(
            "Unverified: Ada <b>Lovelace</b> \u00b7 ada@example.org"
            " (given by the sender, not proven)",
            timeout=UI_TIMEOUT_MS,
        )
        await expect(view.locator(".profile")).to_have_count(0)
        await expect(view).to_contain_text("No known identity for this customer.")
        await console.get_by_role("button", name="Claim").click()
        await expect(console.locator(".detail-head")).to_contain_text("assigned to ada")
        await expect(conversation).to_contain_text("\u2192 ada")
        await console.screenshot(path=artifact("console-countdown.png"))
        await widget.screenshot(path=artifact("console-widget-question.png"))

        # The hub restarts (a deploy): the console reconnects and resumes after its last ids.
        hub.stop()
        await expect(console.locator("#status")).not_to_have_text("Online")
        hub.start()
        await hub.wait_ready()
        await expect(console.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
        await wait_until(lambda: len(of_type(sent, "subscribe")) == 2, message="resubscribe")
        first, again = of_type(sent, "subscribe")
        assert first["queues"] == {CHAT_QUEUE: None, OTHER_QUEUE: None}
        assert again["queues"][CHAT_QUEUE] is not None
        await wait_until(
            lambda: (
                {f["queue"] for f in of_type(received, "subscribed")} == {CHAT_QUEUE, OTHER_QUEUE}
            ),
            message="resumed subscriptions",
        )
        await expect(console.locator(".msg.customer")).to_have_count(1)
        await expect(conversation).to_have_count(1)

        reply = "Hi Ada, I'm sorry about that: the second charge is refunded today."
        await console.get_by_label("Reply").fill(reply)
        await console.get_by_role("button", name="Send reply").click()

        # The reply reaches the visitor; the console sees it sent and the clock met.
        await expect(widget.locator(".msg.agent").last).to_contain_text(
            reply, timeout=UI_TIMEOUT_MS
        )
        mine = console.locator(".msg.agent")
        await expect(mine).to_have_count(1)
        await expect(mine).to_contain_text("sent", timeout=UI_TIMEOUT_MS)
        await expect(badge).to_have_text("met", timeout=UI_TIMEOUT_MS)
        await expect(console.locator(".detail-head .sla")).to_have_text("met")
        await console.screenshot(path=artifact("console-replied.png"))
        await widget.screenshot(path=artifact("console-widget-reply.png"))

        # A second visitor, on a 2 s clock: listed first (sooner deadline), then breached.
        await widget.evaluate("localStorage.clear()")
        await widget.reload()
        await expect(widget.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
        await widget.get_by_placeholder("Type a message").fill("My parcel never arrived")
        await widget.get_by_role("button", name="Send").click()
        await expect(conversation).to_have_count(2, timeout=UI_TIMEOUT_MS)
        # Listed first once its clock's deadline is known: the SLA's started event comes after
        # the routed one, by more than playwright's default 5 s on a loaded machine.
        await expect(conversation.first).to_contain_text(
            "My parcel never arrived", timeout=UI_TIMEOUT_MS
        )
        await expect(conversation.first.locator(".sla")).to_have_text(
            "breached", timeout=UI_TIMEOUT_MS
        )
        await expect(conversation.last.locator(".sla")).to_have_text("met")
        await console.screenshot(path=artifact("console-breached.png"))

        await console.get_by_role("button", name="Resolve").click()
        await expect(conversation).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(conversation).to_contain_text("My parcel never arrived")

        # An anonymous visitor has no profile; the agent transfers the conversation.
        await conversation.click()
        await expect(console.locator(".customer-view")).to_have_text(
            "No known identity for this customer.", timeout=UI_TIMEOUT_MS
        )
        # The agent says the router got the issue type wrong: recorded, and shown as the agent's.
        routing = console.locator(".detail-head .routing")
        await expect(routing).to_contain_text("issue lost_parcel (100% sure)")
        await console.get_by_label("Change the issue type to").select_option("wrong_item")
        await console.get_by_role("button", name="Change type").click()
        await expect(routing).to_contain_text(
            "issue wrong_item (set by an agent; routed as lost_parcel)", timeout=UI_TIMEOUT_MS
        )
        await expect(
            console.get_by_text("ada changed the issue type from lost_parcel to wrong_item")
        ).to_be_visible(timeout=UI_TIMEOUT_MS)
        [change] = [f for f in of_type(sent, "action") if f["kind"] == "change_issue_type"]
        assert change["issue_type"] == "wrong_item"
        await console.get_by_label("Transfer to queue").select_option(OTHER_QUEUE)
        await console.get_by_role("button", name="Transfer").click()
        await expect(conversation).to_have_count(0, timeout=UI_TIMEOUT_MS)
        moved = console.locator(f'ul[data-queue="{OTHER_QUEUE}"] li.conv')
        await expect(moved).to_contain_text("My parcel never arrived", timeout=UI_TIMEOUT_MS)
        await console.screenshot(path=artifact("console-transferred.png"))


async def connect_with_the_form(page: Page, hub: ServiceProcess, token: str) -> None:
    """Without a token in the URL the console asks for one (``/agent`` redirects to it)."""
    await page.goto(f"{hub.url}{CONSOLE_PATH.rstrip('/')}")
    await page.get_by_label("Agent token").fill(token)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
    await expect(page.get_by_label("Agent token")).to_be_hidden()
    await page.close()


def record(ws: WebSocket, sent: list[dict[str, Any]], received: list[dict[str, Any]]) -> None:
    """Keep the frames of the console's sockets (every connection, reconnects included)."""
    ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
    ws.on("framereceived", lambda payload: received.append(json.loads(payload)))


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("type") == kind]
