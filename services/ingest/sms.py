"""SMS and WhatsApp from Twilio: inbound messages and delivery status callbacks, signature-checked.

WhatsApp arrives on the same webhook as SMS (a Twilio number or sender can point both at it):
``From=whatsapp:+E164`` makes a message ``whatsapp``, its thread keyed by the two numbers like
an SMS thread, the customer's number in plain E.164 (so the same person on SMS is the same
customer), ``ProfileName`` as the display name, a shared location as a ``geo:`` attachment and a
quick-reply button's text as the text. Every WhatsApp message also moves the customer-service
window (:mod:`libs.contracts.whatsapp`) before it is acknowledged.

Twilio signs ``X-Twilio-Signature`` over the public URL it called (TLS ends at the ingress, so
the URL is rebuilt from ``SWITCHBOARD_PUBLIC_URL`` and the raw request target, not from the
request's host) followed by the sorted form parameters; :func:`signature_valid` checks it the
way Twilio documents it (the choices are listed there and tested against the SDKs' vectors in
``tests/peers/test_twilio_peers.py``).

Twilio's signature joins ``name + value`` of every pair with no separator, so a captured
request can be re-sent with a boundary moved (``MessageSid=<sid>NumMedia0`` and no
``NumMedia``) and keep its signature. Fields that identify a message therefore must have
Twilio's exact shape: a message SID is ``SM``/``MM`` and 32 hex digits, an ``AccountSid`` is
``AC`` and 32 hex digits (and ours, when ``TWILIO_ACCOUNT_SID`` is set); a value that swallowed
its neighbour has neither.

Inbound bodies that are consent keywords (STOP, START, HELP, ...) are still published, marked
``automated`` so the router does not acknowledge them, and STOP/START are recorded in Redis
for outbound (:mod:`libs.contracts.optout`). Status callbacks keep the most advanced status of
each message in Redis and publish a ``DeliveryReport`` keyed by the provider's message id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Final
from urllib.parse import parse_qs, parse_qsl, urlsplit

import phonenumbers
from aiohttp import web
from aiokafka.errors import KafkaError
from multidict import MultiDict, MultiDictProxy
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.events import (
    Attachment,
    Channel,
    CustomerIdentity,
    DeliveryReport,
    DeliveryStatus,
    Event,
    MessageReceived,
    event_id,
)
from libs.common.kafka.producer import EventProducer, Outgoing
from libs.common.keys import DAY, Keys
from libs.common.logs import get_logger
from libs.common.redis_client import load_script
from libs.common.service import CLOCK, PRODUCER, REDIS, SETTINGS, TOPICS
from libs.contracts import optout, whatsapp
from services.ingest.accept import Acceptance, Acceptor, Unavailable

log = get_logger(__name__)

PATH: Final = "/v1/sms/twilio"
STATUS_PATH: Final = "/v1/sms/twilio/status"
MAX_BODY_BYTES: Final = 64 * 1024
TWIML_EMPTY: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA: Final = 10
LOCATION_TYPE: Final = "application/geo+uri"
"""Content type of a shared WhatsApp location; its ``url`` is an RFC 5870 ``geo:`` URI."""
CONVERSATION_PARAM: Final = "conversation"
"""Query parameter of the status callback URL outbound gives Twilio: the conversation answered."""
MAX_CONVERSATION_ID: Final = 128
STATUS_TTL: Final = 7 * DAY

MESSAGE_SID_PATTERN: Final = r"^(SM|MM)[0-9a-f]{32}$"
ACCOUNT_SID_PATTERN: Final = r"^AC[0-9a-f]{32}$"
_MESSAGE_SID = re.compile(MESSAGE_SID_PATTERN)
_ACCOUNT_SID = re.compile(ACCOUNT_SID_PATTERN)

FormPairs = Sequence[tuple[str, str]]


class InvalidWebhook(ValueError):
    """The form lacks what every Twilio webhook of its kind carries."""


class Rejected(Exception):
    """A request refused before it reaches Switchboard: the status and the reason."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- signatures -----------------------------------------------------------------------------


def body_sha256(body: bytes) -> str:
    """The ``bodySHA256`` Twilio puts in the URL of a JSON webhook: lowercase hex SHA-256."""
    return hashlib.sha256(body).hexdigest()


