"""Chat across processes: replies find the visitor on any ingest replica; the broker going away
costs the visitor nothing but a resend."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from libs.common.clock import system_clock
from libs.common.events import Event, MessageReceived, OutboundCommand, encode, event_id
from libs.common.keys import Keys
from libs.common.topics import Topics
from libs.contracts.chat_mailbox import Mailbox
from tests.support.harness import Isolation, Launch
from tests.support.kafka import collect, wait_until
from tooling.devstack import DevStack, create_topics, free_port

pytestmark = pytest.mark.e2e
KEY = "e2e-chat-session-key-0123456789abcdef"
FRAME_TIMEOUT = 20.0


def chat_env(env: dict[str, str], port: int | None = None) -> dict[str, str]:
    """The environment of one more ingest replica (its own port) with chat switched on."""
    return {
        **env,
        "CHAT_SESSION_KEY": KEY,
        "SWITCHBOARD_INGEST_PORT": str(port or env["SWITCHBOARD_INGEST_PORT"]),
    }


async def session(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with http.post(f"{base}/v1/chat/session") as response:
        assert response.status == 200
        body: dict[str, str] = await response.json()
        return body


async def connect(
    http: aiohttp.ClientSession, base: str, token: str, after: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    params = {"token": token, **({"after": after} if after else {})}
    ws = await http.ws_connect(f"{base}/v1/chat/ws", params=params)
    assert (await frame(ws))["type"] == "ready"
    return ws


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=FRAME_TIMEOUT)
    assert msg.type is WSMsgType.TEXT, (msg.type, ws.close_code)
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def send_command(bootstrap: str, topic: str, visitor: str, n: int, text: str) -> str:
    """What the router or the hub puts on the commands topic for a chat reply."""
    command = OutboundCommand(
        command_id=event_id("test", visitor, str(n)),
        kind="agent_reply",
        channel="chat",
        conversation_id="conv-1",
        reference="SB-0001",
        recipient=f"chat:{visitor}",
        text=text,
    )
    value, headers = encode(
        Event(
            id=command.command_id,
            source="/test/hub",
            subject=command.recipient,
            time=system_clock(),
            data=command,
        )
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=value, key=command.recipient.encode(), headers=headers
        )
    finally:
        await producer.stop()
    return command.command_id


async def test_reply_reaches_the_visitor_on_another_replica_and_after_reconnect_once(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    http: aiohttp.ClientSession,
    redis: Redis,
) -> None:
    env_a, env_b = chat_env(service_env), chat_env(service_env, free_port())
    [ingest_a] = await launch(["ingest"], env_a)
    [ingest_b] = await launch(["ingest"], env_b)
    await launch(["outbound"], env_a)
    bootstrap, topic = stack.broker.bootstrap_servers, isolation.topics.outbound_commands

    visitor = await session(http, ingest_a.url)
    token, vid = visitor["token"], visitor["visitor_id"]
    async with collect(bootstrap, isolation.topics.inbound) as seen:
        on_a = await connect(http, ingest_a.url, token)
        await on_a.send_json({"type": "message", "client_id": "m-1", "text": "Where is my order?"})
        assert await frame(on_a) == {"type": "ack", "client_id": "m-1", "duplicate": False}
        await on_a.close()
        await wait_until(lambda: bool(seen.events), message="the message on Kafka")
    [inbound] = [e.data for e in seen.events if isinstance(e.data, MessageReceived)]
    assert inbound.thread_key == f"chat:{vid}"

    # The visitor is now on replica B; outbound knows nothing of replicas.
    on_b = await connect(http, ingest_b.url, token)
    first = await send_command(bootstrap, topic, vid, 1, "It left our warehouse today.")
    reply = await frame(on_b)
    assert (reply["type"], reply["command_id"], reply["text"]) == (
        "reply",
        first,
        "It left our warehouse today.",
    )
    await on_b.close()

    # Sent while no socket is open: delivered on reconnect (to A), once, before newer ones.
    second = await send_command(bootstrap, topic, vid, 2, "Tracking: 1Z999.")
    back_on_a = await connect(http, ingest_a.url, token, after=reply["id"])
    third = await send_command(bootstrap, topic, vid, 3, "Anything else?")
    got = [await frame(back_on_a), await frame(back_on_a)]
    assert [f["command_id"] for f in got] == [second, third]
    assert len({f["id"] for f in got}) == 2
    await back_on_a.close()
    # One mailbox entry per command, whatever replica delivered it.
    entries = await Mailbox(redis, Keys(isolation.key_prefix)).read_after(vid, "0-0", 10)
    assert [e.command_id for e in entries] == [first, second, third]


async def test_broker_down_means_no_ack_then_the_resend_is_acked_and_published_once(
    own: DevStack, service_env: dict[str, str], launch: Launch, http: aiohttp.ClientSession
) -> None:
    env = {
        **chat_env(service_env),
        **own.environment("switchboard."),
        "CHAT_SESSION_KEY": KEY,
        "SWITCHBOARD_KEY_PREFIX": "sb:",
        "SWITCHBOARD_PUBLISH_TIMEOUT": "2",
    }
    [ingest] = await launch(["ingest"], env)
    visitor = await session(http, ingest.url)
    ws = await connect(http, ingest.url, visitor["token"])
    hello = {"type": "message", "client_id": "down-1", "text": "anyone there?"}

    own.broker.stop()
    await ws.send_json(hello)
    refused = await frame(ws)
    assert (refused["type"], refused["client_id"], refused["retry"]) == (
        "error",
        "down-1",
        True,
    )

    await own.broker.start()  # in-memory: comes back empty, on the same port
    topics = Topics.with_prefix("switchboard.")
    await create_topics(own.broker.bootstrap_servers, topics.all())
    async with collect(own.broker.bootstrap_servers, topics.inbound) as seen:
        answers = []
        for _ in range(30):  # the widget resends, each try bounded by the publish timeout
            await ws.send_json(hello)
            answers.append(await frame(ws))
            if answers[-1]["type"] == "ack":
                break
        assert answers[-1] == {"type": "ack", "client_id": "down-1", "duplicate": False}
        assert all(a["type"] == "error" and a["retry"] for a in answers[:-1]), answers
        await wait_until(lambda: bool(seen.of_type(MessageReceived)), message="the event")
        # Acked means on Kafka: a further resend is a duplicate, not a second event.
        await ws.send_json(hello)
        assert await frame(ws) == {"type": "ack", "client_id": "down-1", "duplicate": True}
    await ws.close()
    ids = {e.id for e in seen.of_type(MessageReceived)}
    assert ids == {event_id("chat", "widget", visitor["visitor_id"], "down-1")}
