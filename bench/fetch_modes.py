"""The fetch trade on the embedded broker at fixed rates: what each way of fetching costs the
whole pipeline in CPU and buys in latency, every mode meeting the same rates in one run.

The system, senders and agent are :mod:`bench.e2e_pipeline`'s (every service its own process,
signed SMS webhooks, each a new conversation, an agent on the hub's websocket); its load points
are shares of the rate each run sustains, so runs in different modes meet different rates.
Here each mode starts its own dev system and meets the same absolute rates. The modes are
:mod:`bench.idle_stack`'s: the dev stack's (nudged, 10 ms wait), polling with aiokafka's
default 500 ms wait, and polling with a 10 ms wait. Per rate: p50/p99 end to end and by hop,
each service's, the broker's and Redis's CPU (share of one core, and CPU milliseconds per
message), and the Redis commands per message (``INFO commandstats``, those run by scripts
included).

    python -m bench.fetch_modes [--rates 30,60,120] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any
from unittest import mock

from redis.asyncio import Redis

from bench.e2e_pipeline import progress, running_pipeline
from bench.harness import report
from bench.idle_stack import CONFIGURATIONS


async def commands_run(redis: Redis) -> int:
    """Commands Redis has run since it started."""
    stats = await redis.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


async def measure(mode: dict[str, str], rates: list[float], seconds: float) -> list[dict[str, Any]]:
    with mock.patch.dict(os.environ, mode):  # the dev stack's fetch settings come from it
        async with running_pipeline() as pipeline:
            redis = Redis.from_url(pipeline.system.stack.redis.url)
            points = []
            try:
                for rate in rates:
                    progress(f"{rate:g} msg/s for {seconds:g} s")
                    before = await commands_run(redis)
                    pipeline.usage.begin()
                    point = await pipeline.at_rate(rate, seconds)
                    used = pipeline.usage.end(point["messages"])
                    ran = await commands_run(redis) - before
                    points.append(
                        {
                            **point,
                            "usage": used,
                            "cpu_share_total": round(sum(p["cpu_share"] for p in used.values()), 2),
                            "redis_commands_per_message": round(ran / point["messages"], 1),
                        }
                    )
            finally:
                await redis.aclose()
            return points


async def run(rates: list[float], seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"rates": rates, "seconds_per_rate": seconds, "modes": {}}
    for name, mode in CONFIGURATIONS.items():
        progress(f"mode {name}")
        results["modes"][name] = {"fetch": mode, "points": await measure(mode, rates, seconds)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="30,60,120", help="messages per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    report("fetch_modes", asyncio.run(run(rates, args.seconds)))


if __name__ == "__main__":
    main()
