"""The simulator's customers recognise the sample configuration's surveys, as outbound renders
them, and nothing else: the scale of every CSAT and NPS text, the score links of an email; an
email customer answers one survey of their thread."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from libs.common.config import load_config
from services.outbound.templates import Templates
from tests.conftest import ServeApp
from tests.support.kafka import wait_until
from tooling.simulate.customers import Customers, Endpoints
from tooling.simulate.surveys import LINK, SurveyPlan, SurveyTakers, scale_of

SAMPLE = Path(__file__).parents[2] / "config" / "store.yaml"
PARAMS = {"reference": "SB-7K3Q9", "survey_url": "http://127.0.0.1:8080/v1/surveys/eyJ.a-b_c.d"}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(load_config(SAMPLE))


@pytest.mark.parametrize(
    ("template", "channel", "scale"),
    [
        ("survey", "sms", (1, 5)),
        ("survey", "whatsapp", (1, 5)),
        ("survey", "chat", (1, 5)),
        ("nps-survey", "sms", (0, 10)),
        ("nps-survey", "whatsapp", (0, 10)),
        ("nps-survey", "chat", (0, 10)),
        ("status-update", "sms", None),
    ],
)
def test_a_survey_text_names_its_scale(
    templates: Templates, template: str, channel: str, scale: tuple[int, int] | None
) -> None:
    assert scale_of(templates.render(template, channel, "en", PARAMS)) == scale


@pytest.mark.parametrize(
    ("template", "scores"), [("survey", range(1, 6)), ("nps-survey", range(11))]
)
def test_an_email_survey_links_every_score(
    templates: Templates, template: str, scores: range
) -> None:
    text = templates.render(template, "email", "en", PARAMS)
    links = LINK.findall(text)
    assert [int(score) for _, score in links] == list(scores)
    assert {url for url, _ in links} == {PARAMS["survey_url"]}


async def test_an_email_customer_answers_one_survey_of_their_thread(serve_app: ServeApp) -> None:
    """The system keeps one score per conversation and kind: a customer who got a second
    survey (the conversation reopened and resolved again) answers only one, as on SMS."""
    clicks: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        clicks.append(request.match_info["token"])
        return web.Response(text="Thank you")

    app = web.Application()
    app.router.add_get("/v1/surveys/{token}", answer)
    base = await serve_app(app)
    mail = [survey_mail(base, "again@example.org", token) for token in ("first", "second")]
    mail.append(survey_mail(base, "other@example.org", "third"))
    endpoints = Endpoints(base, base, "token", "+15005550006", "support@example.org", 2525)
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        takers = SurveyTakers(
            Customers(endpoints, http, texts={"any": ["hello"]}),
            endpoints,
            http,
            SurveyPlan(answer_share=1.0, read_every=0.05),
            mail,
        )
        running = asyncio.create_task(takers.run(stop))
        await wait_until(lambda: takers.given.answers == 2, timeout=10, message="two answers")
        stop.set()
        await running
    assert sorted(clicks) == ["first", "third"]
    assert takers.given.surveys == {"email": 3}


def survey_mail(base: str, to: str, token: str) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message.set_content(
        "\n".join(f"{base}/v1/surveys/{token}?score={score}" for score in range(1, 6))
    )
    return message
