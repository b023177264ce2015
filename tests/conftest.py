"""Fixtures shared by every test layer: the dev stack, isolated prefixes, local providers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from libs.common.kafka.producer import EventProducer, create_producer
from libs.common.redis_client import open_redis
from libs.common.settings import Settings
from libs.common.topics import Topics
from services.router.model_cache import ModelCache
from tests.support import slots
from tests.support.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    OUR_NUMBER,
    Isolation,
    Launch,
    OtlpFake,
    TwilioFake,
)
from tests.support.otlp import OtlpReceiver
from tooling.devstack import (
    FREE_PORTS_VARIABLE,
    DevStack,
    LocalRedisCluster,
    ServiceProcess,
    create_topics,
    free_port,
    free_port_range,
)
from tooling.sandbox.twilio import TwilioSandbox

CROSS_SLOT = re.compile(
    r"CROSSSLOT|same (key )?slot|non local key|blocked when running redis in cluster mode",
    re.IGNORECASE,
)
"""What Redis Cluster (and redis-py's cluster client) say of keys of several slots in one
script or transaction, or of a command a cluster pipeline refuses; no service log may contain
it."""

PROCESS_LEVEL = ("tests/reliability/", "tests/e2e/", "tests/browser/")
"""Folders whose tests run whole services as processes (each takes tens of seconds), longest
first."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the long tests first (process-level folders and ``slow`` marks): xdist hands out
    modules in collection order (``--dist loadscope --no-loadscope-reorder`` in the Makefile),
    and a 90-second drill handed out last would run alone while the other workers sit idle."""

    def rank(item: pytest.Item) -> int:
        for position, folder in enumerate(PROCESS_LEVEL):
            if item.nodeid.startswith(folder):
                return position
        return len(PROCESS_LEVEL) + (item.get_closest_marker("slow") is None)

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def one_slot_per_operation() -> Iterator[None]:
    """Every Lua script call and MULTI/EXEC in the run touches one hash slot (Redis Cluster)."""
    with slots.installed():
        yield


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[DevStack]:
    """One broker and one Redis for the whole run; tests isolate by prefix."""
    dev_stack = DevStack()
    await dev_stack.start()
    yield dev_stack
    dev_stack.stop()


@pytest.fixture
async def own() -> AsyncIterator[DevStack]:
    """A broker and Redis of the test's own, for a test that stops them (the session's stay
    up); ask for it before ``launch`` so the services stop first."""
    own_stack = DevStack()
    await own_stack.start()
    yield own_stack
    own_stack.stop()


@pytest.fixture
async def isolation(stack: DevStack) -> AsyncIterator[Isolation]:
    """Fresh topics and Redis keys for one test, removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    topics = Topics.with_prefix(f"t{tag}.")
    await create_topics(stack.broker.bootstrap_servers, topics.all())
    yield Isolation(f"t{tag}.", f"t{tag}:", topics)
    redis = Redis.from_url(stack.redis.url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"t{tag}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(list(topics.all()))
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def redis_cluster() -> AsyncIterator[LocalRedisCluster]:
    """A six-node Redis Cluster for the run, started only when a ``cluster`` test asks."""
    cluster = LocalRedisCluster()
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``cluster`` that uses Redis runs twice: on one node and on the cluster."""
    if "redis_deployment" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "cluster"
    ):
        metafunc.parametrize("redis_deployment", ["node", "cluster"], indirect=True)


@pytest.fixture
def redis_deployment(request: pytest.FixtureRequest) -> str:
    """``node`` (the session's Redis) or ``cluster`` (see :func:`pytest_generate_tests`)."""
    return str(getattr(request, "param", "node"))


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, stack: DevStack, redis_deployment: str) -> str:
    """REDIS_URL of the test's Redis: the session's node, or the cluster's nodes."""
    if redis_deployment == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return stack.redis.url


@pytest.fixture
async def producer(stack: DevStack) -> AsyncIterator[EventProducer]:
    """A started producer on the session's broker (a test announces nothing through it)."""
    kafka = create_producer(
        Settings(kafka_bootstrap_servers=stack.broker.bootstrap_servers), client_id="test"
    )
    await kafka.start()
    yield EventProducer(kafka)
    await kafka.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = await open_redis(Settings(redis_url=redis_url))
    yield client
    await client.aclose()


ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve aiohttp apps on free loopback ports; returns each one's base URL."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def twilio(serve_app: ServeApp) -> TwilioFake:
    sandbox = TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN)
    return TwilioFake(sandbox, await serve_app(sandbox.app()))


