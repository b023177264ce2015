"""Raw RFC 5322 bytes from the SMTP and IMAP connectors to a typed, normalised ParsedEmail.

The contract: :func:`parse_email` returns a :class:`ParsedEmail` or raises :class:`InvalidEmail`
with a message saying why, and nothing else, whatever bytes it is given; its time and memory are
bounded by the limits below. A connector treats ``InvalidEmail`` as "invalid, never retry"
(dead-letter topic), so nothing here may fail for a reason that a retry could fix.

Why ``policy=compat32`` and not ``email.policy.default``: measured on CPython 3.11.7, the default
policy's header parser is quadratic on crafted headers (an 8 KB ``Content-Type`` full of quotes
or semicolons costs 1.5 s, 40 KB of RFC 2231 parameters 5 s, and it runs *inside*
``BytesParser`` when the parser looks for a multipart boundary), and nested parentheses make
it raise RecursionError. compat32 parses the same inputs in linear time. The few headers
Switchboard needs are decoded here instead, from length-capped raw values: encoded words
(RFC 2047) with ``email.header``, addresses with a small linear splitter, dates with
``email.utils``.

Text bodies are decoded with the declared charset through a table of what mail clients mean
(ISO-8859-1 is read as windows-1252, Shift_JIS as cp932, GB2312 as GB18030, ...), falling back
to UTF-8 and then windows-1252 when the declared charset is unknown or wrong, and never
failing: a lossy character is better than a lost message.
"""

from __future__ import annotations

import codecs
import email.header
import email.utils
import re
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Final, Literal

import msgspec

from services.ingest.mail.htmltext import render, strip_marks
from services.ingest.mail.reply import extract_new_text, reply_from_rendered, split_signature
from services.ingest.mail.subject import normalise_subject

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Attachment",
    "Automated",
    "InvalidEmail",
    "ParsedEmail",
    "parse_email",
]

# Larger messages are refused (the connector answers 552); common providers cap mail at 25 MB.
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
# The header section of the outer message; real ones (long Received and DKIM chains) stay
# well below this.
MAX_HEADER_BYTES: Final = 256 * 1024
# Each multipart container costs the parser a boundary check on every later line, so their
# number (and with it the nesting depth) is bounded before parsing starts.
MAX_MULTIPARTS: Final = 100
# Lines starting with "--" are where the parser looks for boundaries.
MAX_DASH_LINES: Final = 20_000
# MIME parts examined for bodies and attachments.
MAX_PARTS: Final = 1000
# Text kept in ``full_text`` (and analysed for ``text``); beyond it ``truncated`` is set.
MAX_TEXT_CHARS: Final = 200_000
# Bytes of one text part decoded; a bigger part is cut (and ``truncated`` set).
MAX_TEXT_PART_BYTES: Final = 4 * 1024 * 1024
MAX_ADDRESSES: Final = 100
MAX_REFERENCES: Final = 100
# Parameters of a part's Content-Type or Content-Disposition kept; real ones have a handful
# (a long RFC 2231 filename a few more), and the standard library parses all of them again on
# every lookup: 20,000 empty ones took 95 ms a part (``bench.mail_parsing``).
MAX_HEADER_PARAMS: Final = 32
_MAX_SUBJECT_RAW: Final = 4096
_MAX_ADDRESS_RAW: Final = 32 * 1024
_MAX_ONE_ADDRESS: Final = 512
_MAX_ID_RAW: Final = 32 * 1024

Automated = Literal["auto-reply", "bulk", "bounce"]


