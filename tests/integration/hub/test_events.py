"""Queue events: fanned out once from Kafka into per-queue streams, delivered to the agents
of that queue only, resumed without gaps or repeats, resynced when too far behind."""

from __future__ import annotations

from typing import Any

from libs.common.clock import system_clock
from libs.common.events import IncidentDetected, OutboundReceipt
from libs.common.redis_client import as_text
from libs.contracts.chat_mailbox import entry_order
from services.hub.streams import QueueStreams
from tests.integration.hub.conftest import OTHER, QUEUE, Hub, MakeHub
from tests.support.deadline import patience
from tests.support.kafka import wait_until_async
from tooling.hubclient import HubClient


async def next_of(client: HubClient, kind: str) -> dict[str, Any]:
    """The next frame of ``kind``, skipping others."""
    while True:
        message = await client.next(timeout=patience(20))
        if message["type"] == kind:
            return message


async def events(client: HubClient, count: int) -> list[dict[str, Any]]:
    return [await next_of(client, "event") for _ in range(count)]


async def test_agents_get_routed_sla_receipt_and_incident_events_of_their_queues_only(
    hub: Hub,
) -> None:
    async with hub.client(QUEUE) as mine, hub.client(OTHER, agent="bo") as theirs:
        await mine.subscribe([QUEUE])
        await theirs.subscribe([OTHER])
        assert (await next_of(mine, "snapshot"))["conversations"] == []
        await next_of(theirs, "snapshot")
        ours = await hub.open_conversation(QUEUE, text="where is my order?")
        elsewhere = await hub.open_conversation(OTHER, text="invoice is wrong")
        await hub.sla(ours, "started")
        await hub.sla(ours, "warning", minutes=1)
        await hub.publish(
            hub.isolation.topics.outbound_status,
            ours.thread_key,
            OutboundReceipt(
                command_id="c-1", conversation_id=ours.conversation_id, channel="sms", status="sent"
            ),
        )
        await hub.publish(
            hub.isolation.topics.routed,
            ours.thread_key,
            IncidentDetected(
                incident_id="i-1",
                key="type:delivery",
                issue_type="delivery",
                customers=12,
                window_seconds=600,
                detected_at=system_clock(),
                queue=None,
                first_conversation_id=ours.conversation_id,
            ),
        )
        got = await events(mine, 5)
        kinds = sorted(e["kind"] for e in got)
        assert kinds == ["incident", "receipt", "routed", "sla", "sla"]
        assert all(e["queue"] == QUEUE for e in got)
        routed = next(e for e in got if e["kind"] == "routed")
        assert routed["data"]["text"] == "where is my order?"
        assert routed["conversation_id"] == ours.conversation_id
        warning = next(e for e in got if e["kind"] == "sla" and e["data"]["kind"] == "warning")
        assert warning["data"]["remaining_seconds"] == 60
        ids = [e["id"] for e in got]
        assert ids == await hub.stream(QUEUE)  # in stream order, every one
        other = await next_of(theirs, "event")
        assert other["conversation_id"] == elsewhere.conversation_id
        assert await hub.stream(OTHER) == [other["id"]]  # nothing of QUEUE leaked there


