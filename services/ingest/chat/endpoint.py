"""Live chat for website visitors: session tokens over HTTP, messages and replies over a websocket.

``POST /v1/chat/session`` issues a signed session token (:mod:`.session`).
``GET /v1/chat/ws?after=...`` upgrades, the token offered as the subprotocol
``switchboard.token.<token>`` beside ``switchboard.v1`` (:mod:`libs.contracts.socket_tokens`; the
``token`` query parameter is still read, for compatibility only); ``after`` is the id of the
last reply the widget shows (absent: the whole mailbox). Each visitor frame is published as one
``message.received`` through the :class:`~services.ingest.accept.Acceptor`, and ``ack`` is
sent only after Kafka acknowledged it; a resent ``client_id`` is acked without a second event;
when Kafka or Redis is unavailable the frame gets ``error`` with ``retry: true`` and no ack.

Frames from one socket are handled one at a time, so one visitor's messages reach Kafka in
the order typed (they share the thread key, hence the partition). Replies are written by a
separate task from the visitor's mailbox; every write goes through one bounded queue. When
the mailbox stays unreadable for :attr:`Limits.max_delivery_failures` reads in a row, the
socket is closed rather than left polling Redis.

Close codes: 4401 bad or expired token (get a new session), 4400 malformed ``after`` (not two
unsigned 64-bit integers), 4429 too many sockets for one visitor or from one peer address,
4503 replies cannot be read (reconnect later), 1008 a visitor that keeps flooding, 1009 frame
over :attr:`Limits.max_frame_bytes`, 1013 a visitor that does not read its socket, 1001
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from opentelemetry import context as otel_context
from opentelemetry import trace
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.events import CustomerIdentity, MessageReceived, event_id
from libs.common.logs import get_logger
from libs.common.pubsub import FailureStreak, raise_if_cancelled
from libs.common.socket_frames import FrameError
from libs.contracts.chat_mailbox import START, Mailbox, entry_order, is_entry_id, thread_key
from libs.contracts.socket_tokens import PROTOCOL, offered_token
from services.ingest.accept import Acceptance, Acceptor, Unavailable
from services.ingest.chat import frames
from services.ingest.chat.session import InvalidSession, SessionTokens
from services.ingest.chat.visitor_sockets import ChatHub

log = get_logger(__name__)
_tracer = trace.get_tracer("switchboard.ingest.chat")

SESSION_PATH: Final = "/v1/chat/session"
WS_PATH: Final = "/v1/chat/ws"
SOURCE: Final = "/ingest/chat"
MAX_SESSION_BODY: Final = 4096
CLOSE_TIMEOUT: Final = 5.0
CORS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}

CLOSE_BAD_SESSION: Final = 4401
CLOSE_BAD_REQUEST: Final = 4400
CLOSE_TOO_MANY_SOCKETS: Final = 4429
CLOSE_REPLIES_UNAVAILABLE: Final = 4503

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-socket bounds on what one visitor can make this process do."""

    max_frame_bytes: int = 64 * 1024
    heartbeat: float = 25.0
    rate_per_second: float = 1.0
    burst: int = 20
    max_rejections: int = 50  # rate-limited frames in a row before the socket is closed
    send_queue: int = 64
    reply_batch: int = 20
    sockets_per_visitor: int = 8
    sockets_per_ip: int = 0  # per peer address (CHAT_MAX_SOCKETS_PER_IP); 0: no cap
    delivery_retry_seconds: float = 1.0  # between reads of a mailbox Redis failed to read
    max_delivery_failures: int = 30  # failed mailbox reads in a row before the socket is closed


def error_frame(
    code: str,
    message: str,
    client_id: str | None,
    *,
    retry: bool,
    retry_after: float | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "error",
        "client_id": client_id,
        "code": code,
        "message": message,
        "retry": retry,
    }
    if retry_after is not None:
        frame["retry_after"] = round(retry_after, 1)
    return frame


