"""Hostile and malformed input for the mail parsing core.

The contract under test: ``parse_email`` returns a ParsedEmail or raises InvalidEmail, nothing
else, for any bytes; the text functions never raise; nothing holds much memory. How long
the crafted inputs take is measured by ``bench.mail_parsing`` against inputs of the same size,
not asserted here; a hang still ends at the suite's per-test timeout.

The pathological cases (``tests/support/hostile_mail.py``) include inputs measured to be
quadratic or recursive in the standard library on this Python (``html.parser`` on ``<a ``
runs, ``email.policy.default`` on crafted Content-Type headers and nested comments), which is
why the code does not use them.
"""

from __future__ import annotations

import base64
import tracemalloc

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.mail import (
    InvalidEmail,
    ParsedEmail,
    extract_html_reply,
    extract_new_text,
    extract_reply,
    parse_email,
    split_signature,
    thread,
)
from services.ingest.mail.htmltext import html_to_text
from services.ingest.mail.threading import ThreadMessage
from tests.support.hostile_mail import (
    ATTACHMENT_BYTES,
    BIG_ATTACHMENT,
    CRAFTED_HEADERS,
    CRAFTED_MARKUP,
    CRAFTED_TEXT,
    HUGE_HEADER_SECTION,
    MANY_PARTS,
    ONE_LINE_HTML,
    TEN_MEGABYTE_TEXT,
    message_with_header,
    nested_multiparts,
)

FAST = settings(
    max_examples=120,
    deadline=None,  # durations are the bench's business (see above)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _parse_or_invalid(raw: bytes) -> ParsedEmail | None:
    reason = ""
    try:
        parsed = parse_email(raw)
    except InvalidEmail as exc:
        reason = str(exc)
    else:
        _check_invariants(parsed, raw)
        return parsed
    assert reason  # a clear message, never an empty one
    return None


def _check_invariants(parsed: ParsedEmail, raw: bytes) -> None:
    assert parsed.size == len(raw)
    # Everything must be encodable for Kafka: no lone surrogates anywhere.
    msgspec.json.encode(parsed)
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert all(a.size >= 0 for a in parsed.attachments)
    if parsed.references:
        assert parsed.thread_root == parsed.references[0]
    elif parsed.in_reply_to or parsed.message_id:
        assert parsed.thread_root in (parsed.in_reply_to, parsed.message_id)
    if parsed.from_address is not None:
        assert parsed.from_address == parsed.from_address.lower()
        assert "@" in parsed.from_address


# --- arbitrary bytes and MIME-shaped structures -------------------------------------------------


@FAST
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    _parse_or_invalid(raw)


HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "In-Reply-To",
        "Reply-To",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Content-ID",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Junk",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            '"Doe, Jane" <jane@example.com>',
            "=?utf-8?B?SsO2cmc=?= <j@x.example>",
            "=?x-bogus?Q?=FF=FE?=",
            "=?utf-8?B?####?=",
            "<a@b> <c@d>",
            "undisclosed-recipients:;",
            "Mon, 32 Foo 99999 99:99:99 +9999",
            "Tue, 4 Jun 2024 18:02:11 -0000",
            "((((((",
            '""""',
            "text/plain; charset=x-unknown",
            "multipart/mixed; boundary=",
            "auto-replied",
            "attachment; filename*=utf-8''%FF%FE.pdf",
            "<>",
            "=?",
            "\\\\\\",
        ]
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "text/plain; format=flowed; delsp=yes",
        "image/png",
        "application/pdf",
        "message/rfc822",
        "message/delivery-status",
        "text/calendar",
        "x/y",
    ]
)
CHARSETS = st.sampled_from(
    [
        "utf-8",
        "us-ascii",
        "iso-8859-1",
        "shift_jis",
        "gb2312",
        "utf-16",
        "x-unknown",
        "base64",
        "rot13",
        "unicode_escape",
        "",
        '"utf-8',
    ],
)
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus"])
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"Hi\n\nOn Mon, 3 Jun 2024 at 10:00, A <a@b.example> wrote:\n> quoted\n",
            b"<div class=gmail_quote><blockquote>x</blockquote></div>",
            b"=\n=4\n=ZZ",
            base64.b64encode(b"\xff\xfe\x00garbage") + b"===",
            b"begin 644 x\nM\nend\n",
        ]
    ),
)


