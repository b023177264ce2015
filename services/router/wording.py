"""How customers really write, for the issue-type model: what to read, and what to train on.

Two halves of one idea. ``message_core`` strips the parts of a message that say nothing about
the problem (email greetings, sign-offs, signatures, quoted history, @mentions), so the model
reads what the customer wrote about this problem. ``noisy_variants`` writes the examples the way
people type on phones (dropped and swapped letters, SMS shorthand), so the model has seen that
wording before it meets it. Both are deterministic: the same text and seed give the same result.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["message_core", "noisy_variants"]

# Quoted history starts here; nothing below is the customer's new text.
_QUOTE_START: Final = re.compile(
    r"^\s*(?:on\b.{0,200}\bwrote:?\s*$|-{2,}\s*original message|from:\s|sent:\s|>)",
    re.IGNORECASE,
)
# A sign-off or signature starts here (a line of its own); the rest is names, phones, disclaimers.
_SIGN_OFF: Final = re.compile(
    r"^\s*(?:--\s*$|(?:kind |best |warm |many )?(?:regards|wishes)\b|best,?\s*$|cheers\b|"
    r"thanks?(?: you)?(?: (?:so much|in advance))?[,.!]*\s*$|thx[,.!]*\s*$|sincerely\b|"
    r"yours (?:truly|sincerely)\b|sent from my\b|get outlook for\b)",
    re.IGNORECASE,
)
# A line that only greets ("Hi,", "Hello team", "Dear Sir or Madam,").
_GREETING: Final = re.compile(
    r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings|to whom it may "
    r"concern)\b[^.!?\n]{0,40}[,!:]?\s*$",
    re.IGNORECASE,
)
_MENTION: Final = re.compile(r"(?<!\w)@\w+")


def message_core(text: str) -> str:
    """The lines of ``text`` that describe the problem: greeting lines, everything from a
    sign-off or quoted history on, and @mentions left out. Returns ``text`` itself when nothing
    would be left, so that a one-line "thanks!" is still classified (as whatever it is)."""
    kept: list[str] = []
    for line in text.splitlines():
        if _QUOTE_START.match(line) or (kept and _SIGN_OFF.match(line)):
            break
        if not kept and (_GREETING.match(line) or not line.strip()):
            continue
        kept.append(line)
    core = _MENTION.sub(" ", "\n".join(kept)).replace("#", " ")
    return core if core.strip() else text


# Shorthand people type on phones, for whole words of the normalised (case-folded) text.
_SHORTHAND: Final = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "are": "r",
    "please": "pls",
    "thanks": "thx",
    "because": "bc",
    "with": "w/",
    "without": "w/o",
    "account": "acct",
    "password": "pwd",
    "message": "msg",
    "information": "info",
    "twice": "2x",
    "two": "2",
    "to": "2",
    "for": "4",
    "tomorrow": "tmrw",
    "today": "2day",
    "address": "addr",
    "customer": "cust",
    "number": "no",
    "cannot": "cant",
    "can't": "cant",
    "don't": "dont",
    "didn't": "didnt",
    "i'm": "im",
    "what": "wat",
    "know": "kno",
    "really": "rly",
    "delivery": "delivry",
    "received": "recieved",
}
_WORD: Final = re.compile(r"[a-z']+")
_MIN_TYPO_LEN: Final = 4
_MIN_VOWELLESS_LEN: Final = 5
_INNER_VOWELS: Final = re.compile("[aeiou]")


def _typo(word: str, rng: random.Random) -> str:
    """One slip of the thumb: a letter dropped, doubled, or two swapped."""
    at = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:at] + word[at + 1 :]
    if kind == 1:
        return word[:at] + word[at] + word[at:]
    return word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]


def _without_vowels(word: str) -> str:
    """SMS spelling: the inner vowels dropped ("charged" -> "chrgd")."""
    return word[0] + _INNER_VOWELS.sub("", word[1:-1]) + word[-1]


def _noisy(text: str, rng: random.Random) -> str:
    def change(found: re.Match[str]) -> str:
        word = found.group()
        short = _SHORTHAND.get(word)
        if short is not None and rng.random() < 0.7:
            return short
        draw = rng.random()
        if len(word) >= _MIN_VOWELLESS_LEN and draw < 0.1:
            return _without_vowels(word)
        if len(word) >= _MIN_TYPO_LEN and draw < 0.35:
            return _typo(word, rng)
        return word

    noisy = _WORD.sub(change, text)
    return noisy.replace("'", "") if rng.random() < 0.5 else noisy


def noisy_variants(texts: Iterable[str], *, share: float, seed: int) -> list[tuple[str, str]]:
    """For about ``share`` of the normalised ``texts`` (chosen by ``seed``), one copy as typed in
    a hurry: shorthand for common words, inner vowels dropped from one longer word in ten and a
    typo in one in four of the others, apostrophes sometimes dropped. Copies that came out
    unchanged are left out. Each copy comes as (the text it copies, the copy), so that a
    cross-validation can keep the two in one fold."""
    rng = random.Random(seed)
    variants: list[tuple[str, str]] = []
    for text in texts:
        if rng.random() < share:
            noisy = _noisy(text, rng)
            if noisy != text:
                variants.append((text, noisy))
    return variants
