"""``switchboard simulate``: realistic store traffic through the real wire formats, watched live.

Customers (:mod:`.customers`) write in on every channel at the planned rate and mix; agents
(:mod:`.agents`) answer through the hub; the summary (:mod:`.summary`) reads what the
services published and prints it every few seconds. End-to-end latency runs from the customer
starting to send a message (the webhook request, the SMTP session, the chat frame) to the
message reaching an agent over the hub's websocket (without agents: to its routed event on
Kafka). The traffic starts once every agent follows every queue: a message routed before
that reaches them inside the hub's snapshot, never as a message of its own, and could not be
counted. Customers answer the surveys they receive (:mod:`.surveys`); once the traffic is over
the run waits for the agents to finish what they hold and for every resolution's survey, stops
the answering, and waits until the system counts every answer given, so the final summary's
CSAT and NPS (the system's own figures) describe the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final

import aiohttp

from libs.common.events import ConversationRouted
from libs.common.topics import Topics
from tooling.hubclient import HubClosed
from tooling.simulate.agents import AgentPlan, AgentStats, run_agents
from tooling.simulate.customers import Customers, Endpoints, TrafficPlan, run_traffic
from tooling.simulate.summary import (
    FigureSource,
    Outcomes,
    percentile,
    print_every,
    read_figures,
    render,
    watch_figures,
    watch_topics,
)
from tooling.simulate.surveys import GivenScores, SurveyPlan, SurveyTakers

SURVEY_SLACK: Final = 4.0
"""Seconds beyond ``surveys.after`` for a survey to reach its customer and be answered."""


@dataclass(frozen=True, slots=True)
class HubAccess:
    """How simulated agents reach the hub: its websocket URL, the queues, a token minter."""

    url: str
    queues: tuple[str, ...]
    token_for: Callable[[str, list[str]], str]
    figures: FigureSource | None = None
    """Where the summary reads the system's own per-queue figures."""


@dataclass(frozen=True, slots=True)
class SurveyTaking:
    """Customers answer surveys: how, where email customers read their mail, and how long
    after a resolution its survey goes out (the configuration's ``surveys.after``)."""

    plan: SurveyPlan
    mail: Sequence[EmailMessage]
    after: float


@dataclass(frozen=True, slots=True)
class SimulationResult:
    seconds: float
    sent: Counter[str]
    failed: Counter[str]
    last_error: str
    outcomes: Outcomes
    agents: AgentStats
    given: GivenScores
    answers: Counter[str]

    def report(self) -> dict[str, Any]:
        """The result as JSON-ready data (``switchboard simulate --report``)."""
        latencies = self.outcomes.latencies.values
        return {
            "seconds": round(self.seconds, 1),
            "sent": dict(self.sent),
            "failed": dict(self.failed),
            "last_error": self.last_error,
            "routed": dict(self.outcomes.routed),
            "sla": dict(self.outcomes.sla),
            "outbound": dict(self.outcomes.outbound),
            "incidents": {
                "detected": len(self.outcomes.incidents),
                "linked": self.outcomes.incidents.total(),
            },
            "latency_ms": {
                "count": len(latencies),
                **{
                    name: round(value * 1000, 1)
                    for name, fraction in (("p50", 0.5), ("p99", 0.99))
                    if (value := percentile(latencies, fraction)) is not None
                },
            },
            "agents": {
                name: value
                for name, value in dataclasses.asdict(self.agents).items()
                if name != "last_resolution"
            },
            "surveys": {
                "received": self.given.surveys,
                "answered": dict(self.answers),
                "given": self.given.scores,
            },
            "figures": [
                {
                    "queue": q["queue"],
                    "open_clocks": self.outcomes.open_clocks.get(q["queue"]),
                    **{
                        name: q[name]
                        for name in ("waiting", "at_risk", "warned_today", "breached_today")
                    },
                    "csat": q["csat"],
                    "nps": q["nps"],
                }
                for q in self.outcomes.figures
            ],
        }


