"""Wiring of the SLA service: the clock keeper consumes, the scheduler fires timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import TopicPartition

from libs.common import metrics
from libs.common.config import LiveConfig
from libs.common.kafka.consumer import INFRASTRUCTURE_ERRORS, Handler, PartitionsCallback
from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.service import (
    CLOCK,
    PRODUCER,
    REDIS,
    SETTINGS,
    TOPICS,
    add_background,
    add_consumer,
    add_live_config,
    create_app,
)
from libs.common.settings import Settings
from services.sla.clocks import ClockStore, ConversationLocks
from services.sla.contacts import ContactStore
from services.sla.lifecycle import ClockKeeper
from services.sla.runtime import SlaRuntime
from services.sla.scheduler import TimerScheduler
from services.sla.timers import TimerStore

LIVE_CONFIG = web.AppKey("live_config", LiveConfig[SlaRuntime])
KEEPER = web.AppKey("clock_keeper", ClockKeeper)
SCHEDULER = web.AppKey("timer_scheduler", TimerScheduler)
CLOCK_STORE = web.AppKey("clock_store", ClockStore)
GROUP_ID = "switchboard-sla"
OPEN_CLOCKS_INTERVAL = 15.0
RELOAD_CHECK_INTERVAL = 1.0
log = get_logger(__name__)


async def _parts_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = Keys(app[SETTINGS].switchboard_key_prefix)
    clocks = app[CLOCK_STORE] = ClockStore(app[REDIS], keys)
    timers = TimerStore(app[REDIS], keys)
    contacts = ContactStore(app[REDIS], keys)
    locks = ConversationLocks()
    scheduler = TimerScheduler(
        live=app[LIVE_CONFIG],
        timers=timers,
        clocks=clocks,
        contacts=contacts,
        locks=locks,
        producer=app[PRODUCER],
        topics=app[TOPICS],
        clock=app[CLOCK],
    )
    app[SCHEDULER] = scheduler
    app[KEEPER] = ClockKeeper(
        live=app[LIVE_CONFIG],
        clocks=clocks,
        timers=timers,
        contacts=contacts,
        locks=locks,
        topics=app[TOPICS],
        on_scheduled=scheduler.scheduled,
        publish=app[PRODUCER].publish,
    )
    yield


async def _export_open_clocks(app: web.Application) -> None:
    """Refresh the open-clocks gauge from Redis (every replica reports the same totals)."""
    while True:
        try:
            counts = await app[CLOCK_STORE].open_counts(app[LIVE_CONFIG].config.queues)
        except INFRASTRUCTURE_ERRORS:
            counts = {}
        for queue, count in counts.items():
            metrics.sla_open_clocks.labels(queue).set(count)
        await asyncio.sleep(OPEN_CLOCKS_INTERVAL)


async def _recompute_on_reload(app: web.Application) -> None:
    """After the configuration watcher swapped in a new configuration, recompute the open
    clocks of this worker's partitions it changed and publish a ``recomputed`` event for each.
    A failure leaves the previous configuration as the reference, so the next check tries
    again (clocks already recomputed come out the same and are skipped)."""
    live = app[LIVE_CONFIG]
    reference = live.current
    while True:
        await asyncio.sleep(RELOAD_CHECK_INTERVAL)
        current = live.current
        if current is reference:
            continue
        try:
            await app[KEEPER].reconfigure(reference, app[SCHEDULER].partitions, app[CLOCK])
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("recomputing clocks after a reload failed; retrying", error=repr(exc))
            continue
        reference = current


def _handler(app: web.Application) -> Handler:
    return app[KEEPER].handle


def _timer_partitions(app: web.Application, tps: frozenset[TopicPartition]) -> list[int]:
    return [tp.partition for tp in tps if tp.topic == app[TOPICS].routed]


def _on_assigned(app: web.Application) -> PartitionsCallback:
    async def assigned(tps: frozenset[TopicPartition]) -> None:
        await app[SCHEDULER].assign(_timer_partitions(app, tps))

    return assigned


def _on_revoked(app: web.Application) -> PartitionsCallback:
    async def revoked(tps: frozenset[TopicPartition]) -> None:
        app[SCHEDULER].revoke(_timer_partitions(app, tps))

    return revoked


def build(settings: Settings) -> web.Application:
    app = create_app(settings, "sla")
    add_live_config(app, LIVE_CONFIG, SlaRuntime.build)
    app.cleanup_ctx.append(_parts_ctx)
    add_background(app, "sla timer scheduler", lambda a: a[SCHEDULER].run())
    add_background(app, "open clocks gauge", _export_open_clocks)
    add_background(app, "sla recompute on reload", _recompute_on_reload)
    add_consumer(
        app,
        group_id=GROUP_ID,
        topics=lambda t: [t.routed, t.agent_actions, t.outbound_status],
        handler=_handler,
        on_assigned=_on_assigned,
        on_revoked=_on_revoked,
    )
    return app
