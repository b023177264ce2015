"""Fault drills under steady load (issue #9, point 3), each followed by an audit of every topic.

One running system (ingest, router, sla, outbound, hub as processes, on their own Redis with
append-only persistence) takes SMS, email and chat at a steady rate for the whole sequence
while the drills run one after another:

- SIGKILL and restart each of ingest, router, sla, outbound, hub;
- SIGSTOP each consumer (router, sla, outbound, hub) for longer than the 3 s Kafka session
  timeout of the tests' services, then SIGCONT (the group has moved on without it);
- stop Redis and start it again on the same port and directory (append-only file kept);
- make the Twilio sandbox refuse sends: the issue's "a minute" is scaled to outbound's retry
  budget. Outbound tries a send 5 times with full-jitter back-off of at most 0.5, 1, 2, 4 s
  (at most 7.5 s in all), so a minute of failures would dead-letter every SMS in it; a burst of
  scripted refusals (503s, then 429s with ``Retry-After: 1``) about as long as a command's first
  retries shows the same behaviour: retries, then delivery, and a final receipt either way.

Customers write like providers deliver: the same provider id is sent again, after a short
back-off, until ingest acknowledges it (2xx, SMTP 250, chat ``ack``), so a message refused
while ingest or Redis was down is retried, not lost; the ledger keeps every acknowledged id. An
agent answers every other new conversation through the hub, so some clocks are met and the
others warn and breach (a 4 s policy with a 2 s warning) while the drills run.

After each drill the audit (:mod:`tests.support.audit`) waits until what was acknowledged and
commanded before it has been processed, reads every topic to its end, and reports counts and
the problems that drill introduced; the test fails at the first drill with a problem (or
whose work never settled), with every drill's report so far, and else at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Final

import aiohttp
import aiosmtplib
import pytest

from libs.common.events import Channel, ConversationRouted
from libs.contracts.agent_access import WS_PATH as HUB_WS_PATH
from libs.contracts.agent_access import AgentTokens
from services.ingest.chat import SESSION_PATH
from services.ingest.chat import WS_PATH as CHAT_WS_PATH
from tests.support.audit import Audit, Findings, Ledger, TopicLog, topic_log
from tests.support.deadline import patience
from tests.support.harness import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Isolation, Launch, TwilioFake
from tests.support.kafka import wait_until
from tests.support.mail import SmtpClient
from tests.support.webhooks import encode_form, sign_twilio
from tooling.devstack import DevStack, RedisServer, ServiceProcess, free_port
from tooling.hubclient import ActionFailed, HubClient, HubClosed
from tooling.sandbox.smtp import smtp_sandbox
from tooling.sandbox.twilio import sms_webhook_form
from tooling.simulate.customers import Customers, Endpoints

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(patience(200))]

RATE: Final = 12.0
"""New customer messages per second, SMS, email and chat in turn."""
PAUSE_SECONDS: Final = 4.5
"""How long a SIGSTOPped consumer stays stopped: past the 3 s session timeout of service_env."""
REDIS_DOWN_SECONDS: Final = 3.0
PROGRESS: Final = 15
"""Messages acknowledged under load between drills, so each drill hits a moving system."""
SUPPORT: Final = "help@shop.example"
CHAT_KEY: Final = "drills-chat-session-key-0123456789abcdef"
AGENT_KEY: Final = "drills-agent-token-key-0123456789abcdef"
WARN_BEFORE: Final = timedelta(seconds=2)
CONFIG: Final = """\
version: 1
queues:
  desk: {}
sla_policies:
  blink:
    first_response: {within: 4s, business_hours: false, warn_before: [2s]}
rules:
  - name: all
    then: {queue: desk, priority: 2, sla_policy: blink, auto_reply: ack}
templates:
  ack:
    sms: {en: "Thanks! Your reference is {{ reference }}. We'll reply {{ promise }}."}
    chat: {en: "Thanks! Your reference is {{ reference }}."}
    email: {en: "Thanks for writing. Your reference is {{ reference }}."}
