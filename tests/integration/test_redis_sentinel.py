"""REDIS_SENTINELS: the client finds the primary through Sentinel and finds the new one after
a failover, scripts included (they are loaded again on the promoted replica)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from libs.common.redis_client import close_redis, create_redis
from libs.common.settings import Settings
from tests.support.kafka import wait_until_async
from tooling.devstack import LocalRedisSentinel


@pytest.fixture
async def sentinel() -> AsyncIterator[LocalRedisSentinel]:
    deployment = LocalRedisSentinel()
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def test_the_client_follows_a_sentinel_failover(sentinel: LocalRedisSentinel) -> None:
    redis = create_redis(Settings(redis_sentinels=sentinel.sentinels))
    count = redis.register_script("return redis.call('INCR', KEYS[1])")
    try:
        assert await count(keys=["calls"]) == 1
        # the replica has it before its primary dies (within the client's 5 s socket timeout)
        assert await redis.wait(1, 2000) == 1
        assert sentinel.primary.process is not None
        sentinel.primary.process.kill()

        async def written() -> bool:
            try:
                return bool(await redis.set("after", "1"))
            except RedisError:  # no primary until Sentinel promotes the replica
                return False

        await wait_until_async(written, timeout=30, message="a write to the promoted replica")
        assert await count(keys=["calls"]) == 2
        assert sentinel.replica is not None
        assert redis.connection_pool.connection_kwargs.get("port") != sentinel.primary.port
        info = await redis.info("server")
        assert info["tcp_port"] == sentinel.replica.port
    finally:
        await close_redis(redis)
