"""Chat session tokens: which visitor a websocket speaks for, signed so nobody can pick one.

A token is a JWT (HS256, ``CHAT_SESSION_KEY``) with the visitor id as ``sub``, ``iat``,
``exp`` and the audience ``switchboard-chat``. Tokens are stateless, so every ingest replica
verifies every visitor's token. A visitor who presents a still-valid token gets a fresh one
for the same visitor (sliding expiry: the conversation survives as long as the visitor keeps
coming back within the lifetime); anyone else becomes a new visitor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from libs.common.clock import Clock, system_clock
from libs.common.signed_tokens import SignedTokens, TokenInvalid
from libs.contracts.chat_mailbox import VISITOR_ID

AUDIENCE: Final = "switchboard-chat"
MAX_TOKEN_CHARS: Final = 1024


class InvalidSession(Exception):
    """The token is missing, malformed, forged, expired or names no visitor."""


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    visitor_id: str
    expires_at: datetime

    def as_json(self) -> dict[str, str]:
        return {
            "token": self.token,
            "visitor_id": self.visitor_id,
            "expires_at": self.expires_at.isoformat(),
        }


class SessionTokens:
    def __init__(self, key: str, ttl: float, clock: Clock = system_clock) -> None:
        self._tokens = SignedTokens(key, audience=AUDIENCE, max_chars=MAX_TOKEN_CHARS)
        self._ttl = timedelta(seconds=int(ttl))
        self._clock = clock

    def issue(self, visitor_id: str | None = None) -> Session:
        """A token for ``visitor_id``, or for a new visitor."""
        visitor_id = visitor_id or uuid.uuid4().hex
        now = self._clock().replace(microsecond=0)
        expires = now + self._ttl
        token = self._tokens.sign(
            {"sub": visitor_id, "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
        )
        return Session(token, visitor_id, expires)

    def verify(self, token: str | None) -> str:
        """The visitor id of a valid token, or :class:`InvalidSession`."""
        try:
            claims = self._tokens.verify(token, now=self._clock(), require=["sub", "iat"])
        except TokenInvalid as exc:
            raise InvalidSession(str(exc)) from None
        visitor_id = claims.get("sub")
        if not isinstance(visitor_id, str) or not VISITOR_ID.fullmatch(visitor_id):
            raise InvalidSession("token names no visitor")
        return visitor_id
