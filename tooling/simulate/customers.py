"""Simulated customers of an online store, writing in through the providers' real wire formats.

Each conversation picks a channel by the mix and a scenario (order status, returns, a payment
failure, a login problem) and sends its first message the way the provider delivers it: a
Twilio-signed SMS webhook, an SMTP session, chat websocket frames, an X mention that ingest's
poller reads from the X API sandbox. Some customers write again in the same thread. A spike
sends one broad-impact problem from many customers within seconds, as an outage does. What
the system writes back to a chat customer reaches ``on_chat_reply``; a customer answers a
survey (:mod:`.surveys`) through :meth:`Customers.answer`, on the thread, the same way.
Texts are Bitext customer-service utterances (config/examples, CDLA-Sharing 1.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Final

import aiohttp
import aiosmtplib
from twilio.request_validator import RequestValidator

from libs.common.events import Channel
from tooling.sandbox.twilio import sms_webhook_form, whatsapp_form
from tooling.simulate.summary import Latencies

EXAMPLES: Final = Path(__file__).parents[2] / "config" / "examples" / "customer-service.csv"
SCENARIOS: Final[Mapping[str, tuple[str, ...]]] = {
    "order status": ("track_order", "delivery_period", "change_order"),
    "returns": ("get_refund", "track_refund", "check_refund_policy"),
    "payment failure": ("payment_issue", "check_payment_methods"),
    "login problem": ("recover_password", "registration_problems"),
}
SPIKE_TEXT: Final = "Checkout is broken: my card payment keeps failing with an error on your site"
FOLLOW_UP_TEXT: Final = "Any news on this? I am still waiting."
CHANNELS: Final[tuple[Channel, ...]] = ("sms", "whatsapp", "email", "chat", "social")
SEND_TIMEOUT: Final = 15.0
ACCOUNT: Final = "AC" + "0" * 32
"""The Twilio account the simulated webhooks name (ingest keeps it in the raw reference)."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a simulated customer's messages go, and the secrets providers sign them with."""

    ingest_url: str
    public_url: str
    twilio_auth_token: str
    our_number: str
    support_address: str
    smtp_port: int
    x_sandbox_url: str | None = None
    x_user_id: str | None = None
    twilio_sandbox_url: str | None = None
    """The Twilio sandbox, told of every WhatsApp message so it knows each 24-hour window."""


def parse_mix(text: str) -> dict[Channel, float]:
    """``sms=4,whatsapp=2,email=3,chat=2,social=1`` as weights (missing channels get none)."""
    weights: dict[Channel, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        channel = next((c for c in CHANNELS if c == name.strip()), None)
        if channel is None:
            raise ValueError(f"unknown channel {name.strip()!r} (one of {', '.join(CHANNELS)})")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"weight of {channel} is not a number: {value!r}") from None
        if weight < 0:
            raise ValueError(f"weight of {channel} is negative")
        weights[channel] = weight
    if not any(weights.values()):
        raise ValueError("the mix gives every channel a weight of zero")
    return weights


def load_texts(path: Path = EXAMPLES) -> dict[str, list[str]]:
    """Utterances by scenario."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            by_intent[row["intent"]].append(row["utterance"])
    return {
        scenario: [text for intent in intents for text in by_intent[intent]]
        for scenario, intents in SCENARIOS.items()
    }


@dataclass
class ChatVisitor:
    """An open chat socket and the acks its reader is waiting for."""

    socket: aiohttp.ClientWebSocketResponse
    acks: dict[str, asyncio.Future[None]] = field(default_factory=dict)


@dataclass
class Thread:
    """One simulated customer's conversation on one channel."""

    channel: Channel
    number: int
    thread_key: str = ""
    root_message_id: str = ""
    chat: ChatVisitor | None = None


@dataclass
class TrafficStats:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    chat_replies: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    """Survey answers sent on a thread, by channel (not messages: they open nothing)."""


