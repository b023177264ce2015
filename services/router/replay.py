"""``switchboard replay``: how would past traffic have been routed under a new configuration?

Reads ``message.received`` events from Kafka (optionally a time range), decides each one under
the running and the proposed configuration with the router's own pure decision function, and
prints the differences: counts per queue and per rule, how many first-response deadlines move,
and example conversations. It produces nothing and writes no state, so a platform team can
check a rule change against real traffic before deploying it. Replay sees each message on its
own: a customer's tier comes from the configuration, and conversation stickiness (a returning
customer kept in their open conversation's queue) is not replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from libs.common.config import ConfigError, load_config
from libs.common.events import MessageReceived
from libs.common.kafka.history import read_history
from libs.common.topics import Topics
from libs.domain.deadlines import compute_deadline
from services.router.customer_profiles import tier_for
from services.router.route import decide
from services.router.runtime import RouterRuntime

EXAMPLES = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    queue: str
    rule: str
    sla_policy: str | None
    issue_type: str
    deadline: datetime | None


@dataclass(frozen=True, slots=True)
class Difference:
    message: MessageReceived
    before: Outcome
    after: Outcome


@dataclass
class ReplayReport:
    messages: int = 0
    queues_before: Counter[str] = field(default_factory=Counter)
    queues_after: Counter[str] = field(default_factory=Counter)
    rules_before: Counter[str] = field(default_factory=Counter)
    rules_after: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    deadlines_moved: int = 0

    @property
    def rerouted(self) -> int:
        return sum(d.before.queue != d.after.queue for d in self.differences)


def outcome(runtime: RouterRuntime, message: MessageReceived) -> Outcome:
    config = runtime.config
    verdict = decide(runtime, message, tier_for(message.customer, config.customers.tiers))
    decision = verdict.decision
    deadline = None
    if decision.sla_policy is not None:
        clock = config.sla_policies[decision.sla_policy].first_response
        calendar_name = config.policy_calendar(decision.sla_policy, decision.queue)
        calendar = runtime.calendars.get(calendar_name) if calendar_name else None
        if clock is not None:
            deadline = compute_deadline(clock, message.received_at, calendar, explained=False).due
    return Outcome(
        queue=decision.queue,
        rule=decision.rule,
        sla_policy=decision.sla_policy,
        issue_type=verdict.classification.issue_type,
        deadline=deadline,
    )


def compare(
    messages: Iterable[MessageReceived], before: RouterRuntime, after: RouterRuntime
) -> ReplayReport:
    report = ReplayReport()
    for message in messages:
        old, new = outcome(before, message), outcome(after, message)
        report.messages += 1
        report.queues_before[old.queue] += 1
        report.queues_after[new.queue] += 1
        report.rules_before[old.rule] += 1
        report.rules_after[new.rule] += 1
        if old.deadline != new.deadline:
            report.deadlines_moved += 1
        if old != new:
            report.differences.append(Difference(message, old, new))
    return report


async def read_inbound(
    bootstrap_servers: str,
    topic: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout: float = 60.0,
) -> list[MessageReceived]:
    """Every ``message.received`` on the topic (received in [since, until)), in offset order
    per partition. Reads without a consumer group, so it moves no committed offsets."""
    return [
        event.data
        for event in await read_history(bootstrap_servers, topic, timeout=timeout)
        if isinstance(event.data, MessageReceived)
        and (since is None or event.data.received_at >= since)
        and (until is None or event.data.received_at < until)
    ]


def format_report(report: ReplayReport, examples: int = EXAMPLES) -> str:
    lines = [
        f"{report.messages} messages replayed: {report.rerouted} to another queue, "
        f"{len(report.differences)} decided differently, "
        f"{report.deadlines_moved} first-response deadlines moved",
        "",
        f"{'queue':<24} {'before':>8} {'after':>8} {'change':>8}",
    ]
    for queue in sorted(set(report.queues_before) | set(report.queues_after)):
        old, new = report.queues_before[queue], report.queues_after[queue]
        lines.append(f"{queue:<24} {old:>8} {new:>8} {new - old:>+8}")
    lines += ["", f"{'rule':<24} {'before':>8} {'after':>8} {'change':>8}"]
    for rule in sorted(set(report.rules_before) | set(report.rules_after)):
        old, new = report.rules_before[rule], report.rules_after[rule]
        lines.append(f"{rule:<24} {old:>8} {new:>8} {new - old:>+8}")
    if report.differences:
        lines += ["", "examples:"]
    for difference in report.differences[:examples]:
        message = difference.message
        lines.append(f"- {message.channel} {message.provider_message_id} {message.text[:60]!r}")
        lines.append(f"    before: {_describe(difference.before)}")
        lines.append(f"    after:  {_describe(difference.after)}")
    return "\n".join(lines)


def _describe(outcome: Outcome) -> str:
    due = f", due {outcome.deadline:%Y-%m-%d %H:%M} UTC" if outcome.deadline else ""
    return (
        f"{outcome.queue} (rule {outcome.rule}, issue {outcome.issue_type}, "
        f"policy {outcome.sla_policy}{due})"
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchboard replay", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the proposed configuration")
    parser.add_argument(
        "--current",
        type=Path,
        default=Path(os.environ.get("SWITCHBOARD_CONFIG", "config/store.yaml")),
        help="the running configuration (default: $SWITCHBOARD_CONFIG)",
    )
    parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time, inclusive")
    parser.add_argument("--until", type=datetime.fromisoformat, help="ISO time, exclusive")
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    args = parser.parse_args(argv)
    try:
        before = RouterRuntime.build(load_config(args.current), args.current)
        after = RouterRuntime.build(load_config(args.config), args.config)
    except ConfigError as exc:
        print(f"switchboard replay: {exc}", file=sys.stderr)
        return 2
    topics = Topics.with_prefix(os.environ.get("SWITCHBOARD_TOPIC_PREFIX", "switchboard."))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    messages = asyncio.run(
        read_inbound(bootstrap, topics.inbound, since=args.since, until=args.until)
    )
    print(format_report(compare(messages, before, after), args.examples))
    return 0
