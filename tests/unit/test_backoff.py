"""The one back-off formula: bounds, the cap, a ceiling that never falls, pinned draws."""

from __future__ import annotations

import random

import pytest

from libs.common.backoff import Backoff, Jitter


def test_the_ceiling_doubles_from_base_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(attempt) for attempt in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]


def test_the_ceiling_never_falls_and_a_long_streak_stays_at_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=5.0)
    ceilings = [backoff.ceiling(attempt) for attempt in range(1, 3000)]
    assert ceilings == sorted(ceilings)
    assert ceilings[-1] == 5.0  # no float overflow after thousands of failures in a row


def test_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=60.0, uniform=random.Random(7).uniform)
    for attempt in range(1, 12):
        for _ in range(50):
            assert 0.0 <= backoff.delay(attempt) <= backoff.ceiling(attempt)


def test_a_pinned_random_source_makes_the_delays_repeat() -> None:
    first = Backoff(base=0.2, cap=10.0, uniform=random.Random(3).uniform)
    second = Backoff(base=0.2, cap=10.0, uniform=random.Random(3).uniform)
    assert [first.delay(n) for n in range(1, 10)] == [second.delay(n) for n in range(1, 10)]
    top = Backoff(base=0.2, cap=10.0, uniform=lambda _low, high: high)
    assert [top.delay(n) for n in (1, 2, 7)] == [0.2, 0.4, 10.0]


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    backoff = Backoff(base=60.0, cap=300.0, jitter=Jitter.NONE)
    assert [backoff.delay(attempt) for attempt in range(1, 6)] == [60.0, 120.0, 240.0, 300.0, 300.0]


@pytest.mark.parametrize(
    ("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0), (float("nan"), 1.0)]
)
def test_a_base_that_is_not_positive_or_above_the_cap_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base=base, cap=cap)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="count from 1"):
        Backoff(base=1.0, cap=2.0).ceiling(0)
