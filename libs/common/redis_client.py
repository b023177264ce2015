"""The Redis client factory (redis-py asyncio) shared by every service."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

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
    return Redis(connection_pool=pool, auto_close_connection_pool=True)


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (the clients return bytes; typed as either)."""
    return value.decode() if isinstance(value, bytes) else value
