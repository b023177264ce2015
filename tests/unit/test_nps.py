"""NPS scoring: %promoters (9-10) - %detractors (0-6), rounded half away from zero."""

from __future__ import annotations

import pytest

from libs.domain.nps import NpsTally, nps_group


@pytest.mark.parametrize(
    ("score", "group"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_groups(score: int, group: str) -> None:
    assert nps_group(score) == group


@pytest.mark.parametrize("score", [-1, 11])
def test_scores_outside_0_to_10_are_refused(score: int) -> None:
    with pytest.raises(ValueError, match="0-10"):
        nps_group(score)


@pytest.mark.parametrize(
    ("scores", "nps"),
    [
        ([], None),  # no answers: no score, not zero
        ([7, 8, 7], 0),  # all passives
        ([10, 9], 100),
        ([0, 6], -100),
        ([10, 0], 0),
        ([10, 7, 0, 9], 25),  # 50% promoters - 25% detractors
        ([10, 10, 7, 7, 7, 7, 0, 0], 0),
        ([9, 7, 7], 33),  # 33.33 rounds down
        ([9, 9, 7], 67),  # 66.67 rounds up
        ([0, 7, 7], -33),
        ([0, 0, 7], -67),
        ([9, 7, 7, 7, 7, 7, 7, 7], 13),  # 12.5: half away from zero
        ([0, 7, 7, 7, 7, 7, 7, 7], -13),
    ],
)
def test_net_promoter_score(scores: list[int], nps: int | None) -> None:
    tally = NpsTally()
    for score in scores:
        tally = tally.add(score)
    assert tally.answers == len(scores)
    assert tally.score == nps


def test_tallies_of_two_periods_add_up() -> None:
    morning = NpsTally().add(10).add(0)
    afternoon = NpsTally().add(9).add(8)
    assert morning + afternoon == NpsTally(promoters=2, passives=1, detractors=1)
    assert (morning + afternoon).score == 25
