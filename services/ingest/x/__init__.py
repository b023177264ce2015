"""X (Twitter): public mentions polled through tweepy, direct messages by webhook.

Both are optional and independent: the mentions poller runs as a background task of ingest
when ``X_BEARER_TOKEN`` is set, the Account Activity webhook is served when
``X_CONSUMER_SECRET`` is set; both need ``X_USER_ID``, our account's numeric id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from libs.common.keys import Keys
from libs.common.service import REDIS, SETTINGS, add_background
from services.ingest.accept import Acceptor
from services.ingest.x.api import XApi
from services.ingest.x.mentions import Checkpoint, MentionsPoller
from services.ingest.x.webhook import PATH, XWebhook

X_WEBHOOK = web.AppKey("x_webhook", XWebhook)
X_POLLER = web.AppKey("x_poller", MentionsPoller)


def install(app: web.Application, acceptor: web.AppKey[Acceptor]) -> None:
    """Add what the settings enable; ``acceptor`` must be set by an earlier cleanup context."""
    settings = app[SETTINGS]
    if settings.x_consumer_secret:

        async def webhook_ctx(app: web.Application) -> AsyncIterator[None]:
            app[X_WEBHOOK] = XWebhook(
                acceptor=app[acceptor],
                consumer_secret=settings.x_consumer_secret,
                user_id=settings.x_user_id,
            )
            yield

        app.cleanup_ctx.append(webhook_ctx)
        app.router.add_get(PATH, _crc)
        app.router.add_post(PATH, _events)
    if settings.x_bearer_token:
        app.cleanup_ctx.append(_poller_ctx(acceptor))
        # A poll in flight is abandoned after a moment: its checkpoint has not moved, so the
        # next start asks X again for what it was publishing.
        add_background(
            app, "x mentions poller", lambda a: a[X_POLLER].run(), stop=lambda a: a[X_POLLER].stop()
        )


def _poller_ctx(
    acceptor: web.AppKey[Acceptor],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        api = XApi(
            bearer_token=settings.x_bearer_token,
            base_url=settings.x_api_base_url,
            ca_bundle=settings.x_ca_bundle,
        )
        poller = MentionsPoller(
            api=api,
            acceptor=app[acceptor],
            checkpoint=Checkpoint(
                app[REDIS], Keys(settings.switchboard_key_prefix), settings.x_user_id
            ),
            user_id=settings.x_user_id,
            interval=settings.x_poll_interval,
        )
        app[X_POLLER] = poller
        try:
            yield
        finally:
            await api.close()

    return ctx


async def _crc(request: web.Request) -> web.Response:
    return await request.app[X_WEBHOOK].crc(request)


async def _events(request: web.Request) -> web.Response:
    return await request.app[X_WEBHOOK].events(request)
