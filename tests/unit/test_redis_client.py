"""Which client the settings give: one node, a cluster or a Sentinel-managed primary."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from libs.common.redis_client import cluster_nodes, create_redis
from libs.common.settings import Settings


def test_a_redis_url_gives_one_node() -> None:
    client = create_redis(Settings(redis_url="redis://cache:6380/0"))
    assert not isinstance(client, RedisCluster)
    assert client.connection_pool.connection_kwargs["host"] == "cache"


def test_cluster_nodes_give_a_cluster_client() -> None:
    settings = Settings(redis_cluster_nodes="cache-1:7000, cache-2:7001")
    assert cluster_nodes(settings) == [("cache-1", 7000), ("cache-2", 7001)]
    assert isinstance(create_redis(settings), RedisCluster)


def test_a_cluster_url_gives_a_cluster_client() -> None:
    settings = Settings(redis_url="redis+cluster://cache-1:7000,cache-2:7001/0")
    assert cluster_nodes(settings) == [("cache-1", 7000), ("cache-2", 7001)]
    assert isinstance(create_redis(settings), RedisCluster)


def test_sentinels_give_the_primary_they_name() -> None:
    client = create_redis(
        Settings(redis_sentinels="s1:26379,s2:26379", redis_sentinel_service="orders")
    )
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "orders"
