"""SLA timers at a million: Redis memory per open timer, emission lag, idle CPU.

Clocks are created by the service's own code (``new_clock`` from a routed conversation, then
``stage_clock``: the clock record, the open count and the timer, exactly as the keeper writes
them), only pipelined a thousand at a time instead of one transaction each. Every clock has a
warning and a breach, so a clock is two open timers. Most clocks fall due in two days; a window
of them falls due at ``--rate`` points a second. The SLA worker (``python -m services.sla``)
starts after the fill, is measured idle (CPU while the timers wait) and then fires the window;
the lag of each event is its Kafka timestamp minus its due time. Then the emission capacity:
``--burst`` more clocks (filled after the memory was measured, so they are not counted in it),
each with a breach only, all due at one instant a few seconds after the window, so the worker
finds them all due at once and emits as fast as it can; the capacity is their rate from the
first to the last record's Kafka timestamp, with the worker's CPU over the same span. The
ceilings, measured in the same run on the same Redis and broker: raw pipelined ``ZADD`` and
``ZPOPMIN``, raw aiokafka produce (acks=all) of records the size of an SLA event.

The whole measurement runs on one Redis node and then on a local Redis Cluster of three
primaries with a replica each (``--redis both``, the default), on the same broker in the same
run: memory is summed over the cluster's primaries (each replica holds a copy on top), and the
worker is the same single process, its partitions' timers spread over the primaries by their
``{sla:<partition>}`` tags.

    python -m bench.sla_timers [--timers 1000000] [--rate 5000] [--seconds 20] [--burst 50000]
                               [--redis both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import yaml
from opentelemetry import trace
from opentelemetry.context import Context
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bench.harness import bench_stack, cpu_seconds, fill_raw, read_records, report, running_service
from libs.common.config import load_config
from libs.common.events import ConversationRouted, CustomerIdentity, RoutingExplanation
from libs.common.keys import Keys
from libs.common.redis_client import close_redis, open_redis
from libs.common.settings import Settings
from libs.common.topics import PARTITIONS, Topics
from libs.common.tracing import attached
from services.sla.clocks import BUCKETS, ClockStore
from services.sla.lifecycle import new_clock, stage_clock
from services.sla.runtime import SlaRuntime
from services.sla.timers import TimerStore
from tooling.devstack import DevStack, LocalRedisCluster, create_topics
from tooling.simulate.summary import percentile

POINTS_PER_CLOCK = 2  # a warning and a breach
PIPELINE = 1000
CEILING_OPS = 200_000
CEILING_RECORDS = 50_000
IDLE_SECONDS = 10.0
START_BUDGET = 40.0  # from the end of the fill to the first due point: start-up + idle window
BURST_GAP = 15.0  # from the window's last due point to the burst's: the worker catches up first


def configuration(seconds: int) -> dict[str, Any]:
    """ "later" clocks fall due in two days; a "soon" clock is warned ``seconds / 2`` after it
    starts and breached ``seconds / 2`` after that; a "burst" clock is only breached, a
    minute after it starts."""
    half = f"{seconds // 2}s"
    return {
        "version": 1,
        "queues": {"desk": {}},
        "sla_policies": {
            "later": {
                "first_response": {"within": "2d", "business_hours": False, "warn_before": ["1h"]}
            },
            "soon": {
                "first_response": {
                    "within": f"{2 * (seconds // 2)}s",
                    "business_hours": False,
                    "warn_before": [half],
                }
            },
            "burst": {"first_response": {"within": "60s", "business_hours": False}},
        },
        "rules": [{"name": "all", "then": {"queue": "desk", "sla_policy": "later"}}],
    }


def routed(policy: str) -> ConversationRouted:
    conversation = str(uuid.uuid4())
    return ConversationRouted(
        conversation_id=conversation,
        reference=f"SB-{conversation[:6].upper()}",
        thread_key=f"chat:{conversation}",
        channel="chat",
        queue="desk",
        priority=3,
        sla_policy=policy,
        issue_type="unknown",
        is_new=True,
        message_id=conversation,
        customer=CustomerIdentity(),
        text="hello",
        received_at=datetime.now(UTC),
        explanation=RoutingExplanation(
            rule="all", conditions=(), issue_type="unknown", confidence=0.0
        ),
    )


def conversation_trace() -> Context:
    """A context inside a sampled trace of its own, as a routed conversation's would be."""
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=random.getrandbits(128),
            span_id=random.getrandbits(64),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    return trace.set_span_in_context(span)


