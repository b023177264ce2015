"""A queue's relaxation ladder: how long a conversation waits for an agent who meets every
requirement before push assignment asks less of the agent.

Step 0 asks everything the rule required (skills and language); step ``i`` (1-based, the
queue's ``relax`` list in the configuration) applies once the conversation has waited its
``after`` since it opened, and drops what it and every earlier step name. One step past the
configured ones is the floor nobody configures away: once the conversation's first-response
clock warned, anyone online in the queue may be offered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from libs.common.config import Config
from libs.common.config.schema import RequirementName

BITS: Final[dict[RequirementName, int]] = {"skills": 1, "language": 2}
"""How the assignment script names a dropped requirement."""
WARNING_NOTE: Final = "first-response clock warned: offered to anyone online in the queue"


@dataclass(frozen=True, slots=True)
class LadderStep:
    after: timedelta
    dropped: frozenset[RequirementName]
    """Every requirement no longer asked from this step on (this step's and earlier ones')."""


@dataclass(frozen=True, slots=True)
class Ladder:
    steps: tuple[LadderStep, ...] = ()

    @classmethod
    def of(cls, config: Config, queue: str) -> Ladder:
        """The ladder of ``queue`` (none for a queue the configuration no longer has)."""
        spec = config.queues.get(queue)
        steps: list[LadderStep] = []
        dropped: frozenset[RequirementName] = frozenset()
        for step in spec.relax if spec is not None else ():
            dropped |= frozenset(step.drop)
            steps.append(LadderStep(step.after, dropped))
        return cls(tuple(steps))

    def as_argument(self) -> str:
        """The ladder as the assignment script reads it: ``{after ms}:{dropped bits}`` each."""
        return " ".join(
            f"{int(step.after.total_seconds() * 1000)}:{sum(BITS[name] for name in step.dropped)}"
            for step in self.steps
        )

    def dropped(self, step: int) -> frozenset[RequirementName]:
        """What step ``step`` (as :meth:`describe` counts) no longer asks."""
        if step == 0:
            return frozenset()
        if step > len(self.steps):
            return frozenset(BITS)
        return self.steps[step - 1].dropped

    def describe(self, step: int) -> str:
        """What step ``step`` (as the script counts: 0 none, len + 1 the warning) means."""
        if step == 0:
            return "every requirement asked again"
        if step > len(self.steps):
            return WARNING_NOTE
        at = self.steps[step - 1]
        kept = sorted(set(BITS) - at.dropped)
        return (
            f"waited {_duration(at.after)} without an offer: ladder step {step} drops "
            f"{' and '.join(sorted(at.dropped))}"
            + (f", keeps {' and '.join(kept)}" if kept else ": anyone in the queue")
        )


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"
