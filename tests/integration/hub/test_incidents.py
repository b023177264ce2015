"""Incidents in the hub: kept as state (a console that connects later still sees an open
incident and its linked conversations in the snapshot), and answered in bulk: one status
update per linked open conversation of the agent's queues, never twice."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import msgspec
import pytest

from libs.common.clock import system_clock
from libs.common.events import (
    AgentAction,
    ConversationRouted,
    IncidentDetected,
    OutboundCommand,
)
from services.hub.incidents import status_update_id
from tests.integration.hub.conftest import OTHER, QUEUE, Hub
from tests.support.deadline import patience
from tests.support.kafka import collect, wait_until
from tooling.hubclient import ActionFailed, HubClient

pytestmark = pytest.mark.cluster  # also on a Redis Cluster (tests/conftest.py)


async def linked(hub: Hub, incident_id: str, queue: str = QUEUE) -> ConversationRouted:
    """A conversation whose customer wrote again during the incident: the router linked it."""
    routed = await hub.open_conversation(queue, text="I cannot pay")
    again = msgspec.structs.replace(
        routed, is_new=False, message_id=uuid.uuid4().hex, incident_id=incident_id
    )
    await hub.publish(hub.isolation.topics.routed, routed.thread_key, again)
    return again


async def detected(hub: Hub, incident_id: str, first: ConversationRouted) -> IncidentDetected:
    incident = IncidentDetected(
        incident_id=incident_id,
        key="type:payment_issue",
        issue_type="payment_issue",
        customers=20,
        window_seconds=15.0,
        detected_at=system_clock(),
        queue=None,
        first_conversation_id=first.conversation_id,
    )
    await hub.publish(hub.isolation.topics.routed, first.thread_key, incident)
    return incident


async def until_incident(client: HubClient, incident_id: str, conversations: int) -> None:
    """Until the queue's events showed the incident and ``conversations`` linked messages."""
    seen: set[str] = set()
    detected_seen = False
    while not (detected_seen and len(seen) >= conversations):
        message = await client.next(timeout=patience(20))
        if message["type"] != "event":
            continue
        data = message["data"]
        detected_seen |= message["kind"] == "incident" and data["incident_id"] == incident_id
        if message["kind"] == "routed" and data.get("incident_id") == incident_id:
            seen.add(message["conversation_id"])


async def resolve(client: HubClient, routed: ConversationRouted) -> None:
    """Resolve a conversation and wait until the fan-out applied it (its ``action`` event)."""
    ack = await client.act("resolve", routed.conversation_id)
    async for message in client.events(timeout=patience(20)):
        if message["kind"] == "action" and message["event_id"] == ack["action_id"]:
            return


def incidents_of(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["incident_id"]: i for i in snapshot["incidents"]}


async def test_a_console_that_connects_later_sees_the_open_incident(hub: Hub) -> None:
    incident_id = uuid.uuid4().hex
    async with hub.client(QUEUE, OTHER) as watcher:
        await watcher.subscribe([QUEUE, OTHER])
        first = await linked(hub, incident_id)
        await detected(hub, incident_id, first)
        second = await linked(hub, incident_id)
        elsewhere = await linked(hub, incident_id, OTHER)
        resolved = await linked(hub, incident_id)
        await until_incident(watcher, incident_id, 4)
        await resolve(watcher, resolved)

    async with hub.client(QUEUE, OTHER) as later:
        await later.subscribe([QUEUE])
        snapshot = await later.next_of("snapshot", timeout=patience(20))
    shown = incidents_of(snapshot)[incident_id]
    assert shown["issue_type"] == "payment_issue"
    assert shown["customers"] == 20
    assert shown["queue"] == QUEUE  # where its first conversation is
    assert set(shown["conversations"]) == {first.conversation_id, second.conversation_id}
    assert elsewhere.conversation_id not in shown["conversations"]


async def test_answering_an_incident_sends_one_status_update_per_open_linked_conversation(
    hub: Hub,
) -> None:
    topics = hub.isolation.topics
    incident_id = uuid.uuid4().hex
    async with collect(
        hub.settings.kafka_bootstrap_servers, topics.outbound_commands, topics.agent_actions
    ) as seen:
        async with hub.client(QUEUE, OTHER) as setup:
            await setup.subscribe([QUEUE, OTHER])
            first = await linked(hub, incident_id)
            await detected(hub, incident_id, first)
            second = await linked(hub, incident_id)
            resolved = await linked(hub, incident_id)
            not_mine = await linked(hub, incident_id, OTHER)
            unrelated = await hub.open_conversation(QUEUE)
            await until_incident(setup, incident_id, 4)
            await resolve(setup, resolved)

        async with hub.client(QUEUE, agent="bo") as client:  # bo's token has no OTHER
            await client.subscribe([QUEUE])
            await client.next_of("snapshot", timeout=patience(20))
            ack = await client.answer_incident(incident_id, client_id="all-1")
            assert (ack["incident_id"], ack["answered"], ack["already_answered"]) == (
                incident_id,
                2,
                0,
            )
            await wait_until(
                lambda: len(seen.of_type(OutboundCommand)) >= 2, message="2 status updates"
            )
            again = await client.answer_incident(incident_id)  # another click, a new id
            assert (again["answered"], again["already_answered"]) == (0, 2)
            resent = await client.answer_incident(incident_id, client_id="all-1")
            assert resent["answered"] == 0
            with pytest.raises(ActionFailed) as failed:
                await client.answer_incident(uuid.uuid4().hex)
            assert failed.value.code == "unknown_incident"
            marker = await client.act("claim", unrelated.conversation_id)
        await wait_until(lambda: any(e.id == marker["action_id"] for e in seen.events))

    commands = seen.of_type(OutboundCommand)
    by_conversation = Counter(
        e.data.conversation_id for e in commands if isinstance(e.data, OutboundCommand)
    )
    assert by_conversation == {first.conversation_id: 1, second.conversation_id: 1}
    for event in commands:
        command = event.data
        assert isinstance(command, OutboundCommand)
        assert command.kind == "status_update"
        assert command.template == "status-update"
        assert command.channel == "sms"
        assert command.params["reference"] == command.reference
        assert event.id == command.command_id
        assert command.command_id == status_update_id(incident_id, command.conversation_id)
        routed = first if command.conversation_id == first.conversation_id else second
        assert command.recipient == routed.customer.phone
        assert command.sender == routed.our_address
    notes = [
        a
        for a in seen.data_of(AgentAction)
        if a.kind == "note" and a.conversation_id in by_conversation
    ]
    assert {n.conversation_id for n in notes} == set(by_conversation)
    assert all(n.agent == "bo" and incident_id in (n.text or "") for n in notes)
    assert not_mine.conversation_id not in by_conversation
