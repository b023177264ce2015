"""The whole pipeline on this machine: webhook -> ingest -> router -> hub -> a subscribed agent.

Every service runs as its own process (ingest, router, sla, outbound, hub) on the embedded
broker and Redis with the sample store configuration, exactly as ``make run`` starts them.
Customers send Twilio-signed SMS webhooks, each a new conversation (so the router opens it,
the SLA service starts its clocks and outbound sends the acknowledgement to the Twilio
sandbox); one agent follows every queue over the hub's websocket.

1. Saturation: messages sent as fast as 32 concurrent senders go; the rate at which they reach
   the agent (first to last arrival) is the rate the pipeline sustains.
2. Latency at 25 %, 50 % and 90 % of that rate, open loop (sends on a fixed schedule,
   whatever the answers do): p50/p99/p99.9 from starting the webhook request to the agent
   receiving the routed event; CPU (share of one core) and peak RSS of every service.
3. The ceiling, in the same run on the same broker: raw aiokafka produce -> consume ->
   produce -> consume (two hops, like ingest -> router -> hub), records of the same size.

    python -m bench.e2e_pipeline [--saturation 1500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.harness import cpu_seconds, fill_raw, output_rate, relay, report
from libs.common.config import load_config
from libs.contracts.agent_access import WS_PATH
from tooling.dev import DevSystem, agent_tokens, dev_system
from tooling.devstack import create_topics, free_port
from tooling.hubclient import HubClient, HubClosed
from tooling.simulate.customers import Customers
from tooling.simulate.summary import percentile

CONFIG = Path(__file__).parents[1] / "config" / "store.yaml"
TEXT = "I was charged twice for my order, please refund one payment"
SENDERS = 32
LOADS = (0.25, 0.5, 0.9)
ARRIVAL_TIMEOUT = 300.0


@dataclass
class Arrivals:
    """When each conversation's first message reached the agent, by thread key."""

    at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    resumes: int = 0
    """Times the agent's socket was closed (e.g. 4408 when it fell behind) and resumed."""


async def agent_process(url: str, token: str, queues: list[str]) -> None:
    """The agent, in a process of its own (so the senders never slow its reading): prints
    ``thread_key monotonic_time`` for each routed message, ``resume`` for each reopened
    socket, ``resync`` when the hub could not resume it; ``ready`` once subscribed."""
    async with aiohttp.ClientSession() as http:
        client = HubClient(url, token, session=http)
        await client.connect()
        await client.subscribe(queues)
        print("ready", flush=True)
        while True:
            try:
                frame = await client.next(timeout=3600)
            except TimeoutError:
                continue
            except HubClosed:
                print("resume", flush=True)
                await client.connect()
                await client.subscribe(queues)
                continue
            if frame.get("type") == "resync":
                print("resync", flush=True)
            if frame.get("type") == "event" and frame.get("kind") == "routed":
                print(frame["data"]["thread_key"], time.monotonic(), flush=True)


async def follow(system: DevSystem, arrivals: Arrivals, ready: asyncio.Event) -> None:
    """Start the agent process and note when each routed message reached it (the monotonic
    clock is the machine's, shared by both processes)."""
    queues = sorted(load_config(system.config).queues)
    url = system.hub().url.replace("http://", "ws://", 1) + WS_PATH
    token = agent_tokens().issue("bench-agent", queues)
    agent = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.e2e_pipeline", "--agent", url, token, *queues),
        stdout=asyncio.subprocess.PIPE,
    )
    assert agent.stdout is not None
    try:
        async for raw in agent.stdout:
            line = raw.decode().split()
            if line == ["ready"]:
                ready.set()
            elif line == ["resume"]:
                arrivals.resumes += 1
            elif line == ["resync"]:
                raise RuntimeError("the agent fell too far behind: the hub sent a resync")
            else:
                arrivals.at.setdefault(line[0], float(line[1]))
                arrivals.changed.set()
        raise RuntimeError(f"the agent process exited with {await agent.wait()}")
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


async def wait_for(arrivals: Arrivals, threads: set[str], agent: asyncio.Task[None]) -> None:
    """Until every thread's message reached the agent (the agent failing fails this)."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while not threads <= arrivals.at.keys():
        if agent.done():
            agent.result()  # raises what stopped it
            raise RuntimeError("the agent stopped")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = len(threads - arrivals.at.keys())
            raise TimeoutError(f"{missing} of {len(threads)} messages never reached the agent")
        arrivals.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.changed.wait(), min(remaining, 1.0))


async def saturate(
    customers: Customers, arrivals: Arrivals, agent: asyncio.Task[None], count: int
) -> float:
    """Messages per second reaching the agent when senders go as fast as they can."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    threads: set[str] = set()

    async def sender() -> None:
        while not queue.empty():
            queue.get_nowait()
            thread = customers.new_thread("sms")
            await customers.send(thread, TEXT)
            threads.add(thread.thread_key)

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    if customers.stats.failed:
        raise RuntimeError(f"sends failed: {customers.stats.last_error}")
    await wait_for(arrivals, threads, agent)
    times = [arrivals.at[t] for t in threads]
    return (len(times) - 1) / (max(times) - min(times))


