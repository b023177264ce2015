"""A supervisor's figures: per queue, what waits now and how today went, computed from what
the fan-out sees (routed conversations, SLA events, survey answers); agents get ``forbidden``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from libs.common.clock import system_clock
from libs.common.events import SurveyAnswered
from libs.contracts.agent_access import WS_PATH
from services.hub.figures import Figures
from services.hub.sessions import Limits
from tests.integration.hub.conftest import QUEUE, Hub, MakeHub, ManualClock
from tests.support.deadline import patience
from tests.support.kafka import wait_until_async
from tests.support.metrics import scraped_values
from tooling.hubclient import ActionFailed, HubClient


def supervisor(hub: Hub) -> HubClient:
    token = hub.tokens.issue("sam", [QUEUE], role="supervisor")
    return HubClient(hub.url + WS_PATH, token, session=hub.http)


async def figures_when(client: HubClient, ready: Any) -> dict[str, Any]:
    """The queue's figures once ``ready(figures)`` holds (the fan-out counts as it reads)."""
    found: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal found
        [found] = (await client.figures())["queues"]
        return bool(ready(found))

    await wait_until_async(check, message="the figures")
    return found


async def test_now_reads_the_same_figures_as_whole_summaries_give(hub: Hub) -> None:
    """What waits is counted from a few fields of each conversation, not whole summaries
    (the gauges ask every five seconds); the counts are those the summaries give."""
    hour_ago = system_clock().replace(microsecond=0) - timedelta(hours=1)
    oldest = await hub.open_conversation(at=hour_ago)
    warned = await hub.open_conversation(at=hour_ago + timedelta(minutes=20))
    taken = await hub.open_conversation(at=hour_ago + timedelta(minutes=40))
    await hub.sla(warned, "warning")
    await hub.redis.hset(  # as an accepted offer leaves it
        hub.keys.hub_conversation("default", taken.conversation_id), "assignee", "ada"
    )
    conversations = hub.conversations()
    figures = Figures(hub.redis, hub.keys, conversations)
    at = hour_ago + timedelta(hours=2)

    async def counted() -> bool:
        found = await figures.now(QUEUE, at)
        return bool(found["open"] == 3 and found["at_risk"] == 1)

    await wait_until_async(counted, message="the fan-out to record the three and the warning")
    found = await figures.now(QUEUE, at)
    summaries = await conversations.snapshot(QUEUE, 100)
    waiting = [c for c in summaries if not c["assignee"]]
    assert {c["conversation_id"] for c in waiting} == {
        oldest.conversation_id,
        warned.conversation_id,
    }
    assert found["waiting"] == len(waiting) == 2
    assert found["oldest_wait_seconds"] == (at - hour_ago).total_seconds() == 7200.0
    assert found["at_risk"] == sum("warning" in c["clocks"].values() for c in summaries) == 1


async def day_hub(make_hub: MakeHub, **more: Any) -> tuple[Hub, datetime]:
    """A hub whose clock stands at the real now: what the test stamps with that instant and
    what the hub reads as today stay on one day, even if the real day ends meanwhile."""
    clock = ManualClock(system_clock())
    return await make_hub(clock=clock, **more), clock.at


