"""The chat socket's lifetime against hostile cursors and a failing Redis, and where the
widget's session token travels, over real websockets to the chat part of ingest served in
this process (so the test can see the server's own socket tasks).

Every socket task is named after its visitor (``chat writer <id>``, ``chat replies <id>``):
once the visitor's sockets are closed, none of them may be left running.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from libs.contracts.socket_tokens import PROTOCOL, offered_protocols
from services.ingest.chat import WS_PATH, Limits
from services.ingest.chat.endpoint import CLOSE_BAD_REQUEST, CLOSE_REPLIES_UNAVAILABLE
from tests.conftest import ServeApp
from tests.integration.ingest.test_chat import (
    FRAME_TIMEOUT,
    Chat,
    close_code,
    new_session,
    next_frame,
    serve_chat,
)
from tests.support.harness import Isolation
from tests.support.kafka import wait_until
from tooling.devstack import DevStack

ATTEMPTS = 20
LARGEST = "18446744073709551615-18446744073709551615"
OVERFLOWING = ["18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-1"]


def socket_tasks(visitor: str) -> list[str]:
    """Names of the server's live tasks for ``visitor``'s sockets."""
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().endswith(visitor)]


async def no_socket_tasks_left(visitor: str) -> None:
    await wait_until(
        lambda: not socket_tasks(visitor),
        message=lambda: f"the visitor's socket tasks to end: {socket_tasks(visitor)}",
    )


async def open_and_close(http: aiohttp.ClientSession, chat: Chat, token: str, after: str) -> None:
    """A visitor that opens a socket and closes it again at once."""
    ws = await http.ws_connect(f"{chat.url}{WS_PATH}", params={"token": token, "after": after})
    await ws.close()


@pytest.mark.parametrize("after", OVERFLOWING)
async def test_an_overflowing_cursor_closes_with_4400_and_leaves_no_task(
    stack: DevStack,
    isolation: Isolation,
    serve_app: ServeApp,
    http: aiohttp.ClientSession,
    after: str,
) -> None:
    chat = await serve_chat(stack, isolation, serve_app)
    session = await new_session(http, chat)
    params = {"token": session["token"], "after": after}
    async with http.ws_connect(f"{chat.url}{WS_PATH}", params=params) as ws:
        assert await close_code(ws) == CLOSE_BAD_REQUEST
    for _ in range(ATTEMPTS):
        await open_and_close(http, chat, session["token"], after)
    await no_socket_tasks_left(session["visitor_id"])

    params["after"] = LARGEST  # the largest id Redis accepts is still a cursor
    async with http.ws_connect(f"{chat.url}{WS_PATH}", params=params) as ws:
        assert (await next_frame(ws))["type"] == "ready"


class CancelSwallowingRedis(Redis):
    """A Redis client whose XRANGE, once ``hold`` is set, waits until it is cancelled and then
    raises a connection error instead of the cancellation, as redis-py can when a cancel meets
    its own timeout or reconnect (redis/redis-py#2028 and #2551)."""

    def __init__(self, inner: Redis) -> None:
        super().__init__(connection_pool=inner.connection_pool)
        self.hold = asyncio.Event()
        self.holding = asyncio.Event()

    async def xrange(self, *args: Any, **kwargs: Any) -> Any:
        if self.hold.is_set():
            self.holding.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise RedisConnectionError("Connection closed by server.") from None
        return await super().xrange(*args, **kwargs)


async def test_a_cancellation_redis_turns_into_an_error_still_ends_the_socket_tasks(
    stack: DevStack,
    isolation: Isolation,
    serve_app: ServeApp,
    http: aiohttp.ClientSession,
) -> None:
    wrapped: list[CancelSwallowingRedis] = []

    def wrap(inner: Redis) -> Redis:
        wrapped.append(CancelSwallowingRedis(inner))
        return wrapped[0]

    chat = await serve_chat(stack, isolation, serve_app, wrap_redis=wrap)
    [redis] = wrapped
    session = await new_session(http, chat)
    redis.hold.set()
    ws = await http.ws_connect(f"{chat.url}{WS_PATH}", params={"token": session["token"]})
    assert (await next_frame(ws))["type"] == "ready"
    await wait_until(redis.holding.is_set, message="the mailbox read to be under way")
    await ws.close()
    await no_socket_tasks_left(session["visitor_id"])


async def test_a_socket_whose_replies_keep_failing_is_closed_with_4503(
    stack: DevStack,
    isolation: Isolation,
    serve_app: ServeApp,
    http: aiohttp.ClientSession,
    redis: Redis,
) -> None:
    limits = Limits(delivery_retry_seconds=0.05, max_delivery_failures=3)
    chat = await serve_chat(stack, isolation, serve_app, limits)
    session = await new_session(http, chat)
    visitor = session["visitor_id"]
    await redis.set(chat.keys.chat_mailbox(visitor), "not a stream")  # every read fails
    ws = await http.ws_connect(f"{chat.url}{WS_PATH}", params={"token": session["token"]})
    assert (await next_frame(ws))["type"] == "ready"
    msg = await ws.receive(timeout=FRAME_TIMEOUT)
    assert msg.type is WSMsgType.CLOSE, (msg.type, msg.data)
    assert ws.close_code == CLOSE_REPLIES_UNAVAILABLE
    await no_socket_tasks_left(visitor)


async def test_the_token_is_taken_from_the_subprotocol_and_still_from_the_query(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    chat = await serve_chat(stack, isolation, serve_app)
    session = await new_session(http, chat)
    url = f"{chat.url}{WS_PATH}"
    async with http.ws_connect(url, protocols=offered_protocols(session["token"])) as ws:
        assert ws.protocol == PROTOCOL  # the token is never echoed back
        ready = await next_frame(ws)
    assert ready == {"type": "ready", "visitor_id": session["visitor_id"]}
    async with http.ws_connect(url, params={"token": session["token"]}) as ws:
        assert (await next_frame(ws))["type"] == "ready"