async def at_rate(
    customers: Customers,
    arrivals: Arrivals,
    agent: asyncio.Task[None],
    rate: float,
    seconds: float,
) -> dict[str, float]:
    """Open loop at ``rate``: latency percentiles from send start to the agent."""
    started = time.monotonic()
    sends: list[tuple[str, float]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(at: float) -> None:
        thread = customers.new_thread("sms")
        await customers.send(thread, TEXT)
        sends.append((thread.thread_key, at))

    count = int(rate * seconds)
    for n in range(count):
        due = started + n / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(one(time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    if customers.stats.failed:
        raise RuntimeError(f"sends failed: {customers.stats.last_error}")
    await wait_for(arrivals, {t for t, _ in sends}, agent)
    latencies = [arrivals.at[t] - at for t, at in sends]
    return {
        "rate": round(rate, 1),
        "messages": len(latencies),
        **{
            f"p{name}_ms": round(value * 1000, 1)
            for name, fraction in (("50", 0.5), ("99", 0.99), ("99.9", 0.999))
            if (value := percentile(latencies, fraction)) is not None
        },
    }


class Usage:
    """CPU share of one core and peak RSS of each service process over a phase."""

    def __init__(self, system: DevSystem) -> None:
        self._processes = {
            p.name: psutil.Process(p.process.pid) for p in system.processes if p.process
        }
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def begin(self) -> None:
        self._wall = time.monotonic()
        self._start = {name: cpu_seconds(p) for name, p in self._processes.items()}

    def end(self) -> dict[str, dict[str, float]]:
        wall = time.monotonic() - self._wall
        return {
            name: {
                "cpu_share": round((cpu_seconds(p) - self._start[name]) / wall, 3),
                "rss_mib": round(p.memory_info().rss / 2**20, 1),
            }
            for name, p in self._processes.items()
        }


async def ceiling(bootstrap: str, count: int) -> float:
    """Raw aiokafka: produce to A; consume A, produce B; consume B, produce C; read C."""
    prefix = f"ceiling-{uuid.uuid4().hex[:6]}."
    a, b, c = (f"{prefix}{name}" for name in "abc")
    await create_topics(bootstrap, [a, b, c])

    hops = [
        asyncio.create_task(relay(bootstrap, a, b, count)),
        asyncio.create_task(relay(bootstrap, b, c, count)),
    ]
    await fill_raw(bootstrap, a, count, 1200)  # about a routed event's size
    rate = await output_rate(bootstrap, c, count, timeout=300)
    await asyncio.gather(*hops)
    return rate.per_second


async def run(saturation: int, seconds: float) -> dict[str, Any]:
    async with dev_system(CONFIG, free_port()) as system:
        arrivals = Arrivals()
        ready = asyncio.Event()
        agent = asyncio.create_task(follow(system, arrivals, ready))
        await ready.wait()
        usage = Usage(system)
        async with aiohttp.ClientSession() as http:
            customers = Customers(system.endpoints(), http)
            await at_rate(customers, arrivals, agent, 5, 2)  # warm-up: connections, caches
            usage.begin()
            progress(f"saturation: {saturation} messages")
            sustained = await saturate(customers, arrivals, agent, saturation)
            results: dict[str, Any] = {
                "saturation_messages": saturation,
                "sustained_per_second": round(sustained, 1),
                "saturation_usage": usage.end(),
                "loads": [],
            }
            for share in LOADS:
                progress(f"{share:.0%} of {sustained:.0f} msg/s for {seconds:.0f} s")
                usage.begin()
                point = await at_rate(customers, arrivals, agent, sustained * share, seconds)
                results["loads"].append({"share": share, **point, "usage": usage.end()})
        agent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await agent
        progress("ceiling: raw aiokafka two-hop chain")
        chain = await ceiling(system.stack.broker.bootstrap_servers, 20_000)
        results["ceiling_two_hop_per_second"] = round(chain)
        results["agent_resumes"] = arrivals.resumes
        results["ratio"] = round(sustained / chain, 4)
        return results


def progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saturation", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--agent", nargs="+", help=argparse.SUPPRESS)  # url token queues…
    args = parser.parse_args()
    if args.agent:
        url, token, *queues = args.agent
        asyncio.run(agent_process(url, token, queues))
        return
    report("e2e_pipeline", asyncio.run(run(args.saturation, args.seconds)))


if __name__ == "__main__":
    main()
