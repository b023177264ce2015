"""Hub fan-out: many agent sockets on one hub process, next to a bare aiohttp broadcast server.

The hub runs as its own process (``python -m services.hub``) against the embedded broker and
Redis. ``--clients`` agent sockets, spread over ``--client-processes`` client processes (one
asyncio loop cannot read 1,000 sockets on a shared 2-core machine without becoming the
bottleneck it measures), all follow one queue. Conversation-routed events are published to
Kafka at a steady ``--rate`` and travel the real path: Kafka -> the hub's fan-out consumer ->
the queue's Redis Stream -> the hub's feed -> every socket. Latency is from the publisher's
clock just before the produce (the CloudEvent ``time`` the frame carries) to receipt in a
client, for every (event, client) pair. Memory per connection is the hub's RSS after every
client subscribed minus its RSS before the first one connected, divided by the clients.

The ceiling, in the same run with the same clients, rate and frame size: a bare aiohttp
server (its own process) that sends every frame posted to it to every socket. It has no
Kafka, no Redis and no per-socket buffers, so it shows what the machine allows for the
socket part alone.

    python -m bench.hub_fanout [--clients 1000 --rate 20 --seconds 30 --client-processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import psutil
import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from bench.harness import bench_stack, report, running_service
from libs.common.clock import system_clock
from libs.common.events import ConversationRouted, CustomerIdentity, Event, RoutingExplanation
from libs.common.kafka.nudge import Nudger
from libs.common.kafka.producer import EventProducer, Outgoing, create_producer
from libs.common.redis_client import open_redis
from libs.common.settings import Settings
from libs.common.topics import Topics
from libs.contracts.agent_access import WS_PATH, AgentTokens
from tooling.devstack import DevStack, create_topics, free_port

QUEUE = "bench"
KEY = "bench-hub-fanout-key-0123456789abcdef0123"
CONNECT_CONCURRENCY = 50
DELIVERY_GRACE = 60.0
CONFIG = {
    "version": 1,
    "queues": {QUEUE: {"description": "every bench client follows it"}},
    "rules": [{"name": "all", "then": {"queue": QUEUE, "priority": 3}}],
}
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def routed(n: int) -> ConversationRouted:
    """A customer message as the router publishes it, each in a new conversation."""
    thread = f"sms:+1555{n:07d}"
    return ConversationRouted(
        conversation_id=uuid.uuid4().hex,
        reference=f"SB-B{n:05d}",
        thread_key=thread,
        channel="sms",
        queue=QUEUE,
        priority=3,
        sla_policy=None,
        issue_type="delivery",
        is_new=True,
        message_id=uuid.uuid4().hex,
        customer=CustomerIdentity(display_name="Bench Customer", phone=thread[4:]),
        text="Where is my parcel? It was due on Tuesday and the tracking page has not moved.",
        received_at=system_clock(),
        explanation=RoutingExplanation(
            rule="all", conditions=(), issue_type="delivery", confidence=1.0
        ),
    )


# --- the clients (``--client``: a process of its own) ---------------------------------------


async def client_process(url: str, count: int, out: Path) -> None:
    """Open ``count`` sockets, subscribe each, say ``ready``; read events until told how many
    to expect (a line on stdin) and every socket has them, then write the latencies."""
    latencies: list[float] = []
    received = [0] * count
    expected = [sys.maxsize]  # until stdin says
    ready = [asyncio.Event() for _ in range(count)]
    complete = asyncio.Event()
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    def check() -> None:
        if min(received) >= expected[0]:
            complete.set()

    # No pool limit: every socket holds a connection for the whole run (the default caps 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(index: int) -> None:
            async with limit:
                ws = await session.ws_connect(url, max_msg_size=0)
            async with ws:
                await ws.send_str(_encode({"type": "subscribe", "queues": {QUEUE: None}}).decode())
                async for msg in ws:
                    frame = _decode(msg.data)
                    if frame["type"] == "event":
                        sent = datetime.fromisoformat(frame["time"]).timestamp()
                        latencies.append(time.time() - sent)
                        received[index] += 1
                        if received[index] == expected[0]:
                            check()
                    elif frame["type"] == "snapshot":
                        ready[index].set()

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        all_ready: asyncio.Future[Any] = asyncio.gather(*(r.wait() for r in ready))
        pending: set[asyncio.Future[Any]] = {all_ready, *tasks}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not all_ready.done():  # a socket failed or was closed before its snapshot
                failed = next(task for task in tasks if task.done())
                raise RuntimeError("a client socket ended early") from failed.exception()
            print("ready", flush=True)
            expected[0] = int(await asyncio.to_thread(sys.stdin.readline))
            check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), DELIVERY_GRACE)
        finally:
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    result = json.dumps({"received": sum(received), "latencies": latencies})
    await asyncio.to_thread(out.write_text, result)
    print("done", flush=True)


@contextlib.asynccontextmanager
async def clients(url: str, total: int, processes: int, workdir: Path) -> AsyncIterator[Clients]:
    """``total`` sockets over ``processes`` client processes, all subscribed on entry."""
    shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    children = []
    for i, share in enumerate(shares):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.hub_fanout",
            "--client",
            url,
            "--count",
            str(share),
            "--out",
            str(workdir / f"client-{i}.json"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        children.append(child)
    group = Clients(children, [workdir / f"client-{i}.json" for i in range(processes)])
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 300)
            if line.strip() != b"ready":
                raise RuntimeError(f"a client process did not get ready: {line!r}")
        yield group
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
            await child.wait()


class Clients:
    def __init__(self, children: list[asyncio.subprocess.Process], outputs: list[Path]) -> None:
        self._children = children
        self._outputs = outputs

    async def collect(self, expected: int) -> tuple[int, list[float]]:
        """Tell each process how many events to wait for; (frames received, latencies)."""
        for child in self._children:
            assert child.stdin is not None
            child.stdin.write(f"{expected}\n".encode())
            await child.stdin.drain()
        for child in self._children:
            assert child.stdout is not None
            await asyncio.wait_for(child.stdout.readline(), DELIVERY_GRACE + 60)
            await child.wait()
        received, latencies = 0, []
        for path in self._outputs:
            result = json.loads(path.read_text())
            received += result["received"]
            latencies += result["latencies"]
        return received, latencies


# --- the ceiling: a bare broadcast server (``--bare-server PORT``) --------------------------


def bare_server(port: int) -> None:
    """Every text frame posted to ``/publish`` goes to every socket of ``/ws``, as is."""
    sockets: set[web.WebSocketResponse] = set()

    async def subscriber(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for msg in ws:
                if _decode(msg.data).get("type") == "subscribe":
                    await ws.send_str('{"type":"snapshot","queue":"bench","conversations":[]}')
        finally:
            sockets.discard(ws)
        return ws

    async def publisher(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            for target in list(sockets):
                await target.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", subscriber)
    app.router.add_get("/publish", publisher)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the run --------------------------------------------------------------------------------


async def steady(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> int:
    """Call ``send(n)`` ``rate`` times a second for ``seconds``, on a fixed schedule."""
    total = round(rate * seconds)
    start = time.monotonic()
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(n)
    return total


@contextlib.asynccontextmanager
async def kafka_latency(bootstrap: str, topic: str) -> AsyncIterator[list[float]]:
    """Produce-to-consume latencies of a plain consumer of ``topic`` (aiokafka's default fetch
    settings, no nudges), read alongside the hub: what the embedded broker's held fetch alone
    costs a consumer that does not doze between nudges as the hub's does."""
    latencies: list[float] = []
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    await consumer.seek_to_end()

    async def read() -> None:
        async for record in consumer:
            latencies.append(time.time() - record.timestamp / 1000)

    reader = asyncio.create_task(read())
    try:
        yield latencies
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await consumer.stop()


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def summary(
    latencies: list[float], received: int, expected: int, before: int, after: int, n: int
) -> dict[str, Any]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if latencies else [0.0] * 99
    return {
        "frames_expected": expected,
        "frames_received": received,
        "latency_p50_ms": round(cuts[49] * 1000, 2),
        "latency_p99_ms": round(cuts[98] * 1000, 2),
        "latency_max_ms": round(max(latencies, default=0.0) * 1000, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_connected_mb": round(after / 2**20, 1),
        "memory_per_connection_kb": round((after - before) / n / 1024, 1),
    }


async def measure_hub(stack: DevStack, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:6]}."
    topics = Topics.with_prefix(prefix)
    bootstrap = stack.broker.bootstrap_servers
    await create_topics(bootstrap, topics.all())
    config = workdir / "hub.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    environment = {"SWITCHBOARD_CONFIG": str(config), "AGENT_TOKEN_KEY": KEY}
    async with running_service(
        stack, "hub", prefix, workdir / "hub.log", ready_timeout=120, environment=environment
    ) as hub:
        # Published as the router publishes (its producer settings, a nudge after each
        # acknowledged write): the hub's fan-out consumer dozes between nudges on the embedded
        # broker, and a plain producer's records would wait for its idle poll.
        kafka = create_producer(Settings(kafka_bootstrap_servers=bootstrap), client_id="bench")
        await kafka.start()
        redis = await open_redis(Settings(redis_url=stack.redis.url))
        producer = EventProducer(kafka, Nudger(redis, prefix))
        sending: set[asyncio.Task[None]] = set()
        try:
            assert hub.process is not None
            before = rss(hub.process.pid)
            token = AgentTokens(KEY).issue("bench-agent", [QUEUE])
            url = f"{hub.url.replace('http', 'ws', 1)}{WS_PATH}?token={token}"
            async with clients(url, args.clients, args.client_processes, workdir) as group:
                connected = rss(hub.process.pid)

                async def send(n: int) -> None:
                    data = routed(n)
                    event = Event(
                        id=uuid.uuid4().hex, source="/bench", subject=data.thread_key,
                        time=system_clock(), data=data,
                    )  # fmt: skip
                    outgoing = [Outgoing(topics.routed, data.thread_key, event)]
                    task = asyncio.create_task(producer.publish(outgoing))
                    sending.add(task)
                    task.add_done_callback(sending.discard)

                async with kafka_latency(bootstrap, topics.routed) as kafka_latencies:
                    events = await steady(args.rate, args.seconds, send)
                    await asyncio.gather(*sending)
                    expected = events * args.clients
                    received, latencies = await group.collect(events)
            result = summary(latencies, received, expected, before, connected, args.clients)
            kafka_cuts = statistics.quantiles(kafka_latencies, n=100, method="inclusive")
            result["kafka_produce_to_consume_p50_ms"] = round(kafka_cuts[49] * 1000, 2)
            result["kafka_produce_to_consume_p99_ms"] = round(kafka_cuts[98] * 1000, 2)
            result["rss_after_run_mb"] = round(rss(hub.process.pid) / 2**20, 1)
            return result
        finally:
            await kafka.stop()
            await redis.aclose()


