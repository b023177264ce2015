"""The simulator's customers recognise the sample configuration's surveys, as outbound renders
them, and nothing else: the scale of every CSAT and NPS text, the score links of an email."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.config import load_config
from services.outbound.templates import Templates
from tooling.simulate.surveys import LINK, scale_of

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
