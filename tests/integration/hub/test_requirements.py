"""Skills and languages: a conversation that requires them is offered only to an agent who
holds them, until the queue's relaxation ladder (sms-desk in spine.yaml: after 2 min drop the
skills, after 5 min the language) or a first-response warning asks less. Time moves through
the hub's clock, never by waiting."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from libs.common.clock import system_clock
from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP as GROUP
from libs.common.events import Requirements
from libs.contracts.agent_access import WS_PATH
from services.hub.sessions import Limits
from tests.integration.hub.conftest import QUEUE, Hub, MakeHub, ManualClock
from tests.support.deadline import patience
from tests.support.kafka import wait_until_async
from tooling.hubclient import ActionFailed, HubClient

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

SPANISH_PAYMENTS = Requirements(skills=("payments",), language="es")
QUIET = {"hub_offer_seconds": 600.0, "hub_presence_grace": 3600.0}
"""Offers and presence leases that outlast every move of the test's clock."""


def supervisor(hub: Hub) -> HubClient:
    token = hub.tokens.issue("sam", [QUEUE], role="supervisor")
    return HubClient(hub.url + WS_PATH, token, session=hub.http)


async def unmet_step(client: HubClient, conversation_id: str, step: int) -> dict[str, Any]:
    """The supervisor's figures once they list the conversation as unmet at ``step``."""
    found: dict[str, Any] = {}

    async def listed() -> bool:
        nonlocal found
        [queue] = (await client.figures())["queues"]
        found = next((u for u in queue["unmet"] if u["conversation_id"] == conversation_id), {})
        return found.get("ladder_step") == step

    await wait_until_async(listed, message=f"the conversation unmet at step {step}")
    return found


