"""Email in: an SMTP server for mail sent to our support addresses, and IMAP polling of
hosted mailboxes. Both parse with :func:`services.ingest.mail.parse_email`, name threads
through one :class:`~services.ingest.mailboxes.normalise.ThreadIndex` and publish through the
acceptor before they acknowledge anything (``250``; the ``\\Seen``/``$Switchboard`` flag).

SMTP always listens (``SWITCHBOARD_SMTP_PORT`` on ``SWITCHBOARD_HTTP_HOST``); IMAP polling
runs when ``IMAP_HOST`` is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from libs.common.keys import Keys
from libs.common.service import REDIS, SETTINGS, add_background
from services.ingest.accept import Acceptor
from services.ingest.mailboxes.imap import ImapPoller, Mailbox, UidCheckpoint
from services.ingest.mailboxes.normalise import ThreadIndex
from services.ingest.mailboxes.smtp import InboundMail, SmtpServer

SMTP_SERVER = web.AppKey("smtp_server", SmtpServer)
IMAP_POLLER = web.AppKey("imap_poller", ImapPoller)


def install(app: web.Application, acceptor: web.AppKey[Acceptor]) -> None:
    """Add SMTP (always) and IMAP (when configured); ``acceptor`` is set by an earlier
    cleanup context, so both stop before it and before the producer."""
    app.cleanup_ctx.append(_smtp_ctx(acceptor))
    if app[SETTINGS].imap_host:
        app.cleanup_ctx.append(_imap_ctx(acceptor))
        # A message in flight is abandoned: it is neither flagged nor checkpointed, so the
        # next start takes it again (and the acceptor drops it if it was published).
        add_background(
            app, "imap poller", lambda a: a[IMAP_POLLER].run(), stop=lambda a: a[IMAP_POLLER].stop()
        )


def _smtp_ctx(
    acceptor: web.AppKey[Acceptor],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        recipients = frozenset(
            a.strip().lower() for a in settings.switchboard_smtp_recipients.split(",") if a.strip()
        )
        handler = InboundMail(
            acceptor=app[acceptor],
            threads=ThreadIndex(app[REDIS], Keys(settings.switchboard_key_prefix)),
            recipients=recipients,
            max_bytes=settings.switchboard_smtp_max_bytes,
        )
        server = SmtpServer(
            handler,
            host=settings.switchboard_http_host,
            port=settings.switchboard_smtp_port,
            max_bytes=settings.switchboard_smtp_max_bytes,
        )
        await server.start()
        app[SMTP_SERVER] = server
        try:
            yield
        finally:
            await server.stop()

    return ctx


def _imap_ctx(
    acceptor: web.AppKey[Acceptor],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        keys = Keys(settings.switchboard_key_prefix)
        mailbox = Mailbox(
            host=settings.imap_host,
            port=settings.imap_port,
            user=settings.imap_user,
            password=settings.imap_password,
            name=settings.imap_mailbox,
            use_ssl=settings.imap_ssl,
        )
        poller = ImapPoller(
            mailbox=mailbox,
            acceptor=app[acceptor],
            threads=ThreadIndex(app[REDIS], keys),
            checkpoint=UidCheckpoint(app[REDIS], keys, mailbox),
            interval=settings.imap_poll_interval,
        )
        app[IMAP_POLLER] = poller
        yield

    return ctx
