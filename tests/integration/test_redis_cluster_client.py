"""The cluster client under a slot-map reload: commands in flight when redis-py closes every
connection (what it does on CLUSTERDOWN during a failover) are retried or fail as a lost
connection, never as the ``AttributeError`` that made ingest answer SMTP 500 in a failover;
a transaction staged while a reload is due leaves the client working."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from redis.exceptions import ConnectionError, CrossSlotTransactionError, RedisError

from libs.common.redis_client import close_redis, get_many, open_redis, transaction
from libs.common.settings import Settings
from tooling import devstack
from tooling.devstack import LocalRedisCluster

WRITERS = 50
WRITES_EACH = 100
RELOADS = 20


async def test_commands_in_flight_through_slot_map_reloads_fail_only_as_lost_connections(
    redis_cluster: LocalRedisCluster,
) -> None:
    redis = await open_redis(Settings(redis_url=redis_cluster.url))
    failures: list[BaseException] = []
    written: list[str] = []
    writers_done = asyncio.Event()

    async def writer(number: int) -> None:
        for index in range(WRITES_EACH):
            key = f"reload-test:{number}:{index}"
            try:
                await redis.set(key, b"1")
            except Exception as exc:  # every failure is collected and judged below
                failures.append(exc)
            else:
                written.append(key)

    async def reloader() -> None:
        for _ in range(RELOADS):
            answered = len(written) + len(failures)
            await redis.aclose()  # the cluster client's own reaction to CLUSTERDOWN
            while len(written) + len(failures) < answered + WRITERS:  # commands in between
                if writers_done.is_set():
                    return
                await asyncio.sleep(0)

    async def writers() -> None:
        await asyncio.gather(*(writer(number) for number in range(WRITERS)))
        writers_done.set()

    try:
        await asyncio.gather(writers(), reloader())
        assert [exc for exc in failures if not isinstance(exc, ConnectionError)] == []
        assert len(written) + len(failures) == WRITERS * WRITES_EACH
        stored = await get_many(redis, written)
        assert stored == [b"1"] * len(written)
    finally:
        with contextlib.suppress(RedisError):
            await redis.delete(*written)
        await close_redis(redis)


async def test_a_transaction_staged_while_a_reload_is_due_leaves_the_client_working(
    redis_cluster: LocalRedisCluster,
) -> None:
    redis = await open_redis(Settings(redis_url=redis_cluster.url))
    keys = [f"{{staged-{n}}}:value" for n in range(12)]  # slots on every primary
    try:
        async with transaction(redis) as pipe:
            await redis.aclose()  # another task's failed command asks for a reload meanwhile
            pipe.set("{staged-0}:value", b"1")
            pipe.eval("return redis.call('INCR', KEYS[1])", 1, "{staged-0}:count")
            assert await pipe.execute() == [True, 1]
        for key in keys:  # the reloaded client's connections work on this loop
            await redis.set(key, b"2")
        assert await get_many(redis, keys) == [b"2"] * len(keys)
    finally:
        with contextlib.suppress(RedisError):
            for key in [*keys, "{staged-0}:count"]:
                await redis.delete(key)
        await close_redis(redis)


async def test_a_transaction_over_two_slots_is_refused_before_anything_is_sent(
    redis_cluster: LocalRedisCluster,
) -> None:
    redis = await open_redis(Settings(redis_url=redis_cluster.url))
    try:
        async with transaction(redis) as pipe:
            pipe.set("{one}:value", b"1")
            pipe.set("{two}:value", b"1")
            with pytest.raises(CrossSlotTransactionError):
                await pipe.execute()
        assert await get_many(redis, ["{one}:value", "{two}:value"]) == [None, None]
    finally:
        await close_redis(redis)


async def test_a_node_whose_port_is_taken_before_it_binds_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pick = devstack._cluster_node_port
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", pick()))  # bound, not listening: the node cannot bind it
    ports = iter([taken.getsockname()[1]])
    monkeypatch.setattr(devstack, "_cluster_node_port", lambda: next(ports, None) or pick())
    cluster = LocalRedisCluster()
    try:
        await cluster.start()
        assert taken.getsockname()[1] not in {node.port for node in cluster.nodes}
        redis = await open_redis(Settings(redis_url=cluster.url))
        try:
            assert await redis.set("k", b"v")
        finally:
            await close_redis(redis)
    finally:
        cluster.stop()
        taken.close()
