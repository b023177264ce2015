"""HTML mail bodies to plain text, keeping the structure reply extraction needs.

Why not ``html.parser`` (or html2text, which is built on it): on CPython 3.11.7 it is quadratic
on crafted input. Measured here: 60 KB of ``<a `` takes 46 s and 80 KB of ``<!--`` takes 6 s,
and an email body is attacker-controlled. This scanner finds each ``<`` and the ``>`` that ends
it with ``str.find`` and never looks at a character twice, so its cost is linear in the input.

It is not a full HTML5 parser, and does not need to be: the output is text for agents and for
the reply extractor. It knows what mail clients put around quoted history:

* ``<blockquote>`` and Gmail/Yahoo quote containers: their lines come out prefixed with ``> ``,
  exactly as a plain-text client would have quoted them, so one set of text rules handles both;
* Outlook and Hotmail separators (``div#divRplyFwdMsg``, ``hr#stopSpelling``,
  ``div#appendonsend``): a :data:`HISTORY_MARK` line, after which everything is history;
* a ``border-top`` rule (how Outlook and Windows Mail draw the line above "From: ... Sent:"):
  a :data:`MAYBE_HISTORY_MARK` line, history only if a header field follows it.

Marks appear only when :func:`render` is asked for them; :func:`html_to_text` never has them.
"""

from __future__ import annotations

import html
import re
from typing import Final

# Private-use characters cannot occur in decoded mail text that matters, and survive the
# whitespace handling below unchanged.
HISTORY_MARK: Final = "\ue000history\ue000"
MAYBE_HISTORY_MARK: Final = "\ue000maybe-history\ue000"

# Bodies are cut to this many characters before rendering: a customer's message is never this
# long, and the cut keeps a multi-megabyte newsletter from costing more than it must.
MAX_HTML_CHARS: Final = 2_000_000
# Deeper nesting is flattened (still rendered, no longer tracked); bounds the element stack.
MAX_DEPTH: Final = 256
# Attribute text examined per tag; classes, ids and styles that matter are short.
MAX_ATTR_CHARS: Final = 4096

_RAW_TEXT: Final = frozenset({"script", "style", "title", "textarea", "xmp", "noframes"})
_VOID: Final = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "keygen",
    }
)
_BLOCK: Final = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
# Blocks separated from their neighbours by an empty line, as a reader would see them.
_PARAGRAPH: Final = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "dl", "table", "pre"}
)
_QUOTE_CLASSES: Final = ("gmail_quote", "yahoo_quoted", "protonmail_quote")
_HISTORY_IDS: Final = frozenset(
    {
        "divrplyfwdmsg",
        "x_divrplyfwdmsg",
        "appendonsend",
        "x_appendonsend",
        "stopspelling",
        "x_stopspelling",
        "olk_src_body_section",
        "mail-editor-reference-message-container",
    }
)
_HISTORY_CLASSES: Final = ("outlookmessageheader", "x_outlookmessageheader")

