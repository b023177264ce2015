"""Separate what a person just wrote from what their mail client put around it.

A customer's reply arrives with the conversation's history below it (top-posting), above it
(bottom-posting) or around it (inline answers). The history is introduced by an attribution
("On <date>, <name> wrote:" in many languages and wrappings, sometimes broken over several
lines), by an Outlook header block ("From: / Sent: / To: / Subject:" in the client's language),
by an "Original Message" or "Forwarded message" marker, or only by ``>`` quote markers. After
the text come signatures: "-- " blocks and "Sent from my iPhone" footers.

Each line is classified (blank, text, quote, history, signature, rule), then a few decisions are
taken on the sequence. Two principles settle the cases where mail clients are ambiguous:

* Never drop text the customer may have written. Text below a quote is kept together with the
  quote it answers (an inline answer), unless it is only a closing such as "Regards, Roman".
* History is dropped whole: everything from the first unquoted attribution, header block or
  marker that follows the new text, and a quote that opens the message under an attribution.

The rules are measured against 186 cases from mailgun/talon, discourse/email_reply_trimmer,
github/email_reply_parser and zapier/email-reply-parser in tests/peers/test_email_peers.py,
which also records where Switchboard deliberately follows one of them rather than another.

Cost: every pattern runs on one line, or on at most a few joined lines of bounded length, and
input is cut to :data:`MAX_REPLY_CHARS`; the work is linear in the text whatever it contains.
"""

# The patterns below hold words in many scripts (Cyrillic, Greek, CJK, Turkish dotless i,
# fullwidth colons) on purpose: they are what mail clients write.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from typing import Final

from services.ingest.mail.htmltext import HISTORY_MARK, MAYBE_HISTORY_MARK, render

__all__ = [
    "MAX_REPLY_CHARS",
    "extract_html_reply",
    "extract_new_text",
    "extract_reply",
    "reply_from_rendered",
    "split_signature",
]

# Only this much of a body is analysed; replies are at the top, and what follows a customer's
# first 200k characters is history, a log or a paste that no rule needs to see.
MAX_REPLY_CHARS: Final = 200_000
# Lines longer than this are plain text: no attribution, header or footer is that long.
_MAX_PATTERN_LINE: Final = 400
# An attribution can be wrapped over this many lines ("On <date>, Name <\naddr>\nwrote:").
_ATTRIBUTION_LINES: Final = 6
# A signature lives in the last lines of the text.
_SIGNATURE_LINES: Final = 15

_BLANK, _TEXT, _QUOTE, _HISTORY, _SIGNATURE, _RULE = "e", "t", "q", "h", "s", "d"

# Zero-width characters and U+1427 (the glyph Mixmax and Streak leave as tracking-pixel text):
# a line of only these is blank to a reader.
_INVISIBLE: Final = "\u1427\u200b\u200c\u200d\u2060\ufeff\u00ad"

_QUOTE_RE: Final = re.compile(r"[ \t]*(?:>|[A-Za-z]{1,12}>(?=[ \t>]|$))")
_QUOTE_PREFIX_RE: Final = re.compile(r"(?:[ \t]*(?:>|[A-Za-z]{1,12}>(?=[ \t>]|$)))+[ \t]?")
_RULE_RE: Final = re.compile(r"[ \t*]*(?:[-_=*~#+\u2014\u2013\u2022]{3,}|--|__)[ \t*]*")
_SIG_DELIMITER_RE: Final = re.compile(r"[ \t]*(?:--|-{3,}|_{2,})[ \t]*")
_FENCE_RE: Final = re.compile(r"[ \t]*(?:```|~~~)")

# --- attributions ------------------------------------------------------------------------------

