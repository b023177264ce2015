"""Email out through an SMTP relay (aiosmtplib), threaded under the customer's message.

Mail clients thread a reply by ``In-Reply-To`` (the customer's Message-ID) and ``References``
(the thread's ids, oldest first, ending with that one). Our ``Message-ID`` is derived from the
command id, so a retried send carries the same id and the receiving side can drop a duplicate.
Automatic mail says ``Auto-Submitted: auto-replied`` (RFC 3834) so that the customer's own
auto-responder does not answer it. Every Message-ID is indexed to its conversation's thread
(:mod:`libs.contracts.sent_mail`) before the mail is handed over, so a reply naming only it
joins the conversation.

Failures by phase: anything before the message is handed over (connect, EHLO, STARTTLS, AUTH)
cannot have delivered it, so it is temporary unless the server answered 5xx; once MAIL/RCPT/DATA
started, a 4xx/5xx answer is definite, but a timeout or a dropped connection may come after the
server accepted the data, so the outcome is unknown and the mail is not sent again.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from libs.common.clock import Clock, system_clock
from libs.contracts.sent_mail import SentMail
from services.outbound.senders.base import (
    OutcomeUnknown,
    OutgoingMessage,
    PermanentFailure,
    TemporaryFailure,
)

SMTP_TIMEOUT = 30.0
_LINE_BREAKS = re.compile(r"[\r\n]+")


def message_id(command_id: str, domain: str) -> str:
    return f"<{command_id}@{domain}>"


def reply_subject(subject: str | None) -> str:
    """``Re: `` plus the customer's subject, once; header-safe (no line breaks)."""
    clean = _LINE_BREAKS.sub(" ", subject or "").strip()
    if not clean:
        return "Re: your message"
    if clean[:3].lower() == "re:":
        return clean
    return f"Re: {clean}"


def _angle(msg_id: str) -> str:
    msg_id = _LINE_BREAKS.sub("", msg_id).strip()
    return msg_id if msg_id.startswith("<") else f"<{msg_id}>"


def build_email(message: OutgoingMessage, *, sender: str, now: datetime) -> EmailMessage:
    """The MIME message of one reply: text, optional HTML alternative, threading headers."""
    if "@" not in message.recipient or _LINE_BREAKS.search(message.recipient):
        raise PermanentFailure(f"not an email address: {message.recipient[:80]!r}")
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.recipient
    mail["Subject"] = reply_subject(message.subject)
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(message.command_id, sender.rpartition("@")[2].strip(">"))
    references = [_angle(r) for r in message.references if r.strip()]
    if message.in_reply_to:
        parent = _angle(message.in_reply_to)
        mail["In-Reply-To"] = parent
        if parent not in references:
            references.append(parent)
    if references:
        mail["References"] = " ".join(references)
    if message.automatic:
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office back to us
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    return mail


class SmtpEmail:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        starttls: bool,
        sender: str,
        timeout: float = SMTP_TIMEOUT,
        clock: Clock = system_clock,
        sent: SentMail | None = None,
    ) -> None:
        """``sent``: where each Message-ID is indexed to its thread (None: not indexed, for
        tests of the SMTP exchange alone)."""
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._sender = sender
        self._timeout = timeout
        self._clock = clock
        self._sent = sent

    async def send(self, message: OutgoingMessage) -> str:
        mail = build_email(message, sender=self._sender, now=self._clock())
        if self._sent is not None and message.thread_key is not None:
            await self._sent.record(str(mail["Message-ID"]), message.thread_key)
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            start_tls=self._starttls,
        )
        try:
            await self._open(client)
            try:
                await client.send_message(mail)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                raise _by_code(exc.recipients[0].code, str(exc.recipients[0])) from exc
            except aiosmtplib.SMTPResponseException as exc:
                raise _by_code(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise OutcomeUnknown(f"smtp interrupted during the transaction: {exc!r}") from exc
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()  # the mail is accepted; a failed goodbye changes nothing
        finally:
            client.close()
        return str(mail["Message-ID"])

    async def _open(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.connect()
            if self._username:
                await client.login(self._username, self._password)
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"smtp unreachable: {exc!r}") from exc


def _by_code(code: int, text: str) -> TemporaryFailure | PermanentFailure:
    if 400 <= code < 500:
        return TemporaryFailure(f"smtp {code}: {text[:200]}")
    return PermanentFailure(f"smtp {code}: {text[:200]}")
