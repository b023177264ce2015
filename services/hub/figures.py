"""A supervisor's figures of each queue: what waits now, and how today went.

Now (read from the hub's open-conversation state when asked): conversations waiting for an
agent and the oldest wait (since the customer's latest message), conversations at risk (a
clock warned and has been neither met nor breached since), the agents online or away with
their load (conversations held), and the conversations waiting for a requirement nobody online
meets, each with its relaxation ladder step. Today (kept by the fan-out in
``hub:figures:{queue}:{day}``): clocks breached, attainment per metric (met / (met +
breached); a clock met late, after its breach, counts as breached), first-response and
resolution times (p50/p90 per channel: the wall time from the clock's start to its ``met``
event), and the CSAT and NPS answers.

"Today" is the UTC day: the queues of one hub can sit in different calendars, and a day that
means the same for every queue adds up across them. A figure's day is the day of the event
that caused it (the SLA service's or the customer's time), so a redelivered event lands where
it did the first time, and the current day comes from the hub's clock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Final, get_args

from redis.asyncio import Redis

from libs.common.events import SlaEvent, SlaMetric, SurveyAnswered
from libs.common.keys import DAY, Keys
from libs.common.redis_client import as_text, transaction
from libs.domain.nps import NpsTally
from services.hub.open_conversations import CLOCK, OpenConversations

TTL: Final = 8 * DAY
MAX_OPEN: Final = 2000
"""Open conversations a queue's figures look at (the soonest to breach first)."""
SLA_METRICS: Final[tuple[SlaMetric, ...]] = get_args(SlaMetric)
NOW_FIELDS: Final = ("assignee", "last_at", *(CLOCK + metric for metric in SLA_METRICS))
"""The summary fields "now" is counted from."""
NOW_CHUNK: Final = 100
"""Conversations "now" reads per round trip."""
TIMED: Final[tuple[SlaMetric, ...]] = ("first_response", "resolution")
MAX_UNMET: Final = 50
"""Conversations waiting for an unmet requirement a queue's figures list."""
UNMET_FIELDS: Final = ("conversation_id", "reference", "requires", "ladder_step", "last_at")


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Figures:
    def __init__(self, redis: Redis, keys: Keys, conversations: OpenConversations) -> None:
        self._redis = redis
        self._keys = keys
        self._conversations = conversations

    # --- the fan-out records ----------------------------------------------------------------

    async def clock(self, event: SlaEvent, at: datetime) -> None:
        """Count a ``met``, ``warning`` or ``breached`` event that happened at ``at``."""
        field = f"{event.metric}:{event.conversation_id}"
        if event.kind == "met":
            [summary] = await self._conversations.summary_fields([event.conversation_id])
            channel = summary.get("channel")
            seconds = max(0.0, (at - event.started_at).total_seconds())
            value = f"{channel or 'unknown'}|{seconds:.3f}"
            await self._write(event.queue, at, f"met:{field}", value)
        elif event.kind in ("warning", "breached"):
            prefix = "warned" if event.kind == "warning" else "breached"
            await self._write(event.queue, at, f"{prefix}:{field}", "1")

    async def answer(self, queue: str, answer: SurveyAnswered) -> None:
        field = f"{answer.kind}:{answer.conversation_id}"
        await self._write(queue, answer.answered_at, field, str(answer.score))

    async def _write(self, queue: str, at: datetime, field: str, value: str) -> None:
        key = self._keys.hub_figures(queue, day_of(at))
        async with transaction(self._redis) as pipe:
            pipe.hset(key, field, value)
            pipe.expire(key, TTL)
            await pipe.execute()

    # --- a supervisor reads -----------------------------------------------------------------

    async def read(self, queues: list[str], now: datetime) -> list[dict[str, Any]]:
        return [await self._queue(queue, now) for queue in sorted(queues)]

    async def _queue(self, queue: str, now: datetime) -> dict[str, Any]:
        raw = await self._redis.hgetall(self._keys.hub_figures(queue, day_of(now)))
        today = {as_text(k): as_text(v) for k, v in raw.items()}
        return {
            "queue": queue,
            "day": day_of(now),
            **await self.now(queue, now),
            **_today(today),
            "agents": await self._agents(queue),
        }

    async def now(self, queue: str, now: datetime) -> dict[str, Any]:
        """What waits in ``queue`` at ``now``: ``open``, ``waiting``, ``oldest_wait_seconds``
        (None: nothing waits), ``at_risk``.

        The gauges ask this every five seconds for up to ``MAX_OPEN`` conversations of every
        queue: read in one go, the replies held the hub's event loop for hundreds of
        milliseconds and set the fan-out's p99. So it reads only the fields it needs
        (``NOW_FIELDS``), ``NOW_CHUNK`` conversations per round trip, and the fan-out runs in
        between."""
        conversation_ids = await self._conversations.open_ids(queue, MAX_OPEN)
        open_: list[dict[str, str]] = []
        for start in range(0, len(conversation_ids), NOW_CHUNK):
            chunk = conversation_ids[start : start + NOW_CHUNK]
            open_ += await self._conversations.summary_fields(chunk, only=NOW_FIELDS)
        waiting = [fields for fields in open_ if not fields.get("assignee")]
        waits = [
            (now - datetime.fromtimestamp(int(fields["last_at"]) / 1000, UTC)).total_seconds()
            for fields in waiting
            if fields.get("last_at")
        ]
        at_risk = sum(
            any(fields.get(CLOCK + metric) == "warning" for metric in SLA_METRICS)
            for fields in open_
        )
        return {
            "open": len(open_),
            "waiting": len(waiting),
            "oldest_wait_seconds": max(waits, default=None),
            "at_risk": at_risk,
            "unmet": await self._unmet(queue),
        }

    async def _unmet(self, queue: str) -> list[dict[str, Any]]:
        """Conversations waiting for a requirement nobody online meets (as the queue's latest
        assignment pass found), longest waiting first, with their ladder step."""
        group = self._conversations.groups.of_queue(queue)
        members: Any = await self._redis.zrange(
            self._keys.hub_unmet(group, queue), 0, MAX_UNMET - 1
        )
        summaries = await self._conversations.summaries([as_text(m) for m in members])
        return [
            {key: summary[key] for key in UNMET_FIELDS}
            for summary in summaries
            if summary["requires"] is not None
        ]

    async def _agents(self, queue: str) -> list[dict[str, Any]]:
        group = self._conversations.groups.of_queue(queue)
        members: Any = await self._redis.smembers(self._keys.hub_agents(group, queue))
        agents = sorted(as_text(m) for m in members)
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.hget(self._keys.hub_agent(group, agent), "status")
                pipe.hlen(self._keys.hub_assigned(group, agent))
            found = await pipe.execute()
        return [
            {"agent": agent, "status": as_text(status) if status else None, "load": int(load)}
            for agent, status, load in zip(agents, found[::2], found[1::2], strict=True)
        ]


