"""The customer view: a conversation's customer profile and their history across channels, as
the router keeps them, limited to what the agent's queues allow."""

from __future__ import annotations

import pytest

from libs.common.config.schema import DEFAULT_ASSIGNMENT_GROUP as GROUP
from libs.domain.references import reference_for
from tests.integration.hub.conftest import OTHER, QUEUE, Hub
from tooling.hubclient import ActionFailed

MS = 1_795_000_000_000


async def conversation(
    hub: Hub, conversation_id: str, *, customer: str, queue: str, channel: str, n: int
) -> None:
    """A conversation as the router records it, in its customer's history."""
    await hub.redis.hset(
        hub.keys.conversation(conversation_id),
        mapping={
            "sequence": n,
            "queue": queue,
            "status": "open",
            "channel": channel,
            "thread_key": f"{channel}:{n}",
            "customer_id": customer,
            "opened_at": MS + n,
            "last_message_at": MS + n,
        },
    )
    await hub.redis.zadd(hub.keys.customer_history(customer), {conversation_id: MS + n})
    await hub.redis.set(hub.keys.hub_group_of(conversation_id), GROUP)  # as the fan-out keeps it
    await hub.redis.hset(
        hub.keys.hub_conversation(GROUP, conversation_id), "last_text", f"text of {conversation_id}"
    )


async def test_an_agent_sees_the_profile_and_history_its_queues_allow(hub: Hub) -> None:
    await hub.redis.hset(
        hub.keys.customer("ada"),
        mapping={
            "name": "Ada Lovelace",
            "tier": "vip",
            "email": "ada@example.org",
            "phone": "+14155550100",
            "first_seen": MS,
            "last_seen": MS + 9,
        },
    )
    await hub.redis.hset(hub.keys.customer("ada-old"), "merged_into", "ada")
    await conversation(hub, "by-sms", customer="ada", queue=QUEUE, channel="sms", n=1)
    await conversation(hub, "by-mail", customer="ada", queue=OTHER, channel="email", n=2)
    await conversation(hub, "by-chat", customer="ada-old", queue=QUEUE, channel="chat", n=3)

    async with hub.client(QUEUE) as client:
        view = await client.customer("by-sms")
        assert view["conversation_id"] == "by-sms"
        profile = view["profile"]
        assert (profile["customer_id"], profile["name"], profile["tier"]) == (
            "ada",
            "Ada Lovelace",
            "vip",
        )
        assert (profile["email"], profile["phone"], profile["social"]) == (
            "ada@example.org",
            "+14155550100",
            None,
        )
        history = view["history"]
        assert [h["conversation_id"] for h in history] == ["by-mail", "by-sms"]  # newest first
        mail, sms = history
        expected = ("email", OTHER, reference_for(2))
        assert (mail["channel"], mail["queue"], mail["reference"]) == expected
        assert mail["last_text"] is None  # another queue's text is not the agent's to read
        assert sms["last_text"] == "text of by-sms"

        merged = await client.customer("by-chat")  # its profile was merged into ada's
        assert merged["profile"]["customer_id"] == "ada"

        for conversation_id, code in (("by-mail", "forbidden"), ("nope", "unknown_conversation")):
            with pytest.raises(ActionFailed) as failed:
                await client.customer(conversation_id)
            assert failed.value.code == code
