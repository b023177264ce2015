"""The upgrade of ``/v1/agents/ws``: authenticate, then hand the socket to a session.

The token comes from ``Authorization: Bearer`` or, for browsers (which can set no other
header on a websocket), the offered subprotocols (:mod:`libs.contracts.socket_tokens`); the
``token`` query parameter is still read, for compatibility only. A refused token still gets
the upgrade and then a close with its code, because a browser sees close codes but not HTTP
statuses.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from libs.common import metrics
from libs.common.logs import get_logger
from libs.contracts.agent_access import AgentTokens, TokenRejected
from libs.contracts.socket_tokens import PROTOCOL, offered_token
from services.hub import protocol
from services.hub.sessions import AgentSession, Services, limit_send_buffer

log = get_logger(__name__)
SHUTDOWN_TIMEOUT = 8.0


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return offered_token(request)


class HubEndpoint:
    def __init__(self, tokens: AgentTokens, services: Services) -> None:
        self._tokens = tokens
        self._services = services
        self._sessions: set[AgentSession] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        limits = self._services.limits
        ws = web.WebSocketResponse(
            heartbeat=limits.heartbeat,
            max_msg_size=limits.max_frame_bytes,
            compress=False,
            protocols=(PROTOCOL,),
        )
        await ws.prepare(request)
        try:
            claims = self._tokens.verify(bearer_token(request))
        except TokenRejected as exc:
            metrics.hub_closes.labels("token_expired" if exc.expired else "token_invalid").inc()
            log.info("agent socket refused", reason=exc.reason)
            code = protocol.CLOSE_TOKEN_EXPIRED if exc.expired else protocol.CLOSE_TOKEN_INVALID
            await ws.close(code=code, message=exc.reason.encode()[:120])
            return ws
        limit_send_buffer(request, limits.socket_send_buffer)
        session = AgentSession(ws, claims, self._services, request.transport)
        self._sessions.add(session)
        self._idle.clear()
        metrics.hub_connections.inc()
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if not self._sessions:
                self._idle.set()
            metrics.hub_connections.dec()
        return ws

    async def shutdown(self) -> None:
        """Close every socket with GOING_AWAY and wait (bounded) for the sessions to end."""
        for session in list(self._sessions):
            session.request_close(protocol.CLOSE_GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), SHUTDOWN_TIMEOUT)
