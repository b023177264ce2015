"""What agent tools share with the hub: where it listens and the tokens it accepts.

Agent tokens are HS256 JWTs naming the agent (``sub``), the queues it may work (``queues``)
and optionally its ``role``: ``agent`` (the default) or ``supervisor``, who may also read the
queues' figures, its ``skills`` and the ``languages`` it answers in (ISO 639-1): push
assignment offers a conversation that requires them only to agents holding them. Anyone
holding ``AGENT_TOKEN_KEY`` (an SSO bridge, a helpdesk backend, ``switchboard token``) mints
them; the hub only verifies. Expiry is checked against an injectable clock, on connect and
again when ``exp`` passes while the socket is open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from libs.common.clock import Clock, system_clock
from libs.common.events import LANGUAGE_CODE, SKILL_NAME
from libs.common.signed_tokens import SignedTokens, TokenExpired, TokenInvalid

WS_PATH: Final = "/v1/agents/ws"
"""The hub's websocket (protocol: docs/hub-protocol.md)."""
CONSOLE_PATH: Final = "/agent/"
"""The agent console the hub serves."""
MAX_TOKEN_CHARS: Final = 8192
AGENT_ID: Final = re.compile(r"[A-Za-z0-9_.@:+-]{1,128}")
QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_ATTRIBUTES: Final = 64
"""Skills, and languages, one token may name at most."""
Role = Literal["agent", "supervisor"]


class TokenRejected(Exception):
    """A token the hub refuses: ``expired`` (get a new one) or invalid (do not retry as is)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True, slots=True)
class AgentClaims:
    agent: str
    queues: frozenset[str]
    expires_at: float  # Unix seconds
    role: Role = "agent"
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()


class AgentTokens:
    def __init__(self, key: str, clock: Clock = system_clock) -> None:
        self._tokens = SignedTokens(key, audience=None, max_chars=MAX_TOKEN_CHARS)
        self._clock = clock

    def issue(
        self,
        agent: str,
        queues: Iterable[str],
        ttl: float = 8 * 3600.0,
        role: Role = "agent",
        *,
        skills: Iterable[str] = (),
        languages: Iterable[str] = (),
    ) -> str:
        """A token for ``agent`` on ``queues``, valid for ``ttl`` seconds (dev and tests)."""
        now = self._clock()
        expires = now + timedelta(seconds=ttl)
        return self._tokens.sign(
            {
                "sub": agent,
                "queues": sorted(queues),
                "role": role,
                "skills": sorted(set(skills)),
                "languages": sorted(set(languages)),
                "iat": int(now.timestamp()),
                "exp": expires.timestamp(),
            }
        )

    def verify(self, token: str | None) -> AgentClaims:
        """The claims of a valid token, or :class:`TokenRejected` with the close code."""
        try:
            claims = self._tokens.verify(token, now=self._clock(), require=["sub"])
        except TokenExpired:
            raise TokenRejected("token expired", expired=True) from None
        except TokenInvalid as exc:
            raise TokenRejected(str(exc)) from None
        agent, queues = claims.get("sub"), claims.get("queues")
        if not isinstance(agent, str) or not AGENT_ID.fullmatch(agent):
            raise TokenRejected("token names no valid agent")
        if not isinstance(queues, list) or not all(
            isinstance(q, str) and QUEUE_NAME.fullmatch(q) for q in queues
        ):
            raise TokenRejected("token has no valid queues claim")
        role = claims.get("role", "agent")
        if role not in ("agent", "supervisor"):
            raise TokenRejected("token has no valid role claim")
        return AgentClaims(
            agent=agent,
            queues=frozenset(queues),
            expires_at=float(claims["exp"]),
            role="supervisor" if role == "supervisor" else "agent",
            skills=_names(claims.get("skills", []), SKILL_NAME, "skills"),
            languages=_names(claims.get("languages", []), LANGUAGE_CODE, "languages"),
        )


def _names(value: object, pattern: re.Pattern[str], claim: str) -> frozenset[str]:
    """A claim that lists names of one shape (absent: none)."""
    if (
        not isinstance(value, list)
        or len(value) > MAX_ATTRIBUTES
        or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value)
    ):
        raise TokenRejected(f"token has no valid {claim} claim")
    return frozenset(value)