"""
CONSUMERS: Final = ("router", "sla", "outbound", "hub")
SERVICES: Final = ("ingest", *CONSUMERS)


class Traffic:
    """Customers writing at a steady rate; every message is delivered provider-style: the same
    provider id again after a back-off until ingest acknowledges it, then put in the ledger.

    :class:`Customers` mints a new provider id per attempt (it counts failures, it does not
    retry), so a retry through it would be a second message; its texts are reused here."""

    def __init__(
        self,
        endpoints: Endpoints,
        http: aiohttp.ClientSession,
        ledger: Ledger,
        give_up: float = 90.0,
    ) -> None:
        self._endpoints = endpoints
        self._http = http
        self._ledger = ledger
        self._texts = Customers(endpoints, http)
        self._give_up = give_up
        self._tasks: set[asyncio.Task[None]] = set()
        self.abandoned: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        channels: tuple[Channel, ...] = ("sms", "email", "chat")
        n = 0
        while not stop.is_set():
            task = asyncio.create_task(self._deliver(channels[n % 3], n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / RATE)
        await asyncio.gather(*self._tasks)

    async def _deliver(self, channel: Channel, n: int) -> None:
        attempt = self._attempt(channel, n)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up
        while True:
            provider_id = await attempt()
            if provider_id is not None:
                self._ledger.accept(channel, provider_id, datetime.now(UTC))
                return
            self._ledger.retries[channel] += 1
            if loop.time() > deadline:
                self.abandoned.append(f"{channel} {n}")
                return
            await asyncio.sleep(0.3)  # the provider's back-off between deliveries

    def _attempt(self, channel: Channel, n: int) -> Callable[[], Awaitable[str | None]]:
        text = self._texts.scenario_text()
        if channel == "sms":
            return self._sms(n, text)
        if channel == "email":
            return self._email(n, text)
        return self._chat(n, text)

    def _sms(self, n: int, text: str) -> Callable[[], Awaitable[str | None]]:
        # A phone number comes back every 3,000 messages: a later one joins its conversation.
        form = sms_webhook_form(
            sender=f"+1415{n % 3000:07d}", recipient=OUR_NUMBER, body=text, account_sid=ACCOUNT_SID
        )
        url = f"{self._endpoints.public_url}/v1/sms/twilio"

        async def attempt() -> str | None:
            try:
                async with self._http.post(
                    url, data=encode_form(form), headers=sign_twilio(url, form, AUTH_TOKEN)
                ) as response:
                    if response.status >= 500 or response.status == 429:
                        return None
                    assert response.status == 200, await response.text()
                    return form["MessageSid"]
            except (aiohttp.ClientError, TimeoutError):
                return None

        return attempt

    def _email(self, n: int, text: str) -> Callable[[], Awaitable[str | None]]:
        message = EmailMessage()
        message["From"] = f"Customer {n} <customer{n}@example.org>"
        message["To"] = SUPPORT
        message["Date"] = formatdate()
        message["Message-ID"] = make_msgid(domain="example.org")
        message["Subject"] = "My order"
        message.set_content(text)
        client = SmtpClient(self._endpoints.smtp_port, SUPPORT)

        async def attempt() -> str | None:
            try:
                async with asyncio.timeout(15):
                    code, reply = await client.send(message.as_bytes())
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                return None
            if 400 <= code < 500:
                return None
            assert code == 250, f"{code} {reply}"
            return str(message["Message-ID"])

        return attempt

    def _chat(self, n: int, text: str) -> Callable[[], Awaitable[str | None]]:
        base = self._endpoints.ingest_url
        client_id = f"drill-{n}"
        session: dict[str, str] = {}

        async def attempt() -> str | None:
            try:
                async with asyncio.timeout(15):
                    if not session:
                        async with self._http.post(base + SESSION_PATH) as response:
                            if response.status != 200:
                                return None
                            session.update(await response.json())
                    async with self._http.ws_connect(
                        base + CHAT_WS_PATH, params={"token": session["token"]}
                    ) as socket:
                        ready = await socket.receive_json()
                        frame = {"type": "message", "client_id": client_id, "text": text}
                        await socket.send_json(frame)
                        while True:
                            answer = await socket.receive_json()
                            if answer.get("client_id") != client_id:
                                continue
                            if answer.get("type") == "ack":
                                return f"{ready['visitor_id']}:{client_id}"
                            assert answer.get("retry"), answer
                            return None
            except (aiohttp.ClientError, TypeError, ValueError, TimeoutError):
                return None  # socket closed mid-exchange (ingest went away): resend

        return attempt


@dataclass
class Agent:
    """Answers every other new conversation through the hub, resending the same action (same
    client id, so the same event) until the hub acknowledges it."""

    url: Callable[[], str]
    """The hub's websocket URL (a restarted hub listens on a new port)."""
    token: str
    http: aiohttp.ClientSession
    log: TopicLog
    replied: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)

    def wanted(self) -> list[str]:
        routed = self.log.of(self.log.topics.routed, ConversationRouted)
        new = [e.data.conversation_id for e in routed if isinstance(e.data, ConversationRouted)]
        return [c for c in dict.fromkeys(new) if zlib.crc32(c.encode()) % 2 == 0]

    async def run(self, stop: asyncio.Event) -> None:
        client: HubClient | None = None
        try:
            while not stop.is_set():
                todo = [c for c in self.wanted() if c not in self.replied]
                if not todo:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
                    continue
                try:
                    if client is None:
                        client = HubClient(self.url(), self.token, session=self.http)
                        await asyncio.wait_for(client.connect(), 5)
                    for conversation in todo:
                        await self._reply(client, conversation)
                except (HubClosed, aiohttp.ClientError, OSError, TimeoutError):
                    if client is not None:
                        await client.close()
                    client = None
                    await asyncio.sleep(0.3)  # back-off before reconnecting
        finally:
            if client is not None:
                await client.close()

    async def _reply(self, client: HubClient, conversation: str) -> None:
        try:
            await asyncio.wait_for(
                client.act(
                    "reply",
                    conversation,
                    action_id=f"r-{conversation[:40]}",
                    text=f"Looking into it now ({conversation})",
                ),
                5,
            )
        except ActionFailed as exc:
            if exc.retry or exc.code == "unknown_conversation":
                return  # the hub has not seen it yet, or is busy: next round
            self.refused.append(f"{conversation}: {exc}")
        self.replied.add(conversation)


