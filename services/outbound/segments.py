"""SMS segments: what a text costs on the wire, and cutting it to a budget without breaking it.

A single SMS carries 160 GSM-7 septets or 70 UCS-2 code units; a longer text is sent as
concatenated parts of 153 or 67 (the rest is the concatenation header). One character outside
the GSM-7 alphabet (an emoji, a curly quote, "…") turns the whole text into UCS-2, so a
template that fits one segment in English may cost three in another language. Characters of the
GSM-7 extension table take two septets (escape + char) and are never split across parts, nor
are UTF-16 surrogate pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]
_LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
_ELLIPSIS: dict[Encoding, str] = {"GSM-7": "...", "UCS-2": "…"}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int


def encoding_of(text: str) -> Encoding:
    gsm = all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)
    return "GSM-7" if gsm else "UCS-2"


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def count_segments(text: str) -> SegmentCount:
    """The encoding, size and number of parts of ``text`` as a carrier sends it."""
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    single, multi = _LIMITS[encoding]
    if units <= single:
        return SegmentCount(encoding, units, 1 if text else 0)
    segments, filled = 1, 0
    for size in sizes:
        if filled + size > multi:  # an escape or a surrogate pair never straddles two parts
            segments, filled = segments + 1, 0
        filled += size
    return SegmentCount(encoding, units, segments)


def truncate_to_segments(text: str, max_segments: int) -> str:
    """``text`` if it fits ``max_segments``, else its longest prefix that does, cut at a word
    boundary where one is near, with an ellipsis in the text's own encoding (a "…" would turn
    a GSM-7 text into UCS-2 and halve what fits)."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if count_segments(text).segments <= max_segments:
        return text
    ellipsis = _ELLIPSIS[encoding_of(text)]
    low, high = 0, len(text)  # longest prefix length whose cut text fits
    while low < high:
        mid = (low + high + 1) // 2
        if count_segments(text[:mid].rstrip() + ellipsis).segments <= max_segments:
            low = mid
        else:
            high = mid - 1
    prefix = text[:low]
    space = max(prefix.rfind(" "), prefix.rfind("\n"))
    if space >= low // 2:  # never drop more than half of what fits for the sake of a word
        prefix = prefix[:space]
    return prefix.rstrip() + ellipsis
