"""Agent actions: each kind published on Kafka keyed by the thread key, acked only after
Kafka, once per client id, only on conversations of the token's queues."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from libs.common.events import AgentAction, OutboundCommand
from services.hub.actions import action_id, command_id
from services.hub.protocol import CLOSE_TOO_BIG
from tests.integration.hub.conftest import OTHER, QUEUE, Hub, until_closed
from tests.support.deadline import patience
from tests.support.kafka import collect, wait_until
from tooling.hubclient import ActionFailed, HubClient


async def next_event(client: HubClient, kind: str) -> dict[str, Any]:
    while True:
        message = await client.next(timeout=patience(20))
        if message["type"] == "event" and message["kind"] == kind:
            return message


async def known(client: HubClient, conversation_id: str) -> None:
    """Until the hub knows the conversation: its routed event, or a snapshot that has it (when
    the conversation was routed before the subscription)."""
    while True:
        message = await client.next(timeout=patience(20))
        if message["type"] == "snapshot":
            ids = {c["conversation_id"] for c in message["conversations"]}
        elif message["type"] == "event" and message["kind"] == "routed":
            ids = {message["conversation_id"]}
        else:
            continue
        if conversation_id in ids:
            return


async def test_every_action_kind_is_published_keyed_by_thread_and_acked(hub: Hub) -> None:
    topics = hub.isolation.topics
    async with (
        collect(
            hub.settings.kafka_bootstrap_servers, topics.agent_actions, topics.outbound_commands
        ) as seen,
        hub.client(QUEUE, OTHER) as client,
    ):
        await client.subscribe([QUEUE, OTHER])
        routed = await hub.open_conversation(QUEUE)
        await known(client, routed.conversation_id)
        acks = {}
        for kind, extra in (
            ("claim", {}),
            ("note", {"text": "checked the carrier"}),
            ("reply", {"text": "It ships tomorrow."}),
            ("waiting", {}),
            ("transfer", {"queue": OTHER}),
            ("resolve", {}),
        ):
            acks[kind] = await client.act(
                kind, routed.conversation_id, action_id=f"x-{kind}", **extra
            )
        await wait_until(lambda: len(seen.records) >= 7, message="6 actions and 1 reply command")
        actions = {
            e.data.kind: e for e in seen.of_type(AgentAction) if isinstance(e.data, AgentAction)
        }
        assert set(actions) == {"claim", "note", "reply", "waiting", "transfer", "resolve"}
        for kind, event in actions.items():
            assert event.id == acks[kind]["action_id"] == action_id("ada", f"x-{kind}")
            assert isinstance(event.data, AgentAction)
            assert event.data.agent == "ada"
            assert event.data.conversation_id == routed.conversation_id
        transfer, note = actions["transfer"].data, actions["note"].data
        assert isinstance(transfer, AgentAction)
        assert isinstance(note, AgentAction)
        assert transfer.queue == OTHER
        assert note.text == "checked the carrier"
        assert {r.key.decode() for r in seen.records} == {routed.thread_key}
        (command,) = seen.of_type(OutboundCommand)
        assert isinstance(command.data, OutboundCommand)
        assert command.id == acks["reply"]["command_id"] == command_id(acks["reply"]["action_id"])
        assert command.data.kind == "agent_reply"
        assert command.data.text == "It ships tomorrow."
        assert command.data.recipient == routed.customer.phone
        assert command.data.sender == routed.our_address  # from the number the customer texted
        assert command.data.in_reply_to == routed.provider_message_id
        assert command.data.channel == "sms"
        assert command.data.reference == routed.reference
        # The transfer moves the conversation out of one queue and into the other.
        out = await next_event(client, "transferred_out")
        into = await next_event(client, "transferred_in")
        assert (out["queue"], into["queue"]) == (QUEUE, OTHER)
        arrived = into["conversation"]  # what the new queue's agents need to list it
        assert (arrived["conversation_id"], arrived["reference"]) == (
            routed.conversation_id,
            routed.reference,
        )
        assert arrived["last_text"] == routed.text
        assert "conversation" not in out


async def test_a_repeated_action_id_gets_the_same_ack_and_one_record(hub: Hub) -> None:
    topics = hub.isolation.topics
    async with collect(hub.settings.kafka_bootstrap_servers, topics.agent_actions) as seen:
        routed = await hub.open_conversation(QUEUE)
        async with hub.client(QUEUE) as client:
            await client.subscribe([QUEUE])
            await known(client, routed.conversation_id)
            first = await client.act("claim", routed.conversation_id, action_id="same")
        async with hub.client(QUEUE) as again:  # a reconnect resends the unacknowledged one
            second = await again.act("claim", routed.conversation_id, action_id="same")
            marker = await again.act("waiting", routed.conversation_id)
        assert first == second
        await wait_until(lambda: any(e.id == marker["action_id"] for e in seen.events))
        counts = Counter(e.id for e in seen.of_type(AgentAction))
        assert counts[first["action_id"]] == 1


async def test_actions_are_validated_and_limited_to_the_tokens_queues(hub: Hub) -> None:
    theirs = await hub.open_conversation(OTHER)
    ours = await hub.open_conversation(QUEUE)
    async with hub.client(QUEUE) as client:
        await client.subscribe([QUEUE])
        await known(client, ours.conversation_id)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"kind": "claim", "conversation_id": theirs.conversation_id}, "forbidden"),
            ({"kind": "claim", "conversation_id": "nope"}, "unknown_conversation"),
            ({"kind": "reply", "conversation_id": ours.conversation_id}, "text_required"),
            (
                {"kind": "transfer", "conversation_id": ours.conversation_id, "queue": "moon"},
                "unknown_queue",
            ),
        ]
        for fields, code in cases:
            with pytest.raises(ActionFailed) as failed:
                await client.act(**fields)
            assert failed.value.code == code
            assert failed.value.retry is False
        for raw, code in (
            ("{not json", "invalid_json"),
            ('{"type": "dance"}', "unknown_type"),
            (
                '{"type": "action", "id": "a1", "kind": "fly", "conversation_id": "c"}',
                "invalid_frame",
            ),
            ('{"type": "subscribe", "queues": {"sms-desk": "yesterday"}}', "invalid_frame"),
            ("[1, 2]", "invalid_frame"),
        ):
            await client.send_raw(raw)
            error = await client.next()
            assert (error["type"], error["code"]) == ("error", code)
        # Still open and serving after all that.
        ack = await client.act("claim", ours.conversation_id)
        assert ack["type"] == "ack"


async def test_a_frame_over_the_size_limit_closes_with_1009(hub: Hub) -> None:
    async with hub.client(QUEUE) as client:
        await client.send_raw('{"type": "action", "text": "' + "x" * 70_000 + '"}')
        closed, _ = await until_closed(client)
    assert closed.code == CLOSE_TOO_BIG
