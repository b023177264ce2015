"""How well the issue-type step does on labelled customer messages, and how fast.

Three ways to measure, each training on one set of messages and scoring others one message at
a time, as the router does:

- ``classify-eval CSV --split 0.3`` holds out a stratified random share of the CSV's rows and
  removes every held-out utterance from training. On templated data such as the shipped
  examples this mostly measures new sentences in old wording.
- ``classify-eval CSV --by-flag [LETTERS]`` holds out whole variations instead: all rows whose
  ``flags`` carry one letter (Bitext's Q colloquial, W offensive, Z typos, I questions, ...),
  one letter at a time, and reports each. This measures wording the model has not seen.
- ``classify-eval --config FILE --test CSV`` trains on exactly what the configuration trains on
  and evaluates every row of CSV, with no split: the judge for a held-out set such as
  tests/data/realistic-messages.csv.

``classify-eval --config FILE --corrections JSONL`` measures the model in production instead:
how often agents corrected each issue type it gave (``services.router.corrections``).

The report gives macro-F1, accuracy, the share answered ``unknown``, precision where the
confidence is at least 0.9 and the share of messages there, the worst five types, a per-type
table, the pairs most often confused, latency per message and the build cost; ``--json`` gives
the same for machines.

Without ``--config``, the issue types come from the CSV's own labels
(``specs_from_labelled_rows``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import train_test_split

from libs.common.config import ClassifierSettings, ConfigError, load_config
from services.router.corrections import (
    corrections_json,
    corrections_report,
    format_corrections,
    read_corrections,
)
from services.router.issue_types import (
    UNKNOWN,
    BuildStats,
    IssueClassifier,
    IssueTypeSpec,
    normalise_text,
)
from services.router.runtime import issue_type_specs

__all__ = [
    "FLAG_NAMES",
    "EvalReport",
    "TypeMetrics",
    "evaluate",
    "evaluate_by_flag",
    "flag_groups",
    "format_flag_reports",
    "format_report",
    "hold_out",
    "hold_out_flag",
    "main",
    "read_config",
    "read_flagged_csv",
    "read_labelled_csv",
    "report_json",
    "score",
    "specs_from_labelled_rows",
]

LabelledRow = tuple[str, str]
"""(utterance, expected issue type); ``unknown`` marks a message no type should claim."""

FLAG_NAMES: Final = {
    "B": "basic syntax",
    "C": "coordinated",
    "E": "expanded abbreviations",
    "I": "interrogative",
    "K": "keyword only",
    "L": "lexical variation",
    "M": "morphological variation",
    "P": "politeness",
    "Q": "colloquial",
    "W": "offensive",
    "Z": "typos and run-on words",
}
"""What the letters of Bitext's ``flags`` column mark (config/examples/README.md)."""

CONFIDENT: Final = 0.9
"""The confidence at which the report measures precision: where an automatic action is safe."""

_LABEL_COLUMNS = ("intent", "issue_type", "label")
_WARM_UP = 50
_TOP_CONFUSED = 10
_WORST = 5
# A smaller group gives a macro-F1 over a handful of types and messages, too noisy to read.
_MIN_GROUP_ROWS = 30


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
    without adding a zero-F1 ``unknown`` row to the mean. ``abstention_rate`` is the share of
    messages answered ``unknown``; ``confident_share`` the share answered with a type at
    ``confident_at`` or above, and ``confident_precision`` how many of those were right
    (``None`` when there were none). ``worst`` holds the expected types of lowest F1.
    ``overlap`` counts evaluated rows whose text is also a training example: 0 whenever rows
    were held out. Latencies are wall-clock time per ``classify`` call; ``cpu_p99_ms`` is the
    same percentile of the thread's CPU time, so that a p99 inflated by waiting for a core on a
    busy machine shows as such.
    """

    scheme: str
    held_out_flag: str | None
    accuracy: float
    macro_f1: float
    abstention_rate: float
    confident_at: float
    confident_share: float
    confident_precision: float | None
    worst: tuple[TypeMetrics, ...]
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
    seed: int
    threshold: float


def read_labelled_csv(path: Path) -> list[LabelledRow]:
    """Rows of a CSV with an ``utterance`` column and an ``intent`` (or ``issue_type`` or
    ``label``) column; a byte-order mark is allowed, as Bitext's file has one."""
    return read_flagged_csv(path)[0]


