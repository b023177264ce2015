"""Chat session tokens: which visitor a websocket speaks for, signed so nobody can pick one.

A token is a JWT (HS256, ``CHAT_SESSION_KEY``) with the visitor id as ``sub``, ``iat``,
``exp`` and the audience ``switchboard-chat``. Tokens are stateless, so every ingest replica
verifies every visitor's token. A visitor who presents a still-valid token gets a fresh one
for the same visitor (sliding expiry: the conversation survives as long as the visitor keeps
coming back within the lifetime); anyone else becomes a new visitor.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import jwt

from libs.common.chat import VISITOR_ID

AUDIENCE: Final = "switchboard-chat"
ALGORITHM: Final = "HS256"
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
    def __init__(self, key: str, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ttl = ttl
        self._clock = clock

    def issue(self, visitor_id: str | None = None) -> Session:
        """A token for ``visitor_id``, or for a new visitor."""
        visitor_id = visitor_id or uuid.uuid4().hex
        now = int(self._clock())
        expires = now + int(self._ttl)
        token = jwt.encode(
            {"sub": visitor_id, "aud": AUDIENCE, "iat": now, "exp": expires},
            self._key,
            algorithm=ALGORITHM,
        )
        return Session(token, visitor_id, datetime.fromtimestamp(expires, UTC))

    def verify(self, token: str | None) -> str:
        """The visitor id of a valid token, or :class:`InvalidSession`."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidSession("missing or oversized token")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["sub", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidSession(type(exc).__name__) from None
        visitor_id = claims.get("sub")
        if not isinstance(visitor_id, str) or not VISITOR_ID.fullmatch(visitor_id):
            raise InvalidSession("token names no visitor")
        return visitor_id
