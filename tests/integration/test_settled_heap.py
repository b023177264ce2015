"""A started service keeps its start-up objects out of the garbage collector's full passes
(``settle_heap``): walking them paused every service for 100-300 ms under load."""

from __future__ import annotations

import asyncio
import gc

import aiohttp

from libs.common.service import add_background, create_app, serve
from libs.common.settings import Settings
from tests.support.harness import Isolation
from tests.support.kafka import wait_until_async
from tooling.devstack import DevStack, free_port


async def test_a_started_service_has_frozen_what_start_up_built(
    stack: DevStack, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=stack.redis.url,
        switchboard_topic_prefix=isolation.topic_prefix,
        switchboard_key_prefix=isolation.key_prefix,
    )
    app = create_app(settings, "test")
    done = asyncio.Event()

    async def until_done(_: object) -> None:
        await done.wait()

    add_background(app, "until done", until_done)  # ending it ends serve(), cleanly
    gc.unfreeze()  # an earlier service in this test process may have frozen its own heap
    port = free_port()
    served = asyncio.create_task(serve(app, "127.0.0.1", port))

    async def started() -> bool:
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    try:
        await wait_until_async(started, message="the service serving")
        assert gc.get_freeze_count() > 10_000
    finally:
        done.set()
        await asyncio.wait_for(served, timeout=30)
        gc.unfreeze()
