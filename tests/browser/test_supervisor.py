"""A supervisor's page of the console in a real browser (Debian's Chromium, driven by
Playwright): the queue's figures change live as a conversation waits, an agent (another console
page) answers it, and another conversation breaches. The services run as separate processes:
ingest with chat, router, SLA, outbound and the hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from playwright.async_api import BrowserContext, Locator, Page, async_playwright, expect

from libs.contracts.agent_access import CONSOLE_PATH, AgentTokens
from tests.browser.conftest import ARGS, ARTIFACTS, UI_TIMEOUT_MS
from tests.support.harness import Launch
from tooling.devstack import ServiceProcess

pytestmark = pytest.mark.e2e
CHAT_KEY = "browser-supervisor-chat-key-0123456789abcdef"
AGENT_KEY = "browser-supervisor-agent-key-0123456789abcdef"
QUEUE = "chat-desk"

# Plain-time clocks (no business hours), so the test means the same at any hour of the day.
CONFIG = {
    "version": 1,
    "queues": {QUEUE: {"description": "Chat"}},
    "sla_policies": {
        "chat-fast": {"first_response": {"within": "10m", "business_hours": False}},
        "blink": {"first_response": {"within": "2s", "business_hours": False}},
    },
    "issue_types": {"lost_parcel": {"impact": "deep", "phrases": ["parcel never arrived"]}},
    "rules": [
        {
            "name": "lost-parcel",
            "when": {"issue_type": ["lost_parcel"]},
            "then": {"queue": QUEUE, "priority": 1, "sla_policy": "blink"},
        },
        {"name": "chat", "then": {"queue": QUEUE, "priority": 1, "sla_policy": "chat-fast"}},
    ],
}
NO_VALUE = "\u2013"
RESPONSE_TIMES = re.compile(r"^chat \d+:\d\d / \d+:\d\d$")


@pytest.mark.timeout(300)
async def test_the_supervisors_figures_follow_answers_and_breaches(
    chromium: Path, service_env: dict[str, str], launch: Launch, tmp_path: Path
) -> None:
    config = tmp_path / "supervisor.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **service_env,
        "CHAT_SESSION_KEY": CHAT_KEY,
        "AGENT_TOKEN_KEY": AGENT_KEY,
        "SWITCHBOARD_CONFIG": str(config),
    }
    ingest, *_, hub = await launch(["ingest", "router", "sla", "outbound", "hub"], env)
    tokens = AgentTokens(AGENT_KEY)
    boss = tokens.issue("grace", [QUEUE], role="supervisor")
    agent = tokens.issue("ada", [QUEUE])
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=chromium,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 800},
        )
        try:
            supervisor = await open_console(context, hub, boss)
            row = supervisor.locator(f'#figures tr[data-queue="{QUEUE}"]')
            await expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
            await expect(figure(row, "waiting")).to_have_text("0")
            await expect(figure(row, "first-response")).to_have_text(f"{NO_VALUE} (0/0)")

            # An agent's console shows no figures: the hub answers them to supervisors only.
            console = await open_console(context, hub, agent)
            await expect(console.locator("#figures")).to_be_hidden()

            widget = await context.new_page()
            await chat(widget, ingest, "Where is my refund?")
            await expect(figure(row, "waiting")).to_have_text("1", timeout=UI_TIMEOUT_MS)
            await expect(figure(row, "oldest-wait")).to_have_text(re.compile(r"^\d+:\d\d$"))
            await supervisor.screenshot(path=artifact("supervisor-waiting.png"))

            # The agent answers: nothing waits, and the first response is met in a measured time.
            conversation = console.locator("li.conv")
            await conversation.click()
            await console.get_by_role("button", name="Claim").click()
            await console.get_by_label("Reply").fill("Your refund left us today.")
            await console.get_by_role("button", name="Send reply").click()
            await expect(figure(row, "first-response")).to_have_text(
                "100% (1/1)", timeout=UI_TIMEOUT_MS
            )
            await expect(figure(row, "first-response-times")).to_have_text(RESPONSE_TIMES)
            await expect(figure(row, "waiting")).to_have_text("0")
            await expect(figure(row, "breached")).to_have_text("0")

            # Another visitor on a 2 s clock: it breaches, and the day's attainment drops.
            await widget.evaluate("localStorage.clear()")
            await widget.reload()
            await chat(widget, ingest, "My parcel never arrived")
            await expect(figure(row, "breached")).to_have_text("1", timeout=UI_TIMEOUT_MS)
            await expect(figure(row, "first-response")).to_have_text("50% (1/2)")
            await expect(figure(row, "waiting")).to_have_text("1")
            await supervisor.screenshot(path=artifact("supervisor-breached.png"))
        finally:
            await context.close()


async def open_console(context: BrowserContext, hub: ServiceProcess, token: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{hub.url}{CONSOLE_PATH}#token={token}")
    await expect(page.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
    return page


async def chat(widget: Page, ingest: ServiceProcess, text: str) -> None:
    if not widget.url.startswith(ingest.url):
        await widget.goto(f"{ingest.url}/chat/demo")
    await expect(widget.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await widget.get_by_placeholder("Type a message").fill(text)
    await widget.get_by_role("button", name="Send").click()


def figure(row: Locator, name: str) -> Locator:
    return row.locator(f'td[data-figure="{name}"]')


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
