"""Classifying a fetched batch in one call gives every message exactly the classification it
gets alone, and the router's store of batch results hands each one out once, for its text and
runtime only.

The texts are the shipped examples, classified by the sample configuration (the production
model, few-shot Spanish and German, languages without examples), plus odd ones.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from services.router.classify_eval import read_labelled_csv
from services.router.issue_types import Classification, IssueClassifier, IssueTypeSpec
from services.router.prepared import Prepared, PreparedClassifications
from services.router.runtime import RouterRuntime

ROOT = Path(__file__).parents[3]
EXAMPLES = ROOT / "config" / "examples" / "customer-service.csv"
ODD = [
    "",
    "   ",
    "🙂🙂🙂",
    "12345 67890",
    "Hola, me han cobrado dos veces el pedido",
    "Mein Paket ist immer noch nicht angekommen",
    "where is my order ORD-1234?? " * 40,
    "cancelmy order plz",
    "Subject line only\n",
]


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, str | None]]:
    """400 shipped examples and the odd texts, each in a language the sample configuration
    classifies in its own way (its main model, few-shot examples, none at all)."""
    rows = read_labelled_csv(EXAMPLES)
    picked = [text for text, _ in random.Random(3).sample(rows, 400)] + ODD
    languages = ("en", None, "es", "de", "fr")
    return [(text, languages[n % len(languages)]) for n, text in enumerate(picked)]


@pytest.mark.parametrize("size", [7, 64, 500])
def test_a_batch_gives_every_message_the_classification_it_gets_alone(
    store: RouterRuntime, messages: list[tuple[str, str | None]], size: int
) -> None:
    alone = [store.by_language.classify(text, language) for text, language in messages]
    batched: list[Classification] = []
    for start in range(0, len(messages), size):
        batched += store.by_language.classify_many(messages[start : start + size])

    assert batched == alone
    assert {c.matched_by for c in alone} >= {"model", "none"}  # the model really was asked


def test_a_two_type_model_gives_the_same_in_a_batch_as_alone() -> None:
    rows = read_labelled_csv(EXAMPLES)
    by_type: dict[str, list[str]] = {"track_order": [], "get_refund": []}
    for text, intent in rows:
        if intent in by_type and len(by_type[intent]) < 40:
            by_type[intent].append(text)
    classifier = IssueClassifier.build(
        [IssueTypeSpec(name, "deep", 2, examples=tuple(texts)) for name, texts in by_type.items()]
    )
    texts = [text for text, _ in random.Random(5).sample(rows, 200)] + ODD

    assert classifier.classify_many(texts) == [classifier.classify(text) for text in texts]


# --- the router's store of batch results ----------------------------------------------------


def prepared(text: str, issue_type: str = "track_order") -> Prepared:
    return Prepared((text, "en"), Classification(issue_type, 1.0, "phrase", text, "deep", 2), 0.0)


def test_a_batch_result_is_taken_once_and_only_for_its_text(store: RouterRuntime) -> None:
    kept = PreparedClassifications()
    kept.keep(store, [("e1", prepared("where is it")), ("e2", prepared("refund"))])

    assert kept.take(store, "e1", ("where is it", "en")) == prepared("where is it")
    assert kept.take(store, "e1", ("where is it", "en")) is None  # taken once
    assert kept.take(store, "e2", ("another text", "en")) is None  # a reused id, not its text
    assert kept.take(store, "e3", ("refund", "en")) is None
    assert len(kept) == 0


def test_results_of_an_earlier_runtime_are_never_given(store: RouterRuntime) -> None:
    reloaded = replace(store)  # what a configuration reload swaps in: another runtime
    kept = PreparedClassifications()
    kept.keep(store, [("e1", prepared("where is it")), ("e2", prepared("refund"))])

    assert kept.take(reloaded, "e1", ("where is it", "en")) is None
    kept.keep(reloaded, [("e3", prepared("late"))])
    assert kept.take(reloaded, "e2", ("refund", "en")) is None  # dropped with their runtime
    assert kept.take(reloaded, "e3", ("late", "en")) == prepared("late")


def test_results_never_taken_are_dropped_oldest_first(store: RouterRuntime) -> None:
    kept = PreparedClassifications(limit=3)
    kept.keep(store, [(f"e{n}", prepared(f"text {n}")) for n in range(5)])

    assert len(kept) == 3
    assert kept.take(store, "e1", ("text 1", "en")) is None
    assert kept.take(store, "e2", ("text 2", "en")) == prepared("text 2")