class InvalidEmail(ValueError):
    """The bytes are not an email Switchboard can accept; retrying will not change that."""


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A non-body MIME part: metadata only, the content is not kept."""

    filename: str | None
    content_type: str
    size: int
    content_id: str | None = None
    inline: bool = False


class ParsedEmail(msgspec.Struct, frozen=True, kw_only=True):
    """One email, normalised.

    Message ids are without angle brackets, with the domain part lowercased.
    ``thread_root`` is the Message-ID that roots the conversation: the first of References,
    else In-Reply-To, else the message's own id. ``text`` is the customer's new text (quoted
    history, "-- " signatures and device footers removed where they are reliably detected);
    ``full_text`` is the whole body as text (from the HTML part, quotes as ``>`` lines, when
    there is no plain-text part: then ``html_only``). ``automated`` says why no human may be
    waiting for an answer: an auto-reply (out-of-office, RFC 3834 Auto-Submitted, read
    receipts), bulk or list mail, or a bounce. ``reply_to`` is where an answer should go when
    it is not ``from_address``. ``size`` is the raw message size in bytes; ``truncated`` says
    that a body or the number of parts went past a limit and the text is incomplete.
    ``content_language`` is the ``Content-Language`` header as written (a language tag or a
    list of them): the sender's client's language, a hint to the language of the text.
    """

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_root: str | None
    subject: str
    normalised_subject: str
    from_name: str | None
    from_address: str | None
    reply_to: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None
    text: str
    full_text: str
    html_only: bool = False
    attachments: tuple[Attachment, ...] = ()
    automated: Automated | None = None
    size: int
    truncated: bool = False
    content_language: str | None = None


# Headers of which at least one must be present for the bytes to be taken as a message.
_MESSAGE_HEADERS: Final = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "content-type",
        "mime-version",
        "received",
        "return-path",
        "delivered-to",
    }
)
_BOUNDARY_PARAM_RE: Final = re.compile(rb"boundary\s*=", re.IGNORECASE)
_HEADER_END_RE: Final = re.compile(rb"\r?\n\r?\n")
_MSGID_RE: Final = re.compile(r"<([^<>\s]{1,998})>")
_FOLD_RE: Final = re.compile(r"\r?\n(?=[ \t])")
_SPACE_RE: Final = re.compile(r"\s+")
_SURROGATE_RE: Final = re.compile("[\udc80-\udcff]")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ADDR_SPEC_RE: Final = re.compile(r"[^\s<>()\[\],;:\"@]{1,256}@[^\s<>()\[\],;:\"@]{1,255}")

# What a declared charset means in practice (WHATWG's encoding table says the same for the
# Latin ones: mail labelled ISO-8859-1 is written by Windows clients in windows-1252).
_CHARSET_ALIASES: Final = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-2022-jp": "iso2022_jp_ext",
    "big5": "cp950",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "iso-8859-9": "cp1254",
    "iso-8859-8-i": "iso-8859-8",
}
# Codecs that name no text encoding of mail: interpreting bytes with them would invent text.
_REFUSED_CODECS: Final = frozenset({"unicode_escape", "raw_unicode_escape", "undefined"})

# Serialising an attached message back to bytes (for its size) must not refold its headers.
_SERIALISE: Final = compat32.clone(max_line_length=0)

_MAILER_DAEMONS: Final = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


def parse_email(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedEmail:
    """Parse one raw message; raises :class:`InvalidEmail` (and only that) on bad input."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidEmail(f"expected bytes, got {type(raw).__name__}")
    data = bytes(raw)
    try:
        return _parse(data, max_bytes)
    except InvalidEmail:
        raise
    except RecursionError as exc:
        raise InvalidEmail("MIME structure is nested too deeply") from exc
    except Exception as exc:
        # A parser bug must not escape as something the consumer would retry forever.
        raise InvalidEmail(f"message could not be parsed ({type(exc).__name__}: {exc})") from exc


def _parse(raw: bytes, max_bytes: int) -> ParsedEmail:
    size = len(raw)
    if not raw.strip():
        raise InvalidEmail("empty message")
    if size > max_bytes:
        raise InvalidEmail(f"message is {size} bytes, over the {max_bytes}-byte limit")
    header_end = _HEADER_END_RE.search(raw, 0, MAX_HEADER_BYTES + 4)
    if header_end is None and size > MAX_HEADER_BYTES:
        raise InvalidEmail(f"header section is over {MAX_HEADER_BYTES} bytes")
    if raw.count(b"\n--") > MAX_DASH_LINES:
        raise InvalidEmail(f"more than {MAX_DASH_LINES} lines look like MIME boundaries")
    for count, _match in enumerate(_BOUNDARY_PARAM_RE.finditer(raw), start=1):
        if count > MAX_MULTIPARTS:
            raise InvalidEmail(f"more than {MAX_MULTIPARTS} multipart containers")

    message = BytesParser(policy=compat32).parsebytes(raw)
    headers = _first_headers(message)
    if not _MESSAGE_HEADERS.intersection(headers):
        raise InvalidEmail("no message header fields (From, To, Subject, Date, Message-ID...)")

    message_id = _first_id(headers.get("message-id", ""))
    in_reply_to = _first_id(headers.get("in-reply-to", ""))
    references = _references(headers.get("references", ""))
    subject = _clean_line(_decode_words(headers.get("subject", "")[:_MAX_SUBJECT_RAW]))
    senders = _addresses(headers.get("from", "")) or _addresses(headers.get("sender", ""))
    from_name, from_address = senders[0] if senders else (None, None)

    body = _Body()
    body.collect(message, depth=0)

    automated = _automated(headers, from_address, body.report_type)
    if body.plain:
        full_text = "\n".join(body.plain)
        truncated = body.truncated or len(full_text) > MAX_TEXT_CHARS
        full_text = _trim(_clean_text(full_text[:MAX_TEXT_CHARS]))
        text = _clean_text(extract_new_text(full_text))
        html_only = False
    elif body.html:
        rendered = render("\n".join(body.html))
        truncated = body.truncated or len(rendered) > MAX_TEXT_CHARS
        rendered = rendered[:MAX_TEXT_CHARS]
        full_text = _trim(_clean_text(strip_marks(rendered)))
        text = _clean_text(split_signature(reply_from_rendered(rendered), sign_offs=False)[0])
        html_only = True
    else:
        full_text = text = ""
        truncated = body.truncated
        html_only = False

    return ParsedEmail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        thread_root=references[0] if references else in_reply_to or message_id,
        subject=subject,
        normalised_subject=normalise_subject(subject),
        from_name=from_name,
        from_address=from_address,
        reply_to=_address_list(headers.get("reply-to", "")),
        to=_address_list(headers.get("to", "")),
        cc=_address_list(headers.get("cc", "")),
        date=_date(headers.get("date", "")),
        text=text,
        full_text=full_text,
        html_only=html_only,
        attachments=tuple(body.attachments),
        automated=automated,
        size=size,
        truncated=truncated,
        content_language=_clean_line(headers.get("content-language", "")) or None,
    )


