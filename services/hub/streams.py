"""Per-queue Redis Streams: what the fan-out appends and every replica's sockets read.

An event is appended to a queue's stream at most once (a marker keyed by event id and queue,
set by the same Lua script as the ``XADD``), so a Kafka redelivery or a second fan-out attempt
appends nothing. Streams are capped by length and age, trimmed from the head in batches (a
tenth of the length cap, like ``MAXLEN ~``, so trimming is not paid on every append) and by
``MINID``. The script records the newest entry it trimmed: a client's resume id is served
only when it is not older than that, so a resume never skips an event. (Redis's own
``max-deleted-entry-id`` counts only ``XDEL``, not trimming, so the hub keeps its own.)
The entry ids are the event ids clients resume from.
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from libs.common.clock import Clock, system_clock
from libs.common.keys import DAY, Keys
from libs.common.redis_client import ScriptBatcher, as_text, load_script
from libs.contracts.chat_mailbox import START, entry_order

FIELD: Final = b"e"


Entry = tuple[str, bytes]


class QueueStreams:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        maxlen: int,
        max_age: float,
        clock: Clock = system_clock,
        scripts: ScriptBatcher | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._maxlen = maxlen
        self._max_age = max_age
        self._clock = clock
        self._scripts = ScriptBatcher(redis) if scripts is None else scripts
        self._append = redis.register_script(load_script("services.hub", "stream_append.lua"))

    def key(self, queue: str) -> str:
        return self._keys.hub_stream(queue)

    async def append(self, queue: str, dedupe_id: str, payload: bytes) -> str:
        """Append once per ``dedupe_id``; returns the entry id (the same one on a repeat)."""
        min_id = int((self._clock().timestamp() - self._max_age) * 1000)
        entry = await self._scripts.call(
            self._append,
            [self.key(queue), self._keys.hub_seen(dedupe_id, queue), self._keys.hub_trimmed(queue)],
            [
                payload,
                self._maxlen,
                max(1, self._maxlen // 10),
                max(min_id, 1),
                int(self._max_age + DAY),
            ],
        )
        return as_text(entry)

    async def last_id(self, queue: str) -> str:
        """The id of the newest entry, or ``0-0`` for an empty or missing stream."""
        newest: Any = await self._redis.xrevrange(self.key(queue), count=1)
        return as_text(newest[0][0]) if newest else START

    async def read_after(self, queue: str, after: str, count: int) -> list[Entry]:
        """Up to ``count`` entries newer than ``after``, oldest first."""
        rows = await self._redis.xrange(self.key(queue), min=f"({after}", max="+", count=count)
        return _entries(rows)

    async def read_blocking(self, queue: str, after: str, count: int, block_ms: int) -> list[Entry]:
        """Entries newer than ``after``, waiting up to ``block_ms`` for the first one."""
        reply: Any = await self._redis.xread({self.key(queue): after}, count=count, block=block_ms)
        return [entry for _, rows in reply or () for entry in _entries(rows)]

    async def can_resume(self, queue: str, after: str) -> bool:
        """Whether every entry after ``after`` is still held (else the client must resync)."""
        try:
            info = await self._redis.xinfo_stream(self.key(queue))
        except ResponseError:  # no stream: only a client that has seen nothing can go on
            return after == START
        position = entry_order(after)
        if position > entry_order(as_text(info["last-generated-id"])):
            return False  # an id this stream never issued (it was deleted and recreated)
        trimmed = await self._redis.get(self._keys.hub_trimmed(queue))
        return trimmed is None or position >= entry_order(as_text(trimmed))


def _entries(rows: object) -> list[Entry]:
    entries = []
    for entry_id, fields in rows or ():  # type: ignore[attr-defined]
        if entry_id is None or fields is None:  # trimmed while being read
            continue
        payload = fields.get(FIELD)
        if payload is not None:
            entries.append((as_text(entry_id), bytes(payload)))
    return entries