@st.composite
def _leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(CONTENT_TYPES)
    headers = [
        f"Content-Type: {ctype}; charset={draw(CHARSETS)}",
        f"Content-Transfer-Encoding: {draw(ENCODINGS)}",
    ]
    if draw(st.booleans()):
        headers.append(f"Content-Disposition: {draw(HEADER_VALUES)}")
    return ("\n".join(headers) + "\n\n").encode("utf-8", "surrogatepass") + draw(BODIES)


def _multipart(children: st.SearchStrategy[list[bytes]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["mixed", "alternative", "related", "report", "digest"]))
        boundary = draw(st.sampled_from(["b1", "b2", "==x==", "", "b1"]))
        parts = draw(children)
        body = b"".join(b"--" + boundary.encode() + b"\n" + part + b"\n" for part in parts)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\n"
        header = (
            f'Content-Type: multipart/{kind}; boundary="{boundary}"; report-type=delivery-status'
        )
        return header.encode() + b"\n\n" + body

    return build()


MIME_TREES = st.recursive(
    _leaf(), lambda inner: _multipart(st.lists(inner, max_size=4)), max_leaves=8
)


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8))
    head = "".join(f"{name}: {value}\n" for name, value in headers).encode("utf-8", "surrogatepass")
    raw = b"From: someone@example.com\n" + head + draw(MIME_TREES)
    if draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    return raw


@FAST
@given(_message())
def test_mime_shaped_structures(raw: bytes) -> None:
    _parse_or_invalid(raw)


# --- text functions ----------------------------------------------------------------------------

EMAIL_LINES = st.sampled_from(
    [
        "",
        "Hi,",
        "Thanks!",
        "Regards, Roman",
        "-- ",
        "--",
        "---",
        "____",
        "-Bob",
        "- item",
        "> quoted",
        ">> deeper",
        "C> supercite",
        "On Mon, 3 Jun 2024 at 10:00, A <a@b.example> wrote:",
        "On Mon, 3 Jun 2024 at 10:00, A <",
        "a@b.example> wrote:",
        "> wrote:",
        ">:",
        "From: A <a@b.example>",
        "Sent: Monday, 3 June 2024 10:00",
        "To: b@c.example",
        "Subject: Re: x",
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "Sent from my iPhone",
        "Von meinem iPhone gesendet",
        "```",
        "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:",
        "2014-10-17 11:28 GMT+03:00 X <",
        " (http://x.example) >",
        'Le 4 janv. 2016 19:03, "N"',
        "a écrit :",
        "ᐧ",
        "\u200b",
        "x" * 500,
    ]
)
TEXTS = st.one_of(
    st.text(max_size=1500),
    st.lists(st.one_of(EMAIL_LINES, st.text(max_size=40)), max_size=60).map("\n".join),
)


def _lines_come_from(output: str, source: str) -> None:
    """The extractor only removes: every line it returns is (part of) an input line."""
    normalised = source.replace("\r\n", "\n").replace("\r", "\n")
    for line in output.split("\n"):
        assert line in normalised


@FAST
@given(TEXTS)
def test_text_functions_never_fail(text: str) -> None:
    reply = extract_reply(text)
    _lines_come_from(reply, text)
    _lines_come_from(extract_new_text(text), text)
    body, signature = split_signature(text)
    if signature is None:
        assert body == text
    else:
        normalised = text.replace("\r\n", "\n").replace("\r", "\n")
        assert normalised.startswith(body)
        assert signature in normalised[len(body) :]
    assert isinstance(extract_html_reply(text), str)


HTML_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<blockquote type=cite>",
        "</blockquote>",
        "<br>",
        "<p>",
        "</p>",
        '<div class="gmail_quote">',
        '<div id="divRplyFwdMsg">',
        '<hr id="stopSpelling">',
        '<div style="border-top:solid 1px">',
        "<style>",
        "</style>",
        "<!--",
        "-->",
        "<a ",
        "<",
        ">",
        "&amp;",
        "&#",
        "<pre>",
        "</pre>",
        "<li>",
        "<head>",
        "<body>",
        "From: a@b.example",
        "Sent: Monday, 3 June 2024 10:00",
        "text",
        "\n",
    ]
)


