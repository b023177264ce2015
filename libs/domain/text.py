"""Text normalisation and pattern checks shared by everything that matches customer text
(issue-type phrases and patterns, rule keywords, incident clustering, the config check).

Patterns use RE2 syntax: an automaton, so matching costs time linear in the text whatever the
pattern, and a badly written pattern cannot backtrack catastrophically on hostile input.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, Final

import re2

# A message is cut to this many characters before anything else, so that a 1 MB paste costs no
# more than a long email.
MAX_INPUT_CHARS: Final = 10_000
RE2_MAX_MEM: Final = 256 * 1024 * 1024

# Control characters that str.split() does not already treat as whitespace.
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]+")
# Phones and mail clients write typographic quotes and dashes that NFKD leaves alone.
_TYPOGRAPHY: Final = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u02bc", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015", "-"),
}
_TYPOGRAPHIC: Final = re.compile(f"[{''.join(_TYPOGRAPHY)}]")


@functools.cache
def _invisible() -> re.Pattern[str]:
    """Characters dropped by normalisation, compiled on first use rather than at import.

    Nonspacing marks are the accents NFKD splits off letters; format characters (zero-width
    space, byte-order mark, soft hyphen) hide inside words; lone surrogates come from broken
    decoders and cannot be encoded to UTF-8 for RE2. The class covers the Basic Multilingual
    Plane, which ``re`` checks in constant time per character, plus plane 14 (tags, variation
    selectors) as one range: a class with the rare marks of historic scripts in the other
    planes would be scanned range by range and cost ten times as much on a long message.
    """
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code)) in ("Mn", "Cf", "Cs"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    bmp = "".join(
        f"\\u{start:04x}" if start == end else f"\\u{start:04x}-\\u{end:04x}"
        for start, end in ranges
    )
    return re.compile(f"(?:[{bmp}]|[\\U000e0000-\\U000e0fff])+")


def _plain_typography(found: re.Match[str]) -> str:
    return _TYPOGRAPHY[found.group()]


def fold_marks(text: str) -> str:
    """Typographic quotes and dashes made plain, compatibility forms decomposed (NFKD),
    accents and invisible characters dropped."""
    if text.isascii():
        return text
    text = _TYPOGRAPHIC.sub(_plain_typography, text)
    return _invisible().sub("", unicodedata.normalize("NFKD", text))


def normalise_text(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """Return ``text`` as phrases, patterns and the model see it.

    Case-folded, accents stripped (NFKD, then nonspacing marks dropped), typographic quotes and
    dashes made plain, control characters treated as spaces, whitespace collapsed to single
    spaces. The input is cut to ``limit`` characters first (bounding the cost of a huge paste)
    and the result again (NFKD and case folding can lengthen it).
    """
    folded = _CONTROLS.sub(" ", fold_marks(text[:limit]).casefold())
    return " ".join(folded.split())[:limit]


def re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    # RE2 would otherwise write every syntax error to stderr besides raising it.
    options.log_errors = False
    # The default 8 MiB budget fails to compile a set of a few hundred phrases and patterns
    # (the router compiles every issue type's into one); this bounds the automaton instead.
    options.max_mem = RE2_MAX_MEM
    return options


def re2_message(error: Exception) -> str:
    message = error.args[0] if error.args else error
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be an issue-type pattern, or ``None`` when it can.

    For the configuration check: patterns use RE2 syntax, and a pattern that matches empty text
    would claim every message.
    """
    try:
        compiled = re2.compile(fold_marks(pattern), re2_options())
    except re2.error as exc:
        return f"pattern {pattern!r} is not valid RE2 syntax: {re2_message(exc)}"
    if compiled.search("") is not None:
        return f"pattern {pattern!r} matches empty text, so it would match every message"
    return None