async def test_figures_follow_waiting_met_breached_and_answers(make_hub: MakeHub) -> None:
    hub, at = await day_hub(make_hub)
    answered = await hub.open_conversation(at=at)
    late = await hub.open_conversation(at=at)
    started = await hub.sla(answered, "started", at=at)
    await hub.sla(late, "warning", at=at)
    async with supervisor(hub) as client:
        now = await figures_when(client, lambda f: f["open"] == 2 and f["at_risk"] == 1)
        assert now["queue"] == QUEUE
        assert now["waiting"] == 2
        assert now["oldest_wait_seconds"] >= 0
        assert now["attainment"]["first_response"] == {"met": 0, "breached": 0, "ratio": None}

        met = msgspec.structs.replace(started, kind="met", remaining_seconds=120.0)
        await hub.publish(hub.isolation.topics.sla_events, answered.thread_key, met, at=at)
        await hub.sla(late, "breached", at=at)
        today = await figures_when(
            client, lambda f: f["breached_today"] == 1 and f["attainment"]["first_response"]["met"]
        )
        assert today["attainment"]["first_response"] == {"met": 1, "breached": 1, "ratio": 0.5}
        [sms] = today["response_times"]["first_response"].values()
        assert sms["count"] == 1
        assert sms["p50"] == sms["p90"] >= 0
        assert today["at_risk"] == 0  # the warned clock has breached since

        answer = SurveyAnswered(
            conversation_id=answered.conversation_id,
            channel="sms",
            score=10,
            kind="nps",
            command_id="survey-1",
            answered_at=started.started_at,
            thread_key=answered.thread_key,
        )
        await hub.publish(hub.isolation.topics.inbound, answered.thread_key, answer, at=at)
        scored = await figures_when(client, lambda f: f["nps"]["answers"] == 1)
        assert scored["nps"] == {
            "answers": 1,
            "promoters": 1,
            "passives": 0,
            "detractors": 0,
            "score": 100,
        }


async def test_an_agent_token_gets_forbidden(hub: Hub) -> None:
    async with hub.client(QUEUE) as client:
        with pytest.raises(ActionFailed) as refused:
            await client.figures()
    assert refused.value.code == "forbidden"


async def pushed_when(client: HubClient, ready: Any) -> dict[str, Any]:
    """The queue's figures from the first frame the hub pushed (no ``id``) for which
    ``ready(figures)`` holds; the client never asks."""
    while True:
        frame = await client.next_of("figures", timeout=patience(30.0))
        assert frame["id"] is None, "only pushed figures arrive: this client asked for none"
        found: dict[str, Any] = frame["queues"][0]
        if ready(found):
            return found


async def test_figures_are_pushed_to_a_following_supervisor_as_they_change(
    make_hub: MakeHub,
) -> None:
    # The periodic read is out of the way: every push here follows entries of the queue.
    hub, at = await day_hub(make_hub, limits=Limits(figures_debounce=0.2, figures_every=3600.0))
    async with supervisor(hub) as client:
        await client.subscribe([QUEUE])
        waiting = await hub.open_conversation(at=at)
        now = await pushed_when(client, lambda f: f["waiting"] == 1)
        assert now["oldest_wait_seconds"] >= 0

        async with hub.client(QUEUE) as agent:
            await agent.act("claim", waiting.conversation_id)
        await pushed_when(client, lambda f: f["waiting"] == 0 and f["open"] == 1)

        answer = SurveyAnswered(
            conversation_id=waiting.conversation_id,
            channel="sms",
            score=3,
            kind="csat",
            command_id="survey-2",
            answered_at=waiting.received_at,
            thread_key=waiting.thread_key,
        )
        await hub.publish(hub.isolation.topics.inbound, waiting.thread_key, answer, at=at)
        scored = await pushed_when(client, lambda f: f["csat"]["answers"] == 1)
        assert scored["csat"] == {"answers": 1, "average": 3.0}


async def test_the_waiting_gauge_follows_a_conversation_that_waits_and_is_taken(hub: Hub) -> None:
    async def gauges_are(waiting: float, held: float) -> None:
        async def check() -> bool:
            found = await scraped_values(hub.http, hub.url, "switchboard_hub_conversations_waiting")
            taken = await scraped_values(hub.http, hub.url, "switchboard_hub_conversations_held")
            return found.get(QUEUE) == waiting and taken.get(QUEUE) == held

        await wait_until_async(check, message=f"{waiting} waiting and {held} held on /metrics")

    await gauges_are(waiting=0, held=0)  # this test's keys: nothing open yet
    routed = await hub.open_conversation()
    await gauges_are(waiting=1, held=0)
    oldest = await scraped_values(hub.http, hub.url, "switchboard_hub_oldest_wait_seconds")
    assert oldest[QUEUE] >= 0

    async with hub.client(QUEUE) as agent:
        await agent.act("claim", routed.conversation_id)
    await gauges_are(waiting=0, held=1)
    oldest = await scraped_values(hub.http, hub.url, "switchboard_hub_oldest_wait_seconds")
    assert oldest[QUEUE] == 0
