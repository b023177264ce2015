"""Push assignment: offers respect capacity per channel, go to the most urgent conversation
first and round robin among equal agents, move on when they expire, come back to the queue
when an agent goes offline (clocks untouched), and are never made twice across replicas."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP as GROUP
from libs.common.events import AgentAction, ConversationRouted, Requirements
from services.hub.open_conversations import NO_DEADLINE
from tests.integration.hub.conftest import QUEUE, Hub, MakeHub
from tests.support.deadline import patience
from tests.support.kafka import collect, wait_until, wait_until_async
from tooling.hubclient import ActionFailed, HubClient

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)

LONG = 120.0  # an offer timeout no test waits out


async def waiting(hub: Hub) -> list[str]:
    """The queue's conversations waiting for an agent, soonest breach first."""
    members: Any = await hub.redis.zrange(hub.keys.hub_waiting(GROUP, QUEUE), 0, -1)
    return [m.decode() for m in members]


async def waiting_with_deadlines(hub: Hub, count: int) -> None:
    """Wait until ``count`` conversations wait, each ordered by a running clock."""

    async def ready() -> bool:
        scores: Any = await hub.redis.zrange(
            hub.keys.hub_waiting(GROUP, QUEUE), 0, -1, withscores=True
        )
        return len(scores) == count and all(score < NO_DEADLINE for _, score in scores)

    await wait_until_async(ready)


async def offered(client: HubClient) -> dict[str, Any]:
    return await client.next_of("offer", timeout=patience(20))


async def test_capacity_is_respected_per_channel(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=LONG)
    chats = [await hub.open_conversation(channel="chat") for _ in range(2)]
    mail = await hub.open_conversation(channel="email")
    await wait_until_async(lambda: _has(hub, 3))
    async with hub.client(QUEUE) as ada:
        answer = await ada.presence("online", {"chat": 1, "email": 1})
        assert answer["status"] == "online"
        first, second = await offered(ada), await offered(ada)
        by_channel = {o["conversation"]["channel"]: o for o in (first, second)}
        assert set(by_channel) == {"chat", "email"}
        assert by_channel["email"]["conversation"]["conversation_id"] == mail.conversation_id
        chat = by_channel["chat"]["conversation"]["conversation_id"]
        # The pass that made these saw the other chat and left it: chat capacity is 1.
        (left,) = await waiting(hub)
        assert {left, chat} == {c.conversation_id for c in chats}
        ack = await ada.accept(by_channel["email"]["offer_id"])
        assert ack["id"] == by_channel["email"]["offer_id"]
        assert ack["action_id"]
        await ada.decline(by_channel["chat"]["offer_id"])
        # The freed chat slot takes the other chat; the declined one is not offered back.
        again = await offered(ada)
        assert again["conversation"]["conversation_id"] == left
        assert await waiting(hub) == [chat]
        with_mail: Any = await hub.redis.hgetall(hub.keys.hub_assigned(GROUP, "ada"))
        assert {k.decode(): v.decode().split("|")[0] for k, v in with_mail.items()} == {
            mail.conversation_id: "email",
            left: "chat",
        }


async def _has(hub: Hub, count: int) -> bool:
    return len(await waiting(hub)) == count


async def test_an_offer_that_expires_goes_to_the_next_agent(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=1.0, hub_offer_misses=5)
    async with hub.client(QUEUE) as ada, hub.client(QUEUE, agent="bo") as bo:
        await ada.presence("online", {"sms": 1})
        routed = await hub.open_conversation()
        first = await offered(ada)
        assert first["conversation"]["conversation_id"] == routed.conversation_id
        await bo.presence("online", {"sms": 1})
        moved = await offered(bo)  # ada ignores it; it expires and moves on
        assert moved["conversation"]["conversation_id"] == routed.conversation_id
        assert moved["offer_id"] != first["offer_id"]
        revoked = await ada.next_of("offer_revoked", timeout=patience(20))
        assert (revoked["offer_id"], revoked["reason"]) == (first["offer_id"], "expired")
        with pytest.raises(ActionFailed) as late:
            await ada.accept(first["offer_id"])
        assert late.value.code == "offer_expired"
        ack = await bo.accept(moved["offer_id"])
        assert ack["type"] == "ack"


async def _accept_all(client: HubClient, count: int) -> list[str]:
    """Accept the next ``count`` offers; their conversation ids."""
    taken = []
    for _ in range(count):
        offer = await offered(client)
        await client.accept(offer["offer_id"])
        taken.append(offer["conversation"]["conversation_id"])
    return taken


