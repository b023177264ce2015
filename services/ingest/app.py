"""Wiring of the ingest service: connectors in front, one acceptor to Kafka behind them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.service import CLOCK, PRODUCER, REDIS, SETTINGS, TOPICS, create_app
from libs.common.settings import Settings
from libs.contracts.surveys import PendingSurveys
from libs.domain.language import load_model
from services.ingest import chat, mailboxes, sms, survey_answers, x
from services.ingest.accept import Acceptor

log = get_logger(__name__)

ACCEPTOR = web.AppKey("acceptor", Acceptor)
Connector = Callable[[web.Application, web.AppKey[Acceptor]], None]
CONNECTORS: tuple[Connector, ...] = (
    sms.install,  # Twilio: SMS and WhatsApp in, delivery statuses
    x.install,  # mentions polled, direct messages by webhook, as the settings enable
    mailboxes.install,  # SMTP, and IMAP polling when IMAP_HOST is set
    chat.install,  # the widget's websocket, sessions and demo page
    survey_answers.install,  # the answer links of email surveys
)
"""Each connector's ``install(app, acceptor)`` adds its routes, cleanup contexts and background
tasks; it publishes through the acceptor under ``acceptor``, set before any of them starts."""


async def accepting(app: web.Application) -> AsyncIterator[None]:
    """The one acceptor every connector publishes through (and so stops before)."""
    settings = app[SETTINGS]
    # Every connector detects the language of what it receives: load the model before the
    # first message rather than during it.
    await asyncio.to_thread(load_model)
    keys = Keys(settings.switchboard_key_prefix)
    app[ACCEPTOR] = Acceptor(
        producer=app[PRODUCER],
        redis=app[REDIS],
        keys=keys,
        topic=app[TOPICS].inbound,
        timeout=settings.switchboard_publish_timeout,
        surveys=PendingSurveys(app[REDIS], keys),
        clock=app[CLOCK],
    )
    yield


def channels_without_secrets(settings: Settings) -> list[tuple[str, str]]:
    """Each channel ingest serves whose secret is unset, as (variable, what that does): such a
    channel refuses every caller, which is easy to miss until a customer's message is lost."""
    unset = [
        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token, "SMS webhooks are refused (403)"),
        ("CHAT_SESSION_KEY", settings.chat_session_key, "chat sessions are refused (503)"),
        ("SURVEY_LINK_KEY", settings.survey_link_key, "email survey answer links are refused"),
    ]
    if settings.x_user_id or settings.x_bearer_token:
        unset.append(
            ("X_CONSUMER_SECRET", settings.x_consumer_secret, "X direct messages are not received")
        )
    return [(variable, effect) for variable, secret, effect in unset if not secret]


def build(settings: Settings) -> web.Application:
    for variable, effect in channels_without_secrets(settings):
        log.warning("channel served without its secret", variable=variable, effect=effect)
    app = create_app(settings, "ingest")
    app.cleanup_ctx.append(accepting)
    for install in CONNECTORS:
        install(app, ACCEPTOR)
    return app
