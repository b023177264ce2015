"""Cross-checks between sections, after each section validated on its own: names that point
nowhere, templates the follow-ups need, opening hours that overlap, rules that can never
match. Each finding is a path into the file (for its line) and a message."""

from __future__ import annotations

import itertools
from pathlib import Path

from libs.common.config.schema import (
    CHANNELS,
    STATUS_UPDATE_TEMPLATE,
    SURVEY_TEMPLATES,
    CalendarConfig,
    Channel,
    ClockPolicy,
    Config,
    Rule,
    RuleConditions,
    event_type_named,
)
from libs.domain.calendar import DailyInterval

Path_ = tuple[str | int, ...]


def cross_check(config: Config, base_dir: Path) -> list[tuple[Path_, str]]:
    """Problems between sections: names that point nowhere, rules that can never match."""
    found: list[tuple[Path_, str]] = []
    for name, calendar in config.calendars.items():
        found.extend(_calendar_problems(name, calendar))
    for name, queue in config.queues.items():
        if queue.calendar is not None and queue.calendar not in config.calendars:
            found.append((("queues", name, "calendar"), f"no calendar named {queue.calendar!r}"))
    for name, policy in config.sla_policies.items():
        if policy.calendar is not None and policy.calendar not in config.calendars:
            found.append(
                (("sla_policies", name, "calendar"), f"no calendar named {policy.calendar!r}")
            )
    found.extend(_follow_up_problems(config))
    for name, issue_type in config.issue_types.items():
        for examples_file in issue_type.examples_files:
            if not (base_dir / examples_file).is_file():
                found.append((("issue_types", name, "examples_file"), f"no file {examples_file!r}"))
    for index, rule in enumerate(config.rules):
        found.extend(_rule_problems(config, index, rule))
    incidents = config.incidents
    if incidents is not None:
        if incidents.queue is not None and incidents.queue not in config.queues:
            found.append((("incidents", "queue"), f"no queue named {incidents.queue!r}"))
        if incidents.template is not None and incidents.template not in config.templates:
            found.append((("incidents", "template"), f"no template named {incidents.template!r}"))
        for name in incidents.issue_types or ():
            if name not in config.issue_types:
                found.append((("incidents", "issue_types"), f"no issue type named {name!r}"))
    seen_hooks: set[str] = set()
    for index, hook in enumerate(config.webhooks):
        if hook.name in seen_hooks:
            found.append((("webhooks", index, "name"), f"second webhook named {hook.name!r}"))
        seen_hooks.add(hook.name)
        for position, event in enumerate(hook.events):
            if event_type_named(event) is None:
                found.append((("webhooks", index, "events", position), f"no event {event!r}"))
    return found


def _follow_up_problems(config: Config) -> list[tuple[Path_, str]]:
    """Status updates only on resolution clocks, and the templates the follow-ups need for
    every channel they can go out on."""
    found: list[tuple[Path_, str]] = []
    updating: set[str] = set()
    for name, policy in config.sla_policies.items():
        for metric in ("first_response", "next_response", "resolution"):
            clock: ClockPolicy | None = getattr(policy, metric)
            if clock is None or not clock.update_customer:
                continue
            if metric != "resolution":
                found.append(
                    (
                        ("sla_policies", name, metric, "update_customer"),
                        "status updates run on the resolution clock only",
                    )
                )
            else:
                updating.add(name)
    channels: set[Channel] = set()
    for rule in config.rules:
        if rule.then.sla_policy in updating:
            channels.update(rule.when.channel or CHANNELS)
    if not config.outbound.social_auto_reply:
        channels.discard("social")  # outbound never sends automatic public replies then
    if updating:
        at: Path_ = ("sla_policies", min(updating), "resolution", "update_customer")
        found.extend(_template_problems(config, STATUS_UPDATE_TEMPLATE, channels, at))
    if config.surveys is not None:
        wanted = set(config.surveys.channels)
        kinds = {config.surveys.kind, *config.surveys.queues.values()}
        for kind in sorted(kinds):
            template = SURVEY_TEMPLATES[kind]
            found.extend(_template_problems(config, template, wanted, ("surveys", "channels")))
        found.extend(
            (("surveys", "queues", queue), f"no queue named {queue!r}")
            for queue in config.surveys.queues
            if queue not in config.queues
        )
    return found


