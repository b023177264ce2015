"""An incident in the agent console (Debian's Chromium, driven by Playwright): customers report
one problem through the chat widget, the router opens an incident, the console shows it as a
banner whose count grows with every linked conversation (also in a console opened later), and
"Answer all" sends every linked customer the status update, which reaches their widgets. The
services run as separate processes: ingest with chat, router, SLA, outbound and the hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.browser.conftest import (
    ARGS,
    UI_TIMEOUT_MS,
    StartConsoleStack,
    artifact,
    open_console,
    open_widget,
)

pytestmark = pytest.mark.e2e
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


async def test_an_incident_is_a_banner_whose_answer_reaches_every_linked_customer(
    chromium: Path, console_stack: StartConsoleStack
) -> None:
    stack = await console_stack("incident", CONFIG)
    console_url = stack.console_url(stack.tokens.issue("ada", [QUEUE]))
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
                visitors.append(await report(browser, stack.widget_url))
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
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    return await open_console(await context.new_page(), url)


async def report(browser: Browser, widget_url: str) -> Page:
    """One more customer (a browser context of its own) reports the problem in the chat."""
    page = await open_widget(await (await browser.new_context()).new_page(), widget_url)
    await page.get_by_placeholder("Type a message").fill(PROBLEM)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg.agent").first).to_contain_text("SB-", timeout=UI_TIMEOUT_MS)
    return page
