"""Consumer group names follow the topic prefix: deployments (and tests) sharing a broker never
share a group, and the default deployment's names stay the ones its KEDA triggers name."""

from __future__ import annotations

import pytest

from libs.common.topics import DEFAULT_PREFIX, consumer_group


def test_the_default_prefix_keeps_the_names() -> None:
    assert consumer_group("switchboard-router", DEFAULT_PREFIX) == "switchboard-router"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("staging.", "staging-sla"), ("t0a1b2c3.", "t0a1b2c3-sla"), ("eu-", "eu-sla")],
)
def test_another_prefix_gets_groups_of_its_own(prefix: str, expected: str) -> None:
    assert consumer_group("switchboard-sla", prefix) == expected


def test_an_empty_prefix_keeps_the_default_stem() -> None:
    assert consumer_group("switchboard-hub", "") == "switchboard-hub"


def test_a_group_not_named_for_the_default_deployment_is_refused() -> None:
    with pytest.raises(ValueError, match="does not start with switchboard-"):
        consumer_group("router", DEFAULT_PREFIX)
