"""Push assignment with skills and languages: one offer decision with 1,000 agents online and
10,000 conversations waiting, next to today's assignment without requirements.

Two queues in one Redis, filled through the hub's own code (``OpenConversations.opened`` for
each conversation, ``Assigner.presence`` for each agent): ``plain`` as assignment ran before
requirements (no agent attributes, no conversation requirements) and ``skills``, where every
agent holds two or three of ten skills and one or two of five languages and every
conversation requires a language and, one time in two, a skill; one conversation in fifty
requires a language nobody speaks, so the pass also walks past conversations it cannot place
(and lists them for supervisors). Both queues have the same relaxation ladder, and every
conversation opened now, so no step is due: what is measured is the matching itself.

An offer decision is one assignment pass (``Assigner.pass_now``, one Lua call plus the
wake-up publish) allowed to make a single offer; the two queues' passes alternate, so both
see the same machine. Agents' capacity is large enough that no pass runs out of agents.

    python -m bench.assignment_skills [--agents 1000 --waiting 10000 --decisions 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis

from bench.harness import bench_stack, report
from libs.common.clock import system_clock
from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP
from libs.common.events import (
    ConversationRouted,
    CustomerIdentity,
    Requirements,
    RoutingExplanation,
)
from libs.common.keys import Keys
from libs.contracts.agent_access import AgentClaims
from services.hub.assignment import Assigner, AssignmentPolicy
from services.hub.groups import AssignmentGroups
from services.hub.ladder import Ladder, LadderStep
from services.hub.open_conversations import OpenConversations
from services.hub.streams import QueueStreams
from services.hub.transcript import Transcripts

SKILLS = [f"skill{i}" for i in range(10)]
LANGUAGES = ["en", "es", "de", "fr", "pt"]
NOBODY_SPEAKS = "fi"
LADDER = Ladder(
    (
        LadderStep(timedelta(minutes=2), frozenset({"skills"})),
        LadderStep(timedelta(minutes=5), frozenset({"skills", "language"})),
    )
)


def routed(queue: str, requires: Requirements | None) -> ConversationRouted:
    conversation_id = uuid.uuid4().hex
    thread = f"sms:+1555{random.randrange(10**7):07d}"
    return ConversationRouted(
        conversation_id=conversation_id,
        reference="SB-BENCH",
        thread_key=thread,
        channel="sms",
        queue=queue,
        priority=2,
        sla_policy=None,
        issue_type="track_order",
        is_new=True,
        message_id=uuid.uuid4().hex,
        customer=CustomerIdentity(phone=thread.removeprefix("sms:")),
        text="where is my parcel?",
        received_at=system_clock(),
        explanation=RoutingExplanation(
            rule="bench", conditions=(), issue_type="track_order", confidence=1.0
        ),
        requires=requires,
    )


def requirement(rng: random.Random) -> Requirements:
    if rng.random() < 0.02:
        return Requirements(language=NOBODY_SPEAKS)
    skills = (rng.choice(SKILLS),) if rng.random() < 0.5 else ()
    return Requirements(skills=skills, language=rng.choice(LANGUAGES))


async def fill(
    assigner: Assigner,
    conversations: OpenConversations,
    queue: str,
    agents: int,
    waiting: int,
    attributes: Callable[[], tuple[frozenset[str], frozenset[str]]],
    requires: Callable[[], Requirements | None],
) -> None:
    expires = (system_clock() + timedelta(hours=8)).timestamp()
    for i in range(agents):
        skills, languages = attributes()
        claims = AgentClaims(
            agent=f"{queue}-agent-{i}",
            queues=frozenset({queue}),
            expires_at=expires,
            skills=skills,
            languages=languages,
        )
        await assigner.presence(DEFAULT_ASSIGNMENT_GROUP, claims, "online", {"sms": 1000})
    for _ in range(waiting):
        await conversations.opened(routed(queue, requires()), DEFAULT_ASSIGNMENT_GROUP)


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[max(0, round(0.99 * len(ms)) - 1)], 2),
        "max_ms": round(ms[-1], 2),
    }


async def measure(agents: int, waiting: int, decisions: int) -> dict[str, Any]:
    rng = random.Random(23)
    async with bench_stack("assignment_skills") as (stack, _workdir):
        redis = Redis.from_url(stack.redis.url)
        keys = Keys(f"bench-{uuid.uuid4().hex[:8]}:")
        conversations = OpenConversations(redis, keys, AssignmentGroups(dict))  # one group
        # Long offers and presence leases: nothing expires while the decisions are measured.
        policy = AssignmentPolicy(offer_seconds=3600.0, misses=1000, grace=3600.0, batch=1)
        assigner = Assigner(
            redis,
            keys,
            conversations,
            policy,
            queues=lambda: frozenset({"plain", "skills"}),
            transcripts=Transcripts(redis, keys),
            streams=QueueStreams(redis, keys, maxlen=10_000, max_age=86_400.0),
            ladder=lambda queue: LADDER,
        )

        def none() -> tuple[frozenset[str], frozenset[str]]:
            return frozenset(), frozenset()

        def some() -> tuple[frozenset[str], frozenset[str]]:
            return (
                frozenset(rng.sample(SKILLS, rng.randint(2, 3))),
                frozenset(rng.sample(LANGUAGES, rng.randint(1, 2))),
            )

        started = time.perf_counter()
        await fill(assigner, conversations, "plain", agents, waiting, none, lambda: None)
        await fill(
            assigner, conversations, "skills", agents, waiting, some, lambda: requirement(rng)
        )
        filled = time.perf_counter() - started
        times: dict[str, list[float]] = {"plain": [], "skills": []}
        offers = {"plain": 0, "skills": 0}
        for _ in range(decisions):
            for queue in ("plain", "skills"):
                began = time.perf_counter()
                made = await assigner.pass_now(queue)
                times[queue].append(time.perf_counter() - began)
                offers[queue] += len(made)
        unmet = await redis.zcard(keys.hub_unmet(DEFAULT_ASSIGNMENT_GROUP, "skills"))
        memory: Any = await redis.info("memory")
        await redis.aclose()
    plain, skills = summary(times["plain"]), summary(times["skills"])
    return {
        "agents_online": agents,
        "waiting_conversations": waiting,
        "decisions": decisions,
        "fill_seconds": round(filled, 1),
        "without_requirements": {**plain, "offers": offers["plain"]},
        "with_skills_and_languages": {
            **skills,
            "offers": offers["skills"],
            "unmet_listed_after": unmet,
        },
        "ratio_p50": round(skills["p50_ms"] / plain["p50_ms"], 2),
        "ratio_p99": round(skills["p99_ms"] / plain["p99_ms"], 2),
        "redis_used_memory_bytes": int(memory["used_memory"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=500)
    args = parser.parse_args()
    report("assignment_skills", asyncio.run(measure(args.agents, args.waiting, args.decisions)))


if __name__ == "__main__":
    main()
