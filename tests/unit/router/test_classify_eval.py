"""``classify-eval``: held-out variations, a separate test file, the report and its JSON, and the
hand-written realistic, dev and pairs sets in tests/data/.

Models here are built on a few hundred rows, so that the file runs in seconds; the shipped
configuration is read (not built) to check that no hand-written set overlaps its examples.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from libs.common.config import load_config
from services.router.classify_eval import (
    LabelledRow,
    evaluate_by_flag,
    flag_groups,
    hold_out_flag,
    main,
    read_config,
    read_flagged_csv,
    read_labelled_csv,
    specs_from_labelled_rows,
)
from services.router.issue_types import normalise_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES_CSV = ROOT / "config" / "examples" / "customer-service.csv"
STORE_CONFIG = ROOT / "config" / "store.yaml"
REALISTIC_CSV = ROOT / "tests" / "data" / "realistic-messages.csv"
DEV_CSV = ROOT / "tests" / "data" / "dev-messages.csv"
PAIRS_CSV = ROOT / "tests" / "data" / "pairs-messages.csv"
FRESH_CSV = ROOT / "tests" / "data" / "fresh-messages.csv"
INTENTS = ("cancel_order", "get_refund", "payment_issue", "recover_password", "track_order")
CHANNELS = {"sms", "email", "chat", "social"}
REPORT_FIELDS = {
    "macro_f1",
    "accuracy",
    "abstention_rate",
    "confident_at",
    "confident_share",
    "confident_precision",
    "worst",
    "latency_p50_ms",
    "latency_p99_ms",
    "evaluated",
    "training_examples",
    "overlap",
}


@pytest.fixture(scope="module")
def flagged() -> list[tuple[LabelledRow, str]]:
    """80 rows of each of five intents with their flags, shuffled with a fixed seed."""
    rows, flags = read_flagged_csv(EXAMPLES_CSV)
    assert flags is not None
    shuffled = list(zip(rows, flags, strict=True))
    random.Random(11).shuffle(shuffled)
    picked: list[tuple[LabelledRow, str]] = []
    for intent in INTENTS:
        picked.extend([row for row in shuffled if row[0][1] == intent][:80])
    return picked


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration whose five issue types train on 40 shipped rows each."""
    folder = tmp_path_factory.mktemp("config")
    shipped = read_labelled_csv(EXAMPLES_CSV)
    with (folder / "examples.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utterance", "intent"])
        for intent in INTENTS:
            writer.writerows([row for row in shipped if row[1] == intent][:40])
    types = "\n".join(
        f"  {intent}: {{impact: shallow, examples_file: examples.csv}}" for intent in INTENTS
    )
    (folder / "store.yaml").write_text(
        "version: 1\nqueues:\n  general: {}\nissue_types:\n"
        f"{types}\nrules:\n  - name: all\n    then: {{queue: general}}\n",
        encoding="utf-8",
    )
    return folder / "store.yaml"


