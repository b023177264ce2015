"""What the outbound service builds from one configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from libs.common.config import Config
from services.outbound.templates import Templates
from services.outbound.webhooks import Subscriber, subscribers


@dataclass(frozen=True, slots=True)
class OutboundRuntime:
    config: Config
    templates: Templates
    webhooks: tuple[Subscriber, ...] = ()

    @classmethod
    def build(cls, config: Config, path: Path) -> OutboundRuntime:
        return cls(
            config=config,
            templates=Templates(config),
            webhooks=subscribers(config, path, os.environ),
        )
