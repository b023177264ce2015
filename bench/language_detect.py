"""Language detection on short customer messages: py3langid against lingua.

Both ship their models inside their wheels. Each configuration runs in a process of its own
(so the memory it adds is its own) over ``tests/data/languages.csv``: messages written for this
project in English, Spanish, German, French, Portuguese, Italian and Dutch, from two or three
words to tweet length, plus texts that have no language to tell ("ok", "?", a number, an
emoji), which a detector must not force into one.

For every configuration: top-1 accuracy (by length), the confidence it gives right answers and
no-language texts, the outcome when its threshold is set just above every no-language text
(right, abstained, wrong), microseconds per message (p50/p99 of single calls after a warm-up
pass), seconds to load and memory added. ``switchboard`` is what ingest runs
(:mod:`libs.domain.language`, with its own threshold). lingua is not a dependency of the
project: install it beside it (``pip install lingua-language-detector==2.1.1``) to measure it
too; without it its rows are skipped.

    python -m bench.language_detect [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.harness import report
from tooling.simulate.summary import percentile

DATA = Path(__file__).parent.parent / "tests" / "data" / "languages.csv"
LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl")

Detect = Callable[[str], tuple[str | None, float]]


def _switchboard() -> Detect:
    from libs.domain import language

    language.load_model()
    return language.text_language


def _py3langid_seven() -> Detect:
    langid = importlib.import_module("py3langid.langid")
    identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))

    def detect(text: str) -> tuple[str | None, float]:
        code, probability = identifier.classify(text)
        return str(code), float(probability)

    return detect


def _lingua(*, every_language: bool, low_accuracy: bool) -> Detect:
    lingua = importlib.import_module("lingua")
    builder = (
        lingua.LanguageDetectorBuilder.from_all_languages()
        if every_language
        else lingua.LanguageDetectorBuilder.from_iso_codes_639_1(
            *(lingua.IsoCode639_1.from_str(code) for code in LANGUAGES)
        )
    )
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> tuple[str | None, float]:
        values = detector.compute_language_confidence_values(text)
        if not values or values[0].value == 0.0:
            return None, 0.0
        return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

    return detect


CONFIGURATIONS: dict[str, tuple[str, str, Callable[[], Detect]]] = {
    "switchboard": ("py3langid", "py3langid, 110 languages (ingest's detector)", _switchboard),
    "py3langid-7": ("py3langid", "py3langid, restricted to the 7 test languages", _py3langid_seven),
    "lingua-7": (
        "lingua-language-detector",
        "lingua high accuracy, restricted to the 7 test languages",
        lambda: _lingua(every_language=False, low_accuracy=False),
    ),
    "lingua-75-low": (
        "lingua-language-detector",
        "lingua low accuracy, all 75 languages",
        lambda: _lingua(every_language=True, low_accuracy=True),
    ),
    "lingua-75": (
        "lingua-language-detector",
        "lingua high accuracy, all 75 languages",
        lambda: _lingua(every_language=True, low_accuracy=False),
    ),
}


def _rows() -> list[tuple[str, str | None, str]]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        return [(r["text"], r["language"] or None, r["length"]) for r in csv.DictReader(handle)]


def _installed_megabytes(distribution: str) -> float:
    files = importlib.metadata.files(distribution) or []
    return round(sum(Path(str(f.locate())).stat().st_size for f in files) / 1e6, 1)


def measure(name: str, repeat: int) -> dict[str, Any]:
    """One configuration, in this process (see :func:`run` for the process per configuration)."""
    distribution, description, build = CONFIGURATIONS[name]
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    detect = build()
    load_seconds = time.perf_counter() - started
    rows = _rows()
    answers = [detect(text) for text, _, _ in rows]  # also the warm-up pass
    rss_added = process.memory_info().rss - rss_before
    timings: list[float] = []
    for _ in range(repeat):
        for text, _, _ in rows:
            begun = time.perf_counter_ns()
            detect(text)
            timings.append((time.perf_counter_ns() - begun) / 1000)
    labelled = [(a, r) for a, r in zip(answers, rows, strict=True) if r[1] is not None]
    nothing = [a for a, r in zip(answers, rows, strict=True) if r[1] is None]
    threshold = max((confidence for _, confidence in nothing), default=0.0)
    right = [a[1] for a, r in labelled if a[0] == r[1]]
    by_length = {
        length: _share(
            sum(a[0] == r[1] for a, r in labelled if r[2] == length),
            sum(r[2] == length for _, r in labelled),
        )
        for length in ("words", "sms", "tweet")
    }
    outcomes = {"never_forcing_no_language": _outcome(labelled, threshold)}
    if name == "switchboard":
        from libs.domain.language import MIN_CONFIDENCE

        outcomes["at_min_confidence"] = _outcome(labelled, MIN_CONFIDENCE, inclusive=True)
    return {
        "name": name,
        "detector": description,
        "version": importlib.metadata.version(distribution),
        "installed_mb": _installed_megabytes(distribution),
        "messages": len(labelled),
        "no_language_texts": len(nothing),
        "accuracy": _share(len(right), len(labelled)),
        "accuracy_by_length": by_length,
        "lowest_confidence_right": round(min(right, default=0.0), 3),
        "highest_confidence_no_language": round(threshold, 3),
        **outcomes,
        "us_per_message_p50": round(percentile(timings, 0.5) or 0.0, 1),
        "us_per_message_p99": round(percentile(timings, 0.99) or 0.0, 1),
        "load_seconds": round(load_seconds, 2),
        "memory_added_mb": round(rss_added / 1e6, 1),
    }


def _outcome(
    labelled: list[tuple[tuple[str | None, float], tuple[str, str | None, str]]],
    threshold: float,
    *,
    inclusive: bool = False,
) -> dict[str, float]:
    """Shares of right, abstained and wrong answers when below ``threshold`` means unsure."""
    answered = [
        (answer, row)
        for answer, row in labelled
        if answer[1] > threshold or (inclusive and answer[1] == threshold)
    ]
    return {
        "right": _share(sum(a[0] == r[1] for a, r in answered), len(labelled)),
        "abstained": _share(len(labelled) - len(answered), len(labelled)),
        "wrong": _share(sum(a[0] != r[1] for a, r in answered), len(labelled)),
    }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def run(repeat: int) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for name, (distribution, _, _) in CONFIGURATIONS.items():
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            print(f"{name}: {distribution} is not installed, skipped", file=sys.stderr)
            continue
        out = subprocess.run(
            [sys.executable, "-m", "bench.language_detect", "--one", name, "--repeat", str(repeat)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out))
        print(json.dumps(results[-1]), file=sys.stderr)
    from libs.domain.language import MIN_CONFIDENCE

    return {"switchboard_min_confidence": MIN_CONFIDENCE, "repeat": repeat, "detectors": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the messages")
    parser.add_argument("--one", choices=sorted(CONFIGURATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeat)))
        return
    report("language_detect", run(args.repeat))


if __name__ == "__main__":
    main()