class ChatSocket:
    """One visitor's open websocket: its reader loop, its reply task and its writer task."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        visitor_id: str,
        after: str,
        *,
        acceptor: Acceptor,
        mailbox: Mailbox,
        limits: Limits,
    ) -> None:
        self._ws = ws
        self._visitor_id = visitor_id
        self._cursor = after
        self._acceptor = acceptor
        self._mailbox = mailbox
        self._limits = limits
        self._bucket = frames.TokenBucket(limits.rate_per_second, limits.burst)
        self._rejections = 0
        self._outbox: asyncio.Queue[str] = asyncio.Queue(limits.send_queue)
        self._woken = asyncio.Event()

    @property
    def visitor_id(self) -> str:
        return self._visitor_id

    def wake(self, entry_id: str | None) -> None:
        if (
            entry_id is not None
            and is_entry_id(entry_id)
            and entry_order(entry_id) <= entry_order(self._cursor)
        ):
            return  # already delivered on this socket
        self._woken.set()

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``; a peer that does not take the close frame is cut off."""
        if self._ws.closed:
            return
        metrics.chat_closes.labels(reason.replace(" ", "_")).inc()
        # On cancellation (the timeout) aiohttp closes the transport itself.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode()[:120]), CLOSE_TIMEOUT
            )

    async def run(self) -> None:
        """Serve the socket until either side closes it."""
        await self._send_now({"type": "ready", "visitor_id": self._visitor_id})
        self._woken.set()  # deliver what is in the mailbox after the widget's cursor
        tasks = [
            asyncio.create_task(self._write(), name=f"chat writer {self._visitor_id}"),
            asyncio.create_task(self._deliver(), name=f"chat replies {self._visitor_id}"),
        ]
        try:
            await self._read()
        finally:
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("chat socket task failed", error=repr(result))
            if not self._ws.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT)

    # --- visitor -> Kafka -------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                await self._on_frame(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, or ERROR (aiohttp already closed, e.g. with 1009)
                if msg.type is WSMsgType.ERROR:
                    metrics.chat_closes.labels("protocol_error").inc()
                return
            if self._ws.closed:
                return

    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            message = frames.parse(raw)
        except FrameError as exc:
            if await self._limited(exc.client_id):
                return
            metrics.chat_frames.labels("invalid").inc()
            await self._send_now(error_frame(exc.code, exc.message, exc.client_id, retry=False))
            return
        if await self._limited(message.client_id):
            return
        await self._accept(message)

    async def _limited(self, client_id: str | None) -> bool:
        """Whether the frame is over the rate; a socket that keeps flooding is closed."""
        wait = self._bucket.take()
        if not wait:
            self._rejections = 0
            return False
        self._rejections += 1
        metrics.chat_frames.labels("rate_limited").inc()
        if self._rejections > self._limits.max_rejections:
            await self.close(WSCloseCode.POLICY_VIOLATION, "flooding")
            return True
        await self._send_now(
            error_frame("rate_limited", "too many frames", client_id, retry=True, retry_after=wait)
        )
        return True

    async def _accept(self, chat: frames.ChatMessage) -> None:
        message = MessageReceived(
            channel="chat",
            provider="widget",
            provider_message_id=f"{self._visitor_id}:{chat.client_id}",
            thread_key=thread_key(self._visitor_id),
            # Typed into the widget's form: nothing proves the visitor owns that address.
            customer=CustomerIdentity(display_name=chat.name, email=chat.email, verified=False),
            text=chat.text,
            received_at=self._acceptor.now(),
        )
        # Each frame starts its own trace (the long-lived upgrade request has no span).
        span = _tracer.start_as_current_span(
            "chat message receive",
            context=otel_context.Context(),
            kind=trace.SpanKind.SERVER,
            attributes={"switchboard.channel": "chat", "switchboard.client_id": chat.client_id},
        )
        try:
            with span:
                outcome = await self._acceptor.accept(
                    message,
                    event_id=event_id("chat", "widget", self._visitor_id, chat.client_id),
                    source=SOURCE,
                    language_hint=chat.language,
                )
        except (Unavailable, RedisError) as exc:
            log.warning("chat message not accepted; widget will resend", error=str(exc))
            metrics.chat_frames.labels("retry").inc()
            await self._send_now(
                error_frame("unavailable", "try again", chat.client_id, retry=True, retry_after=2)
            )
            return
        if outcome is Acceptance.IN_PROGRESS:  # the same frame from another tab, right now
            metrics.chat_frames.labels("retry").inc()
            await self._send_now(
                error_frame("in_progress", "try again", chat.client_id, retry=True, retry_after=1)
            )
            return
        duplicate = outcome is Acceptance.DUPLICATE
        metrics.chat_frames.labels("duplicate" if duplicate else "accepted").inc()
        await self._send_now({"type": "ack", "client_id": chat.client_id, "duplicate": duplicate})

    # --- mailbox -> visitor -----------------------------------------------------------------

    async def _deliver(self) -> None:
        failures = FailureStreak(self._limits.max_delivery_failures)
        while True:
            await self._woken.wait()
            self._woken.clear()
            try:
                while True:
                    replies = await self._mailbox.read_after(
                        self._visitor_id, self._cursor, self._limits.reply_batch
                    )
                    raise_if_cancelled()
                    failures.succeeded()
                    for reply in replies:
                        await self._outbox.put(_encode(reply.frame()).decode())
                        self._cursor = reply.id
                        metrics.chat_replies_delivered.inc()
                    if len(replies) < self._limits.reply_batch:
                        break
            except RedisError as exc:
                if failures.failed():
                    log.error("chat mailbox unreadable; closing the socket", error=repr(exc))
                    await self.close(CLOSE_REPLIES_UNAVAILABLE, "replies unavailable")
                    return
                log.warning("chat mailbox unreadable; retrying", error=repr(exc))
                await asyncio.sleep(self._limits.delivery_retry_seconds)
                self._woken.set()

    async def _send_now(self, frame: dict[str, Any]) -> None:
        """Queue a frame; a visitor so far behind that the queue is full is disconnected
        (the widget reconnects, resends what is unacknowledged and resumes by cursor)."""
        try:
            self._outbox.put_nowait(_encode(frame).decode())
        except asyncio.QueueFull:
            await self.close(WSCloseCode.TRY_AGAIN_LATER, "slow reader")

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._outbox.get()
                await self._ws.send_str(frame)
        except ConnectionError:
            await self.close(WSCloseCode.GOING_AWAY, "write failed")  # the visitor went away
        except Exception:
            await self.close(WSCloseCode.INTERNAL_ERROR, "internal error")
            raise


