"""The Redis client factory (redis-py asyncio) shared by every service."""

from __future__ import annotations

from redis.asyncio import Redis

from libs.common.settings import Settings


def create_redis(settings: Settings) -> Redis:
    """A pooled client; bytes in and out, short timeouts so readiness fails fast."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=15,
    )
