"""Subject normalisation: the subject a conversation is known by, without reply/forward prefixes.

Mail clients prefix a reply's subject in the user's language ("Re:", German "AW:", Swedish and
Norwegian "SV:", Finnish "VS:", Dutch "Antw:", Italian "R:", Polish "Odp:", French "TR:" for a
forward...), sometimes with a counter ("Re[2]:", "RE^3:") and sometimes repeatedly. Threading
by subject (JWZ step 5) and showing agents a clean conversation title both need the subject
without them. Bracketed tags ("[Ticket #123]", "[riak-users]") are kept: for a store they are
usually order or ticket references, which are exactly what an agent needs to see.
"""

# ruff: noqa: RUF001 -- the prefixes are written in many scripts on purpose.

from __future__ import annotations

import re
from typing import Final

# Longer alternatives first so that "Antwort" is not read as "Antw" + "ort".
_PREFIXES: Final = (
    "antwort|antw|reenviado|reenv|ответ|отв|转发|轉寄|轉發|回复|回覆|答复|返信|転送"
    "|fwd|fw|res|re|aw|sv|vs|vá|ynt|ilt|İlt|odp|pd|wg|tr|rv|enc|rif|r|i|doorst|vl|wtr|trs"
    "|απ|σχετ|πρθ"
)
_COUNTER: Final = r"(?:\[\d{1,4}\]|\(\d{1,4}\)|\^\d{1,4})"  # "Re[2]:", "Re(2):", "RE^3:"
_PREFIX_RE: Final = re.compile(
    rf"^[ \t]*(?:(?:{_PREFIXES})[ \t]*{_COUNTER}?[ \t]*[:：][ \t]*)+",
    re.IGNORECASE,
)
_SPACE_RE: Final = re.compile(r"\s+")


def normalise_subject(subject: str) -> str:
    """Return ``subject`` without leading reply/forward prefixes, whitespace collapsed.

    >>> normalise_subject("RE: AW: Fwd:  Where is my order?")
    'Where is my order?'
    """
    collapsed = _SPACE_RE.sub(" ", subject).strip()
    return _PREFIX_RE.sub("", collapsed, count=1).strip()


def is_reply_subject(subject: str) -> bool:
    """True when ``subject`` carries a reply or forward prefix (JWZ step 5 asks this)."""
    return _PREFIX_RE.match(_SPACE_RE.sub(" ", subject).strip()) is not None
