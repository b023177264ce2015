"""The Redis client factory (redis-py asyncio) shared by every service.

Three deployments, one client type for the code that uses it:

- one node: ``REDIS_URL`` (``redis://``, ``rediss://``, ``unix://``);
- Redis Cluster: ``REDIS_CLUSTER_NODES`` (``host:port,...``, any few nodes) or a
  ``redis+cluster://host:port,host:port`` URL. redis-py's ``RedisCluster`` follows MOVED/ASK
  and the cluster's own failover (it refreshes the slot map and retries); every script and
  MULTI touches one slot (see :mod:`libs.common.keys`), scripts are loaded on the node that
  owns the slot when it answers NOSCRIPT, and an unavailable slot raises an error the consumer
  loop counts as infrastructure (waited out, never dead-lettered);
- Sentinel: ``REDIS_SENTINELS`` (``host:port,...``) and ``REDIS_SENTINEL_SERVICE``; the client
  asks the sentinels for the primary and reconnects to the new one after a failover.

The cluster client is typed as :class:`Redis`: both carry the same command methods, and the
few places whose behaviour differs (pipelines with scripts, PUBLISH in pipelines) go through
the helpers below.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import (
    AbstractStrategy,
    ClusterNode,
    ClusterPipeline,
    RedisCluster,
    TransactionStrategy,
)
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

from libs.common.settings import Settings

MAX_CONNECTIONS = 64
"""Connections per process (per node on a cluster); callers beyond that wait for one (one node
and Sentinel: the pool blocks) or get a ``MaxConnectionsError`` (a cluster node: a
``ConnectionError``, retried as infrastructure). Script calls are batched into pipelines, so
few connections carry many records."""

CLUSTER_SCHEME = "redis+cluster://"

_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
"""Short timeouts so readiness fails fast and a dead node is noticed within seconds."""

HEALTH_CHECK_SECONDS = 15
"""An idle connection is PINGed before reuse (one node, Sentinel). Not on a cluster: there a
failed check leaves the connection closed under the command that asked for it (see
:class:`ClusterConnection`), and the cluster client notices a dead node by its own errors
anyway."""


class ClusterConnection(Connection):
    """A cluster node's connection whose closing under a command reads as a lost connection.

    redis-py's cluster client closes every connection when it reloads the slot map (on
    CLUSTERDOWN during a failover), including those other tasks are writing to or reading from;
    redis-py 8.1 then fails those commands with an ``AttributeError`` on the cleared stream
    (418 of 10,000 commands from 50 tasks while the map was reloaded 20 times). As a
    :class:`ConnectionError` the cluster client retries them on the new map, and a caller that
    still sees one treats it as the infrastructure failure it is (SMTP 451, not 500)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except AttributeError as exc:
            raise ConnectionError("connection closed while a command was sent") from exc

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except AttributeError as exc:
            raise ConnectionError("connection closed while a reply was read") from exc


