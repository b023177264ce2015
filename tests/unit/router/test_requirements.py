"""Rules' ``requires``: the skills they name and the language, by default the one ingest
detected in the message, reach the decision and its explanation; a ladder that does not grow
is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from libs.common.config import Config
from libs.common.events import CustomerIdentity, MessageReceived, Requirements
from services.router.route import decide
from services.router.rules import MessageFacts, RoutingTable
from services.router.runtime import RouterRuntime

AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def table(requires: dict[str, Any] | None) -> RoutingTable:
    then: dict[str, Any] = {"queue": "payments"}
    if requires is not None:
        then["requires"] = requires
    config = Config.model_validate(
        {
            "queues": {"payments": {"relax": [{"after": "2m", "drop": ["skills"]}]}},
            "rules": [{"name": "charges", "then": then}],
        }
    )
    return RoutingTable(config, {})


def facts(language: str | None) -> MessageFacts:
    return MessageFacts(
        channel="sms",
        issue_type="payment_issue",
        impact="deep",
        tier=None,
        language=language,
        sender=None,
        folded_text="me cobraron dos veces",
    )


@pytest.mark.parametrize(
    ("requires", "language", "expected", "note"),
    [
        (
            {"skills": ["payments"]},
            "es",
            Requirements(skills=("payments",), language="es"),
            "requires an agent with skills payments and language es (detected)",
        ),
        (
            {"skills": ["payments"]},
            None,
            Requirements(skills=("payments",)),
            "requires an agent with skills payments",
        ),
        (
            {"language": "de"},
            "es",
            Requirements(language="de"),
            "requires an agent with language de",
        ),
        ({"language": None}, "es", None, None),
        ({}, None, None, None),
        (None, "es", None, None),
    ],
)
def test_a_rule_requires_skills_and_the_detected_language(
    requires: dict[str, Any] | None,
    language: str | None,
    expected: Requirements | None,
    note: str | None,
) -> None:
    decision = table(requires).decide(facts(language), AT)
    assert decision.requires == expected
    assert [n for n in decision.notes if n.startswith("requires")] == ([note] if note else [])


@pytest.mark.parametrize(
    "relax",
    [
        [{"after": "5m", "drop": ["skills"]}, {"after": "2m", "drop": ["language"]}],
        [{"after": "0s", "drop": ["skills"]}],
        [{"after": "2m", "drop": []}],
        [{"after": "2m", "drop": ["seniority"]}],
    ],
)
def test_a_ladder_must_climb(relax: list[dict[str, Any]]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Config.model_validate({"queues": {"q": {"relax": relax}}, "rules": []})


@pytest.mark.parametrize(
    ("text", "language", "queue", "expected"),
    [
        ("mi paquete todavía no ha llegado", "es", "spanish", Requirements(language="es")),
        (
            "I was charged twice for my order",
            "en",
            "payments",
            Requirements(skills=("payments",), language="en"),
        ),
        ("where is my parcel", "en", "orders", None),
    ],
)
def test_the_sample_configuration_asks_for_who_can_answer(
    store: RouterRuntime, text: str, language: str, queue: str, expected: Requirements | None
) -> None:
    message = MessageReceived(
        channel="email",
        provider="smtp",
        provider_message_id="<1@x>",
        thread_key="email:t",
        customer=CustomerIdentity(email="ada@example.com"),
        text=text,
        received_at=AT,
        language=language,
    )
    decision = decide(store, message, None).decision
    assert (decision.queue, decision.requires) == (queue, expected)
