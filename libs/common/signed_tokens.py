"""HS256 tokens (JWTs) whose expiry is judged by the caller's clock, not PyJWT's.

Agent tokens, chat session tokens and survey links are all signed claims with an expiry.
PyJWT checks the signature, the audience and the required claims here; ``exp`` is compared with
the ``now`` the caller passes (see :mod:`libs.common.clock`), so a token minted at a fixed test
time is judged at that time, and the hub judges an open socket's token by the same clock it
judged the connect by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import jwt

ALGORITHM: Final = "HS256"


class TokenInvalid(Exception):
    """Forged, tampered, truncated, oversized, of another audience, or missing a claim."""


class TokenExpired(TokenInvalid):
    """Genuine, but its ``exp`` has passed."""


class SignedTokens:
    """Signs and verifies one kind of token: one key, one audience, one size bound."""

    def __init__(self, key: str, *, audience: str | None, max_chars: int) -> None:
        self._key = key
        self._audience = audience
        self._max_chars = max_chars

    def sign(self, claims: Mapping[str, Any]) -> str:
        payload = dict(claims)
        if self._audience is not None:
            payload["aud"] = self._audience
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def verify(self, token: str | None, *, now: datetime, require: Sequence[str]) -> dict[str, Any]:
        """The claims of a valid token; :class:`TokenExpired` or :class:`TokenInvalid`."""
        if not token or len(token) > self._max_chars:
            raise TokenInvalid("missing or oversized token")
        required = ["exp", *require] + (["aud"] if self._audience is not None else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                options={
                    "require": required,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"invalid token ({type(exc).__name__})") from None
        expires = claims["exp"]
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise TokenInvalid("token has no valid exp")
        if expires <= now.timestamp():
            raise TokenExpired("token expired")
        return claims
