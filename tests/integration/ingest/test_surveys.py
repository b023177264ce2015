"""Survey answers into ingest, the whole app on the real broker and Redis: a bare score on an SMS
or chat thread with a pending survey, and a click on an email survey's link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from libs.common.events import Event, MessageReceived, SurveyAnswered, SurveyKind
from libs.contracts.surveys import (
    LinkTicket,
    PendingSurvey,
    PendingSurveys,
    SurveyLinks,
    parse_score,
)
from services.ingest.chat import SESSION_PATH, WS_PATH
from tests.integration.ingest.conftest import (
    PUBLIC_URL,
    Ingest,
    read_all,
)
from tests.integration.ingest.conftest import SURVEY_LINK_KEY as LINK_KEY
from tests.support.harness import AUTH_TOKEN, OUR_NUMBER, Isolation
from tests.support.webhooks import sign_twilio

CUSTOMER = "+14155550123"
SMS_THREAD = f"sms:{OUR_NUMBER}:{CUSTOMER}"
SURVEY = PendingSurvey("conv-1", "survey-command-1")


@pytest.fixture
def ingest(ingest_app: Ingest) -> Ingest:
    """The whole ingest app (conftest), survey links on."""
    return ingest_app


async def text_in(http: aiohttp.ClientSession, ingest: Ingest, sid: str, body: str) -> None:
    form = {"MessageSid": sid, "From": CUSTOMER, "To": OUR_NUMBER, "Body": body}
    headers = sign_twilio(f"{PUBLIC_URL}/v1/sms/twilio", form, AUTH_TOKEN)
    async with http.post(f"{ingest.url}/v1/sms/twilio", data=form, headers=headers) as response:
        assert response.status == 200, await response.text()


async def inbound(ingest: Ingest, isolation: Isolation) -> list[Event]:
    return await read_all(ingest.bootstrap, isolation.topics.inbound)


def answers(events: list[Event]) -> list[SurveyAnswered]:
    return [e.data for e in events if isinstance(e.data, SurveyAnswered)]


def messages(events: list[Event]) -> list[MessageReceived]:
    return [e.data for e in events if isinstance(e.data, MessageReceived)]


@pytest.mark.parametrize(
    ("text", "kind", "score"),
    [
        ("4", "csat", 4),
        (" 5!", "csat", 5),
        ("(1)", "csat", 1),
        ("3.", "csat", 3),
        ("0", "csat", None),
        ("9", "csat", None),
        ("45", "csat", None),
        ("4 stars", "csat", None),
        ("0", "nps", 0),
        ("9", "nps", 9),
        (" 10!", "nps", 10),
        ("11", "nps", None),
        ("7/10", "nps", None),
    ],
)
def test_only_a_bare_score_of_the_surveys_scale_is_an_answer(
    text: str, kind: SurveyKind, score: int | None
) -> None:
    assert parse_score(text, kind) == score


async def test_a_bare_score_on_an_sms_thread_with_a_pending_survey_is_its_answer(
    ingest: Ingest, isolation: Isolation, redis: Redis, http: aiohttp.ClientSession
) -> None:
    await PendingSurveys(redis, ingest.keys).record(SMS_THREAD, SURVEY, 3600)
    await text_in(http, ingest, "SM" + "a" * 32, " 4 ")
    await text_in(http, ingest, "SM" + "a" * 32, " 4 ")  # Twilio's retry of the same message
    await text_in(http, ingest, "SM" + "b" * 32, "5")  # a second answer: the first counts
    events = await inbound(ingest, isolation)
    assert messages(events) == []  # nothing for the router to route
    [answer] = answers(events)
    assert (answer.conversation_id, answer.command_id, answer.score) == (
        "conv-1",
        SURVEY.command_id,
        4,
    )
    assert (answer.channel, answer.thread_key) == ("sms", SMS_THREAD)
    [event] = events
    assert event.subject == SMS_THREAD  # keyed by the thread: the conversation's partition


async def test_a_bare_0_to_10_on_a_thread_with_a_pending_nps_survey_is_its_nps(
    ingest: Ingest, isolation: Isolation, redis: Redis, http: aiohttp.ClientSession
) -> None:
    pending = PendingSurveys(redis, ingest.keys)
    await pending.record(SMS_THREAD, PendingSurvey("conv-1", "nps-command-1", "nps"), 3600)
    assert await pending.get(SMS_THREAD) == PendingSurvey("conv-1", "nps-command-1", "nps")
    await text_in(http, ingest, "SM" + "e" * 32, "9")
    [answer] = answers(await inbound(ingest, isolation))
    assert (answer.kind, answer.score, answer.command_id) == ("nps", 9, "nps-command-1")


async def test_a_number_off_a_csat_surveys_scale_is_a_message(
    ingest: Ingest, isolation: Isolation, redis: Redis, http: aiohttp.ClientSession
) -> None:
    await PendingSurveys(redis, ingest.keys).record(SMS_THREAD, SURVEY, 3600)
    await text_in(http, ingest, "SM" + "f" * 32, "9")
    events = await inbound(ingest, isolation)
    assert answers(events) == []
    assert [m.text for m in messages(events)] == ["9"]


async def test_other_text_on_a_surveyed_thread_is_a_message(
    ingest: Ingest, isolation: Isolation, redis: Redis, http: aiohttp.ClientSession
) -> None:
    await PendingSurveys(redis, ingest.keys).record(SMS_THREAD, SURVEY, 3600)
    await text_in(http, ingest, "SM" + "c" * 32, "4 stars please call me")
    events = await inbound(ingest, isolation)
    assert answers(events) == []
    assert [m.text for m in messages(events)] == ["4 stars please call me"]


async def test_a_score_without_a_pending_survey_is_a_message(
    ingest: Ingest, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    await text_in(http, ingest, "SM" + "d" * 32, "4")
    events = await inbound(ingest, isolation)
    assert [m.text for m in messages(events)] == ["4"]
    assert answers(events) == []


async def test_a_bare_score_over_chat_is_the_answer(
    ingest: Ingest, isolation: Isolation, redis: Redis, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{ingest.url}{SESSION_PATH}") as response:
        session: dict[str, str] = await response.json()
    thread = f"chat:{session['visitor_id']}"
    await PendingSurveys(redis, ingest.keys).record(thread, SURVEY, 3600)
    async with http.ws_connect(f"{ingest.url}{WS_PATH}", params={"token": session["token"]}) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        for client_id, text in (("c-1", "5"), ("c-2", "4"), ("c-3", "thanks a lot")):
            await ws.send_json({"type": "message", "client_id": client_id, "text": text})
            ack: dict[str, Any] = await ws.receive_json(timeout=10)
            assert (ack["type"], ack["client_id"]) == ("ack", client_id)
    events = await inbound(ingest, isolation)
    [answer] = answers(events)
    assert (answer.score, answer.channel, answer.thread_key) == (5, "chat", thread)
    assert [m.text for m in messages(events)] == ["thanks a lot"]


# --- email links --------------------------------------------------------------------------------


def link(ticket_expires: datetime, key: str = LINK_KEY, kind: SurveyKind = "csat") -> str:
    ticket = LinkTicket(
        "conv-2", "survey-command-2", "email:<root@customer.example>", ticket_expires, kind
    )
    return SurveyLinks(key).url("", ticket)


async def get(http: aiohttp.ClientSession, ingest: Ingest, path: str) -> tuple[int, str, str]:
    async with http.get(f"{ingest.url}{path}") as response:
        return response.status, response.content_type, await response.text()


async def test_a_survey_link_records_the_score_once(
    ingest: Ingest, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    path = link(datetime.now(UTC) + timedelta(days=1))
    status, content_type, body = await get(http, ingest, f"{path}?score=2")
    assert (status, content_type) == (200, "text/html")
    assert "Thank you" in body
    status, _, _ = await get(http, ingest, f"{path}?score=5")  # a second click changes nothing
    assert status == 200
    [answer] = answers(await inbound(ingest, isolation))
    assert (answer.conversation_id, answer.command_id, answer.score, answer.channel) == (
        "conv-2",
        "survey-command-2",
        2,
        "email",
    )


async def test_an_nps_survey_link_takes_0_to_10(
    ingest: Ingest, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    path = link(datetime.now(UTC) + timedelta(days=1), kind="nps")
    status, _, body = await get(http, ingest, f"{path}?score=11")
    assert (status, "0 to 10" in body) == (400, True)
    status, _, _ = await get(http, ingest, f"{path}?score=0")
    assert status == 200
    [answer] = answers(await inbound(ingest, isolation))
    assert (answer.kind, answer.score, answer.channel) == ("nps", 0, "email")


async def test_a_bad_survey_link_is_refused_and_publishes_nothing(
    ingest: Ingest, isolation: Isolation, http: aiohttp.ClientSession
) -> None:
    valid = link(datetime.now(UTC) + timedelta(days=1))
    head, _, signature = valid.rpartition(".")
    tampered = f"{head}.{signature[::-1]}"
    forged = link(datetime.now(UTC) + timedelta(days=1), key="another-key-0123456789abcdef012345")
    expired = link(datetime.now(UTC) - timedelta(seconds=5))
    refused = {
        "tampered": await get(http, ingest, f"{tampered}?score=4"),
        "forged": await get(http, ingest, f"{forged}?score=4"),
        "expired": await get(http, ingest, f"{expired}?score=4"),
        "no score": await get(http, ingest, valid),
        "score 6": await get(http, ingest, f"{valid}?score=6"),
        "score x": await get(http, ingest, f"{valid}?score=x"),
    }
    assert {name: status for name, (status, _, _) in refused.items()} == {
        "tampered": 403,
        "forged": 403,
        "expired": 410,
        "no score": 400,
        "score 6": 400,
        "score x": 400,
    }
    assert "expired" in refused["expired"][2]
    assert await inbound(ingest, isolation) == []