async def simulate(
    endpoints: Endpoints,
    plan: TrafficPlan,
    *,
    bootstrap: str,
    topics: Topics,
    stop: asyncio.Event,
    agents: AgentPlan | None = None,
    hub: HubAccess | None = None,
    report_every: float | None = 2.0,
    drain: float = 20.0,
    surveys: SurveyTaking | None = None,
) -> SimulationResult:
    """Run the plan until its duration ends or ``stop`` is set, then give the system up to
    ``drain`` seconds to route what was sent (and as long again for the surveys); print a
    summary as it goes."""
    outcomes = Outcomes()
    agent_stats = AgentStats()
    started = time.monotonic()
    finished = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        customers = Customers(endpoints, http, outcomes.latencies)
        takers = (
            SurveyTakers(customers, endpoints, http, surveys.plan, surveys.mail)
            if surveys is not None
            else None
        )
        arrived = outcomes.latencies.arrived

        def routed(event: ConversationRouted) -> None:
            if agents is None:
                arrived(event.thread_key)

        def summary() -> str:
            stats = customers.stats
            text = render(time.monotonic() - started, stats.sent, stats.failed, outcomes)
            if agents is not None:
                text += (
                    f"\n  agents    {agents.agents} online  replies {agent_stats.replies}  "
                    f"resolved {agent_stats.resolved}  reconnects {agent_stats.reconnects}"
                )
            return text

        background = [asyncio.create_task(watch_topics(bootstrap, topics, outcomes, routed))]
        following = asyncio.Event()
        if agents is not None and hub is not None:
            background.append(
                asyncio.create_task(
                    run_agents(
                        agents,
                        hub_url=hub.url,
                        queues=hub.queues,
                        token_for=hub.token_for,
                        stats=agent_stats,
                        arrived=arrived,
                        stop=finished,
                        ready=following,
                    )
                )
            )
        else:
            following.set()
        if takers is not None:
            background.append(asyncio.create_task(takers.run(finished)))
        figures = hub.figures if hub is not None else None
        watching = (
            asyncio.create_task(watch_figures(http, figures, outcomes))
            if figures is not None
            else None
        )
        if watching is not None:
            background.append(watching)
        if report_every:
            background.append(asyncio.create_task(print_every(report_every, summary, finished)))
        try:
            await _until(following.is_set, stop, drain)  # agents see every message as one
            await run_traffic(customers, plan, stop)
            await _settle(customers, outcomes, stop, drain)
            if takers is not None and surveys is not None and agents is not None:
                await _settle_surveys(takers, agent_stats, surveys.after, stop, drain)
            if figures is not None and watching is not None:
                # A push read after the final figures would replace them with older ones.
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
                await _final_figures(http, figures, outcomes, takers, stop, drain)
        finally:
            finished.set()
            await customers.close()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    stats = customers.stats
    return SimulationResult(
        seconds=time.monotonic() - started,
        sent=stats.sent,
        failed=stats.failed,
        last_error=stats.last_error,
        outcomes=outcomes,
        agents=agent_stats,
        given=takers.given if takers is not None else GivenScores(),
        answers=stats.answers,
    )


async def _settle(
    customers: Customers, outcomes: Outcomes, stop: asyncio.Event, drain: float
) -> None:
    """Wait until every accepted message was routed (and reached an agent, when latencies are
    measured there), ``stop`` is set, or ``drain`` seconds pass."""
    deadline = time.monotonic() + drain
    while not stop.is_set() and time.monotonic() < deadline:
        sent = sum(customers.stats.sent.values())
        if sum(outcomes.routed.values()) >= sent and len(outcomes.latencies.values) >= sent:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def _settle_surveys(
    takers: SurveyTakers,
    agents: AgentStats,
    after: float,
    stop: asyncio.Event,
    drain: float,
) -> None:
    """Wait until the agents hold nothing and the latest resolution's survey has had time to
    arrive and be answered (or ``stop``, or ``drain`` seconds); then customers stop answering.
    (Not one survey per resolution: a conversation reopened before its survey is due drops
    it.)"""

    def done() -> bool:
        last = agents.last_resolution
        quiet = last is None or time.monotonic() - last >= after + SURVEY_SLACK
        return agents.holding == 0 and quiet

    await _until(done, stop, drain)
    await takers.close()


async def _final_figures(
    http: aiohttp.ClientSession,
    source: FigureSource,
    outcomes: Outcomes,
    takers: SurveyTakers | None,
    stop: asyncio.Event,
    drain: float,
) -> None:
    """Read the figures until they count every survey answer given (or ``stop``, or ``drain``
    seconds): the final summary's. The pushed figures must be stopped first: a frame the hub
    pushed before the last answers were counted, read after this, would replace these."""
    deadline = time.monotonic() + drain
    while True:
        with contextlib.suppress(aiohttp.ClientError, HubClosed):
            await read_figures(http, source, outcomes)
        given = takers.given.answers if takers is not None else 0
        if outcomes.answers() >= given or stop.is_set() or time.monotonic() >= deadline:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _until(done: Callable[[], bool], stop: asyncio.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done() and not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
