"""A response clock is met only by a reply that went out: the send receipt of the agent's reply
(the provider accepted it), or an agent's explicit word that the customer was reached another
way. A reply suppressed (the customer sent STOP), failed or lost leaves the clock running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from libs.common.events import AgentActionKind, CommandKind, ReceiptStatus
from tests.integration.sla.conftest import LA, Keeper, action, kinds, receipt, routed

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
ANSWERED = MONDAY + timedelta(minutes=10)


@dataclass(frozen=True)
class Answer:
    name: str
    agent: AgentActionKind = "reply"
    receipt: ReceiptStatus | None = "sent"
    command: CommandKind = "agent_reply"
    met: bool = False


ANSWERS = [
    Answer("reply accepted by the provider", met=True),
    Answer("reply delivered", receipt="delivered", met=True),
    Answer("reply suppressed: the customer sent STOP", receipt="suppressed"),
    Answer("reply refused by the provider", receipt="failed"),
    Answer("reply out of retries", receipt="dead-lettered"),
    Answer("reply interrupted mid-send", receipt="unknown"),
    Answer("reply with no receipt yet", receipt=None),
    Answer("acknowledgement sent, no agent reply", agent="claim", command="auto_ack"),
    Answer("customer reached another way", agent="reached", receipt=None, met=True),
]


@pytest.mark.parametrize("case", ANSWERS, ids=lambda c: c.name)
async def test_first_response_is_met_only_when_the_customer_was_reached(
    keeper: Keeper, case: Answer
) -> None:
    conversation = f"sent-{ANSWERS.index(case)}"
    await keeper.feed(routed(conversation, MONDAY))
    events = await keeper.feed(action(conversation, case.agent, ANSWERED))
    if case.receipt is not None:
        answer = receipt(conversation, case.receipt, case.command)
        events += await keeper.feed(answer, at=ANSWERED)
    clock = await keeper.clock(conversation, "first_response")
    assert clock is not None
    if case.met:
        assert kinds(events) == [("first_response", "met")]
        assert events[0].remaining_seconds == 50 * 60  # met at the reply, 10 minutes in
        assert clock.status == "met"
    else:
        assert events == []
        assert clock.status == "running"
        assert await keeper.timers.size(3) == 2  # its warning and breach still to come


async def test_a_reply_sent_after_a_suppressed_one_meets_the_clock(keeper: Keeper) -> None:
    await keeper.feed(routed("sent-again", MONDAY))
    assert await keeper.reply("sent-again", ANSWERED, status="suppressed") == []
    met = await keeper.reply("sent-again", ANSWERED + timedelta(minutes=5))
    assert kinds(met) == [("first_response", "met")]
    assert met[0].remaining_seconds == 45 * 60
