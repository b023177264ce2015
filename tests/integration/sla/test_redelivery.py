"""An input whose events never reached Kafka (the worker died or the broker went away before
acknowledging them) is redelivered, and must then say the same again. The keeper writes an
input's clocks only after its events were published, so the redelivery finds the clocks as
the first delivery did."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from aiokafka.errors import KafkaConnectionError

from libs.common.events import EventData, SlaMetric
from tests.integration.sla.conftest import LA, Keeper, action, kinds, receipt, record, routed

START = datetime(2026, 11, 23, 9, 0, tzinfo=LA)  # a Monday, inside the desk's hours


@pytest.mark.parametrize(
    ("answered", "redelivered", "expected"),
    [
        pytest.param(
            False,
            receipt("c"),
            [("first_response", "met")],
            id="an answer",
        ),
        pytest.param(
            False,
            action("c", "resolve", START + timedelta(minutes=20)),
            [("first_response", "cancelled"), ("resolution", "met")],
            id="a resolution",
        ),
        pytest.param(
            True,
            routed("c", START + timedelta(minutes=30), is_new=False),
            [("next_response", "started")],
            id="a follow-up",
        ),
    ],
)
async def test_a_redelivered_input_publishes_what_the_lost_delivery_did_not(
    keeper: Keeper, answered: bool, redelivered: EventData, expected: list[tuple[str, str]]
) -> None:
    await keeper.feed(routed("c", START))
    if answered:
        await keeper.reply("c", START + timedelta(minutes=5))
    metrics: tuple[SlaMetric, ...] = ("first_response", "next_response", "resolution")
    before = {m: await keeper.clock("c", m) for m in metrics}
    scheduled = list(keeper.scheduled)
    consumed = record(redelivered, at=START + timedelta(minutes=10))

    keeper.unreachable = True
    with pytest.raises(KafkaConnectionError):
        await keeper.deliver(consumed)
    assert {m: await keeper.clock("c", m) for m in metrics} == before
    assert keeper.scheduled == scheduled

    keeper.unreachable = False
    assert sorted(kinds(await keeper.deliver(consumed))) == expected
    assert {m: await keeper.clock("c", m) for m in metrics} != before
