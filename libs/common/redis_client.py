"""The Redis client factory (redis-py asyncio) shared by every service."""

from __future__ import annotations

import asyncio
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from libs.common.settings import Settings

MAX_CONNECTIONS = 64
"""Connections per process; callers beyond that wait for one (bounded, no error storm)."""


def create_redis(settings: Settings) -> Redis:
    """A pooled client; bytes in and out, short timeouts so readiness fails fast.

    The pool blocks when all connections are busy: hundreds of records in flight share a few
    dozen connections instead of failing with "too many connections"."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=10.0,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=15,
    )
    return Redis.from_pool(pool)


@cache
def load_script(package: str, name: str) -> str:
    """The Lua script ``name`` in the ``lua/`` folder of ``package``, read once per process.

    Scripts are files, not Python strings, so they read (and are tested) as the code they are;
    each starts with a header naming its KEYS and ARGV. They ship as package data."""
    return (resources.files(package) / "lua" / name).read_text(encoding="utf-8")


async def get_many(redis: Redis, keys: list[str]) -> list[bytes | None]:
    """GET of each key in one round trip, wherever the keys live (an MGET must stay in one
    slot on a cluster; a pipeline of GETs is split by node)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        found: list[bytes | None] = await pipe.execute()
    return found


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (the clients return bytes; typed as either)."""
    return value.decode() if isinstance(value, bytes) else value


class ScriptBatcher:
    """Sends the Lua script calls that concurrent handlers make in the same moment as one
    pipeline: one round trip and one connection for many records instead of one each.

    Each call still runs atomically on its own (a pipeline without MULTI); a failing call
    fails only its caller."""

    def __init__(self, redis: Redis, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._pending: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(
        self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, keys, args, _ in batch:
                    await script(keys=keys, args=args, client=pipe)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the whole round trip failed: every caller sees it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
