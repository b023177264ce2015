"""The one seam through which the wall clock enters Switchboard's logic.

Logic never reads the time itself: it takes a ``now`` argument, or a :data:`Clock` that the
service wires at start-up (:func:`system_clock` in production). Tests pass a fixed instant
instead, so a test that fixes a date never meets the real calendar, whatever day it runs on
(``make test-clock`` runs the suite a year ahead and a year back to show it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Answers the current instant, timezone-aware."""


def system_clock() -> datetime:
    """The machine's wall clock, in UTC: what services wire in production."""
    return datetime.now(UTC)  # clock seam


def fixed_clock(at: datetime) -> Clock:
    """A clock that always answers ``at`` (tests and replays)."""
    return lambda: at
