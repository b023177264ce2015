"""``switchboard dev``: the whole system on one machine, no root, no Docker, no accounts.

Starts the embedded broker and Redis, sandboxes standing in for the providers (Twilio's
Messages API, the X API for mentions and DMs, an SMTP relay that keeps outbound mail), the four
services and the agent hub as their own processes; prints where everything is; stops it all on
Ctrl-C. ``switchboard simulate`` runs the same system with simulated customers and agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiokafka import AIOKafkaConsumer

from libs.common.config import load_config
from libs.common.events import (
    ConversationRouted,
    Event,
    InvalidEvent,
    OutboundReceipt,
    SlaEvent,
    decode,
)
from libs.common.settings import (
    DEV_AGENT_KEY,
    DEV_AUTH_TOKEN,
    DEV_CHAT_KEY,
    DEV_SURVEY_KEY,
    DEV_X_TOKEN,
)
from libs.common.topics import Topics
from libs.contracts.agent_access import CONSOLE_PATH, WS_PATH, AgentTokens
from tooling.devstack import SERVICES, DevStack, ServiceProcess, free_port
from tooling.sandbox.smtp import Mailbox, smtp_sandbox
from tooling.sandbox.twilio import TwilioSandbox
from tooling.sandbox.x import XSandbox
from tooling.simulate.customers import Endpoints

DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_NUMBER = "+15005550006"
DEV_X_USER_ID = "1000000001"
DEV_SUPPORT_ADDRESS = "help@shop.example"


@dataclass
class DevSystem:
    """Everything ``switchboard dev`` started, and how to reach it."""

    stack: DevStack
    processes: list[ServiceProcess]
    config: Path
    public_url: str
    smtp_port: int
    twilio_url: str
    x_url: str
    mail: Mailbox
    logs: Path

    def endpoints(self) -> Endpoints:
        """Where simulated customers write in."""
        return Endpoints(
            ingest_url=self.public_url,
            public_url=self.public_url,
            twilio_auth_token=DEV_AUTH_TOKEN,
            our_number=DEV_NUMBER,
            support_address=DEV_SUPPORT_ADDRESS,
            smtp_port=self.smtp_port,
            x_sandbox_url=self.x_url,
            x_user_id=DEV_X_USER_ID,
            twilio_sandbox_url=self.twilio_url,
        )

    def hub(self) -> ServiceProcess:
        return next(p for p in self.processes if p.name == "hub")


@contextlib.asynccontextmanager
async def dev_system(config: Path, public_port: int) -> AsyncIterator[DevSystem]:
    """The embedded broker and Redis, provider sandboxes (Twilio, X, an SMTP relay) and every
    service as its own process, ready; all stopped when the block ends."""
    logs = Path(tempfile.mkdtemp(prefix="switchboard-dev-"))
    stack = DevStack()
    await stack.start()
    twilio = TwilioSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    x_api = XSandbox(bearer_token=DEV_X_TOKEN)
    runners: list[web.AppRunner] = []
    processes: list[ServiceProcess] = []
    try:
        twilio_url = await _serve(twilio.app(), runners)
        x_url = await _serve(x_api.app(), runners)
        async with smtp_sandbox() as (mail, relay_port):
            public_url = f"http://127.0.0.1:{public_port}"
            smtp_port = free_port()
            environment = {
                **stack.environment(),
                "SWITCHBOARD_ENV": "dev",  # the published development secrets below
                "SWITCHBOARD_CONFIG": str(config.resolve()),
                "SWITCHBOARD_PUBLIC_URL": public_url,
                "SWITCHBOARD_SMTP_PORT": str(smtp_port),
                "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": DEV_AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": DEV_NUMBER,
                "TWILIO_API_BASE_URL": twilio_url,
                "X_BEARER_TOKEN": DEV_X_TOKEN,
                "X_USER_ACCESS_TOKEN": x_api.user_token,
                "X_USER_ID": DEV_X_USER_ID,
                "X_API_BASE_URL": x_url,
                "X_POLL_INTERVAL": "1",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(relay_port),
                "SMTP_STARTTLS": "false",
                "SMTP_FROM": f"Shop Support <{DEV_SUPPORT_ADDRESS}>",
                "CHAT_SESSION_KEY": DEV_CHAT_KEY,
                "AGENT_TOKEN_KEY": DEV_AGENT_KEY,
                "SURVEY_LINK_KEY": DEV_SURVEY_KEY,
            }
            processes = [
                ServiceProcess(
                    name,
                    environment,
                    port=public_port if name == "ingest" else free_port(),
                    log_path=logs / f"{name}.log",
                )
                for name in (*SERVICES, "hub")
            ]
            for process in processes:
                process.start()
            await asyncio.gather(*(p.wait_ready() for p in processes))
            yield DevSystem(
                stack=stack,
                processes=processes,
                config=config,
                public_url=public_url,
                smtp_port=smtp_port,
                twilio_url=twilio_url,
                x_url=x_url,
                mail=mail,
                logs=logs,
            )
    finally:
        for process in processes:
            process.stop()
        for runner in runners:
            await runner.cleanup()
        stack.stop()


async def _serve(app: web.Application, runners: list[web.AppRunner]) -> str:
    runner = web.AppRunner(app)
    await runner.setup()
    runners.append(runner)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}"


def agent_tokens() -> AgentTokens:
    """Mints the dev stack's agent tokens (its hub runs with the dev key)."""
    return AgentTokens(DEV_AGENT_KEY)


async def until_signalled() -> None:
    """Return on Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_dev(config: Path, public_port: int) -> int:
    async with dev_system(config, public_port) as system:
        print_endpoints(system)
        print("\nSend a signed SMS webhook (see README), then watch the topics. Ctrl-C stops.")
        feed = asyncio.create_task(
            _print_feed(system.stack.broker.bootstrap_servers, Topics.with_prefix())
        )
        await until_signalled()
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        print("\nstopping…", flush=True)
    return 0


def print_endpoints(system: DevSystem) -> None:
    print("Switchboard dev stack is up.\n")
    print(f"  kafka bootstrap   {system.stack.broker.bootstrap_servers}")
    print(f"  redis             {system.stack.redis.url}")
    for process in system.processes:
        print(f"  {process.name:<17} {process.url}  (/healthz /readyz /metrics)")
    print(f"  sms webhook       {system.public_url}/v1/sms/twilio")
    print(f"  email (SMTP in)   127.0.0.1:{system.smtp_port}  (to {DEV_SUPPORT_ADDRESS})")
    print(f"  chat widget demo  {system.public_url}/chat/demo")
    print(f"  twilio sandbox    {system.twilio_url}/sandbox/messages  (SMS sent)")
    print(f"  x sandbox         {system.x_url}/sandbox/dms  (DMs sent; mentions polled)")
    _print_agent_socket(system.processes, system.config)
    print(f"  logs              {system.logs}", flush=True)


def _print_agent_socket(processes: list[ServiceProcess], config: Path) -> None:
    """The agent console and the hub's websocket URL, with a dev token for every queue of the
    configuration (in the console's URL fragment, which the browser never sends)."""
    hub = next(p for p in processes if p.name == "hub")
    token = agent_tokens().issue("dev-agent", load_config(config).queues)
    ws_url = hub.url.replace("http://", "ws://", 1) + WS_PATH
    print(f"  agent console     {hub.url}{CONSOLE_PATH}#token={token}")
    print(f"  agent websocket   {ws_url}?token={token}")
    print("                    (protocol: docs/hub-protocol.md)")


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
