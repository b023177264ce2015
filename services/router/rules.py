"""Routing rules: ordered, first match wins, every decision explained.

A rule's conditions are ANDed; a list condition holds when the message's value is one of the
list. ``open`` asks whether the rule's target queue is inside business hours now. After-hours
behaviour applies when the chosen queue is closed: ``follow_the_sun`` moves the conversation
to a queue that is open now, ``hold`` keeps it (the business-hours clock waits for opening).
A follow-the-sun rule whose other queue is closed too keeps the message as ``hold`` does, and
its decision says so: the customer's notice follows what was done, not what was meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from libs.common.config import Config, Rule
from libs.common.config.schema import Requires
from libs.common.events import Requirements
from libs.domain.calendar import BusinessCalendar
from libs.domain.text import normalise_text


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a rule may look at, gathered once per message."""

    channel: str
    issue_type: str
    impact: str | None
    tier: str | None
    language: str | None
    sender: str | None
    folded_text: str


class AfterHoursOutcome(StrEnum):
    """What was done with a message because its rule's queue was closed."""

    MOVED = "moved"
    """Followed the sun: the decision's queue is another one, open now."""
    HELD = "held"
    """Kept in the closed queue: its business-hours clock waits for the opening."""


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    queue: str
    priority: int
    sla_policy: str | None
    tags: tuple[str, ...]
    auto_reply: str | None
    after_hours_notify: str | None
    conditions: tuple[str, ...]
    notes: tuple[str, ...]
    after_hours: AfterHoursOutcome | None = None
    """Set when the rule's queue was closed; None when it was open (or has no after-hours)."""
    requires: Requirements | None = None
    """Who can answer the conversation (None: anyone in the queue)."""


class RoutingTable:
    """The rules of one configuration, ready to evaluate."""

    def __init__(self, config: Config, calendars: dict[str, BusinessCalendar]) -> None:
        self._config = config
        self._calendars = calendars
        self._rules = [_CompiledRule(rule) for rule in config.rules]
        # Most rules name issue types, so a message only needs the rules that name its type
        # or none at all: candidates per type, in rule order (first match still wins).
        generic = tuple(i for i, r in enumerate(config.rules) if r.when.issue_type is None)
        named = {t for r in config.rules for t in r.when.issue_type or ()}
        self._generic = generic
        self._candidates = {
            issue_type: tuple(
                i
                for i, r in enumerate(config.rules)
                if r.when.issue_type is None or issue_type in r.when.issue_type
            )
            for issue_type in named
        }
        self._fallback_queue = next(iter(config.queues))

    def is_open(self, queue: str, now: datetime) -> bool:
        calendar_name = self._config.queues[queue].calendar
        return calendar_name is None or self._calendars[calendar_name].is_open(now)

    def decide(self, facts: MessageFacts, now: datetime) -> Decision:
        for index in self._candidates.get(facts.issue_type, self._generic):
            compiled = self._rules[index]
            held = self._conditions_held(compiled, facts, now)
            if held is not None:
                return self._apply(compiled.rule, held, facts.language, now)
        return Decision(
            rule="(none)",
            queue=self._fallback_queue,
            priority=3,
            sla_policy=None,
            tags=(),
            auto_reply=None,
            after_hours_notify=None,
            conditions=(),
            notes=(f"no rule matched; fallback to the first queue {self._fallback_queue!r}",),
        )

    def _conditions_held(
        self, compiled: _CompiledRule, facts: MessageFacts, now: datetime
    ) -> tuple[str, ...] | None:
        """The conditions that held, or None as soon as one fails."""
        rule, when = compiled.rule, compiled.rule.when
        held: list[str] = []
        for name, allowed in compiled.sets:
            value = getattr(facts, name)
            if value not in allowed:
                return None
            held.append(f"{name}={value}")
        if when.sender is not None:
            sender = (facts.sender or "").lower()
            domain = sender.rpartition("@")[2]
            matched = next(
                (s for s in when.sender if s.lower() == sender or s.lower().lstrip("@") == domain),
                None,
            )
            if matched is None:
                return None
            held.append(f"sender={matched}")
        if when.keywords is not None:
            found = next((k for k in compiled.keywords if k in facts.folded_text), None)
            if found is None:
                return None
            held.append(f"keyword={found!r}")
        if when.open is not None:
            is_open = self.is_open(rule.then.queue, now)
            if is_open != when.open:
                return None
            held.append(f"queue {rule.then.queue} {'open' if is_open else 'closed'}")
        return tuple(held)

    def _apply(
        self, rule: Rule, held: tuple[str, ...], language: str | None, now: datetime
    ) -> Decision:
        then = rule.then
        queue, notes, notify, outcome = then.queue, [], None, None
        asked = requirements(then.requires, language) if then.requires is not None else None
        if asked is not None:
            notes.append(asked[1])
        after = then.after_hours
        if after is not None and not self.is_open(queue, now):
            notify, outcome = after.notify, AfterHoursOutcome.HELD
            if after.mode == "follow_the_sun" and after.queue is not None:
                if self.is_open(after.queue, now):
                    notes.append(f"{queue} closed: followed the sun to {after.queue}")
                    queue, outcome = after.queue, AfterHoursOutcome.MOVED
                else:
                    notes.append(f"{queue} closed and {after.queue} closed too: kept in {queue}")
            else:
                notes.append(f"{queue} closed: held until it opens, clock paused")
        return Decision(
            rule=rule.name,
            queue=queue,
            priority=then.priority,
            sla_policy=then.sla_policy,
            tags=tuple(then.tags),
            auto_reply=then.auto_reply,
            after_hours_notify=notify,
            conditions=held,
            notes=tuple(notes),
            after_hours=outcome,
            requires=asked[0] if asked is not None else None,
        )


def requirements(asked: Requires, language: str | None) -> tuple[Requirements, str] | None:
    """What a rule's ``requires`` asks of the agent for a message detected in ``language``, and
    the explanation's line about it (None when it asks nothing: no skills, and no language or
    none detected)."""
    detected = asked.language == "detected"
    wanted = language if detected else asked.language
    if not asked.skills and wanted is None:
        return None
    requires = Requirements(skills=tuple(sorted(set(asked.skills))), language=wanted)
    parts = [f"skills {', '.join(requires.skills)}"] if requires.skills else []
    if wanted is not None:
        parts.append(f"language {wanted}{' (detected)' if detected else ''}")
    return requires, "requires an agent with " + " and ".join(parts)


class _CompiledRule:
    """A rule with its set conditions as frozensets and its keywords normalised, once."""

    __slots__ = ("keywords", "rule", "sets")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        when = rule.when
        self.sets = tuple(
            (name, frozenset(allowed))
            for name, allowed in (
                ("channel", when.channel),
                ("issue_type", when.issue_type),
                ("impact", when.impact),
                ("tier", when.tier),
                ("language", when.language),
            )
            if allowed is not None
        )
        self.keywords = tuple(normalise_text(k) for k in when.keywords or ())
