"""Message-IDs of the email we send, indexed to their conversation (outbound writes, ingest
reads).

Outbound records the Message-ID of every email before handing it to the relay
(``email:sent:{message_id}`` -> the conversation's thread key, :data:`SENT_TTL`, as long as
ingest remembers the messages it accepted). Ingest looks the ids a customer's mail names
(In-Reply-To, References) up here when none of them is a message it accepted itself: a reply
whose headers name only our acknowledgement (mobile clients often write just the message they
answer) then joins the conversation instead of opening a second one with a second
acknowledgement. Joining still follows ingest's participant rule: a sender who is not part of
the thread gets a thread of their own, linked to it.

Ids are stored as ingest's parser reads them: no angle brackets, the domain lowercased.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis

from libs.common.keys import DAY, Keys
from libs.common.redis_client import as_text, get_many

SENT_TTL: Final = 90 * DAY


def bare_id(message_id: str) -> str:
    """``<Local@Domain>`` as ingest's parser reads it: ``Local@domain``."""
    value = message_id.strip().removeprefix("<").removesuffix(">").strip()
    local, at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}" if at else value


class SentMail:
    """The index of the Message-IDs we sent."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(self, message_id: str, thread_key: str) -> None:
        await self._redis.set(self._keys.email_sent(bare_id(message_id)), thread_key, ex=SENT_TTL)

    async def thread_of(self, message_ids: Sequence[str]) -> str | None:
        """The thread of the first of ``message_ids`` that we sent, if any."""
        if not message_ids:
            return None
        found = await get_many(
            self._redis, [self._keys.email_sent(bare_id(i)) for i in message_ids]
        )
        return next((as_text(v) for v in found if v is not None), None)