async def test_a_snapshot_shows_each_clocks_latest_state(hub: Hub) -> None:
    async with hub.client(QUEUE) as watcher:
        await watcher.subscribe([QUEUE])
        await next_of(watcher, "snapshot")
        answered = await hub.open_conversation(QUEUE, text="answered already")
        waiting = await hub.open_conversation(QUEUE, text="still waiting")
        await hub.sla(answered, "started")
        await hub.sla(answered, "met")
        warned = await hub.sla(waiting, "warning", minutes=2)
        await events(watcher, 5)  # all fanned out
    async with hub.client(QUEUE) as late:
        await late.subscribe([QUEUE])
        rows = {r["conversation_id"]: r for r in (await next_of(late, "snapshot"))["conversations"]}
    met = rows[answered.conversation_id]
    assert (met["clocks"], met["deadlines"]) == ({"first_response": "met"}, {})
    assert rows[waiting.conversation_id]["clocks"] == {"first_response": "warning"}
    in_ms = warned.deadline.replace(microsecond=warned.deadline.microsecond // 1000 * 1000)
    assert rows[waiting.conversation_id]["next_deadline"] == in_ms.isoformat()


async def test_a_kafka_redelivery_is_appended_once(hub: Hub) -> None:
    routed = await hub.open_conversation(QUEUE)
    again = await hub.publish(hub.isolation.topics.routed, routed.thread_key, routed, "same-id")
    await hub.publish(hub.isolation.topics.routed, routed.thread_key, again.data, again.id)
    await hub.sla(routed, "started")  # behind both copies on the same key
    await wait_until_stream(hub, 3)
    payloads: Any = await hub.redis.xrange(hub.keys.hub_stream(QUEUE))
    kinds = [fields[b"e"].count(b'"kind":"routed"') for _, fields in payloads]
    assert len(payloads) == 3  # the first routed event, "same-id" once, the SLA event
    assert sum(kinds) == 2


async def test_resume_ids_are_served_exactly_up_to_the_newest_trimmed_entry(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub(maxlen=10)
    streams = QueueStreams(hub.redis, hub.keys, maxlen=10, max_age=3600)
    ids = [await streams.append(QUEUE, f"e{n}", b"{}") for n in range(12)]
    assert await hub.stream(QUEUE) == ids[2:]  # trimmed through ids[1]
    assert await streams.can_resume(QUEUE, ids[1])  # saw the last trimmed one: nothing lost
    assert not await streams.can_resume(QUEUE, ids[0])  # ids[1] is gone unseen
    assert not await streams.can_resume(QUEUE, "0-0")
    assert not await streams.can_resume(QUEUE, "99999999999999-0")  # never issued here
    assert await streams.append(QUEUE, "e3", b"{}") == ids[3]  # a repeat appends nothing
    assert await streams.can_resume(OTHER, "0-0")  # nothing ever appended: nothing lost


async def test_two_replicas_serve_the_same_queue(make_hub: MakeHub) -> None:
    hub = await make_hub(replicas=2)
    async with hub.client(QUEUE) as first, hub.client(QUEUE, agent="bo", replica=1) as second:
        await first.subscribe([QUEUE])
        await second.subscribe([QUEUE])
        await next_of(first, "snapshot")
        await next_of(second, "snapshot")
        conversations = [await hub.open_conversation(QUEUE) for _ in range(4)]
        a = await events(first, 4)
        b = await events(second, 4)
        assert [e["id"] for e in a] == [e["id"] for e in b] == await hub.stream(QUEUE)
        assert {e["conversation_id"] for e in a} == {c.conversation_id for c in conversations}


async def test_resume_after_a_dropped_connection_gets_exactly_what_was_missed(hub: Hub) -> None:
    client = hub.client(QUEUE)
    await client.connect()
    await client.subscribe([QUEUE])
    await next_of(client, "snapshot")
    first = await hub.open_conversation(QUEUE)
    for _ in range(3):
        await hub.sla(first, "warning")
    seen = await events(client, 4)
    await client.close()  # dropped; events go on
    for _ in range(5):
        await hub.sla(first, "recomputed")
    await wait_until_stream(hub, 9)
    await client.connect()
    await client.subscribe([QUEUE])
    assert (await client.next())["type"] == "subscribed"
    missed = await events(client, 5)
    stream = await hub.stream(QUEUE)
    assert [e["id"] for e in seen + missed] == stream
    assert [e["data"]["kind"] for e in missed] == ["recomputed"] * 5
    later = await hub.open_conversation(QUEUE)
    (live,) = await events(client, 1)
    assert live["conversation_id"] == later.conversation_id  # and then live, no repeats
    await client.close()


async def test_a_client_too_far_behind_gets_resync_and_a_snapshot(make_hub: MakeHub) -> None:
    hub = await make_hub(maxlen=10)
    client = hub.client(QUEUE)
    await client.connect()
    await client.subscribe([QUEUE])
    await next_of(client, "snapshot")
    resolved_later = await hub.open_conversation(QUEUE, text="first")
    (seen,) = await events(client, 1)
    await client.close()
    urgent = await hub.open_conversation(QUEUE, text="urgent")
    await hub.sla(urgent, "started", minutes=2)
    relaxed = await hub.open_conversation(QUEUE, text="relaxed")
    await hub.sla(relaxed, "started", minutes=300)
    for _ in range(15):
        await hub.sla(resolved_later, "warning", minutes=30)

    async def trimmed() -> bool:
        # Past the client's position: trimming that ends exactly at it loses nothing it missed,
        # and the client may resume.
        marker = await hub.redis.get(hub.keys.hub_trimmed(QUEUE))
        return marker is not None and entry_order(as_text(marker)) > entry_order(seen["id"])

    await wait_until_async(trimmed, timeout=30, message="the stream trimmed")
    await client.connect()
    await client.subscribe([QUEUE])
    resync = await client.next()
    assert resync["type"] == "resync"
    assert resync["after"] == seen["id"]
    snapshot = await client.next()
    assert snapshot["type"] == "snapshot"
    order = [c["conversation_id"] for c in snapshot["conversations"]]
    # Soonest breach first: 2 minutes, then 30 minutes, then 5 hours.
    assert order == [
        urgent.conversation_id,
        resolved_later.conversation_id,
        relaxed.conversation_id,
    ]
    assert snapshot["conversations"][0]["last_text"] == "urgent"
    assert client.last_ids[QUEUE] == snapshot["id"]
    await client.close()


async def wait_until_stream(hub: Hub, length: int) -> None:
    async def long_enough() -> bool:
        return len(await hub.stream(QUEUE)) >= length

    await wait_until_async(long_enough, timeout=30, message="the stream long enough")
