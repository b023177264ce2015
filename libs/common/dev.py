"""``switchboard dev``: the whole system on one machine, no root, no Docker, no accounts.

Starts the embedded broker and Redis, a Twilio sandbox standing in for Twilio's REST API,
and every service as its own process; prints where everything is; stops it all on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

from aiohttp import web
from aiokafka import AIOKafkaConsumer

from libs.common.devstack import SERVICES, DevStack, ServiceProcess, free_port
from libs.common.events import (
    ConversationRouted,
    Event,
    InvalidEvent,
    OutboundReceipt,
    SlaEvent,
    decode,
)
from libs.common.sandbox.twilio import TwilioSandbox
from libs.common.topics import Topics

DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_AUTH_TOKEN = "switchboard-dev-token"
DEV_NUMBER = "+15005550006"
DEV_CHAT_KEY = "switchboard-dev-chat-session-key-0123456789"  # 32+ bytes, dev only


async def run_dev(config: Path, public_port: int) -> int:
    logs = Path(tempfile.mkdtemp(prefix="switchboard-dev-"))
    stack = DevStack()
    await stack.start()
    sandbox = TwilioSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    runner = web.AppRunner(sandbox.app())
    await runner.setup()
    sandbox_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sandbox_port).start()
    public_url = f"http://127.0.0.1:{public_port}"
    environment = {
        **stack.environment(),
        "SWITCHBOARD_CONFIG": str(config.resolve()),
        "SWITCHBOARD_PUBLIC_URL": public_url,
        "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEV_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": DEV_NUMBER,
        "CHAT_SESSION_KEY": DEV_CHAT_KEY,
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
    }
    processes = [
        ServiceProcess(
            name,
            environment,
            port=public_port if name == "ingest" else free_port(),
            log_path=logs / f"{name}.log",
        )
        for name in SERVICES
    ]
    try:
        for process in processes:
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in processes))
        _print_endpoints(stack, processes, sandbox_port, logs, public_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        feed = asyncio.create_task(
            _print_feed(stack.broker.bootstrap_servers, Topics.with_prefix())
        )
        await stop.wait()
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        print("\nstopping…", flush=True)
        return 0
    finally:
        for process in processes:
            process.stop()
        await runner.cleanup()
        stack.stop()


def _print_endpoints(
    stack: DevStack,
    processes: list[ServiceProcess],
    sandbox_port: int,
    logs: Path,
    public_url: str,
) -> None:
    print("Switchboard dev stack is up.\n")
    print(f"  kafka bootstrap   {stack.broker.bootstrap_servers}")
    print(f"  redis             {stack.redis.url}")
    for process in processes:
        print(f"  {process.name:<17} {process.url}  (/healthz /readyz /metrics)")
    print(f"  sms webhook       {public_url}/v1/sms/twilio")
    print(f"  chat widget demo  {public_url}/chat/demo")
    print(f"  twilio sandbox    http://127.0.0.1:{sandbox_port}/sandbox/messages  (SMS sent)")
    print(f"  logs              {logs}")
    print(
        "\nSend a signed SMS webhook (see README), then watch the topics. Ctrl-C stops.", flush=True
    )


async def _print_feed(bootstrap_servers: str, topics: Topics) -> None:
    """One line per routed conversation, SLA event and receipt, as they happen."""
    consumer = AIOKafkaConsumer(
        topics.routed,
        topics.sla_events,
        topics.outbound_status,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                event = decode(record.value, record.headers)
            except InvalidEvent:
                continue
            print(describe(event), flush=True)
    finally:
        await consumer.stop()


def describe(event: Event) -> str:
    data = event.data
    if isinstance(data, ConversationRouted):
        return (
            f"routed    {data.reference} {data.channel} -> {data.queue} "
            f"(rule {data.explanation.rule}, issue {data.issue_type} "
            f"{data.explanation.confidence:.2f}, {'new' if data.is_new else 'existing'})"
        )
    if isinstance(data, SlaEvent):
        return (
            f"sla       {data.reference} {data.metric} {data.kind} "
            f"(deadline {data.deadline:%Y-%m-%d %H:%M:%S} UTC, policy {data.policy})"
        )
    if isinstance(data, OutboundReceipt):
        return f"outbound  {data.channel} {data.status} {data.provider_message_id or data.error}"
    return f"{event.type} {event.id}"
