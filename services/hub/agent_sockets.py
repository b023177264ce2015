"""The agents with a socket on this hub process, and the one Redis subscription that tells
them their offers or presence changed.

The assigner publishes on ``hub:notify:{agent}`` whichever replica made the change; every
replica holds one pattern subscription and wakes only its own sockets of that agent. A notice
carries nothing: a woken socket reads the agent's state from Redis, so a lost notice costs
only latency, and after every (re)subscription all local sockets are woken once to catch up.
(:func:`libs.common.pubsub.follow` holds the subscription.)
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from libs.common.keys import Keys
from libs.common.pubsub import follow


class Notified(Protocol):
    @property
    def agent(self) -> str: ...

    def notify(self) -> None:
        """The agent's offers or presence may have changed; must not block."""
        ...


class AgentInbox:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._prefix = keys.hub_notify("")
        self._sockets: dict[str, set[Notified]] = {}

    def register(self, socket: Notified) -> None:
        self._sockets.setdefault(socket.agent, set()).add(socket)

    def unregister(self, socket: Notified) -> None:
        sockets = self._sockets.get(socket.agent)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[socket.agent]

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled; Redis outages are waited out."""
        await follow(
            self._redis,
            pattern=self._keys.hub_notify_pattern(),
            subscribed=self._wake_all,
            message=self._notified,
        )

    def _wake_all(self) -> None:
        """(Re)subscribed, maybe after missing notices: every local socket catches up."""
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                socket.notify()

    def _notified(self, channel: str, _: str) -> None:
        for socket in list(self._sockets.get(channel.removeprefix(self._prefix), ())):
            socket.notify()