async def fill_clocks(
    redis: Redis, keys: Keys, runtime: SlaRuntime, policy: str, starts: list[datetime]
) -> float:
    """Create one clock per start time through the service's code; returns clocks/s."""
    clocks, timers = ClockStore(redis, keys), TimerStore(redis, keys)
    began = time.perf_counter()
    for offset in range(0, len(starts), PIPELINE):
        async with redis.pipeline(transaction=False) as pipe:
            for n, at in enumerate(starts[offset : offset + PIPELINE], start=offset):
                with attached(conversation_trace()):  # as in the service: each keeps its trace
                    clock = new_clock(
                        runtime, routed(policy), n % PARTITIONS, "first_response", at, 1
                    )
                assert clock is not None
                assert clock.traceparent is not None
                await stage_clock(pipe, clocks, timers, clock)
            await pipe.execute()
    return len(starts) / (time.perf_counter() - began)


async def timed(count: int, step: Callable[[int], Awaitable[object]]) -> float:
    """Run ``step`` over ``count`` operations in pipeline-sized chunks; operations/s."""
    began = time.perf_counter()
    for offset in range(0, count, PIPELINE):
        await step(offset)
    return count / (time.perf_counter() - began)


async def redis_ceilings(redis: Redis) -> dict[str, float]:
    """Raw pipelined ZADD and ZPOPMIN of members shaped like timer ids."""
    members = [f"{uuid.uuid4()}|f1" for _ in range(CEILING_OPS)]
    now_ms = int(time.time() * 1000)

    async def add(offset: int) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(offset, offset + PIPELINE):
                pipe.zadd("ceiling:due", {members[n]: now_ms + n})
            await pipe.execute()

    async def pop(_: int) -> None:
        await redis.zpopmin("ceiling:due", PIPELINE)

    zadd = await timed(CEILING_OPS, add)
    zpopmin = await timed(CEILING_OPS, pop)
    await redis.delete("ceiling:due")
    return {"zadd_per_second": zadd, "zpopmin_per_second": zpopmin}


async def memory_of(redis: Redis, keys: Keys) -> dict[str, int]:
    """MEMORY USAGE (every element counted) of the SLA keys, by kind."""
    due = [keys.sla_due(p) for p in range(PARTITIONS)]
    buckets = [keys.sla_clocks(p, b) for p in range(PARTITIONS) for b in range(BUCKETS)]
    counts = [keys.sla_open_counts(p) for p in range(PARTITIONS)]
    sizes: dict[str, int] = {}
    for kind, names in (("due", due), ("clocks", buckets), ("open", counts)):
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.memory_usage(name, samples=0)
            sizes[kind] = sum(int(size or 0) for size in await pipe.execute())
    return sizes


async def lags(
    bootstrap: str, topic: str, expected: int, timeout: float
) -> tuple[list[float], float]:
    """Lag (ms) of every SLA event: Kafka timestamp minus due time (``ce_time``); and the
    rate between the first and the last record."""
    records = await read_records(bootstrap, topic, expected, timeout)
    found = [
        r.timestamp - datetime.fromisoformat(dict(r.headers)["ce_time"].decode()).timestamp() * 1000
        for r in records
    ]
    stamps = [r.timestamp for r in records]
    return found, len(stamps) / max((max(stamps) - min(stamps)) / 1000, 1e-3)


async def capacity(
    bootstrap: str, topic: str, before: int, burst: int, timeout: float
) -> tuple[float, float, float]:
    """The ``burst`` clocks' breaches, written after ``before`` other records to ``topic``: how
    many a second the worker emitted them (first to last Kafka timestamp), and when (epoch s)
    the first and the last of them were written."""
    records = await read_records(bootstrap, topic, before + burst, timeout)
    stamps = [r.timestamp for r in records if b'"policy":"burst"' in (r.value or b"")]
    if len(stamps) != burst:
        raise RuntimeError(f"{len(stamps)} of {burst} burst events found")
    first, last = min(stamps) / 1000, max(stamps) / 1000
    return (len(stamps) - 1) / max(last - first, 1e-3), first, last


