"""The after-hours notice follows the decision that was taken, table-driven over Los Angeles
and Berlin open or closed and every channel: a new conversation gets exactly one message, and
what it says (moved, held, or nothing about opening hours) is what the router did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libs.common.config import build_calendars, load_config
from libs.common.events import Channel, CustomerIdentity, MessageReceived
from services.outbound.templates import Templates
from services.router.acknowledgement import acknowledgement
from services.router.conversation_state import Placement
from services.router.rules import AfterHoursOutcome, MessageFacts, RoutingTable

STORE = Path(__file__).parents[3] / "config" / "store.yaml"
CONFIG = load_config(STORE)
CALENDARS = build_calendars(CONFIG)
TABLE = RoutingTable(CONFIG, CALENDARS)
TEMPLATES = Templates(CONFIG)
WEEK_START = datetime(2026, 11, 30, 0, 7, tzinfo=UTC)  # a Monday with no holiday on either side


def instant(la_open: bool, berlin_open: bool) -> datetime:
    """The first instant of the week when the two desks are open or closed as asked."""
    for step in range(7 * 24 * 4):
        at = WEEK_START + timedelta(minutes=15 * step)
        if (TABLE.is_open("payments", at), TABLE.is_open("emea-desk", at)) == (
            la_open,
            berlin_open,
        ):
            return at
    raise AssertionError(f"no instant with LA open={la_open}, Berlin open={berlin_open}")


@dataclass(frozen=True)
class Case:
    la_open: bool
    berlin_open: bool
    channel: Channel
    queue: str | None  # where the message goes; None: no message at all (a public mention)
    says: AfterHoursOutcome | None  # the notice's outcome; None: the plain acknowledgement

    @property
    def id(self) -> str:
        la = "la-open" if self.la_open else "la-closed"
        berlin = "berlin-open" if self.berlin_open else "berlin-closed"
        return f"{la}-{berlin}-{self.channel}"


def cases() -> list[Case]:
    found = []
    for la_open in (True, False):
        for berlin_open in (True, False):
            for channel in ("sms", "chat"):  # the deep-realtime rule, with follow the sun
                if la_open:
                    found.append(Case(la_open, berlin_open, channel, "payments", None))
                elif berlin_open:
                    moved = AfterHoursOutcome.MOVED
                    found.append(Case(la_open, berlin_open, channel, "emea-desk", moved))
                else:
                    held = AfterHoursOutcome.HELD
                    found.append(Case(la_open, berlin_open, channel, "payments", held))
            # email: the payments rule, no after-hours behaviour; social: no automatic reply
            found.append(Case(la_open, berlin_open, "email", "payments", None))
            found.append(Case(la_open, berlin_open, "social", None, None))
    return found


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_message_that_tells_what_was_done(case: Case) -> None:
    at = instant(case.la_open, case.berlin_open)
    text = "I was charged twice for my order"
    message = MessageReceived(
        channel=case.channel,
        provider="test",
        provider_message_id=f"m-{case.id}",
        thread_key=f"t:{case.id}",
        customer=CustomerIdentity(email="ada@example.org", phone="+14155550100"),
        text=text,
        received_at=at,
    )
    facts = MessageFacts(
        channel=case.channel,
        issue_type="payment_issue",
        impact="deep",
        tier=None,
        language=None,
        sender=None,
        folded_text=text,
    )
    decision = TABLE.decide(facts, at)
    assert decision.after_hours == case.says, decision.notes
    placement = Placement(
        conversation_id="c-1", reference="SB-7K3Q9", queue=decision.queue, state="new"
    )
    command = acknowledgement(CONFIG, CALENDARS, message, decision, placement, "in-1")
    if case.queue is None:
        assert command is None
        return
    assert command is not None
    assert decision.queue == case.queue
    rendered = TEMPLATES.render(command.template or "", case.channel, None, command.params)
    # the acknowledgement's facts are in the one message, whichever it is
    assert "SB-7K3Q9" in rendered
    assert command.params["promise"] in rendered
    if case.says is None:
        assert command.kind == "auto_ack"
        assert "closed" not in rendered
    else:
        assert command.kind == "after_hours"
        assert "closed" in rendered
    # Berlin is named exactly when Berlin has the message
    assert ("Berlin" in rendered) == (case.queue == "emea-desk"), rendered


def test_a_conversation_placed_elsewhere_gets_the_plain_acknowledgement() -> None:
    """A returning customer's new thread joins their open queue: the follow-the-sun move did
    not happen, so the notice that says it did must not go out."""
    at = instant(la_open=False, berlin_open=True)
    message = MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id="m-returning",
        thread_key="t:returning",
        customer=CustomerIdentity(phone="+14155550100"),
        text="charged twice",
        received_at=at,
    )
    facts = MessageFacts("sms", "payment_issue", "deep", None, None, None, "charged twice")
    decision = TABLE.decide(facts, at)
    assert decision.after_hours == AfterHoursOutcome.MOVED
    placement = Placement(
        conversation_id="c-2", reference="SB-AAAAA", queue="technical", state="new"
    )
    command = acknowledgement(CONFIG, CALENDARS, message, decision, placement, "in-2")
    assert command is not None
    assert command.kind == "auto_ack"
    assert command.template == "ack"
