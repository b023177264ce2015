"""The mail core on crafted input: how long each case of ``tests/support/hostile_mail.py``
takes next to its benign twin of the same size.

The twin is the ceiling of the same run: ordinary prose (a plain-text message, a paragraph of
HTML, plain text) of as many bytes, fed to the same function. A parser that stays linear on the
crafted input takes a small multiple of the twin's time; one that went quadratic or recursive
falls behind by orders of magnitude at these sizes (20 KB to 10 MB). Each time is the best of
``--repeat`` runs in this one process.

    python -m bench.mail_parsing [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.harness import report
from services.ingest.mail import (
    InvalidEmail,
    extract_html_reply,
    extract_new_text,
    parse_email,
    split_signature,
)
from tests.support.hostile_mail import Crafted, cases


def _feed(case: Crafted) -> Callable[[bytes | str], str]:
    """The function a case feeds, answering what came of its input."""

    def message(raw: bytes | str) -> str:
        assert isinstance(raw, bytes)
        try:
            parse_email(raw)
        except InvalidEmail:
            return "refused"
        return "parsed"

    def html(markup: bytes | str) -> str:
        assert isinstance(markup, str)
        extract_html_reply(markup)
        return "rendered"

    def text(plain: bytes | str) -> str:
        assert isinstance(plain, str)
        extract_new_text(plain)
        split_signature(plain)
        return "extracted"

    return {"message": message, "html": html, "text": text}[case.parser]


def _best_ms(
    feed: Callable[[bytes | str], str], payload: bytes | str, repeat: int
) -> tuple[float, str]:
    """The best of ``repeat`` runs (ms), and what the input came to."""
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = feed(payload)
        best = min(best, time.perf_counter() - started)
    return best * 1000, outcome


def measure(case: Crafted, repeat: int) -> dict[str, Any]:
    feed = _feed(case)
    crafted_ms, outcome = _best_ms(feed, case.payload, repeat)
    twin_ms, _ = _best_ms(feed, case.twin(), repeat)
    return {
        "case": case.name,
        "bytes": len(case.payload),
        "outcome": outcome,
        "crafted_ms": round(crafted_ms, 2),
        "twin_ms": round(twin_ms, 2),
        "ratio_to_twin": round(crafted_ms / twin_ms, 2),
    }


def run(repeat: int) -> dict[str, Any]:
    results = []
    for case in cases():
        results.append(measure(case, repeat))
        print(results[-1], flush=True)
    worst = max(results, key=lambda r: r["ratio_to_twin"])
    slowest = max(results, key=lambda r: r["crafted_ms"])
    return {
        "repeat": repeat,
        "cases": len(results),
        "worst_ratio_to_twin": worst["ratio_to_twin"],
        "worst_case": worst["case"],
        "slowest_ms": slowest["crafted_ms"],
        "slowest_case": slowest["case"],
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per input; the best counts")
    report("mail_parsing", run(parser.parse_args().repeat))


if __name__ == "__main__":
    main()