_VERBS: Final = (
    r"wrote|writes|said|sent|a\s+[ée]crit|schrieb|geschrieben|het\s+volgende\s+geschreven"
    r"|schreef|escribi[óo]|escreveu|ha\s+scritto|napisa[łl]\(a\)|napisa[łl]a|napisa[łl]"
    r"|написал\(а\)|написала|написал|пише|skrev\s+f[øö]lj?gende|skrev\s+följande|skrev"
    r"|kirjoitti|đã\s+viết|yazdı|napsal\(a\)|napsala|napsal|írta|έγραψε"
)
_ENGLISH_VERBS: Final = frozenset({"wrote", "writes", "said", "sent"})
_STARTERS: Final = (
    r"On|At|Le|Am|Op|El|Em|Il|W\s+dniu|Dnia|Dňa|Den|På|Vào|Na|Dne|Pada|Στις|В|In\s+message"
)
_END_VERB_RE: Final = re.compile(
    rf"(?P<lead>.{{1,300}}?[\s>)\"'])(?P<verb>{_VERBS})[ \t]*[:：]?", re.IGNORECASE
)
_CJK_VERB_RE: Final = re.compile(r"(?P<lead>.{1,300}?)(?:写道|寫道)[ \t]*[:：]?")
_STARTER_RE: Final = re.compile(rf"(?:{_STARTERS})\s", re.IGNORECASE)
_SECOND_ON_RE: Final = re.compile(r"\sOn\s")
_VERB_MIDDLE_RE: Final = re.compile(
    r"(?:Am|Op|Den|Le|På|El|Em|Il|W\s+dniu|Dnia)\s.{1,150}?\s"
    r"(?:schrieb|schreef|skrev|a\s+[ée]crit|escribi[óo]|escreveu|ha\s+scritto|napisa[łl](?:\(a\))?)"
    r"\s.{1,150}[:：]",
    re.IGNORECASE,
)
_VERB_THEN_DATE_RE: Final = re.compile(
    r".{1,150}?\s(?:schrieb|wrote|a\s+[ée]crit|escribi[óo]|skrev|schreef)\s+(?:am|on|le|el|den|op)"
    r"\s.{3,100}[:：]",
    re.IGNORECASE,
)
_DATE_FIRST_RE: Final = re.compile(
    r"(?:[^\W\d_]{1,15}\.?,?\s+)?\d{1,4}[\s./\-年].{0,200}?"
    r"(?:<\s*[^\s<>@]{1,64}@[^\s<>]{1,255}\s*>|\(\s*[^\s()@]{1,64}@[^\s()]{1,255}\s*\)"
    r"|\[\s*mailto:[^\]]{1,255}\])[ \t]*[:：]?"
)
_ISO_GMT_RE: Final = re.compile(
    r"\d{4}-\d\d-\d\d\s+\d{1,2}:\d\d\s+GMT[+-]\d{1,2}:\d\d\s+\S.{0,120}"
)
_START_LINE_RE: Final = re.compile(
    rf"[ \t>*-]*(?:(?:{_STARTERS}|在)\s|(?:[^\W\d_]{{1,15}}\.?,?\s+)?\d{{1,4}}[\s./\-年])",
    re.IGNORECASE,
)
_VERB_TAIL_RE: Final = re.compile(rf"(?:{_VERBS}|写道|寫道)[ \t*]*$", re.IGNORECASE)
_EMAIL_RE: Final = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_TIME_RE: Final = re.compile(r"(?<!\d)\d{1,2}[:.h]\d\d(?!\d)")
_YEAR_RE: Final = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_VIA_RE: Final = re.compile(r"\svia\s", re.IGNORECASE)
_SENTENCE_END_RE: Final = re.compile(r"(?:[^\W\d_]{4,}[.!?]+|[!?])[ \t]*$")

# "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:" -- the attribution shares a
# line with the end of the reply (talon's fixtures show several clients doing this).
_SHARED_LINE_RE: Final = re.compile(
    r"(?P<pre>.{0,300}?[^\s-])[\s-]*(?P<attribution>On\s.{4,300}?\s(?:wrote|sent)[ \t]*:?)[ \t]*"
)

_MARKER_NAMES: Final = (
    r"original\s+message|reply\s+message|forwarded\s+message|ursprüngliche\s+nachricht"
    r"|antwort\s+nachricht|weitergeleitete\s+nachricht|originalnachricht"
    r"|oprindelig\s+meddelelse|videresendt\s+meddelelse|mensaje\s+original|mensaje\s+reenviado"
    r"|message\s+d'origine|message\s+transf[ée]r[ée]|message\s+original|messaggio\s+originale"
    r"|messaggio\s+inoltrato|oorspronkelijk\s+bericht|doorgestuurd\s+bericht"
    r"|originalmeddelande|vidarebefordrat\s+meddelande|ursprungligt\s+meddelande"
    r"|opprinnelig\s+melding|videresendt\s+melding|alkuperäinen\s+viesti|välitetty\s+viesti"
    r"|wiadomość\s+oryginalna|oryginalna\s+wiadomość|przekazana\s+wiadomość"
    r"|исходное\s+сообщение|пересылаемое\s+сообщение|пересланное\s+сообщение"
    r"|mensagem\s+original|mensagem\s+encaminhada|původní\s+zpráva|přeposlaná\s+zpráva"
    r"|orijinal\s+mesaj|iletilen\s+mesaj|αρχικό\s+μήνυμα|原始邮件|转发的邮件|原始郵件|元のメッセージ"
    r"|転送されたメッセージ"
)
_MARKER_RE: Final = re.compile(
    rf"[ \t>*_]*(?:-{{2,}}[ \t]*(?:{_MARKER_NAMES})[ \t]*-{{2,}}"
    r"|(?:begin\s+forwarded\s+message|d[ée]but\s+du\s+message\s+r[ée]exp[ée]di[ée]"
    r"|anfang\s+der\s+weitergeleiteten\s+nachricht|inicio\s+del\s+mensaje\s+reenviado"
    r"|inizio\s+messaggio\s+inoltrato|doorgestuurd\s+bericht|videresendt\s+melding"
    r"|vidarebefordrat\s+mejl|forwarded\s+message)[ \t]*[:：])[ \t*_]*",
    re.IGNORECASE,
)

# --- header blocks ("From: / Sent: / To: / Subject:") --------------------------------------------

