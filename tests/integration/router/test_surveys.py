"""The router and survey answers: a score is recorded on the conversation, never routed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import (
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    InvalidEvent,
    MessageReceived,
    SurveyAnswered,
    SurveyKind,
    event_id,
)
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from services.router.route import Router
from services.router.runtime import RouterRuntime
from tests.support.harness import Isolation

CONFIG = Path(__file__).parents[2] / "fixtures" / "config" / "routing.yaml"
AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
THREAD = "sms:+15005550006:+14155550177"


@pytest.fixture
def router(redis: Redis, isolation: Isolation) -> Router:
    return Router.on_redis(
        redis,
        Keys(isolation.key_prefix),
        live=LiveConfig(CONFIG, RouterRuntime.build),
        topics=isolation.topics,
    )


def consumed(data: EventData, name: str) -> Consumed:
    event = Event(id=event_id("test", name), source="/test", subject=THREAD, time=AT, data=data)
    return Consumed(event=event, topic="t", partition=0, offset=0, key=THREAD)


def answer(conversation_id: str, score: int, kind: SurveyKind = "csat") -> SurveyAnswered:
    return SurveyAnswered(
        conversation_id=conversation_id,
        channel="sms",
        score=score,
        kind=kind,
        command_id="survey-1",
        answered_at=AT,
        thread_key=THREAD,
    )


async def test_a_survey_answer_is_recorded_on_the_conversation_and_not_routed(
    router: Router, redis: Redis, isolation: Isolation
) -> None:
    message = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id="SM1",
        thread_key=THREAD,
        customer=CustomerIdentity(phone="+14155550177"),
        recipient="+15005550006",
        text="my card was declined",
        received_at=AT,
    )
    outputs = await router.handle(consumed(message, "message"))
    [routed] = [o.event.data for o in outputs if isinstance(o.event.data, ConversationRouted)]
    assert isinstance(routed, ConversationRouted)
    assert (routed.provider_message_id, routed.our_address) == ("SM1", "+15005550006")
    assert await router.handle(consumed(answer(routed.conversation_id, 4), "answer")) == []
    key = Keys(isolation.key_prefix).conversation(routed.conversation_id)
    assert await redis.hget(key, "csat") == b"4"
    nps = answer(routed.conversation_id, 9, "nps")
    assert await router.handle(consumed(nps, "nps answer")) == []
    assert await redis.hmget(key, ["csat", "nps"]) == [b"4", b"9"]


async def test_an_answer_for_no_known_conversation_is_invalid(
    router: Router, redis: Redis, isolation: Isolation
) -> None:
    with pytest.raises(InvalidEvent, match="no conversation"):
        await router.handle(consumed(answer("nobody", 5), "stray"))
    assert await redis.exists(Keys(isolation.key_prefix).conversation("nobody")) == 0