# --- headers -----------------------------------------------------------------------------------


def _first_headers(message: Message) -> dict[str, str]:
    """The first occurrence of each header, raw (``raw_items`` applies no policy parsing),
    unfolded and with 8-bit bytes decoded."""
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.strip().lower()
        if key not in headers and isinstance(value, str):
            headers[key] = _FOLD_RE.sub("", _fix_8bit(value))
    return headers


def _fix_8bit(value: str) -> str:
    """Header bytes outside ASCII reach us as surrogate escapes; read them as UTF-8 (RFC 6532)
    or, failing that, windows-1252."""
    if _SURROGATE_RE.search(value) is None:
        return value
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _clean_line(value: str) -> str:
    return _SPACE_RE.sub(" ", _CONTROL_RE.sub("", value)).strip()


def _clean_text(value: str) -> str:
    return _CONTROL_RE.sub("", value)


def _trim(text: str) -> str:
    """Drop leading blank lines and trailing whitespace; keep the first line's indentation."""
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:]).rstrip()


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; unknown charsets and broken encodings degrade to
    replacement characters or the raw text, never to an error."""
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # HeaderParseError on broken base64, and anything odd inside
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(_decode_bytes(chunk, charset))
    return "".join(out)


def _first_id(value: str) -> str | None:
    match = _MSGID_RE.search(value, 0, _MAX_ID_RAW)
    if match is not None:
        return _normalise_id(match.group(1))
    token = value[:_MAX_ID_RAW].strip()
    if token and " " not in token and "@" in token and len(token) <= 250:
        return _normalise_id(token.strip("<>"))
    return None


def _references(value: str) -> tuple[str, ...]:
    """References, root first, deduplicated; at most MAX_REFERENCES (the root and the most
    recent ones are what matters)."""
    value = value[:_MAX_ID_RAW]
    found = [m.group(1) for m in _MSGID_RE.finditer(value)]
    if not found:
        found = [t.strip("<>,") for t in value.split() if "@" in t and len(t) <= 250]
    unique = list(dict.fromkeys(_normalise_id(x) for x in found if x))
    if len(unique) > MAX_REFERENCES:
        unique = [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
    return tuple(unique)


def _normalise_id(value: str) -> str:
    value = _CONTROL_RE.sub("", value).strip()
    local, at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}" if at else value


def _date(value: str) -> datetime | None:
    value = value[:256].strip()
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": the time is UTC, the sender's zone unknown
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _split_address_list(value: str) -> list[str]:
    """Split at commas outside quotes, comments and angle brackets, in one pass."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    comment = angle = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment += 1
        elif ch == ")" and comment:
            comment -= 1
        elif ch == "<" and not comment:
            angle = 1
        elif ch == ">" and not comment:
            angle = 0
        elif ch in ",;" and not comment and not angle:
            pieces.append("".join(current))
            current = []
            if len(pieces) >= MAX_ADDRESSES:
                return pieces
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces


