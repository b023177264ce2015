"""Routing rules, table-driven: conditions, after hours on both sides of opening, holidays, DST."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from libs.common.config import load_config
from libs.common.events import Channel, CustomerIdentity, MessageReceived
from services.router.customer_profiles import tier_for
from services.router.route import decide
from services.router.runtime import RouterRuntime

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "routing.yaml"
LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture(scope="module")
def runtime() -> RouterRuntime:
    return RouterRuntime.build(load_config(CONFIG), CONFIG)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    at: datetime
    queue: str
    rule: str
    channel: Channel = "sms"
    email: str | None = None
    phone: str | None = "+14155550100"
    language: str | None = None
    note: str | None = None


TUESDAY_OPEN = datetime(2026, 11, 24, 10, 0, tzinfo=LA)

CASES = [
    Case(
        "phrase-deep-sms-open", "I was CHARGED  twice!", TUESDAY_OPEN, "payments", "deep-chat-sms"
    ),
    Case(
        "accents-and-case",
        "Mÿ cárd DECLINED? card declined",
        TUESDAY_OPEN,
        "payments",
        "deep-chat-sms",
    ),
    Case("vip-by-phone", "hello", TUESDAY_OPEN, "vip", "vip", phone="+14155550199"),
    Case(
        "vip-by-domain",
        "hello",
        TUESDAY_OPEN,
        "vip",
        "vip",
        channel="email",
        email="Boss@BigCorp.example",
        phone=None,
    ),
    Case(
        "sender-domain",
        "question",
        TUESDAY_OPEN,
        "orders",
        "partner-domain",
        channel="email",
        email="ops@partner.example",
        phone=None,
    ),
    Case("keyword", "I want my money back", TUESDAY_OPEN, "orders", "refund-keyword"),
    Case("language", "Hallo", TUESDAY_OPEN, "berlin", "german", language="de"),
    Case(
        "unknown-email",
        "hello there",
        TUESDAY_OPEN,
        "general",
        "unknown-issue",
        channel="email",
        email="a@b.example",
        phone=None,
    ),
    Case("fallthrough", "hello there", TUESDAY_OPEN, "general", "everything-else"),
    # after hours, follow the sun: LA opens 09:00, Berlin closes 18:00 (17:00 UTC in winter)
    Case(
        "one-minute-before-la-opens",
        "charged twice",
        datetime(2026, 11, 24, 8, 59, tzinfo=LA),
        "berlin",
        "deep-chat-sms",
        note="followed the sun to berlin",
    ),
    Case(
        "la-opening-instant",
        "charged twice",
        datetime(2026, 11, 24, 9, 0, tzinfo=LA),
        "payments",
        "deep-chat-sms",
    ),
    Case(
        "la-closing-instant",
        "charged twice",
        datetime(2026, 11, 24, 17, 0, tzinfo=LA),
        "payments",
        "deep-chat-sms",
        note="berlin closed too",
    ),
    Case(
        "both-closed",
        "charged twice",
        datetime(2026, 11, 24, 20, 0, tzinfo=LA),
        "payments",
        "deep-chat-sms",
        note="berlin closed too",
    ),
    Case(
        "thanksgiving",
        "charged twice",
        datetime(2026, 11, 26, 10, 0, tzinfo=LA),
        "payments",
        "deep-chat-sms",
        note="berlin closed too",
    ),
    Case(
        "sunday-berlin-open",
        "charged twice",
        datetime(2026, 11, 29, 2, 0, tzinfo=LA),
        "berlin",
        "deep-chat-sms",
        note="followed the sun",
    ),
    # Europe's DST ends a week before America's: 23:30 in LA is 08:30 in Berlin after both
    # changes (open) but 07:30 in the week between them (closed)
    Case(
        "dst-gap-week-end",
        "charged twice",
        datetime(2026, 11, 1, 23, 30, tzinfo=LA),
        "berlin",
        "deep-chat-sms",
        note="followed the sun",
    ),
    Case(
        "dst-gap-week-start",
        "charged twice",
        datetime(2026, 10, 25, 23, 30, tzinfo=LA),
        "payments",
        "deep-chat-sms",
        note="berlin closed too",
    ),
    Case(
        "hold-email",
        "where is my order",
        datetime(2026, 11, 24, 20, 0, tzinfo=LA),
        "payments",
        "deep-email",
        channel="email",
        email="c@d.example",
        phone=None,
        note="held until it opens",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_routing_table(runtime: RouterRuntime, case: Case) -> None:
    message = MessageReceived(
        channel=case.channel,
        provider="test",
        provider_message_id=case.id,
        thread_key=f"t:{case.id}",
        customer=CustomerIdentity(email=case.email, phone=case.phone),
        text=case.text,
        language=case.language,
        received_at=case.at,
    )
    tier = tier_for(message.customer, runtime.config.customers.tiers)
    verdict = decide(runtime, message, tier)
    assert (verdict.decision.queue, verdict.decision.rule) == (case.queue, case.rule)
    if case.note:
        assert any(case.note in note for note in verdict.decision.notes), verdict.decision.notes


def test_explanation_lists_the_conditions_that_held(runtime: RouterRuntime) -> None:
    message = MessageReceived(
        channel="sms",
        provider="test",
        provider_message_id="x",
        thread_key="t:x",
        customer=CustomerIdentity(phone="+14155550100"),
        text="my card declined again",
        received_at=TUESDAY_OPEN,
    )
    verdict = decide(runtime, message, None)
    assert verdict.decision.conditions == ("channel=sms", "impact=deep")
    assert verdict.classification.issue_type == "payment_issue"
    assert verdict.classification.matched_by == "phrase"
    assert verdict.decision.after_hours_notify is None  # open: no after-hours notice
