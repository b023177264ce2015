"""The router's issue-type step: explicit rules, the example model, and the evaluation harness.

Timings are not asserted here (they belong in bench/); the model is trained on the sample
configuration's example file, as the product does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from services.router.classify_eval import (
    LabelledRow,
    evaluate,
    format_report,
    hold_out,
    main,
    read_labelled_csv,
    specs_from_labelled_rows,
)
from services.router.issue_types import (
    _TOKEN,
    MAX_INPUT_CHARS,
    SPLIT_VIEWS_CONFIDENCE,
    UNKNOWN,
    IssueClassifier,
    IssueTypeSpec,
    _grouped_folds,
    normalise_text,
    pattern_error,
)

EXAMPLES_CSV = Path(__file__).resolve().parents[3] / "config" / "examples" / "customer-service.csv"
Split = tuple[tuple[IssueTypeSpec, ...], list[LabelledRow]]
"""Training specs and the rows held out from them."""

SMALL_INTENTS = (
    "cancel_order",
    "get_refund",
    "newsletter_subscription",
    "payment_issue",
    "recover_password",
    "track_order",
)


@pytest.fixture(scope="module")
def rows() -> list[LabelledRow]:
    return read_labelled_csv(EXAMPLES_CSV)


@pytest.fixture(scope="module")
def small_rows(rows: list[LabelledRow]) -> list[LabelledRow]:
    """60 rows of each of six intents, shuffled with a fixed seed: quick to build on."""
    shuffled = list(rows)
    random.Random(7).shuffle(shuffled)
    picked: list[LabelledRow] = []
    for intent in SMALL_INTENTS:
        picked.extend([row for row in shuffled if row[1] == intent][:60])
    return picked


@pytest.fixture(scope="module")
def small_split(
    small_rows: list[LabelledRow],
) -> Split:
    return hold_out(specs_from_labelled_rows(small_rows), small_rows, split=0.3, seed=0)


@pytest.fixture(scope="module")
def small(small_split: Split) -> IssueClassifier:
    return IssueClassifier.build(small_split[0], seed=0)


@pytest.fixture(scope="module")
def full_split(rows: list[LabelledRow]) -> Split:
    return hold_out(specs_from_labelled_rows(rows), rows, split=0.3, seed=0)


@pytest.fixture(scope="module")
def full(full_split: Split) -> IssueClassifier:
    """All 27 intents, trained on 70% of the rows."""
    return IssueClassifier.build(full_split[0], seed=0)


def _with(specs: tuple[IssueTypeSpec, ...], *extra: IssueTypeSpec) -> tuple[IssueTypeSpec, ...]:
    return (*specs, *extra)


def test_the_same_seed_gives_the_same_answers(small_split: Split, small: IssueClassifier) -> None:
    again = IssueClassifier.build(small_split[0], seed=0)
    texts = [utterance for utterance, _ in small_split[1]]

    assert [small.classify(text) for text in texts] == [again.classify(text) for text in texts]


def test_a_pattern_overrides_the_model(small_split: Split) -> None:
    text = "Someone used my STOLEN card to place an order, cancel it"
    fraud = IssueTypeSpec("fraud", "deep", 1, patterns=(r"stolen (credit )?card",))
    without = IssueClassifier.build(small_split[0]).classify(text)
    with_rule = IssueClassifier.build(_with(small_split[0], fraud)).classify(text)

    assert without.issue_type != "fraud"
    assert with_rule.issue_type == "fraud"
    assert with_rule.matched_by == "pattern"
    assert with_rule.confidence == 1.0
    assert with_rule.evidence == "stolen card"
    assert (with_rule.impact, with_rule.priority) == ("deep", 1)


def test_patterns_match_case_insensitively_on_normalised_text() -> None:
    spec = IssueTypeSpec("order_ref", "shallow", None, patterns=(r"ORDER-\d{4,}", r"réf \d+"))
    classifier = IssueClassifier.build([spec])

    assert classifier.classify("see Order-20931 please").evidence == "order-20931"
    assert classifier.classify("RÉF   42").evidence == "ref 42"
    assert classifier.classify("order-12").issue_type == UNKNOWN


def test_phrases_ignore_case_accents_and_spacing_and_keep_word_boundaries() -> None:
    specs = [
        IssueTypeSpec("coffee", "shallow", None, phrases=("Café  Crème",)),
        IssueTypeSpec("login", "deep", 1, phrases=("can't log in",)),
        IssueTypeSpec("password_ru", "deep", 1, phrases=("пароль",)),
    ]
    classifier = IssueClassifier.build(specs)

    hit = classifier.classify("I want a CAFE\t creme, now!")
    assert (hit.issue_type, hit.matched_by, hit.evidence) == ("coffee", "phrase", "cafe creme")
    assert classifier.classify("I can\u2019t  LOG\nin!!").issue_type == "login"
    assert classifier.classify("забыл пароль.").issue_type == "password_ru"
    for miss in ("cafecreme", "xcafe creme", "cafe cremes", "cant log in", "парольный"):
        assert classifier.classify(miss).issue_type == UNKNOWN, miss


def test_the_most_urgent_explicit_hit_wins() -> None:
    specs = [
        IssueTypeSpec("newsletter", "shallow", 5, phrases=("newsletter",)),
        IssueTypeSpec("payment_failed", "deep", 1, phrases=("charged twice",)),
        IssueTypeSpec("also_payment", "deep", 1, phrases=("charged",)),
    ]
    result = IssueClassifier.build(specs).classify("Newsletter says I was charged twice")

    assert result.issue_type == "payment_failed"  # priority 1 beats 5; then the order listed


def test_new_examples_change_the_prediction(
    small_split: Split,
) -> None:
    text = "the parcel came smashed and the mug inside is broken"
    damaged = IssueTypeSpec(
        "damaged_item",
        "deep",
        2,
        examples=(
            "my item arrived broken",
            "the parcel was smashed when it came",
            "the mug inside the box is broken",
            "received a damaged product",
            "the package came crushed and the item is broken",
            "your courier smashed my parcel, everything inside is broken",
        ),
    )
    before = IssueClassifier.build(small_split[0]).classify(text)
    after = IssueClassifier.build(_with(small_split[0], damaged)).classify(text)

    assert before.issue_type != "damaged_item"
    assert (after.issue_type, after.matched_by) == ("damaged_item", "model")
    assert (after.impact, after.priority) == ("deep", 2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "\x00\x01\x02\xff\xfe binary \x7f junk \x00",
        bytes(range(256)).decode("latin-1") * 40,
        "😀😀😀 🙏🔥",
        "\ud800\udfff lone surrogates",
        "\u200b\u200f\ufeff\u00ad",
        "lorem ipsum " * 90_000,
        "qwx zzkv plmn " * 80_000,
    ],
    ids=["empty", "blank", "control", "bytes", "emoji", "surrogates", "invisible", "1mb", "junk"],
)
def test_garbage_is_unknown_without_error(full: IssueClassifier, text: str) -> None:
    result = full.classify(text)

    assert (result.issue_type, result.matched_by) == (UNKNOWN, "none")
    assert result.confidence < full.threshold


def test_a_phrase_past_the_input_limit_is_not_seen() -> None:
    classifier = IssueClassifier.build([IssueTypeSpec("x", "shallow", None, phrases=("refund",))])

    assert classifier.classify("a " * MAX_INPUT_CHARS + "refund").issue_type == UNKNOWN
    assert classifier.classify("refund " + "a " * 500_000).issue_type == "x"


@pytest.mark.parametrize(
    "text",
    [
        "no puedo acceder a mi cuenta desde el martes",
        "me cobraron dos veces",
        "¿dónde está mi pedido?",
        "quiero cancelar mi pedido",
        "olvidé mi contraseña",
        "Wo ist meine Bestellung?",
        "Ich möchte meine Bestellung stornieren",
        "Ich habe mein Passwort vergessen",
        "ich kann mich nicht in mein Konto einloggen",
        "注文がまだ届きません",
        "パスワードを忘れました",
        "二重に請求されました",
    ],
)
def test_languages_the_examples_do_not_cover_are_unknown(full: IssueClassifier, text: str) -> None:
    result = full.classify(text)

    assert result.issue_type == UNKNOWN
    assert result.confidence < 0.4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i forgot my pasword", "recover_password"),
        ("cancelmy order pls", "cancel_order"),
        ("WHERE IS MY ORDER #A1234", "track_order"),
        ("how do i unsubscribe from ur emails", "newsletter_subscription"),
        ("wtf where is my refund u idiots", "track_refund"),
        ("I FORGOT MY PÁSSWORD", "recover_password"),
        ("i want to cancle my ordr", "cancel_order"),
    ],
)
def test_sloppy_english_still_finds_its_type(
    full: IssueClassifier, text: str, expected: str
) -> None:
    result = full.classify(text)

    assert (result.issue_type, result.matched_by) == (expected, "model")
    assert full.threshold <= result.confidence <= 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pasword resset", "recover_password"),  # no word n-gram known: the characters alone
        ("cancellled ordr", "cancel_order"),  # the words and the characters favour other types
    ],
)
def test_an_answer_its_views_split_on_keeps_its_type_but_is_not_confident(
    full: IssueClassifier, text: str, expected: str
) -> None:
    model = full.model
    assert model is not None
    normalised = normalise_text(text)
    probabilities, _, split = model.scores_many([(normalised, _TOKEN.findall(normalised))])
    assert split[0]
    assert probabilities[0].max() > 0.9

    result = full.classify(text)

    assert (result.issue_type, result.matched_by) == (expected, "model")
    assert result.confidence == SPLIT_VIEWS_CONFIDENCE


def test_an_answer_its_views_agree_on_keeps_its_probability(full: IssueClassifier) -> None:
    model = full.model
    assert model is not None
    normalised = normalise_text("i want to cancel my order")
    probabilities, _, split = model.scores_many([(normalised, _TOKEN.findall(normalised))])

    result = full.classify("i want to cancel my order")

    assert not split[0]
    assert result.issue_type == "cancel_order"
    assert result.confidence == pytest.approx(probabilities[0].max())
    assert result.confidence > 0.9


def test_the_lean_path_gives_the_pipelines_probabilities(
    full: IssueClassifier, full_split: Split
) -> None:
    model = full.model
    assert model is not None
    texts = [normalise_text(utterance) for utterance, _ in full_split[1][:300]]
    texts += ["", "zzz", "refund " * 300]

    lean = np.array([model.probabilities(text) for text in texts])
    reference = model.reference_probabilities(texts)

    np.testing.assert_allclose(lean, reference, rtol=0, atol=1e-9)
    assert (lean.argmax(axis=1) == reference.argmax(axis=1)).all()


def test_the_lean_path_handles_two_types(
    small_split: Split,
) -> None:
    two = IssueClassifier.build(small_split[0][:2])
    model = two.model
    assert model is not None
    texts = [normalise_text(utterance) for utterance, _ in small_split[1]]

    lean = np.array([model.probabilities(text) for text in texts])

    np.testing.assert_allclose(lean, model.reference_probabilities(texts), rtol=0, atol=1e-9)


def test_hold_out_never_leaves_a_held_out_row_in_training(
    small_rows: list[LabelledRow],
    small_split: Split,
) -> None:
    training, held = small_split
    trained_on = {normalise_text(example) for spec in training for example in spec.examples}
    held_texts = {normalise_text(utterance) for utterance, _ in held}

    assert trained_on.isdisjoint(held_texts)
    assert len(held) == round(0.3 * len(small_rows))
    assert sum(len(spec.examples) for spec in training) + len(held) == len(small_rows)
    assert {label for _, label in held} == set(SMALL_INTENTS)  # stratified


def test_evaluate_on_a_small_split(small_rows: list[LabelledRow]) -> None:
    report = evaluate(specs_from_labelled_rows(small_rows), small_rows, split=0.3, seed=0)

    assert report.overlap == 0
    assert report.evaluated == round(0.3 * len(small_rows))
    assert report.training_examples + report.evaluated == len(small_rows)
    assert report.accuracy >= 0.9
    assert 0.9 <= report.macro_f1 <= 1.0
    expected = [row for row in report.per_type if row.support]
    assert {row.issue_type for row in expected} == set(SMALL_INTENTS)
    assert sum(row.support for row in report.per_type) == report.evaluated
    assert sum(row.predicted for row in report.per_type) == report.evaluated
    assert sum(count for _, count in report.matched_by) == report.evaluated
    assert 0 < report.latency_p50_ms <= report.latency_p99_ms <= report.latency_max_ms
    assert report.cpu_p99_ms > 0
    assert report.build.model_types == len(SMALL_INTENTS)
    text = format_report(report)
    assert "macro-F1" in text
    assert "payment_issue" in text


def test_main_runs_on_a_csv(
    small_rows: list[LabelledRow], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "labelled.csv"
    lines = ["\ufeffflags,utterance,category,intent"]
    lines += [f'B,"{utterance}",X,{label}' for utterance, label in small_rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert main([str(path), "--split", "0.25", "--seed", "3", "--threshold", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "held out 25%, seed 3, threshold 0.4" in out
    assert main([str(tmp_path / "missing.csv")]) == 1


def test_build_reports_its_cost(full: IssueClassifier) -> None:
    stats = full.stats

    assert stats.seconds > 0
    assert stats.model_types == stats.issue_types == 27
    assert stats.vocabulary == stats.word_features + stats.char_features > 0
    assert stats.examples > 5000
    assert stats.temperature is not None


def test_without_examples_only_rules_decide() -> None:
    classifier = IssueClassifier.build(
        [IssueTypeSpec("refund", "shallow", 3, phrases=("refund",))], threshold=0.3
    )

    assert classifier.model is None
    assert classifier.stats.examples == 0
    assert classifier.classify("where is my refund").issue_type == "refund"
    assert classifier.classify("where is my parcel").issue_type == UNKNOWN


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: IssueTypeSpec(UNKNOWN, "deep", 1), "unknown"),
        (lambda: IssueTypeSpec("x", "huge", 1), "impact"),  # type: ignore[arg-type]
        (lambda: IssueTypeSpec("x", "deep", 0), "priority"),
        (lambda: IssueTypeSpec("x", "deep", None, phrases=("  ",)), "empty phrase"),
    ],
)
def test_bad_specs_are_refused(make: Callable[[], IssueTypeSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_lone_string_is_not_taken_for_a_list_of_phrases() -> None:
    with pytest.raises(TypeError, match="phrases"):
        IssueTypeSpec("x", "deep", None, phrases="refund")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([IssueTypeSpec("x", "deep", 1, patterns=("(?<=a)b",))], "'x'.*RE2"),
        ([IssueTypeSpec("x", "deep", 1, patterns=("a*",))], "matches empty text"),
        ([IssueTypeSpec("x", "deep", 1), IssueTypeSpec("x", "deep", 2)], "defined twice"),
        (
            [
                IssueTypeSpec("x", "deep", 1, examples=("only one",)),
                IssueTypeSpec("y", "deep", 1, examples=("one", "two")),
            ],
            "'x' has 1 usable example",
        ),
        (
            [
                IssueTypeSpec("x", "deep", 1, examples=("the same", "The  same")),
                IssueTypeSpec("y", "deep", 1, examples=("one", "two")),
            ],
            "'x' has 1 usable example",
        ),
    ],
)
def test_bad_configurations_fail_the_build(specs: list[IssueTypeSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IssueClassifier.build(specs)


def test_calibration_folds_keep_an_example_with_its_copies() -> None:
    # An example, its noisy copy and its repeats share a key; a fold that trained on a copy of
    # the text it scores would make the fitted temperature too sharp.
    keys = [(label, f"{label} {n % 4}") for label in ("a", "b") for n in range(12)]
    folds = _grouped_folds(keys, folds=3, seed=0)

    assert len(folds) == 3
    assert sorted(int(i) for _, held in folds for i in held) == list(range(len(keys)))
    for train, held in folds:
        assert {keys[i] for i in train}.isdisjoint({keys[i] for i in held})
        assert {keys[i][0] for i in train} == {"a", "b"}


def test_pattern_error_explains_for_the_config_check() -> None:
    assert pattern_error(r"order\s*#?\d{5}") is None
    assert "RE2" in (pattern_error(r"(a)\1") or "")
    assert "empty" in (pattern_error("x?") or "")


def test_normalise_text() -> None:
    assert normalise_text("  Ça  VA\u00a0?\nNaïve\u2019s straße ") == "ca va ? naive's strasse"
    assert normalise_text("x" * 50, limit=10) == "x" * 10
