"""Wiring of the outbound service: commands in, provider calls, receipts out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from libs.common.config import LiveConfig
from libs.common.kafka.consumer import Handler
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
from services.outbound.deliver import Deliverer
from services.outbound.runtime import OutboundRuntime
from services.outbound.senders.base import Sender
from services.outbound.senders.chat import ChatSender
from services.outbound.senders.sms import TwilioSms
from services.outbound.sends import SendRecords

LIVE_CONFIG = web.AppKey("live_config", LiveConfig[OutboundRuntime])
DELIVERER = web.AppKey("deliverer", Deliverer)
GROUP_ID = "switchboard-outbound"


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
        "chat": ChatSender(app[REDIS], Keys(settings.switchboard_key_prefix)),
    }
    app[DELIVERER] = Deliverer(
        live=app[LIVE_CONFIG],
        senders=senders,
        sends=SendRecords(app[REDIS], Keys(settings.switchboard_key_prefix)),
        topics=app[TOPICS],
    )
    yield
    await sms.close()


def _handler(app: web.Application) -> Handler:
    return app[DELIVERER].handle


def build(settings: Settings) -> web.Application:
    app = create_app(settings, "outbound")
    add_live_config(app, LIVE_CONFIG, OutboundRuntime.build)
    app.cleanup_ctx.append(_parts_ctx)
    add_consumer(app, group_id=GROUP_ID, topics=lambda t: [t.outbound_commands], handler=_handler)
    return app
