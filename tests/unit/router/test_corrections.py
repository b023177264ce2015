"""Agents' corrections as the classifier's tools read them: the report of how often each type
was corrected, the examples file train writes, and a reload that learns from it."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libs.common.config import LiveConfig
from services.router import classify_eval, train
from services.router.corrections import (
    Correction,
    CorrectionKind,
    corrections_report,
    read_corrections,
    write_corrections,
)
from services.router.runtime import RouterRuntime

AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
EXAMPLES = {
    "billing": [
        "you charged my card twice",
        "there is a double charge on my statement",
        "my payment was taken two times",
        "why was i billed again for the same order",
        "the charge on my card is wrong",
        "i was overcharged for my order",
    ],
    "delivery": [
        "my parcel never arrived",
        "where is my package",
        "the courier has not delivered my order",
        "tracking says delivered but nothing came",
        "my order is late",
        "when will my parcel arrive",
    ],
    "feedback": [
        "thanks for the quick help",
        "great service, very happy",
        "the staff were lovely",
        "i love the new website",
        "well done on the fast delivery",
        "really pleased with my purchase",
    ],
}
CORRECTED = "the parcel guy took the money off me a second time at the door"
CONFIG = """\
version: 1
queues:
  desk: {{description: "Everything"}}
issue_types:
  billing: {{impact: deep, examples_file: {examples}}}
  delivery: {{impact: deep, examples_file: {examples}}}
  feedback: {{impact: shallow, examples_file: {examples}}}
rules:
  - name: everything
    then: {{queue: desk, priority: 3}}
"""


def correction(
    n: int,
    message: str,
    previous: str | None,
    new: str | None,
    *,
    kind: CorrectionKind = "change_issue_type",
    text: str | None = None,
) -> Correction:
    return Correction(
        action_id=f"a{n}",
        kind=kind,
        conversation_id=f"c-{message}",
        message_id=message,
        agent="ada",
        at=AT + timedelta(minutes=n),
        previous_issue_type=previous,
        issue_type=new,
        queue="other" if kind == "transfer" else None,
        text=text,
    )


CORRECTIONS = [
    correction(1, "m1", "delivery", "billing", text=CORRECTED),
    correction(2, "m2", "delivery", None, kind="transfer", text="where is it"),
    correction(3, "m3", "feedback", "billing", text="ok thanks but you charged me twice"),
    # m4: changed, then changed back to what the router said: no correction in the end
    correction(4, "m4", "delivery", "feedback", text="my parcel never arrived"),
    correction(5, "m4", "feedback", "delivery", text="my parcel never arrived"),
    # m5: corrected twice; the router's type is the first one's old type, the last word wins
    correction(6, "m5", "delivery", "feedback"),
    correction(7, "m5", "feedback", "billing"),
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    examples = tmp_path / "examples.csv"
    with examples.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("utterance", "intent"))
        writer.writerows((text, label) for label, texts in EXAMPLES.items() for text in texts)
    config = tmp_path / "store.yaml"
    config.write_text(CONFIG.format(examples="examples.csv"))
    return config


def test_the_report_counts_each_corrected_message_once_per_type_the_router_gave() -> None:
    report = corrections_report(CORRECTIONS, configured=EXAMPLES)
    assert (report.corrections, report.messages, report.retyped, report.moved_only) == (7, 5, 3, 2)
    rows = {row.issue_type: row for row in report.per_type}
    assert [row.issue_type for row in report.per_type] == ["delivery", "feedback", "billing"]
    delivery = rows["delivery"]
    assert (delivery.corrected, delivery.retyped, delivery.moved_only) == (4, 2, 2)
    assert delivery.to == (("billing", 2),)
    assert delivery.share == pytest.approx(0.8)
    assert (rows["feedback"].corrected, rows["feedback"].to) == (1, (("billing", 1),))
    assert rows["billing"].corrected == 0


def test_classify_eval_reports_corrections_from_an_exported_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "corrections.jsonl"
    write_corrections(exported, CORRECTIONS)
    assert read_corrections(exported) == CORRECTIONS
    code = classify_eval.main(["--config", str(store), "--corrections", str(exported)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == (
        "agents' corrections: 7 actions on 5 messages: 3 given another issue type, "
        "2 only transferred"
    )
    assert any(line.split()[:4] == ["delivery", "4", "2", "2"] for line in out.splitlines())


def test_a_bad_corrections_line_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "corrections.jsonl"
    exported.write_text('{"action_id": "a1"}\n')
    assert classify_eval.main(["--corrections", str(exported)]) == 1
    assert f"{exported}:1:" in capsys.readouterr().err


async def test_train_writes_the_corrected_texts_and_a_reload_learns_them(
    store: Path, tmp_path: Path
) -> None:
    live = LiveConfig(store, RouterRuntime.build)
    assert live.current.by_language.classify(CORRECTED, "en").issue_type != "billing"
    exported = tmp_path / "corrections.jsonl"
    # An agent's word on a text that is also a configured example replaces the example's type.
    relabel = correction(8, "m6", "delivery", "feedback", text="My order is LATE")
    write_corrections(exported, [*CORRECTIONS, relabel])
    out = tmp_path / "corrected.csv"
    arguments = ["--config", str(store), "--with-corrections", str(exported), "--out", str(out)]
    assert train.main(arguments) == 0

    with out.open(newline="") as handle:
        rows = [(row["utterance"], row["intent"]) for row in csv.DictReader(handle)]
    configured = [(text, label) for label, texts in EXAMPLES.items() for text in texts]
    assert sorted(rows) == sorted(
        [
            *(row for row in configured if row != ("my order is late", "delivery")),
            ("My order is LATE", "feedback"),
            (CORRECTED, "billing"),
            ("ok thanks but you charged me twice", "billing"),
        ]
    )
    # Pointing examples_file at the new file is a configuration change: the reload builds it.
    await asyncio.to_thread(store.write_text, CONFIG.format(examples="corrected.csv"))
    assert await live.reload_if_changed()
    assert live.current.by_language.classify(CORRECTED, "en").issue_type == "billing"
