"""Live chat against the real broker and Redis: the chat part of ingest served in this process.

Frames in, normalised events on Kafka, acks only after Kafka, one event per client id,
hostile frames and tokens refused without harm, replies out of the visitor's mailbox.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from libs.common.clock import system_clock
from libs.common.events import MessageReceived, event_id
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import Keys
from libs.common.service import PRODUCER, REDIS, create_app
from libs.common.settings import Settings
from libs.common.socket_frames import FrameError
from libs.contracts.chat_mailbox import Mailbox, thread_key
from services.ingest.app import ACCEPTOR, accepting
from services.ingest.chat import SESSION_PATH, WS_PATH, Limits
from services.ingest.chat import install as install_chat
from services.ingest.chat.frames import parse
from services.ingest.chat.session import SessionTokens
from services.outbound.senders.base import OutgoingMessage
from services.outbound.senders.chat import ChatSender
from tests.conftest import ServeApp
from tests.support.harness import Isolation
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack

KEY = "chat-test-key-0123456789abcdef0123456789"
FRAME_TIMEOUT = 10.0
CODES = {"invalid_json", "invalid_frame", "unknown_type", "empty_text", "too_long", "invalid_email"}


class GatedProducer(EventProducer):
    """Holds every publish until the test opens the gate, and says when Kafka acknowledged."""

    def __init__(self, inner: EventProducer) -> None:
        super().__init__(inner.kafka)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.acknowledged = 0

    async def publish(
        self, outgoing: Iterable[Outgoing], extra_headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().publish(outgoing, extra_headers)
        self.acknowledged += 1


@dataclass
class Chat:
    url: str
    keys: Keys
    settings: Settings
    gated: list[GatedProducer]


async def serve_chat(
    stack: DevStack,
    isolation: Isolation,
    serve_app: ServeApp,
    limits: Limits | None = None,
    gated: bool = False,
    wrap_redis: Callable[[Redis], Redis] | None = None,
) -> Chat:
    settings = Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
        chat_session_key=KEY,
        chat_session_ttl=3600,
    )
    app = create_app(settings, "ingest")
    holders: list[GatedProducer] = []
    if gated:

        async def gate(app: web.Application) -> AsyncIterator[None]:
            holders.append(GatedProducer(app[PRODUCER]))
            app[PRODUCER] = holders[0]
            yield

        app.cleanup_ctx.append(gate)
    if wrap_redis is not None:

        async def wrap(app: web.Application) -> AsyncIterator[None]:
            app[REDIS] = wrap_redis(app[REDIS])
            yield

        app.cleanup_ctx.append(wrap)
    app.cleanup_ctx.append(accepting)  # after the gate and the wrap: it publishes through them
    install_chat(app, ACCEPTOR, limits)
    return Chat(await serve_app(app), Keys(isolation.key_prefix), settings, holders)


@pytest.fixture
async def chat(stack: DevStack, isolation: Isolation, serve_app: ServeApp) -> Chat:
    return await serve_chat(stack, isolation, serve_app)


async def new_session(http: aiohttp.ClientSession, chat: Chat, body: Any = None) -> dict[str, str]:
    async with http.post(f"{chat.url}{SESSION_PATH}", json=body) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        session: dict[str, str] = await response.json()
        return session


async def connect(
    http: aiohttp.ClientSession, chat: Chat, token: str, after: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    params = {"token": token, **({"after": after} if after else {})}
    ws = await http.ws_connect(f"{chat.url}{WS_PATH}", params=params)
    ready = await next_frame(ws)
    assert ready["type"] == "ready", ready
    return ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=FRAME_TIMEOUT)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
    frame: dict[str, Any] = json.loads(msg.data)
    return frame


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes; the code it closed with."""
    while True:
        msg = await ws.receive(timeout=FRAME_TIMEOUT)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return ws.close_code


def message(client_id: str, text: str = "hello", **extra: str) -> dict[str, str]:
    return {"type": "message", "client_id": client_id, "text": text, **extra}


# --- frames in, events out --------------------------------------------------------------------


