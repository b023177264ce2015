"""Crafted mail inputs that made parsers quadratic, recursive or hungry, each with a benign twin
of the same size.

The unit tests check what the mail core answers for them (parsed within bounds, or refused);
``bench.mail_parsing`` checks how long it takes, as a ratio to the twin: a linear parser takes
about as long on either, a quadratic one falls behind by the input's size.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

Parser = Literal["message", "html", "text"]
"""What a case feeds: ``parse_email`` (bytes), ``extract_html_reply`` or the plain-text
functions (``extract_new_text`` and ``split_signature``)."""


@dataclass(frozen=True)
class Crafted:
    name: str
    parser: Parser
    payload: bytes | str

    def twin(self) -> bytes | str:
        """Input of the same size and kind that no parser finds hard: ordinary prose (and, for
        a message, a plain-text message)."""
        if isinstance(self.payload, bytes):
            head = b"From: a@example.com\nSubject: an ordinary message\n\n"
            return head + _prose(len(self.payload) - len(head)).encode()
        if self.parser == "html":
            return ("<p>" + _prose(len(self.payload) - 7) + "</p>")[: len(self.payload)]
        return _prose(len(self.payload))


def _prose(size: int) -> str:
    line = "Thanks for your help, the order arrived but the box was damaged.\n"
    return (line * (size // len(line) + 1))[: max(size, 0)]


def nested_multiparts(depth: int) -> bytes:
    raw = b"From: a@example.com\n"
    for level in range(depth):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
    raw += b"Content-Type: text/plain\n\nhello\n"
    for level in reversed(range(depth)):
        raw += b"--b%d--\n" % level
    return raw


def message_with_header(header: bytes) -> bytes:
    """A short message whose second header is ``header``."""
    return b"From: a@example.com\n" + header + b"\n\nbody\n"


MANY_PARTS = (
    b'From: a@example.com\nContent-Type: multipart/mixed; boundary="x"\n\n'
    + b"--x\nContent-Type: text/plain\n\nhi\n" * 30_000
    + b"--x--\n"
)
HUGE_HEADER_SECTION = b"From: a@example.com\nX-Filler: " + b"a" * 400_000 + b"\n\nbody\n"
TEN_MEGABYTE_TEXT = (
    b"From: a@example.com\nSubject: big\n\n" + b"The same line again and again.\n" * 340_000
)
ATTACHMENT_BYTES = 7_500_000
BIG_ATTACHMENT = (
    b'From: a@example.com\nContent-Type: multipart/mixed; boundary="z"\n\n--z\n'
    b"Content-Type: text/plain\n\nsee attached\n--z\nContent-Type: application/zip\n"
    b"Content-Transfer-Encoding: base64\n\n"
    + base64.encodebytes(b"\x00" * ATTACHMENT_BYTES)
    + b"\n--z--\n"
)
ONE_LINE_HTML = b"From: a@example.com\nContent-Type: text/html\n\n" + b"<a " * 3_000_000

CRAFTED_HEADERS: dict[str, bytes] = {
    "ct-quotes": b'Content-Type: multipart/mixed; boundary="' + b'"' * 20_000,
    "ct-semicolons": b"Content-Type: text/plain" + b";" * 20_000,
    "ct-rfc2231": b"Content-Type: text/plain; "
    + b"".join(b"name*%d*=utf-8''a; " % i for i in range(4000)),
    "from-comments": b"From: " + b"(" * 20_000 + b"a@example.com",
    "from-quotes": b'From: "' + b'"' * 20_000 + b"a@example.com",
    "to-5000": b"To: " + b", ".join(b'"User %d" <u%d@example.com>' % (i, i) for i in range(5000)),
    "subject-words": b"Subject: " + b"=?utf-8?q?a?= " * 10_000,
    "subject-openers": b"Subject: " + b"=?" * 30_000,
    "references-5000": b"References: " + b" ".join(b"<id%d@example.com>" % i for i in range(5000)),
    "msgid-angles": b"Message-ID: " + b"<" * 50_000,
    "date-junk": b"Date: " + b"Mon, " * 20_000,
}
"""One header line each, sent as the second header of a short message."""

CRAFTED_MARKUP: dict[str, str] = {
    "tag-openers": "<a " * 100_000,
    "comment-openers": "<!--" * 100_000,
    "end-openers": "</" * 100_000,
    "lt-a": "<a" * 100_000,
    "pi-openers": "<?" * 100_000,
    "deep-divs": "<div>" * 100_000 + "</span>" * 100_000,
    "unclosed-script": "<script>" + "a<" * 100_000,
    "unclosed-attribute": '<a href="' + "x" * 300_000,
    "charrefs": "&#" * 100_000,
}

CRAFTED_TEXT: dict[str, str] = {
    "on-runs": "On " * 60_000,
    "deep-quotes": ("> " * 2_000 + "\n") * 50,
    "wrote-lines": "x wrote:\n" * 40_000,
    "quoted-replies": "On Mon, 3 Jun 2024 at 10:00, A <a@b.example> wrote:\n> q\nanswer\n" * 5_000,
    "outlook-headers": "From: a@b.example\nSent: 3 June 2024 10:00\n" * 10_000,
    "signature-dashes": "-- \n" * 50_000,
    "inline-wrote": "reply On Mon, 3 Jun 2024 at 10:00, a@b.example wrote:\n" * 4_000,
    "device-signatures": "Sent from my iPhone\n" * 20_000 + "x",
    "one-long-word": "a" * 1_000_000,
}


def cases() -> list[Crafted]:
    """Every crafted input, named, for the bench."""
    messages = {
        "nesting-60": nested_multiparts(60),
        "nesting-5000": nested_multiparts(5000),
        "parts-30000": MANY_PARTS,
        "header-section-400k": HUGE_HEADER_SECTION,
        "text-10mb": TEN_MEGABYTE_TEXT,
        "attachment-7.5mb": BIG_ATTACHMENT,
        "html-one-line": ONE_LINE_HTML,
        **{f"header-{name}": message_with_header(h) for name, h in CRAFTED_HEADERS.items()},
    }
    return [
        *(Crafted(name, "message", raw) for name, raw in messages.items()),
        *(Crafted(f"html-{name}", "html", m) for name, m in CRAFTED_MARKUP.items()),
        *(Crafted(f"text-{name}", "text", t) for name, t in CRAFTED_TEXT.items()),
    ]
