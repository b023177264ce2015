"""What the outbound service builds from one configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.common.config import Config
from services.outbound.templates import Templates


@dataclass(frozen=True, slots=True)
class OutboundRuntime:
    config: Config
    templates: Templates

    @classmethod
    def build(cls, config: Config, _: Path) -> OutboundRuntime:
        return cls(config=config, templates=Templates(config))