def _today(fields: dict[str, str]) -> dict[str, Any]:
    """The day's figures from its hash (see :mod:`libs.common.keys`)."""
    breached = {name.partition(":")[2] for name in fields if name.startswith("breached:")}
    met: dict[str, int] = defaultdict(int)
    times: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in TIMED}
    csat: list[int] = []
    nps = NpsTally()
    for name, value in fields.items():
        kind, _, rest = name.partition(":")
        metric = rest.partition(":")[0]
        if kind == "met" and rest not in breached:
            met[metric] += 1
            channel, _, seconds = value.partition("|")
            if metric in times:
                times[metric][channel].append(float(seconds))
        elif kind == "csat":
            csat.append(int(value))
        elif kind == "nps":
            nps = nps.add(int(value))
    breached_by: dict[str, int] = defaultdict(int)
    for clock in breached:
        breached_by[clock.partition(":")[0]] += 1
    return {
        "warned_today": sum(name.startswith("warned:") for name in fields),
        "breached_today": len(breached),
        "attainment": {
            metric: {
                "met": met[metric],
                "breached": breached_by[metric],
                "ratio": _ratio(met[metric], breached_by[metric]),
            }
            for metric in TIMED
        },
        "response_times": {
            metric: {
                channel: {
                    "count": len(values),
                    "p50": percentile(values, 0.5),
                    "p90": percentile(values, 0.9),
                }
                for channel, values in sorted(by_channel.items())
            }
            for metric, by_channel in times.items()
        },
        "csat": {
            "answers": len(csat),
            "average": round(sum(csat) / len(csat), 2) if csat else None,
        },
        "nps": {
            "answers": nps.answers,
            "promoters": nps.promoters,
            "passives": nps.passives,
            "detractors": nps.detractors,
            "score": nps.score,
        },
    }


def _ratio(met: int, breached: int) -> float | None:
    return round(met / (met + breached), 4) if met + breached else None
