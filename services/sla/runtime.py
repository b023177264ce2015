"""What the SLA service builds from one configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.common.calendar import BusinessCalendar
from libs.common.config import Config, build_calendars


@dataclass(frozen=True, slots=True)
class SlaRuntime:
    config: Config
    calendars: dict[str, BusinessCalendar]

    @classmethod
    def build(cls, config: Config, _: Path) -> SlaRuntime:
        return cls(config=config, calendars=build_calendars(config))
