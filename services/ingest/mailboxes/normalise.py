"""A parsed email to the normalised ``message.received``, and the thread index behind it.

Email threads are named by their first Message-ID (``email:{root}``). The root comes from
``References`` when the sender's client wrote it; many clients (Outlook among them) only write
``In-Reply-To``, so every message we accept is remembered in Redis (``email:thread:{id}`` ->
its thread key, :data:`THREAD_TTL`) and a reply that names a parent we saw joins the parent's
thread instead of starting one named after the parent. The messages we send are not among
them: a reply naming only our acknowledgement (mobile clients often name just the message they
answer) finds its thread by the Message-ID outbound indexed when it sent it
(:mod:`libs.contracts.sent_mail`).

Naming a thread, or a message we sent in it, does not let anyone into it: each thread also
remembers its participants (``email:participants:{thread key}``: the senders and the To/Cc
recipients of the messages in it). A message from anyone else that names the thread (by
References, In-Reply-To, or a copied Message-ID) starts its own thread, ``{thread}/{sender}``,
linked to the named one (``linked_thread_key``), so it can neither join that conversation nor
become whom its replies go to.

Event ids come from the sender and the Message-ID, not from the transport: the same message
arriving twice (an SMTP retry, or by SMTP and from an IMAP mailbox) is one event, and a
stranger who copies someone else's Message-ID cannot suppress that person's message.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Final, NamedTuple

from redis.asyncio import Redis

from libs.common.events import Attachment, CustomerIdentity, MessageReceived, event_id
from libs.common.keys import DAY, Keys
from libs.common.redis_client import get_many, transaction
from libs.contracts.sent_mail import SentMail
from services.ingest.mail import ParsedEmail, parse_email

THREAD_TTL: Final = 90 * DAY
# Bigger messages are parsed in a worker thread, so one large mail does not hold up every
# other session on the loop for the whole parse.
PARSE_IN_THREAD_BYTES: Final = 256 * 1024
# Ids longer than this are hashed before they become Redis keys and Kafka record keys.
MAX_ID_IN_KEY: Final = 200
MAX_RECIPIENTS: Final = 50
"""To/Cc addresses of one message that become participants of its thread (a bound on what
one hostile message can write)."""


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


def sender_address(parsed: ParsedEmail, envelope_sender: str | None) -> str | None:
    """Who sent the message: its From, else the SMTP envelope sender; lowercased."""
    address = parsed.from_address or envelope_sender or None
    return address.strip().lower() if address else None


class Thread(NamedTuple):
    """The thread an email goes in, and the one it named but may not join (if any)."""

    key: str
    linked: str | None = None


class ThreadIndex:
    """``email:thread:{message_id}`` -> thread key: which thread a message we accepted is in;
    ``email:participants:{thread key}``: who may write in that thread; the Message-IDs we
    sent (:class:`SentMail`) for replies that name no message we accepted."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._sent = SentMail(redis, keys)

    async def thread(self, parsed: ParsedEmail, own_id: str, sender: str | None) -> Thread:
        """The thread this message belongs to (its own, once remembered, wins: redeliveries
        keep the key they had), or its own thread when ``sender`` is not a participant of an
        existing one; raises ``RedisError`` when Redis is unreachable."""
        candidates = [own_id]
        if parsed.references:
            candidates.append(parsed.references[0])
        elif parsed.in_reply_to:
            candidates.append(parsed.in_reply_to)
        names = [self._keys.email_thread(_id_for_key(c)) for c in candidates]
        found = await get_many(self._redis, names)
        known = next((v.decode("utf-8", "replace") for v in found if isinstance(v, bytes)), None)
        if known is None:  # the newest named message first: the one it answers
            named = (parsed.in_reply_to, *reversed(parsed.references))
            known = await self._sent.thread_of([i for i in dict.fromkeys(named) if i])
        root = parsed.references[0] if parsed.references else parsed.in_reply_to or own_id
        key = known or f"email:{_id_for_key(root)}"
        participants = self._keys.email_participants(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(participants)
            pipe.sismember(participants, sender or "")
            started, member = await pipe.execute()
        if (known is None and not started) or member:
            return Thread(key)
        own_thread = f"{key.removeprefix('email:')}/{sender or ''}"
        return Thread(f"email:{_id_for_key(own_thread)}", linked=key)

    async def remember(self, parsed: ParsedEmail, message: MessageReceived) -> None:
        """Record the message's thread (first writer wins) so later replies can find it, and
        its sender and recipients as participants of that thread."""
        addresses = {a.strip().lower() for a in (*parsed.to, *parsed.cc)[:MAX_RECIPIENTS]}
        if message.customer.email:
            addresses.add(message.customer.email)
        participants = self._keys.email_participants(message.thread_key)
        own_id = _id_for_key(message.provider_message_id)
        # Two slots on a cluster: two steps, each safe to repeat (a redelivery redoes both).
        await self._redis.set(
            self._keys.email_thread(own_id), message.thread_key, nx=True, ex=THREAD_TTL
        )
        async with transaction(self._redis) as pipe:
            if addresses:
                pipe.sadd(participants, *sorted(addresses))
            pipe.expire(participants, THREAD_TTL)
            await pipe.execute()


def normalise(
    parsed: ParsedEmail,
    *,
    own_id: str,
    thread: Thread,
    provider: str,
    recipient: str | None,
    sender: str | None,
    received_at: datetime,
    raw_ref: str,
) -> tuple[str, MessageReceived]:
    """The event id and ``message.received`` of one email (``sender``: its
    :func:`sender_address`)."""
    message = MessageReceived(
        channel="email",
        provider=provider,
        provider_message_id=own_id,
        thread_key=thread.key,
        linked_thread_key=thread.linked,
        customer=CustomerIdentity(display_name=parsed.from_name or None, email=sender),
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
    return event_id("email", sender or "", own_id), message
