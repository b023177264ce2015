"""Wiring shared by every service: the aiohttp app, its long-lived resources, and the run loop.

Resources live in ``cleanup_ctx`` generators under typed keys (no module-level clients), so
shutdown runs in the reverse order of start-up. The shutdown order on SIGTERM is: stop
accepting HTTP, stop the consumer (finish in-flight, commit, leave the group), flush and stop
the producer, close Redis; every step's timeout stays below the pod's grace period.

Every long-running task (consumer loop, config watcher, pollers, schedulers) is registered with
:func:`add_background`, the one place that starts, stops and watches them: a task that ends
while the service runs fails ``/healthz`` and ends :func:`serve` with exit code 1.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from redis.asyncio import Redis

from libs.common.clock import Clock, system_clock
from libs.common.config import Config, LiveConfig
from libs.common.health import LIVENESS_CHECKS, READINESS_CHECKS, add_health_routes
from libs.common.kafka.consumer import (
    ConsumerLoop,
    ConsumerPolicy,
    Handler,
    PartitionsCallback,
    Prepare,
    create_consumer,
)
from libs.common.kafka.nudge import Nudger
from libs.common.kafka.producer import EventProducer, create_producer
from libs.common.logs import get_logger, setup_logging
from libs.common.redis_client import close_redis, open_redis
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.topics import Topics, consumer_group
from libs.common.tracing import http_server_middleware, setup_tracing

log = get_logger(__name__)
T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
TOPICS = web.AppKey("topics", Topics)
REDIS = web.AppKey("redis", Redis)
PRODUCER = web.AppKey("producer", EventProducer)
BACKGROUND = web.AppKey("background", list[asyncio.Task[None]])
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
"""The service's one clock (:mod:`libs.common.clock`): every "now" its logic needs."""
LIVENESS_STALE_SECONDS = 60.0
STOP_GRACE = 5.0
"""Seconds a background task asked to stop gets to finish on its own before it is cancelled."""


def create_app(settings: Settings, service: str, clock: Clock = system_clock) -> web.Application:
    """An app with health routes, Redis and a producer; services add their own parts."""
    app = web.Application(client_max_size=1024**2, middlewares=[http_server_middleware()])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[TOPICS] = Topics.with_prefix(settings.switchboard_topic_prefix)
    app[BACKGROUND] = []
    add_health_routes(app)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_producer_ctx(service))
    return app


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = await open_redis(app[SETTINGS])
    app[REDIS] = client

    async def redis_ping() -> None:
        await client.ping()

    app[READINESS_CHECKS].append(redis_ping)
    yield
    await close_redis(client)


def _producer_ctx(service: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        producer = create_producer(settings, client_id=f"switchboard-{service}")
        await producer.start()
        nudger = (
            Nudger(app[REDIS], settings.switchboard_key_prefix)
            if settings.switchboard_fetch_nudge
            else None
        )
        app[PRODUCER] = EventProducer(producer, nudger)

        async def kafka_metadata() -> None:
            await producer.client.fetch_all_metadata()

        app[READINESS_CHECKS].append(kafka_metadata)
        yield
        await producer.stop()
        if nudger is not None:
            await nudger.flushed()

    return ctx


def add_live_config(
    app: web.Application,
    key: web.AppKey[LiveConfig[T]],
    build: Callable[[Config, Path], T],
) -> None:
    """Load the configuration now (a bad file fails the start) and reload it while running."""
    live = LiveConfig(app[SETTINGS].switchboard_config, build)
    app[key] = live
    add_background(app, "config watcher", lambda _: live.watch())


def add_consumer(
    app: web.Application,
    *,
    group_id: str,
    topics: Callable[[Topics], Sequence[str]],
    handler: Callable[[web.Application], Handler],
    prepare: Callable[[web.Application], Prepare] | None = None,
    on_assigned: Callable[[web.Application], PartitionsCallback] | None = None,
    on_revoked: Callable[[web.Application], PartitionsCallback] | None = None,
) -> web.AppKey[ConsumerLoop]:
    """Run the consumer loop for the app's lifetime; it starts after, and stops before, the
    resources it uses. ``group_id`` is the default deployment's name for the group (see
    ``consumer_group``). Returns the key under which the loop is stored."""
    key = web.AppKey(f"consumer:{group_id}", ConsumerLoop)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        policy = ConsumerPolicy.from_settings(
            settings,
            group_id=consumer_group(group_id, settings.switchboard_topic_prefix),
            topics=topics(app[TOPICS]),
            deadletter_topic=app[TOPICS].deadletter,
        )
        loop = ConsumerLoop(
            consumer=create_consumer(settings, policy),
            policy=policy,
            handler=handler(app),
            prepare=prepare(app) if prepare else None,
            producer=app[PRODUCER],
            redis=app[REDIS],
            key_prefix=settings.switchboard_key_prefix,
            on_assigned=on_assigned(app) if on_assigned else None,
            on_revoked=on_revoked(app) if on_revoked else None,
            clock=time.monotonic,
        )
        app[key] = loop

        async def consumer_progress() -> None:
            if time.monotonic() - loop.heartbeat > LIVENESS_STALE_SECONDS:
                raise RuntimeError("consumer loop stalled")

        async def consumer_running() -> None:
            if not loop.running:
                raise RuntimeError("consumer not running")

        async def consumer_advancing() -> None:
            if stalled := loop.stalled():
                names = ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled))
                raise RuntimeError(f"partitions not advancing: {names}")

        app[LIVENESS_CHECKS].append(consumer_progress)
        app[READINESS_CHECKS].extend((consumer_running, consumer_advancing))
        yield

    app.cleanup_ctx.append(ctx)
    # The loop bounds its own drain (SWITCHBOARD_DRAIN_SECONDS): no grace cuts its commit short.
    add_background(
        app,
        f"consumer {group_id}",
        lambda a: a[key].run(),
        stop=lambda a: a[key].stop(),
        grace=None,
    )
    return key


