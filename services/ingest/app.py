"""Wiring of the ingest service: connectors in front, one acceptor to Kafka behind them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.service import CLOCK, PRODUCER, REDIS, SETTINGS, TOPICS, create_app
from libs.common.settings import Settings
from libs.contracts.surveys import PendingSurveys, SurveyLinks
from libs.domain.language import load_model
from services.ingest import mailboxes, sms, survey_answers, x
from services.ingest.accept import Acceptor
from services.ingest.chat import add_chat

log = get_logger(__name__)

SMS_WEBHOOK = web.AppKey("sms_webhook", sms.TwilioWebhook)
SMS_STATUS = web.AppKey("sms_status", sms.TwilioStatusCallback)
ACCEPTOR = web.AppKey("acceptor", Acceptor)
SURVEY_LINKS = web.AppKey("survey_links", survey_answers.SurveyLinkEndpoint)


async def _connectors_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Every connector detects the language of what it receives: load the model before the
    # first message rather than during it.
    await asyncio.to_thread(load_model)
    acceptor = Acceptor(
        producer=app[PRODUCER],
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
        topic=app[TOPICS].inbound,
        timeout=settings.switchboard_publish_timeout,
        surveys=PendingSurveys(app[REDIS], Keys(settings.switchboard_key_prefix)),
    )
    app[ACCEPTOR] = acceptor
    app[SURVEY_LINKS] = survey_answers.SurveyLinkEndpoint(
        links=SurveyLinks(settings.survey_link_key) if settings.survey_link_key else None,
        acceptor=acceptor,
        clock=app[CLOCK],
    )
    app[SMS_WEBHOOK] = sms.TwilioWebhook(
        acceptor=acceptor,
        auth_token=settings.twilio_auth_token,
        public_url=settings.switchboard_public_url,
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
        account_sid=settings.twilio_account_sid,
    )
    app[SMS_STATUS] = sms.TwilioStatusCallback(
        producer=app[PRODUCER],
        redis=app[REDIS],
        keys=Keys(settings.switchboard_key_prefix),
        topic=app[TOPICS].outbound_status,
        timeout=settings.switchboard_publish_timeout,
        auth_token=settings.twilio_auth_token,
        public_url=settings.switchboard_public_url,
        account_sid=settings.twilio_account_sid,
    )
    yield


async def _sms_webhook(request: web.Request) -> web.Response:
    return await request.app[SMS_WEBHOOK](request)


async def _sms_status(request: web.Request) -> web.Response:
    return await request.app[SMS_STATUS](request)


async def _survey_link(request: web.Request) -> web.Response:
    return await request.app[SURVEY_LINKS](request)


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
    app.cleanup_ctx.append(_connectors_ctx)
    app.router.add_post(sms.PATH, _sms_webhook)
    app.router.add_post(sms.STATUS_PATH, _sms_status)
    app.router.add_get(survey_answers.PATH, _survey_link)
    x.install(app, ACCEPTOR)  # after _connectors_ctx, which sets ACCEPTOR
    mailboxes.install(app, ACCEPTOR)  # SMTP, and IMAP polling when IMAP_HOST is set
    add_chat(app)
    return app
