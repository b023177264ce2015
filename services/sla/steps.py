"""The steps of an SLA clock as a type, not strings with a colon in them.

A step's text (``str(step)``) is part of the id of the event or command it produces
(``event_id(conversation, metric, generation, str(step))``), and a redelivered input is only
recognised if it produces the same ids: so the text never changes. A one-off step is its kind
(``started``, ``met``, ``survey``); a timer point is its kind and its number among the clock's
points of that kind (``warning:0``, ``update:1``; the one breach is ``breached:0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from libs.common.events import SlaEventKind


class StepKind(StrEnum):
    STARTED = "started"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    RECOMPUTED = "recomputed"
    UPDATE = "update"
    """A status update sent to the customer: a follow-up command, not an SLA event."""
    SURVEY = "survey"
    """The survey after the resolution: a follow-up command, not an SLA event."""


_EVENT_KINDS: dict[StepKind, SlaEventKind] = {
    StepKind.STARTED: "started",
    StepKind.WARNING: "warning",
    StepKind.BREACHED: "breached",
    StepKind.MET: "met",
    StepKind.PAUSED: "paused",
    StepKind.RESUMED: "resumed",
    StepKind.CANCELLED: "cancelled",
    StepKind.RECOMPUTED: "recomputed",
}


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    index: int | None = None
    """The point's number among the clock's points of its kind; None for a one-off step."""

    def __str__(self) -> str:
        return self.kind.value if self.index is None else f"{self.kind.value}:{self.index}"

    @property
    def follow_up(self) -> bool:
        """A message to the customer (status update, survey) rather than an SLA event."""
        return self.kind not in _EVENT_KINDS

    @property
    def event_kind(self) -> SlaEventKind:
        """The kind of the SLA event this step publishes (a follow-up publishes none)."""
        return _EVENT_KINDS[self.kind]


BREACH = Step(StepKind.BREACHED, 0)
SURVEY = Step(StepKind.SURVEY)
