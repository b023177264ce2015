"""How well the issue-type step does on labelled customer messages, and how fast.

``classify-eval CSV --split 0.3`` holds out a stratified share of the labelled rows, removes every
held-out utterance from the issue types' training examples, builds the classifier, and scores the
held-out rows one message at a time, as the router does: accuracy, macro-F1, a per-type table,
the pairs most often confused, latency per message, and the build cost.

Until the command takes a configuration file, the issue types come from the CSV's own labels
(``specs_from_labelled_rows``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import train_test_split

from libs.common.config import ConfigError, load_config
from services.router.issue_types import (
    UNKNOWN,
    BuildStats,
    IssueClassifier,
    IssueTypeSpec,
    normalise_text,
)
from services.router.runtime import issue_type_spec

__all__ = [
    "EvalReport",
    "TypeMetrics",
    "evaluate",
    "format_report",
    "hold_out",
    "main",
    "read_labelled_csv",
    "specs_from_labelled_rows",
]

LabelledRow = tuple[str, str]
"""(utterance, expected issue type); ``unknown`` marks a message no type should claim."""

_LABEL_COLUMNS = ("intent", "issue_type", "label")
_WARM_UP = 50
_TOP_CONFUSED = 10


@dataclass(frozen=True, slots=True)
class TypeMetrics:
    """One row of the per-type table. ``predicted`` counts the answers of this type."""

    issue_type: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True, slots=True)
class EvalReport:
    """The outcome of one evaluation run.

    ``macro_f1`` averages over the expected types only, so answering ``unknown`` costs recall
    without adding a zero-F1 ``unknown`` row to the mean. ``overlap`` counts evaluated rows whose
    text is also a training example: 0 whenever ``split`` is set. Latencies are wall-clock time
    per ``classify`` call; ``cpu_p99_ms`` is the same percentile of the thread's CPU time, so
    that a p99 inflated by waiting for a core on a busy machine shows as such.
    """

    accuracy: float
    macro_f1: float
    per_type: tuple[TypeMetrics, ...]
    confused: tuple[tuple[str, str, int], ...]
    matched_by: tuple[tuple[str, int], ...]
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    cpu_p99_ms: float
    build: BuildStats
    evaluated: int
    training_examples: int
    overlap: int
    split: float | None
    seed: int
    threshold: float


def read_labelled_csv(path: Path) -> list[LabelledRow]:
    """Rows of a CSV with an ``utterance`` column and an ``intent`` (or ``issue_type`` or
    ``label``) column; a byte-order mark is allowed, as Bitext's file has one."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        label_column = next((name for name in _LABEL_COLUMNS if name in fields), None)
        if "utterance" not in fields or label_column is None:
            raise ValueError(
                f"{path}: needs an 'utterance' column and one of {', '.join(_LABEL_COLUMNS)}; "
                f"found {', '.join(fields) or 'no header'}"
            )
        return [
            (row["utterance"], row[label_column].strip())
            for row in reader
            if (row["utterance"] or "").strip() and (row[label_column] or "").strip()
        ]


def specs_from_labelled_rows(rows: Iterable[LabelledRow]) -> tuple[IssueTypeSpec, ...]:
    """One shallow-impact issue type per label, its rows as examples, ordered by name.

    Rows labelled ``unknown`` stay out: they are messages no type should claim.
    """
    examples: dict[str, list[str]] = {}
    for utterance, label in rows:
        if label != UNKNOWN:
            examples.setdefault(label, []).append(utterance)
    return tuple(
        IssueTypeSpec(name=label, impact="shallow", priority=None, examples=tuple(examples[label]))
        for label in sorted(examples)
    )


def specs_from_config(path: Path) -> tuple[IssueTypeSpec, ...]:
    """The issue types of a configuration file, examples files included."""
    config = load_config(path)
    return tuple(
        issue_type_spec(name, spec, path.parent) for name, spec in config.issue_types.items()
    )


def hold_out(
    specs: Sequence[IssueTypeSpec], rows: Sequence[LabelledRow], *, split: float, seed: int
) -> tuple[tuple[IssueTypeSpec, ...], list[LabelledRow]]:
    """Split off a stratified ``split`` share of ``rows`` and strip it from the specs' examples.

    Examples are compared after normalisation, so a held-out message that differs from a
    training example only in case, accents or spacing does not stay behind in training.
    Returns the training specs and the held-out rows.
    """
    if not 0.0 < split < 1.0:
        raise ValueError("split must be between 0 and 1")
    labels = [label for _, label in rows]
    try:
        _, held_indices = train_test_split(
            np.arange(len(rows)), test_size=split, stratify=labels, random_state=seed
        )
    except ValueError as exc:
        raise ValueError(f"cannot hold out {split:.0%} of the rows by type: {exc}") from None
    held = [rows[int(index)] for index in sorted(held_indices)]
    held_texts = {normalise_text(utterance) for utterance, _ in held}
    training = tuple(
        replace(
            spec,
            examples=tuple(
                example for example in spec.examples if normalise_text(example) not in held_texts
            ),
        )
        for spec in specs
    )
    return training, held