async def test_message_is_published_as_one_event_and_acked_only_after_kafka(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    chat = await serve_chat(stack, isolation, serve_app, gated=True)
    [producer] = chat.gated
    session = await new_session(http, chat)
    visitor = session["visitor_id"]
    ws = await connect(http, chat, session["token"])
    frames: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            frames.append(await next_frame(ws))

    reader = asyncio.create_task(read())
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        await ws.send_json(
            message(
                "m-1",
                "  My card was declined twice  ",
                name=" Ada \n Lovelace",
                email="ada@example.org",
            )
        )
        await wait_until(producer.entered.is_set, message="the publish to start")
        before_kafka = list(frames)
        producer.gate.set()
        await wait_until(lambda: bool(frames), message="the ack")
        await wait_until(lambda: bool(seen.events), message="the event on Kafka")
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await ws.close()

    assert before_kafka == []
    assert frames == [{"type": "ack", "client_id": "m-1", "duplicate": False}]
    assert producer.acknowledged == 1
    [event] = seen.events
    [record] = seen.records
    assert record.key == f"chat:{visitor}".encode()
    assert event.id == event_id("chat", "widget", visitor, "m-1")
    assert event.source == "/ingest/chat"
    assert event.subject == f"chat:{visitor}"
    data = event.data
    assert isinstance(data, MessageReceived)
    assert data.channel == "chat"
    assert data.provider == "widget"
    assert data.provider_message_id == f"{visitor}:m-1"
    assert data.thread_key == thread_key(visitor) == f"chat:{visitor}"
    assert data.customer.display_name == "Ada Lovelace"
    assert data.customer.email == "ada@example.org"
    assert (data.customer.phone, data.customer.social_id) == (None, None)
    assert (data.recipient, data.subject, data.language) == (None, None, "en")
    assert data.text == "My card was declined twice"
    assert (data.attachments, data.automated, data.raw_ref) == ((), None, None)
    assert abs(data.received_at.timestamp() - time.time()) < 300


async def test_resent_client_id_is_acked_again_without_a_second_event(
    stack: DevStack, isolation: Isolation, chat: Chat, http: aiohttp.ClientSession
) -> None:
    session = await new_session(http, chat)
    async with collect(stack.broker.bootstrap_servers, isolation.topics.inbound) as seen:
        first = await connect(http, chat, session["token"])
        await first.send_json(message("c-1", "first"))
        assert await next_frame(first) == {"type": "ack", "client_id": "c-1", "duplicate": False}
        await first.close()
        # The widget reconnects (the ack may have been lost) and resends, then goes on.
        again = await connect(http, chat, session["token"])
        await again.send_json(message("c-1", "first"))
        assert await next_frame(again) == {"type": "ack", "client_id": "c-1", "duplicate": True}
        await again.send_json(message("c-2", "second"))
        assert (await next_frame(again))["client_id"] == "c-2"
        await again.close()
        await wait_until(lambda: len(seen.events) >= 2, message="both events")
    texts = [e.data.text for e in seen.events if isinstance(e.data, MessageReceived)]
    assert texts == ["first", "second"]


# --- sessions and tokens ----------------------------------------------------------------------


async def test_session_renews_the_same_visitor_and_refuses_junk(
    chat: Chat, http: aiohttp.ClientSession
) -> None:
    first = await new_session(http, chat)
    renewed = await new_session(http, chat, {"token": first["token"]})
    assert renewed["visitor_id"] == first["visitor_id"]
    stranger = await new_session(http, chat, {"token": first["token"][:-4] + "AAAA"})
    assert stranger["visitor_id"] != first["visitor_id"]
    url = f"{chat.url}{SESSION_PATH}"
    async with http.post(url, data=b"{" * 5000) as response:
        assert response.status == 413
    async with http.post(url, data=b"[[[[") as response:
        assert response.status == 400
    async with http.options(url) as response:
        assert response.status == 204
        assert "POST" in response.headers["Access-Control-Allow-Methods"]


def _expired() -> str:
    return SessionTokens(KEY, 60, clock=lambda: system_clock() - timedelta(hours=1)).issue().token


def _forged() -> str:
    return SessionTokens("another-key-0123456789abcdef0123456789", 60).issue().token


@pytest.mark.parametrize(
    "token",
    [None, "", "not-a-jwt", "a.b.c", "x" * 5000, _expired(), _forged()],
    ids=["missing", "empty", "junk", "three-parts", "huge", "expired", "forged"],
)
async def test_bad_or_expired_token_closes_with_4401(
    chat: Chat, http: aiohttp.ClientSession, token: str | None
) -> None:
    params = {"token": token} if token is not None else {}
    async with http.ws_connect(f"{chat.url}{WS_PATH}", params=params) as ws:
        assert await close_code(ws) == 4401


async def test_malformed_cursor_closes_with_4400(chat: Chat, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, chat)
    params = {"token": session["token"], "after": "yesterday"}
    async with http.ws_connect(f"{chat.url}{WS_PATH}", params=params) as ws:
        assert await close_code(ws) == 4400


# --- hostile frames ---------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "ack", "", "MESSAGE"]) | _json_values,
        "client_id": st.sampled_from(["ok-1", "", "a b", "x" * 65, "é"]) | _json_values,
        "text": st.text(max_size=50) | _json_values,
        "name": st.text(max_size=20) | _json_values,
        "email": st.sampled_from(["a@b.co", "nope", "a@b", " @x.y"]) | _json_values,
    },
)
_junk = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100),
    _json_values.map(json.dumps),
    _fields.map(json.dumps),
    st.just('{"type":"message","client_id":"s-1","text":"\\ud800"}'),
    st.just("[" * 5000 + "]" * 5000),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_junk)
def test_any_frame_parses_or_is_refused_with_a_code(raw: str | bytes) -> None:
    try:
        chat_message = parse(raw)
    except FrameError as exc:
        refused: FrameError | None = exc
    else:
        refused = None
        assert 1 <= len(chat_message.text) <= 4000
        chat_message.text.encode("utf-8")
    assert refused is None or refused.code in CODES