@dataclass
class System:
    """The running services by name; restarts one the way Kubernetes would."""

    launch: Launch
    env: dict[str, str]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    crashed: list[str] = field(default_factory=list)

    async def start(self) -> None:
        for process in await self.launch(list(SERVICES), self.env):
            self.processes[process.name] = process

    async def restart(self, name: str) -> None:
        [self.processes[name]] = await self.launch([name], self.env)

    async def revive(self) -> None:
        """Restart what exited on its own (a crash the drill caused), noting it."""
        for name, process in list(self.processes.items()):
            if process.process is not None and process.process.poll() is not None:
                self.crashed.append(f"{name} (exit {process.process.returncode})")
                await self.restart(name)


@contextlib.asynccontextmanager
async def own_redis() -> AsyncIterator[RedisServer]:
    """This test stops Redis, so it has its own, with append-only persistence."""
    server = RedisServer(appendonly=True)
    await server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@dataclass
class Drill:
    """The five services under steady customer traffic with an agent answering, and the
    audit that judges what they did: what every drill of the system's processes starts from."""

    system: System
    ledger: Ledger
    traffic: Traffic
    agent: Agent
    audit: Audit
    running: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop_load(self) -> None:
        """Customers stop writing and the agent stops answering (before the final audit)."""
        self.stopping.set()
        await asyncio.gather(*self.running)

    async def under_load(self) -> None:
        """Until another ``PROGRESS`` messages were accepted: the system takes traffic."""
        target = len(self.ledger.accepted) + PROGRESS
        await wait_until(
            lambda: len(self.ledger.accepted) >= target, timeout=60, message="traffic accepted"
        )


@contextlib.asynccontextmanager
async def drill_under_load(
    redis_url: str,
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    http: aiohttp.ClientSession,
    config: Path,
) -> AsyncIterator[Drill]:
    """Start the services on ``redis_url`` with the drills' configuration, customers writing and
    an agent answering; traffic and agent stop when the block ends."""
    await asyncio.to_thread(config.write_text, CONFIG)
    ledger = Ledger()
    async with (
        smtp_sandbox() as (_, relay_port),
        topic_log(stack.broker.bootstrap_servers, isolation.topics) as log,
    ):
        smtp_port = free_port()
        env = {
            **service_env,
            "REDIS_URL": redis_url,
            "SWITCHBOARD_CONFIG": str(config),
            "SWITCHBOARD_SMTP_PORT": str(smtp_port),
            "SWITCHBOARD_SMTP_RECIPIENTS": SUPPORT,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(relay_port),
            "SMTP_STARTTLS": "false",
            "SMTP_FROM": f"Shop <{SUPPORT}>",
            "CHAT_SESSION_KEY": CHAT_KEY,
            "AGENT_TOKEN_KEY": AGENT_KEY,
        }
        system = System(launch, env)
        await system.start()
        endpoints = Endpoints(
            ingest_url=env["SWITCHBOARD_PUBLIC_URL"],
            public_url=env["SWITCHBOARD_PUBLIC_URL"],
            twilio_auth_token=AUTH_TOKEN,
            our_number=OUR_NUMBER,
            support_address=SUPPORT,
            smtp_port=smtp_port,
        )
        traffic = Traffic(endpoints, http, ledger)
        agent = Agent(
            url=lambda: system.processes["hub"].url.replace("http://", "ws://", 1) + HUB_WS_PATH,
            token=AgentTokens(AGENT_KEY).issue("drill-agent", ["desk"]),
            http=http,
            log=log,
        )
        audit = Audit(
            log,
            ledger,
            {("blink", "first_response"): (WARN_BEFORE,)},
            lambda: list(twilio.sandbox.messages),
        )
        drill = Drill(system, ledger, traffic, agent, audit)
        drill.running += [
            asyncio.create_task(traffic.run(drill.stopping)),
            asyncio.create_task(agent.run(drill.stopping)),
        ]
        try:
            yield drill
        finally:
            await drill.stop_load()