@pytest.fixture(scope="module")
def test_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven messages: six of the small configuration's types (one also a training example)
    and one that is no type at all."""
    path = tmp_path_factory.mktemp("test") / "messages.csv"
    rows = [
        ("utterance", "intent", "channel"),
        ("u took my money twice, fix it", "payment_issue", "sms"),
        ("Hi,\n\nwhere is my parcel? Ordered 2 weeks ago.\n\nThanks, Ann", "track_order", "email"),
        ("pls cancel my order i changed my mind", "cancel_order", "chat"),
        ("@shop I want my money back for the broken lamp #fail", "get_refund", "social"),
        ("forgot my password again :(", "recover_password", "chat"),
        ("what's the weather like in Lisbon", "unknown", "sms"),
        (read_labelled_csv(EXAMPLES_CSV)[0][0], "cancel_order", "chat"),
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_holding_out_a_flag_never_trains_on_its_rows(
    flagged: list[tuple[LabelledRow, str]],
) -> None:
    rows = [row for row, _ in flagged]
    flags = [letters for _, letters in flagged]
    training, held = hold_out_flag(specs_from_labelled_rows(rows), rows, flags, "Q")

    assert held == [index for index, letters in enumerate(flags) if "Q" in letters]
    held_texts = {normalise_text(rows[index][0]) for index in held}
    trained = Counter(
        (normalise_text(example), spec.name) for spec in training for example in spec.examples
    )
    kept = Counter(
        (normalise_text(utterance), label)
        for index, (utterance, label) in enumerate(rows)
        if index not in set(held) and normalise_text(utterance) not in held_texts
    )
    assert trained == kept  # every other row, and none of the held-out ones
    assert held_texts.isdisjoint(text for text, _ in trained)


def test_a_flag_no_row_carries_is_refused(flagged: list[tuple[LabelledRow, str]]) -> None:
    rows = [row for row, _ in flagged]
    with pytest.raises(ValueError, match="no row is flagged 'X'"):
        hold_out_flag(specs_from_labelled_rows(rows), rows, [f for _, f in flagged], "X")


def test_the_default_groups_skip_a_flag_every_row_carries_and_rare_flags() -> None:
    flags = ["B"] * 100 + ["BQ"] * 40 + ["BQZ"] * 30 + ["BV"]

    assert flag_groups(flags) == ["Q", "Z"]


def test_each_held_out_flag_gets_its_own_report(flagged: list[tuple[LabelledRow, str]]) -> None:
    rows = [row for row, _ in flagged]
    flags = [letters for _, letters in flagged]
    reports = evaluate_by_flag(
        specs_from_labelled_rows(rows), rows, flags, letters="QI", seed=0, threshold=0.5
    )

    assert [report.held_out_flag for report in reports] == ["Q", "I"]
    for flag, report in zip("QI", reports, strict=True):
        assert report.evaluated == sum(flag in letters for letters in flags)
        assert report.overlap == 0
        assert report.training_examples <= len(rows) - report.evaluated


def test_a_test_file_is_evaluated_whole_against_the_configs_examples(
    small_config: Path, test_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(small_config), "--test", str(test_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report.keys() >= REPORT_FIELDS
    assert report["evaluated"] == 7  # every row, no split
    assert report["training_examples"] == 5 * 40  # all of the configuration's examples
    assert report["overlap"] == 1
    assert report["held_out_flag"] is None
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert report["abstention_rate"] == pytest.approx(
        sum(row["predicted"] for row in report["per_type"] if row["issue_type"] == "unknown") / 7
    )
    assert report["confident_at"] == 0.9
    assert len(report["worst"]) == 5
    assert [row["f1"] for row in report["worst"]] == sorted(row["f1"] for row in report["worst"])


def test_the_report_opens_with_macro_f1(
    small_config: Path, test_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(small_config), "--test", str(test_file)]) == 0
    first_lines = capsys.readouterr().out.splitlines()[:3]

    assert any(re.match(r"macro-F1 [01]\.\d{3}\b", line) for line in first_lines), first_lines
    assert any("messages" in line and "no hold-out" in line for line in first_lines)


def test_grouped_json_lists_every_group(
    flagged: list[tuple[LabelledRow, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flagged.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["flags", "utterance", "intent"])
        writer.writerows([(letters, utterance, label) for (utterance, label), letters in flagged])

    assert main([str(path), "--by-flag", "QZ", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]

    assert [group["held_out_flag"] for group in groups] == ["Q", "Z"]
    assert all(group.keys() >= REPORT_FIELDS for group in groups)

    assert main([str(path), "--by-flag", "Q"]) == 0
    text = capsys.readouterr().out
    assert "Q colloquial" in text
    assert "macro-F1" in text.splitlines()[1]


def test_the_modes_need_the_right_inputs(
    small_config: Path, test_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--test", str(test_file)]) == 1  # nothing to train on
    assert main([str(test_file), "--by-flag"]) == 1  # no flags column
    assert "flags" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(test_file), "--split", "0.3", "--test", str(test_file)])


def _hand_written(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("path", "least", "least_per_type"),
    [(REALISTIC_CSV, 400, 12), (DEV_CSV, 400, 15), (FRESH_CSV, 400, 15)],
)
def test_a_hand_written_set_covers_every_type_and_channel(
    path: Path, least: int, least_per_type: int
) -> None:
    rows = _hand_written(path)
    intents = set(load_config(STORE_CONFIG).issue_types)
    per_intent = Counter(row["intent"] for row in rows)

    assert len(rows) >= least
    assert set(per_intent) == intents
    assert min(per_intent.values()) >= least_per_type
    assert Counter(row["channel"] for row in rows).keys() == CHANNELS
    assert len({normalise_text(row["utterance"]) for row in rows}) == len(rows)


def test_the_pairs_set_covers_the_confusable_types_on_every_channel() -> None:
    rows = _hand_written(PAIRS_CSV)
    per_intent = Counter(row["intent"] for row in rows)

    assert set(per_intent) <= set(load_config(STORE_CONFIG).issue_types)
    assert {"create_account", "registration_problems", "get_refund", "track_refund"} <= set(
        per_intent
    )
    assert min(per_intent.values()) >= 15
    assert Counter(row["channel"] for row in rows).keys() == CHANNELS
    assert len({normalise_text(row["utterance"]) for row in rows}) == len(rows)


def test_the_realistic_set_holds_the_messages_quoted_in_issue_18() -> None:
    rows = _hand_written(REALISTIC_CSV)
    quoted = {"chraged twicee", "chrgd 2x", "took the money 2x", "card keeps getting declined"}
    assert {row["utterance"]: row["intent"] for row in rows if row["utterance"] in quoted} == (
        dict.fromkeys(quoted, "payment_issue")
    )


@pytest.mark.parametrize("path", [REALISTIC_CSV, DEV_CSV, PAIRS_CSV, FRESH_CSV])
def test_a_hand_written_set_never_overlaps_the_training_examples(path: Path) -> None:
    def folded(text: str) -> str:
        return " ".join(text.casefold().split())

    trained = {
        folded(example) for spec in read_config(STORE_CONFIG)[0] for example in spec.examples
    }
    overlapping = [
        row["utterance"] for row in _hand_written(path) if folded(row["utterance"]) in trained
    ]

    assert trained
    assert overlapping == []
