"""What the SLA service builds from one configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.common.calendar import BusinessCalendar
from libs.common.config import ClockPolicy, Config, build_calendars
from libs.common.events import SlaMetric


@dataclass(frozen=True, slots=True)
class SlaRuntime:
    config: Config
    calendars: dict[str, BusinessCalendar]

    def clock_policy(self, policy: str, metric: SlaMetric) -> ClockPolicy | None:
        """The policy's settings for one metric; None when it has no such clock (or the
        policy is gone from the configuration)."""
        found = self.config.sla_policies.get(policy)
        return getattr(found, metric) if found is not None else None

    def calendar(self, name: str | None) -> BusinessCalendar | None:
        return self.calendars[name] if name is not None else None

    @classmethod
    def build(cls, config: Config, _: Path) -> SlaRuntime:
        return cls(config=config, calendars=build_calendars(config))