async def test_fault_drills_under_load_lose_nothing_and_do_nothing_twice(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    reports: list[Findings] = []
    blamed: list[str] = []
    async with (
        own_redis() as redis,
        drill_under_load(
            redis.url, stack, isolation, service_env, launch, twilio, http, tmp_path / "drills.yaml"
        ) as drill,
    ):
        system, ledger, audit, under_load = (
            drill.system,
            drill.ledger,
            drill.audit,
            drill.under_load,
        )
        traffic, agent = drill.traffic, drill.agent

        async def audited(name: str) -> None:
            await system.revive()
            findings = await audit.judge(audit.checkpoint(name, datetime.now(UTC)))
            known = {p for f in reports for p in f.problems}
            new = [p for p in findings.problems if p not in known]
            blamed.append(findings.summary(new))
            reports.append(findings)
            print(blamed[-1], flush=True)
            if new or not findings.settled:  # later drills would wait on the same lost work
                raise AssertionError("\n".join(blamed))

        try:
            await under_load()
            await audited("warm-up")
            for name in SERVICES:
                system.processes[name].kill()
                await system.restart(name)
                await under_load()
                await audited(f"SIGKILL {name}")
            for name in CONSUMERS:
                system.processes[name].signal(signal.SIGSTOP)
                await asyncio.sleep(PAUSE_SECONDS)  # the fault's length, not a wait for a result
                system.processes[name].signal(signal.SIGCONT)
                await under_load()
                await audited(f"SIGSTOP {name}")
            redis.stop()
            await asyncio.sleep(REDIS_DOWN_SECONDS)  # the outage's length
            await redis.start()
            await system.revive()
            await under_load()
            await audited("Redis stopped and restarted")
            requests_before = twilio.sandbox.requests
            for status, count, retry_after in ((503, 12, None), (429, 12, 1.0)):
                async with http.post(
                    f"{twilio.url}/sandbox/failures",
                    json={"status": status, "count": count, "retry_after": retry_after},
                ) as response:
                    assert response.status == 200
            await wait_until(
                lambda: not twilio.sandbox.failures, timeout=60, message="the scripted failures"
            )
            await under_load()
            await audited("Twilio refusing sends")
            refused_requests = twilio.sandbox.requests - requests_before
        finally:
            await drill.stop_load()
        # Judged as of 5 s from now, when every clock started so far has fallen due (4 s
        # policy): the audit waits for those points to be published.
        findings = await audit.judge(
            audit.checkpoint("final", datetime.now(UTC) + timedelta(seconds=5))
        )
        known = {p for f in reports for p in f.problems}
        blamed.append(findings.summary(p for p in findings.problems if p not in known))

    report = "\n".join(blamed)
    if system.crashed:
        report += f"\nprocesses that exited on their own and were restarted: {system.crashed}"
    print(report)
    assert not traffic.abandoned, f"messages never accepted: {traffic.abandoned[:5]}\n{report}"
    assert all(f.settled for f in [*reports, findings]), report
    assert not findings.problems, report
    assert findings.counts["acknowledged"] == len(ledger.accepted), report
    assert findings.counts["sla met"] > 0, report
    assert findings.counts["sla breached"] > 0, report
    assert findings.counts["sent after retries"] > 0, report  # retried, then delivered
    assert refused_requests > 24, report
    assert not agent.refused, agent.refused[:5]
