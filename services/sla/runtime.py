"""What the SLA service builds from one configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.common.config import ClockPolicy, Config, build_calendars
from libs.common.events import SlaMetric
from libs.domain.calendar import BusinessCalendar


@dataclass(frozen=True, slots=True)
class SlaRuntime:
    config: Config
    calendars: dict[str, BusinessCalendar]

    def clock_policy(self, policy: str, metric: SlaMetric) -> ClockPolicy | None:
        """The policy's settings for one metric; None when it has no such clock (or the
        policy is gone from the configuration)."""
        found = self.config.sla_policies.get(policy)
        return getattr(found, metric) if found is not None else None

    def knows(self, policy: str, metric: SlaMetric, queue: str) -> bool:
        """Whether a clock of this policy, metric and queue can be computed here."""
        return self.clock_policy(policy, metric) is not None and queue in self.config.queues

    def affects(self, previous: SlaRuntime, policy: str, metric: SlaMetric, queue: str) -> bool:
        """Whether going from ``previous`` to this configuration changed how such a clock is
        counted: its window or warnings, or the calendar (or that calendar's hours)."""
        if not previous.knows(policy, metric, queue):
            return self.knows(policy, metric, queue)
        if self.clock_policy(policy, metric) != previous.clock_policy(policy, metric):
            return True
        if not self.knows(policy, metric, queue):
            return False
        name = self.config.policy_calendar(policy, queue)
        before = previous.config.policy_calendar(policy, queue)
        if name != before:
            return True
        return name is not None and self.config.calendars.get(
            name
        ) != previous.config.calendars.get(name)

    def calendar(self, name: str | None) -> BusinessCalendar | None:
        return self.calendars[name] if name is not None else None

    @classmethod
    def build(cls, config: Config, _: Path) -> SlaRuntime:
        return cls(config=config, calendars=build_calendars(config))
