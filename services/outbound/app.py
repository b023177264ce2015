"""Wiring of the outbound service: commands in, provider calls, receipts out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from libs.common.config import LiveConfig
from libs.common.events import OutboundCommand
from libs.common.kafka.consumer import Handler
from libs.common.keys import Keys
from libs.common.redis_client import ScriptBatcher
from libs.common.service import (
    CLOCK,
    REDIS,
    SETTINGS,
    TOPICS,
    add_consumer,
    add_live_config,
    create_app,
)
from libs.common.settings import Settings
from libs.contracts import whatsapp
from libs.contracts.optout import is_opted_out
from libs.contracts.sent_mail import SentMail
from libs.contracts.surveys import PendingSurveys, SurveyLinks
from services.outbound.acknowledgements import AcknowledgementLimits
from services.outbound.deliver import Deliverer
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import Sender
from services.outbound.senders.chat import ChatSender
from services.outbound.senders.email import SmtpEmail
from services.outbound.senders.sms import TwilioSms
from services.outbound.senders.whatsapp import TwilioWhatsApp
from services.outbound.senders.x import XReplies
from services.outbound.sends import SendRecords
from services.outbound.survey_sends import SurveyPreparer
from services.outbound.webhooks import WebhookDispatcher, webhook_topics
from services.outbound.whatsapp_window import CustomerServiceWindow

LIVE_CONFIG = web.AppKey("live_config", LiveConfig[OutboundRuntime])
DELIVERER = web.AppKey("deliverer", Deliverer)
WEBHOOKS = web.AppKey("webhooks", WebhookDispatcher)
GROUP_ID = "switchboard-outbound"
WEBHOOK_GROUP_ID = "switchboard-webhooks"
WEBHOOK_TIMEOUT = 10.0


async def _parts_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    sms = TwilioSms(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        default_sender=settings.twilio_from_number,
        api_base_url=settings.twilio_api_base_url,
        status_callback=f"{settings.switchboard_public_url.rstrip('/')}/v1/sms/twilio/status",
    )
    senders: dict[str, Sender] = {
        "sms": sms,
        "whatsapp": TwilioWhatsApp(sms),
        "chat": ChatSender(app[REDIS], Keys(settings.switchboard_key_prefix)),
    }
    if settings.smtp_host:
        senders["email"] = SmtpEmail(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.smtp_from,
            sent=SentMail(app[REDIS], Keys(settings.switchboard_key_prefix)),
        )
    x = None
    if settings.x_user_access_token:
        x = XReplies(user_token=settings.x_user_access_token, base_url=settings.x_api_base_url)
        senders["social"] = x
    redis, keys = app[REDIS], Keys(settings.switchboard_key_prefix)
    scripts = ScriptBatcher(redis)  # a send's record and opt-out check, with the others'

    async def sms_opted_out(command: OutboundCommand) -> bool:
        our = command.sender or settings.twilio_from_number
        if command.channel == "whatsapp":
            our = whatsapp.optout_address(our)
        return await is_opted_out(scripts, keys, our, command.recipient)

    app[DELIVERER] = Deliverer(
        live=app[LIVE_CONFIG],
        senders=senders,
        sends=SendRecords(redis, keys, scripts=scripts),
        topics=app[TOPICS],
        sms_opted_out=sms_opted_out,
        surveys=SurveyPreparer(
            pending=PendingSurveys(redis, keys),
            links=SurveyLinks(settings.survey_link_key) if settings.survey_link_key else None,
            public_url=settings.switchboard_public_url,
        ),
        acknowledgements=AcknowledgementLimits(redis, keys),
        whatsapp_window=CustomerServiceWindow(redis, keys, settings.twilio_from_number, app[CLOCK]),
    )
    webhook_http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT))
    app[WEBHOOKS] = WebhookDispatcher(
        live=app[LIVE_CONFIG],
        session=webhook_http,
        redis=redis,
        keys=keys,
        topics=app[TOPICS],
    )
    yield
    await webhook_http.close()
    await sms.close()
    if x is not None:
        await x.close()


def _handler(app: web.Application) -> Handler:
    return app[DELIVERER].handle


def build(settings: Settings) -> web.Application:
    app = create_app(settings, "outbound")
    add_live_config(app, LIVE_CONFIG, OutboundRuntime.build)
    app.cleanup_ctx.append(_parts_ctx)
    add_consumer(app, group_id=GROUP_ID, topics=lambda t: [t.outbound_commands], handler=_handler)
    # Webhooks read their own group, on the topics the configuration at start asks for (a new
    # event type on another topic takes a restart; subscribers and secrets reload live).
    config = app[LIVE_CONFIG].config
    if config.webhooks:
        add_consumer(
            app,
            group_id=WEBHOOK_GROUP_ID,
            topics=lambda t: webhook_topics(config, t),
            handler=lambda a: a[WEBHOOKS].handle,
        )
    return app
