"""The chat mailbox: agent replies to one website visitor, written by outbound, read by ingest.

A reply is appended to the visitor's Redis Stream and announced on the visitor's pub/sub
channel by one Lua script, at most once per command id (a retried send returns the entry it
already wrote). The announcement carries only the new entry's id: ingest delivers replies
*from the stream*, each socket reading after the last entry it delivered. Live delivery and
delivery on reconnect are therefore one code path, so a reply is never shown twice nor
skipped, whichever ingest replica holds the socket, even when a replica missed announcements
while its pub/sub connection was down.

The stream keeps the last :data:`MAILBOX_MAXLEN` replies and expires :data:`MAILBOX_TTL`
after the latest one; a visitor who comes back later than that starts with an empty mailbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from redis.asyncio import Redis

from libs.common.keys import DAY, Keys
from libs.common.redis_client import as_text, load_script

MAILBOX_MAXLEN: Final = 200
MAILBOX_TTL: Final = 7 * DAY
THREAD_PREFIX: Final = "chat:"
VISITOR_ID: Final = re.compile(r"[0-9a-f]{32}")
ENTRY_ID: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MAX_ENTRY_PART: Final = 2**64 - 1
START: Final = "0-0"


def thread_key(visitor_id: str) -> str:
    """The thread key of a visitor's conversation, also the recipient of replies to it."""
    return f"{THREAD_PREFIX}{visitor_id}"


def visitor_of(recipient: str) -> str | None:
    """The visitor id in a chat thread key, or None when it is not one."""
    if not recipient.startswith(THREAD_PREFIX):
        return None
    visitor_id = recipient[len(THREAD_PREFIX) :]
    return visitor_id if VISITOR_ID.fullmatch(visitor_id) else None


def entry_order(entry_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), not as text."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def is_entry_id(text: str) -> bool:
    """Whether a client's cursor is a stream id Redis accepts: two unsigned 64-bit integers.
    Twenty digits can exceed 64 bits, and Redis refuses every read after such an id."""
    return bool(ENTRY_ID.fullmatch(text)) and max(entry_order(text)) <= MAX_ENTRY_PART


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    command_id: str
    text: str
    at: str
    in_reply_to: str | None

    def frame(self) -> dict[str, str | None]:
        """The websocket frame the widget shows."""
        return {
            "type": "reply",
            "id": self.id,
            "command_id": self.command_id,
            "text": self.text,
            "at": self.at,
            "in_reply_to": self.in_reply_to,
        }


class Mailbox:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._append = redis.register_script(
            load_script("libs.contracts", "chat_mailbox_append.lua")
        )

    async def append(
        self,
        visitor_id: str,
        *,
        command_id: str,
        text: str,
        at: datetime,
        in_reply_to: str | None,
    ) -> str:
        """Store and announce a reply once; returns its entry id (the same one on a retry)."""
        entry = await self._append(
            keys=[
                self._keys.chat_mailbox(visitor_id),
                self._keys.chat_reply(visitor_id, command_id),
            ],
            args=[
                MAILBOX_MAXLEN,
                MAILBOX_TTL,
                command_id,
                text,
                at.isoformat(),
                in_reply_to or "",
                self._keys.chat_notify(visitor_id),
            ],
        )
        return as_text(entry)

    async def read_after(self, visitor_id: str, after: str, count: int) -> list[Reply]:
        """Up to ``count`` replies newer than entry ``after``, oldest first."""
        entries = await self._redis.xrange(
            self._keys.chat_mailbox(visitor_id), min=f"({after}", max="+", count=count
        )
        replies = []
        for entry_id, fields in entries or ():
            if entry_id is None or fields is None:  # an entry trimmed while being read
                continue
            values = {as_text(k): as_text(v) for k, v in fields.items()}
            replies.append(
                Reply(
                    id=as_text(entry_id),
                    command_id=values.get("command_id", ""),
                    text=values.get("text", ""),
                    at=values.get("at", ""),
                    in_reply_to=values.get("in_reply_to") or None,
                )
            )
        return replies
