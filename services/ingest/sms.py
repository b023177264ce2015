"""SMS from Twilio: the inbound-message webhook, signature-checked and normalised.

Twilio signs ``X-Twilio-Signature`` over the public URL it called (TLS ends at the ingress, so
the URL is rebuilt from ``SWITCHBOARD_PUBLIC_URL``, not from the request) followed by the
sorted form parameters; the twilio library's ``RequestValidator`` checks it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import phonenumbers
from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from libs.common import metrics
from libs.common.events import Attachment, CustomerIdentity, MessageReceived, event_id, utc_now
from libs.common.logs import get_logger
from services.ingest.accept import Acceptance, Acceptor, Unavailable

log = get_logger(__name__)

PATH: Final = "/v1/sms/twilio"
MAX_BODY_BYTES: Final = 64 * 1024
TWIML_EMPTY: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA: Final = 10


class InvalidWebhook(ValueError):
    """The form lacks what every Twilio message webhook carries."""


def e164(number: str) -> str:
    """A phone number in E.164; short codes and alphanumeric senders pass through unchanged."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number.strip()
    if not phonenumbers.is_possible_number(parsed):
        return number.strip()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise(form: MultiDictProxy[str], received_at: datetime) -> tuple[str, MessageReceived]:
    """The event id and normalised message of one inbound SMS/MMS webhook."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    sender, recipient = form.get("From"), form.get("To")
    if not sid or not sender or not recipient:
        raise InvalidWebhook("MessageSid, From and To are required")
    customer_phone, our_number = e164(sender), e164(recipient)
    try:
        media_count = min(int(form.get("NumMedia", "0")), MAX_MEDIA)
    except ValueError:
        raise InvalidWebhook("NumMedia is not a number") from None
    attachments = tuple(
        Attachment(
            name=None,
            content_type=form.get(f"MediaContentType{i}", "application/octet-stream"),
            url=form.get(f"MediaUrl{i}"),
        )
        for i in range(media_count)
    )
    message = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id=sid,
        thread_key=f"sms:{our_number}:{customer_phone}",
        customer=CustomerIdentity(phone=customer_phone),
        recipient=our_number,
        text=form.get("Body", ""),
        attachments=attachments,
        received_at=received_at,
        raw_ref=f"twilio:{form.get('AccountSid', '')}:{sid}",
    )
    return event_id("sms", "twilio", sid), message


class TwilioWebhook:
    """``POST /v1/sms/twilio``: 200 with empty TwiML only once the event is on Kafka."""

    def __init__(self, *, acceptor: Acceptor, auth_token: str, public_url: str) -> None:
        self._acceptor = acceptor
        self._validator = RequestValidator(auth_token)
        self._public_url = public_url.rstrip("/")

    def _reject(self, reason: str, status: int) -> web.Response:
        metrics.webhook_rejections.labels("sms", reason).inc()
        return web.json_response({"error": reason}, status=status)

    async def __call__(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return self._reject("expected application/x-www-form-urlencoded", 415)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._reject("body too large", 413)
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return self._reject("body too large", 413)
        try:
            form = _parse_form(body)
        except UnicodeDecodeError:
            return self._reject("form is not UTF-8", 400)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self._public_url + request.rel_url.path_qs
        if not signature or not self._validator.validate(url, form, signature):
            return self._reject("bad signature", 403)
        try:
            message_id, message = normalise(form, utc_now())
        except InvalidWebhook as exc:
            return self._reject(str(exc), 400)
        try:
            outcome = await self._acceptor.accept(
                message, event_id=message_id, source="/ingest/sms"
            )
        except Unavailable:
            return web.Response(status=503, headers={"Retry-After": "5"})
        if outcome is Acceptance.IN_PROGRESS:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")


def _parse_form(body: bytes) -> MultiDictProxy[str]:
    from urllib.parse import parse_qsl

    from multidict import MultiDict

    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    return MultiDictProxy(MultiDict(pairs))
