"""One reader per queue per hub process: ``XREAD BLOCK`` on the queue's stream, handing each
new entry to every local socket that follows the queue.

Handing over never waits: a socket whose buffer is full is closed as a slow consumer, so one
socket that does not read cannot hold up the reader or the other sockets. A feed starts at
the stream's newest entry when its first follower arrives (followers catch up on older
entries themselves, from the stream) and stops when its last follower leaves. Blocking reads
use their own Redis client, so they never take connections from the request path.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.backoff import Backoff
from libs.common.logs import get_logger
from libs.common.pubsub import raise_if_cancelled
from services.hub import protocol
from services.hub.streams import QueueStreams

log = get_logger(__name__)
BLOCK_MS: Final = 2_000  # below the Redis client's socket timeout
READ_BACKOFF: Final = Backoff(base=0.2, cap=5.0)


class Follower(Protocol):
    async def on_entry(self, queue: str, entry_id: str, frame: str) -> bool:
        """A new entry of ``queue`` as its ``event`` frame; must not wait on the peer. Whether
        it was sent or queued."""
        ...


class QueueFeed:
    def __init__(self, queue: str, streams: QueueStreams, batch: int) -> None:
        self.queue = queue
        self._streams = streams
        self._batch = batch
        self.followers: set[Follower] = set()
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"hub feed {queue}")

    async def _run(self) -> None:
        failures = 0
        position: str | None = None
        while True:
            try:
                if position is None:
                    position = await self._streams.last_id(self.queue)
                    self.ready.set()
                entries = await self._streams.read_blocking(
                    self.queue, position, self._batch, BLOCK_MS
                )
                failures = 0
            except RedisError as exc:
                raise_if_cancelled()  # XREAD BLOCK is where redis-py can swallow a cancel
                failures += 1
                log.warning("hub feed read failed; retrying", queue=self.queue, error=repr(exc))
                await asyncio.sleep(READ_BACKOFF.delay(failures))
                continue
            for entry_id, payload in entries:
                position = entry_id
                frame = protocol.event(self.queue, entry_id, payload)  # once for every socket
                sent = 0
                for follower in list(self.followers):
                    sent += await follower.on_entry(self.queue, entry_id, frame)
                metrics.hub_events_sent.inc(sent)


class Feeds:
    """The feeds of this process, by queue.

    ``batch`` bounds the entries handed over at once: sockets' writers run between batches,
    so it must stay well below a socket's buffer or a burst alone would overflow it."""

    def __init__(self, streams: QueueStreams, batch: int) -> None:
        self._streams = streams
        self._batch = batch
        self._feeds: dict[str, QueueFeed] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def follow(self, queue: str, follower: Follower) -> None:
        """Deliver ``queue``'s new entries to ``follower`` from now on; returns once the feed
        has its starting position (so a catch-up read after this misses nothing)."""
        feed = self._feeds.get(queue)
        if feed is None or feed.task.done():
            feed = self._feeds[queue] = QueueFeed(queue, self._streams, self._batch)
        feed.followers.add(follower)
        await feed.ready.wait()

    def unfollow(self, queue: str, follower: Follower) -> None:
        feed = self._feeds.get(queue)
        if feed is None:
            return
        feed.followers.discard(follower)
        if not feed.followers:
            del self._feeds[queue]
            feed.task.cancel()
            self._stopping.add(feed.task)
            feed.task.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        tasks = {feed.task for feed in self._feeds.values()} | self._stopping
        self._feeds = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
