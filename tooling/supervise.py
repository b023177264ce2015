"""Keeping ``switchboard dev``'s services running, as a process supervisor would.

A service that dies is reported on the terminal at once (its name, exit code and the last lines
of its log) and started again on the same port, so the addresses printed at start-up stay
right; restarts back off (:data:`RESTART`) while it keeps dying, and start afresh once it has
stayed up for :data:`STABLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from libs.common.backoff import Backoff
from tooling.devstack import DevStackError, ServiceProcess

RESTART = Backoff(base=1.0, cap=30.0)
STABLE_SECONDS = 60.0


def exit_description(code: int) -> str:
    """``1``, or ``-9 (SIGKILL)`` for a process a signal ended."""
    if code >= 0:
        return str(code)
    try:
        return f"{code} ({signal.Signals(-code).name})"
    except ValueError:
        return str(code)


async def supervise(
    process: ServiceProcess, say: Callable[[str], None], backoff: Backoff = RESTART
) -> None:
    """Restart ``process`` whenever it exits, until cancelled (cancel before stopping it)."""
    loop = asyncio.get_running_loop()
    failures = 0
    started = loop.time()
    while True:
        code = await asyncio.to_thread(process.wait)
        failures = 1 if loop.time() - started >= STABLE_SECONDS else failures + 1
        say(f"!! {process.name} exited with {exit_description(code)}{process.last_words()}")
        delay = backoff.delay(failures)
        say(f"   restarting {process.name} in {delay:.1f}s")
        await asyncio.sleep(delay)
        started = loop.time()
        process.start()
        try:
            await process.wait_ready()
        except DevStackError:  # exited again, or hangs (killed): the next round reports it
            process.kill()
            continue
        say(f"   {process.name} is back (pid {process.pid})")
