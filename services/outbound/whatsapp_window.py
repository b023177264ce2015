"""How a WhatsApp command may go out, by the 24-hour customer-service window.

Inside the window (the customer wrote to our number less than ``whatsapp.window`` ago, as
ingest recorded it) anything goes out free-form. After it WhatsApp delivers only approved
templates: the command goes out as the template configured for its kind
(``whatsapp.templates.<kind>``, Twilio Content API: ``ContentSid`` + ``ContentVariables``), or
not at all (``window_closed``), never free-form for Twilio to fail with 63016. The window is
judged at send time by outbound's clock, not when the command was made: a command that waited
in a backlog past the window's end is a template too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from libs.common.clock import Clock
from libs.common.config import WhatsAppSettings, WhatsAppTemplate
from libs.common.events import OutboundCommand
from libs.common.keys import Keys
from libs.contracts import whatsapp
from services.outbound.senders.base import OutgoingMessage
from services.outbound.templates import DEFAULT_LANGUAGE, TemplateMissing


@dataclass(frozen=True, slots=True)
class TemplateSend:
    """The approved template a command goes out as, filled in."""

    content_sid: str
    content_variables: str
    """JSON: ``{"1": value, ...}``."""

    def message(self, command: OutboundCommand, thread_key: str) -> OutgoingMessage:
        return OutgoingMessage(
            command_id=command.command_id,
            recipient=command.recipient,
            sender=command.sender,
            subject=None,
            text=f"WhatsApp template {self.content_sid} {self.content_variables}",
            in_reply_to=command.in_reply_to,
            automatic=command.kind != "agent_reply",
            thread_key=thread_key,
            conversation_id=command.conversation_id,
            content_sid=self.content_sid,
            content_variables=self.content_variables,
        )


Fit = TemplateSend | Literal["free_form", "window_closed"]


def window_closed_error(command: OutboundCommand) -> str:
    return (
        "WhatsApp's 24-hour customer-service window has closed and no approved template "
        f"(whatsapp.templates.{command.kind}) carries this {command.kind}: nothing was sent"
    )


class CustomerServiceWindow:
    def __init__(self, redis: Redis, keys: Keys, default_sender: str, clock: Clock) -> None:
        self._redis = redis
        self._keys = keys
        self._default_sender = default_sender
        self._clock = clock

    async def fit(self, command: OutboundCommand, settings: WhatsAppSettings) -> Fit:
        """Free-form, the template to send instead, or ``window_closed``."""
        our = command.sender or self._default_sender
        last = await whatsapp.last_inbound(self._redis, self._keys, our, command.recipient)
        if whatsapp.window_open(last, settings.window, self._clock()):
            return "free_form"
        template = settings.templates.get(command.kind)
        if template is None:
            return "window_closed"
        return _filled(template, command)


def _filled(template: WhatsAppTemplate, command: OutboundCommand) -> TemplateSend:
    """The template in the command's language (else English, else the first listed), its
    placeholders filled from the command's params (a missing one is a configuration gap)."""
    by_language = template.content_sid
    language = command.params.get("language") or DEFAULT_LANGUAGE
    sid = (
        by_language.get(language)
        or by_language.get(DEFAULT_LANGUAGE)
        or next(iter(by_language.values()))
    )
    values = {"reference": command.reference, **command.params}
    missing = [name for name in template.variables if not values.get(name)]
    if missing:
        raise TemplateMissing(f"WhatsApp template {sid} needs params {', '.join(missing)}")
    variables = {str(i): values[name] for i, name in enumerate(template.variables, start=1)}
    return TemplateSend(content_sid=sid, content_variables=json.dumps(variables))
