"""Push assignment: agents report presence and capacity per channel, and the hub offers each
queue's most urgent unassigned conversation to an available agent with free capacity.

All assignment state lives in Redis (keys ``hub:agent``, ``hub:agents``, ``hub:assigned``,
``hub:offer``, ``hub:offers``, ``hub:waiting``, ``hub:declined``; see :mod:`libs.common.keys`),
in the slot of the queue's assignment group (:mod:`services.hub.groups`; an agent's queues are
all in one), and every change is one call of one Lua script, so hub replicas behind a plain load
balancer cooperate without a leader: an assignment pass over a queue is atomic, and two replicas
running it at once can never offer the same conversation twice. Every replica runs one task per
queue that makes a pass when something changed here (a conversation fanned out, a presence, an
accept, a decline, a resolution) and otherwise sleeps until the queue's next deadline (the
earliest offer expiry or presence lease of a detached agent), at most ``offer_seconds``: so
offers expire on time even when the replica that made them is gone.

A pass: offers past their expiry end (the conversation goes back to the queue and is not
offered to that agent again for a while; an agent that lets ``misses`` offers in a row expire
counts as offline), agents whose presence lease ran out (no socket for ``grace`` seconds) go
offline, then the waiting conversations, soonest breach first, are offered to online agents
with free capacity on the conversation's channel: the most free capacity first, the least
recently offered among equals (round robin). An agent going offline returns what it held to
its queues without publishing anything: the SLA clocks run on untouched.

Requirements: a conversation the router gave ``requires`` (skills, a language) is offered only
to agents holding every skill and speaking the language (their token's claims, narrowed by
their presence), the one meeting the most of them first. The queue's relaxation ladder
(:mod:`services.hub.ladder`) drops requirements step by step as the conversation waits; the
pass records the step each conversation is on (``step`` in its summary) and tells of each step
taken: a transcript entry and a ``relaxed`` entry of the queue's stream (so agents' and
supervisors' sockets hear of it at once, and supervisors' figures are pushed). The script
keeps the steps taken in ``hub:relaxed:{queue}`` until they are told of, so a step is told of
even when the pass that took it failed afterwards (its retry, or any replica's next pass, tells
of it), and markers keyed by conversation, step and time taken make telling again harmless.
For supervisors, the pass records the conversations no online agent can take at their step
(``hub:unmet:{queue}``); it walks past those (up to ``reach``) so they do not hold back the
ones behind them. A pass wakes again when a waiting conversation's next step is due.

Agents learn of changes through the ``hub:notify:{agent}`` pub/sub channel (only a wake-up:
sockets then read the agent's outstanding offers from Redis, so a lost notice costs latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.backoff import Backoff
from libs.common.clock import Clock, system_clock
from libs.common.config.schema import RequirementName
from libs.common.events import Channel
from libs.common.keys import Keys
from libs.common.logs import get_logger
from libs.common.pubsub import raise_if_cancelled
from libs.common.redis_client import as_text, load_script, publish_each
from libs.common.settings import Settings
from libs.contracts.agent_access import AgentClaims
from services.hub import transcript
from services.hub.actions import Rejected
from services.hub.ladder import Ladder
from services.hub.open_conversations import SUMMARY_TTL, OpenConversations
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts

log = get_logger(__name__)
Status = Literal["online", "away", "offline"]
ENDED_STATES: Final = ("accepted", "declined", "expired", "withdrawn")
PASS_BACKOFF: Final = Backoff(base=0.2, cap=5.0)


@dataclass(frozen=True, slots=True)
class AssignmentPolicy:
    """How offers behave, resolved once from the settings."""

    offer_seconds: float
    misses: int
    grace: float
    scan: int = 100  # waiting conversations looked at per pass
    reach: int = 1000  # ... walking past those whose requirements nobody online meets
    batch: int = 16  # offers made per pass at most (a full batch runs another pass at once)

    @classmethod
    def from_settings(cls, settings: Settings) -> AssignmentPolicy:
        return cls(
            offer_seconds=settings.hub_offer_seconds,
            misses=settings.hub_offer_misses,
            grace=settings.hub_presence_grace,
        )

    @property
    def declined_ms(self) -> int:
        """How long an agent who declined or ignored a conversation is not offered it again."""
        return int(self.offer_seconds * 10 * 1000)


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    queue: str
    expires_at: float  # Unix seconds
    conversation: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AgentView:
    """What one agent's sockets show: its presence, its outstanding offers, and how the
    offers it was shown before ended."""

    status: str | None
    reason: str | None
    offers: list[Offer]
    ended: dict[str, str]


@dataclass(frozen=True, slots=True)
class StepTaken:
    """A conversation took a step of its queue's relaxation ladder at ``at_ms``."""

    conversation_id: str
    step: int
    at_ms: int

    @property
    def event_id(self) -> str:
        """The same for every pass and replica that tells of this step."""
        return f"relaxed:{self.conversation_id}:{self.step}:{self.at_ms}"