@pytest.fixture
async def otlp(serve_app: ServeApp) -> OtlpFake:
    receiver = OtlpReceiver()
    return OtlpFake(receiver, await serve_app(receiver.app()))


@pytest.fixture(scope="session", autouse=True)
def own_ports() -> Iterator[None]:
    """Each xdist worker (and what it starts) picks free ports from its own part of the range:
    two workers picking the same port before either binds it failed a service's start with
    EADDRINUSE."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        yield
        return
    low, high = free_port_range()
    share = (high - low) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    start = low + int(worker.removeprefix("gw")) * share
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FREE_PORTS_VARIABLE, f"{start}-{start + share}")
        yield


@pytest.fixture(scope="session", autouse=True)
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelCache]:
    """Fitted issue-type models for the whole run, in one directory that every test worker and
    every service the tests start (``SWITCHBOARD_MODEL_CACHE``) shares: a set of examples is
    fitted once per run, not once per process (the sample's costs about 11 s of CPU)."""
    base = tmp_path_factory.getbasetemp()
    # An xdist worker's base is a folder of the run's; without xdist it is the run's own.
    run = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    directory = run / "models"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWITCHBOARD_MODEL_CACHE", str(directory))
        yield ModelCache(directory)


@pytest.fixture
def service_env(
    stack: DevStack, isolation: Isolation, twilio: TwilioFake, tmp_path: Path, redis_url: str
) -> dict[str, str]:
    """Environment of a service process pointed at this test's topics, keys, Redis and fakes."""
    ingest_port = free_port()
    return {
        **stack.environment(isolation.topic_prefix),
        "REDIS_URL": redis_url,
        "SWITCHBOARD_KEY_PREFIX": isolation.key_prefix,
        "SWITCHBOARD_CONFIG": str(FIXTURES / "config" / "spine.yaml"),
        "SWITCHBOARD_PUBLIC_URL": f"http://127.0.0.1:{ingest_port}",
        "SWITCHBOARD_INGEST_PORT": str(ingest_port),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": OUR_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url,
        "SWITCHBOARD_DRAIN_SECONDS": "5",
        # A SIGKILLed worker's partitions move after this; the drills wait it out per kill.
        "SWITCHBOARD_SESSION_TIMEOUT_MS": "3000",
        "OTEL_TRACES_EXPORTER": "none",
    }


@pytest.fixture
async def launch(tmp_path: Path, serve_app: ServeApp) -> AsyncIterator[Launch]:
    """Start services as separate processes and wait until each is ready.

    Depends on ``serve_app`` so that the local fakes it serves (the OTLP receiver, the Twilio
    sandbox) outlive the services: a service draining on SIGTERM still reaches them, instead of
    waiting out an exporter's timeout against a closed (or blocked) port."""
    started: list[ServiceProcess] = []

    async def start(names: Iterable[str], env: dict[str, str]) -> list[ServiceProcess]:
        processes = []
        for name in names:
            port = int(env["SWITCHBOARD_INGEST_PORT"]) if name == "ingest" else free_port()
            process = ServiceProcess(
                name, env, port=port, log_path=tmp_path / f"{name}.log", preloaded=True
            )
            process.start()
            processes.append(process)
            started.append(process)
        for process in processes:
            await process.wait_ready()
        return processes

    yield start
    # All drain at once, in threads: the fakes they still talk to run on this event loop.
    await asyncio.gather(*(asyncio.to_thread(process.stop) for process in started))
    for process in started:
        assert process.log_path is not None
        said = process.log_path.read_text(errors="replace")
        assert not CROSS_SLOT.search(said), f"{process.name} met a cross-slot error"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
