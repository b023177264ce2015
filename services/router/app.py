"""Wiring of the router: inbound messages in, routed conversations and commands out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from libs.common.config import LiveConfig
from libs.common.kafka.consumer import Handler, Prepare
from libs.common.keys import Keys
from libs.common.service import (
    REDIS,
    SETTINGS,
    TOPICS,
    add_consumer,
    add_live_config,
    create_app,
)
from libs.common.settings import Settings
from services.router.model_cache import ModelCache
from services.router.route import Router
from services.router.runtime import RouterRuntime

LIVE_CONFIG = web.AppKey("live_config", LiveConfig[RouterRuntime])
ROUTER = web.AppKey("router", Router)
GROUP_ID = "switchboard-router"


async def _router_ctx(app: web.Application) -> AsyncIterator[None]:
    app[ROUTER] = Router.on_redis(
        app[REDIS],
        Keys(app[SETTINGS].switchboard_key_prefix),
        live=app[LIVE_CONFIG],
        topics=app[TOPICS],
    )
    yield


def _handler(app: web.Application) -> Handler:
    return app[ROUTER].handle


def _prepare(app: web.Application) -> Prepare:
    return app[ROUTER].prepare


def build(settings: Settings) -> web.Application:
    app = create_app(settings, "router")
    models = ModelCache(settings.switchboard_model_cache)
    add_live_config(app, LIVE_CONFIG, partial(RouterRuntime.build, models=models))
    app.cleanup_ctx.append(_router_ctx)
    add_consumer(
        app,
        group_id=GROUP_ID,
        topics=lambda t: [t.inbound, t.agent_actions],
        handler=_handler,
        prepare=_prepare,
    )
    return app
