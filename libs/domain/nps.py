"""Net Promoter Score: answers to "how likely are you to recommend us?" on a 0-10 scale.

Promoters answer 9-10, passives 7-8, detractors 0-6; the score is the percentage of promoters
minus the percentage of detractors (-100 to 100), rounded to a whole number with halves away
from zero, so a score and its mirror image round alike. No answers is no score (``None``), not
zero: zero means as many promoters as detractors.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

NpsGroup = Literal["promoter", "passive", "detractor"]
SCORES = range(0, 11)


def nps_group(score: int) -> NpsGroup:
    if score not in SCORES:
        raise ValueError(f"an NPS answer is 0-10, not {score}")
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


@dataclass(frozen=True, slots=True)
class NpsTally:
    """The answers of one queue and period, counted by group (tallies of periods add up)."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    def add(self, score: int) -> NpsTally:
        group = nps_group(score)
        return NpsTally(
            self.promoters + (group == "promoter"),
            self.passives + (group == "passive"),
            self.detractors + (group == "detractor"),
        )

    def __add__(self, other: NpsTally) -> NpsTally:
        return NpsTally(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    @property
    def answers(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> int | None:
        if not self.answers:
            return None
        exact = Decimal(100 * (self.promoters - self.detractors)) / self.answers
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
