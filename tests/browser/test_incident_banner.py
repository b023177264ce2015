"""An incident in the agent console (Debian's Chromium, driven by Playwright): customers report
one problem through the chat widget, the router opens an incident, the console shows it as a
banner whose count grows with every linked conversation (also in a console opened later), and
"Answer all" sends every linked customer the status update, which reaches their widgets. The
services run as separate processes: ingest with chat, router, SLA, outbound and the hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, Page, async_playwright, expect

from libs.contracts.agent_access import CONSOLE_PATH, AgentTokens
from tests.browser.conftest import ARGS, ARTIFACTS, UI_TIMEOUT_MS
from tests.support.harness import Launch

pytestmark = pytest.mark.e2e
CHAT_KEY = "browser-incident-chat-key-0123456789abcdef"
AGENT_KEY = "browser-incident-agent-key-0123456789abcdef"
QUEUE = "payments"
THRESHOLD = 3
PROBLEM = "I was charged twice for my order"
UPDATE = "We're fixing the payment problem now ({{ reference }}); no need to write again."

# Plain-time clocks and a window long enough for a slow machine: three customers with one
# problem open the incident, whatever the time of day.
CONFIG = {
    "version": 1,
    "queues": {QUEUE: {"description": "Payments"}},
    "sla_policies": {"chat-fast": {"first_response": {"within": "10m", "business_hours": False}}},
    "issue_types": {"payment_issue": {"impact": "deep", "phrases": ["charged twice"]}},
    "rules": [
        {
            "name": "everything",
            "then": {"queue": QUEUE, "priority": 1, "sla_policy": "chat-fast", "auto_reply": "ack"},
        }
    ],
    "incidents": {"window": "10m", "threshold": THRESHOLD, "cooldown": "1h"},
    "templates": {
        "ack": {"chat": {"en": "Thanks! Your reference is {{ reference }}."}},
        "status-update": {"chat": {"en": UPDATE}},
    },
}


@pytest.mark.timeout(300)
async def test_an_incident_is_a_banner_whose_answer_reaches_every_linked_customer(
    chromium: Path,
    service_env: dict[str, str],
    launch: Launch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "incidents.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **service_env,
        "CHAT_SESSION_KEY": CHAT_KEY,
        "AGENT_TOKEN_KEY": AGENT_KEY,
        "SWITCHBOARD_CONFIG": str(config),
    }
    ingest, *_, hub = await launch(["ingest", "router", "sla", "outbound", "hub"], env)
    console_url = f"{hub.url}{CONSOLE_PATH}#token=" + AgentTokens(AGENT_KEY).issue("ada", [QUEUE])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=ARGS
        )
        try:
            console = await console_page(browser, console_url)
            banner = console.locator(".incident")
            count = banner.locator(".count")
            visitors = []
            for n in range(1, THRESHOLD + 3):
                visitors.append(await report(browser, f"{ingest.url}/chat/demo"))
                if n < THRESHOLD:
                    continue
                # From the customer that opened it on, each report is linked: the count grows.
                await expect(count).to_have_text(str(n - THRESHOLD + 1), timeout=UI_TIMEOUT_MS)
            await expect(banner).to_have_count(1)
            await expect(banner).to_contain_text(f"payment_issue \u00b7 {THRESHOLD} customers")
            linked = banner.locator(".linked li")
            await expect(linked).to_have_count(3)
            await expect(linked.first).to_contain_text("SB-")

            # A console opened after the incident still sees it: it is state, not only an event.
            later = await console_page(browser, console_url)
            await expect(later.locator(".incident .count")).to_have_text("3", timeout=UI_TIMEOUT_MS)
            await console.screenshot(path=artifact("incident-banner.png"))

            await banner.get_by_role("button", name="Answer all").click()
            await expect(banner.locator(".answered")).to_have_text(
                "Status update sent to 3 customers", timeout=UI_TIMEOUT_MS
            )
            update = UPDATE.split(" (")[0]
            for visitor in visitors[THRESHOLD - 1 :]:
                await expect(visitor.locator(".msg.agent").last).to_contain_text(
                    update, timeout=UI_TIMEOUT_MS
                )
            for visitor in visitors[: THRESHOLD - 1]:  # reported before the incident opened
                await expect(visitor.locator(".msg.agent")).not_to_contain_text([update])
            # Clicked again: nobody gets it twice.
            await banner.get_by_role("button", name="Answer all").click()
            await expect(banner.locator(".answered")).to_have_text(
                "Status update sent to 0 customers (3 had it already)", timeout=UI_TIMEOUT_MS
            )
            await console.screenshot(path=artifact("incident-answered.png"))
            await visitors[-1].screenshot(path=artifact("incident-widget-update.png"))
        finally:
            await browser.close()


async def console_page(browser: Browser, url: str) -> Page:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 760})).new_page()
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
    return page


async def report(browser: Browser, widget_url: str) -> Page:
    """One more customer (a browser context of its own) reports the problem in the chat."""
    page = await (await browser.new_context()).new_page()
    await page.goto(widget_url)
    await expect(page.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await page.get_by_placeholder("Type a message").fill(PROBLEM)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg.agent").first).to_contain_text("SB-", timeout=UI_TIMEOUT_MS)
    return page


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
