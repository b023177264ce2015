"""How ``serve()`` runs a service: a long-running task registered with ``add_background``
cannot die unseen (``/healthz`` fails naming it, and the run loop ends with exit code 1), and
once started the service keeps its start-up objects out of the garbage collector's full passes
(``settle_heap``: walking them paused every service for 100-300 ms under load)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from libs.common.service import add_background, create_app, serve
from libs.common.settings import Settings
from tests.support.harness import Isolation
from tests.support.kafka import wait_until_async
from tooling.devstack import DevStack, free_port

ServeApp = Callable[[web.Application], Awaitable[str]]


def doomed_app(stack: DevStack, isolation: Isolation) -> tuple[web.Application, asyncio.Event]:
    """A service app with one background task that raises once ``die`` is set."""
    settings = Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
    )
    app = create_app(settings, "test")
    die = asyncio.Event()

    async def poll(_: web.Application) -> None:
        await die.wait()
        raise KeyError("utterance")

    add_background(app, "doomed poller", poll)
    return app, die


async def healthz(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(f"{url}/healthz") as response:
        return response.status, await response.text()


async def test_a_background_task_that_dies_fails_healthz(
    stack: DevStack, isolation: Isolation, serve_app: ServeApp, http: aiohttp.ClientSession
) -> None:
    app, die = doomed_app(stack, isolation)
    url = await serve_app(app)
    assert (await healthz(http, url))[0] == 200

    die.set()

    async def unhealthy() -> bool:
        return (await healthz(http, url))[0] == 503

    await wait_until_async(unhealthy, message="/healthz failing")
    _, body = await healthz(http, url)
    assert "doomed poller" in body
    assert "KeyError" in body


async def serving(http: aiohttp.ClientSession, url: str) -> None:
    async def healthy() -> bool:
        try:
            return (await healthz(http, url))[0] == 200
        except aiohttp.ClientConnectionError:
            return False

    await wait_until_async(healthy, message="the service serving")


async def test_a_background_task_that_dies_ends_the_service_with_exit_code_1(
    stack: DevStack, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    app, die = doomed_app(stack, isolation)
    port = free_port()
    served = asyncio.create_task(serve(app, "127.0.0.1", port))
    try:
        await serving(http, f"http://127.0.0.1:{port}")
        die.set()
        assert await asyncio.wait_for(served, timeout=30) == 1
    finally:
        served.cancel()
        await asyncio.gather(served, return_exceptions=True)


async def test_a_started_service_has_frozen_what_start_up_built(
    stack: DevStack, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    app, die = doomed_app(stack, isolation)  # its task ending ends serve(), cleanly
    gc.unfreeze()  # an earlier service in this test process may have frozen its own heap
    port = free_port()
    served = asyncio.create_task(serve(app, "127.0.0.1", port))
    try:
        await serving(http, f"http://127.0.0.1:{port}")
        assert gc.get_freeze_count() > 10_000
    finally:
        die.set()
        await asyncio.wait_for(served, timeout=30)
        gc.unfreeze()
