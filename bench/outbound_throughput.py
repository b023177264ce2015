"""Outbound sends per second, one process, against the Twilio sandbox, each with its receipt.

A commands topic is filled with SMS agent replies (each to its own customer, so nothing is
held back per recipient); then ``python -m services.outbound`` starts and sends them through
the official twilio client to the sandbox, which runs in a process of its own, as Twilio's API
would. The rate comes from the receipts' Kafka timestamps, first to last. Two ceilings in the
same run: the raw aiokafka hop (consume a command, produce a record) and the sandbox itself,
taken by raw aiohttp POSTs of the same form at the outbound consumer's concurrency. Afterwards
the sandbox is asked how many messages it received: each command exactly once.

    python -m bench.outbound_throughput [--commands 5000]
    python -m bench.outbound_throughput --sandbox PORT   # the sandbox process (internal)
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil
from aiohttp import web

from bench.harness import (
    bench_stack,
    cpu_seconds,
    fill,
    fill_raw,
    output_rate,
    ready_process,
    relay,
    report,
    running_service,
    say_ready,
)
from libs.common.events import Event, OutboundCommand, event_id
from libs.common.topics import Topics
from tooling.dev import DEV_ACCOUNT_SID as ACCOUNT_SID
from tooling.dev import DEV_NUMBER as OUR_NUMBER
from tooling.devstack import create_topics, free_port
from tooling.sandbox.twilio import API_VERSION, TwilioSandbox

ROOT = Path(__file__).parents[1]
AUTH_TOKEN: Final = "bench-twilio-auth-token-0123456789"
TARGET_PER_SECOND: Final = 2_000
CONCURRENCY: Final = 64
"""The outbound consumer's records in flight per partition (``SWITCHBOARD_MAX_IN_FLIGHT``)."""


def commands(count: int) -> list[tuple[str, Event]]:
    """SMS agent replies, each to its own customer (the thread key is the record's key)."""
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        customer = f"+1415{n:07d}"
        thread = f"sms:{OUR_NUMBER}:{customer}"
        data = OutboundCommand(
            command_id=f"bench-{n:06d}",
            kind="agent_reply",
            channel="sms",
            conversation_id=f"conv-{n:06d}",
            reference=f"SB-{n:06d}",
            recipient=customer,
            text=f"Your parcel is on its way, and the refund is done today (SB-{n:06d}).",
        )
        event = Event(
            id=event_id("bench", data.command_id),
            source="/bench",
            subject=thread,
            time=now,
            data=data,
        )
        out.append((thread, event))
    return out


async def sandbox_process() -> tuple[asyncio.subprocess.Process, str]:
    """The Twilio sandbox in a process of its own, once it listens; and its URL."""
    port = free_port()
    process = await ready_process("bench.outbound_throughput", "--sandbox", str(port))
    return process, f"http://127.0.0.1:{port}"


async def serve_sandbox(port: int) -> None:
    runner = web.AppRunner(TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    say_ready()
    await asyncio.Event().wait()


async def sandbox_count(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/sandbox/messages") as response:
        return len(await response.json())


async def sandbox_ceiling(http: aiohttp.ClientSession, url: str, count: int) -> float:
    """Raw POSTs of the twilio client's form at the consumer's concurrency, per second."""
    endpoint = f"{url}/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages.json"
    auth = aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def poster() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            form = {"To": f"+1416{n:07d}", "From": OUR_NUMBER, "Body": "ceiling"}
            async with http.post(endpoint, data=form, auth=auth) as response:
                if response.status != 201:
                    raise RuntimeError(f"sandbox answered {response.status}")
                await response.read()

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started)


async def run(count: int) -> dict[str, Any]:
    async with bench_stack("outbound") as (stack, workdir):
        bootstrap = stack.broker.bootstrap_servers
        sandbox, sandbox_url = await sandbox_process()
        try:
            async with aiohttp.ClientSession() as http:
                sandbox_rate = await sandbox_ceiling(http, sandbox_url, count)

                passthrough = f"passthrough-{uuid.uuid4().hex[:6]}."
                await create_topics(bootstrap, [passthrough + "in", passthrough + "out"])
                await fill_raw(bootstrap, passthrough + "in", count, 700)  # about a command
                await relay(bootstrap, passthrough + "in", passthrough + "out", count)
                kafka = await output_rate(bootstrap, passthrough + "out", count, timeout=300)

                prefix = f"bench-{uuid.uuid4().hex[:6]}."
                topics = Topics.with_prefix(prefix)
                await create_topics(bootstrap, list(topics.all()))
                await fill(bootstrap, topics.outbound_commands, commands(count))
                before = await sandbox_count(http, sandbox_url)
                environment = {
                    "SWITCHBOARD_CONFIG": str(ROOT / "config" / "store.yaml"),
                    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "TWILIO_FROM_NUMBER": OUR_NUMBER,
                    "TWILIO_API_BASE_URL": sandbox_url,
                }
                async with running_service(
                    stack,
                    "outbound",
                    prefix,
                    workdir / "outbound.log",
                    ready_timeout=60,
                    environment=environment,
                ) as service:
                    assert service.pid is not None
                    process = psutil.Process(service.pid)
                    cpu_before, wall_before = cpu_seconds(process), time.perf_counter()
                    sends = await output_rate(bootstrap, topics.outbound_status, count, 600)
                    cpu = cpu_seconds(process) - cpu_before
                    wall = time.perf_counter() - wall_before
                sent = await sandbox_count(http, sandbox_url) - before
        finally:
            sandbox.kill()
            await sandbox.wait()
    if sent != count:
        raise RuntimeError(f"the sandbox received {sent} messages for {count} commands")
    return {
        "commands": count,
        "sends_per_second": round(sends.per_second),
        "outbound_cpu_share": round(cpu / wall, 2),
        # The topic was full before the worker started: it was busy for the whole window.
        "outbound_cpu_ms_per_send": round(cpu / wall * 1000 / sends.per_second, 2),
        "sandbox_received": sent,
        "ceiling_sandbox_posts_per_second": round(sandbox_rate),
        "ceiling_kafka_hop_per_second": round(kafka.per_second),
        "ratio_to_sandbox": round(sends.per_second / sandbox_rate, 3),
        "target_per_second": TARGET_PER_SECOND,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--sandbox", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="outbound_throughput")
    args = parser.parse_args()
    if args.sandbox is not None:
        asyncio.run(serve_sandbox(args.sandbox))
        return
    report(args.name, asyncio.run(run(args.commands)))


if __name__ == "__main__":
    main()
