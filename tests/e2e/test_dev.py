"""``switchboard dev`` (what ``make run`` runs) supervises its services, as a user sees it on
the terminal: a service that dies is reported with its exit code and log and comes back; a
start-up failure names its cause."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tooling.devstack import free_port

pytestmark = pytest.mark.e2e
UP_TIMEOUT = 90.0


class Terminal:
    """What a ``switchboard dev`` process printed so far, read line by line as it prints."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.lines: list[str] = []

    async def until(self, pattern: str, timeout: float = UP_TIMEOUT) -> re.Match[str]:
        """The first line (already printed or still to come) matching ``pattern``."""
        try:
            async with asyncio.timeout(timeout):
                return await self._until(pattern)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} after {timeout}s:\n{self.text()}") from None

    async def _until(self, pattern: str) -> re.Match[str]:
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if found := re.search(pattern, line):
                    return found
            seen = len(self.lines)
            assert self.process.stdout is not None
            raw = await self.process.stdout.readline()
            if not raw:
                raise AssertionError(f"exited before {pattern!r}:\n" + self.text())
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines[-60:])


async def dev(*arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tooling.cli", "dev", *arguments),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )


@pytest.fixture
async def terminal() -> AsyncIterator[Terminal]:
    port = free_port()
    process = await dev("--port", str(port))
    shown = Terminal(process, port)
    try:
        yield shown
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.communicate(), timeout=60)


async def test_a_killed_service_is_reported_and_comes_back(terminal: Terminal) -> None:
    await terminal.until(r"dev stack is up")
    router = await terminal.until(r"^\s+router\s+(http://\S+)\s+\(pid (\d+)")
    url, pid = router.group(1), int(router.group(2))
    os.kill(pid, signal.SIGKILL)
    await terminal.until(r"router exited with -9", timeout=30)
    await terminal.until(r"restarting router in", timeout=30)
    back = await terminal.until(r"router is back \(pid (\d+)\)")
    assert int(back.group(1)) != pid
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        assert response.status == 200  # the same address as before

    # and it works: an SMS sent with `switchboard dev sms` is routed and acknowledged, the live
    # lines naming the conversation by its reference and the acknowledgement by its recipient
    port = terminal.port
    sms = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tooling.cli", "dev", "--port", str(port), "sms", "charged twice"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    said, _ = await asyncio.wait_for(sms.communicate(), timeout=30)
    assert sms.returncode == 0, said.decode()
    routed = await terminal.until(r"^routed\s+(SB-\S+) sms")
    await terminal.until(rf"^outbound\s+{routed.group(1)} sms [a-z ]+ to \+14155550100: sent")


async def test_a_taken_port_is_reported_with_its_cause() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await dev("--port", str(port))
        output, _ = await asyncio.wait_for(process.communicate(), timeout=UP_TIMEOUT)
    text = output.decode(errors="replace")
    assert process.returncode == 1, text
    assert "ingest exited with 1" in text
    assert "address already in use" in text.lower(), text  # the cause, from ingest's log
    assert "Traceback" not in text.split("ingest exited with 1")[0]  # no traceback of ours
