"""SMTP in: mail for our support addresses, answered ``250`` only once the event is on Kafka.

An aiosmtpd server on the running loop (no Controller thread), so the handler shares the
loop with the producer and Redis clients. The reply to DATA is the delivery contract with the
sending server:

- ``250 2.0.0`` the event is on Kafka (or was already: a redelivery of the same message);
- ``451 4.3.0`` Kafka or Redis did not answer in time: the sender keeps the message and retries;
- ``552 5.3.4`` over :attr:`Settings.switchboard_smtp_max_bytes` (also advertised as SIZE);
- ``554 5.6.0`` the bytes are not an email we can read; retrying will not help;
- ``550 5.1.1`` at RCPT, for an address not in ``SWITCHBOARD_SMTP_RECIPIENTS`` (when set);
- ``452 4.5.3`` at RCPT, past :data:`MAX_RECIPIENTS` in one transaction: the sender keeps
  those recipients for another one (RFC 5321 4.5.3.1.10), so a session cannot pile up
  hundreds of addresses.
"""

from __future__ import annotations

import asyncio
import re
import socket
import weakref
from typing import Any, AnyStr, Final

from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.logs import get_logger
from services.ingest.accept import Acceptance, Acceptor, Unavailable
from services.ingest.mail import InvalidEmail
from services.ingest.mailboxes.normalise import (
    ThreadIndex,
    normalise,
    parse,
    provider_message_id,
    raw_digest,
    sender_address,
)

log = get_logger(__name__)

OK: Final = "250 2.0.0 OK: accepted"
TRY_AGAIN: Final = "451 4.3.0 try again later"
TOO_BIG: Final = "552 5.3.4 message too big for this system"
NO_SUCH_USER: Final = "550 5.1.1 no such mailbox here"
TOO_MANY_RECIPIENTS: Final = "452 4.5.3 too many recipients"
MAX_RECIPIENTS: Final = 50
IDLE_TIMEOUT: Final = 60.0
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_REASONS: Final = {"451": "unavailable", "552": "too large", "554": "invalid"}


def _reason(exc: Exception) -> str:
    """The parser's reason, safe to put on one SMTP reply line."""
    return _UNPRINTABLE.sub(" ", str(exc))[:200].strip() or "unreadable message"


class InboundMail:
    """The aiosmtpd handler: RCPT filtering and DATA to the acceptor."""

    def __init__(
        self,
        *,
        acceptor: Acceptor,
        threads: ThreadIndex,
        recipients: frozenset[str],
        max_bytes: int,
    ) -> None:
        self._acceptor = acceptor
        self._threads = threads
        self._recipients = recipients
        self._max_bytes = max_bytes

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._recipients and address.lower() not in self._recipients:
            return NO_SUCH_USER
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._deliver(envelope)
        if not reply.startswith("250"):
            metrics.webhook_rejections.labels("email", _REASONS.get(reply[:3], reply[:3])).inc()
        return reply

    async def _deliver(self, envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes):
            raw = bytes(raw or b"")
        if len(raw) > self._max_bytes:
            return TOO_BIG
        try:
            parsed = await parse(raw, self._max_bytes)
        except InvalidEmail as exc:
            log.info("smtp message refused", reason=_reason(exc))
            return f"554 5.6.0 message could not be parsed: {_reason(exc)}"
        own_id = provider_message_id(parsed, raw)
        envelope_sender = envelope.mail_from if envelope.mail_from != "<>" else None
        sender = sender_address(parsed, envelope_sender)
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else None
        try:
            thread = await self._threads.thread(parsed, own_id, sender)
            message_id, message = normalise(
                parsed,
                own_id=own_id,
                thread=thread,
                provider="smtp",
                recipient=recipient,
                sender=sender,
                received_at=self._acceptor.now(),
                raw_ref=f"smtp:sha256:{raw_digest(raw)}",
            )
            outcome = await self._acceptor.accept(
                message,
                event_id=message_id,
                source="/ingest/smtp",
                language_hint=parsed.content_language,
            )
            if outcome is Acceptance.IN_PROGRESS:
                return TRY_AGAIN
            await self._threads.remember(parsed, message)
        except (Unavailable, RedisError) as exc:
            log.warning("smtp message deferred", error=repr(exc))
            return TRY_AGAIN
        return OK


class _SMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on its own size refusals."""

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith("552 Error"):
            await super().push(TOO_BIG)
            return
        await super().push(status)


class SmtpServer:
    """The listening socket and its sessions; :meth:`stop` closes both."""

    def __init__(self, handler: InboundMail, *, host: str, port: int, max_bytes: int) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._max_bytes = max_bytes
        self._hostname = socket.gethostname()  # not getfqdn(): no DNS lookup at start-up
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    def _session(self) -> SMTP:
        session = _SMTP(
            self._handler,
            data_size_limit=self._max_bytes,
            hostname=self._hostname,
            ident="Switchboard ESMTP",
            enable_SMTPUTF8=True,
            timeout=IDLE_TIMEOUT,
        )
        self._sessions.add(session)
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # reuse_port: several ingest processes on one host (workers, a rolling restart, the
        # test suite) share the SMTP port and the kernel spreads connections between them.
        self._server = await loop.create_server(
            self._session, self._host, self._port, reuse_port=True
        )
        log.info("smtp listening", address=f"{self._host}:{self.port}")

    async def stop(self) -> None:
        """Stop listening and drop open sessions; a message mid-DATA gets no 250 and is
        retried by its sender."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            transport: Any = session.transport
            if transport is not None:
                transport.close()
        await self._server.wait_closed()
        self._server = None
