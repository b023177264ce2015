"""Simulated agents: they follow the queues through the hub and answer at a chosen speed.

Each agent holds one hub connection (:class:`~tooling.hubclient.HubClient`) subscribed to
every queue, and takes the conversations that hash to it (a stand-in for a team splitting the
work, so two agents never answer the same customer). A new conversation is claimed, answered
after a handling time drawn around ``handle_seconds``, and resolved with a probability, so
first-response clocks are met when agents keep up and breached when they do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tooling.hubclient import ActionFailed, HubClient, HubClosed

FOLLOW_TIMEOUT = 30.0
"""Seconds for the hub to answer a subscription with each queue's snapshot."""
REPLY_TEXT = "Thanks for waiting about {reference}: I have looked into it ({number}), all sorted."
"""Each reply differs (its conversation, a running number): X refuses the same text twice
from one account, and a conversation can be answered more than once."""


@dataclass(frozen=True, slots=True)
class AgentPlan:
    agents: int = 4
    handle_seconds: float = 20.0
    """Mean seconds from a conversation reaching an agent to the agent's reply."""
    resolve_share: float = 0.8
    """Share of answered conversations the agent then resolves."""


@dataclass
class AgentStats:
    replies: int = 0
    resolved: int = 0
    failed_actions: int = 0
    reconnects: int = 0
    holding: int = 0
    """Conversations in some agent's hands (still to answer or resolve)."""
    resolved_on: dict[str, int] = field(default_factory=dict)
    """Resolutions by the conversation's channel."""
    last_resolution: float | None = None
    """When the latest resolution was acknowledged (monotonic seconds)."""


@dataclass(order=True)
class _Due:
    at: float
    kind: str = field(compare=False)
    conversation_id: str = field(compare=False)


class SimulatedAgent:
    def __init__(
        self,
        index: int,
        plan: AgentPlan,
        client: HubClient,
        queues: Iterable[str],
        stats: AgentStats,
        rng: random.Random,
        arrived: Callable[[str], None],
    ) -> None:
        self._index = index
        self._arrived = arrived
        self._plan = plan
        self._client = client
        self._queues = sorted(queues)
        self._stats = stats
        self._rng = rng
        self._due: list[_Due] = []
        self._mine: dict[str, tuple[str, str]] = {}
        """Conversations in hand -> their reference and channel."""

    def _is_mine(self, conversation_id: str) -> bool:
        return zlib.crc32(conversation_id.encode()) % self._plan.agents == self._index

    async def run(self, stop: asyncio.Event, following: Callable[[], None]) -> None:
        """Work until ``stop``; call ``following`` once the hub follows every queue for us."""
        await self._client.connect()
        await self._client.subscribe(self._queues)
        with contextlib.suppress(TimeoutError):  # a hub that slow: start all the same
            await self._until_following()
        following()
        while not stop.is_set():
            try:
                await self._step()
            except HubClosed:
                if stop.is_set():
                    break
                self._stats.reconnects += 1  # resumes after the last event id it saw
                await self._client.connect()
                await self._client.subscribe(self._queues)

    async def _until_following(self) -> None:
        """Wait for each queue's ``snapshot``: what was routed before it is in the snapshot (no
        message of it is an event), what is routed after it comes as events."""
        waiting = set(self._queues)
        while waiting:
            frame = await self._client.next(timeout=FOLLOW_TIMEOUT)
            if frame.get("type") in ("snapshot", "subscribed"):
                waiting.discard(str(frame.get("queue")))
            elif frame.get("type") == "event":
                self._seen(frame)

    async def _step(self) -> None:
        now = time.monotonic()
        if self._due and self._due[0].at <= now:
            await self._act(heapq.heappop(self._due))
            return
        wait = min(self._due[0].at - now, 1.0) if self._due else 1.0
        try:
            frame = await self._client.next(timeout=wait)
        except TimeoutError:
            return
        if frame.get("type") == "event":
            self._seen(frame)

    def _seen(self, frame: dict[str, Any]) -> None:
        if frame.get("kind") != "routed":
            return
        data = frame.get("data") or {}
        conversation = str(frame.get("conversation_id") or "")
        if not conversation or not self._is_mine(conversation):
            return
        self._arrived(str(data.get("thread_key", "")))
        if conversation in self._mine:
            return  # a later message of a conversation already in hand
        self._mine[conversation] = (str(data.get("reference") or ""), str(data.get("channel")))
        self._stats.holding += 1
        handle = self._rng.expovariate(1 / self._plan.handle_seconds)
        heapq.heappush(self._due, _Due(time.monotonic(), "claim", conversation))
        heapq.heappush(self._due, _Due(time.monotonic() + handle, "reply", conversation))

    async def _act(self, due: _Due) -> None:
        try:
            if due.kind == "reply":
                reference = self._mine.get(due.conversation_id, ("", ""))[0]
                text = REPLY_TEXT.format(reference=reference, number=self._stats.replies + 1)
                await self._client.act("reply", due.conversation_id, text=text)
                self._stats.replies += 1
                if self._rng.random() < self._plan.resolve_share:
                    later = time.monotonic() + self._rng.uniform(1.0, 5.0)
                    heapq.heappush(self._due, _Due(later, "resolve", due.conversation_id))
                else:
                    self._drop(due.conversation_id)
            else:
                await self._client.act(due.kind, due.conversation_id)
                if due.kind == "resolve":
                    self._stats.resolved += 1
                    channel = self._mine.get(due.conversation_id, ("", ""))[1]
                    on = self._stats.resolved_on
                    on[channel] = on.get(channel, 0) + 1
                    self._stats.last_resolution = time.monotonic()
                    self._drop(due.conversation_id)
        except ActionFailed:
            self._stats.failed_actions += 1
            if due.kind != "claim":
                self._drop(due.conversation_id)

    def _drop(self, conversation_id: str) -> None:
        if self._mine.pop(conversation_id, None) is not None:
            self._stats.holding -= 1


async def run_agents(
    plan: AgentPlan,
    *,
    hub_url: str,
    queues: Iterable[str],
    token_for: Callable[[str, list[str]], str],
    stats: AgentStats,
    arrived: Callable[[str], None],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Run ``plan.agents`` agents on the hub at ``hub_url`` until ``stop`` is set; set
    ``ready`` once every agent follows every queue (a message routed before that reaches the
    agents in a snapshot, not as a message: the traffic waits for it)."""
    names = sorted(queues)
    rng = random.Random(3)
    async with aiohttp.ClientSession() as http:
        agents = [
            SimulatedAgent(
                n,
                plan,
                HubClient(hub_url, token_for(f"agent-{n + 1}", names), session=http),
                names,
                stats,
                random.Random(rng.random()),
                arrived,
            )
            for n in range(plan.agents)
        ]
        waiting = len(agents)

        def following() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting == 0 and ready is not None:
                ready.set()

        tasks = [asyncio.create_task(agent.run(stop, following)) for agent in agents]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, HubClosed):
                    await task