def read_flagged_csv(path: Path) -> tuple[list[LabelledRow], list[str] | None]:
    """The labelled rows of ``path`` (see ``read_labelled_csv``) and, row for row, the letters
    of its ``flags`` column; ``None`` for a file without that column."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        label_column = next((name for name in _LABEL_COLUMNS if name in fields), None)
        if "utterance" not in fields or label_column is None:
            raise ValueError(
                f"{path}: needs an 'utterance' column and one of {', '.join(_LABEL_COLUMNS)}; "
                f"found {', '.join(fields) or 'no header'}"
            )
        kept = [
            row
            for row in reader
            if (row["utterance"] or "").strip() and (row[label_column] or "").strip()
        ]
    rows = [(row["utterance"], row[label_column].strip()) for row in kept]
    return rows, [row["flags"] or "" for row in kept] if "flags" in fields else None


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


def read_config(path: Path) -> tuple[tuple[IssueTypeSpec, ...], ClassifierSettings]:
    """The issue types of a configuration file, examples files included, and the classifier
    settings (threshold, seed) the router builds them with."""
    config = load_config(path)
    return tuple(issue_type_specs(config, path.parent)), config.classifier


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
    return _without(specs, held), held


def flag_groups(flags: Sequence[str]) -> list[str]:
    """The flag letters worth holding out one at a time, in alphabetical order.

    A letter every row carries (Bitext's B) is skipped, since holding it out leaves nothing to
    train on, and so is one on fewer than a few dozen rows.
    """
    counts = Counter(letter for letters in flags for letter in set(letters))
    return sorted(
        letter for letter, count in counts.items() if _MIN_GROUP_ROWS <= count < len(flags)
    )


def hold_out_flag(
    specs: Sequence[IssueTypeSpec], rows: Sequence[LabelledRow], flags: Sequence[str], flag: str
) -> tuple[tuple[IssueTypeSpec, ...], list[int]]:
    """Hold out every row whose ``flags`` (row for row with ``rows``) carry the letter ``flag``.

    The held-out utterances are stripped from the specs' examples as in ``hold_out``. Returns the
    training specs and the numbers of the held-out rows.
    """
    held = [index for index, letters in enumerate(flags) if flag in letters]
    if not held:
        raise ValueError(f"no row is flagged {flag!r}")
    return _without(specs, [rows[index] for index in held]), held


def _without(
    specs: Sequence[IssueTypeSpec], held: Iterable[LabelledRow]
) -> tuple[IssueTypeSpec, ...]:
    held_texts = {normalise_text(utterance) for utterance, _ in held}
    return tuple(
        replace(
            spec,
            examples=tuple(
                example for example in spec.examples if normalise_text(example) not in held_texts
            ),
        )
        for spec in specs
    )


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
    if split is None:
        return score(specs, rows, scheme="no hold-out", seed=seed, threshold=threshold)
    training, held = hold_out(specs, rows, split=split, seed=seed)
    return score(training, held, scheme=f"held out {split:.0%}", seed=seed, threshold=threshold)


def evaluate_by_flag(
    specs: Sequence[IssueTypeSpec],
    rows: Sequence[LabelledRow],
    flags: Sequence[str],
    *,
    letters: str | None,
    seed: int,
    threshold: float,
) -> list[EvalReport]:
    """One report per flag letter (``letters``, or ``flag_groups``): that flag's rows held out
    from training (see ``hold_out_flag``) and evaluated."""
    reports = []
    for flag in flag_groups(flags) if letters is None else list(dict.fromkeys(letters)):
        training, held = hold_out_flag(specs, rows, flags, flag)
        name = FLAG_NAMES.get(flag)
        reports.append(
            score(
                training,
                [rows[index] for index in held],
                scheme=f"held out flag {flag}" + (f" ({name})" if name else ""),
                held_out_flag=flag,
                seed=seed,
                threshold=threshold,
            )
        )
    return reports


def score(
    specs: Sequence[IssueTypeSpec],
    rows: Sequence[LabelledRow],
    *,
    scheme: str,
    seed: int,
    threshold: float,
    held_out_flag: str | None = None,
) -> EvalReport:
    """Build from ``specs`` as given and classify every one of ``rows``; ``scheme`` says how
    the rows were chosen, for the report."""
    if not rows:
        raise ValueError("no labelled rows to evaluate")
    classifier = IssueClassifier.build(specs, threshold=threshold, seed=seed)
    training_texts = {normalise_text(example) for spec in specs for example in spec.examples}
    overlap = sum(normalise_text(utterance) in training_texts for utterance, _ in rows)

    for utterance, _ in rows[:_WARM_UP]:
        classifier.classify(utterance)  # first calls pay for lazily built automaton states
    expected: list[str] = []
    answered: list[str] = []
    confident: list[bool] = []
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
        confident.append(result.issue_type != UNKNOWN and result.confidence >= CONFIDENT)
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
    right = [e == a for e, a in zip(expected, answered, strict=True)]
    confident_right = [r for r, c in zip(right, confident, strict=True) if c]
    latency_ms = np.asarray(latencies) * 1000.0
    return EvalReport(
        scheme=scheme,
        held_out_flag=held_out_flag,
        accuracy=sum(right) / len(rows),
        macro_f1=float(np.mean(f1[: len(true_labels)])),
        abstention_rate=answered_counts[UNKNOWN] / len(rows),
        confident_at=CONFIDENT,
        confident_share=len(confident_right) / len(rows),
        confident_precision=(
            sum(confident_right) / len(confident_right) if confident_right else None
        ),
        worst=tuple(
            sorted(per_type[: len(true_labels)], key=lambda row: (row.f1, row.issue_type))[:_WORST]
        ),
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
        seed=seed,
        threshold=threshold,
    )


def format_report(report: EvalReport) -> str:
    """The report as plain text for a terminal or a CI log."""
    build = report.build
    worst = ", ".join(f"{row.issue_type} {row.f1:.3f} (n={row.support})" for row in report.worst)
    lines = [
        f"issue-type evaluation: {report.evaluated} messages ({report.scheme}, seed "
        f"{report.seed}, threshold {report.threshold:g})",
        f"macro-F1 {report.macro_f1:.3f}  accuracy {report.accuracy:.3f}  (mean over "
        f"{_expected_types(report)} expected types)",
        f"unknown   {report.abstention_rate:.1%} of messages answered unknown",
        f"confident {report.confident_share:.1%} of messages answered at confidence >= "
        f"{report.confident_at:g}, precision {_maybe(report.confident_precision)}",
        f"worst     {worst}",
        f"latency   p50 {report.latency_p50_ms:.3f} ms  p99 {report.latency_p99_ms:.3f} ms  "
        f"max {report.latency_max_ms:.3f} ms  (wall clock, one message per call; "
        f"CPU time p99 {report.cpu_p99_ms:.3f} ms)",
        f"build     {build.seconds:.2f} s: {build.examples} examples (+{build.noisy_examples} "
        f"typed in a hurry) in {build.model_types} "
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


def format_flag_reports(reports: Sequence[EvalReport]) -> str:
    """A table of the held-out flags, one line each, then each flag's full report."""
    if not reports:
        return "no flag to hold out"
    first = reports[0]
    width = max(len(_flag_label(report)) for report in reports)
    lines = [
        "issue-type evaluation by variation: each flag's rows held out from training in turn "
        f"(seed {first.seed}, threshold {first.threshold:g})",
        f"{'flag':<{width}}   rows  macro-F1  accuracy  unknown  >={first.confident_at:g}  "
        "precision  p50 ms  p99 ms",
    ]
    lines.extend(
        f"{_flag_label(report):<{width}}  {report.evaluated:5d}  {report.macro_f1:8.3f}  "
        f"{report.accuracy:8.3f}  {report.abstention_rate:7.1%}  {report.confident_share:6.1%}  "
        f"{_maybe(report.confident_precision):>9}  {report.latency_p50_ms:6.3f}  "
        f"{report.latency_p99_ms:6.3f}"
        for report in reports
    )
    for report in reports:
        lines.extend(["", "", format_report(report)])
    return "\n".join(lines)


def report_json(reports: EvalReport | Sequence[EvalReport]) -> str:
    """One report as a JSON object, or several as ``{"groups": [...]}``."""
    document: Any = (
        asdict(reports)
        if isinstance(reports, EvalReport)
        else {"groups": [asdict(report) for report in reports]}
    )
    return json.dumps(document, indent=2)


def _flag_label(report: EvalReport) -> str:
    flag = report.held_out_flag or ""
    return f"{flag} {FLAG_NAMES.get(flag, '')}".rstrip()


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _expected_types(report: EvalReport) -> int:
    return sum(row.support > 0 for row in report.per_type)


def main(argv: list[str]) -> int:
    """``classify-eval [CSV] [--config FILE] [--split S | --test FILE | --by-flag [LETTERS]]
    [--seed N] [--threshold T] [--json]``; prints the report."""
    args = _parser().parse_args(argv)
    if args.corrections is not None:
        return _corrections(args)
    try:
        reports = _run(args)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"classify-eval: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(report_json(reports))
    elif isinstance(reports, EvalReport):
        print(format_report(reports))
    else:
        print(format_flag_reports(reports))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classify-eval",
        description="Measure issue-type classification on labelled messages, held out from "
        "training.",
    )
    parser.add_argument(
        "csv",
        type=Path,
        nargs="?",
        help="CSV with utterance and intent columns (and flags for --by-flag): the rows to "
        "split, or with --test and no --config the examples to train on",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="take the issue types (phrases, patterns, examples) and the classifier's threshold "
        "and seed from this configuration instead of building one type per label of the CSV",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--split",
        type=float,
        default=0.3,
        help="share of the CSV's rows held out at random, by type (the default mode; 0.3)",
    )
    mode.add_argument(
        "--test",
        type=Path,
        metavar="FILE",
        help="train on all the examples and evaluate every row of this CSV, with no split",
    )
    mode.add_argument(
        "--by-flag",
        nargs="?",
        const="",
        metavar="LETTERS",
        help="hold out the rows of one flag (a variation: Q colloquial, Z typos, ...) at a "
        f"time and report each; default: every flag on {_MIN_GROUP_ROWS} or more rows but not "
        "on all",
    )
    mode.add_argument(
        "--corrections",
        type=Path,
        metavar="FILE",
        help="report how often agents corrected each issue type, from a JSON-lines export of "
        "their corrections (switchboard corrections export)",
    )
    parser.add_argument("--seed", type=int, help="split and model seed (default: config's, or 0)")
    parser.add_argument(
        "--threshold",
        type=float,
        help="confidence below which the answer is unknown (default: config's, or 0.5)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _corrections(args: argparse.Namespace) -> int:
    try:
        configured = [spec.name for spec in read_config(args.config)[0]] if args.config else []
        report = corrections_report(read_corrections(args.corrections), configured)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"classify-eval: {exc}", file=sys.stderr)
        return 1
    print(corrections_json(report) if args.json else format_corrections(report))
    return 0


