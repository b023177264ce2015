"""The agent console after a reload: the whole conversation (the customer's messages, the
acknowledgement, the agent's reply with its delivery state, the note) comes back from the
hub's transcript, with the issue type, priority and why it was routed; countdowns are
coloured by how soon they end. Real services as separate processes, Debian's Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from tests.browser.conftest import (
    UI_TIMEOUT_MS,
    StartConsoleStack,
    artifact,
    browser_context,
    open_console,
    open_widget,
)
from tests.support.kafka import wait_until

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
        wire = EventsAheadOfAck()
        await console.route_web_socket(re.compile(r"/ws"), wire.route)
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
        # The reply's event and its receipt reach the console ahead of its ack (the hub
        # acknowledges after Kafka took the action; events come from its fan-out), and the
        # transcript is slow to answer: the reply still shows once, then as sent.
        reply = "Sorry about that, the second charge is refunded today."
        wire.holding_transcripts = True
        await console.get_by_label("Reply").fill(reply)
        await console.get_by_role("button", name="Send reply").click()
        await expect(widget.locator(".msg.agent").last).to_contain_text(
            reply, timeout=UI_TIMEOUT_MS
        )
        await wait_until(
            lambda: wire.acks_after_events == 1 and wire.transcripts_held > 0,
            message="the reply's ack after its events, a transcript page held",
        )
        live = console.locator(".msg.agent")
        await expect(live).to_contain_text("sent", timeout=UI_TIMEOUT_MS)
        await expect(live).to_have_count(1)
        wire.release_transcripts()
        await expect(live).to_have_count(1)
        await expect(live).to_contain_text("sent")
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


class EventsAheadOfAck:
    """Between the console and the hub: holds each reply's ack until the reply's own event and
    its receipt have passed, and while ``holding_transcripts``, the transcript pages."""

    def __init__(self) -> None:
        self.holding_transcripts = False
        self.acks_after_events = 0
        self._replies: set[str] = set()
        self._passed: set[str] = set()  # action ids of action events, command ids of receipts
        self._acks: list[tuple[WebSocketRoute, dict[str, Any], str]] = []
        self._transcripts: list[tuple[WebSocketRoute, str]] = []

    @property
    def transcripts_held(self) -> int:
        return len(self._transcripts)

    def route(self, page: WebSocketRoute) -> None:
        hub = page.connect_to_server()
        page.on_message(lambda message: self._to_hub(hub, message))
        hub.on_message(lambda message: self._to_page(page, message))

    def release_transcripts(self) -> None:
        self.holding_transcripts = False
        for page, message in self._transcripts:
            page.send(message)
        self._transcripts.clear()

    def _to_hub(self, hub: WebSocketRoute, message: str | bytes) -> None:
        frame = json.loads(message)
        if frame.get("type") == "action" and frame.get("kind") == "reply":
            self._replies.add(frame["id"])
        hub.send(message)

    def _to_page(self, page: WebSocketRoute, message: str | bytes) -> None:
        frame: dict[str, Any] = json.loads(message)
        kind = frame.get("type")
        if kind == "ack" and frame.get("id") in self._replies:
            self._acks.append((page, frame, str(message)))
        elif kind == "transcript" and self.holding_transcripts:
            self._transcripts.append((page, str(message)))
        else:
            page.send(message)
            if kind == "event" and frame.get("kind") == "action":
                self._passed.add(frame["data"]["action_id"])
            elif kind == "event" and frame.get("kind") == "receipt":
                self._passed.add(frame["data"]["command_id"])
        for held in [held for held in self._acks if self._due(held[1])]:
            self._acks.remove(held)
            held[0].send(held[2])
            self.acks_after_events += 1

    def _due(self, ack: dict[str, Any]) -> bool:
        return {ack["action_id"], ack["command_id"]} <= self._passed
