"""Router throughput, next to a raw aiokafka consume -> produce passthrough.

The passthrough reads a pre-filled inbound topic; each router variant then starts as its own
process(es) (``python -m services.router``), joins its consumer group, and routes an inbound
topic filled once the group is stable, on the same broker in the same run. The configuration
has 200 issue types and 100 rules. Variants: phrases and patterns only; with the example-based
model in the path (27 of the types learn from the shipped customer-service examples); the same
with two router processes sharing the 8 partitions; and the same on a local Redis Cluster of
three primaries (a replica each) instead of the dev stack's Redis node.

    python -m bench.router_throughput [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import random
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.harness import (
    bench_stack,
    fill,
    output_rate,
    relay,
    report,
    running_service,
    wait_for_group,
)
from libs.common.events import Channel, CustomerIdentity, Event, MessageReceived, event_id
from libs.common.topics import Topics, consumer_group
from services.router.app import GROUP_ID as ROUTER_GROUP
from tooling.devstack import DevStack, LocalRedisCluster, create_topics

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "config" / "examples" / "customer-service.csv"
ISSUE_TYPES = 200
RULES = 100
CUSTOMERS = 2_000
WORDS = [
    "parcel",
    "invoice",
    "refund",
    "voucher",
    "account",
    "login",
    "password",
    "card",
    "charge",
    "courier",
    "address",
    "discount",
    "order",
    "basket",
    "delivery",
    "warranty",
    "size",
    "colour",
    "return",
    "exchange",
    "subscription",
    "newsletter",
    "receipt",
    "payment",
    "bank",
    "coupon",
    "gift",
    "tracking",
    "label",
    "damaged",
    "missing",
    "late",
]


def utterances() -> list[tuple[str, str]]:
    with EXAMPLES.open(encoding="utf-8-sig", newline="") as handle:
        return [(row["utterance"], row["intent"]) for row in csv.DictReader(handle)]


def configuration(with_model: bool) -> dict[str, Any]:
    """200 issue types (phrases + a pattern each; with the model, the 27 example intents
    learn from the examples file) and 100 rules on channel and issue type, none shadowed."""
    rng = random.Random(7)
    intents = sorted({intent for _, intent in utterances()})
    names = intents + [f"synthetic_{n:03d}" for n in range(ISSUE_TYPES - len(intents))]
    issue_types: dict[str, Any] = {}
    for n, name in enumerate(names):
        spec: dict[str, Any] = {
            "impact": ("deep", "broad", "shallow")[n % 3],
            "phrases": [f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}" for _ in range(3)],
            "patterns": [rf"\bref{n:03d}-\d+\b"],
        }
        if with_model and name in intents:
            spec["examples_file"] = "examples/customer-service.csv"
        issue_types[name] = spec
    channels = (["sms"], ["email"], ["chat"], ["sms", "chat"], ["email", "social"])
    rules = [
        {
            "name": f"rule-{n:03d}",
            "when": {"issue_type": [names[2 * n], names[2 * n + 1]], "channel": channels[n % 5]},
            "then": {"queue": f"queue-{n % 10}", "priority": 1 + n % 5, "sla_policy": "standard"},
        }
        for n in range(RULES - 1)
    ]
    rules.append({"name": "catch-all", "then": {"queue": "queue-0", "sla_policy": "standard"}})
    return {
        "version": 1,
        "calendars": {
            "office": {
                "timezone": "Europe/Berlin",
                "hours": {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            }
        },
        "queues": {f"queue-{n}": {"calendar": "office"} for n in range(10)},
        "sla_policies": {
            "standard": {
                "first_response": {"within": "1h", "warn_before": ["15m"]},
                "resolution": {"within": "24h"},
            }
        },
        "issue_types": issue_types,
        "rules": rules,
    }


def messages(count: int) -> list[tuple[str, Event]]:
    rng = random.Random(11)
    texts = [text for text, _ in utterances()]
    out = []
    now = datetime.now(UTC)
    for n in range(count):
        phone = f"+1415{rng.randrange(CUSTOMERS):07d}"
        channel: Channel = ("sms", "email", "chat")[n % 3]
        message = MessageReceived(
            channel=channel,
            provider="bench",
            provider_message_id=f"bench-{n}",
            thread_key=f"{channel}:{phone}",
            customer=CustomerIdentity(phone=phone),
            text=rng.choice(texts),
            received_at=now,
        )
        event = Event(
            id=event_id("bench", str(n)),
            source="/bench",
            subject=message.thread_key,
            time=now,
            data=message,
        )
        out.append((message.thread_key, event))
    return out


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    with_model: bool
    processes: int
    redis: str  # "node" (the dev stack's) or "cluster" (three primaries, a replica each)


VARIANTS = (
    Variant("without_model", with_model=False, processes=1, redis="node"),
    Variant("with_model", with_model=True, processes=1, redis="node"),
    Variant("with_model_two_processes", with_model=True, processes=2, redis="node"),
    Variant("with_model_on_cluster", with_model=True, processes=1, redis="cluster"),
)


async def route(
    stack: DevStack, workdir: Path, prefix: str, variant: Variant, redis_url: str, count: int
) -> float:
    """Routed messages per second: the variant's routers start, join their group and settle
    before the inbound topic fills, so every process routes from the first message on."""
    topics = Topics.with_prefix(prefix)
    await create_topics(stack.broker.bootstrap_servers, topics.all())
    config = workdir / f"{variant.name}.yaml"
    config.write_text(yaml.safe_dump(configuration(variant.with_model)))
    async with contextlib.AsyncExitStack() as routers:
        for number in range(variant.processes):
            await routers.enter_async_context(
                running_service(
                    stack,
                    "router",
                    prefix,
                    workdir / f"{variant.name}-{number}.log",
                    ready_timeout=120,
                    environment={"SWITCHBOARD_CONFIG": str(config), "REDIS_URL": redis_url},
                )
            )
        bootstrap = stack.broker.bootstrap_servers
        group = consumer_group(ROUTER_GROUP, prefix)
        await wait_for_group(bootstrap, group, variant.processes, timeout=60)
        await fill(bootstrap, topics.inbound, messages(count))
        rate = await output_rate(bootstrap, topics.routed, count, 900)
    return rate.per_second


@contextlib.asynccontextmanager
async def redis_for(variant: Variant, stack: DevStack, workdir: Path) -> AsyncIterator[str]:
    """The variant's REDIS_URL: the dev stack's node, or a cluster started for the variant
    alone and stopped after it, so no other variant's load runs beside its nodes."""
    if variant.redis == "node":
        yield stack.redis.url
        return
    cluster = LocalRedisCluster(directory=workdir / "cluster")
    await cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