async def measure_bare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.hub_fanout", "--bare-server", str(port)
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    publish = await session.ws_connect(f"ws://127.0.0.1:{port}/publish")
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the bare server did not start")
            before = rss(server.pid)
            url = f"ws://127.0.0.1:{port}/ws"
            async with clients(url, args.clients, args.client_processes, workdir) as group:
                connected = rss(server.pid)

                async def send(n: int) -> None:
                    data = routed(n)
                    frame = {
                        "type": "event", "queue": QUEUE, "id": f"{n}-0", "kind": "routed",
                        "event_id": uuid.uuid4().hex, "event_type": ConversationRouted.TYPE,
                        "time": system_clock(), "conversation_id": data.conversation_id,
                        "data": data,
                    }  # fmt: skip
                    await publish.send_str(_encode(frame).decode())

                events = await steady(args.rate, args.seconds, send)
                received, latencies = await group.collect(events)
            await publish.close()
        return summary(latencies, received, events * args.clients, before, connected, args.clients)
    finally:
        server.terminate()
        await server.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_stack("hub") as (stack, workdir):
        hub = await measure_hub(stack, args, workdir)
        bare = await measure_bare(args, workdir)
        return {
            "clients": args.clients,
            "client_processes": args.client_processes,
            "rate_per_second": args.rate,
            "seconds": args.seconds,
            "hub": hub,
            "bare_aiohttp_broadcast": bare,
            "p50_vs_ceiling": round(hub["latency_p50_ms"] / bare["latency_p50_ms"], 2),
            "p99_vs_ceiling": round(hub["latency_p99_ms"] / bare["latency_p99_ms"], 2),
            "memory_per_connection_vs_ceiling": round(
                hub["memory_per_connection_kb"] / bare["memory_per_connection_kb"], 2
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_process(args.client, args.count, args.out))
    elif args.bare_server:
        bare_server(args.bare_server)
    else:
        report("hub_fanout", asyncio.run(run(args)))


if __name__ == "__main__":
    main()
