"""A supervisor's page of the console in a real browser (Debian's Chromium, driven by
Playwright): the queue's figures change live as a conversation waits, an agent (another console
page) answers it, and another conversation breaches, all pushed by the hub: the page asks for
figures once, when its socket opens, and never again. The services run as separate processes:
ingest with chat, router, SLA, outbound and the hub."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, WebSocket, expect

from libs.common.clock import system_clock
from tests.browser.conftest import (
    UI_TIMEOUT_MS,
    ConsoleStack,
    StartConsoleStack,
    artifact,
    browser_context,
    open_console,
)

pytestmark = pytest.mark.e2e
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
DAY_SEQUENCE = timedelta(minutes=2)
"""More than the day's figures below take to change (about 15 s; each step may take up to
``UI_TIMEOUT_MS``, but never does on a passing run)."""


async def test_the_supervisors_figures_follow_answers_and_breaches(
    chromium: Path, console_stack: StartConsoleStack, tmp_path: Path
) -> None:
    stack = await console_stack("supervisor", CONFIG)
    boss = stack.tokens.issue("grace", [QUEUE], role="supervisor")
    agent = stack.tokens.issue("ada", [QUEUE])
    async with browser_context(chromium, tmp_path / "profile", 1400, 800) as context:
        page = await context.new_page()
        asked, pushed = figure_frames(page)
        supervisor = await open_console(page, stack.console_url(boss))
        row = supervisor.locator(f'#figures tr[data-queue="{QUEUE}"]')
        await expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(figure(row, "waiting")).to_have_text("0")
        await expect(figure(row, "first-response")).to_have_text(f"{NO_VALUE} (0/0)")

        # An agent's console shows no figures: the hub answers them to supervisors only.
        console = await open_console(await context.new_page(), stack.console_url(agent))
        await expect(console.locator("#figures")).to_be_hidden()

        await clear_of_midnight()
        widget = await context.new_page()
        await chat(widget, stack, "Where is my refund?")
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
        await chat(widget, stack, "My parcel never arrived")
        await expect(figure(row, "breached")).to_have_text("1", timeout=UI_TIMEOUT_MS)
        await expect(figure(row, "first-response")).to_have_text("50% (1/2)")
        await expect(figure(row, "waiting")).to_have_text("1")
        await supervisor.screenshot(path=artifact("supervisor-breached.png"))

    # Every change above came in frames the hub pushed; the page asked once, on opening.
    assert len(asked) == 1, asked
    assert pushed, "no figures were pushed"


async def clear_of_midnight() -> None:
    """Let the day's figures start at least :data:`DAY_SEQUENCE` before the hub's day (UTC)
    turns. The services run on the real clock, so an answer counted on one day and read on the
    next is not in "today" (a run reaching this in the last two minutes of a day waits for the
    next one: there is nothing in the system to wait on, only the calendar)."""
    now = system_clock()
    left = datetime.combine(now.date() + timedelta(days=1), time(), UTC) - now
    if left < DAY_SEQUENCE:
        await asyncio.sleep(left.total_seconds() + 1)


def figure_frames(page: Page) -> tuple[list[str], list[str]]:
    """The ``figures`` frames the page's sockets send (requests) and receive without an id
    (pushes), collected as they pass."""
    asked: list[str] = []
    pushed: list[str] = []

    def frames(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: note(payload, asked))
        socket.on("framereceived", lambda payload: note(payload, pushed, push=True))

    def note(payload: str | bytes, into: list[str], push: bool = False) -> None:
        frame = json.loads(payload)
        if frame.get("type") == "figures" and (frame.get("id") is None) == push:
            into.append(str(payload))

    page.on("websocket", frames)
    return asked, pushed


async def chat(widget: Page, stack: ConsoleStack, text: str) -> None:
    if not widget.url.startswith(stack.ingest.url):
        await widget.goto(stack.widget_url)
    await expect(widget.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await widget.get_by_placeholder("Type a message").fill(text)
    await widget.get_by_role("button", name="Send").click()


def figure(row: Locator, name: str) -> Locator:
    return row.locator(f'td[data-figure="{name}"]')
