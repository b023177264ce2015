"""Wiring of the agent hub: the fan-out consumer, the queue feeds and the websocket endpoint.

Shutdown order: on SIGTERM the HTTP site stops accepting, every agent socket is closed with
GOING_AWAY (clients reconnect to another replica and resume; their agents' presence outlives
them by HUB_PRESENCE_GRACE), then the fan-out consumer drains and commits, the assigner, the
inbox and the feeds stop, the producer flushes and Redis closes; every step is bounded below
the pod's grace period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

from libs.common.clock import Clock, system_clock
from libs.common.config import Config, LiveConfig
from libs.common.kafka.consumer import Handler
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher, open_redis
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
from libs.common.settings import Settings, SettingsError
from libs.common.topics import Topics
from libs.contracts.agent_access import CONSOLE_PATH, WS_PATH, AgentTokens
from services.hub.actions import ActionPublisher
from services.hub.agent_sockets import AgentInbox
from services.hub.assignment import Assigner, AssignmentPolicy
from services.hub.customer_view import CustomerViews
from services.hub.endpoint import HubEndpoint
from services.hub.fanout import FanOut
from services.hub.feeds import Feeds
from services.hub.figure_gauges import FigureGauges
from services.hub.figures import Figures
from services.hub.groups import AssignmentGroups
from services.hub.incidents import IncidentAnswers, Incidents, status_update_channels
from services.hub.ladder import Ladder
from services.hub.open_conversations import OpenConversations
from services.hub.sessions import Limits, Services
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts

GROUP_ID = "switchboard-hub"
STATIC = Path(__file__).resolve().parent / "static"
CONSOLE_FILES = {
    "": ("index.html", "text/html"),
    "console.js": ("console.js", "application/javascript"),
    "console.css": ("console.css", "text/css"),
}
"""The agent console's files under ``CONSOLE_PATH``: a static page that speaks the protocol."""
CONSOLE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only the hub's own script, style and socket: customer text can never become markup.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
}
QUEUES = web.AppKey("queues", LiveConfig[frozenset[str]])
FANOUT = web.AppKey("fanout", FanOut)
ASSIGNER = web.AppKey("assigner", Assigner)
INBOX = web.AppKey("inbox", AgentInbox)
GAUGES = web.AppKey("gauges", FigureGauges)
HUB = web.AppKey("hub", HubEndpoint)


def _queue_names(config: Config, path: Path) -> frozenset[str]:
    return frozenset(config.queues)


def _hub_ctx(limits: Limits) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings, redis = app[SETTINGS], app[REDIS]
        keys = Keys(settings.switchboard_key_prefix)
        # The fan-out's concurrent handlers share one batcher: their script calls in the same
        # moment go to Redis as one pipeline.
        scripts = ScriptBatcher(redis)
        live = app[QUEUES]
        groups = AssignmentGroups(lambda: live.config.queues)
        conversations = OpenConversations(redis, keys, groups, scripts=scripts)
        streams = _streams(settings, redis, keys, scripts)
        transcripts = Transcripts(redis, keys, scripts=scripts)
        assigner = app[ASSIGNER] = Assigner(
            redis,
            keys,
            conversations,
            AssignmentPolicy.from_settings(settings),
            queues=lambda: live.current,
            transcripts=transcripts,
            streams=streams,
            ladder=lambda queue: Ladder.of(live.config, queue),
            clock=app[CLOCK],
        )
        figures = Figures(redis, keys, conversations)
        app[GAUGES] = FigureGauges(figures, lambda: live.current, app[CLOCK])
        incidents = Incidents(redis, keys, groups)
        app[FANOUT] = FanOut(streams, conversations, assigner, transcripts, figures, incidents)
        # Blocking reads get their own connections, apart from the request path's pool.
        feed_redis = await open_redis(settings)
        feeds = Feeds(
            _streams(settings, feed_redis, keys), batch=max(1, min(256, limits.send_buffer // 2))
        )
        inbox = app[INBOX] = AgentInbox(feed_redis, keys)
        actions = ActionPublisher(
            producer=app[PRODUCER],
            redis=redis,
            keys=keys,
            topics=app[TOPICS],
            conversations=conversations,
            known_queues=lambda: live.current,
            known_issue_types=lambda: frozenset(live.config.issue_types),
            timeout=settings.switchboard_publish_timeout,
            clock=app[CLOCK],
        )
        services = Services(
            streams=streams,
            feeds=feeds,
            conversations=conversations,
            customers=CustomerViews(redis, keys, conversations),
            transcripts=transcripts,
            figures=figures,
            actions=actions,
            incidents=incidents,
            answers=IncidentAnswers(
                incidents=incidents,
                conversations=conversations,
                producer=app[PRODUCER],
                redis=redis,
                keys=keys,
                topics=app[TOPICS],
                template_channels=lambda: status_update_channels(live.config),
                timeout=settings.switchboard_publish_timeout,
                clock=app[CLOCK],
            ),
            assigner=assigner,
            groups=groups,
            inbox=inbox,
            limits=limits,
            clock=app[CLOCK],
        )
        app[HUB] = HubEndpoint(AgentTokens(settings.agent_token_key, app[CLOCK]), services)
        yield
        await feeds.stop()
        await feed_redis.aclose()

    return ctx


def _streams(
    settings: Settings, redis: Redis, keys: Keys, scripts: ScriptBatcher | None = None
) -> QueueStreams:
    return QueueStreams(
        redis,
        keys,
        maxlen=settings.hub_stream_maxlen,
        max_age=settings.hub_stream_max_age,
        scripts=scripts,
    )


def fanout_topics(topics: Topics) -> list[str]:
    """What the fan-out reads (inbound for survey answers only). The hub scales by CPU (its
    sockets), not by this group's lag, so no KEDA ScaledObject follows it (the manifest test
    skips non-literal topic lists)."""
    return [
        topics.routed,
        topics.sla_events,
        topics.outbound_status,
        topics.agent_actions,
        topics.inbound,
    ]


def _handler(app: web.Application) -> Handler:
    return app[FANOUT].handle


async def _websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB].websocket(request)


async def _console(request: web.Request) -> web.StreamResponse:
    found = CONSOLE_FILES.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    name, content_type = found
    headers = {**CONSOLE_HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}
    return web.FileResponse(STATIC / name, headers=headers)


async def _to_console(_: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(CONSOLE_PATH)


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].shutdown()


def build(
    settings: Settings, limits: Limits | None = None, clock: Clock = system_clock
) -> web.Application:
    if not settings.agent_token_key:
        raise SettingsError("AGENT_TOKEN_KEY is required by the hub (32+ bytes)")
    app = create_app(settings, "hub", clock)
    add_live_config(app, QUEUES, _queue_names)
    app.cleanup_ctx.append(_hub_ctx(limits or Limits()))
    add_background(app, "hub inbox", lambda a: a[INBOX].run())
    add_background(app, "hub assigner", lambda a: a[ASSIGNER].run())
    add_background(app, "hub queue gauges", lambda a: a[GAUGES].run())
    add_consumer(
        app,
        group_id=GROUP_ID,
        topics=lambda t: fanout_topics(t),
        handler=_handler,
    )
    app.on_shutdown.append(_close_sockets)
    app.router.add_get(WS_PATH, _websocket)
    app.router.add_get(CONSOLE_PATH.rstrip("/"), _to_console)
    app.router.add_get(CONSOLE_PATH + "{name:[a-z.]*}", _console)
    return app
