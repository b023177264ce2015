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
   receiving the routed event, and the same split by hop (below); CPU (share of one core, and
   CPU milliseconds per message) and peak RSS of every service, the broker and Redis.
3. The ceilings, in the same run on the same broker: raw aiokafka produce -> consume ->
   produce -> consume in one process (two hops, like ingest -> router -> hub), records of the
   same size; and the pipeline's whole Kafka traffic with every service a raw relay process
   (:mod:`bench.pipeline_skeleton`), the most this design can carry on this machine.

The hops, from timestamps on the way (all wall clocks of this one machine, in ms):
``accept`` is the webhook request as the sender sees it (start to ingest's 200, which ingest
answers once Kafka acknowledged the inbound event); ``ingest_to_router`` runs from the inbound
record's timestamp (set by ingest's producer) to the routed record's (set by the router's), so
it holds the router's fetch and its work; ``router_to_hub`` to the id of the hub's queue-stream
entry (Redis's clock at the ``XADD``), so it holds the hub's fetch and fan-out;
``hub_to_socket`` to the agent reading the frame. The agent process reads the inbound and
routed topics beside its socket for the record timestamps.

Texts are drawn from ``config/examples/*.csv`` (shuffled, seeded), so the classifier sees
varied messages and no cache of identical texts helps.

    python -m bench.e2e_pipeline [--saturation 1500] [--seconds 20]
    python -m bench.e2e_pipeline --saturation 600 --seconds 5 --no-ceiling   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiokafka import AIOKafkaConsumer

from bench.harness import cpu_seconds, fill_raw, output_rate, relay, report
from bench.pipeline_skeleton import skeleton_rate
from libs.common.config import load_config
from libs.common.events import ConversationRouted, InvalidEvent, MessageReceived, decode
from libs.common.topics import Topics
from libs.contracts.agent_access import WS_PATH
from tooling.dev import DevSystem, agent_tokens, dev_system
from tooling.devstack import RedisServer, create_topics, free_port
from tooling.hubclient import HubClient, HubClosed
from tooling.simulate.customers import Customers
from tooling.simulate.summary import percentile

CONFIG = Path(__file__).parents[1] / "config" / "store.yaml"
EXAMPLES = Path(__file__).parents[1] / "config" / "examples"
SENDERS = 32
LOADS = (0.25, 0.5, 0.9)
ARRIVAL_TIMEOUT = 300.0
STAMPS_TIMEOUT = 20.0
"""How long the record timestamps of the hops may trail the agent's arrivals (the agent
process reads them with the default fetch wait)."""
HOPS = ("accept", "ingest_to_router", "router_to_hub", "hub_to_socket")


def example_texts(seed: int = 21) -> itertools.cycle[str]:
    """Every customer message of the shipped examples, shuffled, round and round."""
    texts: list[str] = []
    for path in sorted(EXAMPLES.glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as examples:
            texts.extend(row["utterance"] for row in csv.DictReader(examples) if row["utterance"])
    random.Random(seed).shuffle(texts)
    return itertools.cycle(texts)


@dataclass
class Arrivals:
    """When each conversation's first message reached the agent, by thread key; the wall
    clock times (ms) of its hops."""

    at: dict[str, float] = field(default_factory=dict)
    reached_ms: dict[str, float] = field(default_factory=dict)
    """Wall clock of the agent reading the frame."""
    hub_ms: dict[str, float] = field(default_factory=dict)
    """The queue-stream entry's id: Redis's clock when the hub appended it."""
    inbound_ms: dict[str, float] = field(default_factory=dict)
    """The inbound record's timestamp: ingest's producer."""
    routed_ms: dict[str, float] = field(default_factory=dict)
    """The routed record's timestamp: the router's producer."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    resumes: int = 0
    """Times the agent's socket was closed (e.g. 4408 when it fell behind) and resumed."""


async def record_stamps(bootstrap: str, topics: Topics, started: asyncio.Event) -> None:
    """Print ``inbound|routed thread_key timestamp_ms`` for every record of the two topics."""
    consumer = AIOKafkaConsumer(
        topics.inbound, topics.routed, bootstrap_servers=bootstrap, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        await consumer.seek_to_end()
        started.set()
        async for record in consumer:
            try:
                data = decode(record.value, record.headers).data
            except InvalidEvent:
                continue
            if isinstance(data, MessageReceived):
                print("inbound", data.thread_key, record.timestamp, flush=True)
            elif isinstance(data, ConversationRouted):
                print("routed", data.thread_key, record.timestamp, flush=True)
    finally:
        await consumer.stop()


async def agent_process(url: str, token: str, bootstrap: str, queues: list[str]) -> None:
    """The agent, in a process of its own (so the senders never slow its reading): prints
    ``thread_key monotonic_time wall_ms stream_entry_ms`` for each routed message, the record
    timestamps of the inbound and routed topics, ``resume`` for each reopened socket,
    ``resync`` when the hub could not resume it; ``ready`` once subscribed."""
    stamps_started = asyncio.Event()
    stamps = asyncio.create_task(record_stamps(bootstrap, Topics.with_prefix(), stamps_started))
    async with aiohttp.ClientSession() as http:
        client = HubClient(url, token, session=http)
        await client.connect()
        await client.subscribe(queues)
        await stamps_started.wait()
        print("ready", flush=True)
        while True:
            if stamps.done():
                stamps.result()  # raises what stopped it
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
                entry_ms = frame["id"].split("-")[0]
                now_ms = time.time() * 1000
                print(frame["data"]["thread_key"], time.monotonic(), now_ms, entry_ms, flush=True)


async def follow(system: DevSystem, arrivals: Arrivals, ready: asyncio.Event) -> None:
    """Start the agent process and note when each routed message reached it (the monotonic
    clock is the machine's, shared by both processes)."""
    queues = sorted(load_config(system.config).queues)
    url = system.hub().url.replace("http://", "ws://", 1) + WS_PATH
    token = agent_tokens().issue("bench-agent", queues)
    bootstrap = system.stack.broker.bootstrap_servers
    agent = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.e2e_pipeline", "--agent", url, token, bootstrap, *queues),
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
            elif line[0] in ("inbound", "routed"):
                stamps = arrivals.inbound_ms if line[0] == "inbound" else arrivals.routed_ms
                stamps.setdefault(line[1], float(line[2]))
                arrivals.changed.set()
            elif line[0] not in arrivals.at:
                thread, monotonic, wall_ms, entry_ms = line
                arrivals.at[thread] = float(monotonic)
                arrivals.reached_ms[thread] = float(wall_ms)
                arrivals.hub_ms[thread] = float(entry_ms)
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


@dataclass(frozen=True)
class Send:
    thread: str
    at: float
    """Monotonic start of the webhook request."""
    accept_ms: float


def percentiles(values: list[float], names: Sequence[str]) -> dict[str, float]:
    return {
        f"p{name}_ms": round(value, 1)
        for name in names
        if (value := percentile(values, float(name) / 100)) is not None
    }


async def hops(arrivals: Arrivals, sends: list[Send]) -> dict[str, Any]:
    """p50/p99 of each hop over the messages whose every timestamp came in (all of them,
    unless the record stamps trail by more than :data:`STAMPS_TIMEOUT`)."""
    deadline = time.monotonic() + STAMPS_TIMEOUT
    threads = {s.thread for s in sends}
    while not (threads <= arrivals.inbound_ms.keys() and threads <= arrivals.routed_ms.keys()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        arrivals.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.changed.wait(), min(remaining, 1.0))
    by_hop: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for send in sends:
        inbound = arrivals.inbound_ms.get(send.thread)
        routed = arrivals.routed_ms.get(send.thread)
        if inbound is None or routed is None:
            continue
        hub = arrivals.hub_ms[send.thread]
        by_hop["accept"].append(send.accept_ms)
        by_hop["ingest_to_router"].append(routed - inbound)
        by_hop["router_to_hub"].append(hub - routed)
        by_hop["hub_to_socket"].append(arrivals.reached_ms[send.thread] - hub)
    return {
        "messages": len(by_hop["accept"]),
        **{hop: percentiles(values, ("50", "99")) for hop, values in by_hop.items()},
    }


class Usage:
    """CPU share of one core, CPU per message and RSS of each service process, the broker and
    Redis over a phase (CPU time read at both ends: robust to other load on the machine)."""

    def __init__(self, system: DevSystem) -> None:
        self._processes = {
            p.name: psutil.Process(p.process.pid) for p in system.processes if p.process
        }
        servers = {"broker": system.stack.broker.process}
        if isinstance(system.stack.redis, RedisServer):  # one server, not a cluster
            servers["redis"] = system.stack.redis.process
        for name, server in servers.items():
            if server is not None:
                self._processes[name] = psutil.Process(server.pid)
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def begin(self) -> None:
        self._wall = time.monotonic()
        self._start = {name: cpu_seconds(p) for name, p in self._processes.items()}

    def end(self, messages: int) -> dict[str, dict[str, float]]:
        wall = time.monotonic() - self._wall
        usage = {}
        for name, p in self._processes.items():
            used = cpu_seconds(p) - self._start[name]
            usage[name] = {
                "cpu_share": round(used / wall, 3),
                "cpu_ms_per_message": round(used * 1000 / max(messages, 1), 2),
                "rss_mib": round(p.memory_info().rss / 2**20, 1),
            }
        return usage


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


@dataclass
class Pipeline:
    """The dev system on the sample store configuration with the agent following every queue,
    and senders whose connections are warm."""

    system: DevSystem
    arrivals: Arrivals
    agent: asyncio.Task[None]
    customers: Customers
    texts: Iterator[str]
    usage: Usage

    async def saturate(self, count: int) -> float:
        """Messages per second reaching the agent when senders go as fast as they can."""
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)
        threads: set[str] = set()

        async def sender() -> None:
            while not queue.empty():
                queue.get_nowait()
                thread = self.customers.new_thread("sms")
                await self.customers.send(thread, next(self.texts))
                threads.add(thread.thread_key)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        self._raise_failed_sends()
        await wait_for(self.arrivals, threads, self.agent)
        times = [self.arrivals.at[t] for t in threads]
        return (len(times) - 1) / (max(times) - min(times))

    async def at_rate(self, rate: float, seconds: float) -> dict[str, Any]:
        """Open loop at ``rate``: latency percentiles from send start to the agent, and by
        hop."""
        started = time.monotonic()
        sends: list[Send] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(at: float) -> None:
            thread = self.customers.new_thread("sms")
            await self.customers.send(thread, next(self.texts))
            sends.append(Send(thread.thread_key, at, (time.monotonic() - at) * 1000))

        count = int(rate * seconds)
        for n in range(count):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(time.monotonic()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        self._raise_failed_sends()
        await wait_for(self.arrivals, {s.thread for s in sends}, self.agent)
        latencies = [(self.arrivals.at[s.thread] - s.at) * 1000 for s in sends]
        return {
            "rate": round(rate, 1),
            "messages": len(latencies),
            **percentiles(latencies, ("50", "99", "99.9")),
            "hops_ms": await hops(self.arrivals, sends),
        }

    def _raise_failed_sends(self) -> None:
        if self.customers.stats.failed:
            raise RuntimeError(f"sends failed: {self.customers.stats.last_error}")


@contextlib.asynccontextmanager
async def running_pipeline() -> AsyncIterator[Pipeline]:
    """:class:`Pipeline`, the agent process stopped when the block ends."""
    async with dev_system(CONFIG, free_port()) as system:
        arrivals = Arrivals()
        ready = asyncio.Event()
        agent = asyncio.create_task(follow(system, arrivals, ready))
        try:
            await ready.wait()
            async with aiohttp.ClientSession() as http:
                pipeline = Pipeline(
                    system,
                    arrivals,
                    agent,
                    Customers(system.endpoints(), http),
                    example_texts(),
                    Usage(system),
                )
                await pipeline.at_rate(5, 2)  # warm-up: connections
                yield pipeline
        finally:
            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent


async def run(saturation: int, seconds: float, with_ceiling: bool) -> dict[str, Any]:
    async with running_pipeline() as pipeline:
        usage = pipeline.usage
        usage.begin()
        progress(f"saturation: {saturation} messages")
        sustained = await pipeline.saturate(saturation)
        results: dict[str, Any] = {
            "fetch": {
                name: pipeline.system.processes[0].environment.get(name)
                for name in ("SWITCHBOARD_FETCH_MAX_WAIT_MS", "SWITCHBOARD_FETCH_NUDGE")
            },
            "texts": "config/examples/*.csv, shuffled",
            "saturation_messages": saturation,
            "sustained_per_second": round(sustained, 1),
            "saturation_usage": usage.end(saturation),
            "loads": [],
        }
        for share in LOADS:
            progress(f"{share:.0%} of {sustained:.0f} msg/s for {seconds:.0f} s")
            usage.begin()
            point = await pipeline.at_rate(sustained * share, seconds)
            results["loads"].append(
                {"share": share, **point, "usage": usage.end(point["messages"])}
            )
        results["agent_resumes"] = pipeline.arrivals.resumes
        if with_ceiling:
            bootstrap = pipeline.system.stack.broker.bootstrap_servers
            progress("ceiling: raw aiokafka two-hop chain")
            chain = await ceiling(bootstrap, 20_000)
            results["ceiling_two_hop_per_second"] = round(chain)
            results["ratio"] = round(sustained / chain, 4)
            progress("ceiling: the pipeline's Kafka traffic, every service a raw relay process")
            skeleton = await skeleton_rate(bootstrap, 20_000)
            results["ceiling_skeleton_per_second"] = round(skeleton)
            results["ratio_to_skeleton"] = round(sustained / skeleton, 4)
        return results


def progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saturation", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the raw two-hop chain (a quick look)"
    )
    parser.add_argument(
        "--name", default="e2e_pipeline", help="result file: bench/results/NAME.json"
    )
    parser.add_argument("--agent", nargs="+", help=argparse.SUPPRESS)  # url token bootstrap q…
    args = parser.parse_args()
    if args.agent:
        url, token, bootstrap, *queues = args.agent
        asyncio.run(agent_process(url, token, bootstrap, queues))
        return
    report(args.name, asyncio.run(run(args.saturation, args.seconds, not args.no_ceiling)))


if __name__ == "__main__":
    main()
