"""Agents correct the router: a change of issue type (or a transfer) over the hub's websocket
is published on the agent-actions topic with the old and new type and the id of the message
the type was given to, never its text; only configured types, only in the token's queues.
``switchboard corrections export`` reads them back with the texts from the hub's transcript."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.events import AgentAction
from tests.integration.hub.conftest import OTHER, QUEUE, Hub, MakeHub
from tests.support.deadline import patience
from tests.support.harness import FIXTURES
from tests.support.hub import next_event
from tests.support.kafka import collect, wait_until
from tooling.corrections import export
from tooling.hubclient import ActionFailed, HubClient

CONFIG = FIXTURES / "config" / "corrections.yaml"


@pytest.fixture
async def hub(make_hub: MakeHub) -> Hub:
    return await make_hub(config=CONFIG)


async def known(client: HubClient, conversation_id: str) -> dict[str, Any]:
    """The conversation's summary, once the hub knows it (its routed event)."""
    while True:
        message = await client.next(timeout=patience(20))
        if message["type"] == "event" and message.get("conversation_id") == conversation_id:
            return message


async def test_a_change_of_issue_type_is_published_with_both_types_and_the_message_id(
    hub: Hub,
) -> None:
    topics = hub.isolation.topics
    async with (
        collect(hub.settings.kafka_bootstrap_servers, topics.agent_actions) as seen,
        hub.client(QUEUE, OTHER) as client,
    ):
        assert client.hello["issue_types"] == ["billing", "delivery", "feedback"]
        await client.subscribe([QUEUE, OTHER])
        routed = await hub.open_conversation(QUEUE, text="you charged me 2x")
        await known(client, routed.conversation_id)
        ack = await client.act("change_issue_type", routed.conversation_id, issue_type="billing")
        # Agents of the queue see the change once the fan-out has applied it.
        changed = await next_event(client, "action", lambda d: d["kind"] == "change_issue_type")
        assert changed["data"]["issue_type"] == "billing"
        moved = await client.act(
            "transfer", routed.conversation_id, queue=OTHER, issue_type="feedback"
        )
        await wait_until(lambda: len(seen.of_type(AgentAction)) == 2, message="two actions")
        change, transfer = (e.data for e in seen.of_type(AgentAction))
        assert isinstance(change, AgentAction)
        assert isinstance(transfer, AgentAction)
        assert seen.events[0].id == ack["action_id"]
        assert (change.kind, change.previous_issue_type, change.issue_type) == (
            "change_issue_type",
            "delivery",  # what the router said
            "billing",
        )
        assert change.message_id == routed.message_id
        assert change.text is None  # the customer's words stay where they were
        assert (transfer.kind, transfer.queue) == ("transfer", OTHER)
        assert (transfer.previous_issue_type, transfer.issue_type) == ("billing", "feedback")
        assert transfer.message_id == routed.message_id
        assert seen.events[1].id == moved["action_id"]
        assert {r.key.decode() for r in seen.records} == {routed.thread_key}
        # The new queue gets the conversation with the type the agent gave it.
        arrived = await next_event(client, "transferred_in", lambda d: True)
        assert arrived["conversation"]["issue_type"] == "feedback"

    # The export finds the text in the hub's transcript, for the classifier's tools only.
    exported, textless = await export(hub.settings)
    assert textless == 0
    assert [(c.kind, c.previous_issue_type, c.issue_type, c.text) for c in exported] == [
        ("change_issue_type", "delivery", "billing", "you charged me 2x"),
        ("transfer", "billing", "feedback", "you charged me 2x"),
    ]
    ids_only, _ = await export(hub.settings, with_text=False)
    assert [c.text for c in ids_only] == [None, None]


async def test_a_change_of_issue_type_is_validated(hub: Hub) -> None:
    theirs = await hub.open_conversation(OTHER)
    ours = await hub.open_conversation(QUEUE)
    async with hub.client(QUEUE) as client:
        await client.subscribe([QUEUE])
        await known(client, ours.conversation_id)
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"conversation_id": theirs.conversation_id, "issue_type": "billing"},
                "forbidden",
            ),
            ({"conversation_id": ours.conversation_id, "issue_type": "moon"}, "unknown_issue_type"),
            ({"conversation_id": ours.conversation_id}, "issue_type_required"),
            ({"conversation_id": ours.conversation_id, "issue_type": "delivery"}, "unchanged"),
        ]
        for fields, code in cases:
            with pytest.raises(ActionFailed) as failed:
                await client.act("change_issue_type", **fields)
            assert (failed.value.code, failed.value.retry) == (code, False)
        with pytest.raises(ActionFailed) as failed:
            await client.act("claim", ours.conversation_id, issue_type="billing")
        assert failed.value.code == "invalid_frame"