def add_background(
    app: web.Application,
    name: str,
    run: Callable[[web.Application], Coroutine[Any, Any, None]],
    *,
    stop: Callable[[web.Application], None] | None = None,
    grace: float | None = STOP_GRACE,
) -> None:
    """Run ``run(app)`` as the task ``name`` for the app's lifetime, so that no long-running
    loop can die unseen: if it ends while the service runs (an error, a return, a
    cancellation), ``/healthz`` fails naming it and :func:`serve` exits with code 1.

    Register it after the cleanup contexts that build what it uses: it starts after them and
    stops before them. On shutdown ``stop(app)`` asks it to finish on its own within ``grace``
    seconds (``None``: however long it takes); without ``stop``, or past the grace, it is
    cancelled.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app), name=name)
        app[BACKGROUND].append(task)

        async def background_running() -> None:
            if task.done():
                raise RuntimeError(f"{name} ended: {_ending(task)}")

        app[LIVENESS_CHECKS].append(background_running)
        yield
        ended_before = task.done()  # then serve() has reported it already
        if stop is not None and not ended_before:
            stop(app)
            await asyncio.wait([task], timeout=grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not ended_before and not task.cancelled() and task.exception() is not None:
            log.error(
                "background task failed while stopping",
                task=name,
                error=_ending(task),
                exc_info=task.exception(),
            )

    app.cleanup_ctx.append(ctx)


def _ending(task: asyncio.Task[None]) -> str:
    """How a finished task ended, for a log line or a health failure."""
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return repr(error) if error is not None else "returned"


def app_runner(app: web.Application) -> web.AppRunner:
    """The runner of a service app, with the request-line and header limits of its settings.

    A request line or header over the limit is answered 400 by aiohttp's parser before any
    handler runs; the number of headers stays at aiohttp's default (128).
    """
    settings = app[SETTINGS]
    return web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=5.0,
        access_log=None,
        max_line_size=settings.switchboard_http_max_line_size,
        max_field_size=settings.switchboard_http_max_field_size,
    )


async def serve(app: web.Application, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT or until a background task ends; the exit code says which."""
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    settle_heap()
    log.info("service started", address=f"http://{host}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *app[BACKGROUND]], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in app[BACKGROUND] if t.done()]
    waiter.cancel()
    for task in failed:
        log.error(  # with the traceback: a failure that stops a service must be diagnosable
            "background task failed",
            task=task.get_name(),
            error=_ending(task),
            exc_info=None if task.cancelled() else task.exception(),
        )
    await runner.cleanup()
    log.info("service stopped")
    return 1 if failed else 0


def settle_heap() -> None:
    """Keep what start-up built (modules, configuration, the issue-type model) out of the cyclic
    garbage collector's full passes.

    A running service holds 150,000 or more such objects, and a full pass walked all of them:
    under the whole-pipeline bench every service paused 100-300 ms several times in 20 s, and
    a message crossing four services met one of those pauses often enough to set the p99.
    Frozen objects are still freed by reference counting when a configuration reload drops
    them; only a reference cycle among them would outlive the reload.
    """
    gc.collect()
    gc.freeze()


def run(service: str, build: Callable[[Settings], web.Application]) -> None:
    """Entry point of ``python -m services.NAME`` and ``switchboard run NAME``."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"switchboard {service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(service, settings.log_level)
    telemetry = setup_tracing(service)
    try:
        app = build(settings)
        code = asyncio.run(
            serve(app, settings.switchboard_http_host, settings.switchboard_http_port)
        )
    finally:
        telemetry.shutdown()
    raise SystemExit(code)
