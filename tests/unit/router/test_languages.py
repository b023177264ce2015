"""Issue types by the message's language: the configured examples for their languages, few-shot
examples in others, ``unknown`` where there are none; and the sample configuration's language
queues."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common.config import Config
from libs.common.events import CustomerIdentity, MessageReceived
from services.router.issue_types import UNKNOWN, IssueClassifier
from services.router.languages import ClassifiersByLanguage
from services.router.route import decide
from services.router.runtime import RouterRuntime, issue_type_specs

STORE = Path(__file__).parents[3] / "config" / "store.yaml"
ENGLISH = {
    "payment_issue": [
        "I was charged twice for my order",
        "my card was declined at checkout",
        "the payment failed but the money is gone",
    ],
    "track_order": [
        "where is my order",
        "my parcel has not arrived yet",
        "the tracking has not moved for days",
    ],
}
SPANISH = {
    "payment_issue": ["me han cobrado dos veces", "me rechazaron la tarjeta al pagar"],
    "track_order": ["dónde está mi pedido", "mi paquete no ha llegado"],
}


def _config(languages: list[str] | None, few_shot: dict[str, dict[str, list[str]]]) -> Config:
    return Config.model_validate(
        {
            "queues": {"general": {}},
            "issue_types": {
                name: {"impact": "deep", "priority": 1, "examples": examples}
                for name, examples in ENGLISH.items()
            },
            "rules": [{"name": "all", "then": {"queue": "general"}}],
            "classifier": {"languages": languages, "examples_by_language": few_shot},
        }
    )


def _build(config: Config) -> ClassifiersByLanguage:
    return ClassifiersByLanguage.build(
        config, IssueClassifier.build(issue_type_specs(config, STORE.parent))
    )


@pytest.fixture(scope="module")
def spanish_few_shot() -> ClassifiersByLanguage:
    return _build(_config(["en"], {"es": SPANISH}))


def test_a_message_in_a_covered_language_or_of_no_known_language_is_classified_as_before(
    spanish_few_shot: ClassifiersByLanguage,
) -> None:
    assert spanish_few_shot.classify("I was charged twice", "en").issue_type == "payment_issue"
    assert spanish_few_shot.classify("I was charged twice", None).issue_type == "payment_issue"


def test_a_message_in_another_language_is_classified_by_its_few_shot_examples(
    spanish_few_shot: ClassifiersByLanguage,
) -> None:
    found = spanish_few_shot.classify("Hola, me han cobrado dos veces el pedido", "es")
    assert found.issue_type == "payment_issue"
    assert found.impact == "deep"


def test_a_language_without_examples_is_unknown_not_a_wrong_type(
    spanish_few_shot: ClassifiersByLanguage,
) -> None:
    # "order", "twice" and "charged" are words of the English examples, and still no type.
    found = spanish_few_shot.classify("Meine order wurde twice charged, bitte helfen", "de")
    assert (found.issue_type, found.confidence, found.evidence) == (
        UNKNOWN,
        0.0,
        "written in de: no examples in it",
    )


def test_without_configured_languages_every_message_is_classified_as_before() -> None:
    everything = _build(_config(None, {}))
    assert everything.classify("my card was declined", "de").issue_type == "payment_issue"


def test_examples_in_a_covered_language_or_of_an_unknown_type_are_refused() -> None:
    with pytest.raises(ValueError, match=r"examples_by_language\.en: classifier.languages covers"):
        _build(_config(["en"], {"en": SPANISH}))
    with pytest.raises(ValueError, match=r"examples_by_language\.es: no issue type 'refund'"):
        _build(_config(["en"], {"es": {**SPANISH, "refund": ["quiero mi dinero", "reembolso"]}}))


def _message(text: str, language: str | None, channel: Any = "sms") -> MessageReceived:
    return MessageReceived(
        channel=channel,
        provider="test",
        provider_message_id="1",
        thread_key="t:1",
        customer=CustomerIdentity(phone="+14155550123"),
        text=text,
        language=language,
        # A Tuesday morning, when both desks are open.
        received_at=datetime(2026, 11, 24, 16, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("text", "language", "queue"),
    [
        ("Hola, me han cobrado dos veces y nadie me contesta", "es", "spanish"),
        ("¿Alguien me puede ayudar, por favor?", "es", "spanish"),
        ("Mein Paket ist immer noch nicht angekommen", "de", "german"),
        ("Danke, bitte rufen Sie mich an", "de", "german"),
        ("I was charged twice for my order", "en", "payments"),
    ],
)
def test_the_sample_configuration_sends_spanish_and_german_to_desks_that_speak_them(
    store: RouterRuntime, text: str, language: str, queue: str
) -> None:
    verdict = decide(store, _message(text, language), None)
    assert verdict.decision.queue == queue
    assert f"language={language}" in verdict.decision.conditions or language == "en"


def test_a_spanish_message_is_not_given_a_type_from_the_english_examples(
    store: RouterRuntime,
) -> None:
    # The English model types it by its loanword; no Spanish example is about invoices.
    text = "el invoice de mi compra"
    assert store.classifier.classify(text).issue_type == "get_invoice"
    verdict = decide(store, _message(text, "es"), None)
    assert verdict.classification.issue_type == UNKNOWN
    assert verdict.decision.queue == "spanish"


def test_a_spanish_message_gets_a_type_from_the_spanish_examples(store: RouterRuntime) -> None:
    verdict = decide(store, _message("Hola, me habéis cobrado dos veces el pedido", "es"), None)
    assert verdict.classification.issue_type == "payment_issue"
    assert (verdict.decision.queue, verdict.decision.rule) == ("spanish", "spanish")
    german = decide(store, _message("Ich möchte mit einem Menschen sprechen, bitte", "de"), None)
    assert german.classification.issue_type == "contact_human_agent"
    assert german.decision.queue == "german"
