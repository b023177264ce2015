"""The supervisor's "now" figures of every configured queue as Prometheus gauges.

The day's figures are already series of their own (``switchboard_sla_events_total``,
``switchboard_sla_response_seconds``, ``switchboard_survey_scores``: Grafana takes their
increase over a day); what waits now is state in Redis, so each hub replica reads it every
``EVERY_SECONDS`` and sets the same values (dashboards aggregate these with ``max``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.logs import get_logger
from services.hub.figures import Figures

log = get_logger(__name__)
EVERY_SECONDS: Final = 5.0
GAUGES: Final = (
    metrics.hub_conversations_waiting,
    metrics.hub_conversations_held,
    metrics.hub_oldest_wait_seconds,
    metrics.hub_conversations_at_risk,
)


class FigureGauges:
    def __init__(self, figures: Figures, queues: Callable[[], Iterable[str]], clock: Clock) -> None:
        self._figures = figures
        self._queues = queues
        self._clock = clock
        self._shown: set[str] = set()

    async def run(self, every: float = EVERY_SECONDS) -> None:
        """Refresh the gauges every ``every`` seconds until cancelled; a Redis outage leaves
        the last values standing and is logged."""
        while True:
            try:
                await self.refresh(self._clock())
            except RedisError as exc:
                log.warning("queue gauges not refreshed", error=repr(exc))
            await asyncio.sleep(every)

    async def refresh(self, now: datetime) -> None:
        queues = set(self._queues())
        for queue in sorted(queues):
            figures = await self._figures.now(queue, now)
            metrics.hub_conversations_waiting.labels(queue).set(figures["waiting"])
            metrics.hub_conversations_held.labels(queue).set(figures["open"] - figures["waiting"])
            metrics.hub_oldest_wait_seconds.labels(queue).set(figures["oldest_wait_seconds"] or 0)
            metrics.hub_conversations_at_risk.labels(queue).set(figures["at_risk"])
        for gone in self._shown - queues:  # a queue the configuration no longer has
            for gauge in GAUGES:
                gauge.remove(gone)
        self._shown = queues
