"""The visitor side of the chat protocol: parsing hostile frames, and the per-socket rate limit.

Visitor -> server, JSON text frames::

    {"type": "message", "client_id": "c-1", "text": "...", "name": "Ada", "email": "a@x.org",
     "language": "es-ES"}

``client_id`` is chosen by the widget (1-64 of ``A-Z a-z 0-9 _ -``) and kept when it resends,
so a resend is recognised. ``name``, ``email`` and ``language`` (the browser's
``navigator.language``, a hint to the language of the text) are optional. Unknown fields are
ignored so newer widgets keep working against older servers.

Server -> visitor: ``ready``, ``ack``, ``error`` (with ``retry``: whether to send the same
frame again later) and ``reply`` (see :meth:`libs.contracts.chat_mailbox.Reply.frame`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from libs.common.socket_frames import FrameError, decode_object

MAX_TEXT_CHARS: Final = 4000
MAX_NAME_CHARS: Final = 100
MAX_EMAIL_CHARS: Final = 254
MAX_LANGUAGE_CHARS: Final = 35
CLIENT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Deliberately loose: one @, a dot in the domain, no spaces or controls. The address is shown
# to agents, never mailed to without the customer confirming it.
EMAIL: Final = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]+\.[^\s@\x00-\x1f\x7f]+")
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    client_id: str
    text: str
    name: str | None
    email: str | None
    language: str | None = None


def parse(raw: str | bytes) -> ChatMessage:
    """The message in one text frame, or :class:`FrameError` saying what is wrong."""
    data = decode_object(raw)
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise FrameError("invalid_frame", "client_id must be 1-64 of A-Z a-z 0-9 _ -")
    if data.get("type") != "message":
        raise FrameError("unknown_type", "type must be 'message'", client_id)
    text = _text(data.get("text"), "text", MAX_TEXT_CHARS, client_id)
    text = text.strip() if text is not None else None
    if not text:
        raise FrameError("empty_text", "text is required", client_id)
    name = _text(data.get("name"), "name", MAX_NAME_CHARS, client_id)
    email = _text(data.get("email"), "email", MAX_EMAIL_CHARS, client_id)
    if name is not None:
        name = " ".join(name.split()) or None
    if email is not None:
        email = email.strip() or None
        if email is not None and not EMAIL.fullmatch(email):
            raise FrameError("invalid_email", "email is not an address", client_id)
    # Only a hint: one that is not a short string is dropped rather than the message refused.
    hint = data.get("language")
    language = hint if isinstance(hint, str) and len(hint) <= MAX_LANGUAGE_CHARS else None
    return ChatMessage(client_id=client_id, text=text, name=name, email=email, language=language)


def _text(value: object, field: str, limit: int, client_id: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FrameError("invalid_frame", f"{field} must be a string", client_id)
    if len(value) > limit:
        raise FrameError("too_long", f"{field} is longer than {limit} characters", client_id)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\ud800" escapes
        raise FrameError("invalid_frame", f"{field} is not valid Unicode", client_id) from None
    return _CONTROLS.sub("", value)


class TokenBucket:
    """``burst`` frames at once, refilled at ``rate`` per second (an injectable clock)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """0 when a frame may pass now, else the seconds until one may."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate
