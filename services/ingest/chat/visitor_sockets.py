"""The sockets of this ingest process, and the one Redis subscription that wakes them.

Replies reach a visitor whichever replica holds the socket: outbound announces each mailbox
entry on the visitor's channel, and every replica holds one pattern subscription to all
visitors' channels and wakes only its own sockets of that visitor. A woken socket reads the
mailbox after the last entry it delivered (:mod:`libs.contracts.chat_mailbox`), so an
announcement that is lost costs nothing but latency (:func:`libs.common.pubsub.follow`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from redis.asyncio import Redis

from libs.common.keys import Keys
from libs.common.pubsub import follow


class Wakeable(Protocol):
    @property
    def visitor_id(self) -> str: ...

    def wake(self, entry_id: str | None) -> None:
        """There is mail up to ``entry_id`` (None: there may be mail)."""
        ...


class ChatHub:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._prefix = keys.chat_notify("")
        self._sockets: dict[str, set[Wakeable]] = {}
        self.subscribed = False

    def register(self, socket: Wakeable) -> None:
        self._sockets.setdefault(socket.visitor_id, set()).add(socket)

    def unregister(self, socket: Wakeable) -> None:
        sockets = self._sockets.get(socket.visitor_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[socket.visitor_id]

    def count(self, visitor_id: str) -> int:
        return len(self._sockets.get(visitor_id, ()))

    def __iter__(self) -> Iterator[Wakeable]:
        return iter([s for sockets in self._sockets.values() for s in sockets])

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled; Redis outages are waited out."""
        await follow(
            self._redis,
            pattern=self._keys.chat_notify_pattern(),
            subscribed=self._caught_up,
            message=self._announced,
            lost=self._lost,
        )

    def _caught_up(self) -> None:
        """(Re)subscribed, possibly after missing announcements: everyone catches up."""
        self.subscribed = True
        for socket in self:
            socket.wake(None)

    def _announced(self, channel: str, entry_id: str) -> None:
        for socket in list(self._sockets.get(channel.removeprefix(self._prefix), ())):
            socket.wake(entry_id)

    def _lost(self) -> None:
        self.subscribed = False
