"""WhatsApp out through Twilio: the same Messages API as SMS, with ``whatsapp:`` addresses."""

from __future__ import annotations

from dataclasses import replace

from libs.contracts import whatsapp
from services.outbound.senders.base import OutgoingMessage
from services.outbound.senders.sms import TwilioSms


class TwilioWhatsApp:
    """Sends through a :class:`TwilioSms` (one HTTP client for both channels); numbers arrive in
    E.164 and leave as Twilio's ``whatsapp:+E164`` addresses."""

    def __init__(self, twilio: TwilioSms) -> None:
        self._twilio = twilio

    async def send(self, message: OutgoingMessage) -> str:
        return await self._twilio.send(
            replace(
                message,
                recipient=whatsapp.address(message.recipient),
                sender=whatsapp.address(message.sender or self._twilio.default_sender),
            )
        )
