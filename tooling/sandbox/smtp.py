"""An SMTP relay sandbox: the mail server outbound email goes to when no real one is set.

It keeps every message it accepts (parsed), so ``switchboard dev`` can show what customers
would receive and tests can read threading headers as a mail client would. Answers can be
scripted (``answer = "451 try later"``) and DATA can be held (``stall``) to exercise failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP as SmtpServer


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts, answers as scripted, or stalls in DATA."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.answer = "250 Message accepted"
        self.stall = False
        self.release = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stall:
            await self.release.wait()
        if self.answer.startswith("250"):
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            if isinstance(parsed, EmailMessage):
                self.received.append(parsed)
        return self.answer


@contextlib.asynccontextmanager
async def smtp_sandbox(port: int = 0) -> AsyncIterator[tuple[Mailbox, int]]:
    """An SMTP server on a loopback port (``0``: a free one): its mailbox and port."""
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SmtpServer(mailbox, hostname="sandbox.switchboard.test"), "127.0.0.1", port
    )
    bound = server.sockets[0].getsockname()[1]
    try:
        yield mailbox, bound
    finally:
        mailbox.release.set()
        server.close()
        await server.wait_closed()
