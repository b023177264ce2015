"""The simulator's live summary: what the system did with the traffic, read off the topics.

Counts come from Kafka (routed per queue, SLA events by kind, outbound receipts by status), so
they show what the services did, not what the simulator hoped; latencies come from whoever
saw the message arrive (the simulated agents through the hub, else the routed topic). Per
queue figures are the system's own: what a supervisor's console shows (waiting, at risk,
warned and breached today, CSAT, NPS), pushed by the hub to a supervisor socket
(:func:`watch_figures`), and the open clocks the SLA service exports on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from libs.common.events import (
    ConversationRouted,
    IncidentDetected,
    InvalidEvent,
    OutboundReceipt,
    SlaEvent,
    decode,
)
from libs.common.topics import Topics
from tooling.hubclient import HubClient, HubClosed

OPEN_CLOCKS: Final = "switchboard_sla_open_clocks"


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Latencies:
    """Seconds from a customer sending a message to it reaching an agent (or the routed topic),
    matched per thread in order (a thread's messages arrive in order).

    An arrival can come before the sender has its own acceptance (the webhook's response or
    the SMTP reply is still on its way back); it waits here until the acceptance is noted.
    """

    values: list[float] = field(default_factory=list)
    _waiting: dict[str, deque[float]] = field(default_factory=dict)
    _early: Counter[str] = field(default_factory=Counter)

    def accepted(self, thread_key: str, started: float) -> None:
        """A message the customer began sending at monotonic time ``started`` was accepted."""
        if self._early[thread_key]:
            self._early[thread_key] -= 1
            self.values.append(time.monotonic() - started)
        else:
            self._waiting.setdefault(thread_key, deque()).append(started)

    def arrived(self, thread_key: str) -> None:
        waiting = self._waiting.get(thread_key)
        if waiting:
            self.values.append(time.monotonic() - waiting.popleft())
        else:
            self._early[thread_key] += 1


@dataclass
class Outcomes:
    routed: Counter[str] = field(default_factory=Counter)
    """Conversations routed, by queue (new conversations and later messages alike)."""
    sla: Counter[str] = field(default_factory=Counter)
    """SLA events by kind (started, warning, breached, met, ...)."""
    outbound: Counter[str] = field(default_factory=Counter)
    incidents: Counter[str] = field(default_factory=Counter)
    """Incidents detected, by id -> messages routed linked to it."""
    latencies: Latencies = field(default_factory=Latencies)
    figures: list[dict[str, Any]] = field(default_factory=list)
    """The hub's figures of every queue, as a supervisor sees them (the latest frame)."""
    open_clocks: dict[str, float] = field(default_factory=dict)
    """Clocks running or paused per queue, from the SLA service's ``/metrics``."""

    def answers(self) -> int:
        """Survey answers the system counted today, all queues and kinds."""
        return sum(q["csat"]["answers"] + q["nps"]["answers"] for q in self.figures)


@dataclass(frozen=True, slots=True)
class FigureSource:
    """Where the system's own figures are read: the hub as a supervisor, the SLA's metrics."""

    hub_url: str
    supervisor_token: str
    sla_url: str | None = None


async def watch_figures(
    http: aiohttp.ClientSession, source: FigureSource, outcomes: Outcomes, every: float = 2.0
) -> None:
    """Keep ``outcomes.figures`` as the hub pushes them to a supervisor socket following every
    queue, and ``outcomes.open_clocks`` scraped every ``every`` seconds, until cancelled."""
    client = HubClient(source.hub_url, source.supervisor_token, session=http)
    while True:
        try:
            hello = await client.connect()
            await client.subscribe(hello["queues"])
            outcomes.figures = (await client.figures())["queues"]
            loop = asyncio.get_running_loop()
            while True:
                await read_open_clocks(http, source, outcomes)
                until = loop.time() + every
                with contextlib.suppress(TimeoutError):
                    while (left := until - loop.time()) > 0:
                        frame = await client.next(timeout=left)
                        if frame.get("type") == "figures":
                            outcomes.figures = frame["queues"]
        except (HubClosed, aiohttp.ClientError):
            await asyncio.sleep(every)  # the hub restarting: connect again


async def read_figures(
    http: aiohttp.ClientSession, source: FigureSource, outcomes: Outcomes
) -> None:
    """Ask for the figures once (the final summary's)."""
    async with HubClient(source.hub_url, source.supervisor_token, session=http) as client:
        outcomes.figures = (await client.figures())["queues"]
    await read_open_clocks(http, source, outcomes)


async def read_open_clocks(
    http: aiohttp.ClientSession, source: FigureSource, outcomes: Outcomes
) -> None:
    if source.sla_url is None:
        return
    async with http.get(f"{source.sla_url}/metrics") as response:
        response.raise_for_status()
        exposition = await response.text()
    outcomes.open_clocks = {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == OPEN_CLOCKS
    }


async def watch_topics(
    bootstrap: str,
    topics: Topics,
    outcomes: Outcomes,
    on_routed: Callable[[ConversationRouted], None] | None = None,
) -> None:
    """Count what the services publish from now on, until cancelled.

    Reads from the earliest offset and skips records older than the call: "latest" would
    miss what is published while the consumer is still finding its positions.
    """
    since_ms = time.time() * 1000
    consumer = AIOKafkaConsumer(
        topics.routed,
        topics.sla_events,
        topics.outbound_status,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            if record.timestamp < since_ms:
                continue
            try:
                data = decode(record.value, record.headers).data
            except InvalidEvent:
                continue
            if isinstance(data, ConversationRouted):
                outcomes.routed[data.queue] += 1
                if data.incident_id is not None:
                    outcomes.incidents[data.incident_id] += 1
                if on_routed is not None:
                    on_routed(data)
            elif isinstance(data, IncidentDetected):
                outcomes.incidents.setdefault(data.incident_id, 0)  # known before a linked one
            elif isinstance(data, SlaEvent):
                outcomes.sla[f"{data.metric} {data.kind}"] += 1
            elif isinstance(data, OutboundReceipt):
                outcomes.outbound[data.status] += 1
    finally:
        await consumer.stop()


def render(
    elapsed: float, sent: Counter[str], failed: Counter[str], outcomes: Outcomes, width: int = 100
) -> str:
    """A few lines for the terminal: rates, queues, SLA, latency."""
    total = sum(sent.values())
    rate = total / elapsed if elapsed > 0 else 0.0
    per_channel = "  ".join(
        f"{channel} {count} ({count / elapsed:.1f}/s)" for channel, count in sorted(sent.items())
    )
    queues = "  ".join(f"{queue} {n}" for queue, n in outcomes.routed.most_common())
    sla = "  ".join(
        f"{kind} {n}"
        for kind, n in sorted(outcomes.sla.items())
        if kind.split()[-1] in ("met", "warning", "breached")
    )
    latencies = outcomes.latencies.values
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    latency = (
        f"p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  (n={len(latencies)})"
        if p50 is not None and p99 is not None
        else "-"
    )
    lines = [
        f"[{elapsed:6.1f}s] sent {total} ({rate:.1f}/s)  failed {sum(failed.values())}",
        f"  channels  {per_channel or '-'}",
        f"  routed    {queues or '-'}",
        f"  sla       {sla or '-'}",
        f"  outbound  {'  '.join(f'{k} {n}' for k, n in sorted(outcomes.outbound.items())) or '-'}",
        f"  incidents {len(outcomes.incidents)} (linked messages {outcomes.incidents.total()})",
        f"  latency   {latency}",
        *figure_lines(outcomes),
    ]
    return "\n".join(line[:width] for line in lines)


def figure_lines(outcomes: Outcomes) -> list[str]:
    """One line per queue from the system's own figures (today: the UTC day)."""
    if not outcomes.figures:
        return []
    lines = ["  queues    open clocks, waiting, at risk, warned/breached today, CSAT, NPS (n)"]
    for queue in outcomes.figures:
        clocks = outcomes.open_clocks.get(queue["queue"])
        csat, nps = queue["csat"], queue["nps"]
        lines.append(
            f"    {queue['queue']:<12} clocks {_number(clocks)}  waiting {queue['waiting']}"
            f"  at risk {queue['at_risk']}  warned {queue['warned_today']}"
            f"  breached {queue['breached_today']}"
            f"  CSAT {_number(csat['average'])} ({csat['answers']})"
            f"  NPS {_number(nps['score'])} ({nps['answers']})"
        )
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


async def print_every(seconds: float, render_now: Callable[[], str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            print(render_now(), flush=True)