async def _clocks(hub: Hub, routed: list[ConversationRouted]) -> dict[str, str]:
    summaries = await _summaries(hub, [r.conversation_id for r in routed])
    return {s["conversation_id"]: s["next_deadline"] for s in summaries}


async def _summaries(hub: Hub, ids: list[str]) -> list[dict[str, Any]]:
    return await hub.conversations().summaries(ids)


async def _returned_to_the_queue(hub: Hub, leave: Callable[[HubClient], Awaitable[None]]) -> None:
    """Ada takes two conversations and leaves (as ``leave`` does); bo is offered both with
    their clocks as they were, and nothing but ada's claims was published."""
    topics = hub.isolation.topics
    async with collect(hub.settings.kafka_bootstrap_servers, topics.agent_actions) as seen:
        routed = [await hub.open_conversation() for _ in range(2)]
        for minutes, conversation in zip((3, 9), routed, strict=True):
            await hub.sla(conversation, "started", minutes=minutes)
        await waiting_with_deadlines(hub, 2)
        clocks = await _clocks(hub, routed)
        ada = hub.client(QUEUE)
        await ada.connect()
        await ada.presence("online", {"sms": 2})
        taken = await _accept_all(ada, 2)
        assert set(taken) == {r.conversation_id for r in routed}
        await leave(ada)
        await ada.close()
        async with hub.client(QUEUE, agent="bo") as bo:
            await bo.presence("online", {"sms": 5})
            again = [await offered(bo) for _ in range(2)]
        # Most urgent first, clocks unchanged.
        assert [o["conversation"]["conversation_id"] for o in again] == [
            r.conversation_id for r in routed
        ]
        assert {
            o["conversation"]["conversation_id"]: o["conversation"]["next_deadline"] for o in again
        } == clocks
        await wait_until(lambda: len(seen.events) >= 2, message="ada's two claims")
        actions = [e.data for e in seen.of_type(AgentAction)]
        assert sorted((a.kind, a.agent) for a in actions if isinstance(a, AgentAction)) == [
            ("claim", "ada"),
            ("claim", "ada"),
        ]
        assert len(seen.events) == 2


async def test_an_agent_going_offline_returns_its_conversations(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=LONG)

    async def offline(client: HubClient) -> None:
        assert (await client.presence("offline"))["status"] == "offline"

    await _returned_to_the_queue(hub, offline)


async def test_a_claim_read_after_its_agent_went_offline_leaves_the_conversation_returned(
    make_hub: MakeHub,
) -> None:
    """Ada claims and goes offline before the fan-out reads her claim from Kafka (a lagging
    consumer, or the claim redelivered): the conversation stays returned and bo is offered it,
    instead of it being assigned to ada again while she is away."""
    hub = await make_hub(hub_offer_seconds=LONG)
    routed = await hub.open_conversation()
    await hub.sla(routed, "started", minutes=3)
    await waiting_with_deadlines(hub, 1)
    topics = hub.isolation.topics
    async with collect(hub.settings.kafka_bootstrap_servers, topics.agent_actions) as seen:
        ada = hub.client(QUEUE)
        await ada.connect()
        await ada.presence("online", {"sms": 2})
        await _accept_all(ada, 1)
        await wait_until(lambda: len(seen.events) == 1, message="ada's claim")
        assert (await ada.presence("offline"))["status"] == "offline"
        await ada.close()
    [claim] = seen.of_type(AgentAction)
    assert isinstance(claim.data, AgentAction)
    await hub.publish(topics.agent_actions, routed.thread_key, claim.data, event_id=claim.id)
    note = AgentAction(
        action_id="after-the-claim",
        kind="note",
        conversation_id=routed.conversation_id,
        agent="ada",
        text="read after the claim",
        at=claim.data.at,
    )
    await hub.publish(topics.agent_actions, routed.thread_key, note)
    entries = hub.keys.hub_transcript_entries(routed.conversation_id)

    async def claim_read_again() -> bool:  # the note follows it on the same partition
        return any(b"read after the claim" in v for v in (await hub.redis.hvals(entries)))

    await wait_until_async(claim_read_again, message="the fan-out past the repeated claim")
    async with hub.client(QUEUE, agent="bo") as bo:
        await bo.presence("online", {"sms": 5})
        offer = await offered(bo)
    assert offer["conversation"]["conversation_id"] == routed.conversation_id


