"""``GET /v1/surveys/{token}?score=N``: the links of an email CSAT survey.

The token (:class:`libs.contracts.surveys.SurveyLinks`) names the survey; a valid click publishes
``survey.answered`` under the survey's answer id through the acceptor (so a second click, or
the SMS path, adds nothing) and answers a small thank-you page only once Kafka has the event.
Refusals are pages too, since a person clicked: 403 for a link we did not sign, 410 for one
whose answer window is over, 400 for a score outside the survey's scale (CSAT 1-5, NPS
0-10), 404 when ``SURVEY_LINK_KEY`` is not set (no link of ours can exist), 503 (retry) when
Kafka or Redis is away. A ``HEAD`` (link
checkers) is checked but records nothing.

Mail scanners that follow every link of a message would answer for the customer; the first
click wins, so such a scanner's choice would stick. Deployments behind such scanners should
know this (the README says so).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from typing import Final

from aiohttp import hdrs, web
from redis.exceptions import RedisError

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.events import Event, SurveyAnswered
from libs.common.logs import get_logger
from libs.common.service import CLOCK, SETTINGS
from libs.contracts.surveys import (
    LINK_PATH,
    SCORES,
    ExpiredLink,
    InvalidLink,
    SurveyLinks,
    answer_id,
)
from services.ingest.accept import Acceptance, Acceptor, Unavailable

log = get_logger(__name__)
PATH: Final = LINK_PATH + "/{token}"
SOURCE: Final = "/ingest/surveys"
HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def page(title: str, text: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(
        text=body, status=status, content_type="text/html", headers={**HEADERS, **(headers or {})}
    )


class SurveyLinkEndpoint:
    def __init__(self, *, links: SurveyLinks | None, acceptor: Acceptor, clock: Clock) -> None:
        self._links = links
        self._acceptor = acceptor
        self._clock = clock

    async def __call__(self, request: web.Request) -> web.Response:
        if self._links is None:
            return _refuse("Not found", "Survey links are not configured here.", 404, "off")
        now = self._clock()
        try:
            ticket = self._links.verify(request.match_info["token"], now=now)
        except ExpiredLink:
            return _refuse("Survey closed", "This survey link has expired.", 410, "expired")
        except InvalidLink:
            return _refuse("Invalid link", "This survey link is not valid.", 403, "invalid")
        raw = request.query.get("score", "")
        scale = SCORES[ticket.kind]
        if raw not in {str(score) for score in scale}:
            text = f"Choose a score from {scale[0]} to {scale[-1]}."
            return _refuse("Invalid score", text, 400, "bad score")
        if request.method == hdrs.METH_HEAD:  # a link checker's probe is not an answer
            return page("Survey", "Open this link to record your rating.", 200)
        answer = SurveyAnswered(
            conversation_id=ticket.conversation_id,
            channel="email",
            score=int(raw),
            kind=ticket.kind,
            command_id=ticket.command_id,
            answered_at=now,
            thread_key=ticket.thread_key,
        )
        event = Event(
            id=answer_id(ticket.command_id),
            source=SOURCE,
            subject=ticket.thread_key,
            time=answer.answered_at,
            data=answer,
        )
        try:
            outcome = await self._acceptor.publish_once(event, "email")
        except (Unavailable, RedisError) as exc:
            log.warning("survey answer not recorded; the customer may retry", error=str(exc))
            return _busy()
        if outcome is Acceptance.IN_PROGRESS:
            return _busy()
        return page("Thank you", "Your rating has been recorded.", 200)


def _refuse(title: str, text: str, status: int, reason: str) -> web.Response:
    metrics.webhook_rejections.labels("survey", reason).inc()
    return page(title, text, status)


def _busy() -> web.Response:
    return page(
        "Please try again", "We could not record your rating just now.", 503, {"Retry-After": "5"}
    )


SURVEY_LINKS = web.AppKey("survey_links", SurveyLinkEndpoint)


def install(app: web.Application, acceptor: web.AppKey[Acceptor]) -> None:
    """The answer links of email surveys (all refused while ``SURVEY_LINK_KEY`` is unset);
    ``acceptor`` is set by an earlier cleanup context."""
    app.cleanup_ctx.append(_links_ctx(acceptor))
    app.router.add_get(PATH, _answer)


def _links_ctx(
    acceptor: web.AppKey[Acceptor],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        key = app[SETTINGS].survey_link_key
        app[SURVEY_LINKS] = SurveyLinkEndpoint(
            links=SurveyLinks(key) if key else None, acceptor=app[acceptor], clock=app[CLOCK]
        )
        yield

    return ctx


async def _answer(request: web.Request) -> web.Response:
    return await request.app[SURVEY_LINKS](request)
