"""Live chat: the website widget's websocket into Kafka, and agents' replies back to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from libs.common.health import READINESS_CHECKS
from libs.common.keys import Keys
from libs.common.service import REDIS, SETTINGS, add_background
from libs.contracts.chat_mailbox import Mailbox
from services.ingest.accept import Acceptor
from services.ingest.chat.endpoint import SESSION_PATH, WS_PATH, ChatEndpoint, Limits
from services.ingest.chat.session import SessionTokens
from services.ingest.chat.visitor_sockets import ChatHub

__all__ = ["CHAT", "SESSION_PATH", "WS_PATH", "Limits", "install"]

CHAT = web.AppKey("chat", ChatEndpoint)
CHAT_HUB = web.AppKey("chat_hub", ChatHub)
STATIC: Final = Path(__file__).resolve().parent.parent / "static"
WIDGET_PATH: Final = "/widget.js"
DEMO_PATH: Final = "/chat/demo"


def install(
    app: web.Application, acceptor: web.AppKey[Acceptor], limits: Limits | None = None
) -> None:
    """Chat routes, the endpoint and its Redis subscription, for the app's lifetime;
    ``acceptor`` is set by an earlier cleanup context."""
    limits = limits or Limits(sockets_per_ip=app[SETTINGS].chat_max_sockets_per_ip)
    app.cleanup_ctx.append(_chat_ctx(acceptor, limits))
    if app[SETTINGS].chat_session_key:
        add_background(app, "chat subscription", lambda a: a[CHAT_HUB].run())
    app.on_shutdown.append(_close_sockets)
    app.router.add_post(SESSION_PATH, _session)
    app.router.add_route("OPTIONS", SESSION_PATH, _preflight)
    app.router.add_get(WS_PATH, _websocket)
    app.router.add_get(WIDGET_PATH, _static("widget.js", "application/javascript"))
    app.router.add_get(DEMO_PATH, _static("demo.html", "text/html"))


def _chat_ctx(
    acceptor: web.AppKey[Acceptor], limits: Limits
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        keys = Keys(settings.switchboard_key_prefix)
        hub = app[CHAT_HUB] = ChatHub(app[REDIS], keys)
        tokens = None
        if settings.chat_session_key:  # unset: refused, and ingest warns at start-up
            tokens = SessionTokens(settings.chat_session_key, settings.chat_session_ttl)
        app[CHAT] = ChatEndpoint(
            tokens=tokens,
            acceptor=app[acceptor],
            hub=hub,
            mailbox=Mailbox(app[REDIS], keys),
            limits=limits,
        )
        if tokens is not None:

            async def chat_subscribed() -> None:
                if not hub.subscribed:
                    raise RuntimeError("chat reply subscription is down")

            app[READINESS_CHECKS].append(chat_subscribed)
        yield

    return ctx


async def _close_sockets(app: web.Application) -> None:
    if CHAT in app:
        await app[CHAT].close_all()


async def _session(request: web.Request) -> web.Response:
    return await request.app[CHAT].session(request)


async def _preflight(request: web.Request) -> web.Response:
    return await request.app[CHAT].preflight(request)


async def _websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[CHAT].websocket(request)


def _static(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / name

    async def handler(_: web.Request) -> web.FileResponse:
        return web.FileResponse(
            path,
            headers={
                "Content-Type": f"{content_type}; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return handler
