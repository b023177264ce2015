"""Surveys between outbound (which sends them) and ingest (which records the answers).

A survey is CSAT (a 1-5 score) or NPS (0-10), chosen per queue (``surveys.queues``). On SMS,
WhatsApp and chat (:data:`SCORE_REPLY_CHANNELS`) the survey asks for a bare number: outbound
records the thread's pending survey and its kind in ``survey:pending:{thread_key}`` for the
answer window, and ingest turns a reply whose whole text is a score of that kind into a
``survey.answered`` event instead of a message (so "9" answers an NPS survey, and is an
ordinary message after a CSAT one). By email the
survey carries links ``{SWITCHBOARD_PUBLIC_URL}/v1/surveys/{token}?score=N``; the token is a
JWT (HS256, ``SURVEY_LINK_KEY``) naming the conversation, the survey command, the thread, the
kind and an expiry, so ingest needs no state to check a click. Both ways the answer's event id
derives from the survey command (:func:`answer_id`): the first answer counts, a repeat is the
same event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from redis.asyncio import Redis

from libs.common.events import Channel, SurveyKind, event_id
from libs.common.keys import Keys
from libs.common.redis_client import as_text
from libs.common.signed_tokens import SignedTokens, TokenExpired, TokenInvalid

LINK_PATH: Final = "/v1/surveys"
AUDIENCE: Final = "switchboard-survey"
MAX_TOKEN_CHARS: Final = 2048
SCORES: Final[dict[SurveyKind, range]] = {"csat": range(1, 6), "nps": range(0, 11)}
"""The scores each kind of survey asks for."""
SCORE_REPLY_CHANNELS: Final[frozenset[Channel]] = frozenset({"sms", "whatsapp", "chat"})
"""Channels whose survey is answered by replying with a bare score."""
KIND_PARAM: Final = "survey_kind"
"""The ``survey`` command's param naming its kind (absent: CSAT)."""


def kind_of(params: dict[str, str]) -> SurveyKind:
    """The kind of survey a ``survey`` command's params ask for."""
    return "nps" if params.get(KIND_PARAM) == "nps" else "csat"


_BARE_NUMBER: Final = re.compile(r"[\W_]*([0-9]{1,2})[\W_]*")


def parse_score(text: str, kind: SurveyKind) -> int | None:
    """The score a reply is, when its whole text is one number of the kind's scale
    (``" 5!"``, ``"(4)"``; ``"10"`` for NPS)."""
    match = _BARE_NUMBER.fullmatch(text.strip())
    if match is None or int(match.group(1)) not in SCORES[kind]:
        return None
    return int(match.group(1))


def could_be_score(text: str) -> bool:
    """Whether a reply is a bare number, worth looking up the thread's pending survey for."""
    return _BARE_NUMBER.fullmatch(text.strip()) is not None


def answer_id(command_id: str) -> str:
    """The event id of the answer to a survey command: one per survey, however often sent."""
    return event_id(command_id, "survey-answer")


@dataclass(frozen=True, slots=True)
class PendingSurvey:
    conversation_id: str
    command_id: str
    kind: SurveyKind = "csat"


class PendingSurveys:
    """``survey:pending:{thread_key}``: outbound writes it when it sends, ingest reads it."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(self, thread_key: str, pending: PendingSurvey, ttl_seconds: int) -> None:
        await self._redis.set(
            self._keys.survey_pending(thread_key),
            f"{pending.conversation_id}|{pending.command_id}|{pending.kind}",
            ex=max(ttl_seconds, 1),
        )

    async def get(self, thread_key: str) -> PendingSurvey | None:
        raw = await self._redis.get(self._keys.survey_pending(thread_key))
        if raw is None:
            return None
        rest, _, last = as_text(raw).rpartition("|")
        if last not in SCORES:  # recorded before surveys had kinds: a CSAT survey
            return PendingSurvey(rest, last)
        conversation_id, _, command_id = rest.rpartition("|")
        return PendingSurvey(conversation_id, command_id, "nps" if last == "nps" else "csat")


class InvalidLink(Exception):
    """A survey link that was not issued by us (tampered, truncated, another key)."""


class ExpiredLink(InvalidLink):
    """A genuine survey link whose answer window is over."""


@dataclass(frozen=True, slots=True)
class LinkTicket:
    """What a survey link stands for."""

    conversation_id: str
    command_id: str
    thread_key: str
    expires_at: datetime
    kind: SurveyKind = "csat"


class SurveyLinks:
    """Signs and checks the tokens of email survey links (stateless: any replica checks any)."""

    def __init__(self, key: str) -> None:
        self._tokens = SignedTokens(key, audience=AUDIENCE, max_chars=MAX_TOKEN_CHARS)

    def token(self, ticket: LinkTicket) -> str:
        return self._tokens.sign(
            {
                "sub": ticket.command_id,
                "cid": ticket.conversation_id,
                "thr": ticket.thread_key,
                "knd": ticket.kind,
                "exp": int(ticket.expires_at.timestamp()),
            }
        )

    def url(self, public_url: str, ticket: LinkTicket) -> str:
        """The link without its ``?score=N`` (the template adds one per choice)."""
        return f"{public_url.rstrip('/')}{LINK_PATH}/{self.token(ticket)}"

    def verify(self, token: str, *, now: datetime) -> LinkTicket:
        """The ticket of a token valid at ``now``, :class:`ExpiredLink` or :class:`InvalidLink`."""
        try:
            claims = self._tokens.verify(token, now=now, require=["sub", "cid", "thr"])
        except TokenExpired:
            raise ExpiredLink("the survey link has expired") from None
        except TokenInvalid as exc:
            raise InvalidLink(str(exc)) from None
        fields = [claims.get(name) for name in ("cid", "sub", "thr")]
        if not all(isinstance(value, str) and value for value in fields):
            raise InvalidLink("token names no survey")
        conversation_id, command_id, thread_key = (str(value) for value in fields)
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        kind: SurveyKind = "nps" if claims.get("knd") == "nps" else "csat"
        return LinkTicket(conversation_id, command_id, thread_key, expires, kind)
