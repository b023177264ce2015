"""``switchboard simulate``: realistic store traffic through the real wire formats, watched live.

Customers (:mod:`.customers`) write in on every channel at the planned rate and mix; agents
(:mod:`.agents`) answer through the hub; the summary (:mod:`.summary`) reads what the
services published and prints it every few seconds. End-to-end latency runs from the customer
starting to send a message (the webhook request, the SMTP session, the chat frame) to the
message reaching an agent over the hub's websocket (without agents: to its routed event on
Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from libs.common.events import ConversationRouted
from libs.common.topics import Topics
from tooling.simulate.agents import AgentPlan, AgentStats, run_agents
from tooling.simulate.customers import Customers, Endpoints, TrafficPlan, run_traffic
from tooling.simulate.summary import Outcomes, percentile, print_every, render, watch_topics


@dataclass(frozen=True, slots=True)
class HubAccess:
    """How simulated agents reach the hub: its websocket URL, the queues, a token minter."""

    url: str
    queues: tuple[str, ...]
    token_for: Callable[[str, list[str]], str]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    seconds: float
    sent: Counter[str]
    failed: Counter[str]
    last_error: str
    outcomes: Outcomes
    agents: AgentStats

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
            "agents": dataclasses.asdict(self.agents),
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
) -> SimulationResult:
    """Run the plan until its duration ends or ``stop`` is set, then give the system up to
    ``drain`` seconds to route what was sent; print a summary as it goes."""
    outcomes = Outcomes()
    agent_stats = AgentStats()
    started = time.monotonic()
    finished = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        customers = Customers(endpoints, http, outcomes.latencies)
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
                    )
                )
            )
        if report_every:
            background.append(asyncio.create_task(print_every(report_every, summary, finished)))
        try:
            await run_traffic(customers, plan, stop)
            await _settle(customers, outcomes, stop, drain)
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