async def test_a_spanish_message_is_offered_only_to_the_spanish_speaker(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(**QUIET)
    async with (
        hub.client(QUEUE, agent="ada", languages=("en",)) as ada,
        hub.client(QUEUE, agent="bo", languages=("es",)) as bo,
    ):
        for client in (ada, bo):
            await client.presence("online", {"sms": 5})
        for _ in range(3):  # round robin alone would give ada some of them
            spanish = await hub.open_conversation(
                text="mi paquete no ha llegado", requires=Requirements(language="es")
            )
            offer = await bo.next_of("offer", timeout=patience(20))
            assert offer["conversation"]["conversation_id"] == spanish.conversation_id
            assert offer["conversation"]["requires"] == {"skills": [], "language": "es"}
        english = await hub.open_conversation(requires=Requirements(language="en"))
        offer = await ada.next_of("offer", timeout=patience(20))
        assert offer["conversation"]["conversation_id"] == english.conversation_id
        held: Any = await hub.redis.hkeys(hub.keys.hub_assigned(GROUP, "ada"))
        assert [h.decode() for h in held] == [english.conversation_id]


async def test_with_only_a_non_matching_agent_the_offer_waits_for_the_ladder(
    make_hub: MakeHub,
) -> None:
    start = system_clock()
    clock = ManualClock(start)
    hub = await make_hub(clock=clock, **QUIET)
    async with hub.client(QUEUE, languages=("en",)) as ada, supervisor(hub) as sam:
        await ada.presence("online", {"sms": 5})
        waiting = await hub.open_conversation(
            text="me habéis cobrado dos veces", requires=SPANISH_PAYMENTS, at=start
        )
        shown = await unmet_step(sam, waiting.conversation_id, 0)
        assert shown["requires"] == {"skills": ["payments"], "language": "es"}

        clock.advance(timedelta(minutes=2, seconds=10))  # step 1: skills dropped, still Spanish
        await ada.presence("online", {"sms": 5})  # a change: the queue's pass runs now
        await unmet_step(sam, waiting.conversation_id, 1)

        clock.advance(timedelta(minutes=2, seconds=40))  # 4m50s: not yet
        sentinel = await hub.open_conversation(text="where is my parcel")
        first = await ada.next_of("offer", timeout=patience(20))
        # The pass that offered the sentinel (at 4m50s, with room for more) left the other.
        assert first["conversation"]["conversation_id"] == sentinel.conversation_id
        left: Any = await hub.redis.zrange(hub.keys.hub_waiting(GROUP, QUEUE), 0, -1)
        assert [m.decode() for m in left] == [waiting.conversation_id]

        clock.advance(timedelta(seconds=20))  # 5m10s: step 2, anyone in the queue
        await ada.presence("online", {"sms": 5})
        relaxed = await ada.next_of("offer", timeout=patience(20))
        assert relaxed["conversation"]["conversation_id"] == waiting.conversation_id
        assert relaxed["conversation"]["ladder_step"] == 2

        page = await ada.transcript(waiting.conversation_id)
        steps = [e for e in page["entries"] if e["kind"] == "assignment"]
        assert [(e["step"], e["text"]) for e in steps] == [
            (1, "waited 2m without an offer: ladder step 1 drops skills, keeps language"),
            (
                2,
                "waited 5m without an offer: ladder step 2 drops language and skills: anyone"
                " in the queue",
            ),
        ]
        [inbound] = [e for e in page["entries"] if e["kind"] == "inbound"]
        assert inbound["routing"]["requires"] == {"skills": ["payments"], "language": "es"}


async def test_each_ladder_step_is_an_event_of_the_queue_and_pushes_the_figures(
    make_hub: MakeHub,
) -> None:
    """Supervisors hear of a step as it is taken: a ``relaxed`` event, then figures pushed
    (only entries push them here: the periodic re-read is an hour away). A step told again
    (a pass that failed after taking it) appends nothing more."""
    start = system_clock()
    clock = ManualClock(start)
    hub = await make_hub(clock=clock, limits=Limits(figures_every=3600.0), **QUIET)
    async with hub.client(QUEUE, languages=("en",)) as ada, supervisor(hub) as sam:
        await sam.subscribe([QUEUE])
        await ada.presence("online", {"sms": 5})
        waiting = await hub.open_conversation(requires=SPANISH_PAYMENTS, at=start)
        await next_event(sam, "routed")

        clock.advance(timedelta(minutes=2, seconds=10))
        await ada.presence("online", {"sms": 5})  # a change: the queue's pass runs now
        event = await next_event(sam, "relaxed")
        assert (event["conversation_id"], event["event_type"]) == (
            waiting.conversation_id,
            "hub.relaxed",
        )
        assert event["data"] == {
            "step": 1,
            "dropped": ["skills"],
            "text": "waited 2m without an offer: ladder step 1 drops skills, keeps language",
        }
        at_ms = int(clock().timestamp() * 1000)  # when the pass took the step
        assert round(datetime.fromisoformat(event["time"]).timestamp() * 1000) == at_ms
        assert not await hub.redis.hkeys(hub.keys.hub_assigned(GROUP, "ada"))  # not offered yet

        async def step_pushed() -> bool:
            pushed = await sam.next_of("figures", timeout=patience(20))
            assert pushed["id"] is None  # pushed, not asked for
            [queue] = pushed["queues"]
            unmet = [(u["conversation_id"], u["ladder_step"]) for u in queue["unmet"]]
            return unmet == [(waiting.conversation_id, 1)]

        while not await step_pushed():  # a push the routed event caused may predate the step
            pass

        untold = hub.keys.hub_relaxed(GROUP, QUEUE)
        await hub.redis.hset(untold, f"{waiting.conversation_id} 1", at_ms)
        await ada.presence("online", {"sms": 5})

        async def told_again() -> bool:
            return not await hub.redis.exists(untold)

        await wait_until_async(told_again, message="the step told again")
        relaxed = [e for e in await stream_events(hub) if e["kind"] == "relaxed"]
        assert [e["event_id"] for e in relaxed] == [event["event_id"]]


async def next_event(client: HubClient, kind: str) -> dict[str, Any]:
    while (frame := await client.next_of("event", timeout=patience(20)))["kind"] != kind:
        pass
    return frame


async def stream_events(hub: Hub) -> list[dict[str, Any]]:
    rows: Any = await hub.redis.xrange(hub.keys.hub_stream(QUEUE))
    return [json.loads(fields[b"e"]) for _, fields in rows]


async def test_a_first_response_warning_offers_to_anyone_online(make_hub: MakeHub) -> None:
    hub = await make_hub(**QUIET)
    async with hub.client(QUEUE, languages=("en",)) as ada, supervisor(hub) as sam:
        await ada.presence("online", {"sms": 5})
        waiting = await hub.open_conversation(requires=SPANISH_PAYMENTS)
        await unmet_step(sam, waiting.conversation_id, 0)
        await hub.sla(waiting, "warning", minutes=1)
        offer = await ada.next_of("offer", timeout=patience(20))
        assert offer["conversation"]["conversation_id"] == waiting.conversation_id
        assert offer["conversation"]["ladder_step"] == 3
        page = await ada.transcript(waiting.conversation_id)
        [step] = [e for e in page["entries"] if e["kind"] == "assignment"]
        assert step["text"] == "first-response clock warned: offered to anyone online in the queue"


async def test_presence_narrows_what_the_token_grants_and_no_further(make_hub: MakeHub) -> None:
    hub = await make_hub(**QUIET)
    granted = hub.client(QUEUE, skills=("payments",), languages=("en", "es"))
    async with granted as ada, supervisor(hub) as sam:
        with pytest.raises(ActionFailed) as refused:
            await ada.presence("online", {"sms": 1}, languages=["fr"])
        assert refused.value.code == "forbidden"
        answer = await ada.presence("online", {"sms": 1}, languages=["en"])
        assert (answer["type"], answer["status"]) == ("presence", "online")
        agent: Any = await hub.redis.hmget(
            hub.keys.hub_agent(GROUP, "ada"), ["skills", "languages"]
        )
        assert [v.decode() for v in agent] == ["payments", "en"]
        spanish = await hub.open_conversation(requires=Requirements(language="es"))
        english = await hub.open_conversation(requires=Requirements(language="en"))
        offer = await ada.next_of("offer", timeout=patience(20))
        assert offer["conversation"]["conversation_id"] == english.conversation_id
        await unmet_step(sam, spanish.conversation_id, 0)  # nobody online speaks Spanish now
        held: Any = await hub.redis.hkeys(hub.keys.hub_assigned(GROUP, "ada"))
        assert [h.decode() for h in held] == [english.conversation_id]


async def test_conversations_nobody_can_take_do_not_hold_back_the_ones_behind(
    make_hub: MakeHub,
) -> None:
    """A pass considers 100 conversations; more than that nobody online speaks come first."""
    hub = await make_hub(**QUIET)
    async with hub.client(QUEUE, languages=("en",)) as ada:
        await ada.presence("online", {"sms": 5})
        ahead = await asyncio.gather(
            *(hub.open_conversation(requires=Requirements(language="es")) for _ in range(101))
        )

        async def all_waiting() -> bool:
            return await hub.redis.zcard(hub.keys.hub_waiting(GROUP, QUEUE)) == len(ahead)

        await wait_until_async(all_waiting, message="the Spanish conversations waiting")
        last = "f" * 32  # after every other id among conversations with no running clock
        english = await hub.open_conversation(conversation_id=last)
        offer = await ada.next_of("offer", timeout=patience(20))
        assert offer["conversation"]["conversation_id"] == english.conversation_id
