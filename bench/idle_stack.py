"""What the idle dev stack costs: ``switchboard dev`` (broker, Redis, sandboxes, the live feed
and every service) with no traffic, per fetch configuration.

Each configuration starts ``switchboard dev`` with its fetch variables, lets it settle (groups
joined, consumers dozing), then reads the CPU time of every process of the tree over a fixed
window: CPU time, not a sampled percentage, so other load on the machine does not change what a
process is charged (only a little of what it spends). Shares are of one core.

    python -m bench.idle_stack [--seconds 30] [--settle 20] [--only nudged]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any

import psutil

from bench.harness import cpu_seconds, report
from tooling.devstack import free_port

CONFIGURATIONS: dict[str, dict[str, str]] = {
    "nudged, 10 ms wait (the dev stack's)": {
        "SWITCHBOARD_FETCH_NUDGE": "true",
        "SWITCHBOARD_FETCH_MAX_WAIT_MS": "10",
    },
    "polling, 500 ms wait (aiokafka's default)": {
        "SWITCHBOARD_FETCH_NUDGE": "false",
        "SWITCHBOARD_FETCH_MAX_WAIT_MS": "500",
    },
    "polling, 10 ms wait": {
        "SWITCHBOARD_FETCH_NUDGE": "false",
        "SWITCHBOARD_FETCH_MAX_WAIT_MS": "10",
    },
}
UP_LINE = "Switchboard dev stack is up."
START_TIMEOUT = 240.0


def role(process: psutil.Process) -> str:
    """The part of the stack a process is: a service's name, broker, redis or the CLI."""
    try:
        command = process.cmdline()
    except psutil.Error:
        return "gone"
    for part in command:
        if part.startswith("services."):
            return part.removeprefix("services.")
    if any("redis-server" in part for part in command):
        return "redis"
    if "broker" in command:
        return "broker"
    return "cli (sandboxes, live feed)"


async def measure(environment: dict[str, str], settle: float, seconds: float) -> dict[str, Any]:
    """Start ``switchboard dev`` with ``environment``, and its CPU over ``seconds`` once idle."""
    dev = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tooling.cli", "dev", "--port", str(free_port())),
        env={**os.environ, **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert dev.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            async for raw in dev.stdout:
                if raw.decode().strip() == UP_LINE:
                    break
            else:
                raise RuntimeError(f"switchboard dev exited with {await dev.wait()}")
        drain = asyncio.create_task(dev.stdout.read())  # keep its pipe from filling
        await asyncio.sleep(settle)
        root = psutil.Process(dev.pid)
        processes = [root, *root.children(recursive=True)]
        started = time.monotonic()
        before = {p.pid: cpu_seconds(p) for p in processes}
        await asyncio.sleep(seconds)
        wall = time.monotonic() - started
        shares: dict[str, float] = {}
        for p in processes:
            share = (cpu_seconds(p) - before[p.pid]) / wall
            shares[role(p)] = round(shares.get(role(p), 0.0) + share, 4)
        drain.cancel()
        return {"cpu_share": shares, "total": round(sum(shares.values()), 4)}
    finally:
        if dev.returncode is None:
            dev.send_signal(signal.SIGINT)
            await dev.wait()


async def run(names: list[str], settle: float, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"settle_seconds": settle, "window_seconds": seconds}
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        results[name] = {"environment": CONFIGURATIONS[name]} | await measure(
            CONFIGURATIONS[name], settle, seconds
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--settle", type=float, default=20.0, help="idle time before it")
    parser.add_argument(
        "--only", help="configurations whose name contains this (default: all)", default=""
    )
    args = parser.parse_args()
    names = [name for name in CONFIGURATIONS if args.only in name]
    report("idle_stack", asyncio.run(run(names, args.settle, args.seconds)))


if __name__ == "__main__":
    main()