async def test_junk_frames_get_error_frames_and_the_socket_keeps_working(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    junk: list[str | bytes] = []

    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(raw=_junk)
    def gather(raw: str | bytes) -> None:
        junk.append(raw)

    gather()
    chat = await serve_chat(stack, isolation, serve_app, Limits(burst=1000))
    session = await new_session(http, chat)
    ws = await connect(http, chat, session["token"])
    for raw in junk:
        if isinstance(raw, bytes):
            await ws.send_bytes(raw)
        else:
            await ws.send_str(raw)
        frame = await next_frame(ws)
        assert frame["type"] in {"error", "ack"}, frame
        if frame["type"] == "error":
            assert (frame["retry"], frame["code"] in CODES) == (False, True), frame
    await ws.send_json(message("after-junk", "still there?"))
    assert (await next_frame(ws))["client_id"] == "after-junk"
    await ws.close()


async def test_oversized_frame_closes_1009_and_a_long_text_gets_an_error(
    chat: Chat, http: aiohttp.ClientSession
) -> None:
    session = await new_session(http, chat)
    ws = await connect(http, chat, session["token"])
    await ws.send_json(message("long-1", "x" * 4001))
    frame = await next_frame(ws)
    assert (frame["type"], frame["code"], frame["client_id"]) == ("error", "too_long", "long-1")
    await ws.send_json(message("huge-1", "x" * 70_000))
    assert await close_code(ws) == 1009
    # The process is fine: a new socket of the same visitor works.
    again = await connect(http, chat, session["token"])
    await again.send_json(message("ok-1"))
    assert (await next_frame(again))["type"] == "ack"
    await again.close()


async def test_rate_limit_answers_retry_and_a_flood_is_disconnected(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    limits = Limits(rate_per_second=0.001, burst=2, max_rejections=3)
    chat = await serve_chat(stack, isolation, serve_app, limits)
    session = await new_session(http, chat)
    ws = await connect(http, chat, session["token"])
    for n in range(2):
        await ws.send_json(message(f"r-{n}"))
        assert (await next_frame(ws))["type"] == "ack"
    await ws.send_json(message("r-2"))
    limited = await next_frame(ws)
    assert (limited["code"], limited["client_id"], limited["retry"]) == (
        "rate_limited",
        "r-2",
        True,
    )
    assert limited["retry_after"] > 0
    for n in range(3):
        await ws.send_json(message(f"flood-{n}"))
    assert await close_code(ws) == 1008


# --- replies out --------------------------------------------------------------------------------


async def test_replies_arrive_live_and_after_reconnect_exactly_once(
    chat: Chat, http: aiohttp.ClientSession, redis: Redis
) -> None:
    session = await new_session(http, chat)
    visitor = session["visitor_id"]
    sender = ChatSender(redis, chat.keys)

    async def reply(command_id: str, text: str) -> str:
        return await sender.send(
            OutgoingMessage(
                command_id=command_id,
                recipient=f"chat:{visitor}",
                sender=None,
                subject=None,
                text=text,
                in_reply_to=f"{visitor}:m-1",
            )
        )

    ws = await connect(http, chat, session["token"])
    first_id = await reply("cmd-1", "Thanks! Your reference is SB-1.")
    live = await next_frame(ws)
    assert live == {
        "type": "reply",
        "id": first_id,
        "command_id": "cmd-1",
        "text": "Thanks! Your reference is SB-1.",
        "at": live["at"],
        "in_reply_to": f"{visitor}:m-1",
    }
    await ws.close()

    second_id = await reply("cmd-2", "An agent will be with you shortly.")
    assert await reply("cmd-2", "An agent will be with you shortly.") == second_id  # a retry
    again = await connect(http, chat, session["token"], after=first_id)
    third_id = await reply("cmd-3", "Hi, I am Sam.")
    got = [await next_frame(again), await next_frame(again)]
    assert [(f["id"], f["command_id"]) for f in got] == [(second_id, "cmd-2"), (third_id, "cmd-3")]
    await again.close()

    entries = await Mailbox(redis, chat.keys).read_after(visitor, "0-0", 10)
    assert [e.command_id for e in entries] == ["cmd-1", "cmd-2", "cmd-3"]


async def test_reply_published_while_the_subscription_is_down_is_still_delivered(
    chat: Chat, http: aiohttp.ClientSession, redis: Redis
) -> None:
    session = await new_session(http, chat)
    visitor = session["visitor_id"]
    ws = await connect(http, chat, session["token"])
    # Cut this replica's pub/sub connection; the announcement below may well be lost.
    assert await redis.client_kill_filter(_type="pubsub") >= 1
    entry = await Mailbox(redis, chat.keys).append(
        visitor, command_id="cmd-lost", text="Still there?", at=system_clock(), in_reply_to=None
    )
    reply = await next_frame(ws)
    assert (reply["id"], reply["command_id"], reply["text"]) == (entry, "cmd-lost", "Still there?")
    await ws.close()
