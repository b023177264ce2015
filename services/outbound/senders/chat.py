"""Chat replies out to the visitor's mailbox, whichever ingest replica holds the visitor's socket.

Sending is one atomic, idempotent Redis script (:class:`libs.contracts.chat_mailbox.Mailbox`): a
retry of a send whose answer was lost returns the entry already written instead of a second
reply. The provider message id in the receipt is the mailbox entry id.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common.clock import Clock, system_clock
from libs.common.keys import Keys
from libs.contracts.chat_mailbox import Mailbox, visitor_of
from services.outbound.senders.base import OutgoingMessage, PermanentFailure, TemporaryFailure

MAX_TEXT = 10_000


class ChatSender:
    def __init__(self, redis: Redis, keys: Keys, clock: Clock = system_clock) -> None:
        self._mailbox = Mailbox(redis, keys)
        self._clock = clock

    async def send(self, message: OutgoingMessage) -> str:
        visitor_id = visitor_of(message.recipient)
        if visitor_id is None:
            raise PermanentFailure(f"not a chat thread key: {message.recipient[:80]!r}")
        if not message.text.strip():
            raise PermanentFailure("empty reply")
        if len(message.text) > MAX_TEXT:
            raise PermanentFailure(f"reply longer than {MAX_TEXT} characters")
        try:
            return await self._mailbox.append(
                visitor_id,
                command_id=message.command_id,
                text=message.text,
                at=self._clock(),
                in_reply_to=message.in_reply_to,
            )
        except RedisError as exc:
            # The script is atomic and keyed by command id, so trying again is always safe.
            raise TemporaryFailure(f"redis: {type(exc).__name__}") from exc
