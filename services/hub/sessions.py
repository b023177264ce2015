"""One agent's websocket: client frames in, queue events and acks out through one bounded
buffer.

Per followed queue the session keeps a cursor (the last entry id it queued). Following a
queue registers with the process's feed first, then catches up from the stream after the
client's resume id; live entries that arrive meanwhile are held and released after the
catch-up, skipping what the catch-up already sent. So a client gets every entry after its
resume id once, in stream order, whatever races between the feed and the catch-up.

What the socket sends goes through ``outbox`` (bounded) and its writer task; live entries and
replies are put without waiting, and a full buffer closes the socket with
``CLOSE_SLOW_CONSUMER``. Only the catch-up waits for room (it is this socket's own task), up to
``catch_up_timeout``. A live entry skips the outbox when nothing waits in it or is being
written and the socket's transport holds nothing unsent: the feed writes it itself, which then
completes without waiting on the peer (see :data:`DIRECT_FRAME_MAX`) and saves the writer's
wake-up per socket and entry.

Once the agent reports presence, the socket keeps the agent's presence lease alive, and shows
the agent's offers as Redis has them whenever the inbox says they changed
(:mod:`services.hub.assignment`); when it closes, the lease runs out after the grace period
unless the agent reconnects.

A supervisor's socket also gets its queues' figures pushed (a ``figures`` frame without an
``id``): a burst of entries of a followed queue is gathered for ``figures_debounce`` seconds
into one read and one push, and every ``figures_every`` seconds the figures are read again and
pushed if they differ from the last ones sent (agents' presence and the day's turn reach no
stream). A ``figures`` request is still answered at once (the page's first load).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.logs import get_logger
from libs.common.pubsub import FailureStreak, raise_if_cancelled
from libs.common.socket_frames import FrameError
from libs.contracts.agent_access import AgentClaims
from libs.contracts.chat_mailbox import START, entry_order
from services.hub import protocol
from services.hub.actions import ActionPublisher, Rejected
from services.hub.agent_sockets import AgentInbox
from services.hub.assignment import Assigner
from services.hub.customer_view import CustomerViews, OutsideQueues, UnknownConversation
from services.hub.feeds import Feeds
from services.hub.figures import Figures
from services.hub.groups import AssignmentGroups
from services.hub.incidents import IncidentAnswers, Incidents
from services.hub.open_conversations import OpenConversations
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts

log = get_logger(__name__)
CLOSE_TIMEOUT: Final = 5.0
DIRECT_FRAME_MAX: Final = 8 * 1024
"""Characters of a live entry the feed may write itself: at most 32 KiB of UTF-8, so a write
into an empty transport stays below asyncio's 64 KiB high-water mark and aiohttp never waits
to drain it (a feed must not wait on one slow peer)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-socket bounds on what one agent can make this process hold or do."""

    max_frame_bytes: int = 64 * 1024
    heartbeat: float = 25.0
    send_buffer: int = 1024  # frames queued for the socket before it counts as slow
    catch_up_batch: int = 200
    catch_up_timeout: float = 30.0
    snapshot_limit: int = 500
    socket_send_buffer: int | None = None  # SO_SNDBUF of agent sockets; None: the kernel's
    retry_seconds: float = 1.0  # between reads of the agent's offers after Redis failed
    max_read_failures: int = 30  # failed reads in a row before the socket is closed
    figures_debounce: float = 1.0  # a supervisor's figures: entries gathered into one push
    figures_every: float = 15.0  # and read again this often without entries


@dataclass(slots=True)
class _Cursor:
    position: str = START
    live: bool = False
    held: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Services:
    """What sessions share in one process."""

    streams: QueueStreams
    feeds: Feeds
    conversations: OpenConversations
    customers: CustomerViews
    transcripts: Transcripts
    figures: Figures
    actions: ActionPublisher
    incidents: Incidents
    answers: IncidentAnswers
    assigner: Assigner
    groups: AssignmentGroups
    inbox: AgentInbox
    limits: Limits
    clock: Clock


class AgentSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        claims: AgentClaims,
        services: Services,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self._ws = ws
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._writing = False  # the writer task is sending a frame from the outbox
        self._claims = claims
        self._services = services
        self._limits = services.limits
        self._outbox: asyncio.Queue[str] = asyncio.Queue(self._limits.send_buffer)
        self._cursors: dict[str, _Cursor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._status: str | None = None  # the presence this socket last showed
        self._assignment_group: str | None = None  # where its presence went
        self._shown: set[str] = set()  # offers this socket sent that may still be open
        self._notified = asyncio.Event()
        self._figures_changed = asyncio.Event()
        self._figures_sent: list[dict[str, Any]] | None = None  # without the ticking wait
        self._close_request: asyncio.Future[tuple[int, str]] = (
            asyncio.get_running_loop().create_future()
        )

    @property
    def agent(self) -> str:
        return self._claims.agent

    def request_close(self, code: int, reason: str) -> None:
        """Close the socket soon (from any callback); the first request wins."""
        if not self._close_request.done():
            self._close_request.set_result((code, reason))

    async def run(self) -> None:
        """Serve the socket until either side closes it."""
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, self._claims.expires_at - self._services.clock().timestamp()),
            self.request_close,
            protocol.CLOSE_TOKEN_EXPIRED,
            "token expired",
        )
        self._push(
            protocol.hello(
                self.agent,
                self._claims.queues,
                self._claims.expires_at,
                self._services.actions.issue_types(),
            )
        )
        writer = asyncio.create_task(self._write(), name=f"hub writer {self.agent}")
        closer = asyncio.create_task(self._closer(), name=f"hub closer {self.agent}")
        if self._claims.role == "supervisor":
            self._own(asyncio.create_task(self._push_figures(), name=f"hub figures {self.agent}"))
        try:
            await self._read()
        finally:
            expiry.cancel()
            for queue in list(self._cursors):
                self._services.feeds.unfollow(queue, self)
            if self._status is not None:
                await self._detach()
            tasks = [writer, closer, *self._tasks]
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("hub session task failed", agent=self.agent, error=repr(result))
            if not self._ws.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT)

    # --- client -> hub ----------------------------------------------------------------------

    async def _read(self) -> None:
        while not self._ws.closed:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                await self._on_frame(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, or ERROR (aiohttp closed it, e.g. 1009)
                if msg.type is WSMsgType.ERROR:
                    metrics.hub_closes.labels("protocol_error").inc()
                return

    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            message = protocol.parse(raw)
        except FrameError as exc:
            self._push(protocol.error(exc.code, exc.message, exc.client_id))
            return
        if isinstance(message, protocol.Subscribe):
            self._subscribe(message)
        elif isinstance(message, protocol.Action):
            # One action at a time per socket: an agent's actions reach Kafka in order.
            self._push(await self._services.actions.perform(self._claims, message))
        elif isinstance(message, protocol.Customer):
            self._push(await self._customer(message))
        elif isinstance(message, protocol.Transcript):
            self._push(await self._transcript(message))
        elif isinstance(message, protocol.Figures):
            self._push(await self._figures(message))
        elif isinstance(message, protocol.AnswerIncident):
            self._push(await self._services.answers.answer(self._claims, message))
        else:
            self._push(await self._assignment(message))

    def _subscribe(self, message: protocol.Subscribe) -> None:
        forbidden = sorted(set(message.queues) - self._claims.queues)
        if forbidden:
            self.request_close(protocol.CLOSE_QUEUE_FORBIDDEN, f"queue not allowed: {forbidden[0]}")
            return
        for queue, after in message.queues.items():
            if queue in self._cursors:
                self._push(protocol.error("already_subscribed", f"already following {queue}", None))
                continue
            self._cursors[queue] = _Cursor()
            self._own(asyncio.create_task(self._follow(queue, after), name=f"hub follow {queue}"))

    def _own(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, TimeoutError):  # the catch-up found no room for its timeout
            self._slow()
        elif exc is not None:
            log.error("hub session task failed", agent=self.agent, error=repr(exc))
            self.request_close(protocol.CLOSE_INTERNAL_ERROR, "internal error")

    async def _customer(self, message: protocol.Customer) -> str:
        try:
            view = await self._services.customers.view(message.conversation_id, self._claims.queues)
        except UnknownConversation:
            return protocol.error("unknown_conversation", "no such conversation", message.id)
        except OutsideQueues:
            return protocol.error("forbidden", "conversation not in your queues", message.id)
        except RedisError as exc:
            log.warning("customer view failed", agent=self.agent, error=repr(exc))
            return protocol.error("unavailable", "try again", message.id, retry=True)
        return protocol.customer(message.id, message.conversation_id, view)

    async def _transcript(self, message: protocol.Transcript) -> str:
        services = self._services
        try:
            queue = await services.conversations.queue_of(message.conversation_id)
            if queue is None:
                return protocol.error("unknown_conversation", "no such conversation", message.id)
            if queue not in self._claims.queues:
                return protocol.error("forbidden", "conversation not in your queues", message.id)
            entries, more = await services.transcripts.page(
                message.conversation_id, message.before, message.limit
            )
        except RedisError as exc:
            log.warning("transcript read failed", agent=self.agent, error=repr(exc))
            return protocol.error("unavailable", "try again", message.id, retry=True)
        return protocol.transcript(message.id, message.conversation_id, entries, more)

    async def _figures(self, message: protocol.Figures) -> str:
        if self._claims.role != "supervisor":
            return protocol.error("forbidden", "figures are for supervisor tokens", message.id)
        try:
            return await self._read_figures(message.id)
        except RedisError as exc:
            log.warning("figures read failed", agent=self.agent, error=repr(exc))
            return protocol.error("unavailable", "try again", message.id, retry=True)

    async def _read_figures(self, client_id: str | None) -> str:
        now = self._services.clock()
        queues = await self._services.figures.read(sorted(self._claims.queues), now)
        self._figures_sent = _steady(queues)
        return protocol.figures(client_id, now, queues)

    async def _push_figures(self) -> None:
        """Push the figures after entries of the followed queues (gathered for the debounce),
        or when a periodic read finds them changed."""
        limits = self._limits
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._figures_changed.wait(), limits.figures_every)
            changed = self._figures_changed.is_set()
            if changed:
                await asyncio.sleep(limits.figures_debounce)
            self._figures_changed.clear()
            before = self._figures_sent
            try:
                frame = await self._read_figures(None)
                raise_if_cancelled()
            except RedisError as exc:
                raise_if_cancelled()
                log.warning("figures not pushed", agent=self.agent, error=repr(exc))
                continue
            if changed or self._figures_sent != before:
                self._push(frame)

    # --- assignment --------------------------------------------------------------------------

    async def _assignment(
        self, message: protocol.Presence | protocol.Accept | protocol.Decline
    ) -> str:
        """The reply to a presence, accept or decline frame."""
        assigner = self._services.assigner
        offer_id = None if isinstance(message, protocol.Presence) else message.offer_id
        try:
            if isinstance(message, protocol.Presence):
                self._assignment_group = self._services.groups.of_agent(self._claims.queues)
                await assigner.presence(
                    self._assignment_group,
                    self._claims,
                    message.status,
                    message.capacity,
                    skills=message.skills,
                    languages=message.languages,
                )
                self._present(message.status)
                return protocol.presence(message.status, None)
            if isinstance(message, protocol.Decline):
                await assigner.decline(self._group(), self.agent, message.offer_id)
                return protocol.offer_ack(message.offer_id)
            conversation = await assigner.accept(self._group(), self.agent, message.offer_id)
        except Rejected as exc:
            return protocol.error(exc.code, exc.message, offer_id, retry=exc.retry)
        except RedisError as exc:
            log.warning("assignment change failed", agent=self.agent, error=repr(exc))
            return protocol.error("unavailable", "try again", offer_id, retry=True)
        # The offer id is the claim's client id: a repeated accept is the same claim.
        claim = protocol.Action(id=message.offer_id, kind="claim", conversation_id=conversation)
        return await self._services.actions.perform(self._claims, claim)

    def _group(self) -> str:
        """The agent's assignment group, as its presence here found it (:class:`Rejected`
        when its queues span several): a reload does not move a live session's agent."""
        if self._assignment_group is None:
            return self._services.groups.of_agent(self._claims.queues)
        return self._assignment_group

    def _present(self, status: str) -> None:
        first = self._status is None
        self._status = status
        if first:
            self._services.inbox.register(self)
            self._own(asyncio.create_task(self._sync(), name=f"hub offers {self.agent}"))
            self._own(asyncio.create_task(self._keep_lease(), name=f"hub lease {self.agent}"))
        self.notify()

    def notify(self) -> None:
        self._notified.set()

    async def _sync(self) -> None:
        """After every notice, show the agent's offers and presence as Redis has them."""
        failures = FailureStreak(self._limits.max_read_failures)
        while True:
            await self._notified.wait()
            self._notified.clear()
            try:
                view = await self._services.assigner.view(
                    self._group(), self.agent, set(self._shown)
                )
                raise_if_cancelled()
                failures.succeeded()
            except RedisError as exc:
                if failures.failed():
                    log.error("agent offers unreadable; closing", agent=self.agent, error=repr(exc))
                    self.request_close(protocol.CLOSE_UNAVAILABLE, "offers unavailable")
                    return
                log.warning("agent offers not read; retrying", agent=self.agent, error=repr(exc))
                self._notified.set()
                await asyncio.sleep(self._limits.retry_seconds)
                continue
            for offer_id, state in view.ended.items():
                self._shown.discard(offer_id)
                if state in ("expired", "withdrawn"):
                    self._push(protocol.offer_revoked(offer_id, state))
            for offer in view.offers:
                if offer.offer_id not in self._shown:
                    self._shown.add(offer.offer_id)
                    self._push(
                        protocol.offer(
                            offer.offer_id, offer.queue, offer.expires_at, offer.conversation
                        )
                    )
            if view.status is not None and view.status != self._status:
                self._status = view.status
                self._push(protocol.presence(view.status, view.reason))

    async def _keep_lease(self) -> None:
        """Keep the agent present while this socket is open (a few renewals per grace)."""
        assigner = self._services.assigner
        while True:
            await asyncio.sleep(assigner.policy.grace / 3)
            try:
                await assigner.alive(self._group(), self.agent)
                raise_if_cancelled()
            except RedisError as exc:
                raise_if_cancelled()
                log.warning("agent presence not renewed", agent=self.agent, error=repr(exc))

    async def _detach(self) -> None:
        """The socket closed: the agent's presence lasts the grace period from now."""
        self._services.inbox.unregister(self)
        if self._status == "offline":
            return
        try:
            await asyncio.wait_for(
                self._services.assigner.alive(self._group(), self.agent, detached=True), 2.0
            )
        except (RedisError, TimeoutError, Rejected) as exc:
            log.warning("agent presence not detached", agent=self.agent, error=repr(exc))

    # --- queue -> client --------------------------------------------------------------------

    async def _follow(self, queue: str, after: str | None) -> None:
        services, cursor = self._services, self._cursors[queue]
        await services.feeds.follow(queue, self)
        if after is not None and await services.streams.can_resume(queue, after):
            cursor.position = after
            await self._put(protocol.frame("subscribed", queue=queue, after=after))
        else:
            if after is not None:
                await self._put(
                    protocol.frame(
                        "resync", queue=queue, after=after, reason="events after this id are gone"
                    )
                )
            # Position first: every entry up to it is already reflected in the snapshot.
            cursor.position = await services.streams.last_id(queue)
            conversations = await services.conversations.snapshot(
                queue, self._limits.snapshot_limit
            )
            await self._put(
                protocol.frame(
                    "snapshot",
                    queue=queue,
                    id=cursor.position,
                    conversations=conversations,
                    incidents=await services.incidents.open_in(queue),
                )
            )
        while True:
            entries = await services.streams.read_after(
                queue, cursor.position, self._limits.catch_up_batch
            )
            for entry_id, payload in entries:
                await self._put(protocol.event(queue, entry_id, payload))
                cursor.position = entry_id
                metrics.hub_events_sent.inc()
            if len(entries) < self._limits.catch_up_batch:
                break
        held, cursor.held, cursor.live = cursor.held, [], True
        sent = 0
        for entry_id, frame in held:
            sent += await self.on_entry(queue, entry_id, frame)
        metrics.hub_events_sent.inc(sent)

    async def on_entry(self, queue: str, entry_id: str, frame: str) -> bool:
        """Send or queue a new entry of ``queue``; whether it was sent or queued (the caller
        counts those once per entry rather than once per socket)."""
        cursor = self._cursors.get(queue)
        if cursor is None:
            return False
        if not cursor.live:
            if len(cursor.held) >= self._limits.send_buffer:
                self._slow()
                return False
            cursor.held.append((entry_id, frame))
            return False
        if entry_order(entry_id) <= entry_order(cursor.position):
            return False  # the catch-up sent it already
        cursor.position = entry_id
        self._figures_changed.set()  # only a supervisor's socket reads it
        if self._can_write_now(frame):
            try:
                await self._ws.send_str(frame)
            except ConnectionError:
                self.request_close(protocol.CLOSE_GOING_AWAY, "write failed")
            except Exception as exc:  # on the feed's task: the queue's other sockets go on
                log.error("hub socket write failed", agent=self.agent, error=repr(exc))
                self.request_close(protocol.CLOSE_INTERNAL_ERROR, "internal error")
        else:
            self._push(frame)
        return True

    def _can_write_now(self, frame: str) -> bool:
        """Whether ``frame`` can be written at once, in order and without waiting."""
        transport = self._transport
        return (
            transport is not None
            and not self._writing
            and self._outbox.empty()
            and len(frame) <= DIRECT_FRAME_MAX
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def _push(self, frame: str) -> None:
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self._slow()

    async def _put(self, frame: str) -> None:
        await asyncio.wait_for(self._outbox.put(frame), self._limits.catch_up_timeout)

    def _slow(self) -> None:
        if not self._close_request.done():
            metrics.hub_slow_consumer_disconnects.inc()
        self.request_close(protocol.CLOSE_SLOW_CONSUMER, "slow consumer: resume from your last id")

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._outbox.get()
                self._writing = True
                await self._ws.send_str(frame)
                self._writing = False
        except ConnectionError:
            self.request_close(protocol.CLOSE_GOING_AWAY, "write failed")

    async def _closer(self) -> None:
        code, reason = await self._close_request
        metrics.hub_closes.labels(reason.split(":")[0].replace(" ", "_")).inc()
        # The close frame goes out now, ahead of what the outbox still holds; a peer that
        # does not take it is cut off when the timeout cancels the close.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode()[:120]), CLOSE_TIMEOUT
            )


def _steady(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Figures without the oldest wait, which grows by itself (clients count it on)."""
    return [{k: v for k, v in queue.items() if k != "oldest_wait_seconds"} for queue in queues]


def limit_send_buffer(request: web.Request, size: int | None) -> None:
    """Cap the kernel's send buffer of the socket, so a stalled peer fills our bounded buffer
    after about ``size`` bytes instead of after whatever the kernel would hold for it."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size is not None and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