def host_ports(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as pairs (validated by :class:`Settings`)."""
    pairs = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        pairs.append((host, int(port)))
    return pairs


def cluster_nodes(settings: Settings) -> list[tuple[str, int]]:
    """The cluster nodes to start from; empty when Redis is one node or Sentinel-managed."""
    if settings.redis_cluster_nodes:
        return host_ports(settings.redis_cluster_nodes)
    if settings.redis_url.startswith(CLUSTER_SCHEME):
        return host_ports(settings.redis_url.removeprefix(CLUSTER_SCHEME).split("/")[0])
    return []


def create_redis(settings: Settings) -> Redis:
    """A pooled client for the configured deployment; bytes in and out."""
    nodes = cluster_nodes(settings)
    if nodes:
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            max_connections=MAX_CONNECTIONS,
            **_TIMEOUTS,
        )
        # RedisCluster takes no connection class; every node it discovers is built from these
        # keyword arguments, and the startup nodes were built before this line.
        cluster.connection_kwargs["connection_class"] = ClusterConnection
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = ClusterConnection
        return cast(Redis, cluster)
    if settings.redis_sentinels:
        sentinels = host_ports(settings.redis_sentinels)
        sentinel = Sentinel(sentinels, **_TIMEOUTS)  # type: ignore[no-untyped-call]
        primary: Redis = sentinel.master_for(
            settings.redis_sentinel_service,
            health_check_interval=HEALTH_CHECK_SECONDS,
            **_TIMEOUTS,
        )
        return primary
    # The pool blocks when all connections are busy: hundreds of records in flight share a
    # few dozen connections instead of failing with "too many connections".
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=10.0,
        health_check_interval=HEALTH_CHECK_SECONDS,
        **_TIMEOUTS,
    )
    return Redis.from_pool(pool)


async def open_redis(settings: Settings) -> Redis:
    """:func:`create_redis`, with a cluster's slot map loaded before the first command.

    redis-py's cluster client loads the map lazily; commands sent at once to a fresh client
    can be routed to the startup nodes that loading then replaces and closes, and fail with an
    ``AttributeError`` on a closed connection (3 of 30 fresh clients given 12 commands at once,
    none of 100 after this). A cluster that cannot be reached yet is loaded lazily as before,
    so a service still starts (not ready) while Redis is down."""
    client = create_redis(settings)
    if isinstance(client, RedisCluster):
        with contextlib.suppress(RedisError, RedisClusterException):
            await client.initialize()
    return client


async def close_redis(redis: Redis) -> None:
    """Close the client's connections, and a Sentinel-managed client's connections to the
    sentinels too (closing the client alone leaves those open)."""
    await redis.aclose()
    pool = getattr(redis, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


class _StagedOnCallerLoop(TransactionStrategy):
    """A cluster MULTI/EXEC whose commands are staged on the caller's event loop.

    redis-py 8.1 stages each command of a cluster transaction in a new thread running its own
    event loop, to look up the command's slot there, and reloads the slot map there first if a
    failed command (another task's, during a failover) asked for a reload. The reloaded
    client's connections then belong to a loop that closes at once: every later command of
    the process fails with "attached to a different loop" or "Event loop is closed" (the SLA
    worker that stalled after a primary was killed). Here a command's slot comes from its first
    key (a script's: its declared keys), with no I/O, and a pending reload runs in
    :meth:`execute`, on the caller's loop. The queued commands, MULTI/EXEC, redirections and
    retries stay redis-py's."""

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        scripted = str(args[0]).upper() in ("EVAL", "EVALSHA")
        keys = args[3 : 3 + int(args[2])] if scripted else args[1:2]
        if not keys:
            raise RedisClusterException(f"{args[0]} names no key: no slot to run it in")
        self._pipeline_slots.update(self._pipe.cluster_client.keyslot(key) for key in keys)
        return AbstractStrategy.execute_command(self, *args, **kwargs)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        await self._pipe.cluster_client.initialize()  # only when a reload is due
        return await super().execute(raise_on_error, allow_redirections)


class _ClusterTransaction(ClusterPipeline):
    """redis-py's cluster pipeline in transaction mode, staging as above."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(client, transaction=True)
        self._execution_strategy = _StagedOnCallerLoop(self)


def transaction(redis: Redis) -> Pipeline:
    """A MULTI/EXEC pipeline (every key in one slot on a cluster); use it instead of
    ``redis.pipeline(transaction=True)``, which on a cluster stages off the caller's loop
    (see :class:`_StagedOnCallerLoop`)."""
    if isinstance(redis, RedisCluster):
        return cast(Pipeline, _ClusterTransaction(redis))
    return redis.pipeline(transaction=True)


def queue_script(pipe: Pipeline, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
    """Queue a script call on a pipeline (or MULTI), by its text (EVAL).

    By SHA, redis-py's pipeline first asks Redis whether it has every script it was given
    (SCRIPT EXISTS: one more round trip per execute, about a quarter of the client's CPU for a
    one-script transaction), and a cluster pipeline refuses EVALSHA outright. By text, no node
    can answer NOSCRIPT (a promoted replica, a restarted Redis) in the middle of a MULTI, and
    Redis compiles a text once and keeps it by its SHA: the cost is the script's bytes."""
    text = script.script
    pipe.eval(text if isinstance(text, str) else bytes(text).decode(), len(keys), *keys, *args)


async def publish_each(redis: Redis, channels: Iterable[str], message: bytes) -> None:
    """PUBLISH ``message`` on each channel, concurrently (a cluster pipeline refuses
    PUBLISH; pub/sub messages reach subscribers on every node of a cluster)."""
    await asyncio.gather(*(redis.publish(channel, message) for channel in channels))


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
    """Sends the Lua script calls (and plain commands) that concurrent handlers make in the same
    moment as one pipeline: one round trip and one connection for many records instead of one
    each.

    Each call still runs atomically on its own (a pipeline without MULTI); a failing call
    fails only its caller."""

    def __init__(self, redis: Redis, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._pending: list[
            tuple[AsyncScript | None, list[str], list[Any], asyncio.Future[Any]]
        ] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        return await self._queued(script, keys, args)

    async def command(self, *args: Any) -> Any:
        """A plain command (its keys in one slot), e.g. ``command("GET", key)``."""
        return await self._queued(None, [], list(args))

    async def _queued(self, script: AsyncScript | None, keys: list[str], args: list[Any]) -> Any:
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
        self, batch: list[tuple[AsyncScript | None, list[str], list[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, keys, args, _ in batch:
                    if script is None:
                        pipe.execute_command(*args)
                    else:
                        queue_script(pipe, script, keys, args)
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