_FIELD_RE: Final = re.compile(r"[ \t*]*([^:：*\n]{1,30}?)[ \t*]*[:：][ \t*]*(.*)")
_FROM_FIELDS: Final = (
    "from",
    "von",
    "de",
    "fra",
    "från",
    "da",
    "van",
    "od",
    "от",
    "发件人",
    "寄件者",
    "差出人",
    "lähettäjä",
    "kimden",
    "expéditeur",
    "feladó",
    "afzender",
    "remitente",
    "mittente",
    "από",
    "від",
    "보낸 사람",
)
_DATE_FIELDS: Final = (
    "sent",
    "date",
    "gesendet",
    "datum",
    "envoyé",
    "sendt",
    "skickat",
    "inviato",
    "data",
    "verzonden",
    "verstuurd",
    "enviado",
    "enviada em",
    "enviado el",
    "fecha",
    "wysłano",
    "отправлено",
    "дата",
    "发送时间",
    "日期",
    "傳送時間",
    "寄件日期",
    "送信日時",
    "lähetetty",
    "gönderildi",
    "odesláno",
    "elküldve",
    "ημερομηνία",
    "날짜",
    "보낸 날짜",
)
_OTHER_FIELDS: Final = (
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "an",
    "betreff",
    "kopie",
    "antwort an",
    "à",
    "objet",
    "destinataire",
    "répondre à",
    "til",
    "emne",
    "kopi",
    "till",
    "ämne",
    "kopia",
    "a",
    "oggetto",
    "risposta",
    "aan",
    "onderwerp",
    "beantwoorden - aan",
    "para",
    "asunto",
    "assunto",
    "responder a",
    "do",
    "temat",
    "dw",
    "кому",
    "тема",
    "копия",
    "收件人",
    "主题",
    "抄送",
    "收件者",
    "主旨",
    "副本",
    "宛先",
    "件名",
    "vastaanottaja",
    "aihe",
    "kime",
    "konu",
    "komu",
    "předmět",
    "címzett",
    "tárgy",
    "προς",
    "θέμα",
    "받는 사람",
    "제목",
    "on behalf of",
)
_SUBJECT_FIELDS: Final = frozenset(
    {
        "subject",
        "betreff",
        "objet",
        "emne",
        "ämne",
        "oggetto",
        "onderwerp",
        "asunto",
        "assunto",
        "temat",
        "тема",
        "主题",
        "主旨",
        "件名",
        "aihe",
        "konu",
        "předmět",
        "tárgy",
        "θέμα",
        "제목",
    }
)
_FIELD_KINDS: Final = {
    **dict.fromkeys(_OTHER_FIELDS, "other"),
    **dict.fromkeys(_DATE_FIELDS, "date"),
    **dict.fromkeys(_FROM_FIELDS, "from"),
}

# --- signatures --------------------------------------------------------------------------------

_DEVICES: Final = (
    r"i\s?phone|i\s?pad|i\s?pod|android|blackberry|mobile|phone|cell|handy|galaxy|samsung"
    r"|htc|huawei|xiaomi|pixel|nokia|motorola|windows|outlook|mail|mailbox|airmail|yahoo|aol"
    r"|gmail|spark|newton|tablet|smartphone|device|watch|alcatel|verizon|sprint|t-mobile"
    r"|vodafone|wireless|ti-\d+"
)
_DEVICE_RE: Final = re.compile(rf"(?:{_DEVICES})", re.IGNORECASE)
_SENT_FROM_RE: Final = re.compile(
    r"[ \t(<]*(?:sent|sent\s+wirelessly|gesendet|envoy[ée])\s+(?:from|via|with|by|using|von|de"
    r"|depuis|avec)\s+[^,.;!]{1,60}",
    re.IGNORECASE,
)
_FOOTER_RE: Final = re.compile(
    r"[ \t(<]*(?:"
    r"get\s+outlook\s+for\s+\S+"
    r"|\S+\s+from\s+(?:my\s+)?mobile"
    r"|from\s+my\s+\S.{0,20}"
    r"|envoy[ée]\s+(?:depuis|de|avec|sans\s+fil\s+par)\s+(?:mon|ma|un|une|l'|yahoo)"
    r"|von\s+meinem\s+.{1,40}\s+gesendet|gesendet\s+von\s+meinem"
    r"|diese\s+nachricht\s+wurde\s+von\s+.{1,80}\s+gesendet"
    r"|enviado\s+(?:desde|do|de)\s+(?:mi|meu|o\s+meu|my|yahoo)"
    r"|inviato\s+da\s+|verzonden\s+(?:met|vanaf)\s+|verstuurd\s+(?:met|vanaf)\s+mijn"
    r"|skickat\s+från\s+min|sendt\s+fra\s+min|lähetetty\s+\S+(?:sta|stä)"
    r"|wysłane\s+z\s+|отправлено\s+(?:с|из)\s+|从我的|從我的|发自我的|iphoneから送信"
    r")",
    re.IGNORECASE,
)
# Every footer pattern contains one of these; a cheap test before the real ones.
_FOOTER_HINTS: Final = (
    "sent",
    "from",
    "outlook",
    "envoy",
    "gesendet",
    "enviado",
    "inviato",
    "verzonden",
    "verstuurd",
    "skickat",
    "sendt",
    "lähetetty",
    "wysłane",
    "отправлено",
    "从我",
    "從我",
    "发自",
    "送信",
)
_MARKDOWN_LINK_RE: Final = re.compile(r"\[([^\]\n]{0,200})\]\([^)\n]{0,500}\)")
_DASH_NAME_RE: Final = re.compile(
    r"[ \t]*-[ \t]?[^\W\d_][\w.'’]*(?:[ \t]+[^\W\d_][\w.'’]*){0,2}[ \t]*"
)
_BULLET_RE: Final = re.compile(r"[ \t]*[-*•+][ \t]")
_SIGN_OFFS: Final = (
    r"thanks(?:\s+(?:a\s+lot|again|so\s+much|in\s+advance))?|thank\s+you(?:\s+(?:very\s+much|so"
    r"\s+much))?|many\s+thanks|thx|ty|cheers|(?:best|kind|warm|warmest|many)\s+regards|regards"
    r"|best\s+wishes|all\s+the\s+best|best|sincerely|yours\s+sincerely|sincerely\s+yours"
    r"|yours\s+truly|yours|respectfully|greetings|br|brgds|rgds|take\s+care|mvh"
    r"|med\s+vennlig\s+hilsen|vennlig\s+hilsen|hilsen|mit\s+freundlichen\s+grüßen|mfg"
    r"|viele\s+grüße|liebe\s+grüße|beste\s+grüße|grüße|gruß|lg|cordialement"
    r"|bien\s+cordialement|bien\s+à\s+vous|merci|salutations|saludos|un\s+saludo|atentamente"
    r"|cordiales\s+saludos|gracias|grazie|cordiali\s+saluti|distinti\s+saluti|saluti|groeten"
    r"|met\s+vriendelijke\s+groet|vriendelijke\s+groeten|hälsningar|med\s+vänlig\s+hälsning"
    r"|vänliga\s+hälsningar|pozdrawiam|z\s+poważaniem|с\s+уважением|спасибо|obrigad[oa]"
    r"|atenciosamente|abraços|ciao|bye|kiitos|ystävällisin\s+terveisin|terveisin"
    r"|saygılarımla|よろしくお願いします|谢谢|此致"
)
_SIGN_OFF_RE: Final = re.compile(
    rf"[ \t]*(?:{_SIGN_OFFS})[ \t]*[,.!]*"
    r"(?P<name>(?:[ \t]+[^\W\d_][\w.'’-]*){0,3})[ \t]*[,.!]*[ \t]*",
    re.IGNORECASE,
)
_URL_RE: Final = re.compile(r"\(?[ \t]*(?:https?://|www\.|mailto:)\S*[ \t]*\)?", re.IGNORECASE)


