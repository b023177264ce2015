"""The agent console after a reload: the whole conversation (the customer's messages, the
acknowledgement, the agent's reply with its delivery state, the note) comes back from the
hub's transcript, with the issue type, priority and why it was routed; countdowns are
coloured by how soon they end. Real services as separate processes, Debian's Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import (
    UI_TIMEOUT_MS,
    StartConsoleStack,
    artifact,
    browser_context,
    open_console,
    open_widget,
)

pytestmark = pytest.mark.e2e
QUEUE = "chat-desk"
ACK = "Thanks! Your reference is {{ reference }}. An agent will be with you {{ promise }}."

# Plain-time clocks (no business hours), so the test means the same at any hour of the day.
CONFIG = {
    "version": 1,
    "queues": {QUEUE: {"description": "Chat"}},
    "sla_policies": {
        "chat-fast": {"first_response": {"within": "10m", "business_hours": False}},
        "relaxed": {"first_response": {"within": "3h", "business_hours": False}},
    },
    "issue_types": {"address_change": {"impact": "shallow", "phrases": ["change my address"]}},
    "rules": [
        {
            "name": "address",
            "when": {"issue_type": ["address_change"]},
            "then": {"queue": QUEUE, "priority": 3, "sla_policy": "relaxed", "auto_reply": "ack"},
        },
        {
            "name": "chat",
            "then": {"queue": QUEUE, "priority": 1, "sla_policy": "chat-fast", "auto_reply": "ack"},
        },
    ],
    "templates": {"ack": {"chat": {"en": ACK}}},
}


async def test_the_console_shows_the_whole_conversation_after_a_reload(
    chromium: Path, console_stack: StartConsoleStack, tmp_path: Path
) -> None:
    stack = await console_stack("transcript", CONFIG)
    token = stack.tokens.issue("ada", [QUEUE])
    async with browser_context(chromium, tmp_path / "profile") as context:
        console = context.pages[0] if context.pages else await context.new_page()
        await open_console(console, stack.console_url(token))
        widget = await open_widget(await context.new_page(), stack.widget_url)
        await say(widget, "I was charged twice for my order")
        await expect(widget.locator(".msg").last).to_contain_text(
            "Your reference is", timeout=UI_TIMEOUT_MS
        )

        # Ten minutes to go is "soon": amber, not the colour of the last minutes.
        conversations = console.locator("li.conv")
        await expect(conversations).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(conversations.locator(".sla")).to_have_class("sla soon")
        await conversations.click()
        await console.get_by_role("button", name="Claim").click()
        reply = "Sorry about that, the second charge is refunded today."
        await console.get_by_label("Reply").fill(reply)
        await console.get_by_role("button", name="Send reply").click()
        await expect(widget.locator(".msg.agent").last).to_contain_text(
            reply, timeout=UI_TIMEOUT_MS
        )
        await console.get_by_label("Reply").fill("Refund ticket R-77")
        await console.get_by_role("button", name="Add note").click()
        await say(widget, "Thank you! Also, when will it show on my card?")
        await expect(console.locator(".msg.customer")).to_have_count(2, timeout=UI_TIMEOUT_MS)

        # A reload: nothing but the hub's transcript brings the conversation back.
        await console.reload()
        await expect(console.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
        await conversations.click()
        customer = console.locator(".msg.customer")
        await expect(customer).to_have_count(2, timeout=UI_TIMEOUT_MS)
        await expect(customer.first).to_contain_text("I was charged twice for my order")
        await expect(customer.first).to_contain_text("routed to chat-desk by rule chat")
        await expect(customer.last).to_contain_text("when will it show on my card?")
        acknowledgement = console.locator(".msg.auto")
        await expect(acknowledgement).to_contain_text(re.compile(r"Your reference is SB-"))
        await expect(acknowledgement).to_contain_text("Acknowledgement")
        await expect(acknowledgement).to_contain_text("sent")
        answer = console.locator(".msg.agent")
        await expect(answer).to_have_count(1)
        await expect(answer).to_contain_text(reply)
        await expect(answer).to_contain_text("ada")
        await expect(answer).to_contain_text("sent", timeout=UI_TIMEOUT_MS)
        await expect(console.locator(".msg.note")).to_contain_text("Refund ticket R-77")
        await expect(console.locator(".msg.info")).to_contain_text(["ada claimed it"])
        routing = console.locator(".detail-head .routing")
        await expect(routing).to_contain_text("priority 1")
        await expect(routing).to_contain_text("rule chat")
        await expect(routing).to_contain_text("issue unknown")
        await console.screenshot(path=artifact("transcript-after-reload.png"))

        # Three hours to go is "later": the calm colour.
        await widget.evaluate("localStorage.clear()")
        await widget.reload()
        await expect(widget.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
        await say(widget, "I need to change my address")
        relaxed = conversations.filter(has_text="change my address")
        await expect(relaxed.locator(".sla")).to_have_class("sla later", timeout=UI_TIMEOUT_MS)
        await relaxed.click()
        await expect(console.locator(".detail-head .routing")).to_contain_text(
            "issue address_change (100% sure)", timeout=UI_TIMEOUT_MS
        )
        await console.screenshot(path=artifact("transcript-urgency.png"))


async def say(widget: Page, text: str) -> None:
    await widget.get_by_placeholder("Type a message").fill(text)
    await widget.get_by_role("button", name="Send").click()
