"""The language a customer wrote in, from the text and the hint its channel gives.

The text is scored by py3langid's naive Bayes model over byte n-grams (shipped inside its
wheel; ``bench/language_detect.py`` compares it with lingua on short customer messages). Its
probabilities are spread over every language that has an ISO 639-1 code, minus the classical
and constructed ones nobody writes to customer service in, and calibrated for length: a text
too short to tell ("ok", a number, an emoji, "thanks") spreads over many languages and stays
below :data:`MIN_CONFIDENCE`. Such a text gets no language rather than a forced guess, since a
wrong language sends a customer to a queue that cannot read them.

A hint (an email's ``Content-Language``, the chat widget's browser language) is what the
channel says about the customer, not about this text: it decides only when the text does not,
so a Spanish message typed in a browser set to English is still Spanish.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

MIN_CONFIDENCE: Final = 0.3
"""Below this probability of its best language, a text is not trusted to say its language."""

# The start of a message says its language; the cost of scoring grows with the length.
MAX_DETECT_CHARS: Final = 1_000

# Latin, Sanskrit, Esperanto and Volapük: they only ever win on short texts of living languages.
_NEVER_CUSTOMERS: Final = frozenset({"la", "sa", "eo", "vo"})
_PRIMARY_SUBTAG: Final = re.compile(r"\s*([A-Za-z]{2})(?:[-_][A-Za-z0-9-]*)?\s*(?:;.*)?")


@functools.cache
def _identifier() -> Any:
    """The model, restricted to the languages a customer may write in: loaded once (seconds)."""
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(
        sorted({code for code in identifier.labels if len(code) == 2} - _NEVER_CUSTOMERS)
    )
    return identifier


@functools.cache
def languages() -> frozenset[str]:
    """The ISO 639-1 codes detection can answer."""
    return frozenset(_identifier().labels)


def load_model() -> None:
    """Load the model now rather than on the first message: a service calls this at start-up,
    in a thread, so no request waits the seconds it takes."""
    _identifier()


def language_tag(tag: str | None) -> str | None:
    """The ISO 639-1 code of a language tag or list (``es-MX``, ``de-DE, en;q=0.8``, ``EN``),
    or None when it names no language detection knows."""
    if not tag:
        return None
    first = _PRIMARY_SUBTAG.fullmatch(tag.split(",", 1)[0])
    if first is None:
        return None
    code = first.group(1).lower()
    return code if code in languages() else None


def text_language(text: str) -> tuple[str | None, float]:
    """The most likely language of ``text`` and its probability (None for a text without
    letters to go by)."""
    sample = text[:MAX_DETECT_CHARS]
    if not any(character.isalpha() for character in sample):
        return None, 0.0
    code, probability = _identifier().classify(sample)
    return str(code), float(probability)


def detect_language(text: str, hint: str | None = None) -> str | None:
    """The language ``text`` is written in (ISO 639-1), or None when unsure.

    The text decides when its best language reaches :data:`MIN_CONFIDENCE`; otherwise the
    channel's ``hint`` (a language tag), if it names a known language.
    """
    code, probability = text_language(text)
    if code is not None and probability >= MIN_CONFIDENCE:
        return code
    return language_tag(hint)
