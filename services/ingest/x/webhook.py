"""Direct messages from X's Account Activity API: the CRC challenge and signed event POSTs.

``GET ?crc_token=`` proves to X that we hold the consumer secret (X repeats it hourly and
when the webhook is registered). ``POST`` bodies are signed by X in
``x-twitter-webhooks-signature`` (``sha256=`` + base64 HMAC-SHA256 of the raw body with the
consumer secret); the signature is checked on the raw bytes, in constant time, before the JSON
is parsed. Each ``message_create`` event becomes a ``message.received`` whose thread is the
pair of accounts; messages our own account sent (X echoes them to us) are dropped. The answer
is 200 only once every event is on Kafka.

Both answers are the same HMAC with the same key, so the CRC answer to a token *is* the
signature of a POST whose body is that token. Only tokens of X's shape are answered
(:data:`CRC_TOKEN`: base64/base64url text), and such text is never a JSON object, the only
body the event path reads: neither path signs what the other accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from aiohttp import web

from libs.common import metrics
from libs.common.events import Attachment, MessageReceived
from libs.common.logs import get_logger
from libs.common.xclient import DM_THREAD_PREFIX
from services.ingest.accept import Acceptance, Acceptor, Unavailable
from services.ingest.x.received import XAuthor, x_message

log = get_logger(__name__)

PATH: Final = "/v1/social/x/webhook"
MAX_BODY_BYTES: Final = 256 * 1024
MAX_CRC_TOKEN: Final = 512
CRC_TOKEN_PATTERN: Final = rf"^[A-Za-z0-9+/=_-]{{1,{MAX_CRC_TOKEN}}}$"
CRC_TOKEN: Final = re.compile(CRC_TOKEN_PATTERN)
SIGNATURE_HEADER: Final = "x-twitter-webhooks-signature"

XId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,19}$")]
Millis = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,15}$")]
HttpsUrl = Annotated[str, msgspec.Meta(pattern=r"^https://", max_length=2048)]

_MEDIA_TYPES: Final = {"photo": "image/jpeg", "video": "video/mp4", "animated_gif": "video/mp4"}


class InvalidPayload(ValueError):
    """The body is not an Account Activity payload we can read (answered 400)."""


def _hmac_sha256_b64(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def crc_response_token(consumer_secret: str, crc_token: str) -> str:
    """X's CRC answer: ``sha256=`` + base64(HMAC-SHA256(consumer secret, crc_token))."""
    return _hmac_sha256_b64(consumer_secret, crc_token.encode())


def signature_valid(body: bytes, header: str | None, consumer_secret: str) -> bool:
    """Whether ``header`` is X's signature of exactly these bytes (constant-time compare)."""
    if not consumer_secret or not header:
        return False
    expected = _hmac_sha256_b64(consumer_secret, body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "surrogateescape"))


class _Media(msgspec.Struct, frozen=True):
    type: str = ""
    media_url_https: HttpsUrl | None = None


class _Attachment(msgspec.Struct, frozen=True):
    type: str = ""
    media: _Media | None = None


class _MessageData(msgspec.Struct, frozen=True):
    text: str = ""
    attachment: _Attachment | None = None


class _Target(msgspec.Struct, frozen=True):
    recipient_id: XId


class _MessageCreate(msgspec.Struct, frozen=True):
    target: _Target
    sender_id: XId
    message_data: _MessageData = msgspec.field(default_factory=_MessageData)


class _DmEvent(msgspec.Struct, frozen=True):
    type: str = ""
    id: XId | None = None
    created_timestamp: Millis | None = None
    message_create: _MessageCreate | None = None


class _User(msgspec.Struct, frozen=True):
    id: XId | None = None
    name: str | None = None
    screen_name: str | None = None


class _Activity(msgspec.Struct, frozen=True):
    for_user_id: XId | None = None
    direct_message_events: tuple[_DmEvent, ...] = ()
    users: dict[str, _User] = msgspec.field(default_factory=dict)


_decoder = msgspec.json.Decoder(_Activity)


def parse_direct_messages(body: bytes, our_user_id: str) -> list[tuple[str, MessageReceived]]:
    """The event id and ``message.received`` of each direct message a customer sent us.

    Raises :class:`InvalidPayload` for any body that is not an Account Activity payload;
    other event kinds (tweets, likes, follows, typing indicators) give no messages.
    """
    try:
        activity = _decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidPayload(f"not an Account Activity payload: {exc}") from None
    messages = []
    for dm in activity.direct_message_events:
        if dm.type != "message_create":
            continue
        create = dm.message_create
        if create is None or dm.id is None or dm.created_timestamp is None:
            raise InvalidPayload("a message_create event lacks its id, time or message")
        if create.sender_id == our_user_id:
            continue  # X echoes the messages our account sends
        try:
            sent_at = datetime.fromtimestamp(int(dm.created_timestamp) / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            raise InvalidPayload(f"created_timestamp of {dm.id} is out of range") from None
        sender = activity.users.get(create.sender_id, _User())
        pair = sorted((create.sender_id, create.target.recipient_id), key=int)
        attachment = create.message_data.attachment
        media = attachment.media if attachment else None
        attachments: tuple[Attachment, ...] = ()
        if media is not None and media.media_url_https:
            attachments = (
                Attachment(
                    name=None,
                    content_type=_MEDIA_TYPES.get(media.type, "application/octet-stream"),
                    url=media.media_url_https,
                ),
            )
        messages.append(
            x_message(
                "dm",
                dm.id,
                author=XAuthor(create.sender_id, sender.name, sender.screen_name),
                thread_key=f"{DM_THREAD_PREFIX}{pair[0]}:{pair[1]}",
                recipient=create.target.recipient_id,
                text=create.message_data.text,
                received_at=sent_at,
                attachments=attachments,
            )
        )
    return messages


class XWebhook:
    """``GET``/``POST`` ``/v1/social/x/webhook`` (Account Activity API)."""

    def __init__(self, *, acceptor: Acceptor, consumer_secret: str, user_id: str) -> None:
        self._acceptor = acceptor
        self._secret = consumer_secret
        self._user_id = user_id

    async def crc(self, request: web.Request) -> web.Response:
        token = request.query.get("crc_token", "")
        if not CRC_TOKEN.fullmatch(token):
            return _reject("crc_token missing, too long or not base64 text", 400)
        return web.json_response({"response_token": crc_response_token(self._secret, token)})

    async def events(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _reject("body too large", 413)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _reject("body too large", 413)
        raw = bytes(body)
        if not signature_valid(raw, request.headers.get(SIGNATURE_HEADER), self._secret):
            return _reject("bad signature", 403)
        try:
            messages = parse_direct_messages(raw, self._user_id)
        except InvalidPayload as exc:
            log.info("x webhook payload refused", error=str(exc)[:200])
            return _reject("malformed payload", 400)
        for message_id, message in messages:
            try:
                outcome = await self._acceptor.accept(
                    message, event_id=message_id, source="/ingest/x/dm"
                )
            except Unavailable:
                return web.Response(status=503, headers={"Retry-After": "5"})
            if outcome is Acceptance.IN_PROGRESS:
                return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(status=200)


def _reject(reason: str, status: int) -> web.Response:
    metrics.webhook_rejections.labels("social", reason).inc()
    return web.json_response({"error": reason}, status=status)