def _addresses(value: str) -> list[tuple[str | None, str]]:
    """``(display name, lowercased address)`` pairs of an address header."""
    result: list[tuple[str | None, str]] = []
    for piece in _split_address_list(value[:_MAX_ADDRESS_RAW]):
        parsed = _address(piece[:_MAX_ONE_ADDRESS])
        if parsed is not None:
            result.append(parsed)
    return result


def _address(piece: str) -> tuple[str | None, str] | None:
    piece = piece.strip()
    if not piece:
        return None
    # "group: a@b, c@d;" -- a group name is not an address.
    colon = piece.find(":")
    if (
        colon > 0
        and "<" not in piece[:colon]
        and "@" not in piece[:colon]
        and '"' not in piece[:colon]
    ):
        piece = piece[colon + 1 :].strip()
    name: str | None
    lt = piece.rfind("<")
    gt = piece.find(">", lt + 1) if lt >= 0 else -1
    if lt >= 0 and gt > lt:
        address = piece[lt + 1 : gt]
        name = piece[:lt]
    else:
        comment = re.search(r"\(([^()]*)\)", piece)
        name = comment.group(1) if comment else None
        address = re.sub(r"\([^()]*\)", " ", piece)
    match = _ADDR_SPEC_RE.search(address.replace("mailto:", " "))
    if match is None:
        return None
    if name is not None:
        name = name.strip().strip('"').replace('\\"', '"').replace("\\\\", "\\")
        name = _clean_line(_decode_words(name)).strip("\"' ") or None
    return name, match.group(0).lower()


def _address_list(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(address for _name, address in _addresses(value)))


def _automated(
    headers: dict[str, str], sender: str | None, report_type: str | None
) -> Automated | None:
    """Bounce, auto-reply or bulk, from the headers RFC 3834, RFC 2919/2369 and common
    autoresponders set; a bounce wins over an auto-reply, which wins over bulk."""
    local = (sender or "").partition("@")[0].lower()
    if (
        local in _MAILER_DAEMONS
        or report_type == "delivery-status"
        or "x-failed-recipients" in headers
    ):
        return "bounce"
    auto_submitted = headers.get("auto-submitted", "").split(";")[0].strip().lower()
    precedence = headers.get("precedence", "").strip().lower()
    if (
        (auto_submitted and auto_submitted != "no")
        or "x-autoreply" in headers
        or "x-autorespond" in headers
        or "x-autoresponder" in headers
        or precedence == "auto_reply"
        or report_type is not None
    ):
        return "auto-reply"
    if (
        precedence in ("bulk", "junk", "list")
        or "list-id" in headers
        or "list-unsubscribe" in headers
    ):
        return "bulk"
    return None


# --- bodies ------------------------------------------------------------------------------------


def _bound_params(part: Message) -> None:
    """Cut a part's Content-Type and Content-Disposition to :data:`MAX_HEADER_PARAMS`."""
    for name in ("content-type", "content-disposition"):
        value = part.get(name)
        if value is not None and str(value).count(";") > MAX_HEADER_PARAMS:
            kept = str(value).split(";", MAX_HEADER_PARAMS + 1)[: MAX_HEADER_PARAMS + 1]
            part.replace_header(name, ";".join(kept))