def evaluate(
    specs: Sequence[IssueTypeSpec],
    rows: Sequence[LabelledRow],
    *,
    split: float | None,
    seed: int,
    threshold: float = 0.5,
) -> EvalReport:
    """Build from ``specs`` and classify ``rows`` one message at a time.

    With ``split``, only a held-out share of ``rows`` is evaluated and none of it is trained on
    (see ``hold_out``). Without it, every row is evaluated against the specs as given, which
    measures a configuration on messages it may have been trained on (``overlap`` says how
    many).
    """
    if split is not None:
        specs, rows = hold_out(specs, rows, split=split, seed=seed)
    if not rows:
        raise ValueError("no labelled rows to evaluate")
    classifier = IssueClassifier.build(specs, threshold=threshold, seed=seed)
    training_texts = {normalise_text(example) for spec in specs for example in spec.examples}
    overlap = sum(normalise_text(utterance) in training_texts for utterance, _ in rows)

    for utterance, _ in rows[:_WARM_UP]:
        classifier.classify(utterance)  # first calls pay for lazily built automaton states
    expected: list[str] = []
    answered: list[str] = []
    how: Counter[str] = Counter()
    latencies: list[float] = []
    cpu_ns: list[int] = []
    for utterance, label in rows:
        cpu_started = time.thread_time_ns()
        started = time.perf_counter()
        result = classifier.classify(utterance)
        latencies.append(time.perf_counter() - started)
        cpu_ns.append(time.thread_time_ns() - cpu_started)
        expected.append(label)
        answered.append(result.issue_type)
        how[result.matched_by] += 1

    true_labels = sorted(set(expected))
    table_labels = true_labels + sorted(set(answered) - set(true_labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        expected, answered, labels=table_labels, zero_division=0.0
    )
    answered_counts = Counter(answered)
    per_type = tuple(
        TypeMetrics(label, float(p), float(r), float(f), int(s), answered_counts[label])
        for label, p, r, f, s in zip(table_labels, precision, recall, f1, support, strict=True)
    )
    confused = Counter((e, a) for e, a in zip(expected, answered, strict=True) if e != a)
    latency_ms = np.asarray(latencies) * 1000.0
    return EvalReport(
        accuracy=sum(e == a for e, a in zip(expected, answered, strict=True)) / len(rows),
        macro_f1=float(np.mean(f1[: len(true_labels)])),
        per_type=per_type,
        confused=tuple((e, a, n) for (e, a), n in confused.most_common(_TOP_CONFUSED)),
        matched_by=tuple(sorted(how.items())),
        latency_p50_ms=float(np.percentile(latency_ms, 50)),
        latency_p99_ms=float(np.percentile(latency_ms, 99)),
        latency_max_ms=float(latency_ms.max()),
        cpu_p99_ms=float(np.percentile(np.asarray(cpu_ns) / 1e6, 99)),
        build=classifier.stats,
        evaluated=len(rows),
        training_examples=classifier.stats.examples,
        overlap=overlap,
        split=split,
        seed=seed,
        threshold=threshold,
    )


def format_report(report: EvalReport) -> str:
    """The report as plain text for a terminal or a CI log."""
    build = report.build
    held = f"held out {report.split:.0%}" if report.split is not None else "no hold-out"
    lines = [
        f"issue-type evaluation: {report.evaluated} messages ({held}, seed {report.seed}, "
        f"threshold {report.threshold:g})",
        f"accuracy  {report.accuracy:.4f}",
        f"macro-F1  {report.macro_f1:.4f}  (mean over {_expected_types(report)} expected types)",
        f"latency   p50 {report.latency_p50_ms:.3f} ms  p99 {report.latency_p99_ms:.3f} ms  "
        f"max {report.latency_max_ms:.3f} ms  (wall clock, one message per call; "
        f"CPU time p99 {report.cpu_p99_ms:.3f} ms)",
        f"build     {build.seconds:.2f} s: {build.examples} examples in {build.model_types} "
        f"types, {build.vocabulary} features ({build.word_features} word, "
        f"{build.char_features} char), {build.known_words} known words, {build.cv_folds}-fold "
        f"calibration, {build.phrases} phrases, {build.patterns} patterns",
        f"decided   {', '.join(f'{how} {count}' for how, count in report.matched_by)}",
        f"evaluated rows that are training examples: {report.overlap}",
        "",
    ]
    width = max([len("issue type"), *(len(row.issue_type) for row in report.per_type)])
    lines.append(f"{'issue type':<{width}}  precision  recall      F1  support  predicted")
    lines.append("-" * (width + 45))
    for row in report.per_type:
        lines.append(
            f"{row.issue_type:<{width}}  {row.precision:9.4f}  {row.recall:6.4f}  "
            f"{row.f1:6.4f}  {row.support:7d}  {row.predicted:9d}"
        )
    lines.append("")
    if report.confused:
        lines.append("most confused (expected -> answered: count)")
        lines.extend(f"  {e} -> {a}: {n}" for e, a, n in report.confused)
    else:
        lines.append("no confusions")
    return "\n".join(lines)


def _expected_types(report: EvalReport) -> int:
    return sum(row.support > 0 for row in report.per_type)


def main(argv: list[str]) -> int:
    """``classify-eval CSV [--split 0.3] [--seed 0] [--threshold 0.5]``; prints the report."""
    parser = argparse.ArgumentParser(
        prog="classify-eval",
        description="Measure issue-type classification on labelled messages, held out from "
        "training.",
    )
    parser.add_argument("csv", type=Path, help="CSV with utterance and intent columns")
    parser.add_argument(
        "--config",
        type=Path,
        help="take the issue types (phrases, patterns, examples) from this configuration "
        "instead of building one type per label of the CSV",
    )
    parser.add_argument(
        "--split", type=float, default=0.3, help="share of rows held out (default 0.3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="split and model seed (default 0)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="confidence below which the answer is unknown (default 0.5)",
    )
    args = parser.parse_args(argv)
    try:
        rows = read_labelled_csv(args.csv)
        specs = specs_from_config(args.config) if args.config else specs_from_labelled_rows(rows)
        report = evaluate(
            specs,
            rows,
            split=args.split,
            seed=args.seed,
            threshold=args.threshold,
        )
    except (OSError, ValueError, ConfigError) as exc:
        print(f"classify-eval: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