class Customers:
    """Sends simulated customers' messages; one instance per run. Accepted messages are noted
    in ``latencies`` (when given) to be matched with their arrivals."""

    def __init__(
        self,
        endpoints: Endpoints,
        http: aiohttp.ClientSession,
        latencies: Latencies | None = None,
        *,
        seed: int = 1,
        texts: dict[str, list[str]] | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._http = http
        self._rng = random.Random(seed)
        self._texts = texts or load_texts()
        self._validator = RequestValidator(endpoints.twilio_auth_token)
        self._run = uuid.uuid4().hex[:6]
        self._numbers = iter(range(1, 10**9))
        self._readers: set[asyncio.Task[None]] = set()
        self._visitors: list[ChatVisitor] = []
        self._latencies = latencies
        self._threads: dict[str, Thread] = {}
        self.stats = TrafficStats()
        self.on_chat_reply: Callable[[Thread, str], None] | None = None
        """Told of every reply frame a chat customer's socket receives (its text)."""

    def scenario_text(self) -> str:
        scenario = self._rng.choice(list(self._texts))
        return self._rng.choice(self._texts[scenario])

    def new_thread(self, channel: Channel) -> Thread:
        return Thread(channel=channel, number=next(self._numbers))

    def thread(self, thread_key: str) -> Thread | None:
        """The conversation of a thread key that one of these customers started."""
        return self._threads.get(thread_key)

    async def send(self, thread: Thread, text: str) -> None:
        """Deliver one message of ``thread``; failures are counted, never raised."""
        started = time.monotonic()
        if not await self._deliver(thread, text):
            return
        self.stats.sent[thread.channel] += 1
        self._threads[thread.thread_key] = thread
        if self._latencies is not None:
            self._latencies.accepted(thread.thread_key, started)

    async def answer(self, thread: Thread, text: str) -> bool:
        """Reply to a survey on ``thread`` with ``text`` (a bare score): whether it was
        accepted. Not a message: it opens nothing, so it is counted apart."""
        if not await self._deliver(thread, text):
            return False
        self.stats.answers[thread.channel] += 1
        return True

    async def _deliver(self, thread: Thread, text: str) -> bool:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                match thread.channel:
                    case "sms":
                        await self._sms(thread, text)
                    case "whatsapp":
                        await self._whatsapp(thread, text)
                    case "email":
                        await self._email(thread, text)
                    case "chat":
                        await self._chat(thread, text)
                    case "social":
                        await self._mention(thread, text)
        except (aiohttp.ClientError, aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.stats.failed[thread.channel] += 1
            self.stats.last_error = f"{thread.channel}: {type(exc).__name__}: {exc}"[:200]
            return False
        return True

    async def close(self) -> None:
        for visitor in self._visitors:
            await visitor.socket.close()
        for task in list(self._readers):
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    # --- channels ---------------------------------------------------------------------------

    def _phone(self, thread: Thread) -> str:
        return f"+1415{thread.number % 10_000_000:07d}"

    async def _sms(self, thread: Thread, text: str) -> None:
        phone = self._phone(thread)
        thread.thread_key = f"sms:{self._endpoints.our_number}:{phone}"
        form = sms_webhook_form(
            sender=phone, recipient=self._endpoints.our_number, body=text, account_sid=ACCOUNT
        )
        await self._post_twilio(form)

    async def _whatsapp(self, thread: Thread, text: str) -> None:
        """A WhatsApp message as Twilio posts it, on the SMS webhook; the sandbox hears of it
        first, as Twilio would, so the acknowledgement goes out inside the window."""
        phone = self._phone(thread)
        thread.thread_key = f"whatsapp:{self._endpoints.our_number}:{phone}"
        sandbox = self._endpoints.twilio_sandbox_url
        if sandbox is None:
            form = whatsapp_form(
                sender=phone,
                recipient=self._endpoints.our_number,
                body=text,
                profile_name=f"Customer {thread.number}",
                sid="SM" + uuid.uuid4().hex,
                account_sid=ACCOUNT,
            )
        else:
            spec = {"from": phone, "to": self._endpoints.our_number, "body": text}
            async with self._http.post(f"{sandbox}/sandbox/whatsapp/inbound", json=spec) as answer:
                answer.raise_for_status()
                form = await answer.json()
        await self._post_twilio(form)

    async def _post_twilio(self, form: dict[str, str]) -> None:
        path = "/v1/sms/twilio"
        signature = self._validator.compute_signature(self._endpoints.public_url + path, form)
        async with self._http.post(
            self._endpoints.ingest_url + path, data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            response.raise_for_status()

    async def _email(self, thread: Thread, text: str) -> None:
        message = EmailMessage()
        message["From"] = (
            f"Customer {thread.number} <customer{thread.number}.{self._run}@example.org>"
        )
        message["To"] = self._endpoints.support_address
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="example.org")
        if thread.root_message_id:
            message["Subject"] = "Re: my order"
            message["In-Reply-To"] = thread.root_message_id
            message["References"] = thread.root_message_id
        else:
            message["Subject"] = "My order"
            thread.root_message_id = message["Message-ID"]
            thread.thread_key = f"email:{thread.root_message_id.strip('<>')}"
        message.set_content(text)
        await aiosmtplib.send(
            message, hostname="127.0.0.1", port=self._endpoints.smtp_port, start_tls=False
        )

    async def _chat(self, thread: Thread, text: str) -> None:
        if thread.chat is None or thread.chat.socket.closed:
            base = self._endpoints.ingest_url
            async with self._http.post(f"{base}/v1/chat/session") as response:
                response.raise_for_status()
                session = await response.json()
            socket = await self._http.ws_connect(
                f"{base}/v1/chat/ws", params={"token": session["token"]}
            )
            ready = await socket.receive_json()
            thread.chat = ChatVisitor(socket)
            self._visitors.append(thread.chat)
            thread.thread_key = f"chat:{ready['visitor_id']}"
            reader = asyncio.create_task(self._read_chat(thread))
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)
        client_id = uuid.uuid4().hex
        acked = asyncio.get_running_loop().create_future()
        thread.chat.acks[client_id] = acked
        try:
            await thread.chat.socket.send_json(
                {"type": "message", "client_id": client_id, "text": text}
            )
            await acked
        finally:
            thread.chat.acks.pop(client_id, None)

    async def _read_chat(self, thread: Thread) -> None:
        """Read the visitor's socket (the server cuts off visitors that do not) and settle acks."""
        visitor = thread.chat
        assert visitor is not None
        async for message in visitor.socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = message.json()
            waiting = visitor.acks.get(str(frame.get("client_id")))
            if frame.get("type") == "reply":
                self.stats.chat_replies += 1
                if self.on_chat_reply is not None:
                    self.on_chat_reply(thread, str(frame.get("text") or ""))
            elif waiting is not None and not waiting.done():
                if frame.get("type") == "ack":
                    waiting.set_result(None)
                else:
                    waiting.set_exception(aiohttp.ClientError(f"chat frame: {frame}"))
        for waiting in visitor.acks.values():
            if not waiting.done():
                waiting.set_exception(aiohttp.ClientError("chat socket closed"))

    async def _mention(self, thread: Thread, text: str) -> None:
        if not (self._endpoints.x_sandbox_url and self._endpoints.x_user_id):
            raise aiohttp.ClientError("no X sandbox configured")
        author = str(4_000_000_000 + thread.number)
        spec = {
            "mentioned": self._endpoints.x_user_id,
            "author_id": author,
            "author_username": f"shopper{thread.number}",
            "author_name": f"Shopper {thread.number}",
            "text": f"@shop {text}",
        }
        if thread.thread_key:
            spec["conversation_id"] = thread.thread_key.removeprefix("x:")
        async with self._http.post(
            f"{self._endpoints.x_sandbox_url}/sandbox/mentions", json=spec
        ) as response:
            response.raise_for_status()
            tweet = await response.json()
        thread.thread_key = f"x:{tweet['conversation_id']}"


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """How much traffic, on which channels, for how long."""

    rate: float
    """New messages per second, all channels together (arrivals are Poisson)."""
    mix: Mapping[Channel, float]
    duration: float | None = None
    """Seconds of traffic; ``None``: until stopped."""
    follow_up: float = 0.2
    """Share of conversations whose customer writes a second time, a few seconds later."""
    spike_at: float | None = None
    """Seconds after the start when one broad-impact problem arrives from many customers."""
    spike_size: int = 25
    max_in_flight: int = 64


async def run_traffic(customers: Customers, plan: TrafficPlan, stop: asyncio.Event) -> None:
    """Send the planned traffic until its duration is over or ``stop`` is set."""
    rng = random.Random(7)
    channels = [c for c in plan.mix if plan.mix[c] > 0]
    weights = [plan.mix[c] for c in channels]
    slots = asyncio.Semaphore(plan.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def converse(thread: Thread, text: str, again: bool) -> None:
        async with slots:
            await customers.send(thread, text)
        if again and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(3.0, 10.0))
            if not stop.is_set():
                async with slots:
                    await customers.send(thread, FOLLOW_UP_TEXT)

    def spawn(thread: Thread, text: str, again: bool) -> None:
        task = asyncio.create_task(converse(thread, text, again))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    spiked = plan.spike_at is None
    try:
        while not stop.is_set():
            elapsed = loop.time() - started
            if plan.duration is not None and elapsed >= plan.duration:
                break
            if not spiked and plan.spike_at is not None and elapsed >= plan.spike_at:
                spiked = True
                for _ in range(plan.spike_size):
                    channel = rng.choices(channels, weights)[0]
                    spawn(customers.new_thread(channel), SPIKE_TEXT, again=False)
            channel = rng.choices(channels, weights)[0]
            spawn(
                customers.new_thread(channel),
                customers.scenario_text(),
                rng.random() < plan.follow_up,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.expovariate(plan.rate))
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