class _Body:
    """Walks the MIME tree once: text bodies in reading order, the rest as attachments."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.report_type: str | None = None
        self.truncated = False
        self.parts = 0
        self._content_ids: set[str] = set()

    def collect(self, part: Message, *, depth: int) -> None:
        if self.parts >= MAX_PARTS:
            self.truncated = True
            return
        self.parts += 1
        _bound_params(part)
        content_type = part.get_content_type()
        if content_type.startswith("message/"):
            self._attach(part, content_type)
            return
        if part.is_multipart():
            payload = part.get_payload()
            children = (
                [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
            )
            if content_type == "multipart/report" and self.report_type is None:
                self.report_type = str(part.get_param("report-type") or "").lower() or "unknown"
            if content_type == "multipart/alternative":
                self._alternative(children, depth)
            else:
                for child in children:
                    self.collect(child, depth=depth + 1)
            return
        disposition = part.get_content_disposition()
        if (
            content_type in ("text/plain", "text/html")
            and disposition != "attachment"
            and not _filename(part)
        ):
            text = self._text(part)
            (self.plain if content_type == "text/plain" else self.html).append(text)
            return
        self._attach(part, content_type)

    def _alternative(self, children: list[Message], depth: int) -> None:
        """Prefer the plain-text alternative (the sender's own text, no rendering guesses);
        take HTML only when there is no non-empty plain text. Attachments of every
        alternative are kept: an image pasted into the HTML version is still content."""
        best: _Body | None = None
        for child in children:
            branch = _Body()
            branch.parts = self.parts
            branch.collect(child, depth=depth + 1)
            self.parts = branch.parts
            self.truncated |= branch.truncated
            for attachment in branch.attachments:
                self._add(attachment)
            if branch.report_type and self.report_type is None:
                self.report_type = branch.report_type
            has_plain = any(t.strip() for t in branch.plain)
            best_has_plain = best is not None and any(t.strip() for t in best.plain)
            if (has_plain and not best_has_plain) or (best is None and branch.html):
                best = branch
        if best is not None:
            if any(t.strip() for t in best.plain):
                self.plain.extend(best.plain)
            else:
                self.html.extend(best.html)

    def _text(self, part: Message) -> str:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return ""
        if len(payload) > MAX_TEXT_PART_BYTES:
            payload = payload[:MAX_TEXT_PART_BYTES]
            self.truncated = True
        text = _decode_bytes(payload, part.get_content_charset())
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if (
            part.get_content_type() == "text/plain"
            and str(part.get_param("format") or "").lower() == "flowed"
        ):
            text = _unflow(text, delsp=str(part.get_param("delsp") or "").lower() == "yes")
        return text

    def _attach(self, part: Message, content_type: str) -> None:
        content_id = _content_id(part)
        disposition = part.get_content_disposition()
        self._add(
            Attachment(
                filename=_filename(part),
                content_type=content_type,
                size=_payload_size(part),
                content_id=content_id,
                inline=disposition == "inline" or (disposition is None and content_id is not None),
            )
        )

    def _add(self, attachment: Attachment) -> None:
        if attachment.content_id:
            if attachment.content_id in self._content_ids:
                return
            self._content_ids.add(attachment.content_id)
        self.attachments.append(attachment)


def _content_id(part: Message) -> str | None:
    """The Content-ID without angle brackets, verbatim: HTML refers to it as ``cid:...``."""
    raw = part.get("Content-ID")
    if not isinstance(raw, str):
        return None
    value = _clean_line(_fix_8bit(raw[:998])).removeprefix("<").removesuffix(">").strip()
    return value or None


def _filename(part: Message) -> str | None:
    try:
        raw = part.get_filename()
    except Exception:  # a malformed RFC 2231 parameter
        return None
    if not raw:
        return None
    name = _clean_line(_decode_words(_fix_8bit(str(raw))))
    return name[:255] or None


def _payload_size(part: Message) -> int:
    """Decoded size in bytes. The parser has already split an attached message (or a
    delivery report's blocks), so its size is that of the parts serialised again, without
    refolding headers: the original size for LF line ends."""
    try:
        if part.is_multipart():
            payload = part.get_payload()
            if not isinstance(payload, list):
                return 0
            blocks = [p for p in payload if isinstance(p, Message)]
            size = sum(len(p.as_bytes(policy=_SERIALISE)) for p in blocks)
            if blocks and not blocks[-1].get_payload():
                size -= 1  # header-only blocks are separated by a blank line, not ended by one
            return size
        decoded = part.get_payload(decode=True)
    except Exception:
        return 0
    return len(decoded) if isinstance(decoded, bytes) else 0


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()[:40]
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def _decode_bytes(data: bytes, charset: str | None) -> str:
    declared = _codec(charset)
    attempts: list[str] = []
    if declared is not None:
        attempts.append(declared)
    if declared in (None, "ascii"):
        attempts += ["utf-8", "cp1252"]
    elif declared == "cp1252":
        attempts.append("latin-1")  # cp1252 leaves five bytes undefined; latin-1 none
    for name in attempts:
        try:
            return data.decode(name)
        except (UnicodeError, LookupError):
            continue
    return data.decode(declared or "utf-8", errors="replace")


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed: join soft line breaks (a trailing space), per quote depth."""
    out: list[str] = []
    paragraph: str | None = None
    paragraph_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if paragraph is not None and depth == paragraph_depth:
            paragraph += content
        else:
            if paragraph is not None:
                out.append(_quoted(paragraph, paragraph_depth))
            paragraph, paragraph_depth = content, depth
        if not flowed:
            out.append(_quoted(paragraph, depth))
            paragraph = None
    if paragraph is not None:
        out.append(_quoted(paragraph, paragraph_depth))
    return "\n".join(out)


def _quoted(content: str, depth: int) -> str:
    if not depth:
        return content
    return ">" * depth + (" " + content if content else "")