class ChatEndpoint:
    """The HTTP side: sessions, the upgrade, and the bookkeeping of open sockets."""

    def __init__(
        self,
        *,
        tokens: SessionTokens | None,
        acceptor: Acceptor,
        hub: ChatHub,
        mailbox: Mailbox,
        limits: Limits,
    ) -> None:
        self._tokens = tokens
        self._acceptor = acceptor
        self._hub = hub
        self._mailbox = mailbox
        self._limits = limits
        self._sockets: set[ChatSocket] = set()
        self._per_ip: Counter[str] = Counter()

    async def session(self, request: web.Request) -> web.Response:
        """``POST /v1/chat/session``, body empty or ``{"token": ...}`` to renew a session."""
        if self._tokens is None:
            return _json({"error": "chat is not configured"}, 503)
        if request.content_length is not None and request.content_length > MAX_SESSION_BODY:
            return _json({"error": "body too large"}, 413)
        body = b""
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > MAX_SESSION_BODY:
                return _json({"error": "body too large"}, 413)
        previous: object = None
        if body.strip():
            try:
                data: Any = msgspec.json.decode(body)
            except (msgspec.DecodeError, RecursionError):
                return _json({"error": "body is not JSON"}, 400)
            previous = data.get("token") if isinstance(data, dict) else None
        visitor_id = None
        if isinstance(previous, str):
            try:
                visitor_id = self._tokens.verify(previous)
            except InvalidSession:
                visitor_id = None  # expired or forged: a new visitor
        return _json(self._tokens.issue(visitor_id).as_json(), 200)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=CORS)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/chat/ws?after=...``, the token offered as a subprotocol."""
        if self._tokens is None:
            return _json({"error": "chat is not configured"}, 503)
        ws = web.WebSocketResponse(
            heartbeat=self._limits.heartbeat,
            max_msg_size=self._limits.max_frame_bytes,
            compress=False,
            protocols=(PROTOCOL,),
        )
        await ws.prepare(request)
        try:
            visitor_id = self._tokens.verify(offered_token(request))
        except InvalidSession as exc:
            metrics.webhook_rejections.labels("chat", "bad session").inc()
            log.info("chat socket refused", reason=str(exc))
            await ws.close(code=CLOSE_BAD_SESSION, message=b"invalid or expired session")
            return ws
        after = request.query.get("after") or START
        if not is_entry_id(after):
            await ws.close(code=CLOSE_BAD_REQUEST, message=b"malformed after")
            return ws
        if self._hub.count(visitor_id) >= self._limits.sockets_per_visitor:
            await ws.close(code=CLOSE_TOO_MANY_SOCKETS, message=b"too many sockets")
            return ws
        peer = request.remote or ""
        if self._limits.sockets_per_ip and self._per_ip[peer] >= self._limits.sockets_per_ip:
            metrics.chat_closes.labels("too_many_from_address").inc()
            await ws.close(code=CLOSE_TOO_MANY_SOCKETS, message=b"too many sockets from address")
            return ws
        socket = ChatSocket(
            ws,
            visitor_id,
            after,
            acceptor=self._acceptor,
            mailbox=self._mailbox,
            limits=self._limits,
        )
        self._hub.register(socket)
        self._sockets.add(socket)
        self._per_ip[peer] += 1
        metrics.chat_connections.inc()
        try:
            await socket.run()
        finally:
            self._hub.unregister(socket)
            self._sockets.discard(socket)
            self._per_ip[peer] -= 1
            if not self._per_ip[peer]:
                del self._per_ip[peer]
            metrics.chat_connections.dec()
        return ws

    async def close_all(self) -> None:
        """On shutdown: tell every widget to reconnect (to another replica)."""
        await asyncio.gather(
            *(s.close(WSCloseCode.GOING_AWAY, "server shutting down") for s in list(self._sockets))
        )


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.json_response(
        body, status=status, headers={**CORS, "Cache-Control": "no-store"}, dumps=_dumps
    )


def _dumps(value: Any) -> str:
    return _encode(value).decode()
