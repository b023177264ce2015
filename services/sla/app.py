"""Wiring of the SLA service: the clock keeper consumes, the scheduler fires timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import TopicPartition

from libs.common.config import LiveConfig
from libs.common.kafka.consumer import Handler, PartitionsCallback
from libs.common.keys import Keys
from libs.common.service import (
    BACKGROUND,
    PRODUCER,
    REDIS,
    SETTINGS,
    TOPICS,
    add_consumer,
    add_live_config,
    create_app,
)
from libs.common.settings import Settings
from services.sla.clocks import ClockStore
from services.sla.lifecycle import ClockKeeper
from services.sla.runtime import SlaRuntime
from services.sla.scheduler import TimerScheduler
from services.sla.timers import TimerStore

LIVE_CONFIG = web.AppKey("live_config", LiveConfig[SlaRuntime])
KEEPER = web.AppKey("clock_keeper", ClockKeeper)
SCHEDULER = web.AppKey("timer_scheduler", TimerScheduler)
GROUP_ID = "switchboard-sla"


async def _parts_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = Keys(app[SETTINGS].switchboard_key_prefix)
    clocks = ClockStore(app[REDIS], keys)
    timers = TimerStore(app[REDIS], keys)
    scheduler = TimerScheduler(
        timers=timers, clocks=clocks, producer=app[PRODUCER], topics=app[TOPICS]
    )
    app[SCHEDULER] = scheduler
    app[KEEPER] = ClockKeeper(
        live=app[LIVE_CONFIG],
        clocks=clocks,
        timers=timers,
        topics=app[TOPICS],
        on_scheduled=scheduler.scheduled,
    )
    task = asyncio.create_task(scheduler.run(), name="sla timer scheduler")
    app[BACKGROUND].append(task)
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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
    add_consumer(
        app,
        group_id=GROUP_ID,
        topics=lambda t: [t.routed, t.agent_actions],
        handler=_handler,
        on_assigned=_on_assigned,
        on_revoked=_on_revoked,
    )
    return app
