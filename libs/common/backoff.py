"""Capped exponential back-off: the one formula every retry loop and poller uses.

Retry ``attempt`` (1 for the first retry after a failure) waits at most
``base * 2 ** (attempt - 1)`` seconds, never more than ``cap``. Full jitter, a uniform draw
below that ceiling, spreads replicas that failed together (a Redis or broker outage) so they
do not come back in lockstep. A poller whose back-off stretches its poll interval takes no
jitter: a draw below the interval would poll a failing source sooner than a healthy one.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

_MAX_DOUBLINGS: Final = 900  # any cap is reached long before; bounded so no float overflows


class Jitter(enum.Enum):
    FULL = "full"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Backoff:
    """``uniform(low, high)`` is the random source of full jitter; a test pins it (a seeded
    ``random.Random(n).uniform``, or ``lambda _low, high: high`` for the top of each window)."""

    base: float
    cap: float
    jitter: Jitter = Jitter.FULL
    uniform: Callable[[float, float], float] = field(
        default=random.uniform, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and 0 < self.base <= self.cap):
            raise ValueError(f"back-off needs 0 < base <= cap, got {self.base} and {self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt``; it never falls as attempts grow."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        return min(self.cap, math.ldexp(self.base, min(attempt - 1, _MAX_DOUBLINGS)))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt``."""
        ceiling = self.ceiling(attempt)
        return self.uniform(0.0, ceiling) if self.jitter is Jitter.FULL else ceiling