async def run(count: int) -> dict[str, Any]:
    async with bench_stack("router") as (stack, workdir):
        bootstrap = stack.broker.bootstrap_servers
        results: dict[str, Any] = {"messages": count, "issue_types": ISSUE_TYPES, "rules": RULES}
        prefix = f"b{uuid.uuid4().hex[:6]}."
        topics = Topics.with_prefix(prefix)
        await create_topics(bootstrap, [*topics.all(), f"{prefix}passthrough"])
        await fill(bootstrap, topics.inbound, messages(count))

        ceiling_task = asyncio.create_task(
            relay(bootstrap, topics.inbound, f"{prefix}passthrough", count)
        )
        ceiling = await output_rate(bootstrap, f"{prefix}passthrough", count, timeout=600)
        await ceiling_task
        results["passthrough_per_second"] = round(ceiling.per_second)

        (workdir / "examples").mkdir()
        shutil.copy(EXAMPLES, workdir / "examples" / EXAMPLES.name)
        for variant in VARIANTS:
            async with redis_for(variant, stack, workdir) as redis_url:
                per_second = await route(
                    stack, workdir, f"{prefix}{variant.name}.", variant, redis_url, count
                )
            results[f"router_{variant.name}_per_second"] = round(per_second)
            results[f"router_{variant.name}_ratio"] = round(per_second / ceiling.per_second, 3)
        one = results["router_with_model_per_second"]
        results["two_processes_to_one"] = round(
            results["router_with_model_two_processes_per_second"] / one, 2
        )
        results["cluster_to_node"] = round(
            results["router_with_model_on_cluster_per_second"] / one, 2
        )
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    report("router_throughput", asyncio.run(run(args.messages)))


if __name__ == "__main__":
    main()