# --- public API --------------------------------------------------------------------------------


def extract_reply(text: str) -> str:
    """Return the new part of a plain-text reply: quoted history removed.

    Signatures stay (a "-- " block is part of what the author wrote); use
    :func:`extract_new_text` for the text Switchboard shows and routes on. Leading blank lines
    and trailing whitespace are removed; other lines are returned unchanged.
    """
    analysis = _Analysis(_split_lines(text))
    keep = analysis.select()
    return _tidy([line for line, kept in zip(analysis.lines, keep, strict=True) if kept])


def extract_new_text(text: str) -> str:
    """The customer's new text: :func:`extract_reply`, then "-- " signatures and device footers
    ("Sent from my iPhone") removed.

    Closings such as "Thanks,\\nAlex" are kept: they are part of what the person wrote, the
    name in them helps an agent, and peers that strip quotations keep them too.
    """
    body, _signature = split_signature(extract_reply(text), sign_offs=False)
    return body.rstrip()


def split_signature(text: str, *, sign_offs: bool = True) -> tuple[str, str | None]:
    """Split ``text`` into ``(body, signature)``; ``signature`` is None when none is found.

    A signature starts at a "-- " (or "--", "---", "__") delimiter, a "-Name" line, a device
    footer ("Sent from my iPhone", "Von meinem iPhone gesendet", ...), or, with ``sign_offs``,
    a closing ("Thanks!", "Best regards,") followed by no more than a few short name lines. It
    lies within the last lines of the text and never starts on its first line. Without a
    signature the text is returned unchanged; with one, trailing blank lines of the body and
    trailing whitespace of the signature are dropped.
    """
    lines = _split_lines(text)
    end = len(lines)
    while end and _is_blank(lines[end - 1]):
        end -= 1
    start = _signature_start(lines, 0, end, sign_offs=sign_offs)
    if start is None:
        return text, None
    body_end = start
    while body_end and _is_blank(lines[body_end - 1]):
        body_end -= 1
    return "\n".join(lines[:body_end]), "\n".join(lines[start:end]).rstrip()


def extract_html_reply(markup: str) -> str:
    """Return the new part of an HTML reply, as plain text (quotes removed, signature kept).

    Quote containers (``blockquote``, Gmail's ``gmail_quote``, Yahoo's ``yahoo_quoted``) are
    rendered as ``>`` quotes and Outlook/Hotmail separators as history marks (see
    :mod:`services.ingest.mail.htmltext`), then the plain-text rules apply.
    """
    return reply_from_rendered(render(markup))


def reply_from_rendered(rendered: str) -> str:
    """:func:`extract_reply` for text produced by :func:`htmltext.render` with marks."""
    lines = rendered.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line == HISTORY_MARK:
            break
        if line == MAYBE_HISTORY_MARK:
            following = next(
                (lines[i] for i in range(index + 1, len(lines)) if not _is_blank(lines[i])), ""
            )
            if _field(following) is not None:
                break
            continue
        kept.append(line)
    return extract_reply("\n".join(kept))


# --- line analysis -----------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    text = text[:MAX_REPLY_CHARS]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _tidy(lines: list[str]) -> str:
    start = 0
    while start < len(lines) and _is_blank(lines[start]):
        start += 1
    return "\n".join(lines[start:]).rstrip()


def _is_blank(line: str) -> bool:
    return not line.strip().strip(_INVISIBLE).strip()


def _quote_content(line: str) -> str:
    return _QUOTE_PREFIX_RE.sub("", line, count=1)