def _run(args: argparse.Namespace) -> EvalReport | list[EvalReport]:
    specs, settings = read_config(args.config) if args.config else (None, ClassifierSettings())
    seed: int = settings.seed if args.seed is None else args.seed
    threshold: float = settings.threshold if args.threshold is None else args.threshold
    if args.test is not None:
        if (specs is None) == (args.csv is None):
            raise ValueError("--test trains on the examples of --config or of a CSV: give one")
        if specs is None:
            specs = specs_from_labelled_rows(read_labelled_csv(args.csv))
        return score(
            specs,
            read_labelled_csv(args.test),
            scheme=f"every row of {args.test.name}, no hold-out",
            seed=seed,
            threshold=threshold,
        )
    if args.csv is None:
        raise ValueError("give a labelled CSV to split, or --test FILE with --config")
    rows, flags = read_flagged_csv(args.csv)
    if specs is None:
        specs = specs_from_labelled_rows(rows)
    if args.by_flag is None:
        return evaluate(specs, rows, split=args.split, seed=seed, threshold=threshold)
    if flags is None:
        raise ValueError(f"{args.csv}: --by-flag needs a 'flags' column")
    return evaluate_by_flag(
        specs, rows, flags, letters=args.by_flag or None, seed=seed, threshold=threshold
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
