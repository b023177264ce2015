"""A parsed email to the normalised ``message.received``, and the thread index behind it.

Email threads are named by their first Message-ID (``email:{root}``). The root comes from
``References`` when the sender's client wrote it; many clients (Outlook among them) only write
``In-Reply-To``, so every message we accept is remembered in Redis (``email:thread:{id}`` ->
its thread key, :data:`THREAD_TTL`) and a reply that names a parent we saw joins the parent's
thread instead of starting one named after the parent.

Event ids come from the sender and the Message-ID, not from the transport: the same message
arriving twice (an SMTP retry, or by SMTP and from an IMAP mailbox) is one event, and a
stranger who copies someone else's Message-ID cannot suppress that person's message.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Final

from redis.asyncio import Redis

from libs.common.events import Attachment, CustomerIdentity, MessageReceived, event_id
from libs.common.keys import DAY, Keys
from services.ingest.mail import ParsedEmail, parse_email

THREAD_TTL: Final = 90 * DAY
# Bigger messages are parsed in a worker thread, so one large mail does not hold up every
# other session on the loop for the whole parse.
PARSE_IN_THREAD_BYTES: Final = 256 * 1024
# Ids longer than this are hashed before they become Redis keys and Kafka record keys.
MAX_ID_IN_KEY: Final = 200


async def parse(raw: bytes, max_bytes: int) -> ParsedEmail:
    """:func:`parse_email`, off the loop for large messages; raises ``InvalidEmail``."""
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(parse_email, raw, max_bytes=max_bytes)
    return parse_email(raw, max_bytes=max_bytes)


def raw_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def provider_message_id(parsed: ParsedEmail, raw: bytes) -> str:
    """The Message-ID, or ``sha256:{hex}`` of the raw bytes for the few messages without one."""
    return parsed.message_id or f"sha256:{raw_digest(raw)}"


def _id_for_key(message_id: str) -> str:
    if len(message_id) <= MAX_ID_IN_KEY and message_id.isprintable():
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


class ThreadIndex:
    """``email:thread:{message_id}`` -> thread key: which thread a message we accepted is in."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def thread_key(self, parsed: ParsedEmail, own_id: str) -> str:
        """The thread this message belongs to (its own, once remembered, wins: redeliveries
        keep the key they had); raises ``RedisError`` when Redis is unreachable."""
        candidates = [own_id]
        if parsed.references:
            candidates.append(parsed.references[0])
        elif parsed.in_reply_to:
            candidates.append(parsed.in_reply_to)
        names = [self._keys.email_thread(_id_for_key(c)) for c in candidates]
        for value in await self._redis.mget(names):
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace")
        root = parsed.references[0] if parsed.references else parsed.in_reply_to or own_id
        return f"email:{_id_for_key(root)}"

    async def remember(self, own_id: str, thread_key: str) -> None:
        """Record the message's thread (first writer wins) so later replies can find it."""
        await self._redis.set(
            self._keys.email_thread(_id_for_key(own_id)), thread_key, nx=True, ex=THREAD_TTL
        )


def normalise(
    parsed: ParsedEmail,
    *,
    own_id: str,
    thread_key: str,
    provider: str,
    recipient: str | None,
    sender_fallback: str | None,
    received_at: datetime,
    raw_ref: str,
) -> tuple[str, MessageReceived]:
    """The event id and ``message.received`` of one email (``sender_fallback``: the SMTP
    envelope sender, used when the message has no From)."""
    address = parsed.from_address or sender_fallback or None
    email = address.strip().lower() if address else None
    message = MessageReceived(
        channel="email",
        provider=provider,
        provider_message_id=own_id,
        thread_key=thread_key,
        customer=CustomerIdentity(display_name=parsed.from_name or None, email=email),
        recipient=recipient.lower() if recipient else None,
        subject=parsed.subject,
        text=parsed.text,
        attachments=tuple(
            Attachment(name=a.filename, content_type=a.content_type, size=a.size)
            for a in parsed.attachments
        ),
        automated=parsed.automated,
        received_at=received_at,
        raw_ref=raw_ref,
    )
    return event_id("email", email or "", own_id), message