def _template_problems(
    config: Config, name: str, channels: set[Channel], at: Path_
) -> list[tuple[Path_, str]]:
    have = config.templates.get(name, {})
    return [
        (at, f"no template {name!r} for channel {channel!r}")
        for channel in sorted(channels)
        if channel not in have
    ]


def _calendar_problems(name: str, calendar: CalendarConfig) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    days: list[tuple[Path_, list[str]]] = [
        (("calendars", name, "hours", day), spans) for day, spans in calendar.hours.items()
    ]
    days += [
        (("calendars", name, "special_hours", str(day)), spans)
        for day, spans in calendar.special_hours.items()
    ]
    for path, spans in days:
        intervals = []
        for index, text in enumerate(spans):
            try:
                intervals.append(DailyInterval.parse(text))
            except ValueError as exc:
                found.append(((*path, index), str(exc)))
        ordered = sorted(intervals, key=lambda i: i.start)
        for first, second in itertools.pairwise(ordered):
            if first.crosses_midnight or second.start < first.end:
                found.append((path, f"opening hours overlap: {first} and {second}"))
    return found


def _rule_problems(config: Config, index: int, rule: Rule) -> list[tuple[Path_, str]]:
    at: Path_ = ("rules", index)
    found: list[tuple[Path_, str]] = []
    if rule.then.queue not in config.queues:
        found.append(((*at, "then", "queue"), f"no queue named {rule.then.queue!r}"))
    if rule.then.sla_policy is not None and rule.then.sla_policy not in config.sla_policies:
        found.append(((*at, "then", "sla_policy"), f"no SLA policy named {rule.then.sla_policy!r}"))
    named = rule.then.next_response_policy
    if named is not None and (
        named not in config.sla_policies or not config.sla_policies[named].next_response
    ):
        found.append(
            ((*at, "then", "next_response_policy"), f"no SLA policy {named!r} with a next_response")
        )
    if rule.then.auto_reply is not None and rule.then.auto_reply not in config.templates:
        found.append(((*at, "then", "auto_reply"), f"no template named {rule.then.auto_reply!r}"))
    after = rule.then.after_hours
    if after is not None:
        if after.mode == "follow_the_sun" and after.queue is None:
            found.append(((*at, "then", "after_hours"), "follow_the_sun needs a queue"))
        if after.queue is not None and after.queue not in config.queues:
            found.append(((*at, "then", "after_hours", "queue"), f"no queue named {after.queue!r}"))
        if after.notify is not None and after.notify not in config.templates:
            found.append(
                ((*at, "then", "after_hours", "notify"), f"no template named {after.notify!r}")
            )
    for issue_type in rule.when.issue_type or ():
        if issue_type != "unknown" and issue_type not in config.issue_types:
            found.append(((*at, "when", "issue_type"), f"no issue type named {issue_type!r}"))
    for earlier_index, earlier in enumerate(config.rules[:index]):
        if _shadows(earlier.when, rule.when):
            found.append(
                (
                    at,
                    f"unreachable: rule {earlier.name!r} (rules.{earlier_index}) matches "
                    "everything this rule matches",
                )
            )
            break
    return found


def _shadows(earlier: RuleConditions, later: RuleConditions) -> bool:
    """True when every message ``later`` matches is already matched by ``earlier``."""
    for name in RuleConditions.model_fields:
        wide = getattr(earlier, name)
        if wide is None:
            continue
        narrow = getattr(later, name)
        if narrow is None:
            return False
        if isinstance(wide, list):
            if not set(narrow) <= set(wide):
                return False
        elif wide != narrow:
            return False
    return True