def _field(line: str) -> tuple[str, str, str] | None:
    """``(name, kind, value)`` when ``line`` is a header field of a quoted message, else None;
    ``kind`` is "from", "date" or "other"."""
    if len(line) > _MAX_PATTERN_LINE:
        return None
    match = _FIELD_RE.fullmatch(line)
    if match is None:
        return None
    name = " ".join(match.group(1).split()).lower()
    kind = _FIELD_KINDS.get(name)
    if kind is None:
        return None
    return name, kind, match.group(2)


def _dated(text: str) -> bool:
    return _TIME_RE.search(text) is not None or _YEAR_RE.search(text) is not None


def _has_email(text: str) -> bool:
    return ("@" in text and _EMAIL_RE.search(text) is not None) or "mailto:" in text.lower()


def _is_attribution(candidate: str) -> bool:
    """Whether ``candidate`` (one or more joined lines) introduces a quoted message."""
    text = " ".join(candidate.split())
    wrapped = text.startswith("--") and text.endswith("--")
    text = text.strip("-*_ ")
    if not 6 <= len(text) <= 300:
        return False
    if _ISO_GMT_RE.fullmatch(text):
        return True
    match = _END_VERB_RE.fullmatch(text) or _CJK_VERB_RE.fullmatch(text)
    if match is not None:
        lead = match.group("lead")
        verb = (match.groupdict().get("verb") or "").lower()
        starter = _STARTER_RE.match(lead) is not None
        if starter and _SECOND_ON_RE.search(lead, 2):
            return False  # two openings joined: a sentence above was swallowed
        via = _VIA_RE.search(lead) is not None
        if verb == "sent":
            return starter and _dated(lead)
        if verb in _ENGLISH_VERBS:
            return (starter and _dated(lead)) or _has_email(lead) or wrapped or via
        return _has_email(lead) or wrapped or via or any(c.isdigit() for c in lead)
    if any(c.isdigit() for c in text) and (
        _VERB_MIDDLE_RE.fullmatch(text) or _VERB_THEN_DATE_RE.fullmatch(text)
    ):
        return True
    return _DATE_FIRST_RE.fullmatch(text) is not None and _dated(text)


def _gated(line: str) -> bool:
    """Cheap test: can an attribution end on this line?"""
    stripped = line.rstrip(" \t*")
    if stripped[-1:] in (":", "：", ">", "-"):
        return True
    if _ISO_GMT_RE.match(stripped.lstrip()):
        return True
    return _VERB_TAIL_RE.search(stripped[-40:]) is not None


def _is_marker(line: str) -> bool:
    return len(line) <= 120 and _MARKER_RE.fullmatch(line) is not None


def _is_device_footer(line: str) -> bool:
    if len(line) > 200:
        return False
    lowered = line.lower()
    if not any(hint in lowered for hint in _FOOTER_HINTS):
        return False
    plain = _MARKDOWN_LINK_RE.sub(r"\1", line).strip()
    if _FOOTER_RE.match(plain):
        return True
    match = _SENT_FROM_RE.match(plain)
    if match is None:
        return False
    # "Sent from my iPhone" or "Sent from my cell, please excuse typos" -- but not "Sent from
    # my desk, is much easier than my mobile phone": the clause itself must name a device, or
    # the whole line be as short as a footer.
    return _DEVICE_RE.search(match.group(0)) is not None or len(plain.strip("()<> ")) <= 40


def _is_sign_off(line: str) -> bool:
    """ "Thanks!", "Best regards," or "Regards, Roman" -- but not "Thanks for your help."."""
    if len(line) > 60:
        return False
    match = _SIGN_OFF_RE.fullmatch(line)
    return match is not None and not any(word[0].islower() for word in match.group("name").split())


def _is_wrap_artefact(line: str) -> bool:
    """A line between quote lines that is the tail of a quoted line broken by a long URL."""
    stripped = line.strip()
    if stripped.endswith(">") and not stripped.startswith("<"):
        return True
    if not any(c.isalpha() for c in _URL_RE.sub("", stripped)):
        return True
    return " " not in stripped and any(c in stripped for c in "=/&?%_")


