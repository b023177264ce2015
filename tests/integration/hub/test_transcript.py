"""A conversation's transcript: every message in and out with its delivery state, notes, SLA
events and why each message was routed where it was, kept in Redis by the fan-out, served in
pages to the agents of the conversation's queue, and still there for a new hub process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from libs.common.clock import system_clock
from libs.common.events import OutboundReceipt
from libs.common.keys import Keys
from libs.common.redis_client import as_text
from services.hub.transcript import Entry, Transcripts
from tests.integration.hub.conftest import OTHER, QUEUE, Hub, MakeHub
from tests.support.harness import Isolation
from tests.support.kafka import wait_until_async
from tooling.hubclient import ActionFailed, HubClient

ACK_TEXT = "We have your message (SB-TEST7) and will answer within 5 minutes."


async def entries_of(client: HubClient, conversation_id: str, count: int) -> list[dict[str, Any]]:
    """The newest page once it holds ``count`` entries (the fan-out writes them as it reads)."""
    page: dict[str, Any] = {}

    async def enough() -> bool:
        nonlocal page
        page = await client.transcript(conversation_id)
        return len(page["entries"]) >= count

    await wait_until_async(enough, message=f"{count} transcript entries")
    entries: list[dict[str, Any]] = page["entries"]
    return entries


async def test_the_transcript_holds_the_whole_conversation_across_hub_processes(
    make_hub: MakeHub,
) -> None:
    hub = await make_hub()
    first = await hub.open_conversation(text="my parcel never arrived")
    await hub.sla(first, "started")
    ack = OutboundReceipt(
        command_id="ack-1",
        conversation_id=first.conversation_id,
        channel="sms",
        status="sent",
        kind="auto_ack",
        text=ACK_TEXT,
    )
    await hub.publish(hub.isolation.topics.outbound_status, first.thread_key, ack)
    second = msgspec.structs.replace(
        first,
        message_id="second-message",
        text="it was a birthday present",
        subject="Order 1234",
        is_new=False,
        # A second later than the acknowledgement's receipt: entries are ordered by their
        # millisecond, and two events in the same one have no order of their own.
        received_at=system_clock() + timedelta(seconds=1),
    )
    await hub.publish(hub.isolation.topics.routed, first.thread_key, second)

    async with hub.client(QUEUE) as client:
        await entries_of(client, first.conversation_id, 4)
        reply = await client.act("reply", first.conversation_id, text="Sorry! Sending another.")
        await client.act("note", first.conversation_id, text="customer is upset")
        entries = await entries_of(client, first.conversation_id, 6)

    by_kind = [(e["kind"], e.get("text")) for e in entries]
    # The first three are written within a few milliseconds of one another, and entries of one
    # millisecond are ordered by their ids: their order among themselves is not what is tested.
    opening = [("inbound", "my parcel never arrived"), ("sla", None), ("outbound", ACK_TEXT)]
    assert sorted(by_kind[:3], key=str) == sorted(opening, key=str)
    assert by_kind[3:] == [
        ("inbound", "it was a birthday present"),
        ("outbound", "Sorry! Sending another."),
        ("note", "customer is upset"),
    ]
    opened = {e["kind"]: e for e in entries[:3]}
    message, clock, acknowledgement = opened["inbound"], opened["sla"], opened["outbound"]
    follow_up, answer, note = entries[3:]
    assert message["channel"] == "sms"
    assert message["sender"]["display_name"] == "Ada"
    assert message["routing"] == {
        "queue": QUEUE,
        "priority": 2,
        "rule": "sms",
        "conditions": [],
        "issue_type": "delivery",
        "confidence": 1.0,
        "notes": [],
        "sla_policy": "blink",
        "requires": None,
    }
    assert follow_up["subject"] == "Order 1234"
    assert (clock["metric"], clock["sla"]) == ("first_response", "started")
    assert (acknowledgement["command_kind"], acknowledgement["delivery"]) == ("auto_ack", "sent")
    assert (answer["agent"], answer["command_kind"], answer["delivery"]) == (
        "ada",
        "agent_reply",
        "pending",
    )
    assert answer["command_id"] == reply["command_id"]
    assert note["agent"] == "ada"

    # The reply's receipt changes its delivery state, not its text or author.
    delivered = OutboundReceipt(
        command_id=reply["command_id"],
        conversation_id=first.conversation_id,
        channel="sms",
        status="sent",
        kind="agent_reply",
        text="Sorry! Sending another.",
    )
    await hub.publish(hub.isolation.topics.outbound_status, first.thread_key, delivered)

    # A new hub process (a reload of the console, a deploy) serves the same transcript.
    again = await make_hub()
    async with again.client(QUEUE) as client:

        async def answered() -> bool:
            page = await client.transcript(first.conversation_id)
            return bool(page["entries"][4]["delivery"] == "sent")

        await wait_until_async(answered, message="reply delivered")
        page = await client.transcript(first.conversation_id)
        assert [e["id"] for e in page["entries"]] == [e["id"] for e in entries]
        assert page["entries"][4]["agent"] == "ada"
        assert page["more"] is False

        # Pages: the newest first, then older ones before the first entry shown.
        newest = await client.transcript(first.conversation_id, limit=4)
        assert [e["id"] for e in newest["entries"]] == [e["id"] for e in entries[2:]]
        assert newest["more"] is True
        older = await client.transcript(
            first.conversation_id, before=newest["entries"][0]["id"], limit=4
        )
        assert [e["id"] for e in older["entries"]] == [e["id"] for e in entries[:2]]
        assert older["more"] is False

        # The new hub joined the fan-out's consumer group: stopped in the middle of that
        # rebalance, its consumer waits out the broker's session before it can leave. Once a
        # message routed now is in a transcript, the group is settled again.
        later = await hub.open_conversation(QUEUE, text="one more")
        await entries_of(client, later.conversation_id, 1)


async def test_only_agents_of_the_conversations_queue_read_its_transcript(hub: Hub) -> None:
    routed = await hub.open_conversation(QUEUE)
    async with hub.client(QUEUE) as agent:  # the fan-out has joined its group and read it
        await entries_of(agent, routed.conversation_id, 1)
    async with hub.client(OTHER) as client:
        for conversation_id, code in (
            (routed.conversation_id, "forbidden"),
            ("nope", "unknown_conversation"),
        ):
            with pytest.raises(ActionFailed) as failed:
                await client.transcript(conversation_id)
            assert failed.value.code == code
        with pytest.raises(ActionFailed) as failed:
            await client.transcript(routed.conversation_id, limit=1000)
        assert failed.value.code == "invalid_frame"


async def test_an_entry_is_written_once_with_its_delivery_state_and_the_oldest_are_dropped(
    redis: Redis, isolation: Isolation
) -> None:
    keys = Keys(isolation.key_prefix)
    transcripts = Transcripts(redis, keys, max_entries=3)
    conversation, start = "conv-cap", datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    at = [start + timedelta(seconds=n) for n in range(5)]
    reply = Entry(id="out:c0", kind="outbound", at=at[0], text="by the agent", agent="ada")
    await transcripts.record(conversation, reply)
    # The receipt's copy of the same message never replaces the agent's, but sets its state.
    copy = Entry(id="out:c0", kind="outbound", at=at[0], text="from the receipt")
    await transcripts.record(conversation, copy, authoritative=False, delivery="sent")
    entries, more = await transcripts.page(conversation, None, 10)
    assert [(e["text"], e["agent"], e["delivery"]) for e in entries] == [
        ("by the agent", "ada", "sent")
    ]
    assert not more
    for n in range(1, 5):  # four more: the reply and the first note are the oldest two
        note = Entry(id=f"note:{n}", kind="note", at=at[n], text=f"note {n}", agent="ada")
        await transcripts.record(conversation, note, delivery="sent" if n == 1 else None)
    entries, more = await transcripts.page(conversation, None, 10)
    assert [e["id"] for e in entries] == ["note:2", "note:3", "note:4"]
    stored = await redis.hkeys(keys.hub_transcript_entries(conversation))
    assert sorted(as_text(field) for field in stored) == ["note:2", "note:3", "note:4"]
    assert await redis.ttl(keys.hub_transcript(conversation)) > 0
