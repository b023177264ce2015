"""Ingest's size and connection limits, served the way ``switchboard run ingest`` serves it.

The app is built from settings and served by :func:`libs.common.service.app_runner` (the
runner ``serve`` uses), so the header limits come from the settings too. Every limit must end
in a clear 4xx or close code, and the process must go on answering afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from libs.common.service import app_runner
from services.ingest import sms
from services.ingest.app import build
from services.ingest.chat import SESSION_PATH, WS_PATH, Limits
from services.ingest.chat.endpoint import CLOSE_TOO_MANY_SOCKETS, MAX_SESSION_BODY
from services.ingest.x import webhook as x
from tests.integration.ingest.conftest import ingest_settings
from tests.support.harness import Isolation
from tooling.devstack import DevStack, free_port

FIELD_LIMIT: Final = 2048
LINE_LIMIT: Final = 2048
SOCKETS_PER_IP: Final = 2
FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def ingest_url(stack: DevStack, isolation: Isolation) -> AsyncIterator[str]:
    settings = ingest_settings(
        stack,
        isolation,
        switchboard_http_max_field_size=FIELD_LIMIT,
        switchboard_http_max_line_size=LINE_LIMIT,
        chat_max_sockets_per_ip=SOCKETS_PER_IP,
    )
    runner = app_runner(build(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def assert_alive(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(f"{url}/healthz") as response:
        assert response.status == 200


async def chunks(body: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """The body without a Content-Length (chunked), so only the running count can stop it."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "limit", "headers"),
    [
        (sms.PATH, sms.MAX_BODY_BYTES, FORM),
        (sms.STATUS_PATH, sms.MAX_BODY_BYTES, FORM),
        (x.PATH, x.MAX_BODY_BYTES, {"Content-Type": "application/json"}),
        (SESSION_PATH, MAX_SESSION_BODY, {"Content-Type": "application/json"}),
    ],
)
async def test_a_body_over_the_limit_gets_413(
    ingest_url: str,
    http: aiohttp.ClientSession,
    path: str,
    limit: int,
    headers: dict[str, str],
    chunked: bool,
) -> None:
    body = b"a" * (limit + 1)
    data = chunks(body) if chunked else body
    async with http.post(ingest_url + path, data=data, headers=headers) as response:
        assert response.status == 413
        assert await response.json() == {"error": "body too large"}
    await assert_alive(http, ingest_url)


async def test_a_header_over_the_configured_size_gets_400_and_one_under_it_passes(
    ingest_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{ingest_url}/healthz", headers={"X-Pad": "a" * (FIELD_LIMIT - 64)}) as r:
        assert r.status == 200
    async with http.get(f"{ingest_url}/healthz", headers={"X-Pad": "a" * (FIELD_LIMIT + 1)}) as r:
        assert r.status == 400
        assert f"more than {FIELD_LIMIT} bytes" in await r.text()
    async with http.get(f"{ingest_url}/healthz?pad={'a' * LINE_LIMIT}") as r:
        assert r.status == 400
    await assert_alive(http, ingest_url)


async def open_socket(
    http: aiohttp.ClientSession, url: str
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage]:
    """A websocket of a new visitor and the first thing the server says on it."""
    async with http.post(url + SESSION_PATH) as response:
        token = (await response.json())["token"]
    ws = await http.ws_connect(f"{url}{WS_PATH}?token={token}")
    return ws, await ws.receive(timeout=10)


async def test_chat_sockets_from_one_address_are_capped(
    ingest_url: str, http: aiohttp.ClientSession
) -> None:
    """Each socket is a different visitor, so only the per-address cap can refuse them."""
    sockets = []
    for _ in range(SOCKETS_PER_IP):
        ws, first = await open_socket(http, ingest_url)
        assert first.type is WSMsgType.TEXT
        assert first.json()["type"] == "ready"
        sockets.append(ws)
    refused, first = await open_socket(http, ingest_url)
    assert first.type is WSMsgType.CLOSE
    assert refused.close_code == CLOSE_TOO_MANY_SOCKETS
    await sockets.pop().close()
    # The closed socket's place frees once the server has finished it.
    for _ in range(100):
        ws, first = await open_socket(http, ingest_url)
        if first.type is WSMsgType.TEXT:
            sockets.append(ws)
            break
        assert ws.close_code == CLOSE_TOO_MANY_SOCKETS
    else:
        raise AssertionError("a closed socket's place was never freed")
    for ws in sockets:
        await ws.close()
    await assert_alive(http, ingest_url)


async def test_a_frame_over_the_limit_closes_1009(
    ingest_url: str, http: aiohttp.ClientSession
) -> None:
    ws, first = await open_socket(http, ingest_url)
    assert first.json()["type"] == "ready"
    await ws.send_str("a" * (Limits().max_frame_bytes + 1))
    while (message := await ws.receive(timeout=10)).type is WSMsgType.TEXT:
        pass
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.close_code == 1009
    await assert_alive(http, ingest_url)
