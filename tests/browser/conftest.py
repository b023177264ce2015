"""What the browser tests share: Debian's Chromium (installed when missing and root), its
headless flags, where screenshots go, and the console's services as separate processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from libs.contracts.agent_access import CONSOLE_PATH, AgentTokens
from tests.support.harness import Launch
from tooling.devstack import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed by scripts/system-deps.sh when missing and we are root."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip("/usr/bin/chromium is missing and cannot be installed here (not root)")
        subprocess.run(["sh", str(ROOT / "scripts" / "system-deps.sh")], check=True)
    assert CHROMIUM.exists(), "scripts/system-deps.sh did not install /usr/bin/chromium"
    return CHROMIUM


def artifact(name: str) -> Path:
    """Where a screenshot goes (CI keeps the folder)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@dataclass(frozen=True)
class ConsoleStack:
    """Ingest with chat, router, SLA, outbound and the hub, each its own process."""

    ingest: ServiceProcess
    hub: ServiceProcess
    tokens: AgentTokens

    @property
    def widget_url(self) -> str:
        return f"{self.ingest.url}/chat/demo"

    def console_url(self, token: str) -> str:
        """The console as `switchboard dev` prints it: the token in the URL fragment."""
        return f"{self.hub.url}{CONSOLE_PATH}#token={token}"


StartConsoleStack = Callable[[str, dict[str, Any]], Awaitable[ConsoleStack]]


@pytest.fixture
def console_stack(service_env: dict[str, str], launch: Launch, tmp_path: Path) -> StartConsoleStack:
    """Starts the console's services on a routing config; keys named after the test."""

    async def start(name: str, config: dict[str, Any]) -> ConsoleStack:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        agent_key = f"browser-{name}-agent-key-0123456789abcdef"
        env = {
            **service_env,
            "CHAT_SESSION_KEY": f"browser-{name}-chat-key-0123456789abcdef",
            "AGENT_TOKEN_KEY": agent_key,
            "SWITCHBOARD_CONFIG": str(path),
        }
        ingest, *_, hub = await launch(["ingest", "router", "sla", "outbound", "hub"], env)
        return ConsoleStack(ingest, hub, AgentTokens(agent_key))

    return start


@asynccontextmanager
async def browser_context(
    chromium: Path, profile: Path, width: int = 1280, height: int = 760
) -> AsyncIterator[BrowserContext]:
    """One persistent Chromium context (its pages share storage, like tabs), closed after."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            await context.close()


async def open_console(page: Page, url: str) -> Page:
    """The console at ``url``, once it says it is online."""
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("Online", timeout=UI_TIMEOUT_MS)
    return page


async def open_widget(page: Page, url: str) -> Page:
    """The chat widget at ``url``, once it says it is online."""
    await page.goto(url)
    await expect(page.get_by_text("Online")).to_be_visible(timeout=UI_TIMEOUT_MS)
    return page
