"""``switchboard dev``: the whole system on one machine, no root, no Docker, no accounts.

Starts the embedded broker and Redis, sandboxes standing in for the providers (Twilio's
Messages API, the X API for mentions and DMs, an SMTP relay that keeps outbound mail), the four
services and the agent hub as their own processes; prints where everything is, then a live
line for every routed conversation, SLA event, incident and outbound message (with its reference
and recipient: what the sandboxes caught); restarts a service that dies (:mod:`tooling.supervise`);
stops it all on Ctrl-C. A start-up failure prints the cause from the failing service's log.
``switchboard dev sms TEXT`` sends a signed Twilio webhook to a running dev stack.
``switchboard simulate`` runs the same system with simulated customers and agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from twilio.request_validator import RequestValidator

from libs.common.config import load_config
from libs.common.events import (
    ConversationRouted,
    Event,
    IncidentDetected,
    InvalidEvent,
    OutboundCommand,
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
from tooling.devstack import (
    SERVICES,
    DevStack,
    DevStackError,
    LocalRedisCluster,
    RedisServer,
    ServiceProcess,
    free_port,
)
from tooling.sandbox.smtp import Mailbox, smtp_sandbox
from tooling.sandbox.twilio import TwilioSandbox, sms_webhook_form
from tooling.sandbox.x import XSandbox
from tooling.simulate.customers import Endpoints
from tooling.supervise import supervise

DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_NUMBER = "+15005550006"
DEV_X_USER_ID = "1000000001"
DEV_SUPPORT_ADDRESS = "help@shop.example"
DEV_CUSTOMER_NUMBER = "+14155550100"
SMS_WEBHOOK_PATH = "/v1/sms/twilio"
T = TypeVar("T")
FEED_MEMORY = 10_000
"""Conversations and commands the live feed remembers, to name references in later lines."""

DEV_MODEL_CACHE = Path.home() / ".cache" / "switchboard" / "models"
"""Where the dev router keeps fitted issue-type models (unless ``SWITCHBOARD_MODEL_CACHE`` says
otherwise): a second ``make run`` on the same examples loads the model instead of fitting it."""

RedisKind = Literal["node", "cluster"]
"""What ``switchboard dev --redis`` starts: one Redis, or a local Redis Cluster."""


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
async def dev_system(
    config: Path, public_port: int, redis: RedisKind = "node"
) -> AsyncIterator[DevSystem]:
    """The embedded broker and Redis (one node, or a six-node local cluster), provider
    sandboxes (Twilio, X, an SMTP relay) and every service as its own process, ready; all
    stopped when the block ends."""
    logs = Path(tempfile.mkdtemp(prefix="switchboard-dev-"))
    stack = DevStack(redis=LocalRedisCluster() if redis == "cluster" else RedisServer())
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
                "SWITCHBOARD_MODEL_CACHE": os.environ.get(
                    "SWITCHBOARD_MODEL_CACHE", str(DEV_MODEL_CACHE)
                ),
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
        for process in processes:  # all drain at once, then each is waited for
            process.signal(signal.SIGTERM)
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


async def run_dev(config: Path, public_port: int, redis: RedisKind = "node") -> int:
    try:
        async with dev_system(config, public_port, redis) as system:
            print_endpoints(system)
            print(
                f"\nSend an SMS: switchboard dev sms 'where is my order?' --port {public_port}"
                "; watch the lines below. Ctrl-C stops."
            )
            tasks = [
                asyncio.create_task(
                    _print_feed(system.stack.broker.bootstrap_servers, Topics.with_prefix())
                ),
                *(asyncio.create_task(supervise(p, _say)) for p in system.processes),
            ]
            await until_signalled()
            for task in tasks:  # before the processes stop: their exit is no failure now
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            print("\nstopping…", flush=True)
    except DevStackError as exc:
        print(f"switchboard dev: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


async def send_sms(text: str, port: int, sender: str | None = None) -> int:
    """Send ``text`` as Twilio would to the dev stack's ingest on ``port``: signed with the dev
    auth token over that port's public URL. Returns the HTTP status."""
    url = f"http://127.0.0.1:{port}{SMS_WEBHOOK_PATH}"
    form = sms_webhook_form(
        sender=sender or DEV_CUSTOMER_NUMBER,
        recipient=DEV_NUMBER,
        body=text,
        account_sid=DEV_ACCOUNT_SID,
    )
    signature = RequestValidator(DEV_AUTH_TOKEN).compute_signature(url, form)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response,
    ):
        print(f"{response.status} {await response.text()}".strip())
        return response.status


def print_endpoints(system: DevSystem) -> None:
    print("Switchboard dev stack is up.\n")
    print(f"  kafka bootstrap   {system.stack.broker.bootstrap_servers}")
    print(f"  redis             {system.stack.redis.url}")
    for process in system.processes:
        print(f"  {process.name:<17} {process.url}  (pid {process.pid}; /healthz /readyz /metrics)")
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
    """One line per routed conversation, SLA event, incident and outbound message, as they
    happen."""
    consumer = AIOKafkaConsumer(
        topics.routed,
        topics.sla_events,
        topics.outbound_commands,
        topics.outbound_status,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="latest",
    )
    feed = Feed()
    await consumer.start()
    try:
        async for record in consumer:
            try:
                event = decode(record.value, record.headers)
            except InvalidEvent:
                continue
            line = feed.describe(event)
            if line is not None:
                print(line, flush=True)
    finally:
        await consumer.stop()


class Feed:
    """The live lines: by reference, never by raw id. It remembers (boundedly) each
    conversation's reference and each outbound command's reference and recipient, which
    incidents and receipts do not carry; a receipt read before its command (another topic)
    waits for it."""

    def __init__(self) -> None:
        self._references: OrderedDict[str, str] = OrderedDict()
        self._commands: OrderedDict[str, OutboundCommand] = OrderedDict()
        self._early: OrderedDict[str, OutboundReceipt] = OrderedDict()

    def describe(self, event: Event) -> str | None:
        data = event.data
        if isinstance(data, ConversationRouted):
            _remember(self._references, data.conversation_id, data.reference)
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
        if isinstance(data, IncidentDetected):
            first = self._references.get(data.first_conversation_id, "an earlier conversation")
            return (
                f"incident  {data.issue_type}: {data.customers} customers within "
                f"{data.window_seconds:.0f}s (first {first}) -> {data.queue or 'its queue'}"
            )
        if isinstance(data, OutboundCommand):
            receipt = self._early.pop(data.command_id, None)
            if receipt is not None:
                return _outbound_line(data, receipt)
            _remember(self._commands, data.command_id, data)
            return None
        if isinstance(data, OutboundReceipt):
            command = self._commands.pop(data.command_id, None)
            if command is not None:
                return _outbound_line(command, data)
            _remember(self._early, data.command_id, data)
        return None


def _outbound_line(command: OutboundCommand, receipt: OutboundReceipt) -> str:
    what = f"{command.channel} {command.kind.replace('_', ' ')} to {command.recipient}"
    outcome = receipt.status if receipt.error is None else f"{receipt.status}: {receipt.error}"
    return f"outbound  {command.reference} {what}: {outcome}"


def _remember(memory: OrderedDict[str, T], key: str, value: T) -> None:
    memory[key] = value
    while len(memory) > FEED_MEMORY:
        memory.popitem(last=False)
