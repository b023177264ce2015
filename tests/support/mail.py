"""Helpers of the email tests: a group-less topic reader and an SMTP client that reports codes.

``collect`` in :mod:`tests.support.kafka` joins a consumer group, which costs seconds per test
on the embedded broker; these tests read one topic from the start with no group instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosmtplib
from aiohttp import web

from libs.common.service import REDIS


@dataclass(frozen=True)
class SmtpClient:
    port: int
    recipient: str

    async def send(self, raw: bytes, *, sender: str = "customer@example.org") -> tuple[int, str]:
        """One SMTP session delivering ``raw``: the code and text of the reply that decided
        it (DATA's, or the refusal of an earlier command)."""
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, start_tls=False)
        await client.connect()
        try:
            _, message = await client.sendmail(sender, [self.recipient], raw)
            return 250, message
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return exc.recipients[0].code, exc.recipients[0].message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        finally:
            if client.is_connected:
                await client.quit()


# libs/common/redis_client.py passes auto_close_connection_pool, which redis 8 deprecates and
# ignores (Redis.from_pool is the replacement), so the pool outlives the client. Not these
# tests' module to change: they ignore the warning and in_process() closes the pool.
REDIS_POOL_WARNING = "ignore:.*auto_close_connection_pool.*:DeprecationWarning"


def in_process(app: web.Application) -> web.Application:
    """The app, with its Redis pool disconnected after every other clean-up step."""

    async def close_pool(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[REDIS].connection_pool.disconnect()

    app.cleanup_ctx.insert(0, close_pool)
    return app