_MARKUP_RE: Final = re.compile(r"<(?:(!--)|[!?]|(/?)([A-Za-z][A-Za-z0-9:_-]{0,63}))")
"""Where markup starts: a comment, a declaration or processing instruction, or a tag (its end
mark and its name). Any other ``<`` is text, passed over by the same search: found one at a
time, a run of stray ``<`` made each one a text call of its own (20 times the cost of ordinary
text in ``bench.mail_parsing``)."""
_ATTR_RE: Final = re.compile(
    r"""([A-Za-z_:][-A-Za-z0-9_:.]{0,63})\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?"""
)
_SPACE_RE: Final = re.compile(r"[ \t\n\r\f\v\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE_RE: Final = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_BLANK_RUN_RE: Final = re.compile(r"\n{3,}")


class _Element:
    __slots__ = ("name", "quote", "skip")

    def __init__(self, name: str, *, quote: bool, skip: bool) -> None:
        self.name = name
        self.quote = quote
        self.skip = skip


class _Renderer:
    """Accumulates lines; each line is prefixed with the quote depth in force when it ends."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.depth = 0
        self.pre = 0
        self.skip = 0
        self.stack: list[_Element] = []
        self.open: dict[str, int] = {}  # how many of each element are on the stack

    # --- output -------------------------------------------------------------------------
    def _prefix(self) -> str:
        return ">" * self.depth + (" " if self.depth else "")

    def flush(self, *, force: bool = False) -> None:
        text = "".join(self.current).rstrip(" ")
        self.current.clear()
        if text or force:
            self.lines.append((self._prefix() + text).rstrip(" ") if text else ">" * self.depth)

    def blank_line(self) -> None:
        self.flush()
        if self.lines and self.lines[-1].strip("> ") != "":
            self.lines.append(">" * self.depth)

    def mark(self, mark: str) -> None:
        self.flush()
        self.lines.append(mark)

    def text(self, data: str) -> None:
        if self.skip or not data:
            return
        data = _INVISIBLE_RE.sub("", html.unescape(data))
        if self.pre:
            first, *rest = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            self.current.append(first)
            for piece in rest:
                self.flush(force=True)
                self.current.append(piece)
            return
        data = _SPACE_RE.sub(" ", data)
        if not self.current or self.current[-1].endswith(" "):
            data = data.lstrip(" ")
        if data:
            self.current.append(data)

    # --- elements -----------------------------------------------------------------------
    def start(self, name: str, attrs: str, self_closing: bool) -> None:
        if name in ("br", "wbr"):
            if name == "br" and not self.skip:
                self.flush(force=True)
            return
        if name == "head":
            self.skip += 1
            self._push(_Element(name, quote=False, skip=True))
            return
        if name == "body" and self.skip:
            # A <head> that was never closed: start showing text again at <body>.
            self._unwind("head")
        if self.skip:
            if name not in _VOID and not self_closing:
                self._push(_Element(name, quote=False, skip=False))
            return
        fields = _attributes(attrs) if attrs else {}
        history = _history_kind(name, fields)
        if history == "hard":
            self.mark(HISTORY_MARK)
        if name in _BLOCK:
            if name in _PARAGRAPH or name == "hr":
                self.blank_line()
            else:
                self.flush()
        elif name in ("td", "th") and self.current:
            self.current.append(" ")
        if history == "maybe":
            self.mark(MAYBE_HISTORY_MARK)
        if name == "li":
            self.current.append("- ")
        if name in _VOID or self_closing:
            return
        quote = name == "blockquote" or any(c in fields.get("class", "") for c in _QUOTE_CLASSES)
        if name == "pre":
            self.pre += 1
        element = _Element(name, quote=quote, skip=False)
        if self._push(element) and quote:
            self.depth += 1

    def end(self, name: str) -> None:
        if name in _VOID:
            return
        self._unwind(name)

    def _push(self, element: _Element) -> bool:
        if len(self.stack) >= MAX_DEPTH:
            return False  # rendered, but no longer tracked
        self.stack.append(element)
        self.open[element.name] = self.open.get(element.name, 0) + 1
        return True

    def _unwind(self, name: str) -> None:
        """Close ``name`` and anything left open inside it; a stray end tag is ignored."""
        if not self.open.get(name):
            return
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index].name == name:
                break
        else:
            return
        while len(self.stack) > index:
            element = self.stack.pop()
            self.open[element.name] -= 1
            if element.skip:
                self.skip -= 1
                continue
            if self.skip:
                continue
            if element.name in _BLOCK:
                if element.name in _PARAGRAPH:
                    self.blank_line()
                else:
                    self.flush()
            if element.name == "pre":
                self.pre -= 1
            if element.quote:
                self.flush()
                # A quote ends on its last line of text, not on an empty ">" line.
                while self.lines and self.lines[-1] == ">" * self.depth:
                    self.lines.pop()
                self.depth -= 1

    def result(self) -> str:
        self.flush()
        text = "\n".join(line.rstrip() for line in self.lines)
        return _BLANK_RUN_RE.sub("\n\n", text).strip("\n")


def _attributes(raw: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for match in _ATTR_RE.finditer(raw[:MAX_ATTR_CHARS]):
        name = match.group(1).lower()
        if name in ("class", "id", "style", "type") and name not in fields:
            value = match.group(2) or ""
            if value[:1] in ("'", '"'):
                value = value[1:-1]
            fields[name] = html.unescape(value).lower()
    return fields


def _history_kind(name: str, fields: dict[str, str]) -> str | None:
    if fields.get("id", "") in _HISTORY_IDS:
        return "hard"
    css_class = fields.get("class", "")
    if css_class and any(c in css_class for c in _HISTORY_CLASSES):
        return "hard"
    if name == "div":
        style = fields.get("style", "").replace(" ", "")
        if "border-top" in style and "solid" in style:
            return "maybe"
    return None


def render(markup: str, *, marks: bool = True) -> str:
    """Render ``markup`` to text; with ``marks``, history separators appear as mark lines."""
    markup = markup[:MAX_HTML_CHARS]
    out = _Renderer()
    pos, size = 0, len(markup)
    while pos < size:
        found = _MARKUP_RE.search(markup, pos)
        if found is None:
            out.text(markup[pos:])
            break
        lt, comment, end_mark, tag_name = found.start(), *found.groups()
        if lt > pos:
            out.text(markup[pos:lt])
        if comment:
            close = markup.find("-->", lt + 4)
            pos = size if close < 0 else close + 3
            continue
        if tag_name is None:  # <!...> or <?...>
            close = markup.find(">", lt + 2)
            pos = size if close < 0 else close + 1
            continue
        close = markup.find(">", found.end())
        if close < 0:
            break  # an unterminated tag at the end swallows the rest, as in a browser
        closing, name = end_mark == "/", tag_name.lower()
        attrs = markup[found.end() : close]
        pos = close + 1
        if closing:
            out.end(name)
            continue
        out.start(name, attrs.strip(), attrs.rstrip().endswith("/"))
        if name in _RAW_TEXT:
            # Script, style and title content is not text; skip to the matching end tag.
            end = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(markup, pos)
            pos = size if end is None else end.end()
            out.end(name)
    text = out.result()
    if not marks:
        text = strip_marks(text)
    return text


def strip_marks(text: str) -> str:
    """Remove mark lines left by :func:`render`."""
    if "\ue000" not in text:
        return text
    lines = [line for line in text.split("\n") if line not in (HISTORY_MARK, MAYBE_HISTORY_MARK)]
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(lines)).strip("\n")


def html_to_text(markup: str) -> str:
    """Plain text of an HTML body: quoted parts prefixed with ``> ``, no marks."""
    return render(markup, marks=False)
