"""A small client of the agent hub's websocket protocol (docs/hub-protocol.md), for tests,
bots and scripts.

It reads the socket only when asked (:meth:`HubClient.next`, :meth:`HubClient.act`), so a
caller that stops asking stops reading, as a slow agent tool would. It remembers the last
event id it handed out per queue, so :meth:`HubClient.subscribe` after a reconnect resumes
where the caller left off. The token travels as a subprotocol
(:mod:`libs.contracts.socket_tokens`), or with ``token_in_query`` in the URL, for hubs that
predate it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any

import aiohttp

from libs.contracts.socket_tokens import offered_protocols


class HubClosed(Exception):
    """The hub closed the socket; ``code`` is the close code (see the protocol's table)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"hub closed the socket: {code} {reason}")
        self.code = code
        self.reason = reason


class ActionFailed(Exception):
    """The hub answered an action with ``error``; ``retry`` says whether to send it again."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code = str(frame.get("code"))
        self.retry = bool(frame.get("retry"))
        self.frame = frame


class HubClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        session: aiohttp.ClientSession,
        token_in_query: bool = False,
    ) -> None:
        self._url = url
        self._token = token
        self._session = session
        self._token_in_query = token_in_query
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stash: deque[dict[str, Any]] = deque()
        self._ids = itertools.count(1)
        self.last_ids: dict[str, str | None] = {}
        self.hello: dict[str, Any] = {}

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> dict[str, Any]:
        """Open the socket and return the ``hello`` frame (:class:`HubClosed` if refused)."""
        self._stash.clear()
        if self._token_in_query:
            self._ws = await self._session.ws_connect(self._url, params={"token": self._token})
        else:
            self._ws = await self._session.ws_connect(
                self._url, protocols=offered_protocols(self._token)
            )
        self.hello = await self._receive()
        return self.hello

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def subscribe(self, queues: Iterable[str]) -> None:
        """Follow ``queues``, resuming each after the last event id this client handed out."""
        wanted = {queue: self.last_ids.get(queue) for queue in queues}
        await self._send({"type": "subscribe", "queues": wanted})

    async def act(
        self,
        kind: str,
        conversation_id: str,
        *,
        action_id: str | None = None,
        text: str | None = None,
        queue: str | None = None,
        issue_type: str | None = None,
    ) -> dict[str, Any]:
        """Send an action and wait for its ``ack`` (:class:`ActionFailed` on ``error``); other
        frames that arrive meanwhile are kept for :meth:`next`."""
        client_id = action_id or f"a-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        frame: dict[str, Any] = {
            "type": "action",
            "id": client_id,
            "kind": kind,
            "conversation_id": conversation_id,
        }
        if text is not None:
            frame["text"] = text
        if queue is not None:
            frame["queue"] = queue
        if issue_type is not None:
            frame["issue_type"] = issue_type
        await self._send(frame)
        return await self._reply(_answer_to(client_id))

    async def customer(self, conversation_id: str) -> dict[str, Any]:
        """The profile and cross-channel history of a conversation's customer (the hub's
        ``customer`` frame; :class:`ActionFailed` on ``error``)."""
        client_id = f"c-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        await self._send({"type": "customer", "id": client_id, "conversation_id": conversation_id})
        return await self._reply(_answer_to(client_id))

    async def figures(self) -> dict[str, Any]:
        """The figures of the token's queues (the hub's ``figures`` frame; supervisor tokens
        only, :class:`ActionFailed` with ``forbidden`` otherwise)."""
        client_id = f"f-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        await self._send({"type": "figures", "id": client_id})
        return await self._reply(_answer_to(client_id))

    async def transcript(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """A page of a conversation's transcript, oldest first (the hub's ``transcript``
        frame: ``entries``, ``more``; :class:`ActionFailed` on ``error``). For the page before
        it, pass ``before`` = the first entry's ``id``."""
        client_id = f"t-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        await self._send(
            {
                "type": "transcript",
                "id": client_id,
                "conversation_id": conversation_id,
                "before": before,
                "limit": limit,
            }
        )
        return await self._reply(_answer_to(client_id))

    async def answer_incident(
        self, incident_id: str, *, client_id: str | None = None
    ) -> dict[str, Any]:
        """Send the incident's status update to every customer of its open linked
        conversations in the token's queues; the ``ack`` counts them (``answered`` now,
        ``already_answered`` before). :class:`ActionFailed` on ``error``."""
        the_id = client_id or f"i-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        await self._send({"type": "answer_incident", "id": the_id, "incident_id": incident_id})
        return await self._reply(_answer_to(the_id))

    async def presence(
        self,
        status: str,
        capacity: dict[str, int] | None = None,
        *,
        skills: Iterable[str] | None = None,
        languages: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Report presence (``online``, ``away``, ``offline``) and capacity per channel, e.g.
        ``{"chat": 8, "email": 20}``, optionally narrowing the token's ``skills`` and
        ``languages``; returns the hub's ``presence`` answer (:class:`ActionFailed` on
        ``error``)."""
        frame: dict[str, Any] = {"type": "presence", "status": status, "capacity": capacity or {}}
        if skills is not None:
            frame["skills"] = sorted(skills)
        if languages is not None:
            frame["languages"] = sorted(languages)
        await self._send(frame)
        return await self._reply(
            lambda m: (
                (m.get("type") == "presence" and m.get("reason") is None)
                or m.get("type") == "error"
            )
        )

    async def accept(self, offer_id: str) -> dict[str, Any]:
        """Take an offered conversation: the ``ack`` of its claim (:class:`ActionFailed` when
        the offer is gone)."""
        return await self._answer_offer("accept", offer_id)

    async def decline(self, offer_id: str) -> dict[str, Any]:
        """Refuse an offer (it goes to the next agent): the hub's ``ack``."""
        return await self._answer_offer("decline", offer_id)

    async def next_of(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame of type ``kind``; frames of other types are dropped."""
        while True:
            message = await self.next(timeout)
            if message.get("type") == kind:
                return message

    async def _answer_offer(self, kind: str, offer_id: str) -> dict[str, Any]:
        await self._send({"type": kind, "offer_id": offer_id})
        return await self._reply(_answer_to(offer_id))

    async def _reply(self, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first frame that ``matches`` (:class:`ActionFailed` if it is an ``error``);
        frames that arrive before it are kept for :meth:`next`."""
        skipped: list[dict[str, Any]] = []
        try:
            while True:
                message = await self._receive()
                if matches(message):
                    if message["type"] == "error":
                        raise ActionFailed(message)
                    return message
                skipped.append(message)
        finally:
            self._stash.extend(skipped)

    async def send_raw(self, data: str) -> None:
        """Send a frame as is (for testing the hub's validation)."""
        assert self._ws is not None, "not connected"
        await self._ws.send_str(data)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next server frame; ``event`` and ``snapshot`` frames advance ``last_ids``."""
        message = (
            self._stash.popleft()
            if self._stash
            else await asyncio.wait_for(self._receive(), timeout)
        )
        if message.get("type") == "event" or message.get("type") == "snapshot":
            self.last_ids[str(message["queue"])] = str(message["id"])
        return message

    async def events(self, timeout: float = 10.0) -> AsyncIterator[dict[str, Any]]:
        """Every ``event`` frame, in order (other frames are skipped)."""
        while True:
            message = await self.next(timeout)
            if message.get("type") == "event":
                yield message

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None, "not connected"
        await self._ws.send_json(frame)

    async def _receive(self) -> dict[str, Any]:
        assert self._ws is not None, "not connected"
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            data: dict[str, Any] = msg.json()
            return data
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            code = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else self._ws.close_code
            raise HubClosed(code, str(msg.extra or ""))
        raise HubClosed(self._ws.close_code, f"unexpected {msg.type.name} frame")


def _answer_to(client_id: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a frame is the answer (``ack``, ``customer``) or the ``error`` to the frame
    with ``client_id``."""
    return lambda m: (
        m.get("type") in ("ack", "customer", "transcript", "figures", "error")
        and m.get("id") == client_id
    )
