"""The agent console after a reload: the whole conversation (the customer's messages, the
acknowledgement, the agent's reply with its delivery state, the note) comes back from the
hub's transcript, with the issue type, priority and why it was routed; countdowns are
coloured by how soon they end. Real services as separate processes, Debian's Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Page, async_playwright, expect

from libs.contracts.agent_access import CONSOLE_PATH, AgentTokens
from tests.browser.conftest import ARGS, ARTIFACTS, UI_TIMEOUT_MS
from tests.support.harness import Launch

pytestmark = pytest.mark.e2e
CHAT_KEY = "browser-transcript-chat-key-0123456789abcdef"
AGENT_KEY = "browser-transcript-agent-key-0123456789abcdef"
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


@pytest.mark.timeout(300)
async def test_the_console_shows_the_whole_conversation_after_a_reload(
    chromium: Path, service_env: dict[str, str], launch: Launch, tmp_path: Path
) -> None:
    config = tmp_path / "transcript.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **service_env,
        "CHAT_SESSION_KEY": CHAT_KEY,
        "AGENT_TOKEN_KEY": AGENT_KEY,
        "SWITCHBOARD_CONFIG": str(config),
    }
    ingest, *_, hub = await launch(["ingest", "router", "sla", "outbound", "hub"], env)
    token = AgentTokens(AGENT_KEY).issue("ada", [QUEUE])
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=chromium,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 760},
        )
        try:
            console = context.pages[0] if context.pages else await context.new_page()
            await open_console(console, f"{hub.url}{CONSOLE_PATH}#token={token}")
            widget = await context.new_page()
            await widget.goto(f"{ingest.url}/chat/demo")
            await expect(widget.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
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
        finally:
            await context.close()


async def open_console(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)


async def say(widget: Page, text: str) -> None:
    await widget.get_by_placeholder("Type a message").fill(text)
    await widget.get_by_role("button", name="Send").click()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
