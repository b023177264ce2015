"""Wiring of the ingest service: connectors in front, one acceptor to Kafka behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from libs.common.keys import Keys
from libs.common.service import PRODUCER, REDIS, SETTINGS, TOPICS, create_app
from libs.common.settings import Settings
from services.ingest import inbox, sms, x
from services.ingest.accept import Acceptor
from services.ingest.chat import add_chat

SMS_WEBHOOK = web.AppKey("sms_webhook", sms.TwilioWebhook)
SMS_STATUS = web.AppKey("sms_status", sms.TwilioStatusCallback)
ACCEPTOR = web.AppKey("acceptor", Acceptor)


async def _connectors_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    acceptor = Acceptor(
        producer=app[PRODUCER],
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
        topic=app[TOPICS].inbound,
        timeout=settings.switchboard_publish_timeout,
    )
    app[ACCEPTOR] = acceptor
    app[SMS_WEBHOOK] = sms.TwilioWebhook(
        acceptor=acceptor,
        auth_token=settings.twilio_auth_token,
        public_url=settings.switchboard_public_url,
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
    )
    app[SMS_STATUS] = sms.TwilioStatusCallback(
        producer=app[PRODUCER],
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
        topic=app[TOPICS].outbound_status,
        timeout=settings.switchboard_publish_timeout,
        auth_token=settings.twilio_auth_token,
        public_url=settings.switchboard_public_url,
    )
    yield


async def _sms_webhook(request: web.Request) -> web.Response:
    return await request.app[SMS_WEBHOOK](request)


async def _sms_status(request: web.Request) -> web.Response:
    return await request.app[SMS_STATUS](request)


def build(settings: Settings) -> web.Application:
    app = create_app(settings, "ingest")
    app.cleanup_ctx.append(_connectors_ctx)
    app.router.add_post(sms.PATH, _sms_webhook)
    app.router.add_post(sms.STATUS_PATH, _sms_status)
    x.install(app, ACCEPTOR)  # after _connectors_ctx, which sets ACCEPTOR
    inbox.install(app, ACCEPTOR)  # SMTP, and IMAP polling when IMAP_HOST is set
    add_chat(app)
    return app