@FAST
@given(st.lists(st.one_of(HTML_PIECES, st.text(max_size=20)), max_size=80).map("".join))
def test_html_functions_never_fail(markup: str) -> None:
    assert isinstance(extract_html_reply(markup), str)
    assert isinstance(html_to_text(markup), str)


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.lists(st.sampled_from(["a", "b", "c", "d", "e", "x"]), max_size=5),
            st.sampled_from(["Re: s", "s", "", "Fwd: t"]),
        ),
        max_size=12,
    )
)
def test_threading_never_fails_or_loops(items: list[tuple[str, list[str], str]]) -> None:
    messages = [ThreadMessage(mid, tuple(refs), None, subject) for mid, refs, subject in items]
    roots = thread(messages)
    seen: set[int] = set()
    for root in roots:
        assert root.parent is None
        for node in root.walk():
            assert id(node) not in seen  # a tree: nobody reachable twice, no cycles
            seen.add(id(node))
    ids = {node.message_id for root in roots for node in root.walk() if node.message_id}
    assert ids == {mid for mid, _refs, _subject in items}


# --- pathological inputs -----------------------------------------------------------------------


def test_deep_nesting_is_refused_or_parsed() -> None:
    parsed = parse_email(nested_multiparts(60))
    assert parsed.text == "hello"
    with pytest.raises(InvalidEmail, match="multipart"):
        parse_email(nested_multiparts(5000))


def test_many_parts_are_refused() -> None:
    with pytest.raises(InvalidEmail, match="boundaries"):
        parse_email(MANY_PARTS)


def test_huge_header_section_is_refused() -> None:
    with pytest.raises(InvalidEmail, match="header section"):
        parse_email(HUGE_HEADER_SECTION)


def test_oversized_message_is_refused() -> None:
    with pytest.raises(InvalidEmail, match="limit"):
        parse_email(b"From: a@example.com\n\n" + b"x" * 2000, max_bytes=1000)


def test_ten_megabyte_bodies_are_bounded() -> None:
    tracemalloc.start()
    try:
        parsed = parse_email(TEN_MEGABYTE_TEXT)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.truncated
    assert len(parsed.full_text) <= 200_000
    assert peak < 40 * len(TEN_MEGABYTE_TEXT)
    parsed = parse_email(BIG_ATTACHMENT)
    assert parsed.text == "see attached"
    assert parsed.attachments[0].size == ATTACHMENT_BYTES
    assert parse_email(ONE_LINE_HTML).text == ""


@pytest.mark.parametrize("header", list(CRAFTED_HEADERS.values()), ids=list(CRAFTED_HEADERS))
def test_crafted_headers_are_parsed_within_bounds(header: bytes) -> None:
    parsed = _parse_or_invalid(message_with_header(header))
    assert parsed is not None
    assert len(parsed.to) <= 100
    assert len(parsed.references) <= 100


def test_a_less_than_sign_that_starts_no_markup_is_text() -> None:
    assert html_to_text("<p>1 < 2, a <3 b, <</ c <</b> d</p>") == "1 < 2, a <3 b, <</ c < d"
    assert html_to_text("</" * 1000) == "</" * 1000


def test_a_part_header_keeps_its_first_parameters() -> None:
    cyrillic_a = b"\n\n\xc1\n"  # KOI8-R; read as Latin-1 without its charset
    first = b"From: a@example.com\nContent-Type: text/plain; charset=koi8-r" + b"; x=1" * 5000
    assert parse_email(first + cyrillic_a).text == "\u0430"
    late = b"From: a@example.com\nContent-Type: text/plain" + b"; x=1" * 40 + b"; charset=koi8-r"
    assert parse_email(late + cyrillic_a).text == "\u00c1"


@pytest.mark.parametrize("markup", list(CRAFTED_MARKUP.values()), ids=list(CRAFTED_MARKUP))
def test_crafted_html_renders(markup: str) -> None:
    assert isinstance(extract_html_reply(markup), str)


@pytest.mark.parametrize("text", list(CRAFTED_TEXT.values()), ids=list(CRAFTED_TEXT))
def test_crafted_text_extracts(text: str) -> None:
    assert isinstance(extract_new_text(text), str)
    assert isinstance(split_signature(text)[0], str)


def test_not_bytes_is_invalid() -> None:
    with pytest.raises(InvalidEmail, match="expected bytes"):
        parse_email("From: a@example.com\n\nhi")  # type: ignore[arg-type]
    with pytest.raises(InvalidEmail, match="empty"):
        parse_email(b"  \r\n ")
    with pytest.raises(InvalidEmail, match="no message header"):
        parse_email(b"just some text, no headers at all\n")