async def test_a_socket_gone_past_the_grace_period_returns_its_conversations(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(hub_offer_seconds=LONG, hub_presence_grace=1.0)

    async def disconnect(client: HubClient) -> None:
        await client.close()

    await _returned_to_the_queue(hub, disconnect)


async def test_an_agent_ignoring_offers_is_set_offline(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=0.5, hub_offer_misses=1)
    async with hub.client(QUEUE) as ada:
        await ada.presence("online", {"sms": 1})
        await hub.open_conversation()
        await offered(ada)
        told = await ada.next_of("presence", timeout=patience(20))
        assert (told["status"], told["reason"]) == ("offline", "unresponsive")


async def test_the_most_urgent_conversation_is_offered_first(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=LONG)
    relaxed = await hub.open_conversation(text="relaxed")
    urgent = await hub.open_conversation(text="urgent")
    middle = await hub.open_conversation(text="middle")
    for conversation, minutes in ((relaxed, 300), (urgent, 2), (middle, 30)):
        await hub.sla(conversation, "started", minutes=minutes)
    await waiting_with_deadlines(hub, 3)
    async with hub.client(QUEUE) as ada:
        await ada.presence("online", {"sms": 1})
        first = await offered(ada)
        assert first["conversation"]["conversation_id"] == urgent.conversation_id
        assert first["conversation"]["last_text"] == "urgent"
        await ada.decline(first["offer_id"])
        second = await offered(ada)
        assert second["conversation"]["conversation_id"] == middle.conversation_id
    assert await waiting(hub) == [urgent.conversation_id, relaxed.conversation_id]


async def test_equal_agents_take_turns(make_hub: MakeHub) -> None:
    hub = await make_hub(hub_offer_seconds=LONG)
    async with hub.client(QUEUE) as ada, hub.client(QUEUE, agent="bo") as bo:
        clients = {"ada": ada, "bo": bo}
        for client in clients.values():
            await client.presence("online", {"sms": 1})
        order = []
        for _ in range(4):
            routed = await hub.open_conversation()
            got, offer = await _first_offer(clients)
            order.append(got)
            assert offer["conversation"]["conversation_id"] == routed.conversation_id
            await clients[got].accept(offer["offer_id"])
            await clients[got].act("resolve", routed.conversation_id)
            freed = functools.partial(_free, hub, got)
            await wait_until_async(freed, message="the resolution reached the hub")
        assert order[0] != order[1]
        assert order[::2] == [order[0]] * 2
        assert order[1::2] == [order[1]] * 2


async def _first_offer(clients: dict[str, HubClient]) -> tuple[str, dict[str, Any]]:
    """The agent offered the conversation, and the offer (the other agent gets none: one
    conversation, capacity 1 each)."""
    tasks = {asyncio.create_task(offered(client)): agent for agent, client in clients.items()}
    done, pending = await asyncio.wait(tasks, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert len(done) == 1, "no single agent was offered the conversation"
    task = done.pop()
    return tasks[task], task.result()


async def _free(hub: Hub, agent: str) -> bool:
    return not await hub.redis.hlen(hub.keys.hub_assigned(GROUP, agent))


@pytest.mark.parametrize("requires", [None, Requirements(skills=("payments",), language="es")])
async def test_two_replicas_never_offer_a_conversation_twice(
    make_hub: MakeHub, requires: Requirements | None
) -> None:
    hub = await make_hub(replicas=2, hub_offer_seconds=LONG)
    skills, languages = ("payments",), ("es",)  # both agents meet the requirements
    async with (
        hub.client(QUEUE, skills=skills, languages=languages) as ada,
        hub.client(QUEUE, agent="bo", replica=1, skills=skills, languages=languages) as bo,
    ):
        await asyncio.gather(
            ada.presence("online", {"sms": 20}), bo.presence("online", {"sms": 20})
        )
        routed = await asyncio.gather(
            *(hub.open_conversation(requires=requires) for _ in range(12))
        )
        ids = {r.conversation_id for r in routed}

        async def outstanding() -> bool:
            return await hub.redis.zcard(hub.keys.hub_offers(GROUP, QUEUE)) == len(ids)

        await wait_until_async(outstanding)
        assert await waiting(hub) == []
        offers: dict[str, list[dict[str, Any]]] = {}
        for client in (ada, bo):
            agent = client.hello["agent"]
            held = await hub.redis.hlen(hub.keys.hub_assigned(GROUP, agent))
            offers[agent] = [await offered(client) for _ in range(held)]
        counts = Counter(o["conversation"]["conversation_id"] for os in offers.values() for o in os)
        assert set(counts) == ids
        assert set(counts.values()) == {1}
        acks = await asyncio.gather(
            _accept_each(ada, offers["ada"]), _accept_each(bo, offers["bo"])
        )
        assert sum(len(a) for a in acks) == len(ids)


async def _accept_each(client: HubClient, offers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [await client.accept(offer["offer_id"]) for offer in offers]