def signature_valid(
    url: str, params_or_body: FormPairs | bytes, signature: str | None, token: str
) -> bool:
    """Whether ``signature`` is Twilio's ``X-Twilio-Signature`` for this request.

    Twilio's rule: base64(HMAC-SHA1(auth token, URL + name + value of every POST parameter,
    sorted by name, then value)). A JSON body (``bytes``) is not appended: the URL carries
    ``bodySHA256`` and the body must hash to it. Choices where Twilio's SDKs differ:

    - The URL is signed exactly as given: ``'`` and ``%27`` are different URLs (twilio-node
      normalises them alike; Twilio's documentation and the other SDKs do not).
    - Every parameter counts, repeats included: identical repeated values are not collapsed
      (twilio-node and twilio-python collapse them; the documented rule appends each pair).
    - Like every Twilio SDK, the URL with its port removed and with the scheme's default port
      added are also accepted, because Twilio itself signs either form.
    - An empty auth token or a missing signature never validates (anyone can compute an HMAC
      with an empty key).
    """
    if not token or not signature:
        return False
    if isinstance(params_or_body, bytes):
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256")
        if not claimed or not hmac.compare_digest(
            body_sha256(params_or_body).encode(), claimed[0].encode()
        ):
            return False
        suffix = ""
    else:
        suffix = "".join(name + value for name, value in sorted(params_or_body))
    # Header and URL text may carry undecodable bytes (aiohttp keeps them as surrogates).
    presented = signature.encode("utf-8", "surrogateescape")
    key = token.encode()
    valid = False
    for candidate in _port_variants(url):
        signed = (candidate + suffix).encode("utf-8", "surrogateescape")
        mac = hmac.new(key, signed, hashlib.sha1).digest()
        valid |= hmac.compare_digest(base64.b64encode(mac), presented)
    return valid


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port if it has none.

    Edited as text, not re-serialised, so nothing else in the URL changes spelling.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return [url]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":")
    if colon and port.isdigit():  # "[::1]" has no port: its tail "1]" is not digits
        without = f"{scheme}://{userinfo}{at}{host}{tail}"
        return [url, without]
    default = {"https": "443", "http": "80"}.get(scheme.lower())
    if default is None:
        return [url]
    return [url, f"{scheme}://{netloc}:{default}{tail}"]


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, or :class:`Rejected` (413) as soon as it is known to exceed ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise Rejected("body too large", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Rejected("body too large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_signed_form(request: web.Request, auth_token: str, public_url: str) -> FormPairs:
    """The form of a Twilio webhook whose signature holds, or :class:`Rejected`."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise Rejected("expected application/x-www-form-urlencoded", 415)
    body = await read_limited(request, MAX_BODY_BYTES)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise Rejected("form is not UTF-8", 400) from None
    url = public_url.rstrip("/") + request.raw_path
    if not signature_valid(url, pairs, request.headers.get("X-Twilio-Signature"), auth_token):
        raise Rejected("bad signature", 403)
    return pairs


# --- inbound messages -----------------------------------------------------------------------


def e164(number: str) -> str:
    """A phone number in E.164; short codes and alphanumeric senders pass through unchanged."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number.strip()
    if not phonenumbers.is_possible_number(parsed):
        return number.strip()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_account(form: MultiDict[str] | MultiDictProxy[str], account_sid: str) -> None:
    """Refuse an ``AccountSid`` not of Twilio's shape, or not ``account_sid`` when that is set.

    A missing or empty one passes: it is the first pair Twilio signs, so no boundary can move
    into it, and forms built by hand (the README's curl, old tests) leave it out.
    """
    sent = form.get("AccountSid")
    if not sent:
        return
    if not _ACCOUNT_SID.fullmatch(sent):
        raise InvalidWebhook("AccountSid is not a Twilio account SID")
    if account_sid and sent != account_sid:
        raise InvalidWebhook("AccountSid is not this Twilio account")


def normalise(
    form: MultiDictProxy[str], received_at: datetime, account_sid: str
) -> tuple[str, MessageReceived]:
    """The event id and normalised message of one inbound SMS/MMS webhook.

    A consent keyword (see :func:`libs.contracts.optout.classify`) is marked in ``automated``.
    """
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    sender, recipient = form.get("From"), form.get("To")
    if not sid or not sender or not recipient:
        raise InvalidWebhook("MessageSid, From and To are required")
    if not _MESSAGE_SID.fullmatch(sid):
        raise InvalidWebhook("MessageSid is not a Twilio message SID (SM or MM, 32 hex digits)")
    check_account(form, account_sid)
    channel: Channel = "whatsapp" if whatsapp.is_address(sender) else "sms"
    customer_phone = e164(whatsapp.number_of(sender))
    our_number = e164(whatsapp.number_of(recipient))
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
    ) + _location(form)
    text = form.get("Body") or form.get("ButtonText") or ""
    keyword = optout.classify(text)
    message = MessageReceived(
        channel=channel,
        provider="twilio",
        provider_message_id=sid,
        thread_key=f"{channel}:{our_number}:{customer_phone}",
        customer=CustomerIdentity(
            phone=customer_phone, display_name=form.get("ProfileName") or None
        ),
        recipient=our_number,
        text=text,
        attachments=attachments,
        automated=keyword[0] if keyword else None,
        received_at=received_at,
        raw_ref=f"twilio:{form.get('AccountSid', '')}:{sid}",
    )
    return event_id(channel, "twilio", sid), message


def _location(form: MultiDictProxy[str]) -> tuple[Attachment, ...]:
    """A location the customer shared on WhatsApp, as a ``geo:`` attachment (or none)."""
    latitude, longitude = form.get("Latitude"), form.get("Longitude")
    if not latitude or not longitude:
        return ()
    try:
        lat, lon = float(latitude), float(longitude)
    except ValueError:
        raise InvalidWebhook("Latitude and Longitude must be numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidWebhook("Latitude or Longitude out of range")
    name = form.get("Label") or form.get("Address") or None
    return (Attachment(name=name, content_type=LOCATION_TYPE, url=f"geo:{lat},{lon}"),)


class TwilioWebhook:
    """``POST /v1/sms/twilio``: 200 with empty TwiML only once the event is on Kafka."""

    def __init__(
        self,
        *,
        acceptor: Acceptor,
        auth_token: str,
        public_url: str,
        redis: Redis,
        keys: Keys,
        account_sid: str,
    ) -> None:
        self._acceptor = acceptor
        self._auth_token = auth_token
        self._account_sid = account_sid
        self._public_url = public_url
        self._redis = redis
        self._keys = keys

    async def __call__(self, request: web.Request) -> web.Response:
        try:
            form = MultiDictProxy(
                MultiDict(await read_signed_form(request, self._auth_token, self._public_url))
            )
            message_id, message = normalise(form, self._acceptor.now(), self._account_sid)
        except Rejected as exc:
            return _reject(exc.reason, exc.status)
        except InvalidWebhook as exc:
            return _reject(str(exc), 400)
        try:
            await self._apply_keyword(message_id, message)
            await self._open_window(message)
            outcome = await self._acceptor.accept(
                message, event_id=message_id, source=f"/ingest/{message.channel}"
            )
        except (Unavailable, RedisError):
            return web.Response(status=503, headers={"Retry-After": "5"})
        if outcome is Acceptance.IN_PROGRESS:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")

    async def _apply_keyword(self, message_id: str, message: MessageReceived) -> None:
        """Record STOP/START before publishing, so a 200 means the choice is stored.

        A redelivery of a message already on Kafka is not applied again: a late retry of an
        old STOP must not undo the START the customer sent after it.
        """
        keyword = optout.classify(message.text)
        if keyword is None or message.recipient is None or message.customer.phone is None:
            return
        kind, word = keyword
        if await self._redis.get(self._keys.ingest_accepted(message_id)) == b"done":
            return
        our = message.recipient
        await optout.record(
            self._redis,
            self._keys,
            whatsapp.optout_address(our) if message.channel == "whatsapp" else our,
            message.customer.phone,
            kind,
            word,
            message.received_at,
        )
        metrics.sms_keywords.labels(kind).inc()
        log.info("sms consent keyword", kind=kind, event_id=message_id)

    async def _open_window(self, message: MessageReceived) -> None:
        """A WhatsApp message opens (or extends) the customer-service window, recorded before
        the 200 so outbound never sees the message routed without its window."""
        if message.channel != "whatsapp" or not message.recipient or not message.customer.phone:
            return
        await whatsapp.record_inbound(
            self._redis, self._keys, message.recipient, message.customer.phone, message.received_at
        )


# --- status callbacks -----------------------------------------------------------------------

# How far along each Twilio message status is; a callback that arrives after a later one
# (Twilio does not guarantee their order) is acknowledged and dropped.
_STATUS_RANK: Final[dict[str, tuple[DeliveryStatus, int]]] = {
    "accepted": ("queued", 0),
    "scheduled": ("queued", 0),
    "queued": ("queued", 0),
    "sending": ("sending", 1),
    "sent": ("sent", 2),
    "delivered": ("delivered", 3),
    "undelivered": ("undelivered", 3),
    "failed": ("failed", 3),
    "canceled": ("canceled", 3),
    "read": ("read", 4),
}
_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
_WORD = re.compile(r"[a-z_-]{1,32}")
_ERROR_CODE = re.compile(r"[0-9]{1,10}")


def parse_status(
    pairs: Iterable[tuple[str, str]],
    at: datetime,
    account_sid: str,
    conversation_id: str | None = None,
) -> DeliveryReport:
    """The delivery report of one status callback form, or :class:`InvalidWebhook`.

    ``conversation_id`` comes from the callback URL outbound gave Twilio (signed with it)."""
    form = MultiDict(pairs)
    check_account(form, account_sid)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    word = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    code = form.get("ErrorCode") or ""
    if not _SID.fullmatch(sid):
        raise InvalidWebhook("MessageSid is not a Twilio message SID")
    if not _WORD.fullmatch(word):
        raise InvalidWebhook("MessageStatus is missing or malformed")
    if code and not _ERROR_CODE.fullmatch(code):
        raise InvalidWebhook("ErrorCode is not a number")
    status, _ = _STATUS_RANK.get(word, ("unknown", 0))
    addresses = (form.get("To") or "", form.get("From") or "")
    return DeliveryReport(
        channel="whatsapp" if any(map(whatsapp.is_address, addresses)) else "sms",
        provider="twilio",
        provider_message_id=sid,
        status=status,
        provider_status=word,
        error_code=code or None,
        at=at,
        conversation_id=conversation_id or None,
    )


class TwilioStatusCallback:
    """``POST /v1/sms/twilio/status``: record the status, publish it, then answer 200."""

    def __init__(
        self,
        *,
        producer: EventProducer,
        redis: Redis,
        keys: Keys,
        topic: str,
        timeout: float,
        auth_token: str,
        public_url: str,
        account_sid: str,
        clock: Clock,
    ) -> None:
        self._producer = producer
        self._account_sid = account_sid
        self._clock = clock
        self._redis = redis
        self._keys = keys
        self._topic = topic
        self._timeout = timeout
        self._auth_token = auth_token
        self._public_url = public_url
        self._record = redis.register_script(
            load_script("services.ingest", "record_sms_status.lua")
        )

    async def __call__(self, request: web.Request) -> web.Response:
        try:
            pairs = await read_signed_form(request, self._auth_token, self._public_url)
            report = parse_status(
                pairs,
                self._clock(),
                self._account_sid,
                request.query.get(CONVERSATION_PARAM, "")[:MAX_CONVERSATION_ID],
            )
        except Rejected as exc:
            return _reject(exc.reason, exc.status)
        except InvalidWebhook as exc:
            return _reject(str(exc), 400)
        rank = _STATUS_RANK.get(report.provider_status, ("unknown", 0))[1]
        sid = report.provider_message_id
        try:
            current = await self._record(
                keys=[self._keys.sms_status(sid)],
                args=[
                    report.status,
                    rank,
                    report.provider_status,
                    report.error_code or "",
                    report.at.isoformat(),
                    STATUS_TTL,
                ],
            )
        except RedisError:
            return web.Response(status=503, headers={"Retry-After": "5"})
        if not current:
            metrics.sms_status_callbacks.labels(report.status, "stale").inc()
            return web.Response(status=200)
        event = Event(
            id=event_id("sms", "twilio", "status", sid, report.provider_status),
            source="/ingest/sms/status",
            subject=sid,
            time=report.at,
            data=report,
        )
        try:
            await asyncio.wait_for(
                self._producer.publish([Outgoing(self._topic, sid, event)]), self._timeout
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning("status publish failed", error=repr(exc), event_id=event.id)
            return web.Response(status=503, headers={"Retry-After": "5"})
        metrics.sms_status_callbacks.labels(report.status, "recorded").inc()
        return web.Response(status=200)


def _reject(reason: str, status: int) -> web.Response:
    metrics.webhook_rejections.labels("sms", reason).inc()
    return web.json_response({"error": reason}, status=status)


SMS_WEBHOOK = web.AppKey("sms_webhook", TwilioWebhook)
SMS_STATUS = web.AppKey("sms_status", TwilioStatusCallback)


def install(app: web.Application, acceptor: web.AppKey[Acceptor]) -> None:
    """Twilio's message webhook (SMS and WhatsApp) and its delivery-status callbacks;
    ``acceptor`` is set by an earlier cleanup context."""
    app.cleanup_ctx.append(_twilio_ctx(acceptor))
    app.router.add_post(PATH, _webhook)
    app.router.add_post(STATUS_PATH, _status)


def _twilio_ctx(
    acceptor: web.AppKey[Acceptor],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        keys = Keys(settings.switchboard_key_prefix)
        app[SMS_WEBHOOK] = TwilioWebhook(
            acceptor=app[acceptor],
            auth_token=settings.twilio_auth_token,
            public_url=settings.switchboard_public_url,
            redis=app[REDIS],
            keys=keys,
            account_sid=settings.twilio_account_sid,
        )
        app[SMS_STATUS] = TwilioStatusCallback(
            producer=app[PRODUCER],
            redis=app[REDIS],
            keys=keys,
            topic=app[TOPICS].outbound_status,
            timeout=settings.switchboard_publish_timeout,
            auth_token=settings.twilio_auth_token,
            public_url=settings.switchboard_public_url,
            account_sid=settings.twilio_account_sid,
            clock=app[CLOCK],
        )
        yield

    return ctx


async def _webhook(request: web.Request) -> web.Response:
    return await request.app[SMS_WEBHOOK](request)


async def _status(request: web.Request) -> web.Response:
    return await request.app[SMS_STATUS](request)
