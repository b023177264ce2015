"""Placing a message and identifying its customer are sequences of single-slot Redis steps
(issue 22): a crash after any step, then the message's redelivery, ends in the same Redis state
and the same routed events as one uninterrupted run.

Each scenario routes its earlier messages, then the message under test once without a crash
(counting the Redis calls it makes), then, for every call k, again from the same earlier state
with a crash injected before call k (a script, a batched command or a command of its own),
followed by the redelivery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from libs.common.config import LiveConfig
from libs.common.events import (
    AgentAction,
    Channel,
    ConversationRouted,
    CustomerIdentity,
    Event,
    EventData,
    MessageReceived,
)
from libs.common.kafka.consumer import Consumed
from libs.common.keys import Keys
from libs.common.redis_client import as_text
from services.router.route import Router
from services.router.runtime import RouterRuntime
from tests.support.crashes import CallCounter, CountedScripts, Crash
from tests.support.harness import Isolation

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

CONFIG = Path(__file__).parents[1] / "fixtures" / "config" / "routing.yaml"
OPEN = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
PHONE = "+14155550103"
SMS_THREAD = f"sms:+15005550006:{PHONE}"


@dataclass
class Run:
    """One router on its own key prefix, whose Redis calls ``counter`` sees."""

    router: Router
    keys: Keys
    counter: CallCounter = field(default_factory=CallCounter)


def message(
    channel: Channel, thread: str, customer: CustomerIdentity, at: datetime
) -> MessageReceived:
    return MessageReceived(
        channel=channel,
        provider="test",
        provider_message_id=f"{thread}@{at.isoformat()}",
        thread_key=thread,
        customer=customer,
        text="charged twice for my order",
        received_at=at,
    )


def sms(at: datetime) -> MessageReceived:
    return message("sms", SMS_THREAD, CustomerIdentity(phone=PHONE), at)


def consumed(data: EventData, event_id: str, subject: str) -> Consumed:
    event = Event(id=event_id, source="/test", subject=subject, time=OPEN, data=data)
    return Consumed(event=event, topic="t", partition=0, offset=0, key=subject)


async def deliver(router: Router, event_id: str, data: MessageReceived) -> list[Event]:
    return [o.event for o in await router.handle(consumed(data, event_id, data.thread_key))]


async def resolve(router: Router, outputs: list[Event], at: datetime) -> None:
    [placed] = [e.data for e in outputs if isinstance(e.data, ConversationRouted)]
    action = AgentAction(
        action_id=f"resolve-{at.isoformat()}",
        kind="resolve",
        conversation_id=placed.conversation_id,
        agent="a",
        at=at,
    )
    await router.handle(consumed(action, f"action-{at.isoformat()}", placed.thread_key))


async def an_sms_two_hours_ago(router: Router) -> list[Event]:
    return await deliver(router, "earlier-sms", sms(OPEN - timedelta(hours=2)))


async def two_profiles(router: Router) -> None:
    """Pat wrote by email, then by SMS: two profiles, each with an open conversation."""
    email = message(
        "email", "email:e1", CustomerIdentity(email="Pat@Example.com"), OPEN - timedelta(hours=3)
    )
    await deliver(router, "earlier-email", email)
    await an_sms_two_hours_ago(router)


async def resolved_now(router: Router) -> None:
    await resolve(router, await an_sms_two_hours_ago(router), OPEN)


async def resolved_long_ago(router: Router) -> None:
    outputs = await deliver(router, "earlier-sms", sms(OPEN - timedelta(days=30)))
    await resolve(router, outputs, OPEN - timedelta(days=29))


@dataclass(frozen=True)
class Scenario:
    """Earlier messages, then the message under test (its event id and content)."""

    earlier: Callable[[Router], Awaitable[Any]]
    event_id: str
    last: MessageReceived


SCENARIOS = {
    # a chat naming the email of one profile and the phone of the other: the two merge
    "merge": Scenario(
        two_profiles,
        "the-chat",
        message(
            "chat",
            "chat:s1",
            CustomerIdentity(display_name="Pat", email="pat@example.com", phone=PHONE),
            OPEN,
        ),
    ),
    "follow-up": Scenario(an_sms_two_hours_ago, "the-sms", sms(OPEN)),
    "reopen": Scenario(resolved_now, "the-sms", sms(OPEN + timedelta(minutes=5))),
    "new-after-the-window": Scenario(resolved_long_ago, "the-sms", sms(OPEN)),
}


async def stored(redis: Redis, keys: Keys) -> dict[str, Any]:
    """Every key under the run's prefix (prefix removed) with its value; TTLs aside."""
    state: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        key = as_text(raw)
        kind = as_text(await redis.type(key))
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = await redis.smembers(key)
        else:
            raise AssertionError(f"{key}: a {kind} the router does not write")
        state[key.removeprefix(keys.prefix)] = value
    return state


@pytest.mark.parametrize("name", SCENARIOS)
async def test_a_crash_after_any_step_and_the_redelivery_end_as_one_run(
    name: str, redis: Redis, isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = SCENARIOS[name]
    live = LiveConfig(CONFIG, RouterRuntime.build)
    counter = CallCounter()
    execute_command: Callable[..., Awaitable[Any]] = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        counter.step()
        return await execute_command(*args, **options)

    monkeypatch.setattr(redis, "execute_command", counted)

    async def run(crash_at: int | None) -> tuple[list[Event], dict[str, Any], int]:
        """The scenario on a fresh prefix; with ``crash_at``, its last message crashes before
        that call (counted from the start of the message) and is delivered again."""
        keys = Keys(f"{isolation.key_prefix}{crash_at}:")
        router = Router.on_redis(
            redis,
            keys,
            live=live,
            topics=isolation.topics,
            scripts=CountedScripts(redis, counter),
        )
        await scenario.earlier(router)
        counter.calls, counter.crash_at = 0, crash_at
        if crash_at is not None:
            with pytest.raises(Crash):
                await deliver(router, scenario.event_id, scenario.last)
        outputs = await deliver(router, scenario.event_id, scenario.last)
        calls = counter.calls
        return outputs, await stored(redis, keys), calls

    outputs, state, calls = await run(None)
    assert calls >= 4  # the steps are there to crash between
    for crash_at in range(calls):
        again, state_again, _ = await run(crash_at)
        assert again == outputs, f"crash before call {crash_at}"
        assert state_again == state, f"crash before call {crash_at}"