class _Analysis:
    """Line kinds and history spans of one text, and the decision of which lines to keep."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.kinds = [self._kind(line) for line in lines]
        self.spans: dict[int, int] = {}  # first line -> last line of each history block
        self._split_shared_lines()
        self._in_span = [False] * len(self.lines)
        self._find_attributions()
        self._find_markers_and_headers()
        self._absorb_rules()
        for start, end in self.spans.items():
            for index in range(start, end + 1):
                self.kinds[index] = _HISTORY
        self._find_signatures()

    @staticmethod
    def _kind(line: str) -> str:
        stripped = line.strip()
        if not stripped or not stripped.strip(_INVISIBLE).strip():
            return _BLANK
        first = stripped[0]
        if (first == ">" or first.isalpha()) and _QUOTE_RE.match(line):
            return _QUOTE
        if not first.isalnum() and len(line) <= 200 and _RULE_RE.fullmatch(line):
            return _RULE
        return _TEXT

    # --- history ------------------------------------------------------------------------
    def _split_shared_lines(self) -> None:
        """Give an attribution that shares a line with the reply ("reply On ... wrote:") a
        line of its own, so that the rest of the analysis works line by line."""
        lines: list[str] = []
        kinds: list[str] = []
        for line, kind in zip(self.lines, self.kinds, strict=True):
            if (
                kind == _TEXT
                and len(line) <= _MAX_PATTERN_LINE
                and line.rstrip().endswith(("wrote:", "wrote", "sent:"))
                and _START_LINE_RE.match(line) is None
            ):
                match = _SHARED_LINE_RE.fullmatch(line)
                if match and _is_attribution(match.group("attribution")):
                    lines += [match.group("pre"), match.group("attribution")]
                    kinds += [_TEXT, _TEXT]
                    continue
            lines.append(line)
            kinds.append(kind)
        self.lines[:] = lines
        self.kinds = kinds

    def _find_attributions(self) -> None:
        lines, kinds = self.lines, self.kinds
        covered = -1
        for end, line in enumerate(lines):
            kind = kinds[end]
            if kind == _QUOTE:
                # "> wrote:" or ">:" can close an attribution broken before its last words.
                content = _quote_content(line).strip()
                if len(content) > 12 or not content.endswith((":", "：")):
                    continue
                single = False
            elif kind == _TEXT and len(line) <= _MAX_PATTERN_LINE:
                single = True
            else:
                continue
            if not _gated(line):
                continue
            best: int | None = None
            parts: list[str] = []
            blanks = 0
            for start in range(end, max(-1, end - _ATTRIBUTION_LINES), -1):
                if start <= covered:
                    break
                if start < end:
                    if kinds[start] == _BLANK:
                        blanks += 1
                        if blanks > 1:
                            break
                        continue
                    if kinds[start] != _TEXT or len(lines[start]) > 300:
                        break
                    if _SENTENCE_END_RE.search(lines[start]):
                        break
                parts.append(
                    _quote_content(lines[start]) if kinds[start] == _QUOTE else lines[start]
                )
                if start == end and not single:
                    continue
                if start < end and not self._plausible_start(
                    lines[start], crossed_blank=blanks > 0
                ):
                    continue
                if _is_attribution(" ".join(reversed(parts))):
                    best = start
            if best is not None:
                self._add_span(best, end)
                covered = end

    @staticmethod
    def _plausible_start(line: str, *, crossed_blank: bool) -> bool:
        if crossed_blank:
            # Only a full "On <date> ..." opening may sit a blank line above its "wrote:".
            stripped = line.lstrip(" \t>*-")
            return _STARTER_RE.match(stripped) is not None and _dated(stripped)
        return _START_LINE_RE.match(line) is not None or "<" in line or _has_email(line)

    def _find_markers_and_headers(self) -> None:
        lines, kinds = self.lines, self.kinds
        index = 0
        while index < len(lines):
            if kinds[index] != _TEXT or self._covered(index):
                index += 1
                continue
            line = lines[index]
            if _is_marker(line):
                end = index
                following = self._next_content(index + 1, limit=3)
                if following is not None:
                    block_end = self._header_block(following)
                    if block_end is not None:
                        end = block_end
                self._add_span(index, end)
                index = end + 1
                continue
            block_end = self._header_block(index)
            if block_end is not None:
                self._add_span(index, block_end)
                index = block_end + 1
                continue
            index += 1

    def _covered(self, index: int) -> bool:
        return self._in_span[index]

    def _add_span(self, start: int, end: int) -> None:
        self.spans[start] = end
        for index in range(start, end + 1):
            self._in_span[index] = True

    def _next_content(self, index: int, *, limit: int) -> int | None:
        for candidate in range(index, min(len(self.lines), index + limit)):
            if self.kinds[candidate] != _BLANK:
                return candidate
        return None

    def _header_block(self, index: int) -> int | None:
        """Last line of the header block ("From: ... / Sent: ...") starting at ``index``."""
        if self.kinds[index] != _TEXT:
            return None
        first = _field(self.lines[index])
        if first is None or first[1] == "other":
            return None
        fields = [first]
        last = index
        continuation = 0
        for candidate in range(index + 1, min(len(self.lines), index + 16)):
            if self.kinds[candidate] == _BLANK:
                break
            field = _field(self.lines[candidate]) if self.kinds[candidate] == _TEXT else None
            if field is None:
                continuation += 1
                if continuation > 2:
                    break
                continue
            continuation = 0
            fields.append(field)
            last = candidate
        if len({name for name, _kind, _value in fields}) < 2:
            return None
        # "From: Berlin / To: Munich / Date: 12.06.2024" in a customer's own text is not a
        # quoted message: a block needs an address in it, or a subject and a dated date.
        has_address = any(_has_email(value) for _name, _kind, value in fields)
        has_subject = any(name in _SUBJECT_FIELDS for name, _kind, _value in fields)
        has_date = any(kind == "date" and _dated(value) for _name, kind, value in fields)
        if not (has_address or (has_subject and has_date)):
            return None
        # A folded last field ("Subject: Two\n line subject") belongs to the block.
        folded = last + 1 < len(self.lines) and self.lines[last + 1][:1] in (" ", "\t")
        if folded and self.kinds[last + 1] == _TEXT:
            last += 1
        return last

    def _absorb_rules(self) -> None:
        """A rule line just above a history block (Outlook's "_____") belongs to it."""
        for start in sorted(self.spans):
            end = self.spans[start]
            probe = start - 1
            skipped = 0
            while probe >= 0 and self.kinds[probe] == _BLANK and skipped < 2:
                probe -= 1
                skipped += 1
            if probe >= 0 and self.kinds[probe] == _RULE and probe not in self.spans:
                del self.spans[start]
                self.spans[probe] = end

    # --- signatures ---------------------------------------------------------------------
    def _find_signatures(self) -> None:
        lines, kinds = self.lines, self.kinds
        for index, line in enumerate(lines):
            if kinds[index] == _TEXT and _is_device_footer(line):
                kinds[index] = _SIGNATURE
        last_structure = max(
            (i for i, kind in enumerate(kinds) if kind in (_QUOTE, _HISTORY)), default=-1
        )
        end = len(lines)
        while end and kinds[end - 1] == _BLANK:
            end -= 1
        body_above = any(kind == _TEXT for kind in kinds[: last_structure + 1])
        start = _signature_start(
            lines, last_structure + 1, end, sign_offs=False, body_above=body_above
        )
        if start is not None:
            for index in range(start, end):
                if kinds[index] != _BLANK:
                    kinds[index] = _SIGNATURE

    # --- decisions ----------------------------------------------------------------------
    def _next_non_blank(self, index: int) -> int | None:
        for candidate in range(index, len(self.kinds)):
            if self.kinds[candidate] != _BLANK:
                return candidate
        return None

    def _quote_end(self, index: int) -> int:
        """Last quote line of the quote starting at ``index`` (blank lines and URL-broken
        quote lines inside it included)."""
        kinds, last = self.kinds, index
        candidate = index + 1
        while candidate < len(kinds):
            kind = kinds[candidate]
            if kind == _QUOTE:
                last = candidate
            elif kind == _BLANK:
                pass
            elif kind == _TEXT and _is_wrap_artefact(self.lines[candidate]):
                following = self._next_non_blank(candidate + 1)
                if following is None or kinds[following] != _QUOTE:
                    break
            else:
                break
            candidate += 1
        return last

    def _quote_opens_with_history(self, index: int) -> bool:
        """Whether the quote at ``index`` starts with a (quoted) attribution, marker or header
        block: then it is history even with no new text above it."""
        contents: list[str] = []
        fields = 0
        for candidate in range(index, min(len(self.lines), index + 8)):
            if self.kinds[candidate] != _QUOTE:
                break
            content = _quote_content(self.lines[candidate]).strip()
            if not content:
                if contents:
                    break
                continue
            if not contents and _is_marker(content):
                return True
            if _field(content) is not None:
                fields += 1
                if fields >= 2:
                    return True
            contents.append(content)
            if len(contents) <= 3 and _is_attribution(" ".join(contents)):
                return True
        return False

    def select(self) -> list[bool]:
        kinds, spans = self.kinds, self.spans
        keep = [True] * len(kinds)

        def drop(start: int, stop: int) -> None:
            for index in range(start, stop):
                keep[index] = False

        # 1. History that opens the message: an attribution or header block with nothing new
        #    above it. Followed by a quote, the two are the bottom-posted history; followed by
        #    text, only the header goes (the text is the message, e.g. a bare forward).
        position = 0
        while True:
            first = self._next_non_blank(position)
            if first is None:
                break
            if kinds[first] == _HISTORY and first in spans:
                header_end = spans[first]
                following = self._next_non_blank(header_end + 1)
                if (
                    following is not None
                    and kinds[following] == _QUOTE
                    and not self._answered_inline(following)
                ):
                    header_end = self._quote_end(following)
                drop(first, header_end + 1)
                position = header_end + 1
                continue
            if kinds[first] == _QUOTE and self._quote_opens_with_history(first):
                quote_end = self._quote_end(first)
                drop(first, quote_end + 1)
                position = quote_end + 1
                continue
            break

        # 2. History below new text.
        while True:
            header = next(
                (i for i in range(position, len(kinds)) if kinds[i] == _HISTORY and i in spans),
                None,
            )
            if header is None:
                break
            header_end = spans[header]
            following = self._next_non_blank(header_end + 1)
            if following is not None and kinds[following] == _QUOTE:
                quote_end = self._quote_end(following)
                after = self._next_non_blank(quote_end + 1)
                stop = next(
                    (i for i in range(after or len(kinds), len(kinds)) if kinds[i] == _HISTORY),
                    len(kinds),
                )
                below = [] if after is None else list(range(after, stop))
                if any(kinds[i] == _TEXT for i in below):
                    closing = self._is_closing([self.lines[i] for i in below if kinds[i] == _TEXT])
                    if not any(kinds[i] == _QUOTE for i in below) and closing:
                        # "Regards, Roman" under the quote: the quote was history.
                        drop(header, after or len(kinds))
                    else:
                        # Text below the quote answers it: keep both, drop the attribution.
                        drop(header, header_end + 1)
                    position = after if after is not None else len(kinds)
                    continue
            drop(header, len(kinds))
            break

        # 3. The last quote of the new text is history when only a signature follows it, or
        #    only a closing: "Thanks, Jonas" under it, or a quote that is itself just "Thanks,
        #    Anna". (A quote followed by more text is an answered question and stays.)
        quoted = [i for i in range(len(kinds)) if keep[i] and kinds[i] == _QUOTE]
        if quoted:
            last = quoted[-1]
            first = last
            probe = last - 1
            while probe >= 0 and (
                not keep[probe]
                or kinds[probe] in (_QUOTE, _BLANK)
                or (kinds[probe] == _TEXT and _is_wrap_artefact(self.lines[probe]))
            ):
                if keep[probe] and kinds[probe] == _QUOTE:
                    first = probe
                probe -= 1
            above = any(keep[i] and kinds[i] == _TEXT for i in range(first))
            below = [i for i in range(last + 1, len(kinds)) if keep[i] and kinds[i] == _TEXT]
            if above and not below:
                drop(first, last + 1)
            elif above and (
                self._is_closing([self.lines[i] for i in below])
                or self._is_closing(
                    [_quote_content(self.lines[i]) for i in range(first, last + 1) if keep[i]]
                )
            ):
                drop(first, below[0])
        return keep

    def _answered_inline(self, quote: int) -> bool:
        """Whether the quote at ``quote`` is followed by text, another quote and more text:
        point-by-point answers, where each quote is the question its answer needs. A single
        block of text under the quote is bottom-posting, and the quote is history."""
        seen_text = seen_quote = False
        index = self._quote_end(quote) + 1
        while index < len(self.kinds):
            kind = self.kinds[index]
            if kind == _HISTORY:
                return False
            if kind == _TEXT:
                if seen_quote:
                    return True
                seen_text = True
            elif kind == _QUOTE and seen_text:
                seen_quote = True
            index += 1
        return False

    @staticmethod
    def _is_closing(lines: list[str]) -> bool:
        content = [line for line in lines if not _is_blank(line)]
        return (
            0 < len(content) <= 3
            and all(len(line) <= 60 for line in content)
            and _is_sign_off(content[0])
        )


# --- signatures --------------------------------------------------------------------------------


def _signature_start(
    lines: list[str], lo: int, hi: int, *, sign_offs: bool, body_above: bool = False
) -> int | None:
    """Index of the first line of the signature within ``lines[lo:hi]``, or None.

    A signature needs a body above it: the first non-blank line of the range can start one
    only when ``body_above`` says the body lies before ``lo``."""
    first = next((i for i in range(lo, hi) if not _is_blank(lines[i])), None)
    if first is None:
        return None
    if body_above:
        first -= 1
    fenced = _fenced_lines(lines, lo, hi)
    window = max(first + 1, hi - _SIGNATURE_LINES)
    # Device footers are unmistakable: one far above the window still starts the signature
    # when only more footers follow it (some people stack them up).
    early = [i for i in range(first + 1, window) if i not in fenced and _is_device_footer(lines[i])]
    if early:
        # footer_tail[i]: every non-blank line from i to the end is footer-like (one pass
        # from the end, so a stack of footers costs linear time).
        footer_tail = [True] * (hi - lo + 1)
        for index in range(hi - 1, lo - 1, -1):
            line = lines[index]
            footer_tail[index - lo] = footer_tail[index - lo + 1] and (
                _is_blank(line) or _footerish(line)
            )
        for index in early:
            if footer_tail[index + 1 - lo]:
                return index
    for index in range(window, hi):
        if index in fenced or len(lines[index]) > _MAX_PATTERN_LINE:
            continue
        line = lines[index]
        if _SIG_DELIMITER_RE.fullmatch(line):
            if _delimited_block(lines, index, hi):
                return index
        elif _DASH_NAME_RE.fullmatch(line) and len(line) <= 40:
            if _dash_name_signature(lines, index, first, hi):
                return index
        elif _is_device_footer(line):
            rest = [lines[i] for i in range(index + 1, hi) if not _is_blank(lines[i])]
            if all(_footerish(x) for x in rest) or (
                len(rest) <= 4 and all(len(x) <= 60 for x in rest)
            ):
                return index
        elif sign_offs and _sign_off_signature(lines, index, hi):
            return index
    return None


def _fenced_lines(lines: list[str], lo: int, hi: int) -> set[int]:
    fenced: set[int] = set()
    inside = False
    for index in range(lo, hi):
        if _FENCE_RE.match(lines[index]):
            inside = not inside
            fenced.add(index)
        elif inside:
            fenced.add(index)
    return fenced


def _footerish(line: str) -> bool:
    return (
        _is_device_footer(line)
        or _SIG_DELIMITER_RE.fullmatch(line) is not None
        or _DASH_NAME_RE.fullmatch(line) is not None
    )


def _delimited_block(lines: list[str], index: int, hi: int) -> bool:
    rest = [lines[i] for i in range(index + 1, hi) if not _is_blank(lines[i])]
    if len(rest) > 10 or any(len(line) > 200 for line in rest):
        return False
    if lines[index].strip() in ("--", "-- "):
        return True
    # A longer rule ("-----", "_____") also separates content; only a short block below it
    # that does not read like "Item: value" is a signature or a list footer.
    return len(rest) <= 6 and (not rest or (len(rest[0]) <= 60 and ":" not in rest[0]))


def _dash_name_signature(lines: list[str], index: int, first: int, hi: int) -> bool:
    """ "-Roman" closes a message; "- apples" in a list does not."""
    above = next((lines[i] for i in range(index - 1, first - 1, -1) if not _is_blank(lines[i])), "")
    below = [lines[i] for i in range(index + 1, hi) if not _is_blank(lines[i])]
    if _BULLET_RE.match(above) or (below and _BULLET_RE.match(below[0])):
        return False
    return len(below) <= 8 and all(len(line) <= 200 for line in below)


def _sign_off_signature(lines: list[str], index: int, hi: int) -> bool:
    if not _is_sign_off(lines[index]):
        return False
    rest = [lines[i] for i in range(index + 1, hi) if not _is_blank(lines[i])]
    return len(rest) <= 4 and all(
        len(x) <= 60 and not _QUOTE_RE.match(x) and not (len(x) > 25 and _SENTENCE_END_RE.search(x))
        for x in rest
    )
