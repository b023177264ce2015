"""The sockets of this ingest process, and the one Redis subscription that wakes them.

Replies reach a visitor whichever replica holds the socket: outbound announces each mailbox
entry on the visitor's channel, and every replica holds one pattern subscription to all
visitors' channels and wakes only its own sockets of that visitor. A woken socket reads the
mailbox after the last entry it delivered (:mod:`libs.common.chat`), so an announcement that
is lost costs nothing but latency: after every (re)subscription all local sockets are woken
once to catch up on what was published while the subscription was down.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.redis_client import as_text

log = get_logger(__name__)
POLL_SECONDS = 5.0  # bounded reads, so the connection's health checks run when it is quiet
BACKOFF_MAX = 10.0


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py swallowed (it can, while it connects), so the
    task that was cancelled does stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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
        failures = 0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(self._keys.chat_notify_pattern())
                raise_if_cancelled()
                while True:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    raise_if_cancelled()
                    failures = 0
                    if message is not None:
                        self._dispatch(message)
            except RedisError as exc:
                self.subscribed = False
                failures += 1
                delay = random.uniform(0, min(BACKOFF_MAX, 0.2 * 2**failures))
                log.warning("chat subscription lost; resubscribing", error=repr(exc))
                await asyncio.sleep(delay)
            finally:
                self.subscribed = False
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "psubscribe":
            # (Re)subscribed, possibly after missing announcements: everyone catches up.
            self.subscribed = True
            for socket in self:
                socket.wake(None)
            return
        if kind != "pmessage":
            return
        channel, data = message.get("channel"), message.get("data")
        if not isinstance(channel, bytes | str) or not isinstance(data, bytes | str):
            return
        visitor_id = as_text(channel).removeprefix(self._prefix)
        for socket in list(self._sockets.get(visitor_id, ())):
            socket.wake(as_text(data))