class RelaxedData(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    dropped: tuple[RequirementName, ...]
    text: str


class RelaxedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A ``relaxed`` entry of a queue's stream, shaped like the fan-out's entries (the
    ``event`` frame adds ``queue`` and ``id``); no Kafka event caused it."""

    kind: Literal["relaxed"] = "relaxed"
    event_id: str
    event_type: Literal["hub.relaxed"] = "hub.relaxed"
    time: datetime
    conversation_id: str
    data: RelaxedData


_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: str
    detail: str
    made: list[str]
    next_at: float | None
    more: bool
    relaxed: list[StepTaken]
    """Ladder steps taken (in this pass or one that failed after) not yet told of."""


class Assigner:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        conversations: OpenConversations,
        policy: AssignmentPolicy,
        queues: Callable[[], frozenset[str]],
        transcripts: Transcripts,
        streams: QueueStreams,
        ladder: Callable[[str], Ladder] = lambda queue: Ladder(),
        clock: Clock = system_clock,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._conversations = conversations
        self._policy = policy
        self._queues = queues
        self._transcripts = transcripts
        self._streams = streams
        self._ladder = ladder
        self._clock = clock
        self._groups = conversations.groups
        self._script = redis.register_script(load_script("services.hub", "assign.lua"))
        self._prefixes: dict[str, tuple[str, ...]] = {}  # per group: see _prefixes_of
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failure: asyncio.Future[None] | None = None
        self._stopped = False

    @property
    def policy(self) -> AssignmentPolicy:
        return self._policy

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Make passes over every queue until cancelled. A queue's task that fails ends this
        with its error (the hub's health fails) rather than leaving the queue unassigned."""
        self._failure = asyncio.get_running_loop().create_future()
        for queue in self._queues():
            self.wake(queue)
        try:
            await self._failure
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("hub assigner failed", error=repr(result))

    def wake(self, queue: str) -> None:
        """Something changed in ``queue``: make a pass over it soon (starting its task)."""
        event = self._wakes.setdefault(queue, asyncio.Event())
        event.set()
        if queue not in self._tasks and not self._stopped:
            task = asyncio.create_task(self._run(queue), name=f"hub assign {queue}")
            task.add_done_callback(self._ended)
            self._tasks[queue] = task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._failure is None or self._failure.done() or task.cancelled():
            return
        if (error := task.exception()) is not None:
            self._failure.set_exception(error)

    async def _run(self, queue: str) -> None:
        event, failures = self._wakes[queue], 0
        while True:
            event.clear()
            try:
                outcome = await self._pass(queue)
                raise_if_cancelled()
                failures = 0
            except RedisError as exc:
                raise_if_cancelled()
                failures += 1
                log.warning("hub assignment pass failed; retrying", queue=queue, error=repr(exc))
                await asyncio.sleep(PASS_BACKOFF.delay(failures))
                continue
            if outcome.more:
                continue
            timeout = self._policy.offer_seconds
            if outcome.next_at is not None:
                timeout = min(timeout, max(0.0, outcome.next_at - self._clock().timestamp()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    async def _pass(self, queue: str) -> _Outcome:
        policy, ladder = self._policy, self._ladder(queue)
        group = self._groups.of_queue(queue)
        outcome = await self._call(
            group,
            "pass",
            queue,
            int(policy.offer_seconds * 1000),
            policy.misses,
            policy.declined_ms,
            policy.scan,
            policy.reach,
            ladder.as_argument(),
            *(uuid.uuid4().hex for _ in range(policy.batch)),
            running=queue,
            keys=[self._keys.hub_unmet(group, queue), self._keys.hub_relaxed(group, queue)],
        )
        for taken in outcome.relaxed:
            await self._tell(group, queue, ladder, taken)
        return outcome

    async def _tell(self, group: str, queue: str, ladder: Ladder, taken: StepTaken) -> None:
        """A ladder step into the conversation's transcript and onto the queue's stream (both
        keyed by the step, so telling again changes nothing), then off the untold ones."""
        step, text = taken.step, ladder.describe(taken.step)
        at = datetime.fromtimestamp(taken.at_ms / 1000, UTC)
        await self._transcripts.record(
            taken.conversation_id, transcript.relaxed(queue, step, text, at)
        )
        entry = RelaxedEntry(
            event_id=taken.event_id,
            time=at,
            conversation_id=taken.conversation_id,
            data=RelaxedData(step=step, dropped=tuple(sorted(ladder.dropped(step))), text=text),
        )
        await self._streams.append(queue, taken.event_id, _encode(entry))
        told = await self._redis.hdel(
            self._keys.hub_relaxed(group, queue), f"{taken.conversation_id} {step}"
        )
        if told:  # counted once, by whichever pass told of it first
            metrics.hub_ladder_steps.labels(queue, str(step)).inc()

    async def pass_now(self, queue: str) -> list[str]:
        """One assignment pass over ``queue`` now, outside its task (a benchmark's offer
        decision); the offers it made."""
        return (await self._pass(queue)).made

    # --- changes ----------------------------------------------------------------------------

    async def presence(
        self,
        group: str,
        claims: AgentClaims,
        status: Status,
        capacity: Mapping[Channel, int],
        skills: frozenset[str] | None = None,
        languages: frozenset[str] | None = None,
    ) -> None:
        """The agent's presence in its assignment ``group``, its capacity and what it answers
        now: ``skills`` and ``languages`` narrow its token's (None: all of them; more is
        :class:`Rejected`)."""
        held = _within(claims.skills, skills, "skills")
        spoken = _within(claims.languages, languages, "languages")
        pairs = [x for channel, count in sorted(capacity.items()) for x in (channel, count)]
        await self._call(
            group,
            "presence",
            claims.agent,
            status,
            self._lease_end(),
            " ".join(sorted(claims.queues)),
            " ".join(sorted(held)),
            " ".join(sorted(spoken)),
            *pairs,
        )

    async def alive(self, group: str, agent: str, *, detached: bool = False) -> None:
        """Extend the agent's presence lease (``detached``: its last socket here closed)."""
        await self._call(group, "alive", agent, self._lease_end(), "1" if detached else "")

    async def accept(self, group: str, agent: str, offer_id: str) -> str:
        """Take an outstanding offer; returns its conversation (again on a repeat)."""
        outcome = await self._call(group, "accept", agent, offer_id, self._policy.declined_ms)
        self._raise_unless_ok(outcome)
        return outcome.detail

    async def decline(self, group: str, agent: str, offer_id: str) -> None:
        self._raise_unless_ok(
            await self._call(group, "decline", agent, offer_id, self._policy.declined_ms)
        )

    async def claimed(self, conversation_id: str, agent: str, at: datetime) -> None:
        """A claim made ``at`` reached Kafka: the conversation is the agent's (whoever it was
        offered to), unless the agent went offline after claiming it, which returned it."""
        group = await self._conversations.group_of(conversation_id)
        if group is not None:  # else the hub has not seen it: nothing is offered or held
            await self._call(
                group, "claimed", conversation_id, agent, SUMMARY_TTL, int(at.timestamp() * 1000)
            )

    async def dropped(self, conversation_id: str, group: str | None = None) -> None:
        """Resolved or transferred: whoever held or was offered it (in ``group``, by default
        the one holding it) is free of it."""
        group = group or await self._conversations.group_of(conversation_id)
        if group is not None:
            await self._call(group, "dropped", conversation_id)

    @staticmethod
    def _raise_unless_ok(outcome: _Outcome) -> None:
        if outcome.status == "unknown_offer":
            raise Rejected("unknown_offer", "no such offer for you")
        if outcome.status == "offer_gone":
            raise Rejected("offer_expired", f"the offer is no longer open ({outcome.detail})")

    def _lease_end(self) -> int:
        return int((self._clock().timestamp() + self._policy.grace) * 1000)

    async def _call(
        self,
        group: str,
        op: str,
        *args: str | int,
        running: str | None = None,
        keys: Sequence[str] = (),
    ) -> _Outcome:
        prefixes = self._prefixes_of(group)
        reply: Any = await self._script(
            keys=[prefixes[-1], *keys],  # the round-robin sequence routes to the group's slot
            args=[op, int(self._clock().timestamp() * 1000), *prefixes, *args],
        )
        (status, detail, made, agents, queues, next_ms, *counts, more, online, relaxed) = reply
        for outcome, count in zip(ENDED_STATES, counts, strict=True):
            if count:
                metrics.hub_offers.labels(outcome).inc(int(count))
        if made:
            metrics.hub_offers.labels("made").inc(len(made))
        if running is not None:
            metrics.hub_agents_online.labels(running).set(int(online))
        if agents:
            notices = [self._keys.hub_notify(as_text(agent)) for agent in agents]
            await publish_each(self._redis, notices, b"")
        for queue in map(as_text, queues):
            if queue != running:  # the running pass has seen its own changes
                self.wake(queue)
        return _Outcome(
            status=as_text(status),
            detail=as_text(detail),
            made=[as_text(m) for m in made],
            next_at=int(next_ms) / 1000 if next_ms else None,
            more=bool(more),
            relaxed=[
                StepTaken(conversation, int(step), int(at_ms))
                for (conversation, step), at_ms in zip(
                    (as_text(field).rsplit(" ", 1) for field in relaxed[::2]),
                    relaxed[1::2],
                    strict=True,
                )
            ],
        )

    def _prefixes_of(self, group: str) -> tuple[str, ...]:
        """The group's key prefixes as ``assign.lua`` takes them, the round-robin sequence
        last; made once per group."""
        prefixes = self._prefixes.get(group)
        if prefixes is None:
            k = self._keys
            prefixes = self._prefixes[group] = (
                k.hub_agent(group, ""),
                k.hub_agents(group, ""),
                k.hub_assigned(group, ""),
                k.hub_offer(group, ""),
                k.hub_offers(group, ""),
                k.hub_waiting(group, ""),
                k.hub_conversation(group, ""),
                k.hub_open(group, ""),
                k.hub_declined(group, ""),
                k.hub_offer_sequence(group),
            )
        return prefixes

    # --- reading ----------------------------------------------------------------------------

    async def view(self, group: str, agent: str, shown: set[str]) -> AgentView:
        """The agent's presence and outstanding offers; ``shown`` are offers its socket sent
        before, and ``ended`` says how those that are no longer outstanding ended."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._keys.hub_agent(group, agent), ["status", "reason"])
            pipe.hvals(self._keys.hub_assigned(group, agent))
            status, held = await pipe.execute()
        offer_ids = {as_text(v).partition("|")[2] for v in held} - {""}
        ids = sorted(offer_ids | shown)
        async with self._redis.pipeline(transaction=False) as pipe:
            for offer_id in ids:
                pipe.hgetall(self._keys.hub_offer(group, offer_id))
            raws = await pipe.execute()
        records = {
            offer_id: {as_text(k): as_text(v) for k, v in raw.items()}
            for offer_id, raw in zip(ids, raws, strict=True)
        }
        open_ids = sorted(
            (i for i in ids if records[i].get("state") == "offered" and i in offer_ids),
            key=lambda i: int(records[i]["seq"]),  # in the order they were made
        )
        summaries = await self._conversations.summaries(
            [records[i]["conversation"] for i in open_ids]
        )
        return AgentView(
            status=as_text(status[0]) if status[0] is not None else None,
            reason=as_text(status[1]) or None if status[1] is not None else None,
            offers=[
                Offer(
                    offer_id=i,
                    queue=records[i]["queue"],
                    expires_at=int(records[i]["expires"]) / 1000,
                    conversation=summary,
                )
                for i, summary in zip(open_ids, summaries, strict=True)
            ],
            ended={i: records[i].get("state", "expired") for i in shown if i not in open_ids},
        )


def _within(allowed: frozenset[str], asked: frozenset[str] | None, name: str) -> frozenset[str]:
    """What the presence asks, if the token allows it."""
    if asked is None:
        return allowed
    if beyond := sorted(asked - allowed):
        raise Rejected("forbidden", f"the token does not grant {name} {', '.join(beyond)}")
    return asked