async def used_memory(redis: Redis) -> int:
    """Bytes Redis holds: the node's, or the sum over a cluster's primaries (each replica holds
    a copy of its primary's on top)."""
    if isinstance(redis, RedisCluster):
        per_node = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(info["used_memory"]) for info in per_node.values())
    return int((await redis.info("memory"))["used_memory"])


async def measure(
    stack: DevStack,
    workdir: Path,
    redis_url: str,
    total_timers: int,
    rate: int,
    seconds: int,
    burst: int,
) -> dict[str, Any]:
    """The whole measurement on the Redis at ``redis_url`` (its own prefix, topics and worker)."""
    redis = await open_redis(Settings(redis_url=redis_url))
    try:
        bootstrap = stack.broker.bootstrap_servers
        prefix = f"b{uuid.uuid4().hex[:6]}."
        topics = Topics.with_prefix(prefix)
        await create_topics(bootstrap, [*topics.all(), f"{prefix}ceiling"])
        keys = Keys(prefix)
        config = workdir / f"sla-{prefix}yaml"
        config.write_text(yaml.safe_dump(configuration(seconds)))
        runtime = SlaRuntime.build(load_config(config), config)

        results: dict[str, Any] = {**await redis_ceilings(redis)}
        ceiling = await fill_raw(bootstrap, f"{prefix}ceiling", CEILING_RECORDS, 700)
        results["produce_per_second"] = ceiling.per_second

        soon_clocks = rate * (seconds // 2)
        due_points = soon_clocks * POINTS_PER_CLOCK
        later_clocks = (total_timers - due_points) // POINTS_PER_CLOCK
        base = await used_memory(redis)
        now = datetime.now(UTC)
        fill_rate = await fill_clocks(redis, keys, runtime, "later", [now] * later_clocks)
        # the "soon" clocks start at ``rate`` a second for half the window: their warnings
        # fall due in its first half, their breaches in the second, ``rate`` points a second
        # the burst is filled after the memory was measured, in the start budget's time
        budget = START_BUDGET + 1.5 * burst / fill_rate
        first_due = datetime.now(UTC) + timedelta(seconds=budget)
        half = timedelta(seconds=seconds // 2)
        starts = [first_due - half + n * timedelta(seconds=1 / rate) for n in range(soon_clocks)]
        await fill_clocks(redis, keys, runtime, "soon", starts)
        used = await used_memory(redis) - base
        sizes = await memory_of(redis, keys)
        clocks = later_clocks + soon_clocks
        timers = clocks * POINTS_PER_CLOCK
        results.update(
            open_timers=timers,
            open_clocks=clocks,
            fill_clocks_per_second=fill_rate,
            fill_timers_per_second=fill_rate * POINTS_PER_CLOCK,
            fill_ratio_to_zadd=fill_rate * POINTS_PER_CLOCK / results["zadd_per_second"],
            redis_used_memory_bytes=used,
            redis_bytes_per_open_timer=used / timers,
            redis_bytes_per_open_clock=used / clocks,
            memory_usage_bytes_per_open_timer={k: v / timers for k, v in sizes.items()},
        )
        # the burst: one breach per clock, all due at one instant after the window
        burst_due = first_due + timedelta(seconds=seconds + BURST_GAP)
        burst_start = burst_due - timedelta(seconds=60)
        await fill_clocks(redis, keys, runtime, "burst", [burst_start] * burst)

        async with running_service(
            stack,
            "sla",
            prefix,
            workdir / f"sla-{prefix}log",
            ready_timeout=60,
            environment={"SWITCHBOARD_CONFIG": str(config), "REDIS_URL": redis_url},
        ) as sla:
            assert sla.process is not None
            worker = psutil.Process(sla.process.pid)
            await asyncio.sleep(2.0)  # let the consumer's assignment settle
            idle = min(IDLE_SECONDS, (first_due - datetime.now(UTC)).total_seconds() - 2.0)
            if idle <= 1.0:
                raise RuntimeError("the worker started too late to be measured idle")
            before = cpu_seconds(worker)
            await asyncio.sleep(idle)
            results["idle_seconds"] = idle
            results["idle_cpu_percent_of_a_core"] = 100 * (cpu_seconds(worker) - before) / idle
            before = cpu_seconds(worker)
            found, emitted_rate = await lags(
                bootstrap, topics.sla_events, due_points, timeout=budget + seconds + 120
            )
            firing = (datetime.now(UTC) - first_due).total_seconds()
            results["firing_cpu_percent_of_a_core"] = (
                100 * (cpu_seconds(worker) - before) / max(firing, 1.0)
            )
            # a worker still behind on the window claims its older points first, so the
            # burst's rate stays its own; only its CPU would then include the window's tail
            ahead = (burst_due - datetime.now(UTC)).total_seconds() - 0.5
            if ahead > 0:
                await asyncio.sleep(ahead)
            before = cpu_seconds(worker)
            burst_began = time.time()
            emission, _, last = await capacity(
                bootstrap, topics.sla_events, due_points, burst, timeout=120
            )
            burst_cpu = cpu_seconds(worker) - before
        results.update(
            due_rate_per_second=rate,
            due_events=len(found),
            emitted_per_second=emitted_rate,
            emitted_ratio_to_produce=emitted_rate / results["produce_per_second"],
            lag_ms={
                "p50": statistics.median(found),
                "p99": percentile(found, 0.99),
                "max": max(found),
            },
            burst_events=burst,
            emission_capacity_per_second=emission,
            emission_capacity_ratio_to_produce=emission / results["produce_per_second"],
            # from just before the burst fell due to its last record: claims and all
            emission_cpu_percent_of_a_core=100 * burst_cpu / max(last - burst_began, 1e-3),
        )
        results["targets"] = {
            "lag_p99_under_250ms": results["lag_ms"]["p99"] < 250,
            "emission_capacity_at_least_10000": emission >= 10_000,
            "under_200_bytes_per_open_timer": results["redis_bytes_per_open_timer"] < 200,
        }
        await redis.flushall()  # free the node (or the cluster) for the next deployment
        return results
    finally:
        await close_redis(redis)


async def run(
    total_timers: int, rate: int, seconds: int, burst: int, deployments: list[str]
) -> dict[str, Any]:
    """Each deployment in turn on one broker: the dev stack's Redis node, then a local
    three-primary cluster (six ``redis-server`` processes, as in the tests)."""
    results: dict[str, Any] = {}
    async with bench_stack("sla") as (stack, workdir):
        for deployment in deployments:
            if deployment == "node":
                results["node"] = await measure(
                    stack, workdir, stack.redis.url, total_timers, rate, seconds, burst
                )
                continue
            cluster = LocalRedisCluster(directory=workdir / "cluster")
            await cluster.start()
            try:
                results["cluster"] = await measure(
                    stack, workdir, cluster.url, total_timers, rate, seconds, burst
                )
                results["cluster"]["primaries"] = LocalRedisCluster.PRIMARIES
            finally:
                cluster.stop()
    rounded: dict[str, Any] = _rounded(results)
    return rounded


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3) if abs(value) < 100 else round(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--burst", type=int, default=50_000, help="timers all due at once, for the capacity"
    )
    parser.add_argument(
        "--redis",
        choices=("node", "cluster", "both"),
        default="both",
        help="one Redis node, a local three-primary cluster, or both in turn (default)",
    )
    args = parser.parse_args()
    due = args.rate * (args.seconds // 2) * POINTS_PER_CLOCK
    if args.timers <= due:
        parser.error(f"--timers must exceed the {due:,} points falling due (rate x seconds)")
    deployments = ["node", "cluster"] if args.redis == "both" else [args.redis]
    report(
        "sla_timers",
        asyncio.run(run(args.timers, args.rate, args.seconds, args.burst, deployments)),
    )


if __name__ == "__main__":
    main()
